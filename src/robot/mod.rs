//! The command robot: `NAME-request@`, `majordomo@`, `NAME-join@`,
//! `NAME-leave@` and `NAME-confirm+TOKEN@`.
//!
//! One command mail is handled in one transaction (the pipeline's): the loop
//! rules decide whether it may be answered at all (`loops`), the commands are
//! read from it (`parse`), each is executed (`exec`, with `tokens` and
//! `requests` for confirmations and owner approvals), and every mail that
//! results is rendered from a template, rate-limited per mailbox, domain
//! and in all (`store::rate`), and queued
//! on the outbound queue (`send`, composed by `reply`). State changes and the
//! mail they cause commit together.
//!
//! Trusts the envelope the spool recorded and the configuration; the message
//! bytes are untrusted and only ever parsed by mail-parser. A reply goes to
//! the From: address (never Reply-To:), so nothing is disclosed to a forger
//! that the owner of that address would not see.

pub mod answer;
pub mod exec;
pub mod loops;
pub mod parse;
pub mod requests;
pub mod tokens;

use crate::address::Address;
use crate::config::{Config, ListConfig};
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::routing::Route;
use crate::store::outbound::{self, JobKind, NewJob};
use crate::store::rate::{self, Budget};
use rusqlite::{Connection, Transaction};
use serde_json::{json, Value};

/// The templates the robot renders; `listd check` reports any missing.
pub const TEMPLATES: &[&str] = &[
    "help",
    "info",
    "command-results",
    "confirm-subscribe",
    "confirm-unsubscribe",
    "confirm-owner",
    "confirm-set",
    "mode-changed",
    "welcome",
    "goodbye",
    "owner-approval",
    "owner-notice",
    "refusal",
    "archive-get",
    "archive-password",
    // rendered for bounce processing (`crate::bounce`)
    "bounce-disabled",
    "bounce-owner",
];

/// Robot templates that exist neither in the site set nor as an override of
/// `list` (None: the site set only).
pub fn missing_templates(t: &crate::templates::Templates, list: Option<&str>) -> Vec<&'static str> {
    TEMPLATES
        .iter()
        .copied()
        .filter(|n| !t.has(list, n))
        .collect()
}

/// Who sent a command mail: the From: address (else the envelope sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub address: Address,
    pub name: Option<String>,
}

/// The command mail a reply answers (for In-Reply-To / References), and
/// who sent it: the one address a delivery report about the robot's mail
/// may go to (`crate::delivery::dsn`).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub requester: Option<String>,
}

impl Origin {
    fn from_message(m: &mail_parser::Message<'_>) -> Origin {
        let references = match m.references() {
            mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|s| s.to_string()).collect(),
            _ => Vec::new(),
        };
        Origin {
            message_id: m.message_id().map(str::to_string),
            references,
            requester: None,
        }
    }
}

/// Where a robot mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// One address (rate-limited when `Mail::limited`).
    One(String),
    /// A list's owners: one message, `To: NAME-owner@`, each owner a recipient.
    Owners(Vec<String>),
}

/// A mail the robot decided to send, before it is rendered.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: To,
    /// The list it is about (template overrides, From, envelope sender).
    pub list: Option<String>,
    pub template: &'static str,
    /// Used when the template has no `Subject:` line.
    pub default_subject: String,
    pub data: Value,
    pub kind: JobKind,
    pub reply_to: Option<String>,
    /// In-Reply-To / References the command mail.
    pub answers_command: bool,
    /// Counted against the reply budgets of the recipient
    /// (`limits::reply_budgets`).
    pub limited: bool,
    /// A file sent with the text (`get`: an archive month).
    pub attachment: Option<answer::Attachment>,
}

/// Longest line in a robot mail body (RFC 5322 asks for under 78; 72
/// leaves room for quoting).
pub const BODY_WIDTH: usize = 72;

/// Width of the results echoed under each command.
pub const RESULT_WIDTH: usize = 72;

/// `majordomo@domain`.
pub fn site_robot(config: &Config) -> String {
    format!("majordomo@{}", config.domain)
}

/// The From: of robot mail about `list` (its `-request` address), or the
/// site robot.
pub fn robot_address(config: &Config, list: Option<&str>) -> String {
    match list {
        Some(l) => config.list_suffix_address(l, "request"),
        None => site_robot(config),
    }
}

/// Envelope sender of robot mail: `NAME-bounces@`, else
/// `robot.bounce_address` ("" is the null sender `<>`).
pub fn envelope_sender(config: &Config, list: Option<&str>) -> String {
    match list {
        Some(l) => config.list_suffix_address(l, "bounces"),
        None => config.robot.bounce_address.clone(),
    }
}

fn policy_name<T: std::fmt::Debug>(p: T) -> String {
    // SubscriptionPolicy::ConfirmThenApprove -> confirm_then_approve
    let mut out = String::new();
    for (i, c) in format!("{p:?}").chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What templates see of a list: its settings and its addresses.
pub fn list_data(config: &Config, l: &ListConfig) -> Value {
    json!({
        "name": l.name,
        "description": l.description,
        "address": config.list_address(&l.name),
        "request_address": config.list_suffix_address(&l.name, "request"),
        "owner_address": config.list_suffix_address(&l.name, "owner"),
        "join_address": config.list_suffix_address(&l.name, "join"),
        "leave_address": config.list_suffix_address(&l.name, "leave"),
        "subscription": policy_name(l.subscription),
        "unsubscription": policy_name(l.unsubscription),
        "posting": policy_name(l.posting),
        "who": policy_name(l.who),
        "advertised": l.advertised,
        "archive": l.archive,
        "digest": l.digest.enabled,
        "subject_prefix": l.subject_prefix,
        "owners": l.owners,
    })
}

/// When a token issued at `now` stops working, for people to read:
/// `Tue 21 Nov 2023, 22:13 UTC`.
pub fn expiry_text(config: &Config, now: i64) -> String {
    let t = now + i64::from(config.robot.token_expiry_days.max(1)) * 86_400;
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%a %d %b %Y, %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{t} (unix time)"))
}

/// The data every template sees, plus `extra` merged in.
pub fn template_data(config: &Config, list: Option<&ListConfig>, extra: Value) -> Value {
    let mut v = json!({
        "domain": list.map_or(config.domain.as_str(), |l| config.list_domain(&l.name)),
        "robot": site_robot(config),
        "robot_address": robot_address(config, list.map(|l| l.name.as_str())),
        "expiry_days": config.robot.token_expiry_days.max(1),
        "max_bad_lines": config.robot.max_bad_lines.max(1),
        "list": list.map(|l| list_data(config, l)),
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        for (k, x) in extra {
            obj.insert(k, x);
        }
    }
    v
}

/// Renders, rate-limits, composes and queues robot mail inside `conn`'s
/// transaction. Returns how many messages were queued.
pub fn send(
    ctx: &Ctx,
    conn: &Connection,
    mails: Vec<Mail>,
    origin: Option<&Origin>,
    now: i64,
) -> Result<usize, HandlerError> {
    let config = &ctx.config;
    let mut queued = 0;
    for m in mails {
        let rendered = ctx
            .templates
            .render(m.list.as_deref(), m.template, &m.data)?;
        let (subject, body) = answer::split_subject(&rendered);
        // every line under 78 characters, whatever a template or a value
        // put in it (a word longer than that is left whole)
        let body = answer::wrap(&body, BODY_WIDTH);
        let subject = subject
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| m.default_subject.clone());
        let from = robot_address(config, m.list.as_deref());
        let env_from = envelope_sender(config, m.list.as_deref());
        let (to_header, rcpts): (String, Vec<String>) = match &m.to {
            To::One(a) => (a.clone(), vec![a.clone()]),
            To::Owners(owners) => (
                match &m.list {
                    Some(l) => config.list_suffix_address(l, "owner"),
                    None => site_robot(config),
                },
                owners.clone(),
            ),
        };
        if rcpts.is_empty() {
            tracing::warn!(template = m.template, list = ?m.list, "robot mail has no recipients (no owners?); not sent");
            continue;
        }
        // one budget per list's owners, whatever the mail is about; replies
        // count against their mailbox, its domain and the robot as a whole
        // (an archive month also against the mailbox's daily `get` budget)
        let (budgets, why) = match (&m.to, m.limited) {
            (To::Owners(_), _) => (
                vec![Budget::hourly(
                    format!("owners:{}", crate::address::address_key(&to_header)),
                    config.robot.owner_mails_per_hour,
                )],
                "owner mail rate limit reached for this list; not sent (requests wait in `listd requests`)",
            ),
            (To::One(a), true) => (
                crate::limits::reply_budgets(&config.robot, a, m.attachment.is_some()),
                "robot reply rate limit reached; mail dropped",
            ),
            (To::One(_), false) => (Vec::new(), ""),
        };
        if let Some(b) = rate::take(conn, &budgets, now)? {
            tracing::warn!(to = %to_header, template = m.template, bucket = %b.bucket, limit = b.limit, "{why}");
            continue;
        }
        let (irt, refs) = match (m.answers_command, origin) {
            (true, Some(o)) => (o.message_id.as_deref(), o.references.as_slice()),
            _ => (None, &[][..]),
        };
        let bytes = answer::compose(&answer::Compose {
            from: &from,
            from_name: None,
            to: &to_header,
            reply_to: m.reply_to.as_deref(),
            subject: &subject,
            body: &body,
            in_reply_to: irt,
            references: refs,
            auto_submitted: if m.answers_command {
                "auto-replied"
            } else {
                "auto-generated"
            },
            domain: m
                .list
                .as_deref()
                .map_or(config.domain.as_str(), |l| config.list_domain(l)),
            now,
            attachment: m.attachment.as_ref(),
        })
        .map_err(|e| HandlerError::Temporary(format!("composing a robot reply: {e}")))?;
        let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        let job = outbound::enqueue(
            conn,
            &NewJob {
                list: m.list.as_deref(),
                kind: m.kind,
                env_from: &env_from,
                verp: false,
                bytes: &bytes,
            },
            &rcpt_refs,
            now,
        )?;
        // mail to one address was asked for by the command's sender: it
        // hears if that mail cannot be delivered (owners' mail: no one)
        if let (To::One(_), Some(r)) = (&m.to, origin.and_then(|o| o.requester.as_deref())) {
            outbound::set_requester(conn, job, r)?;
        }
        tracing::info!(to = %to_header, template = m.template, list = ?m.list, "robot mail queued");
        queued += 1;
    }
    Ok(queued)
}

/// The sender of a mail: the From: address when it parses, else the envelope
/// sender.
fn identity(h: &loops::LoopHeaders, env_from: &str) -> Option<Identity> {
    if let Some(a) = h.from.as_deref().and_then(|f| Address::parse(f).ok()) {
        return Some(Identity {
            address: a,
            name: h.from_name.clone().filter(|n| !n.trim().is_empty()),
        });
    }
    Address::parse(env_from).ok().map(|a| Identity {
        address: a,
        name: None,
    })
}

/// Handles one command mail.
pub fn handle(ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<(), HandlerError> {
    let config = ctx.config.clone();
    let now = msg.now;
    tokens::purge(tx, 30, now)?;
    rate::purge(tx, now)?;

    let route_list: Option<String> = match &msg.route {
        Route::Request { list }
        | Route::Join { list }
        | Route::Leave { list }
        | Route::Confirm { list, .. } => Some(list.clone()),
        Route::Majordomo => None,
        other => {
            return Err(HandlerError::Corrupt(format!(
                "route `{}` is not a command address",
                other.kind()
            )))
        }
    };
    if let Some(l) = &route_list {
        if config.list(l).is_none() {
            tracing::warn!(incoming = msg.incoming_id, list = %l, "command mail for a list that no longer exists; dropped");
            return Ok(());
        }
    }
    let list_cfg = route_list.as_deref().and_then(|l| config.list(l));

    let max = config.robot.max_command_mail_size;
    let oversize = max > 0 && msg.bytes.len() as u64 > max;
    let parser = mail_parser::MessageParser::default();
    let parsed = if oversize {
        parser.parse_headers(&msg.bytes[..msg.bytes.len().min(1 << 20)])
    } else {
        parser.parse(&msg.bytes)
    };
    let headers = parsed
        .as_ref()
        .map(loops::LoopHeaders::from_message)
        .unwrap_or_default();
    if let loops::Verdict::Drop(why) =
        loops::check(&config.served_domains(), &msg.env_from, &headers)
    {
        tracing::info!(incoming = msg.incoming_id, route = msg.route.kind(), reason = %why, "command mail not answered (loop rules)");
        return Ok(());
    }
    let Some(sender) = identity(&headers, &msg.env_from) else {
        tracing::info!(incoming = msg.incoming_id, env_from = %msg.env_from, "command mail has no usable sender address; dropped");
        return Ok(());
    };
    let origin = Origin {
        requester: Some(sender.address.to_string()),
        ..parsed
            .as_ref()
            .map(Origin::from_message)
            .unwrap_or_default()
    };

    if oversize {
        tracing::info!(
            incoming = msg.incoming_id,
            size = msg.bytes.len(),
            max,
            "command mail too large; refused"
        );
        let reason = format!(
            "Your message to {} was {} bytes long. The command robot reads messages of at most {} bytes, so none of its commands were run.\n\nSend your commands in a short plain-text message, without attachments.",
            msg.rcpt,
            msg.bytes.len(),
            max
        );
        let mail = Mail {
            to: To::One(sender.address.to_string()),
            list: route_list.clone(),
            template: "refusal",
            default_subject: "Your command message was too large".into(),
            data: template_data(
                &config,
                list_cfg,
                json!({"address": sender.address.to_string(), "reason": reason,
                       "subject": "Your command message was too large"}),
            ),
            kind: JobKind::Reply,
            reply_to: None,
            answers_command: true,
            limited: true,
            attachment: None,
        };
        send(ctx, tx, vec![mail], Some(&origin), now)?;
        return Ok(());
    }

    let (extracted, implicit) = match &msg.route {
        Route::Join { list } => (synthetic(&format!("subscribe {list}")), true),
        Route::Leave { list } => (synthetic(&format!("unsubscribe {list}")), true),
        Route::Confirm { token, .. } => (synthetic(&format!("confirm {token}")), true),
        _ => {
            let (subject, body) = parsed
                .as_ref()
                .map(parse::subject_and_body)
                .unwrap_or((None, None));
            (
                parse::extract(
                    subject.as_deref(),
                    body.as_deref(),
                    config.robot.max_bad_lines,
                ),
                false,
            )
        }
    };

    let mut session =
        exec::RobotSession::new(ctx, tx, msg, sender.clone(), route_list.clone(), now);
    session.verdict = crate::auth::stored(tx, msg.message_id)?;
    session.sender_verified = session
        .verdict
        .as_ref()
        .is_some_and(|v| v.proves(&sender.address.to_string()));
    let mut results = Vec::new();
    for line in &extracted.lines {
        let result = session.run(line)?;
        let shown = session.shown(line)?;
        results.push(
            json!({"command": shown, "result": answer::wrap(result.trim_end(), RESULT_WIDTH)}),
        );
    }
    let mut mails = std::mem::take(&mut session.mails);

    let note = match extracted.stop {
        parse::Stop::TooManyBadLines(n) => Some(format!(
            "Stopped reading after {n} lines that were not commands."
        )),
        _ => None,
    };
    let sender_key = sender.address.key();
    let sender_gets_mail = mails
        .iter()
        .any(|m| matches!(&m.to, To::One(a) if crate::address::address_key(a) == sender_key));
    // the join/leave/confirm addresses answer with the confirmation or
    // welcome itself; a results reply is sent only when there is nothing else
    if !(implicit && sender_gets_mail) {
        let no_commands = !extracted.has_commands();
        mails.insert(
            0,
            Mail {
                to: To::One(sender.address.to_string()),
                list: route_list.clone(),
                template: "command-results",
                default_subject: format!("Results of your commands to {}", msg.rcpt),
                data: template_data(
                    &config,
                    list_cfg,
                    json!({
                        "address": sender.address.to_string(),
                        "results": results,
                        "no_commands": no_commands,
                        "note": note,
                    }),
                ),
                kind: JobKind::Reply,
                reply_to: None,
                answers_command: true,
                limited: true,
                attachment: None,
            },
        );
    }
    send(ctx, tx, mails, Some(&origin), now)?;
    Ok(())
}

fn synthetic(line: &str) -> parse::Extracted {
    parse::Extracted {
        lines: parse::parse_line(line).into_iter().collect(),
        stop: parse::Stop::EndOfText,
    }
}
