//! The mail moderation sends: the notice to moderators (with the original
//! attached byte-identical as message/rfc822), the notices to posters (held,
//! rejected, expired), the reminder, and the answers to moderators' replies.
//! Bodies come from handlebars templates; this file builds the MIME around
//! them with mail-builder and queues them with `store::outbound::enqueue`.
//!
//! Trusts the templates (site admin / list owner); trusts nothing in the
//! original message, whose summary is decoded by mail-parser and rendered as
//! plain data (control characters removed from anything put in a header).
//! A poster's address is only a claim: notices to it are limited per
//! mailbox per day (`robot.poster_notices_per_day`) and quote the post's
//! Subject only to a member of some list here.

use super::held::Held;
use super::{HoldReason, ModAction};
use crate::config::ListConfig;
use crate::delivery::dsn::report::{report_part, DeliveryStatus, RecipientStatus};
use crate::handler::{Ctx, HandlerError};
use crate::store::outbound::{self, JobKind, NewJob};
use crate::store::rate::{self, Budget};
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;
use mail_parser::MessageParser;
use rusqlite::Connection;
use serde::Serialize;

/// Template names (templates/NAME.hbs, overridable per list).
pub const T_NOTICE: &str = "moderation-notice";
pub const T_HELD: &str = "moderation-held";
pub const T_REJECTED: &str = "moderation-rejected";
pub const T_EXPIRED: &str = "moderation-expired";
pub const T_REMINDER: &str = "moderation-reminder";
pub const T_RESULT: &str = "moderation-result";
pub const T_SUMMARY: &str = "moderation-summary";
pub const T_LOCKOUT: &str = "moderation-lockout";
pub const T_CONFIRM: &str = "moderation-confirm";

/// Lines of the original's text shown in the notice.
const EXCERPT_LINES: usize = 12;
const EXCERPT_CHARS: usize = 800;

/// What moderators and the hold queue see of a post.
#[derive(Debug, Clone, Default)]
pub struct PostSummary {
    /// The From: address, else the envelope sender.
    pub sender: String,
    /// The From: header as a display string (name and address).
    pub from_display: String,
    pub subject: String,
    /// The first lines of the text.
    pub excerpt: String,
    /// Whether the post was sent by an automaton (Auto-Submitted, Precedence
    /// bulk/junk/list): such posters get no notices (RFC 3834).
    pub automated: bool,
}

impl PostSummary {
    /// Summarises a message; never fails (unparseable parts are left empty).
    pub fn of(bytes: &[u8], env_from: &str) -> PostSummary {
        let Some(m) = MessageParser::default().parse(bytes) else {
            return PostSummary {
                sender: env_from.to_string(),
                from_display: env_from.to_string(),
                ..PostSummary::default()
            };
        };
        let first = m.from().and_then(|a| a.first());
        let addr = first.and_then(|a| a.address()).map(str::to_string);
        let sender = addr
            .clone()
            .filter(|a| crate::address::Address::parse(a).is_ok())
            .unwrap_or_else(|| env_from.to_string());
        let from_display = match (first.and_then(|a| a.name()), addr) {
            (Some(n), Some(a)) => format!("{} <{a}>", one_line(n)),
            (None, Some(a)) => a,
            _ => env_from.to_string(),
        };
        let subject = m.subject().map(one_line).unwrap_or_default();
        let excerpt = m
            .body_text(0)
            .map(|t| {
                let mut s: String = t.lines().take(EXCERPT_LINES).collect::<Vec<_>>().join("\n");
                if s.chars().count() > EXCERPT_CHARS {
                    s = s.chars().take(EXCERPT_CHARS).collect::<String>() + " [...]";
                }
                s
            })
            .unwrap_or_default();
        PostSummary {
            sender,
            from_display: one_line(&from_display),
            subject: truncate(&subject, 200),
            excerpt,
            automated: is_automated(&m),
        }
    }
}

/// RFC 3834 auto-submitted, or bulk/junk/list precedence.
pub fn is_automated(m: &mail_parser::Message<'_>) -> bool {
    let header = |name: &str| {
        m.header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    };
    let auto = header("Auto-Submitted");
    let prec = header("Precedence");
    (!auto.is_empty() && !auto.starts_with("no"))
        || ["bulk", "junk", "list"].contains(&prec.as_str())
}

/// Removes control characters (CR, LF, ...) and trims.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "..."
    }
}

/// A unix time as `YYYY-MM-DD HH:MM UTC`.
pub fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// A size in bytes as `12345 bytes (12 KB)`.
fn fmt_size(n: i64) -> String {
    if n >= 1024 * 1024 {
        format!("{n} bytes ({:.1} MB)", n as f64 / (1024.0 * 1024.0))
    } else if n >= 1024 {
        format!("{n} bytes ({} KB)", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Age as `3d 4h` / `5h 10m` / `12m`.
pub fn fmt_age(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    }
}

/// A message listd writes.
pub(super) struct Outgoing<'a> {
    pub list: &'a ListConfig,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// The original, attached as message/rfc822 byte-identical.
    pub attach: Option<&'a [u8]>,
    pub in_reply_to: Option<String>,
    /// Where a plain reply goes (a confirmation's token address).
    pub reply_to: Option<String>,
}

/// Builds the message bytes; with `report`, the text goes out as a
/// multipart/report (`crate::delivery::dsn::report`) instead of plain text
/// or an attachment.
fn build(
    ctx: &Ctx,
    o: &Outgoing<'_>,
    now: i64,
    report: Option<(&DeliveryStatus<'_>, Option<&[u8]>)>,
) -> Result<Vec<u8>, HandlerError> {
    let domain = ctx.config.list_domain(&o.list.name);
    let from = ctx.config.list_suffix_address(&o.list.name, "owner");
    let msgid = format!(
        "listd.mod.{}.{now}@{domain}",
        super::token::generate().map_err(HandlerError::Temporary)?
    );
    let mut b = MessageBuilder::new()
        .from((format!("{} moderation", o.list.name), from))
        .to(o.to.clone())
        .subject(one_line(&o.subject))
        .date(now)
        .message_id(msgid)
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("X-Loop", Raw::new(ctx.config.list_address(&o.list.name)));
    if let Some(r) = &o.in_reply_to {
        b = b.in_reply_to(r.clone());
    }
    if let Some(r) = &o.reply_to {
        b = b.reply_to(r.clone());
    }
    let b = match (report, o.attach) {
        (Some((status, headers)), _) => b.body(report_part(o.text.clone(), status, headers)),
        (None, None) => b.text_body(o.text.clone()),
        (None, Some(original)) => {
            // A boundary that cannot occur in the attached original.
            let boundary = loop {
                let candidate = format!(
                    "listd-{}",
                    super::token::generate().map_err(HandlerError::Temporary)?
                );
                if !contains(original, candidate.as_bytes()) {
                    break candidate;
                }
            };
            let text = MimePart::new("text/plain", o.text.clone()).inline();
            let attached = MimePart::new(
                ContentType::new("message/rfc822"),
                BodyPart::Binary(original.into()),
            )
            .transfer_encoding("8bit")
            .attachment("original.eml");
            b.body(MimePart::new(
                ContentType::new("multipart/mixed").attribute("boundary", boundary),
                vec![text, attached],
            ))
        }
    };
    b.write_to_vec()
        .map_err(|e| HandlerError::Temporary(format!("building a moderation mail: {e}")))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Queues a built message from `NAME-bounces@` to `to`.
/// A plain text notice to the list's moderators (its owners when it has
/// none), without attachment: what the flood summary and the `Approved:`
/// lockout send.
pub(super) fn tell_moderators(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    subject: String,
    text: String,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    send(
        ctx,
        tx,
        &Outgoing {
            list,
            to: moderator_rcpts(list),
            subject,
            text,
            attach: None,
            in_reply_to: None,
            reply_to: None,
        },
        now,
    )
}

pub(super) fn send(
    ctx: &Ctx,
    tx: &Connection,
    o: &Outgoing<'_>,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    if o.to.is_empty() {
        return Ok(None);
    }
    let bytes = build(ctx, o, now, None)?;
    let env_from = ctx.config.list_suffix_address(&o.list.name, "bounces");
    queue(tx, o, &env_from, &bytes, now)
}

/// Queues built `bytes` for `o.to` with envelope sender `env_from`.
fn queue(
    tx: &Connection,
    o: &Outgoing<'_>,
    env_from: &str,
    bytes: &[u8],
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let rcpts: Vec<&str> = o.to.iter().map(String::as_str).collect();
    let job = outbound::enqueue(
        tx,
        &NewJob {
            list: Some(&o.list.name),
            kind: JobKind::Notice,
            env_from,
            verp: false,
            bytes,
        },
        &rcpts,
        now,
    )?;
    Ok(Some(job))
}

/// The daily budget of notices to poster `to`'s mailbox (every spelling of
/// it counts as one).
pub fn poster_budget(config: &crate::config::Config, to: &str) -> Budget {
    Budget::daily(
        format!("notice:{}", crate::address::mailbox_key(to)),
        config.robot.poster_notices_per_day,
    )
}

/// Takes one notice from `to`'s daily budget; false (logged, nothing
/// recorded) when it is spent.
pub fn poster_may_be_told(
    ctx: &Ctx,
    tx: &Connection,
    list: &str,
    to: &str,
    now: i64,
) -> Result<bool, HandlerError> {
    let budget = [poster_budget(&ctx.config, to)];
    if let Some(b) = rate::take(tx, &budget, now)? {
        tracing::warn!(%list, to, limit = b.limit, "poster notice limit reached for this mailbox today; not sent");
        return Ok(false);
    }
    Ok(true)
}

/// The post's Subject as a notice to `to` may quote it: only to a member
/// of some list here (anyone else may be a forged envelope sender, and the
/// Subject the forger's text).
pub fn subject_for(
    tx: &Connection,
    to: &str,
    subject: &str,
) -> Result<Option<String>, HandlerError> {
    Ok(
        crate::store::members::is_member_anywhere(tx, &crate::address::address_key(to))?
            .then(|| subject.to_string()),
    )
}

/// Queues a notice to a poster when their daily budget allows it.
fn send_to_poster(
    ctx: &Ctx,
    tx: &Connection,
    o: &Outgoing<'_>,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let to = o.to.first().map(String::as_str).unwrap_or("");
    if !poster_may_be_told(ctx, tx, &o.list.name, to, now)? {
        return Ok(None);
    }
    send(ctx, tx, o, now)
}

/// Who receives moderator notices: the moderators, else the owners.
pub fn moderator_rcpts(list: &ListConfig) -> Vec<String> {
    let mut v: Vec<String> = if list.moderators.is_empty() {
        list.owners.clone()
    } else {
        list.moderators.clone()
    };
    let mut seen = std::collections::HashSet::new();
    v.retain(|a| seen.insert(crate::address::address_key(a)));
    v
}

#[derive(Serialize)]
struct ActionLine {
    /// `approve`, `accept`, ...
    action: &'static str,
    /// What it does, in words.
    description: &'static str,
    /// The per-action reply address.
    address: String,
    /// The equivalent command for `NAME-request@`.
    command: String,
}

/// Sends the notice of a new hold to each moderator.
#[allow(clippy::too_many_arguments)]
pub fn moderators(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    held_id: i64,
    reason: &HoldReason,
    summary: &PostSummary,
    size: i64,
    tokens: &super::HeldTokens,
    original: &[u8],
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let to = moderator_rcpts(list);
    if to.is_empty() {
        tracing::warn!(list = %list.name, held = held_id, "held post but the list has no moderators or owners to tell");
        return Ok(None);
    }
    if !super::flood::notice_allowed(tx, list, now)? {
        tracing::info!(list = %list.name, held = held_id, "moderator notice limit reached; the post is counted for the summary notice");
        return Ok(None);
    }
    let actions: Vec<ActionLine> = tokens
        .actions
        .iter()
        .map(|(a, t)| ActionLine {
            action: a.as_str(),
            description: a.describe(),
            address: moderate_address(ctx, list, t),
            command: match a {
                ModAction::Reject => format!("reject {t} [reason]"),
                _ => format!("{} {t}", a.as_str()),
            },
        })
        .collect();
    let data = serde_json::json!({
        "list": list.name,
        "list_address": ctx.config.list_address(&list.name),
        "request_address": ctx.config.list_suffix_address(&list.name, "request"),
        "id": held_id,
        "reason": reason.describe(),
        "from": summary.from_display,
        "sender": summary.sender,
        "subject": summary.subject,
        "size": fmt_size(size),
        "excerpt": summary.excerpt,
        "hold_days": list.hold_days,
        "actions": actions,
        "reply_address": moderate_address(ctx, list, &tokens.reply),
    });
    let text = ctx.templates.render(Some(&list.name), T_NOTICE, &data)?;
    send(
        ctx,
        tx,
        &Outgoing {
            list,
            to,
            subject: format!(
                "[{}] Held for approval: {} (from {})",
                list.name,
                truncate(&summary.subject, 80),
                summary.sender
            ),
            text,
            attach: Some(original),
            in_reply_to: None,
            reply_to: Some(moderate_address(ctx, list, &tokens.reply)),
        },
        now,
    )
}

/// `NAME-moderate+TOKEN@domain`, where a moderator's mail acts on a held post.
fn moderate_address(ctx: &Ctx, list: &ListConfig, token: &str) -> String {
    ctx.config
        .list_suffix_address(&list.name, &format!("moderate+{token}"))
}

/// Tells the poster that the post awaits moderation.
pub fn poster_held(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    to: &str,
    reason: &HoldReason,
    subject: Option<&str>,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let data = serde_json::json!({
        "list": list.name,
        "list_address": ctx.config.list_address(&list.name),
        "owner_address": ctx.config.list_suffix_address(&list.name, "owner"),
        "subject": subject,
        "reason": reason.poster_text(),
        "hold_days": list.hold_days,
    });
    let text = ctx.templates.render(Some(&list.name), T_HELD, &data)?;
    send_to_poster(
        ctx,
        tx,
        &Outgoing {
            list,
            to: vec![to.to_string()],
            subject: format!(
                "Your post to {} awaits moderator approval",
                ctx.config.list_address(&list.name)
            ),
            text,
            attach: None,
            in_reply_to: None,
            reply_to: None,
        },
        now,
    )
}

/// Tells the poster that a moderator rejected the post.
pub fn poster_rejected(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    to: &str,
    held: &Held,
    reason: Option<&str>,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let data = serde_json::json!({
        "list": list.name,
        "list_address": ctx.config.list_address(&list.name),
        "owner_address": ctx.config.list_suffix_address(&list.name, "owner"),
        "subject": subject_for(tx, to, &held.subject)?,
        "reason": reason.filter(|r| !r.trim().is_empty()),
        "held_at": fmt_time(held.held_at),
    });
    let text = ctx.templates.render(Some(&list.name), T_REJECTED, &data)?;
    if !poster_may_be_told(ctx, tx, &list.name, to, now)? {
        return Ok(None);
    }
    let o = Outgoing {
        list,
        to: vec![to.to_string()],
        subject: format!(
            "Your post to {} was rejected",
            ctx.config.list_address(&list.name)
        ),
        text,
        attach: None,
        in_reply_to: None,
        reply_to: None,
    };
    // a report on the list address, as for a policy rejection; the post's
    // header block only to a member of some list (a poster is a claim)
    let diagnostic = match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("550 5.7.1 rejected by a moderator: {r}"),
        None => "550 5.7.1 rejected by a moderator".to_string(),
    };
    let status = DeliveryStatus {
        reporting_domain: ctx.config.list_domain(&list.name),
        arrival: Some(held.held_at),
        recipients: vec![RecipientStatus {
            recipient: ctx.config.list_address(&list.name),
            status: "5.7.1".into(),
            diagnostic: Some(("smtp", diagnostic)),
            last_attempt: None,
        }],
    };
    let member = crate::store::members::is_member_anywhere(tx, &crate::address::address_key(to))?;
    let original = match member {
        true => crate::store::spool::load(tx, held.message_id)?.map(|m| m.bytes),
        false => None,
    };
    let bytes = build(ctx, &o, now, Some((&status, original.as_deref())))?;
    queue(tx, &o, "", &bytes, now)
}

/// Tells the poster that the post expired unmoderated.
pub fn poster_expired(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    to: &str,
    held: &Held,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let data = serde_json::json!({
        "list": list.name,
        "list_address": ctx.config.list_address(&list.name),
        "owner_address": ctx.config.list_suffix_address(&list.name, "owner"),
        "subject": subject_for(tx, to, &held.subject)?,
        "held_at": fmt_time(held.held_at),
        "hold_days": list.hold_days,
    });
    let text = ctx.templates.render(Some(&list.name), T_EXPIRED, &data)?;
    send_to_poster(
        ctx,
        tx,
        &Outgoing {
            list,
            to: vec![to.to_string()],
            subject: format!(
                "Your post to {} expired without moderation",
                ctx.config.list_address(&list.name)
            ),
            text,
            attach: None,
            in_reply_to: None,
            reply_to: None,
        },
        now,
    )
}

#[derive(Serialize)]
struct ReminderEntry {
    id: i64,
    age: String,
    from: String,
    subject: String,
    reason: String,
}

/// Reminds the moderators of what is pending.
pub fn reminder(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    pending: &[Held],
    total: i64,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let entries: Vec<ReminderEntry> = pending
        .iter()
        .map(|h| ReminderEntry {
            id: h.id,
            age: fmt_age(now - h.held_at),
            from: h.sender.clone(),
            subject: h.subject.clone(),
            reason: h.detail.clone(),
        })
        .collect();
    let data = serde_json::json!({
        "list": list.name,
        "count": total,
        "entries": entries,
        "more": (total - pending.len() as i64).max(0),
        "hold_days": list.hold_days,
    });
    let text = ctx.templates.render(Some(&list.name), T_REMINDER, &data)?;
    send(
        ctx,
        tx,
        &Outgoing {
            list,
            to: moderator_rcpts(list),
            subject: format!("[{}] {total} post(s) await moderation", list.name),
            text,
            attach: None,
            in_reply_to: None,
            reply_to: None,
        },
        now,
    )
}

/// Answers a moderator's (or a would-be moderator's) reply.
#[allow(clippy::too_many_arguments)]
pub fn result(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    to: &str,
    result: &str,
    subject: &str,
    in_reply_to: Option<String>,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let data = serde_json::json!({
        "list": list.name,
        "result": result,
        "request_address": ctx.config.list_suffix_address(&list.name, "request"),
    });
    let text = ctx.templates.render(Some(&list.name), T_RESULT, &data)?;
    send(
        ctx,
        tx,
        &Outgoing {
            list,
            to: vec![to.to_string()],
            subject: subject.to_string(),
            text,
            attach: None,
            in_reply_to,
            reply_to: None,
        },
        now,
    )
}

/// Asks the address a held post claims to confirm that it sent it: the
/// `confirm` token's address (also the Reply-To) and the post attached.
#[allow(clippy::too_many_arguments)]
pub fn sender_confirm(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    to: &str,
    held_id: i64,
    role: super::ClaimedRole,
    summary: &PostSummary,
    token: &str,
    original: &[u8],
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let c = &ctx.config;
    let confirm_address = moderate_address(ctx, list, token);
    let data = serde_json::json!({
        "list": list.name,
        "list_address": c.list_address(&list.name),
        "request_address": c.list_suffix_address(&list.name, "request"),
        "owner_address": c.list_suffix_address(&list.name, "owner"),
        "address": to,
        "role": role.describe(),
        "id": held_id,
        "from": summary.from_display,
        "subject": summary.subject,
        "excerpt": summary.excerpt,
        "token": token,
        "confirm_address": confirm_address,
        "hold_days": list.hold_days,
        "expires": fmt_time(now + i64::from(list.hold_days) * 86400),
    });
    let text = ctx.templates.render(Some(&list.name), T_CONFIRM, &data)?;
    send(
        ctx,
        tx,
        &Outgoing {
            list,
            to: vec![to.to_string()],
            subject: format!("[{}] Did you send this? confirm {token}", list.name),
            text,
            attach: Some(original),
            in_reply_to: None,
            reply_to: Some(confirm_address),
        },
        now,
    )
}
