//! Recording the relay's verdicts: a recipient is `sent`, `failed` (with a
//! bounce event when the relay says so), `deferred` with backoff, or given
//! up after `delivery.give_up_hours`; a batch whose recipients all share one
//! deferral waits whole, otherwise what was not sent gets its own row. A
//! verdict is decided first (`verdict`), then written.
//!
//! Trusts the verdicts as `client` judged them from the relay's replies.

use super::{finish_job, Done, JobCache, JobInfo, RecordStats, Source};
use crate::config::Config;
use crate::delivery::client::RcptResult;
use crate::store::Result;
use rusqlite::{params, Transaction};

/// Delay before try number `attempts + 1` after `attempts` temporary
/// failures: `initial * 2^(attempts-1)`, capped at `max`.
pub fn backoff(config: &Config, attempts: i64) -> i64 {
    let initial = config.delivery.retry_initial_secs.max(1) as i64;
    let max = config.delivery.retry_max_secs.max(1) as i64;
    let shift = (attempts - 1).clamp(0, 30) as u32;
    initial.saturating_mul(1i64 << shift).min(max)
}

fn expired(config: &Config, job: &JobInfo, now: i64) -> bool {
    now - job.created_at >= (config.delivery.give_up_hours as i64).saturating_mul(3600)
}

fn bounce_event(
    tx: &Transaction<'_>,
    job: &JobInfo,
    rcpt: &str,
    kind: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO bounce_events(list, address, job_id, kind, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![job.list, rcpt, job.id, kind, reason, now])?;
    Ok(())
}

/// Writes the verdicts of finished work, inside `tx`.
pub fn record(
    tx: &Transaction<'_>,
    config: &Config,
    cache: &mut JobCache,
    done: Vec<Done>,
    now: i64,
) -> Result<RecordStats> {
    let mut stats = RecordStats::default();
    let mut touched: Vec<i64> = Vec::new();
    for d in done {
        let job = d.work.job.clone();
        if !touched.contains(&job.id) {
            touched.push(job.id);
        }
        match &d.work.source {
            Source::Rcpts(ids) => {
                for ((id, attempts), (rcpt, res)) in
                    ids.iter().zip(d.work.rcpts.iter().zip(&d.results))
                {
                    record_rcpt(tx, config, &job, *id, *attempts, rcpt, res, now, &mut stats)?;
                }
            }
            Source::Batch { id, attempts } => {
                record_batch(tx, config, &job, *id, *attempts, &d, now, &mut stats)?;
            }
        }
    }
    for job in touched {
        if finish_job(tx, config, job, now)? {
            stats.jobs_done += 1;
            cache.forget(job);
        }
    }
    Ok(stats)
}

/// What one recipient's relay verdict makes of its row (decided here,
/// written by `record_rcpt` / `record_batch`).
struct Verdict {
    state: &'static str,
    attempts: i64,
    next_attempt: i64,
    reply: Option<String>,
    /// A bounce event to record: (kind, reason).
    bounce: Option<(&'static str, String)>,
    /// Given up after `delivery.give_up_hours` (its report says 4.4.7).
    timed_out: bool,
}

impl Verdict {
    /// Records the bounce event this verdict calls for, if any.
    fn record_bounce(
        &self,
        tx: &Transaction<'_>,
        job: &JobInfo,
        rcpt: &str,
        now: i64,
    ) -> Result<()> {
        match &self.bounce {
            Some((kind, reason)) => bounce_event(tx, job, rcpt, kind, reason, now),
            None => Ok(()),
        }
    }
}

/// Decides a recipient's new state from the relay's verdict after
/// `attempts` earlier tries, counting it in `stats`.
fn verdict(
    config: &Config,
    job: &JobInfo,
    attempts: i64,
    rcpt: &str,
    res: &RcptResult,
    now: i64,
    stats: &mut RecordStats,
) -> Verdict {
    let v = |state, attempts, next_attempt, reply: Option<&str>| Verdict {
        state,
        attempts,
        next_attempt,
        reply: reply.map(str::to_string),
        bounce: None,
        timed_out: false,
    };
    match res {
        RcptResult::Sent => {
            stats.sent += 1;
            v("sent", attempts + 1, now, None)
        }
        RcptResult::Failed { reply, bounce } => {
            stats.failed += 1;
            tracing::info!(job = job.id, %rcpt, %reply, "recipient failed");
            Verdict {
                bounce: bounce.then(|| ("failed", reply.clone())),
                ..v("failed", attempts + 1, now, Some(reply))
            }
        }
        RcptResult::Deferred(reply) if expired(config, job, now) => {
            stats.failed += 1;
            let why = format!(
                "gave up after {} hours: {reply}",
                config.delivery.give_up_hours
            );
            tracing::info!(job = job.id, %rcpt, %why, "recipient given up");
            Verdict {
                bounce: Some(("expired", why.clone())),
                timed_out: true,
                ..v("failed", attempts + 1, now, Some(&why))
            }
        }
        RcptResult::Deferred(reply) => {
            stats.deferred += 1;
            let next = now + backoff(config, attempts + 1);
            v("deferred", attempts + 1, next, Some(reply))
        }
        RcptResult::NotAttempted(why) => {
            // no try was made: nothing counted, due again at once
            stats.not_attempted += 1;
            let state = if attempts > 0 { "deferred" } else { "active" };
            v(state, attempts, now, Some(why))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record_rcpt(
    tx: &Transaction<'_>,
    config: &Config,
    job: &JobInfo,
    id: i64,
    attempts: i64,
    rcpt: &str,
    res: &RcptResult,
    now: i64,
    stats: &mut RecordStats,
) -> Result<()> {
    let v = verdict(config, job, attempts, rcpt, res, now, stats);
    tx.prepare_cached(
        "UPDATE job_rcpts SET state = ?2, attempts = ?3, next_attempt = ?4, last_reply = ?5,
         updated_at = ?6, timed_out = ?7 WHERE id = ?1",
    )?
    .execute(params![
        id,
        v.state,
        v.attempts,
        v.next_attempt,
        v.reply,
        now,
        v.timed_out as i64
    ])?;
    v.record_bounce(tx, job, rcpt, now)
}

#[allow(clippy::too_many_arguments)]
fn record_batch(
    tx: &Transaction<'_>,
    config: &Config,
    job: &JobInfo,
    id: i64,
    attempts: i64,
    d: &Done,
    now: i64,
    stats: &mut RecordStats,
) -> Result<()> {
    let results = &d.results;
    let n = results.len() as u64;
    let all_not_attempted = results
        .iter()
        .all(|r| matches!(r, RcptResult::NotAttempted(_)));
    if all_not_attempted {
        stats.not_attempted += n;
        let why = match results.first() {
            Some(RcptResult::NotAttempted(w)) => w.clone(),
            _ => String::new(),
        };
        tx.prepare_cached(
            "UPDATE batches SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'active' END,
             last_reply = ?2, updated_at = ?3 WHERE id = ?1",
        )?
        .execute(params![id, why, now])?;
        return Ok(());
    }
    // every recipient deferred with the same reply: the batch waits whole
    if let Some(RcptResult::Deferred(first)) = results.first() {
        let same = results
            .iter()
            .all(|r| matches!(r, RcptResult::Deferred(x) if x == first));
        if same && !expired(config, job, now) {
            stats.deferred += n;
            tx.prepare_cached(
                "UPDATE batches SET state = 'deferred', attempts = ?2, next_attempt = ?3,
                 last_reply = ?4, updated_at = ?5 WHERE id = ?1",
            )?
            .execute(params![
                id,
                attempts + 1,
                now + backoff(config, attempts + 1),
                first,
                now
            ])?;
            return Ok(());
        }
    }
    // otherwise the batch is done; whatever was not sent gets its own row
    let mut sent = 0i64;
    let mut ins = tx.prepare_cached(
        "INSERT INTO job_rcpts(job_id, rcpt, domain, state, attempts, next_attempt, last_reply,
         updated_at, timed_out)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (rcpt, res) in d.work.rcpts.iter().zip(results) {
        let v = verdict(config, job, attempts, rcpt, res, now, stats);
        if matches!(res, RcptResult::Sent) {
            sent += 1;
            continue;
        }
        ins.execute(params![
            job.id,
            rcpt,
            d.work.domain,
            v.state,
            v.attempts,
            v.next_attempt,
            v.reply,
            now,
            v.timed_out as i64
        ])?;
        v.record_bounce(tx, job, rcpt, now)?;
    }
    tx.prepare_cached(
        "UPDATE batches SET state = 'done', sent = ?2, attempts = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, sent, attempts + 1, now])?;
    Ok(())
}
