//! Batching: grouping recipients by domain into `batches` rows (one SMTP
//! transaction each), and expanding a fan-out job's membership into them a
//! chunk at a time, its cursor saved in the same transaction, so memory
//! stays bounded and a crash resumes where the last chunk committed.
//!
//! Trusts `crate::membership` for the expansion (nested lists, dedupe,
//! cycles) and the job row for the list and cursor.

use super::finish_job;
use crate::config::Config;
use crate::membership::{self as expand, ExpandOptions};
use crate::store::Result;
use rusqlite::{params, Connection, Transaction};
use std::collections::{HashMap, HashSet};

/// Recipients expanded per transaction of a fan-out job's expansion.
pub const EXPAND_CHUNK: usize = 20_000;

/// Open per-domain batches kept while expanding before all are flushed.
pub const MAX_OPEN_DOMAINS: usize = 512;

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
        finish_job(tx, config, job_id, now)?;
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
        finish_job(tx, config, job_id, now)?;
    }
    Ok(report.emitted)
}
