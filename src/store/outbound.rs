//! The outbound queue's tables: `jobs` (one body to send) and `job_rcpts`
//! (one row per recipient, with its delivery state).
//!
//! This file holds the SQL for enqueueing; the delivery module drains the
//! queue and owns the state transitions.

use super::Result;
use rusqlite::{params, Connection};

/// What kind of mail a job is; used in logs and `listd queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A distributed list post.
    Post,
    /// A robot reply to a command mail.
    Reply,
    /// A notice to owners, moderators or a poster.
    Notice,
    /// A digest issue.
    Digest,
    /// Mail forwarded to the owners (`NAME-owner@`).
    Forward,
}

impl JobKind {
    /// The kind named by `as_str`; None for any other text.
    pub fn parse(s: &str) -> Option<JobKind> {
        [
            JobKind::Post,
            JobKind::Reply,
            JobKind::Notice,
            JobKind::Digest,
            JobKind::Forward,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Post => "post",
            JobKind::Reply => "reply",
            JobKind::Notice => "notice",
            JobKind::Digest => "digest",
            JobKind::Forward => "forward",
        }
    }
}

/// A message to send to explicit recipients.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub list: Option<&'a str>,
    pub kind: JobKind,
    /// Envelope sender; "" for the null sender.
    pub env_from: &'a str,
    pub verp: bool,
    /// The complete message, headers and body, CRLF line ends.
    pub bytes: &'a [u8],
}

/// Stores the body once and creates the job with no recipients yet.
/// Returns (job id, message id).
pub fn create_job(conn: &Connection, job: &NewJob<'_>, now: i64) -> Result<(i64, i64)> {
    let message_id = super::spool::insert_outbound(conn, job.env_from, job.bytes, now)?;
    let job_id = create_job_for_message(
        conn,
        job.list,
        job.kind,
        job.env_from,
        job.verp,
        message_id,
        now,
    )?;
    Ok((job_id, message_id))
}

/// Creates a job that sends an already stored message.
pub fn create_job_for_message(
    conn: &Connection,
    list: Option<&str>,
    kind: JobKind,
    env_from: &str,
    verp: bool,
    message_id: i64,
    now: i64,
) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO jobs(list, kind, message_id, env_from, verp, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        list,
        kind.as_str(),
        message_id,
        env_from,
        verp as i64,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Adds recipients to a job, due now.
pub fn add_rcpts<'r>(
    conn: &Connection,
    job_id: i64,
    rcpts: impl IntoIterator<Item = &'r str>,
) -> Result<usize> {
    let mut stmt =
        conn.prepare_cached("INSERT INTO job_rcpts(job_id, rcpt, domain) VALUES (?1, ?2, ?3)")?;
    let mut n = 0;
    for r in rcpts {
        let domain = r
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        stmt.execute(params![job_id, r, domain])?;
        n += 1;
    }
    Ok(n)
}

/// Queues a message to explicit recipients (replies, notices, forwards).
/// Call inside the caller's transaction so the state change that caused the
/// mail and the mail itself commit together.
pub fn enqueue(conn: &Connection, job: &NewJob<'_>, rcpts: &[&str], now: i64) -> Result<i64> {
    let (job_id, _) = create_job(conn, job, now)?;
    add_rcpts(conn, job_id, rcpts.iter().copied())?;
    Ok(job_id)
}

/// Records who asked for job `job_id` (a robot command's sender): where a
/// report goes if its delivery fails.
pub fn set_requester(conn: &Connection, job_id: i64, requester: &str) -> Result<()> {
    conn.prepare_cached("UPDATE jobs SET requester = ?2 WHERE id = ?1")?
        .execute(params![job_id, requester])?;
    Ok(())
}

/// Counts of outbound recipients by state, for `listd queue`.
pub fn rcpt_counts(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt =
        conn.prepare("SELECT state, COUNT(*) FROM job_rcpts GROUP BY state ORDER BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod kind_tests {
    use super::JobKind;

    #[test]
    fn every_kind_parses_back_and_nothing_else_does() {
        for k in [
            JobKind::Post,
            JobKind::Reply,
            JobKind::Notice,
            JobKind::Digest,
            JobKind::Forward,
        ] {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(JobKind::parse("Post"), None);
        assert_eq!(JobKind::parse(""), None);
    }
}
