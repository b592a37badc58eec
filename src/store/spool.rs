//! The inbound spool: message bytes stored once in `messages`, and one
//! `incoming` queue row per routed envelope recipient.

use super::Result;
use rusqlite::{params, Connection, OptionalExtension};

/// The envelope of an accepted message, as the SMTP session recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path; empty for the null sender `<>`.
    pub mail_from: String,
    /// Routed recipients, in RCPT order.
    pub rcpts: Vec<(String, RouteParts)>,
    /// The client's IP address, if it came over TCP.
    pub client_ip: Option<String>,
    /// The HELO/EHLO/LHLO name.
    pub helo: String,
    /// `ESMTP`, `SMTP`, `LMTP` or `local`.
    pub protocol: String,
}

/// A recipient's route in the spool's plain terms: `routing::Route` splits
/// into these (`kind`, its list and its tag) and is rebuilt from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteParts {
    pub kind: String,
    pub list: Option<String>,
    pub tag: Option<String>,
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: i64,
    pub received_at: i64,
    pub env_from: String,
    pub client_ip: Option<String>,
    pub helo: Option<String>,
    pub bytes: Vec<u8>,
}

/// Stores an inbound message and queues one `incoming` row per recipient.
/// Call inside a transaction; the caller commits (group commit).
pub fn insert_inbound(conn: &Connection, env: &Envelope, bytes: &[u8], now: i64) -> Result<i64> {
    let mut ins = conn.prepare_cached(
        "INSERT INTO messages(direction, received_at, env_from, client_ip, helo, protocol, size, bytes)
         VALUES ('in', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    ins.execute(params![
        now,
        env.mail_from,
        env.client_ip,
        env.helo,
        env.protocol,
        bytes.len() as i64,
        bytes
    ])?;
    let id = conn.last_insert_rowid();
    let mut q = conn.prepare_cached(
        "INSERT INTO incoming(message_id, rcpt, route, list, tag, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (rcpt, route) in &env.rcpts {
        q.execute(params![id, rcpt, route.kind, route.list, route.tag, now])?;
    }
    Ok(id)
}

/// The authentication verdict intake recorded with an inbound message, in
/// the store's plain terms (`auth::AuthVerdict` reads and writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRow {
    /// `pass`, `fail`, `none`, `temperror` or `permerror`.
    pub dmarc: String,
    /// `absent`, `none`, `quarantine`, `reject` or `unknown`.
    pub policy: String,
    pub from_domain: String,
}

/// Records the verdict of message `id` (in the spool writer's transaction).
pub fn record_auth(conn: &Connection, id: i64, row: &AuthRow) -> Result<()> {
    conn.prepare_cached(
        "UPDATE messages SET auth_dmarc = ?2, auth_policy = ?3, auth_from = ?4 WHERE id = ?1",
    )?
    .execute(params![id, row.dmarc, row.policy, row.from_domain])?;
    Ok(())
}

/// The verdict recorded with message `id`, if it was checked.
pub fn load_auth(conn: &Connection, id: i64) -> Result<Option<AuthRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT auth_dmarc, auth_policy, auth_from FROM messages
             WHERE id = ?1 AND auth_dmarc IS NOT NULL",
        )?
        .query_row([id], |r| {
            Ok(AuthRow {
                dmarc: r.get(0)?,
                policy: r.get(1)?,
                from_domain: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })
        .optional()?)
}

/// Stores a body listd itself composed (a reply, a decorated post, a digest).
pub fn insert_outbound(conn: &Connection, env_from: &str, bytes: &[u8], now: i64) -> Result<i64> {
    let mut ins = conn.prepare_cached(
        "INSERT INTO messages(direction, received_at, env_from, protocol, size, bytes)
         VALUES ('out', ?1, ?2, 'local', ?3, ?4)",
    )?;
    ins.execute(params![now, env_from, bytes.len() as i64, bytes])?;
    Ok(conn.last_insert_rowid())
}

/// Loads a message by id.
pub fn load(conn: &Connection, id: i64) -> Result<Option<StoredMessage>> {
    Ok(conn
        .query_row(
            "SELECT id, received_at, env_from, client_ip, helo, bytes FROM messages WHERE id = ?1",
            [id],
            |r| {
                Ok(StoredMessage {
                    id: r.get(0)?,
                    received_at: r.get(1)?,
                    env_from: r.get(2)?,
                    client_ip: r.get(3)?,
                    helo: r.get(4)?,
                    bytes: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Counts of the incoming queue by state, for `listd queue`.
pub fn incoming_counts(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt =
        conn.prepare("SELECT state, COUNT(*) FROM incoming GROUP BY state ORDER BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A row of the incoming queue that moved to `corrupt`, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRow {
    pub id: i64,
    pub message_id: i64,
    pub rcpt: String,
    pub error: String,
}

/// The newest `limit` corrupt incoming rows, newest first, for `listd queue`.
pub fn corrupt_rows(conn: &Connection, limit: usize) -> Result<Vec<CorruptRow>> {
    corrupt_query(conn, "ORDER BY id DESC LIMIT ?1", limit as i64)
}

/// One corrupt incoming row.
pub fn corrupt_row(conn: &Connection, id: i64) -> Result<Option<CorruptRow>> {
    Ok(corrupt_query(conn, "AND id = ?1", id)?.pop())
}

/// Puts corrupt rows back in the incoming queue, due now, with their
/// failure counts cleared (`None`: every corrupt row). Returns how many.
pub fn retry_corrupt(conn: &Connection, id: Option<i64>, now: i64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE incoming SET state = 'incoming', attempts = 0, inflight = 0, error = NULL,
                             updated_at = ?2
         WHERE state = 'corrupt' AND (?1 IS NULL OR id = ?1)",
        params![id, now],
    )?)
}

/// Deletes corrupt rows (`None`: every one); their message bodies go with
/// the retention clean-up once nothing refers to them. Returns how many.
pub fn delete_corrupt(conn: &Connection, id: Option<i64>) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM incoming WHERE state = 'corrupt' AND (?1 IS NULL OR id = ?1)",
        params![id],
    )?)
}

fn corrupt_query(conn: &Connection, tail: &str, arg: i64) -> Result<Vec<CorruptRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, message_id, rcpt, COALESCE(error, '') FROM incoming
         WHERE state = 'corrupt' {tail}"
    ))?;
    let rows = stmt.query_map([arg], |r| {
        Ok(CorruptRow {
            id: r.get(0)?,
            message_id: r.get(1)?,
            rcpt: r.get(2)?,
            error: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
