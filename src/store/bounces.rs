//! Bounce processing's tables: `bounces` (one row per bounce mail or per
//! recipient it names), `bounce_scores` (per member: score, the day last
//! counted, and a disabled member's probes) and the pending
//! `bounce_events` the outbound queue records. Every statement is a seek on
//! a primary key or an index.
//!
//! Trusts its callers for checked values (keys computed by `address`).

use super::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// A bounce to record.
#[derive(Debug, Clone)]
pub struct NewBounce<'a> {
    pub list: &'a str,
    pub message_id: i64,
    pub tag: Option<&'a str>,
    pub recipient: Option<&'a str>,
    pub status: Option<&'a str>,
    pub diagnostic: Option<&'a str>,
    pub kind: &'a str,
    pub env_from: &'a str,
    pub received_at: i64,
}

/// Records one bounce; returns its id.
pub fn insert(conn: &Connection, b: &NewBounce<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO bounces(list, message_id, tag, recipient, status, diagnostic, kind, env_from,
                             received_at, processed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)",
    )?
    .execute(params![
        b.list,
        b.message_id,
        b.tag,
        b.recipient,
        b.status,
        b.diagnostic,
        b.kind,
        b.env_from,
        b.received_at
    ])?;
    Ok(conn.last_insert_rowid())
}

/// One recorded bounce, as `listd bounces` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BounceRow {
    pub id: i64,
    pub recipient: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub diagnostic: Option<String>,
    pub received_at: i64,
    /// Whether the body is still kept.
    pub has_body: bool,
}

/// The newest `limit` bounces of a list, newest first.
pub fn recent(conn: &Connection, list: &str, limit: usize) -> Result<Vec<BounceRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, recipient, status, kind, diagnostic, received_at, message_id IS NOT NULL
         FROM bounces WHERE list = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![list, limit as i64], |r| {
        Ok(BounceRow {
            id: r.get(0)?,
            recipient: r.get(1)?,
            status: r.get(2)?,
            kind: r.get(3)?,
            diagnostic: r.get(4)?,
            received_at: r.get(5)?,
            has_body: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A member's bounce record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Score {
    pub list: String,
    pub address_key: String,
    pub address: String,
    pub score: f64,
    pub counted: i64,
    pub last_day: Option<i64>,
    pub last_bounce_at: Option<i64>,
    pub last_status: Option<String>,
    pub disabled_at: Option<i64>,
    pub probes: u32,
    pub next_probe_at: Option<i64>,
}

const SCORE_COLS: &str = "list, address_key, address, score, counted, last_day, last_bounce_at,
    last_status, disabled_at, probes, next_probe_at";

fn score_row(r: &Row<'_>) -> rusqlite::Result<Score> {
    Ok(Score {
        list: r.get(0)?,
        address_key: r.get(1)?,
        address: r.get(2)?,
        score: r.get(3)?,
        counted: r.get(4)?,
        last_day: r.get(5)?,
        last_bounce_at: r.get(6)?,
        last_status: r.get(7)?,
        disabled_at: r.get(8)?,
        probes: r.get(9)?,
        next_probe_at: r.get(10)?,
    })
}

/// The score row of a member, if it ever bounced.
pub fn score(conn: &Connection, list: &str, key: &str) -> Result<Option<Score>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SCORE_COLS} FROM bounce_scores WHERE list = ?1 AND address_key = ?2"
        ))?
        .query_row(params![list, key], score_row)
        .optional()?)
}

/// Writes a score row (insert or replace).
pub fn put_score(conn: &Connection, s: &Score) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO bounce_scores({SCORE_COLS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        s.list,
        s.address_key,
        s.address,
        s.score,
        s.counted,
        s.last_day,
        s.last_bounce_at,
        s.last_status,
        s.disabled_at,
        s.probes,
        s.next_probe_at
    ])?;
    Ok(())
}

/// Forgets a member's score (re-enabled or removed). Returns whether there was one.
pub fn clear_score(conn: &Connection, list: &str, key: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM bounce_scores WHERE list = ?1 AND address_key = ?2")?
        .execute(params![list, key])?
        == 1)
}

/// Every score row of a list, in address order.
pub fn scores(conn: &Connection, list: &str) -> Result<Vec<Score>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SCORE_COLS} FROM bounce_scores WHERE list = ?1 ORDER BY address_key"
    ))?;
    let rows = stmt.query_map([list], score_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Disabled members whose next probe (or removal) is due at `now`.
pub fn probes_due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Score>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SCORE_COLS} FROM bounce_scores INDEXED BY bounce_scores_probe_due
         WHERE next_probe_at IS NOT NULL AND next_probe_at <= ?1 ORDER BY next_probe_at LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64], score_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A refusal the outbound queue recorded (`bounce_events`), not yet scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEvent {
    pub id: i64,
    pub list: Option<String>,
    pub address: String,
    /// `failed` (a 5xx) or `expired` (a 4xx past give-up).
    pub kind: String,
    pub reason: String,
}

/// The oldest `limit` events not yet processed.
pub fn pending_events(conn: &Connection, limit: usize) -> Result<Vec<QueueEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, list, address, kind, reason FROM bounce_events
         WHERE processed = 0 ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok(QueueEvent {
            id: r.get(0)?,
            list: r.get(1)?,
            address: r.get(2)?,
            kind: r.get(3)?,
            reason: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Marks an event processed.
pub fn event_done(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("UPDATE bounce_events SET processed = 1 WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Lets go of the bodies of at most `limit` bounces received before
/// `before` (the rows stay; the bodies go with the next unreferenced-body
/// sweep). Returns how many.
pub fn release_bodies(conn: &Connection, before: i64, limit: usize) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE bounces SET message_id = NULL WHERE id IN (
                 SELECT id FROM bounces INDEXED BY bounces_body_by_age
                 WHERE message_id IS NOT NULL AND received_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit as i64])?)
}

/// Re-enables a member's delivery and forgets its bounce score. Returns
/// false if the address is not a member.
pub fn enable(conn: &Connection, list: &str, key: &str) -> Result<bool> {
    if !super::members::set_disabled(conn, list, key, false)? {
        return Ok(false);
    }
    clear_score(conn, list, key)?;
    Ok(true)
}
