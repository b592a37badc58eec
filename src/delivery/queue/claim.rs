//! Claiming due work: explicit recipients grouped by job and domain, then
//! fan-out batches (expanding one more chunk when short), each row marked
//! `sending` in the transaction that hands it out; and `next_due`, when the
//! worker should look again.
//!
//! Trusts the queue rows; a row whose job or body vanished is closed, never
//! sent.

use super::batch::{expand_chunk, EXPAND_CHUNK};
use super::{JobCache, Source, Work};
use crate::config::Config;
use crate::store::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Claimed explicit recipients of one job and domain: (job, domain, (row id, attempts), rcpts).
type Group = (i64, String, Vec<(i64, i64)>, Vec<String>);

pub(super) fn claim(
    tx: &Transaction<'_>,
    config: &Config,
    cache: &mut JobCache,
    want: usize,
    now: i64,
) -> Result<Vec<Work>> {
    let max_rcpts = config.relay.max_recipients.max(1);
    let mut works: Vec<Work> = Vec::new();
    // explicit recipients, and recipients split out of batches
    for state in ["deferred", "active"] {
        if works.len() >= want {
            break;
        }
        let mut sel = tx.prepare_cached(
            "SELECT id, job_id, rcpt, domain, attempts FROM job_rcpts
             WHERE state = ?1 AND next_attempt <= ?2 ORDER BY next_attempt, id LIMIT ?3",
        )?;
        let mut rows = sel.query(params![
            state,
            now,
            ((want - works.len()) * max_rcpts) as i64
        ])?;
        // group by (job, domain), keeping claim order
        let mut groups: Vec<Group> = Vec::new();
        while let Some(r) = rows.next()? {
            let (id, job, rcpt, domain, attempts): (i64, i64, String, String, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let g = groups
                .iter_mut()
                .rev()
                .find(|g| g.0 == job && g.1 == domain && g.2.len() < max_rcpts);
            match g {
                Some(g) => {
                    g.2.push((id, attempts));
                    g.3.push(rcpt);
                }
                None => {
                    if works.len() + groups.len() >= want {
                        continue;
                    }
                    groups.push((job, domain, vec![(id, attempts)], vec![rcpt]))
                }
            }
        }
        drop(rows);
        let mut mark = tx.prepare_cached(
            "UPDATE job_rcpts SET state = 'sending', updated_at = ?2 WHERE id = ?1",
        )?;
        for (job_id, domain, ids, rcpts) in groups {
            let Some(job) = cache.get(tx, job_id)? else {
                fail_orphans(tx, &ids, now)?;
                continue;
            };
            for (id, _) in &ids {
                mark.execute(params![id, now])?;
            }
            works.push(Work {
                source: Source::Rcpts(ids),
                job,
                domain,
                rcpts,
            });
        }
    }
    // fan-out batches; when short, expand pending fan-outs: at most
    // EXPAND_CHUNK recipients and `want` expansions per claim in all, which
    // keeps each transaction short, yet a claim can fill up on many small
    // lists' posts (one expansion per claim capped delivery at one post
    // per transaction)
    let mut budget = EXPAND_CHUNK;
    let mut expansions = 0;
    loop {
        for state in ["deferred", "active"] {
            if works.len() >= want {
                break;
            }
            let mut sel = tx.prepare_cached(
                "SELECT id, job_id, domain, rcpts, attempts FROM batches
                 WHERE state = ?1 AND next_attempt <= ?2 ORDER BY next_attempt, id LIMIT ?3",
            )?;
            let picked: Vec<(i64, i64, String, String, i64)> = sel
                .query_map(params![state, now, (want - works.len()) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut mark = tx.prepare_cached(
                "UPDATE batches SET state = 'sending', updated_at = ?2 WHERE id = ?1",
            )?;
            for (id, job_id, domain, rcpts, attempts) in picked {
                let Some(job) = cache.get(tx, job_id)? else {
                    tx.execute(
                        "UPDATE batches SET state = 'done', last_reply = 'job vanished' WHERE id = ?1",
                        [id],
                    )?;
                    continue;
                };
                mark.execute(params![id, now])?;
                works.push(Work {
                    source: Source::Batch { id, attempts },
                    job,
                    domain,
                    rcpts: rcpts.split('\n').map(str::to_string).collect(),
                });
            }
        }
        if works.len() >= want || budget == 0 || expansions >= want {
            break;
        }
        // nothing more due: expand the next chunk of a pending fan-out
        let pending: Option<i64> = tx
            .prepare_cached("SELECT id FROM jobs WHERE expanded = 0 ORDER BY id LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        let Some(job_id) = pending else { break };
        let emitted = expand_chunk(tx, config, job_id, budget, now)? as usize;
        budget = budget.saturating_sub(emitted.max(1));
        expansions += 1;
    }
    Ok(works)
}

fn fail_orphans(tx: &Transaction<'_>, ids: &[(i64, i64)], now: i64) -> Result<()> {
    for (id, _) in ids {
        tx.execute(
            "UPDATE job_rcpts SET state = 'failed', last_reply = 'job or message vanished',
             updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
    }
    Ok(())
}

/// The earliest `next_attempt` of anything waiting, or `Some(now)`-ish when
/// a fan-out still needs expanding. None when the queue is empty.
pub fn next_due(conn: &Connection) -> Result<Option<i64>> {
    let expanding: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM jobs WHERE expanded = 0)",
        [],
        |r| r.get(0),
    )?;
    if expanding {
        return Ok(Some(0));
    }
    let mut best: Option<i64> = None;
    for sql in [
        "SELECT MIN(next_attempt) FROM batches WHERE state = 'active'",
        "SELECT MIN(next_attempt) FROM batches WHERE state = 'deferred'",
        "SELECT MIN(next_attempt) FROM job_rcpts WHERE state = 'active'",
        "SELECT MIN(next_attempt) FROM job_rcpts WHERE state = 'deferred'",
    ] {
        let v: Option<i64> = conn.query_row(sql, [], |r| r.get(0))?;
        if let Some(v) = v {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
    }
    Ok(best)
}
