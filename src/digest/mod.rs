//! Digests: posts collected into numbered issues for members in a digest
//! mode, sent as a MIME digest (RFC 2046 §5.1.5) to `digest_mime` members
//! and a plain RFC 1153 digest to `digest_plain` members.
//!
//! - [`accumulate`] (through [`accumulate_job`]) is called by
//!   `posts::distribute`, inside the
//!   post's transaction, for every post distributed while the list's digests
//!   are enabled: it records a `digest_entries` row pointing at the stored,
//!   as-distributed bytes, and closes the issue there and then when the count
//!   or size trigger fires.
//! - [`tick`] runs periodically in the daemon: count, size and schedule
//!   triggers (and `send_empty`), evaluated at a given `now`.
//! - [`send_now`] forces an issue (`listd digest send LIST`); [`status`]
//!   reports what is pending (`listd digest status LIST`).
//!
//! Closing an issue ([`close_issue`]) numbers it, assigns every pending
//! entry to it, builds the bodies, stores each once and queues one outbound
//! job per body with its recipients streamed from `members` — all inside the
//! caller's transaction, so a crash at any point leaves either no issue or
//! a whole one: every post lands in exactly one issue.
//!
//! Deciding is separate from doing: [`decide`] is a pure function of the
//! settings, the pending totals and whether a scheduled time has passed.
//! Trusts the store and the configuration; the posts' bytes are untrusted
//! mail, parsed best-effort by [`item`].

pub mod build_mime;
pub mod build_plain;
pub mod encode;
pub mod item;
pub mod text;

use crate::config::schedule::Schedule;
use crate::config::{Config, DigestConfig, ListConfig, PostingPolicy};
use crate::handler::Ctx;
use crate::store::members::DeliveryMode;
use crate::store::outbound::{self, JobKind};
use crate::store::{self, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

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
}

fn load_state(conn: &Connection, list: &str) -> rusqlite::Result<Option<State>> {
    conn.prepare_cached(
        "SELECT volume, last_issue, period_key, last_sent_at, schedule_mark
         FROM digest_state WHERE list = ?1",
    )?
    .query_row([list], |r| {
        Ok(State {
            volume: r.get(0)?,
            last_issue: r.get(1)?,
            period_key: r.get(2)?,
            last_sent_at: r.get(3)?,
            schedule_mark: r.get(4)?,
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
/// or when the post is already recorded. Closes the issue when the count or
/// size trigger fires; a failure to close leaves the post pending (the
/// post's transaction goes on; [`tick`] retries) and is logged.
pub fn accumulate(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    message_id: i64,
    now: i64,
) -> Result<Option<Closed>, StoreError> {
    record(ctx, tx, list, message_id, None, now)
}

/// [`accumulate`], remembering the post's fan-out job (if any), against
/// whose progress members' mode changes are measured (migration 0061).
fn record(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    message_id: i64,
    job_id: Option<i64>,
    now: i64,
) -> Result<Option<Closed>, StoreError> {
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
    tx.execute_batch("SAVEPOINT digest_close")?;
    match close_issue(ctx, tx, list, trigger, now) {
        Ok(closed) => {
            tx.execute_batch("RELEASE digest_close")?;
            Ok(closed)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO digest_close; RELEASE digest_close")?;
            tracing::error!(list = %list.name, error = %e, "closing the digest issue failed; the posts stay pending");
            Ok(None)
        }
    }
}

/// [`accumulate`] for a post whose as-distributed bytes are the body of the
/// outbound job `job_id` (the post's fan-out job), so they are stored once.
pub fn accumulate_job(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    job_id: i64,
    now: i64,
) -> Result<Option<Closed>, StoreError> {
    if !list.digest.enabled {
        return Ok(None);
    }
    let message_id: Option<i64> = tx
        .prepare_cached("SELECT message_id FROM jobs WHERE id = ?1")?
        .query_row([job_id], |r| r.get(0))
        .optional()?;
    match message_id {
        Some(id) => record(ctx, tx, list, id, Some(job_id), now),
        None => Err(StoreError::Invalid(format!(
            "digest: post job {job_id} of list `{}` does not exist",
            list.name
        ))),
    }
}

/// Checks every enabled list's triggers at `now` and closes the issues that
/// are due, each list in its own transaction; a disabled list with posts
/// still pending gets a last issue ([`tick_list`]). Errors are logged per list
/// and do not stop the others; the issues closed are returned.
pub fn tick(ctx: &Ctx, conn: &mut Connection, now: i64) -> Vec<Closed> {
    let mut closed = Vec::new();
    for list in ctx.config.lists.values() {
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

/// Checks one list's triggers at `now` and closes its issue if due.
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
    let closed = match decide(&list.digest, pending(&tx, &list.name)?, due.is_some()) {
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
/// Reply-To the list, the Subject `NAME Digest, Vol V, Issue I`, and the
/// list's List-* fields (RFC 2369, RFC 2919).
pub fn digest_headers(
    config: &Config,
    list: &ListConfig,
    volume: i64,
    issue: i64,
    now: i64,
) -> Vec<(String, String)> {
    use rand::distr::{Alphanumeric, SampleString};
    let name = &list.name;
    let domain = &config.domain;
    let request = config.list_suffix_address(name, "request");
    let post = config.list_address(name);
    let list_id = crate::mime::header_block::fold_str(
        &crate::mime::list_id::field_value(
            &list.description,
            &crate::mime::list_id::id(name, domain),
        ),
        "List-Id".len(),
        "\r\n",
    );
    let mut h = vec![
        ("Date".to_string(), encode::rfc5322_date(now)),
        ("From".to_string(), request.clone()),
        ("To".to_string(), post.clone()),
        ("Reply-To".to_string(), post.clone()),
        ("Subject".to_string(), text::title(name, volume, issue)),
        (
            "Message-ID".to_string(),
            format!(
                "<digest.{name}.{volume}.{issue}.{}@{domain}>",
                Alphanumeric.sample_string(&mut rand::rng(), 16)
            ),
        ),
        ("List-Id".to_string(), list_id),
        (
            "List-Post".to_string(),
            if list.posting == PostingPolicy::Announce {
                "NO (only moderators post to this list)".to_string()
            } else {
                format!("<mailto:{post}>")
            },
        ),
        (
            "List-Help".to_string(),
            format!("<mailto:{request}?subject=help>"),
        ),
        (
            "List-Subscribe".to_string(),
            format!("<mailto:{request}?subject=subscribe>"),
        ),
        (
            "List-Unsubscribe".to_string(),
            format!("<mailto:{request}?subject=unsubscribe>"),
        ),
        (
            "List-Owner".to_string(),
            format!("<mailto:{}>", config.list_suffix_address(name, "owner")),
        ),
    ];
    if let Some(url) = &config.web.archive_url {
        h.push((
            "List-Archive".to_string(),
            format!("<{}/{name}/>", url.trim_end_matches('/')),
        ));
    }
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

/// Built-in text used when a list's header template is missing or fails.
const FALLBACK_HEADER: &str = "Send {{list}} mailing list submissions to\n    {{list_address}}\n\nFor help, write to {{request_address}} with the word `help`.\nThe list's owners are at {{owner_address}}.\n\nWhen replying, please edit your Subject line so it is more specific\nthan \"Re: Contents of {{list}} digest...\"\n";
/// Built-in text used when a list's footer template is missing or fails.
const FALLBACK_FOOTER: &str = "{{list}} mailing list\n{{list_address}}\nTo leave the list or change how you get it, write to {{request_address}}\n";

fn render(
    ctx: &Ctx,
    list: &ListConfig,
    name: &str,
    fallback: &str,
    data: &serde_json::Value,
) -> String {
    if name.is_empty() {
        return String::new();
    }
    match ctx.templates.render(Some(&list.name), name, data) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(list = %list.name, template = name, error = %e, "digest template failed; using the built-in text");
            let mut h = handlebars::Handlebars::new();
            h.register_escape_fn(handlebars::no_escape);
            h.render_template(fallback, data).unwrap_or_default()
        }
    }
}

/// A group of recipients sharing one body: those whose watermark lies in
/// `[lo, hi)` (members) or the given addresses (leavers).
enum Rcpts<'a> {
    Members {
        mode: DeliveryMode,
        lo: i64,
        hi: i64,
    },
    Listed(&'a [String]),
}

/// Stores one body, creates its job and writes its recipients (streamed
/// from `members`) as batches. Returns (job id, recipients), or None when
/// the group turned out empty (then nothing is left behind).
#[allow(clippy::too_many_arguments)]
fn queue_body(
    ctx: &Ctx,
    conn: &Connection,
    list: &ListConfig,
    issue_id: i64,
    format: &str,
    posts: usize,
    body: &[u8],
    rcpts: Rcpts<'_>,
    now: i64,
) -> Result<Option<(i64, i64)>, StoreError> {
    let env_from = ctx.config.list_suffix_address(&list.name, "bounces");
    let message_id = store::spool::insert_outbound(conn, &env_from, body, now)?;
    let job_id = outbound::create_job_for_message(
        conn,
        Some(&list.name),
        JobKind::Digest,
        &env_from,
        list.verp,
        message_id,
        now,
    )?;
    // grouped by domain, relay.max_recipients each: the fan-out's batcher
    let mut batches =
        crate::delivery::queue::Batcher::new(conn, job_id, ctx.config.relay.max_recipients, now);
    match rcpts {
        Rcpts::Members { mode, lo, hi } => {
            let mut stmt = conn.prepare_cached(
                "SELECT address FROM members
                 WHERE list = ?1 AND mode = ?2 AND disabled = 0
                   AND digest_after >= ?3 AND digest_after < ?4
                 ORDER BY address_key",
            )?;
            let mut rows = stmt.query(params![list.name, mode.as_str(), lo, hi])?;
            while let Some(r) = rows.next()? {
                batches.push(&r.get::<_, String>(0)?)?;
            }
        }
        Rcpts::Listed(addrs) => {
            for a in addrs {
                batches.push(a)?;
            }
        }
    }
    let n = batches.finish()?.1 as i64;
    if n == 0 {
        // Nobody after all: leave no empty job and no orphan body.
        conn.execute("DELETE FROM jobs WHERE id = ?1", [job_id])?;
        conn.execute("DELETE FROM messages WHERE id = ?1", [message_id])?;
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO digest_jobs(issue_id, format, job_id, message_id, posts, recipients)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        issue_id,
        format,
        job_id,
        message_id,
        posts as i64,
        n
    ])?;
    Ok(Some((job_id, n)))
}

/// Closes the list's current issue inside the caller's transaction: numbers
/// it (a new volume when the volume period changed), assigns every pending
/// entry to it, builds the MIME and plain bodies each recipient group needs,
/// stores each once and queues it to its recipients. Returns None (and
/// changes nothing) when nothing is pending and `send_empty` is off.
pub fn close_issue(
    ctx: &Ctx,
    conn: &Connection,
    list: &ListConfig,
    trigger: Trigger,
    now: i64,
) -> Result<Option<Closed>, DigestError> {
    let st = ensure_state(conn, list, now)?;
    let pend = pending(conn, &list.name)?;
    if pend.posts == 0 && !list.digest.send_empty {
        return Ok(None);
    }
    let key = list.digest.volume_period().key(now);
    let (volume, issue) = if st.last_issue > 0 && key != st.period_key {
        (st.volume + 1, 1)
    } else {
        (st.volume, st.last_issue + 1)
    };
    conn.execute(
        "UPDATE digest_state SET volume = ?2, last_issue = ?3, period_key = ?4, last_sent_at = ?5
         WHERE list = ?1",
        params![list.name, volume, issue, key, now],
    )?;
    conn.execute(
        "INSERT INTO digest_issues(list, volume, issue, trigger, closed_at, posts, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            list.name,
            volume,
            issue,
            trigger.as_str(),
            now,
            pend.posts,
            pend.bytes
        ],
    )?;
    let issue_id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE digest_entries SET issue_id = ?2 WHERE list = ?1 AND issue_id IS NULL",
        params![list.name, issue_id],
    )?;

    // The posts, in the order they were distributed.
    let mut ids: Vec<i64> = Vec::new();
    let mut raws: Vec<Vec<u8>> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT e.id, m.bytes FROM digest_entries e JOIN messages m ON m.id = e.message_id
             WHERE e.list = ?1 AND e.issue_id = ?2 ORDER BY e.id",
        )?;
        let mut rows = stmt.query(params![list.name, issue_id])?;
        while let Some(r) = rows.next()? {
            ids.push(r.get(0)?);
            raws.push(r.get(1)?);
        }
    }
    if ids.len() as i64 != pend.posts {
        return Err(StoreError::Invalid(format!(
            "digest: {} entries pending for `{}` but {} have stored bytes",
            pend.posts,
            list.name,
            ids.len()
        ))
        .into());
    }
    let items: Vec<item::Item<'_>> = raws.iter().map(|r| item::Item::parse(r)).collect();

    let data = serde_json::json!({
        "list": list.name,
        "description": list.description,
        "list_address": ctx.config.list_address(&list.name),
        "request_address": ctx.config.list_suffix_address(&list.name, "request"),
        "owner_address": ctx.config.list_suffix_address(&list.name, "owner"),
        "volume": volume,
        "issue": issue,
        "title": text::title(&list.name, volume, issue),
        "date": encode::rfc5322_date(now),
        "posts": ids.len(),
    });
    let header_text = render(ctx, list, &list.digest.header, FALLBACK_HEADER, &data);
    let footer_text = render(ctx, list, &list.digest.footer, FALLBACK_FOOTER, &data);
    let build = |format: &str, subset: &[item::Item<'_>]| -> Result<Vec<u8>, DigestError> {
        let headers = digest_headers(&ctx.config, list, volume, issue, now);
        let d = text::Digest {
            list: &list.name,
            volume,
            issue,
            now,
            headers: &headers,
            header_text: &header_text,
            footer_text: &footer_text,
        };
        Ok(if format == "mime" {
            build_mime::build(&d, subset, &mut encode::random_boundary)?
        } else {
            build_plain::build(&d, subset)
        })
    };

    let mut closed = Closed {
        list: list.name.clone(),
        issue_id,
        volume,
        issue,
        trigger,
        posts: pend.posts,
        bytes: pend.bytes,
        mime_rcpts: 0,
        plain_rcpts: 0,
        jobs: Vec::new(),
    };
    let count = |format: &str, job: Option<(i64, i64)>, closed: &mut Closed| {
        if let Some((job_id, n)) = job {
            closed.jobs.push(job_id);
            if format == "mime" {
                closed.mime_rcpts += n;
            } else {
                closed.plain_rcpts += n;
            }
        }
    };

    for (mode, format) in [
        (DeliveryMode::DigestMime, "mime"),
        (DeliveryMode::DigestPlain, "plain"),
    ] {
        // Members get the entries after their watermark: group them by how
        // many of this issue's entries that skips (`cut`).
        let mut groups: Vec<(usize, i64, i64)> = Vec::new();
        if ids.is_empty() {
            groups.push((0, i64::MIN, i64::MAX));
        } else {
            let first = ids[0];
            let last = ids[ids.len() - 1];
            groups.push((0, i64::MIN, first));
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT digest_after FROM members
                 WHERE list = ?1 AND mode = ?2 AND disabled = 0
                   AND digest_after >= ?3 AND digest_after < ?4",
            )?;
            let marks: Vec<i64> = stmt
                .query_map(params![list.name, mode.as_str(), first, last], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut cuts: Vec<usize> = marks
                .iter()
                .map(|&m| ids.partition_point(|&id| id <= m))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            for cut in cuts {
                groups.push((cut, ids[cut - 1], ids[cut]));
            }
        }
        for (cut, lo, hi) in groups {
            let any: bool = conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM members WHERE list = ?1 AND mode = ?2 AND disabled = 0
                   AND digest_after >= ?3 AND digest_after < ?4)",
                params![list.name, mode.as_str(), lo, hi],
                |r| r.get(0),
            )?;
            if !any {
                continue;
            }
            let subset = &items[cut..];
            let body = build(format, subset)?;
            let job = queue_body(
                ctx,
                conn,
                list,
                issue_id,
                format,
                subset.len(),
                &body,
                Rcpts::Members { mode, lo, hi },
                now,
            )?;
            count(format, job, &mut closed);
        }
    }

    // Members who went back to one mail per post while entries they were
    // owed were pending: one last digest with just those entries.
    let leavers: Vec<(String, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT address, mode, after_entry, upto_entry FROM digest_leavers
             WHERE list = ?1 ORDER BY mode, after_entry, upto_entry, id",
        )?
        .query_map([&list.name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut i = 0;
    while i < leavers.len() {
        let (_, mode, after, upto) = &leavers[i];
        let mut j = i;
        let mut addrs = Vec::new();
        while j < leavers.len()
            && (&leavers[j].1, leavers[j].2, leavers[j].3) == (mode, *after, *upto)
        {
            addrs.push(leavers[j].0.clone());
            j += 1;
        }
        let lo = ids.partition_point(|&id| id <= *after);
        let hi = ids.partition_point(|&id| id <= *upto);
        if hi > lo {
            let format = if mode == "digest_plain" {
                "plain"
            } else {
                "mime"
            };
            let body = build(format, &items[lo..hi])?;
            let job = queue_body(
                ctx,
                conn,
                list,
                issue_id,
                format,
                hi - lo,
                &body,
                Rcpts::Listed(&addrs),
                now,
            )?;
            count(format, job, &mut closed);
        }
        i = j;
    }
    conn.execute("DELETE FROM digest_leavers WHERE list = ?1", [&list.name])?;
    Ok(Some(closed))
}

/// Longest the digest worker sleeps between two ticks.
pub const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The digest worker of the daemon: runs [`tick`] at start, at least every
/// [`TICK_EVERY`] and right at each list's next scheduled time, until
/// `shutdown` turns true; wakes the delivery worker when an issue was queued.
pub async fn run(
    live: impl Into<crate::plumbing::Live>,
    wakers: crate::plumbing::Wakers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let live = live.into();
    let conn = store::open(&live.current().config.db_path())?;
    let conn = std::sync::Arc::new(std::sync::Mutex::new(conn));
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let ctx = live.current();
        let (c, ctx2) = (conn.clone(), ctx.clone());
        let closed = tokio::task::spawn_blocking(move || {
            let mut guard = c
                .lock()
                .map_err(|_| StoreError::Invalid("digest connection poisoned".into()))?;
            Ok::<_, StoreError>(tick(&ctx2, &mut guard, store::now()))
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("digest task: {e}")))??;
        if !closed.is_empty() {
            wakers.delivery.notify_one();
        }
        let now = store::now();
        let next = ctx
            .config
            .lists
            .values()
            .filter(|l| l.digest.enabled)
            .filter_map(|l| l.digest.schedule().next_after(now))
            .min();
        let wait = match next {
            Some(t) => {
                std::time::Duration::from_secs((t - now).clamp(0, 30) as u64 + 1).min(TICK_EVERY)
            }
            None => TICK_EVERY,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
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
