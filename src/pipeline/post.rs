//! The post handler, for `NAME@`: look up the facts, let `posts::rules`
//! decide (Accept, Hold, Reject, Discard), then act: `posts::distribute` an
//! accepted post (decorate, archive, queue the fan-out, digest hook), hand a held one to
//! `moderation::hold`, check `Approved:` pre-approval and the accept/ban
//! lists through moderation,
//! tell the poster about a rejection, log a discard.
//!
//! Trusts the envelope the spool recorded and the configuration; the message
//! bytes are untrusted and only read through mail-parser and the byte-exact
//! `header_block` splitter. Runs inside the pipeline's transaction: every
//! row written and every mail queued here commits with the incoming row.

use crate::config::ListConfig;
use crate::delivery::dsn::report::{report_part, DeliveryStatus, RecipientStatus};
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::moderation::{ClaimedRole, HoldReason, Preapproval};
use crate::posts::distribute::{distribute, remember_message_id, seen_recently};
use crate::posts::rules::{self, Facts, PostAction, PostView};
use crate::posts::template_data;
use crate::routing::Route;
use crate::store::outbound::{self, JobKind, NewJob};
use mail_parser::MessageParser;
use rusqlite::{Connection, Transaction};

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
    let verdict = crate::auth::stored(tx, msg.message_id)?;
    let (mut facts, claims) = facts(tx, lc, &view, msg, verdict.as_ref())?;
    facts.pre_approved = matches!(preapproval, Preapproval::Approved(_));
    facts.bad_approved_password = preapproval == Preapproval::BadPassword;
    let action = rules::decide(
        &view,
        &msg.env_from,
        lc,
        ctx.config.list_domain(&lc.name),
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
            let d = distribute(ctx, tx, &lc.name, bytes, verdict.as_ref(), msg.now)?;
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
    verdict: Option<&crate::auth::AuthVerdict>,
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
    // the verdict intake stored: the From: is proven when it passed DMARC
    // and every role above was found for that very address
    let from = view.from.as_deref().unwrap_or("");
    let same = |c: &Option<String>| c.as_deref().is_none_or(|c| c.eq_ignore_ascii_case(from));
    let verified_sender = verdict.is_some_and(|v| v.proves(from))
        && same(&claims.member)
        && same(&claims.moderator)
        && same(&claims.accepted);
    let facts = Facts {
        is_member,
        is_moderator,
        duplicate,
        pre_approved: false,
        bad_approved_password: false,
        sender_rule,
        verified_sender,
        from_dmarc_fail: verdict.is_some_and(|v| v.fails()),
    };
    Ok((facts, claims))
}

/// Queues the rejection notice, a multipart/report (`report_part`), to the
/// envelope sender with the null reverse-path (never to `<>`:
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
            msg.incoming_id,
            msg.now,
            c.list_domain(&lc.name)
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
    // a report on the list address, as an MTA refusing it would send: the
    // policy's code and text are its status; the post's header block is
    // quoted only to a member of some list here
    let status = DeliveryStatus {
        reporting_domain: c.list_domain(&lc.name),
        arrival: Some(msg.received_at),
        recipients: vec![RecipientStatus {
            recipient: msg.rcpt.clone(),
            status: crate::mime::status::of_reply(&format!("{code} {text}")),
            diagnostic: Some(("smtp", format!("{code} {text}"))),
            last_attempt: None,
        }],
    };
    let b = b.body(report_part(
        body,
        &status,
        quote.then_some(msg.bytes.as_slice()),
    ));
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
