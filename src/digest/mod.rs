//! Digests: posts collected into numbered issues for members in a digest
//! mode, sent as a MIME digest (RFC 2046 §5.1.5) to `digest_mime` members
//! and a plain RFC 1153 digest to `digest_plain` members.
//!
//! - [`accumulate`] (through [`accumulate_job`]) is called by
//!   `posts::distribute`, inside the post's transaction, for every post
//!   distributed while the list's digests are enabled: it records a
//!   `digest_entries` row pointing at the stored, as-distributed bytes and,
//!   when the count or size trigger fires, marks the list's issue due
//!   (`digest_state.due`). It never builds a digest: the post's transaction
//!   stays short.
//! - The digest worker ([`run`]) closes issues in its own transactions:
//!   [`close_due`] when woken (`Wakers::digest`, after each pipeline batch)
//!   for the issues marked due, and [`tick`] periodically for every trigger
//!   (count, size, schedule, `send_empty`, and the due marks) at a given `now`.
//! - [`send_now`] forces an issue (`listd digest send LIST`); [`status`]
//!   reports what is pending (`listd digest status LIST`).
//!
//! Closing an issue ([`close_issue`], in `close.rs`) numbers it, assigns
//! every pending entry to it, builds the bodies, stores each once and queues
//! one outbound job per body with its recipients streamed from `members`,
//! all inside one transaction, so a crash at any point leaves either no
//! issue or a whole one: every post lands in exactly one issue.
//!
//! Deciding is separate from doing: [`decide`] is a pure function of the
//! settings, the pending totals and whether a scheduled time has passed.
//! Trusts the store and the configuration; the posts' bytes are untrusted
//! mail, parsed best-effort by [`item`].

pub mod build_mime;
pub mod build_plain;
mod close;
pub mod encode;
pub mod item;
mod seal;
pub mod text;

use crate::config::schedule::Schedule;
use crate::config::{Config, DigestConfig, ListConfig};
use crate::handler::Ctx;
use crate::store::members::DeliveryMode;
use crate::store::{self, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

pub use close::close_issue;

/// What closed an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `max_messages` posts were pending.
    Count,
    /// `max_bytes` were pending.
    Size,
    /// The scheduled time passed.
    Schedule,
    /// `listd digest send`.
    Forced,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Count => "count",
            Trigger::Size => "size",
            Trigger::Schedule => "schedule",
            Trigger::Forced => "forced",
        }
    }

    /// The trigger named `s` (as [`Trigger::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Trigger> {
        [
            Trigger::Count,
            Trigger::Size,
            Trigger::Schedule,
            Trigger::Forced,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// Posts waiting for the next issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    pub posts: i64,
    pub bytes: i64,
}

/// Decides whether an issue closes now. `schedule_due` is true when a
/// scheduled time has passed since the last one acted on.
pub fn decide(cfg: &DigestConfig, pending: Pending, schedule_due: bool) -> Option<Trigger> {
    if !cfg.enabled {
        return None;
    }
    if pending.posts > 0 && pending.posts >= cfg.max_messages as i64 {
        return Some(Trigger::Count);
    }
    if pending.posts > 0 && pending.bytes >= cfg.max_bytes as i64 {
        return Some(Trigger::Size);
    }
    if schedule_due && (pending.posts > 0 || cfg.send_empty) {
        return Some(Trigger::Schedule);
    }
    None
}

/// An issue that was closed and queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub list: String,
    pub issue_id: i64,
    pub volume: i64,
    pub issue: i64,
    pub trigger: Trigger,
    pub posts: i64,
    pub bytes: i64,
    /// Recipients queued, per format.
    pub mime_rcpts: i64,
    pub plain_rcpts: i64,
    /// Outbound jobs created (one per body).
    pub jobs: Vec<i64>,
}

/// Digest errors.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] build_mime::BuildError),
    #[error("no list named `{0}`")]
    UnknownList(String),
    #[error("digests are disabled for list `{0}` (digest.enabled: false)")]
    Disabled(String),
}

impl From<rusqlite::Error> for DigestError {
    fn from(e: rusqlite::Error) -> Self {
        DigestError::Store(StoreError::Sqlite(e))
    }
}

/// A list's row in `digest_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    volume: i64,
    last_issue: i64,
    period_key: String,
    last_sent_at: Option<i64>,
    schedule_mark: i64,
    /// The trigger a post found firing, until the worker closes the issue.
    due: Option<Trigger>,
}

fn load_state(conn: &Connection, list: &str) -> rusqlite::Result<Option<State>> {
    conn.prepare_cached(
        "SELECT volume, last_issue, period_key, last_sent_at, schedule_mark, due
         FROM digest_state WHERE list = ?1",
    )?
    .query_row([list], |r| {
        Ok(State {
            volume: r.get(0)?,
            last_issue: r.get(1)?,
            period_key: r.get(2)?,
            last_sent_at: r.get(3)?,
            schedule_mark: r.get(4)?,
            due: r
                .get::<_, Option<String>>(5)?
                .as_deref()
                .and_then(Trigger::parse),
        })
    })
    .optional()
}

/// The list's state, created on first use: volume 1, no issue yet, and the
/// schedule counted from the latest scheduled time before `now` (so a new
/// list does not fire for a time that passed before it existed).
fn ensure_state(conn: &Connection, list: &ListConfig, now: i64) -> rusqlite::Result<State> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO digest_state(list, volume, last_issue, period_key, schedule_mark)
         VALUES (?1, 1, 0, ?2, ?3)",
    )?
    .execute(params![
        list.name,
        list.digest.volume_period().key(now),
        list.digest.schedule().last_at_or_before(now).unwrap_or(0)
    ])?;
    load_state(conn, &list.name)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

/// The posts and bytes waiting for the list's next issue.
pub fn pending(conn: &Connection, list: &str) -> Result<Pending, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM digest_entries
             WHERE list = ?1 AND issue_id IS NULL",
        )?
        .query_row([list], |r| {
            Ok(Pending {
                posts: r.get(0)?,
                bytes: r.get(1)?,
            })
        })?)
}

/// Records a distributed post for the list's digest. Call inside the
/// transaction that distributes it, with the id of the stored
/// as-distributed bytes. Does nothing when the list's digests are disabled,
/// or when the post is already recorded. When the count or size trigger
/// fires, marks the issue due and returns the trigger; the digest worker
/// closes it ([`close_due`], [`tick`]) in its own transaction, so the post's
/// transaction never builds a digest.
pub fn accumulate(
    tx: &Connection,
    list: &ListConfig,
    message_id: i64,
    now: i64,
) -> Result<Option<Trigger>, StoreError> {
    record(tx, list, message_id, None, now)
}

/// [`accumulate`], remembering the post's fan-out job (if any), against
/// whose progress members' mode changes are measured (migration 0061).
fn record(
    tx: &Connection,
    list: &ListConfig,
    message_id: i64,
    job_id: Option<i64>,
    now: i64,
) -> Result<Option<Trigger>, StoreError> {
    if !list.digest.enabled {
        return Ok(None);
    }
    ensure_state(tx, list, now)?;
    let size: Option<i64> = tx
        .prepare_cached("SELECT size FROM messages WHERE id = ?1")?
        .query_row([message_id], |r| r.get(0))
        .optional()?;
    let Some(size) = size else {
        return Err(StoreError::Invalid(format!(
            "digest: message {message_id} for list `{}` is not stored",
            list.name
        )));
    };
    let added = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO digest_entries(list, message_id, bytes, added_at, job_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![list.name, message_id, size, now, job_id])?;
    if added == 0 {
        return Ok(None);
    }
    let Some(trigger) = decide(&list.digest, pending(tx, &list.name)?, false) else {
        return Ok(None);
    };
    // the first trigger that fired stays: the issue is due for that reason
    tx.prepare_cached("UPDATE digest_state SET due = COALESCE(due, ?2) WHERE list = ?1")?
        .execute(params![list.name, trigger.as_str()])?;
    Ok(Some(trigger))
}

/// [`accumulate`] for a post whose as-distributed bytes are the body of the
/// outbound job `job_id` (the post's fan-out job), so they are stored once.
pub fn accumulate_job(
    tx: &Connection,
    list: &ListConfig,
    job_id: i64,
    now: i64,
) -> Result<Option<Trigger>, StoreError> {
    if !list.digest.enabled {
        return Ok(None);
    }
    let message_id: Option<i64> = tx
        .prepare_cached("SELECT message_id FROM jobs WHERE id = ?1")?
        .query_row([job_id], |r| r.get(0))
        .optional()?;
    match message_id {
        Some(id) => record(tx, list, id, Some(job_id), now),
        None => Err(StoreError::Invalid(format!(
            "digest: post job {job_id} of list `{}` does not exist",
            list.name
        ))),
    }
}

/// [`accumulate`] for a post stored apart from its fan-out job `job_id`
/// (the post without the list's footer).
pub fn accumulate_post(
    tx: &Connection,
    list: &ListConfig,
    message_id: i64,
    job_id: i64,
    now: i64,
) -> Result<Option<Trigger>, StoreError> {
    record(tx, list, message_id, Some(job_id), now)
}

/// Closes the issues posts marked due (the count or size trigger fired),
/// each list in its own transaction: what the worker does when the pipeline
/// wakes it. Errors are logged per list (the posts stay pending and due;
/// the next wake or [`tick`] retries); the issues closed are returned.
pub fn close_due(ctx: &Ctx, conn: &mut Connection, now: i64) -> Vec<Closed> {
    let due: Vec<String> = match conn
        .prepare_cached("SELECT list FROM digest_state WHERE due IS NOT NULL ORDER BY list")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
    {
        Ok(lists) => lists,
        Err(e) => {
            tracing::error!(error = %e, "reading the due digests failed");
            return Vec::new();
        }
    };
    let lists = due.iter().filter_map(|name| ctx.config.list(name));
    tick_lists(ctx, conn, lists, now)
}

/// Checks every enabled list's triggers at `now` and closes the issues that
/// are due, each list in its own transaction; a disabled list with posts
/// still pending gets a last issue ([`tick_list`]). Errors are logged per list
/// and do not stop the others; the issues closed are returned.
pub fn tick(ctx: &Ctx, conn: &mut Connection, now: i64) -> Vec<Closed> {
    tick_lists(ctx, conn, ctx.config.lists.values(), now)
}

/// [`tick_list`] for each of `lists`, logging errors per list.
fn tick_lists<'a>(
    ctx: &Ctx,
    conn: &mut Connection,
    lists: impl Iterator<Item = &'a ListConfig>,
    now: i64,
) -> Vec<Closed> {
    let mut closed = Vec::new();
    for list in lists {
        match tick_list(ctx, conn, list, now) {
            Ok(Some(c)) => {
                tracing::info!(list = %c.list, volume = c.volume, issue = c.issue, trigger = c.trigger.as_str(), posts = c.posts, "digest sent");
                closed.push(c)
            }
            Ok(None) => {}
            Err(e) => tracing::error!(list = %list.name, error = %e, "digest tick failed"),
        }
    }
    closed
}

/// Checks one list's triggers at `now` and closes its issue if due: the
/// trigger a post marked (`due`), else what [`decide`] says now.
///
/// A list whose digests were turned off while posts were pending: those
/// posts were distributed while digests were on, so digest members never
/// got them. They go out now in a last issue (recorded as `forced`) rather
/// than waiting until digests are turned back on. From then on, digest
/// members get each post (`membership::expand`).
pub fn tick_list(
    ctx: &Ctx,
    conn: &mut Connection,
    list: &ListConfig,
    now: i64,
) -> Result<Option<Closed>, DigestError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !list.digest.enabled {
        if pending(&tx, &list.name)?.posts == 0 {
            return Ok(None);
        }
        tracing::info!(list = %list.name, "digests are disabled: sending the posts still pending in a last issue");
        let closed = close_issue(ctx, &tx, list, Trigger::Forced, now)?;
        tx.commit()?;
        return Ok(closed);
    }
    let st = ensure_state(&tx, list, now)?;
    let due = list
        .digest
        .schedule()
        .last_at_or_before(now)
        .filter(|&t| t > st.schedule_mark);
    if let Some(t) = due {
        tx.execute(
            "UPDATE digest_state SET schedule_mark = ?2 WHERE list = ?1",
            params![list.name, t],
        )?;
    }
    let trigger = match st.due {
        Some(marked) => Some(marked),
        None => decide(&list.digest, pending(&tx, &list.name)?, due.is_some()),
    };
    let closed = match trigger {
        Some(trigger) => close_issue(ctx, &tx, list, trigger, now)?,
        None => None,
    };
    tx.commit()?;
    Ok(closed)
}

/// Forces an issue of `list` now (`listd digest send`). Returns None when
/// nothing is pending and `send_empty` is off.
pub fn send_now(
    ctx: &Ctx,
    conn: &mut Connection,
    list: &str,
    now: i64,
) -> Result<Option<Closed>, DigestError> {
    let cfg = ctx
        .config
        .list(list)
        .ok_or_else(|| DigestError::UnknownList(list.to_string()))?;
    if !cfg.digest.enabled {
        return Err(DigestError::Disabled(cfg.name.clone()));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let closed = close_issue(ctx, &tx, cfg, Trigger::Forced, now)?;
    tx.commit()?;
    Ok(closed)
}

/// What `listd digest status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub list: String,
    pub enabled: bool,
    pub pending: Pending,
    /// The volume of the last issue (1 before any).
    pub volume: i64,
    /// The last issue number sent in that volume (0: none yet).
    pub last_issue: i64,
    pub last_sent_at: Option<i64>,
    pub schedule: Schedule,
    pub next_scheduled: Option<i64>,
    pub max_messages: u32,
    pub max_bytes: u64,
    pub mime_members: i64,
    pub plain_members: i64,
}

/// Reads a list's digest status (read-only).
pub fn status(conn: &Connection, list: &ListConfig, now: i64) -> Result<Status, StoreError> {
    let st = load_state(conn, &list.name)?;
    let count_mode = |mode: DeliveryMode| -> Result<i64, StoreError> {
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM members WHERE list = ?1 AND mode = ?2 AND disabled = 0",
            params![list.name, mode.as_str()],
            |r| r.get(0),
        )?)
    };
    let schedule = list.digest.schedule();
    Ok(Status {
        list: list.name.clone(),
        enabled: list.digest.enabled,
        pending: pending(conn, &list.name)?,
        volume: st.as_ref().map_or(1, |s| s.volume),
        last_issue: st.as_ref().map_or(0, |s| s.last_issue),
        last_sent_at: st.as_ref().and_then(|s| s.last_sent_at),
        schedule,
        next_scheduled: schedule.next_after(now),
        max_messages: list.digest.max_messages,
        max_bytes: list.digest.max_bytes,
        mime_members: count_mode(DeliveryMode::DigestMime)?,
        plain_members: count_mode(DeliveryMode::DigestPlain)?,
    })
}

/// The digest's own header fields: From the list's request address, To and
/// Reply-To the list, the Subject `NAME Digest, Vol V, Issue I`, the list's
/// List-* fields exactly as its posts carry them, and `X-Loop` (values
/// unfolded: the builders fold them).
pub fn digest_headers(
    config: &Config,
    list: &ListConfig,
    volume: i64,
    issue: i64,
    now: i64,
) -> Vec<(String, String)> {
    use rand::distr::{Alphanumeric, SampleString};
    let name = &list.name;
    let domain = config.list_domain(name);
    let request = config.list_suffix_address(name, "request");
    let post = config.list_address(name);
    // the same List-* fields as the list's posts
    let f = config.list_fields(list);
    let mut h = vec![
        ("Date".to_string(), crate::config::schedule::rfc5322(now)),
        ("From".to_string(), request),
        ("To".to_string(), post.clone()),
        ("Reply-To".to_string(), post),
        ("Subject".to_string(), text::title(name, volume, issue)),
        (
            "Message-ID".to_string(),
            format!(
                "<digest.{name}.{volume}.{issue}.{}@{domain}>",
                Alphanumeric.sample_string(&mut rand::rng(), 16)
            ),
        ),
        ("List-Id".to_string(), f.id),
        ("List-Help".to_string(), f.help),
        ("List-Subscribe".to_string(), f.subscribe),
        ("List-Unsubscribe".to_string(), f.unsubscribe),
    ];
    if f.one_click {
        h.push((
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string(),
        ));
    }
    h.push(("List-Post".to_string(), f.post));
    h.push(("List-Owner".to_string(), f.owner));
    if let Some(a) = f.archive {
        h.push(("List-Archive".to_string(), a));
    }
    h.push(("X-Loop".to_string(), f.loop_address));
    h.push(("Precedence".to_string(), "list".to_string()));
    h
}

/// The digest templates lists name explicitly that do not exist (for
/// `listd check`): one error per missing name, placed at its line in the
/// list's file. The default names (`digest-header`, `digest-footer`) are
/// not errors: when missing, and at run time for any missing template, the
/// digest uses built-in text.
pub fn missing_templates(
    config: &Config,
    templates: &crate::templates::Templates,
) -> Vec<crate::config::ConfigError> {
    let mut errors = Vec::new();
    for list in config.lists.values().filter(|l| l.digest.enabled) {
        let text = std::fs::read_to_string(&list.path).unwrap_or_default();
        for (key, name) in [
            ("header", &list.digest.header),
            ("footer", &list.digest.footer),
        ] {
            let default = format!("digest-{key}");
            if name.is_empty() || *name == default || templates.has(Some(&list.name), name) {
                continue;
            }
            // the key's line inside the `digest:` map, when written there
            let after = text.find("digest:").unwrap_or(0);
            let line = crate::config::find_line_from(&text, after, &format!("{key}:"));
            errors.push(crate::config::ConfigError::new(
                &list.path,
                line,
                format!(
                    "digest.{key}: template `{name}` is neither {}/{name}.hbs nor {}/{}/templates/{name}.hbs",
                    config.templates_dir.display(),
                    config.lists_dir.display(),
                    list.name
                ),
            ));
        }
    }
    errors
}

/// Longest the digest worker sleeps between two ticks.
pub const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The digest worker of the daemon: runs [`tick`] at start, at least every
/// [`TICK_EVERY`] and right at each list's next scheduled time, and
/// [`close_due`] whenever woken (`wakers.digest`, after a pipeline batch
/// committed), until `shutdown` turns true; wakes the delivery worker when
/// an issue was queued.
pub async fn run(
    live: impl Into<crate::plumbing::Live>,
    wakers: crate::plumbing::Wakers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let live = live.into();
    let conn = store::open(&live.current().config.db_path())?;
    let conn = std::sync::Arc::new(std::sync::Mutex::new(conn));
    let mut next_tick = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let ctx = live.current();
        let full = tokio::time::Instant::now() >= next_tick;
        let (c, ctx2) = (conn.clone(), ctx.clone());
        let closed = tokio::task::spawn_blocking(move || {
            let mut guard = c
                .lock()
                .map_err(|_| StoreError::Invalid("digest connection poisoned".into()))?;
            let now = store::now();
            Ok::<_, StoreError>(if full {
                tick(&ctx2, &mut guard, now)
            } else {
                close_due(&ctx2, &mut guard, now)
            })
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("digest task: {e}")))??;
        if !closed.is_empty() {
            wakers.delivery.notify_one();
        }
        if full {
            next_tick = tokio::time::Instant::now() + until_next_tick(&ctx, store::now());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next_tick) => {}
            _ = wakers.digest.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// How long until the next full [`tick`]: a second past the next scheduled
/// time of any list, at most [`TICK_EVERY`].
fn until_next_tick(ctx: &Ctx, now: i64) -> std::time::Duration {
    let next = ctx
        .config
        .lists
        .values()
        .filter(|l| l.digest.enabled)
        .filter_map(|l| l.digest.schedule().next_after(now))
        .min();
    match next {
        Some(t) => {
            std::time::Duration::from_secs((t - now).clamp(0, 30) as u64 + 1).min(TICK_EVERY)
        }
        None => TICK_EVERY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_messages: u32, max_bytes: u64, send_empty: bool) -> DigestConfig {
        DigestConfig {
            max_messages,
            max_bytes,
            send_empty,
            ..DigestConfig::default()
        }
    }

    #[test]
    fn decide_is_a_function_of_settings_pending_and_the_clock() {
        let p = |posts, bytes| Pending { posts, bytes };
        let c = cfg(3, 1000, false);
        assert_eq!(decide(&c, p(0, 0), false), None);
        assert_eq!(decide(&c, p(2, 999), false), None);
        assert_eq!(decide(&c, p(3, 10), false), Some(Trigger::Count));
        assert_eq!(decide(&c, p(1, 1000), false), Some(Trigger::Size));
        assert_eq!(decide(&c, p(4, 5000), true), Some(Trigger::Count));
        assert_eq!(decide(&c, p(1, 10), true), Some(Trigger::Schedule));
        assert_eq!(decide(&c, p(0, 0), true), None, "nothing to send");
        assert_eq!(
            decide(&cfg(3, 1000, true), p(0, 0), true),
            Some(Trigger::Schedule)
        );
        assert_eq!(decide(&cfg(3, 1000, true), p(0, 0), false), None);
        let off = DigestConfig {
            enabled: false,
            ..cfg(1, 1, true)
        };
        assert_eq!(decide(&off, p(5, 5000), true), None);
    }
}
