//! The persistent outbound queue: what is due, what is in flight, what
//! happened to each recipient.
//!
//! Two kinds of rows carry recipients:
//! - `batches`: fan-out recipients, one row per SMTP transaction's worth (one
//!   domain, at most `relay.max_recipients`), written by expansion a chunk at
//!   a time, so a 1M-member post is ~10k small rows, not 1M;
//! - `job_rcpts`: one row per explicit recipient (replies, notices), and the
//!   recipients split out of a batch because they failed or were deferred.
//!
//! States, named like Postfix's queues: `active` (due at `next_attempt`),
//! `deferred` (a try got a temporary failure; due again after backoff),
//! `sending` (in flight: marked before the first byte goes to the relay),
//! then `sent` / `failed` for recipients and `done` for batches. A crash
//! leaves rows `sending`; `recover` puts them back, so they are sent again:
//! the only source of duplicates.
//!
//! Trusts the store's schema; trusts the relay's verdicts as given by the
//! client. All functions take `now` (unix seconds).

use super::client::RcptResult;
use super::expand::{self, ExpandOptions};
use crate::config::Config;
use crate::store::{self, Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Recipients expanded per transaction of a fan-out job's expansion.
pub const EXPAND_CHUNK: usize = 20_000;

/// Open per-domain batches kept while expanding before all are flushed.
pub const MAX_OPEN_DOMAINS: usize = 512;

/// What the worker needs of a job to send it.
#[derive(Debug)]
pub struct JobInfo {
    pub id: i64,
    pub list: Option<String>,
    pub kind: String,
    /// Envelope sender ("" for the null sender).
    pub env_from: String,
    pub verp: bool,
    pub created_at: i64,
    /// The message, stored once, shared by every transaction.
    pub body: Arc<[u8]>,
}

/// Where a unit of work came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A fan-out batch row, and its attempts so far.
    Batch { id: i64, attempts: i64 },
    /// `job_rcpts` rows (id, attempts), one per recipient, same order.
    Rcpts(Vec<(i64, i64)>),
}

/// One SMTP transaction's worth of recipients (one per recipient with VERP).
#[derive(Debug, Clone)]
pub struct Work {
    pub source: Source,
    pub job: Arc<JobInfo>,
    pub domain: String,
    pub rcpts: Vec<String>,
}

/// A finished unit of work: one verdict per recipient.
#[derive(Debug)]
pub struct Done {
    pub work: Work,
    pub results: Vec<RcptResult>,
}

/// Totals of what `record` wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordStats {
    pub sent: u64,
    pub failed: u64,
    pub deferred: u64,
    pub not_attempted: u64,
    pub jobs_done: u64,
}

impl RecordStats {
    pub fn add(&mut self, o: RecordStats) {
        self.sent += o.sent;
        self.failed += o.failed;
        self.deferred += o.deferred;
        self.not_attempted += o.not_attempted;
        self.jobs_done += o.jobs_done;
    }
}

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

/// The envelope sender of a list's posts: `NAME-bounces@domain`.
pub fn bounces_address(config: &Config, list: &str) -> String {
    config.list_suffix_address(list, "bounces")
}

/// The VERP envelope sender for one recipient: `X+user=example.org@D` for
/// base sender `X@D` and recipient `user@example.org`. Falls back to the
/// base sender when the recipient cannot be encoded in a local part.
pub fn verp_sender(base: &str, rcpt: &str) -> String {
    let (Some((bl, bd)), Some((rl, rd))) = (base.rsplit_once('@'), rcpt.rsplit_once('@')) else {
        return base.to_string();
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
    };
    if !plain(rl) || !plain(rd) {
        return base.to_string();
    }
    format!("{bl}+{rl}={}@{bd}", rd.to_ascii_lowercase())
}

/// Queues the fan-out of a list post stored as `message_id`, inside the
/// caller's transaction. Only the job row is written here; the delivery
/// worker expands the membership into batches a chunk at a time (resumable,
/// bounded memory), so the caller's transaction stays short whatever the
/// list's size. Wake `Wakers.delivery` after committing.
pub fn enqueue_post_message(
    conn: &Connection,
    config: &Config,
    list: &str,
    message_id: i64,
    bytes: &[u8],
    now: i64,
) -> Result<i64> {
    let lc = config
        .list(list)
        .ok_or_else(|| StoreError::Invalid(format!("no list `{list}`")))?;
    let env_from = bounces_address(config, &lc.name);
    let skip = if lc.skip_explicit_recipients {
        explicit_recipients(bytes).join("\n")
    } else {
        String::new()
    };
    let job_id = store::outbound::create_job_for_message(
        conn,
        Some(&lc.name),
        store::outbound::JobKind::Post,
        &env_from,
        lc.verp,
        message_id,
        now,
    )?;
    conn.prepare_cached(
        "UPDATE jobs SET expand_list = ?2, expanded = 0, skip_rcpts = ?3 WHERE id = ?1",
    )?
    .execute(params![
        job_id,
        lc.name,
        if skip.is_empty() { None } else { Some(skip) }
    ])?;
    Ok(job_id)
}

/// Stores the (decorated) post once and queues its fan-out, inside the
/// caller's transaction. Returns the job id.
pub fn enqueue_post(
    conn: &Connection,
    config: &Config,
    list: &str,
    bytes: &[u8],
    now: i64,
) -> Result<i64> {
    let lc = config
        .list(list)
        .ok_or_else(|| StoreError::Invalid(format!("no list `{list}`")))?;
    let message_id =
        store::spool::insert_outbound(conn, &bounces_address(config, &lc.name), bytes, now)?;
    enqueue_post_message(conn, config, list, message_id, bytes, now)
}

/// Address keys named in the To and Cc headers of a message.
pub fn explicit_recipients(bytes: &[u8]) -> Vec<String> {
    let Some(msg) = mail_parser::MessageParser::default().parse_headers(bytes) else {
        return vec![];
    };
    let mut keys = Vec::new();
    for h in [msg.to(), msg.cc()].into_iter().flatten() {
        for a in h.iter() {
            if let Some(addr) = a.address() {
                keys.push(crate::address::address_key(addr));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Puts everything left `sending` (by a crash, or a pass that could not
/// record) back in line. Returns how many rows were recovered.
pub fn recover(conn: &Connection, now: i64) -> Result<usize> {
    let a = conn.execute(
        "UPDATE batches SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'active' END,
                updated_at = ?1 WHERE state = 'sending'",
        [now],
    )?;
    let b = conn.execute(
        "UPDATE job_rcpts SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'active' END,
                updated_at = ?1 WHERE state = 'sending'",
        [now],
    )?;
    Ok(a + b)
}

/// Job bodies and envelopes, cached by the worker across claims.
#[derive(Default)]
pub struct JobCache {
    jobs: HashMap<i64, Arc<JobInfo>>,
}

impl JobCache {
    fn get(&mut self, conn: &Connection, id: i64) -> Result<Option<Arc<JobInfo>>> {
        if let Some(j) = self.jobs.get(&id) {
            return Ok(Some(j.clone()));
        }
        if self.jobs.len() >= 256 {
            self.jobs.clear();
        }
        let row = conn
            .prepare_cached(
                "SELECT j.list, j.kind, j.env_from, j.verp, j.created_at, m.bytes
                 FROM jobs j JOIN messages m ON m.id = j.message_id WHERE j.id = ?1",
            )?
            .query_row([id], |r| {
                Ok(JobInfo {
                    id,
                    list: r.get(0)?,
                    kind: r.get(1)?,
                    env_from: r.get(2)?,
                    verp: r.get::<_, i64>(3)? != 0,
                    created_at: r.get(4)?,
                    body: Arc::from(r.get::<_, Vec<u8>>(5)?),
                })
            })
            .optional()?;
        Ok(row.map(|j| {
            let j = Arc::new(j);
            self.jobs.insert(id, j.clone());
            j
        }))
    }

    fn forget(&mut self, id: i64) {
        self.jobs.remove(&id);
    }
}

/// Records finished work and claims up to `want` units of due work, in one
/// transaction. Claimed rows are marked `sending` before they are returned.
pub fn sync(
    conn: &mut Connection,
    config: &Config,
    cache: &mut JobCache,
    done: Vec<Done>,
    want: usize,
    now: i64,
) -> Result<(RecordStats, Vec<Work>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stats = record(&tx, config, cache, done, now)?;
    let works = if want > 0 {
        claim(&tx, config, cache, want, now)?
    } else {
        vec![]
    };
    tx.commit()?;
    Ok((stats, works))
}

/// Claimed explicit recipients of one job and domain: (job, domain, (row id, attempts), rcpts).
type Group = (i64, String, Vec<(i64, i64)>, Vec<String>);

fn claim(
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

/// Groups recipients by domain into `batches` rows of at most `max`
/// recipients (one SMTP transaction each), writing each full batch as a
/// row; memory is bounded by [`MAX_OPEN_DOMAINS`] open batches. Used by the
/// fan-out's expansion and by the digest's recipient groups. Call
/// [`Batcher::finish`] to write the batches still open.
pub struct Batcher<'c> {
    conn: &'c Connection,
    job_id: i64,
    max: usize,
    open: HashMap<String, Vec<String>>,
    now: i64,
    /// Batch rows written so far.
    pub rows: u64,
    /// Recipients pushed so far.
    pub rcpts: u64,
}

impl<'c> Batcher<'c> {
    /// Batches for `job_id`, at most `max` (at least 1) recipients each.
    pub fn new(conn: &'c Connection, job_id: i64, max: usize, now: i64) -> Batcher<'c> {
        Batcher {
            conn,
            job_id,
            max: max.max(1),
            open: HashMap::new(),
            now,
            rows: 0,
            rcpts: 0,
        }
    }

    /// Adds one recipient address (its domain compared without case).
    pub fn push(&mut self, address: &str) -> Result<()> {
        let domain_of = |a: &str| {
            a.rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default()
        };
        let domain = domain_of(address);
        if !self.open.contains_key(&domain) && self.open.len() >= MAX_OPEN_DOMAINS {
            self.flush_all()?;
        }
        self.rcpts += 1;
        let v = self.open.entry(domain).or_default();
        v.push(address.to_string());
        if v.len() >= self.max {
            let full = std::mem::take(v);
            let domain = domain_of(address);
            self.open.remove(&domain);
            self.write(domain, full)?;
        }
        Ok(())
    }

    fn write(&mut self, domain: String, rcpts: Vec<String>) -> Result<()> {
        if rcpts.is_empty() {
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO batches(job_id, domain, rcpts, n, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                self.job_id,
                domain,
                rcpts.join("\n"),
                rcpts.len() as i64,
                self.now
            ])?;
        self.rows += 1;
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        let mut open: Vec<(String, Vec<String>)> = self.open.drain().collect();
        open.sort();
        for (d, v) in open {
            self.write(d, v)?;
        }
        Ok(())
    }

    /// Writes the batches still open; returns (batch rows, recipients).
    pub fn finish(mut self) -> Result<(u64, u64)> {
        self.flush_all()?;
        Ok((self.rows, self.rcpts))
    }
}

/// Expands up to `chunk` more recipients of a fan-out job into batches and
/// advances its cursor, inside `tx`. Returns the recipients expanded.
pub fn expand_chunk(
    tx: &Transaction<'_>,
    config: &Config,
    job_id: i64,
    chunk: usize,
    now: i64,
) -> Result<u64> {
    let (list, cursor, skip): (Option<String>, Option<String>, Option<String>) = tx.query_row(
        "SELECT expand_list, expand_cursor, skip_rcpts FROM jobs WHERE id = ?1",
        [job_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let Some(list) = list.filter(|l| config.list(l).is_some()) else {
        tracing::error!(
            job = job_id,
            "fan-out job names a list that no longer exists; nothing to expand"
        );
        tx.execute("UPDATE jobs SET expanded = 1 WHERE id = ?1", [job_id])?;
        finish_if_done(tx, job_id, now)?;
        return Ok(0);
    };
    let opts = ExpandOptions {
        all_members: false,
        skip: skip
            .as_deref()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect::<HashSet<_>>(),
        after: cursor,
    };
    let mut batcher = Batcher::new(tx, job_id, config.relay.max_recipients, now);
    let mut err = None;
    let mut n = 0usize;
    let report = expand::expand(tx, config, &list, &opts, |r| {
        if let Err(e) = batcher.push(&r.address) {
            err = Some(e);
            return false;
        }
        n += 1;
        n < chunk
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let (batches, _) = batcher.finish()?;
    let complete = report.complete;
    tx.prepare_cached("UPDATE jobs SET expand_cursor = ?2, expanded = ?3 WHERE id = ?1")?
        .execute(params![
            job_id,
            report.last_key.or(opts.after),
            complete as i64
        ])?;
    tracing::debug!(job = job_id, list = %list, recipients = report.emitted, batches, complete, "expanded");
    if complete {
        finish_if_done(tx, job_id, now)?;
    }
    Ok(report.emitted)
}

/// Marks a job done when it is fully expanded and nothing of it is pending.
pub fn finish_if_done(conn: &Connection, job_id: i64, now: i64) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'done', done_at = ?2
             WHERE id = ?1 AND state = 'active' AND expanded = 1
               AND NOT EXISTS (SELECT 1 FROM batches WHERE job_id = ?1
                               AND state IN ('active', 'deferred', 'sending'))
               AND NOT EXISTS (SELECT 1 FROM job_rcpts WHERE job_id = ?1
                               AND state IN ('active', 'deferred', 'sending'))",
        )?
        .execute(params![job_id, now])?;
    Ok(n == 1)
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
        if finish_if_done(tx, job, now)? {
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
         updated_at = ?6 WHERE id = ?1",
    )?
    .execute(params![
        id,
        v.state,
        v.attempts,
        v.next_attempt,
        v.reply,
        now
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
        "INSERT INTO job_rcpts(job_id, rcpt, domain, state, attempts, next_attempt, last_reply, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
            now
        ])?;
        v.record_bounce(tx, job, rcpt, now)?;
    }
    tx.prepare_cached(
        "UPDATE batches SET state = 'done', sent = ?2, attempts = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, sent, attempts + 1, now])?;
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

/// Makes every deferred recipient and batch due now (`listd queue retry`).
pub fn retry_now(conn: &Connection, now: i64) -> Result<usize> {
    let a = conn.execute(
        "UPDATE batches SET next_attempt = ?1 WHERE state = 'deferred'",
        [now],
    )?;
    let b = conn.execute(
        "UPDATE job_rcpts SET next_attempt = ?1 WHERE state = 'deferred'",
        [now],
    )?;
    Ok(a + b)
}

/// What `listd queue` shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Inbound recipients waiting for the pipeline.
    pub incoming: i64,
    /// Inbound rows that failed permanently.
    pub corrupt: i64,
    /// Posts waiting for a moderator (the `held` table).
    pub hold: i64,
    /// Outbound recipients due (or waiting to be expanded into batches).
    pub active: i64,
    /// Outbound recipients in flight to the relay.
    pub sending: i64,
    /// Outbound recipients waiting to retry.
    pub deferred: i64,
    pub sent: i64,
    pub failed: i64,
    /// Fan-out jobs whose membership is still being expanded.
    pub expanding_jobs: i64,
    /// When the next deferred retry falls due.
    pub next_retry: Option<i64>,
}

/// Reads the queue counts. Outbound counts are recipients.
pub fn summary(conn: &Connection, _now: i64) -> Result<Summary> {
    let mut s = Summary::default();
    for (state, c) in crate::store::spool::incoming_counts(conn)? {
        match state.as_str() {
            "incoming" | "active" => s.incoming += c,
            "corrupt" => s.corrupt += c,
            _ => {}
        }
    }
    let mut add = |state: &str, c: i64| match state {
        "active" => s.active += c,
        "sending" => s.sending += c,
        "deferred" => s.deferred += c,
        "sent" => s.sent += c,
        "failed" => s.failed += c,
        _ => {}
    };
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM job_rcpts GROUP BY state")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (st, c) = row?;
        add(&st, c);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT state, SUM(CASE state WHEN 'done' THEN sent ELSE n END) FROM batches GROUP BY state",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (st, c) = row?;
        add(if st == "done" { "sent" } else { &st }, c);
    }
    s.hold = conn.query_row("SELECT COUNT(*) FROM held WHERE state = 'held'", [], |r| {
        r.get(0)
    })?;
    s.expanding_jobs = conn.query_row("SELECT COUNT(*) FROM jobs WHERE expanded = 0", [], |r| {
        r.get(0)
    })?;
    let a: Option<i64> = conn.query_row(
        "SELECT MIN(next_attempt) FROM batches WHERE state = 'deferred'",
        [],
        |r| r.get(0),
    )?;
    let b: Option<i64> = conn.query_row(
        "SELECT MIN(next_attempt) FROM job_rcpts WHERE state = 'deferred'",
        [],
        |r| r.get(0),
    )?;
    s.next_retry = match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (x, None) | (None, x) => x,
    };
    Ok(s)
}

impl Summary {
    /// The table `listd queue` prints.
    pub fn render(&self, now: i64) -> String {
        let mut out = String::new();
        let mut line = |name: &str, n: i64, what: String| {
            out.push_str(&format!("{name:<10} {n:>10}  {what}\n"));
        };
        line(
            "incoming",
            self.incoming,
            "inbound recipients waiting for the pipeline".into(),
        );
        let mut active = "outbound recipients queued for the relay".to_string();
        if self.sending > 0 {
            active.push_str(&format!(" ({} in flight)", self.sending));
        }
        if self.expanding_jobs > 0 {
            active.push_str(&format!(
                "; {} fan-out job(s) still expanding their membership",
                self.expanding_jobs
            ));
        }
        line("active", self.active + self.sending, active);
        let mut deferred = "outbound recipients waiting to retry".to_string();
        if let Some(t) = self.next_retry {
            deferred.push_str(&format!(" (next try in {}s)", (t - now).max(0)));
        }
        line("deferred", self.deferred, deferred);
        line(
            "hold",
            self.hold,
            "posts waiting for a moderator (`listd held`)".into(),
        );
        line(
            "corrupt",
            self.corrupt,
            "inbound mail that could not be processed".into(),
        );
        line(
            "sent",
            self.sent,
            "outbound recipients accepted by the relay".into(),
        );
        line(
            "failed",
            self.failed,
            "outbound recipients refused or given up".into(),
        );
        out
    }
}
