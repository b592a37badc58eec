//! The rate log (`rate_events`): one row per counted event in a named
//! bucket, and budgets checked against it. The robot's replies, poster
//! notices, moderator notices and failed `Approved:` passwords all count
//! here, so every limit survives a restart.
//!
//! Bucket names are built by the callers from keys they normalised; this
//! module trusts them as opaque strings. Every query is a seek on the
//! `(bucket, at)` index.

use rusqlite::{params, Connection};

use super::Result;

pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// At most `limit` events in `bucket` per `window` seconds (0: no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub bucket: String,
    pub limit: u32,
    pub window: i64,
}

impl Budget {
    pub fn hourly(bucket: impl Into<String>, limit: u32) -> Budget {
        Budget {
            bucket: bucket.into(),
            limit,
            window: HOUR,
        }
    }

    pub fn daily(bucket: impl Into<String>, limit: u32) -> Budget {
        Budget {
            bucket: bucket.into(),
            limit,
            window: DAY,
        }
    }

    /// Whether `used` events leave room for one more.
    pub fn allows(&self, used: i64) -> bool {
        self.limit == 0 || used < i64::from(self.limit)
    }
}

/// Events in `bucket` in the `window` seconds up to `now`.
pub fn count(conn: &Connection, bucket: &str, window: i64, now: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM rate_events WHERE bucket = ?1 AND at > ?2")?
        .query_row(params![bucket, now - window], |r| r.get(0))?)
}

/// The first budget that has no room left, if any.
pub fn exhausted<'a>(
    conn: &Connection,
    budgets: &'a [Budget],
    now: i64,
) -> Result<Option<&'a Budget>> {
    for b in budgets {
        if b.limit > 0 && !b.allows(count(conn, &b.bucket, b.window, now)?) {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// Records one event in `bucket`.
pub fn record(conn: &Connection, bucket: &str, now: i64) -> Result<()> {
    conn.prepare_cached("INSERT INTO rate_events(bucket, at) VALUES (?1, ?2)")?
        .execute(params![bucket, now])?;
    Ok(())
}

/// Records one event against every budget when all have room; otherwise
/// records nothing and returns the budget that had none.
pub fn take<'a>(conn: &Connection, budgets: &'a [Budget], now: i64) -> Result<Option<&'a Budget>> {
    if let Some(b) = exhausted(conn, budgets, now)? {
        return Ok(Some(b));
    }
    for b in budgets {
        record(conn, &b.bucket, now)?;
    }
    Ok(None)
}

/// When the last event in `bucket` happened.
pub fn latest(conn: &Connection, bucket: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT MAX(at) FROM rate_events WHERE bucket = ?1")?
        .query_row([bucket], |r| r.get(0))?)
}

/// Forgets every event in `bucket`; returns how many there were.
pub fn clear(conn: &Connection, bucket: &str) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM rate_events WHERE bucket = ?1")?
        .execute([bucket])?)
}

/// Forgets events older than a day (the longest window). Rows are written
/// in time order, so this deletes the id range before the first recent row
/// (a rowid range, not a table scan; a few old rows after it wait for the
/// next call).
pub fn purge(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM rate_events WHERE id < COALESCE(
                (SELECT id FROM rate_events WHERE at > ?1 ORDER BY id LIMIT 1),
                (SELECT MAX(id) + 1 FROM rate_events))",
        )?
        .execute([now - DAY])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(c: &Connection) -> i64 {
        c.query_row("SELECT COUNT(*) FROM rate_events", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn hourly_budget_per_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        let a = [Budget::hourly("a", 3)];
        for i in 0..3 {
            assert_eq!(take(&conn, &a, 1000 + i).unwrap(), None);
        }
        assert_eq!(take(&conn, &a, 1010).unwrap(), Some(&a[0]));
        assert_eq!(take(&conn, &[Budget::hourly("b", 3)], 1010).unwrap(), None);
        // an hour after the first, one slot frees up
        assert_eq!(take(&conn, &a, 1000 + HOUR).unwrap(), None);
        assert!(take(&conn, &a, 1000 + HOUR).unwrap().is_some());
        // no limit: recorded, never refused
        assert_eq!(
            take(&conn, &[Budget::hourly("a", 0)], 1001 + HOUR).unwrap(),
            None
        );
        assert_eq!(count(&conn, "a", HOUR, 1001 + HOUR).unwrap(), 3);
        assert_eq!(latest(&conn, "a").unwrap(), Some(1001 + HOUR));
        assert_eq!(latest(&conn, "zz").unwrap(), None);
        assert_eq!(rows(&conn), 6);
    }

    #[test]
    fn all_or_nothing_and_daily_windows() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        let both = [Budget::hourly("x", 10), Budget::daily("y", 2)];
        assert_eq!(take(&conn, &both, 0).unwrap(), None);
        assert_eq!(take(&conn, &both, 2 * HOUR).unwrap(), None);
        // y is spent for the day: nothing is recorded in x either
        assert_eq!(take(&conn, &both, 3 * HOUR).unwrap(), Some(&both[1]));
        assert_eq!(count(&conn, "x", DAY, 3 * HOUR).unwrap(), 2);
        assert_eq!(take(&conn, &both, DAY + 1).unwrap(), None);
        assert_eq!(clear(&conn, "y").unwrap(), 3);
        assert_eq!(count(&conn, "y", DAY, DAY + 1).unwrap(), 0);
    }

    /// Budgets and the lockout are read on every post and command mail:
    /// each lookup must seek the (bucket, at) index, never scan the table.
    #[test]
    fn lookups_seek_the_bucket_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        for sql in [
            "SELECT COUNT(*) FROM rate_events WHERE bucket = 'k' AND at > 0",
            "SELECT MAX(at) FROM rate_events WHERE bucket = 'k'",
            "DELETE FROM rate_events WHERE bucket = 'k'",
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(
                plan.contains("USING") && plan.contains("rate_events_by_bucket"),
                "{sql}: {plan}"
            );
        }
    }

    #[test]
    fn purge_keeps_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        for t in [0, 10, HOUR, DAY + 5] {
            record(&conn, "k", t).unwrap();
        }
        assert_eq!(purge(&conn, DAY + 20).unwrap(), 2);
        assert_eq!(rows(&conn), 2);
        assert_eq!(purge(&conn, 3 * DAY).unwrap(), 2);
        assert_eq!(purge(&conn, 3 * DAY).unwrap(), 0);
    }
}
