//! The hold queue's SQL: held posts, their tokens, the accept and ban lists,
//! the moderation log and the reminder clock.
//!
//! Every lookup goes through a primary key or an index (see migration 0005),
//! so each action costs the same however many posts are held. Trusts its
//! callers for list names and addresses; knows nothing of mail.

use crate::store::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// A held post as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    pub list: String,
    /// The `messages` row with the original bytes.
    pub message_id: i64,
    /// `HoldReason::code()`.
    pub reason: String,
    /// The reason in words.
    pub detail: String,
    pub sender: String,
    pub env_from: String,
    /// Where poster notices go; `None` for nobody.
    pub notify: Option<String>,
    pub subject: String,
    pub size: i64,
    pub held_at: i64,
    /// held, approved, rejected, discarded or expired.
    pub state: String,
    pub action: Option<String>,
    pub acted_by: Option<String>,
    pub acted_at: Option<i64>,
    pub note: Option<String>,
}

const HELD_COLUMNS: &str = "id, list, message_id, reason, detail, sender, env_from, notify,
     subject, size, held_at, state, action, acted_by, acted_at, note";

/// The statements every action runs; `tests::action_queries_use_indexes`
/// checks their query plans.
pub(crate) const SQL_GET: &str =
    "SELECT id, list, message_id, reason, detail, sender, env_from, notify,
     subject, size, held_at, state, action, acted_by, acted_at, note FROM held WHERE id = ?1";
pub(crate) const SQL_FINISH: &str =
    "UPDATE held SET state = ?2, action = ?3, acted_by = ?4, acted_at = ?5, note = ?6
     WHERE id = ?1 AND state = 'held'";
pub(crate) const SQL_TOKEN: &str =
    "SELECT list, held_id, action, used_at, used_by FROM mod_tokens WHERE hash = ?1";
pub(crate) const SQL_USE_TOKEN: &str =
    "UPDATE mod_tokens SET used_at = ?2, used_by = ?3 WHERE hash = ?1 AND used_at IS NULL";

fn held_row(r: &Row<'_>) -> rusqlite::Result<Held> {
    Ok(Held {
        id: r.get(0)?,
        list: r.get(1)?,
        message_id: r.get(2)?,
        reason: r.get(3)?,
        detail: r.get(4)?,
        sender: r.get(5)?,
        env_from: r.get(6)?,
        notify: r.get(7)?,
        subject: r.get(8)?,
        size: r.get(9)?,
        held_at: r.get(10)?,
        state: r.get(11)?,
        action: r.get(12)?,
        acted_by: r.get(13)?,
        acted_at: r.get(14)?,
        note: r.get(15)?,
    })
}

/// What `insert_held` stores.
#[derive(Debug, Clone)]
pub struct NewHeld<'a> {
    pub list: &'a str,
    pub message_id: i64,
    pub reason: &'a str,
    pub detail: &'a str,
    pub sender: &'a str,
    pub env_from: &'a str,
    pub notify: Option<&'a str>,
    pub subject: &'a str,
    pub size: i64,
    pub held_at: i64,
}

/// Stores a held post; returns its id.
pub fn insert_held(conn: &Connection, h: &NewHeld<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO held(list, message_id, reason, detail, sender, env_from, notify, subject,
                          size, held_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        h.list,
        h.message_id,
        h.reason,
        h.detail,
        h.sender,
        h.env_from,
        h.notify,
        h.subject,
        h.size,
        h.held_at
    ])?;
    Ok(conn.last_insert_rowid())
}

/// A held post by id, whatever its state.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Held>> {
    Ok(conn
        .prepare_cached(SQL_GET)?
        .query_row([id], held_row)
        .optional()?)
}

/// Closes a held post (new `state`, by `action`), if it is still held.
/// Returns false when another action got there first (first action wins).
#[allow(clippy::too_many_arguments)]
pub fn finish(
    conn: &Connection,
    id: i64,
    state: &str,
    action: &str,
    by: &str,
    note: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = conn
        .prepare_cached(SQL_FINISH)?
        .execute(params![id, state, action, by, now, note])?;
    Ok(n == 1)
}

/// Stores a token's hash for one action on one held post.
pub fn insert_token(
    conn: &Connection,
    hash: &[u8],
    list: &str,
    held_id: i64,
    action: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mod_tokens(hash, list, held_id, action) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![hash, list, held_id, action])?;
    Ok(())
}

/// What a token hash is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub list: String,
    pub held_id: i64,
    pub action: String,
    pub used_at: Option<i64>,
    pub used_by: Option<String>,
}

/// Looks a token up by its hash.
pub fn token(conn: &Connection, hash: &[u8]) -> Result<Option<TokenRow>> {
    Ok(conn
        .prepare_cached(SQL_TOKEN)?
        .query_row([hash], |r| {
            Ok(TokenRow {
                list: r.get(0)?,
                held_id: r.get(1)?,
                action: r.get(2)?,
                used_at: r.get(3)?,
                used_by: r.get(4)?,
            })
        })
        .optional()?)
}

/// Marks a token spent.
pub fn use_token(conn: &Connection, hash: &[u8], by: &str, now: i64) -> Result<()> {
    conn.prepare_cached(SQL_USE_TOKEN)?
        .execute(params![hash, now, by])?;
    Ok(())
}

/// Deletes the tokens of posts closed before `before`; returns how many.
/// Walks the `held_finished` index, oldest first, at most `limit` posts.
pub fn purge_tokens(conn: &Connection, before: i64, limit: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM mod_tokens WHERE held_id IN (
                SELECT id FROM held WHERE state <> 'held' AND acted_at < ?1
                ORDER BY acted_at LIMIT ?2)",
        )?
        .execute(params![before, limit])?)
}

/// Pending posts, oldest first: of one list, or of every list. At most `limit`.
pub fn pending(conn: &Connection, list: Option<&str>, limit: i64) -> Result<Vec<Held>> {
    let rows = match list {
        Some(l) => conn
            .prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM held INDEXED BY held_pending
                 WHERE list = ?1 AND state = 'held' ORDER BY held_at, id LIMIT ?2"
            ))?
            .query_map(params![l, limit], held_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM held INDEXED BY held_pending
                 WHERE state = 'held' ORDER BY list, held_at, id LIMIT ?1"
            ))?
            .query_map(params![limit], held_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(rows)
}

/// Pending posts of a list, newest first, at most `limit`: those held
/// before the post `after` (a page's last id), or from the newest.
pub fn pending_newest(
    conn: &Connection,
    list: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Held>> {
    let (at, id) = match after {
        Some(a) => match get(conn, a)? {
            Some(h) if h.list == list => (h.held_at, h.id),
            _ => return Ok(Vec::new()),
        },
        None => (i64::MAX, i64::MAX),
    };
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {HELD_COLUMNS} FROM held INDEXED BY held_pending
             WHERE list = ?1 AND state = 'held' AND (held_at < ?2 OR (held_at = ?2 AND id < ?3))
             ORDER BY held_at DESC, id DESC LIMIT ?4"
        ))?
        .query_map(params![list, at, id, limit], held_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Pending posts of a list held at or before `cutoff`, oldest first, at most `limit`.
pub fn held_before(conn: &Connection, list: &str, cutoff: i64, limit: i64) -> Result<Vec<Held>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {HELD_COLUMNS} FROM held INDEXED BY held_pending
             WHERE list = ?1 AND state = 'held' AND held_at <= ?2 ORDER BY held_at, id LIMIT ?3"
        ))?
        .query_map(params![list, cutoff, limit], held_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// How many posts a list has pending.
pub fn pending_count(conn: &Connection, list: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM held INDEXED BY held_pending WHERE list = ?1 AND state = 'held'",
        )?
        .query_row([list], |r| r.get(0))?)
}

/// The two per-list sender lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderList {
    /// Posts skip moderation.
    Accept,
    /// Posts are discarded.
    Ban,
}

impl SenderList {
    fn table(self) -> &'static str {
        match self {
            SenderList::Accept => "accept_senders",
            SenderList::Ban => "banned_senders",
        }
    }
}

/// Whether `addr` is on the list's accept or ban list.
pub fn sender_listed(conn: &Connection, which: SenderList, list: &str, addr: &str) -> Result<bool> {
    let key = crate::address::address_key(addr);
    Ok(conn
        .prepare_cached(&format!(
            "SELECT EXISTS(SELECT 1 FROM {} WHERE list = ?1 AND address_key = ?2)",
            which.table()
        ))?
        .query_row(params![list, key], |r| r.get(0))?)
}

/// Adds `addr` to the list's accept or ban list; false if it was already there.
pub fn add_sender(
    conn: &Connection,
    which: SenderList,
    list: &str,
    addr: &str,
    by: &str,
    now: i64,
) -> Result<bool> {
    let key = crate::address::address_key(addr);
    let n = conn
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO {}(list, address_key, address, added_by, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            which.table()
        ))?
        .execute(params![list, key, addr.trim(), by, now])?;
    Ok(n == 1)
}

/// Removes `addr` from the list's accept or ban list; false if it was not there.
pub fn remove_sender(conn: &Connection, which: SenderList, list: &str, addr: &str) -> Result<bool> {
    let key = crate::address::address_key(addr);
    let n = conn
        .prepare_cached(&format!(
            "DELETE FROM {} WHERE list = ?1 AND address_key = ?2",
            which.table()
        ))?
        .execute(params![list, key])?;
    Ok(n == 1)
}

/// Records one moderation attempt.
pub fn log(
    conn: &Connection,
    list: &str,
    held_id: Option<i64>,
    actor: &str,
    action: &str,
    outcome: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mod_log(list, held_id, actor, action, outcome, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![list, held_id, actor, action, outcome, now])?;
    Ok(())
}

/// When the list's moderators were last reminded.
pub fn last_reminder(conn: &Connection, list: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT last_sent FROM mod_reminders WHERE list = ?1")?
        .query_row([list], |r| r.get(0))
        .optional()?)
}

/// Records that the list's moderators were reminded at `now`.
pub fn set_last_reminder(conn: &Connection, list: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mod_reminders(list, last_sent) VALUES (?1, ?2)
         ON CONFLICT(list) DO UPDATE SET last_sent = excluded.last_sent",
    )?
    .execute(params![list, now])?;
    Ok(())
}
