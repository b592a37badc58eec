//! Posts to `NAME@`: look up the facts, let `rules` decide (Accept, Hold,
//! Reject, Discard), then act: [`distribute`] an accepted post (decorate,
//! archive, queue the fan-out, digest hook), hand a held one to
//! `moderation::hold`, check `Approved:` pre-approval and the accept/ban
//! lists through moderation,
//! tell the poster about a rejection, log a discard.
//!
//! Trusts the envelope the spool recorded and the configuration; the message
//! bytes are untrusted and only read through mail-parser and the byte-exact
//! `header_block` splitter. Runs inside the pipeline's transaction: every
//! row written and every mail queued here commits with the incoming row.

use super::decorate::{self, Decoration};
use super::rules::{self, Facts, PostAction, PostView, DUPLICATE_WINDOW_DAYS};
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::moderation::{ClaimedRole, HoldReason, Preapproval};
use crate::routing::Route;
use crate::store::outbound::{self, JobKind, NewJob};
use mail_parser::MessageParser;
use rusqlite::{params, Connection, Transaction};

/// Handles one post.
pub fn handle(ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<(), HandlerError> {
    let Route::Post { list } = &msg.route else {
        return Err(HandlerError::Corrupt(format!(
            "post handler got a `{}` route",
            msg.route.kind()
        )));
    };
    let Some(lc) = ctx.config.list(list) else {
        return Err(HandlerError::Corrupt(format!(
            "list `{list}` is no longer configured"
        )));
    };
    let parsed = MessageParser::default().parse_headers(&msg.bytes);
    let view = PostView::from_message(parsed.as_ref(), &msg.bytes);
    let locked = crate::moderation::lockout::is_locked(tx, &lc.name, msg.now)?;
    let preapproval = crate::moderation::preapproval(lc, &msg.bytes, locked);
    if preapproval == Preapproval::BadPassword {
        crate::moderation::lockout::record_failure(ctx, tx, lc, msg.now)?;
    }
    let (mut facts, claims) = facts(tx, lc, &view, msg)?;
    facts.pre_approved = matches!(preapproval, Preapproval::Approved(_));
    facts.bad_approved_password = preapproval == Preapproval::BadPassword;
    let action = rules::decide(
        &view,
        &msg.env_from,
        lc,
        &ctx.config.domain,
        ctx.config.smtp.max_message_size,
        &facts,
    );
    let poster = view.poster(&msg.env_from);
    let mid = view.message_id.as_deref().unwrap_or("");
    match action {
        PostAction::Accept => {
            // a pre-approved post goes out without its Approved: line, and
            // so does one whose line was ignored (a lockout)
            let bytes = match &preapproval {
                Preapproval::Approved(stripped) | Preapproval::Ignored(stripped) => {
                    stripped.as_slice()
                }
                _ => msg.bytes.as_slice(),
            };
            let d = distribute(ctx, tx, &lc.name, bytes, msg.now)?;
            tracing::info!(list = %lc.name, %poster, message_id = %d.message_id,
                job = d.job_id, "post accepted and distributed");
        }
        PostAction::Hold(reason) => {
            remember_message_id(tx, &lc.name, view.message_id.as_deref(), msg.now)?;
            tracing::info!(list = %lc.name, %poster, message_id = %mid,
                reason = reason.code(), "post held for moderation");
            match reason {
                HoldReason::SenderUnverified(role) => {
                    let claimed = claims.address(role).unwrap_or(poster);
                    crate::moderation::confirm::hold_unverified(
                        ctx, tx, lc, msg, role, claimed, msg.now,
                    )?;
                }
                reason => {
                    crate::moderation::hold(ctx, tx, &lc.name, msg, reason, msg.now)?;
                }
            }
        }
        PostAction::Reject(code, text) => {
            tracing::info!(list = %lc.name, %poster, message_id = %mid, code, %text, "post rejected");
            reject_notice(ctx, tx, lc, msg, &view, code, &text)?;
        }
        PostAction::Discard(reason) => {
            tracing::info!(list = %lc.name, %poster, message_id = %mid,
                reason = %reason.describe(), "post discarded");
        }
    }
    Ok(())
}

/// Which claimed address (From: or envelope) holds each role the facts
/// report: where a confirmation goes when the role needs proving.
#[derive(Debug, Default)]
struct Claims {
    member: Option<String>,
    moderator: Option<String>,
    accepted: Option<String>,
}

impl Claims {
    fn address(&self, role: ClaimedRole) -> Option<&str> {
        match role {
            ClaimedRole::Member => self.member.as_deref(),
            ClaimedRole::Moderator => self.moderator.as_deref(),
            ClaimedRole::AcceptedSender => self.accepted.as_deref(),
        }
    }
}

/// Looks up everything the rules need to know (but the pre-approval), and
/// which address claimed each role.
fn facts(
    tx: &Connection,
    lc: &ListConfig,
    view: &PostView,
    msg: &Inbound,
) -> Result<(Facts, Claims), HandlerError> {
    let mut candidates: Vec<&str> = Vec::new();
    if let Some(f) = view.from.as_deref() {
        candidates.push(f);
    }
    if !msg.env_from.is_empty() {
        candidates.push(&msg.env_from);
    }
    let mut claims = Claims::default();
    let mut member_flag = None;
    for c in &candidates {
        let Ok(a) = crate::address::Address::parse(c) else {
            continue;
        };
        if let Some(m) = crate::store::members::get(tx, &lc.name, &a.key())? {
            claims.member = Some(c.to_string());
            member_flag = m.moderation;
            break;
        }
    }
    let is_member = claims.member.is_some();
    claims.moderator = candidates
        .iter()
        .find(|c| lc.is_moderator(c))
        .map(|c| c.to_string());
    let is_moderator = claims.moderator.is_some();
    let duplicate = match view.message_id.as_deref() {
        Some(id) => seen_recently(tx, &lc.name, id, msg.now)?,
        None => false,
    };
    // Bans win; then the member's own flag; then the accept list.
    use crate::store::members::Moderation;
    let mut sender_rule = member_flag.map(|m| match m {
        Moderation::Accept => rules::SenderRule::Accept,
        Moderation::Hold => rules::SenderRule::Hold,
        Moderation::Reject => rules::SenderRule::Reject,
        Moderation::Discard => rules::SenderRule::Discard,
    });
    if sender_rule == Some(rules::SenderRule::Accept) {
        claims.accepted = claims.member.clone();
    }
    for c in &candidates {
        if crate::moderation::is_banned(tx, &lc.name, c)? {
            sender_rule = Some(rules::SenderRule::Discard);
            break;
        }
        if sender_rule.is_none() && crate::moderation::is_accepted_sender(tx, &lc.name, c)? {
            sender_rule = Some(rules::SenderRule::Accept);
            claims.accepted = Some(c.to_string());
        }
    }
    let facts = Facts {
        is_member,
        is_moderator,
        duplicate,
        pre_approved: false,
        bad_approved_password: false,
        sender_rule,
        verified_sender: false,
    };
    Ok((facts, claims))
}

/// Whether `message_id` was seen on `list` within the duplicate window.
fn seen_recently(
    conn: &Connection,
    list: &str,
    message_id: &str,
    now: i64,
) -> Result<bool, HandlerError> {
    let since = now - DUPLICATE_WINDOW_DAYS * 86_400;
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM post_seen WHERE list = ?1 AND message_id = ?2 AND seen_at >= ?3",
        )?
        .query_row(params![list, message_id, since], |r| r.get(0))?;
    Ok(n > 0)
}

/// Records a Message-ID as seen on `list` (and forgets ids older than the window).
fn remember_message_id(
    conn: &Connection,
    list: &str,
    message_id: Option<&str>,
    now: i64,
) -> Result<(), HandlerError> {
    let Some(id) = message_id.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO post_seen(list, message_id, seen_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(list, message_id) DO UPDATE SET seen_at = excluded.seen_at",
    )?
    .execute(params![list, id, now])?;
    conn.prepare_cached("DELETE FROM post_seen WHERE seen_at < ?1")?
        .execute([now - DUPLICATE_WINDOW_DAYS * 86_400])?;
    Ok(())
}

/// What [`distribute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distributed {
    /// The post's Message-ID (added by decoration if it had none).
    pub message_id: String,
    /// The outbound job carrying the post (expanded by the delivery worker).
    pub job_id: i64,
    /// Whether this call added it to the archive (false: archiving is off,
    /// or it was archived before).
    pub archived: bool,
    pub footer: decorate::FooterPlacement,
}

/// Distributes an accepted (or approved) post to `list`: decorate, archive,
/// queue the fan-out, feed the digest. `original` is the message as it was
/// received (a held post's stored bytes). Runs in the caller's transaction.
pub fn distribute(
    ctx: &Ctx,
    tx: &Connection,
    list: &str,
    original: &[u8],
    now: i64,
) -> Result<Distributed, HandlerError> {
    let config = &ctx.config;
    let Some(lc) = config.list(list) else {
        return Err(HandlerError::Corrupt(format!(
            "list `{list}` is no longer configured"
        )));
    };
    let footer = if lc.footer {
        Some(
            ctx.templates
                .render(Some(&lc.name), "footer", &template_data(ctx, lc))?,
        )
    } else {
        None
    };
    let decoration = Decoration::for_list(config, lc, footer);
    let decorated = decorate::decorate(original, &decoration);
    remember_message_id(tx, &lc.name, Some(&decorated.message_id), now)?;

    let archived = if lc.archive {
        match crate::archive::archive_post(
            &config.data_dir,
            tx,
            &lc.name,
            &config.domain,
            &decorated.bytes,
            now,
        ) {
            Ok(crate::archive::Appended::Added { .. }) => true,
            Ok(crate::archive::Appended::AlreadyArchived) => false,
            Err(crate::archive::ArchiveError::Store(e)) => return Err(HandlerError::Store(e)),
            Err(e) => return Err(HandlerError::Temporary(format!("archive: {e}"))),
        }
    } else {
        false
    };

    // the body is stored once; the delivery worker expands the membership
    // (nested lists, dedupe, skip_explicit_recipients) into batches, with the
    // envelope sender NAME-bounces@domain (VERP per recipient if configured)
    let job_id = crate::delivery::enqueue_post(tx, config, &lc.name, &decorated.bytes, now)?;

    // The digest keeps the post as distributed: the fan-out job's stored copy.
    crate::digest::accumulate_job(ctx, tx, lc, job_id, now)?;

    Ok(Distributed {
        message_id: decorated.message_id,
        job_id,
        archived,
        footer: decorated.footer,
    })
}

/// The post templates `list` needs that exist neither as a list override
/// nor in the site templates (`listd check` warns about them; a post that
/// needs one waits until it exists).
pub fn missing_templates(t: &crate::templates::Templates, list: &ListConfig) -> Vec<&'static str> {
    let mut need = vec!["post-rejected"];
    if list.footer {
        need.push("footer");
    }
    need.into_iter()
        .filter(|n| !t.has(Some(&list.name), n))
        .collect()
}

/// Data every post-related template gets.
fn template_data(ctx: &Ctx, lc: &ListConfig) -> serde_json::Value {
    let c = &ctx.config;
    serde_json::json!({
        "list": lc.name,
        "description": lc.description,
        "domain": c.domain,
        "list_address": c.list_address(&lc.name),
        "request_address": c.list_suffix_address(&lc.name, "request"),
        "join_address": c.list_suffix_address(&lc.name, "join"),
        "leave_address": c.list_suffix_address(&lc.name, "leave"),
        "owner_address": c.list_suffix_address(&lc.name, "owner"),
        "archive_url": c.web.archive_url.as_ref().map(|u| format!("{}/{}/", u.trim_end_matches('/'), lc.name)),
        "unsubscribe_url": c.web.unsubscribe_url,
    })
}

/// Queues the rejection notice to the envelope sender (never to `<>`:
/// `rules::decide` turns those into discards), within its mailbox's daily
/// poster notice budget. The post's Subject, Message-ID and header are
/// quoted only to a member of some list here: anyone else may be a forged
/// envelope sender.
fn reject_notice(
    ctx: &Ctx,
    tx: &Connection,
    lc: &ListConfig,
    msg: &Inbound,
    view: &PostView,
    code: u16,
    text: &str,
) -> Result<(), HandlerError> {
    if msg.env_from.is_empty() {
        return Ok(());
    }
    let quote =
        crate::store::members::is_member_anywhere(tx, &crate::address::address_key(&msg.env_from))?;
    if !crate::moderation::notice::poster_may_be_told(ctx, tx, &lc.name, &msg.env_from, msg.now)? {
        return Ok(());
    }
    let c = &ctx.config;
    let mut data = template_data(ctx, lc);
    if let Some(o) = data.as_object_mut() {
        o.insert("code".into(), code.into());
        o.insert("reason".into(), text.into());
        o.insert("quoted".into(), quote.into());
        if quote {
            o.insert("poster".into(), view.poster(&msg.env_from).into());
            o.insert("subject".into(), view.subject.clone().into());
            o.insert(
                "message_id".into(),
                view.message_id.clone().unwrap_or_default().into(),
            );
        }
    }
    let body = ctx
        .templates
        .render(Some(&lc.name), "post-rejected", &data)?;
    let owner = c.list_suffix_address(&lc.name, "owner");
    let mut b = mail_builder::MessageBuilder::new()
        .from((format!("{} list owner", lc.name), owner))
        .to(msg.env_from.as_str())
        .subject(format!(
            "Your post to {} was not accepted",
            c.list_address(&lc.name)
        ))
        .message_id(format!(
            "listd.reject.{}.{}@{}",
            msg.incoming_id, msg.now, c.domain
        ))
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .header(
            "X-Loop",
            mail_builder::headers::raw::Raw::new(c.list_address(&lc.name)),
        )
        .header("Precedence", mail_builder::headers::raw::Raw::new("bulk"));
    if let Some(id) = view.message_id.as_deref().filter(|_| quote) {
        b = b.in_reply_to(id.to_string()).references(id.to_string());
    }
    let b = if quote {
        let split = crate::mime::header_block::split(&msg.bytes);
        let headers = String::from_utf8_lossy(&msg.bytes[..split.header_end]).to_string();
        b.body(mail_builder::mime::MimePart::new(
            "multipart/mixed",
            vec![
                mail_builder::mime::MimePart::new("text/plain", body),
                mail_builder::mime::MimePart::new("text/rfc822-headers", headers)
                    .transfer_encoding("8bit"),
            ],
        ))
    } else {
        b.text_body(body)
    };
    let notice = b
        .write_to_vec()
        .map_err(|e| HandlerError::Temporary(format!("building the rejection notice: {e}")))?;
    outbound::enqueue(
        tx,
        &NewJob {
            list: Some(&lc.name),
            kind: JobKind::Notice,
            env_from: "",
            verp: false,
            bytes: &notice,
        },
        &[msg.env_from.as_str()],
        msg.now,
    )?;
    Ok(())
}
