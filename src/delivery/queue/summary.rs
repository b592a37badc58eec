//! What `listd queue` shows (`summary`, `QueueSummary::render`: the counts
//! of each queue, outbound ones in recipients) and what `listd queue retry`
//! does (`retry_now`: every deferred row due now).
//!
//! Trusts the store's counts; changes nothing but `next_attempt`.

use crate::store::Result;
use rusqlite::Connection;

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
pub struct QueueSummary {
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
pub fn summary(conn: &Connection, _now: i64) -> Result<QueueSummary> {
    let mut s = QueueSummary::default();
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

impl QueueSummary {
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
