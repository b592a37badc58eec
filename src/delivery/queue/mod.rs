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
//! This file holds the types the worker sees, the job cache, `sync` (record
//! finished work and claim more in one transaction) and the state changes
//! the others share; by verb: `enqueue` (a post's fan-out job), `batch`
//! (expanding the membership into batch rows), `claim` (handing out due
//! work), `record` (writing the relay's verdicts, backoff, give-up) and
//! `summary` (what `listd queue` shows and retries).
//!
//! Trusts the store's schema; trusts the relay's verdicts as given by the
//! client. All functions take `now` (unix seconds).

mod batch;
mod claim;
mod enqueue;
mod record;
mod summary;

pub use batch::{expand_chunk, Batcher, EXPAND_CHUNK, MAX_OPEN_DOMAINS};
pub use claim::next_due;
pub use enqueue::{bounces_address, enqueue_post, enqueue_post_message, explicit_recipients};
pub use record::{backoff, record};
pub use summary::{retry_now, summary, QueueSummary};

use super::client::RcptResult;
use crate::config::Config;
use crate::store::outbound::JobKind;
use crate::store::Result;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::sync::Arc;

/// What the worker needs of a job to send it.
#[derive(Debug)]
pub struct JobInfo {
    pub id: i64,
    pub list: Option<String>,
    pub kind: JobKind,
    /// Envelope sender ("" for the null sender).
    pub env_from: String,
    pub verp: bool,
    pub created_at: i64,
    /// The message, stored once, shared by every transaction.
    pub body: Arc<[u8]>,
    /// The message as signed (`crate::dkim`), made once by the first
    /// transaction that sends it; `None` inside when no key signs it.
    pub signed: std::sync::OnceLock<Option<Arc<[u8]>>>,
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
                    kind: {
                        let k: String = r.get(1)?;
                        JobKind::parse(&k).ok_or_else(|| {
                            rusqlite::Error::FromSqlConversionFailure(
                                1,
                                rusqlite::types::Type::Text,
                                format!("unknown job kind `{k}`").into(),
                            )
                        })?
                    },
                    env_from: r.get(2)?,
                    verp: r.get::<_, i64>(3)? != 0,
                    created_at: r.get(4)?,
                    body: Arc::from(r.get::<_, Vec<u8>>(5)?),
                    signed: std::sync::OnceLock::new(),
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
        claim::claim(&tx, config, cache, want, now)?
    } else {
        vec![]
    };
    tx.commit()?;
    Ok((stats, works))
}

/// Marks a job done when it is fully expanded and nothing of it is
/// pending, and queues the delivery report its failures call for
/// (`crate::delivery::dsn`), in the same transaction.
pub fn finish_job(conn: &Connection, config: &Config, job_id: i64, now: i64) -> Result<bool> {
    if !finish_if_done(conn, job_id, now)? {
        return Ok(false);
    }
    crate::delivery::dsn::on_job_done(conn, config, job_id, now)?;
    Ok(true)
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
