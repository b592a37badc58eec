//! Moderators' actions: resolving a token, checking who may act, applying
//! approve / accept / reject / discard / ban to a held post (first action
//! wins), and answering by mail.
//!
//! Trusts the configuration (who the moderators and owners are) and the
//! envelope the spool recorded. Trusts nothing in the reply: the token is
//! normalised and hashed, the From: header counts only when it names a
//! moderator and passes `from_authenticated`, and automatons never act. The
//! one token that needs no moderator is `confirm`: it was mailed only to the
//! address a `sender-unverified` post claims, so holding it is the proof.

use super::{approved, held, notice, token, ModAction};
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::routing::Route;
use mail_parser::{Message, MessageParser};
use rusqlite::Connection;

/// What an action came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActOutcome {
    /// Done; the text says what was done.
    Done(String),
    /// Another action got there first: "already approved by X at T".
    Already(String),
    /// Nothing to act on; the text says why.
    NotFound(String),
}

impl ActOutcome {
    pub fn text(&self) -> &str {
        match self {
            ActOutcome::Done(s) | ActOutcome::Already(s) | ActOutcome::NotFound(s) => s,
        }
    }
}

/// "already approved by X at T" for a closed held post.
fn already(h: &held::Held) -> String {
    let verb = match h.action.as_deref() {
        Some("approve") => "approved",
        Some("accept") => "approved (and the sender accepted)",
        Some("reject") => "rejected",
        Some("discard") => "discarded",
        Some("ban") => "discarded (and the sender banned)",
        Some("confirm") => "confirmed by its sender and released",
        Some("expire") => "expired",
        _ => h.state.as_str(),
    };
    format!(
        "held message {} was already {verb} by {} at {}",
        h.id,
        h.acted_by.as_deref().unwrap_or("someone"),
        h.acted_at.map(notice::fmt_time).unwrap_or_default()
    )
}

/// Applies `action` to held post `held_id` as `actor`. The first action on a
/// post wins; later ones get `ActOutcome::Already`. `note` is the reason a
/// reject sends to the poster. Call inside a transaction: the state change,
/// the distribution and the notices commit together.
pub fn act(
    ctx: &Ctx,
    tx: &Connection,
    held_id: i64,
    action: ModAction,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> Result<ActOutcome, HandlerError> {
    let Some(h) = held::get(tx, held_id)? else {
        return Ok(ActOutcome::NotFound(format!("no held message {held_id}")));
    };
    if h.state != "held" {
        return Ok(ActOutcome::Already(already(&h)));
    }
    let Some(list) = ctx.config.list(&h.list) else {
        return Ok(ActOutcome::NotFound(format!(
            "held message {held_id} belongs to list `{}`, which is no longer configured",
            h.list
        )));
    };
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if !held::finish(
        tx,
        h.id,
        action.final_state(),
        action.as_str(),
        actor,
        note,
        now,
    )? {
        let h = held::get(tx, held_id)?.unwrap_or(h);
        return Ok(ActOutcome::Already(already(&h)));
    }
    let mut extra = String::new();
    match action {
        ModAction::Approve | ModAction::Accept | ModAction::Confirm => {
            release(ctx, tx, list, &h, now)?;
            if action == ModAction::Accept {
                super::accept_sender(tx, &list.name, &h.sender, actor, now)?;
                extra = format!("; {} will be accepted from now on", h.sender);
            }
        }
        ModAction::Reject => {
            if let Some(to) = &h.notify {
                notice::poster_rejected(ctx, tx, list, to, &h, note, now)?;
            } else {
                extra = "; the poster was not told (null sender or automated mail)".into();
            }
        }
        ModAction::Discard => {}
        ModAction::Ban => {
            super::ban(tx, &list.name, &h.sender, actor, now)?;
            extra = format!("; {} is banned from posting", h.sender);
        }
    }
    held::log(
        tx,
        &list.name,
        Some(h.id),
        actor,
        action.as_str(),
        "done",
        now,
    )?;
    tracing::info!(list = %list.name, held = h.id, action = action.as_str(), %actor, "moderation action");
    Ok(ActOutcome::Done(format!(
        "{}: held message {} to {} from {} (\"{}\"){extra}",
        action.final_state(),
        h.id,
        list.name,
        h.sender,
        h.subject
    )))
}

/// Sends an approved post through the same path as an accepted post:
/// decoration, archive and fan-out. Any `Approved:` header (and, when the
/// post was held for a bad password, the `Approved:` first body line) is
/// removed first so no password attempt is ever distributed.
fn release(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    h: &held::Held,
    now: i64,
) -> Result<(), HandlerError> {
    let stored = crate::store::spool::load(tx, h.message_id)?.ok_or_else(|| {
        HandlerError::Corrupt(format!(
            "held message {}: its stored bytes (message {}) are missing",
            h.id, h.message_id
        ))
    })?;
    let bytes = approved::strip_any(&stored.bytes, h.reason == "bad-approved-password");
    let verdict = crate::auth::stored(tx, h.message_id)?;
    distribute(ctx, tx, &list.name, &bytes, verdict.as_ref(), now)
}

/// The one call point into the post pipeline's distribution: decorate,
/// archive, queue the fan-out, feed the digest.
fn distribute(
    ctx: &Ctx,
    tx: &Connection,
    list: &str,
    bytes: &[u8],
    verdict: Option<&crate::auth::AuthVerdict>,
    now: i64,
) -> Result<(), HandlerError> {
    let d = crate::posts::distribute::distribute(ctx, tx, list, bytes, verdict, now)?;
    tracing::info!(%list, message_id = %d.message_id, job = d.job_id, "approved post distributed");
    Ok(())
}

/// Whether a From: address may be believed for a moderator's act: when
/// its domain publishes DMARC (or intake could not tell), the From: must
/// have passed it, as intake recorded in the store (`verdict`; `None`:
/// not checked, `auth.enabled: false`). A header in the mail is never read.
pub fn from_authenticated(verdict: Option<&crate::auth::AuthVerdict>, addr: &str) -> bool {
    verdict.is_none_or(|v| v.may_act_as(addr))
}

/// Who is acting: the configured moderator or owner address that this mail
/// comes from, by envelope sender or by From: header. `Err` carries the
/// address that claimed to act, for the log.
pub fn authorise(
    list: &ListConfig,
    env_from: &str,
    parsed: Option<&Message<'_>>,
    verdict: Option<&crate::auth::AuthVerdict>,
) -> Result<String, String> {
    if !env_from.is_empty() && list.is_moderator(env_from) {
        return Ok(env_from.to_string());
    }
    let mut claimed = None;
    if let Some(m) = parsed {
        for a in m.from().map(|f| f.iter()).into_iter().flatten() {
            let Some(addr) = a.address() else { continue };
            claimed.get_or_insert_with(|| addr.to_string());
            if list.is_moderator(addr) && from_authenticated(verdict, addr) {
                return Ok(addr.to_string());
            }
        }
    }
    Err(claimed.unwrap_or_else(|| {
        if env_from.is_empty() {
            "<>".into()
        } else {
            env_from.to_string()
        }
    }))
}

/// The reason a moderator wrote in a reply: the reply's own text, before
/// any quote, attribution line or signature.
pub fn reply_note(m: &Message<'_>) -> Option<String> {
    let text = m.body_text(0)?;
    let mut lines = Vec::new();
    for line in text.lines() {
        let t = line.trim_end();
        if t.starts_with('>')
            || t == "--"
            || t == "-- "
            || t.starts_with("-----")
            || t.starts_with("_____")
            || t.ends_with("wrote:")
        {
            break;
        }
        lines.push(t);
    }
    let note = lines.join("\n").trim().to_string();
    if note.is_empty() {
        None
    } else {
        Some(note.chars().take(2000).collect())
    }
}

/// What a plain reply must say when its first word names no action.
pub const REPLY_HELP: &str = "nothing was done: start your reply with one word: \
approve, accept (approve, and accept this sender from now on), reject (then the \
reason, which the poster is sent), discard, or ban";

/// What a mail asked of a token, besides presenting it.
#[derive(Debug, Clone, Copy)]
enum Asked {
    /// A robot command (`approve TOKEN`): its verb must be the token's action.
    Command(ModAction),
    /// A reply to the token's address: the action its first word names, if any.
    Reply(Option<ModAction>),
}

impl Asked {
    fn named(self) -> Option<ModAction> {
        match self {
            Asked::Command(v) | Asked::Reply(Some(v)) => Some(v),
            Asked::Reply(None) => None,
        }
    }
}

/// Splits a reply's own text into the action its first word names and the
/// rest, the reason: `reject: off topic` is (Reject, "off topic"). Text
/// whose first word names no action is all reason, with no action.
pub fn reply_verb(note: Option<&str>) -> (Option<ModAction>, Option<String>) {
    let Some(text) = note.map(str::trim_start) else {
        return (None, None);
    };
    let end = text.find(|c: char| c.is_whitespace()).unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    let word = word.trim_end_matches(['.', ':', ',', '!', ';']);
    let verb = match word.to_ascii_lowercase().as_str() {
        "approved" => Some(ModAction::Approve),
        "rejected" => Some(ModAction::Reject),
        "discarded" => Some(ModAction::Discard),
        "confirm" | "confirmed" => None,
        w => ModAction::parse(w),
    };
    match verb {
        Some(v) => {
            let rest = rest.trim();
            (Some(v), (!rest.is_empty()).then(|| rest.to_string()))
        }
        None => (None, Some(text.to_string())),
    }
}

/// The result of acting by token.
struct ByToken {
    /// The list, when the token resolved to one.
    list: Option<String>,
    /// The moderator who acted, when authorised.
    actor: Option<String>,
    line: String,
}

/// Resolves a token, checks the actor and the verb, and acts.
#[allow(clippy::too_many_arguments)]
fn by_token(
    ctx: &Ctx,
    tx: &Connection,
    message_id: i64,
    env_from: &str,
    parsed: Option<&Message<'_>>,
    route_list: Option<&str>,
    asked: Asked,
    presented: &str,
    note: Option<&str>,
    now: i64,
) -> Result<ByToken, HandlerError> {
    let row = match token::normalise(presented) {
        Some(t) => held::token(tx, &token::hash(&t))?.map(|r| (t, r)),
        None => None,
    };
    let row = row.filter(|(_, r)| route_list.is_none_or(|l| l.eq_ignore_ascii_case(&r.list)));
    let Some((tok, row)) = row else {
        let claimed = authorise_for_log(env_from, parsed);
        if let Some(l) = route_list {
            held::log(
                tx,
                l,
                None,
                &claimed,
                asked.named().map_or("reply", ModAction::as_str),
                "unknown-token",
                now,
            )?;
        }
        tracing::warn!(sender = %claimed, "moderation: unknown token");
        return Ok(ByToken {
            list: route_list.map(str::to_string),
            actor: None,
            // the token is not repeated: whoever sent it is unverified
            line: "unknown moderation token: it may be mistyped, or for another list".into(),
        });
    };
    let Some(list) = ctx.config.list(&row.list) else {
        return Ok(ByToken {
            list: None,
            actor: None,
            line: format!("list `{}` is no longer configured", row.list),
        });
    };
    // a reply token is bound to no action: the reply's first word names it
    let bound = if row.action == super::REPLY_TOKEN {
        None
    } else {
        Some(ModAction::parse(&row.action).ok_or_else(|| {
            HandlerError::Corrupt(format!("token bound to unknown action `{}`", row.action))
        })?)
    };
    // a confirmation token went only to the address the post claims: holding
    // it is the proof, whoever the reply says it is from
    let confirmer = match bound {
        Some(ModAction::Confirm) => held::get(tx, row.held_id)?.map(|h| h.sender),
        _ => None,
    };
    let authorised = match confirmer {
        Some(sender) => Ok(sender),
        None => {
            let verdict = crate::auth::stored(tx, message_id)?;
            authorise(list, env_from, parsed, verdict.as_ref())
        }
    };
    let actor = match authorised {
        Ok(a) => a,
        Err(claimed) => {
            held::log(
                tx,
                &list.name,
                Some(row.held_id),
                &claimed,
                &row.action,
                "refused",
                now,
            )?;
            tracing::warn!(list = %list.name, held = row.held_id, sender = %claimed, action = %row.action,
                "moderation refused: sender is not a moderator or owner of the list");
            return Ok(ByToken {
                list: Some(list.name.clone()),
                actor: None,
                line: format!(
                    "refused: {claimed} is not a moderator or owner of {}; nothing was done",
                    list.name
                ),
            });
        }
    };
    let action = match (bound, asked.named()) {
        // the poster's reply to a confirmation is free text
        (Some(ModAction::Confirm), _) if matches!(asked, Asked::Reply(_)) => ModAction::Confirm,
        (Some(a), Some(v)) if v != a => {
            return Ok(ByToken {
                list: Some(list.name.clone()),
                actor: Some(actor),
                line: format!(
                    "this token is for `{}`, not `{}`: nothing was done",
                    a.as_str(),
                    v.as_str()
                ),
            })
        }
        (Some(a), _) => a,
        (None, Some(v)) if v != ModAction::Confirm => v,
        (None, _) => {
            held::log(
                tx,
                &list.name,
                Some(row.held_id),
                &actor,
                "reply",
                "no-action-named",
                now,
            )?;
            return Ok(ByToken {
                list: Some(list.name.clone()),
                actor: Some(actor),
                line: REPLY_HELP.into(),
            });
        }
    };
    let outcome = act(ctx, tx, row.held_id, action, &actor, note, now)?;
    match &outcome {
        ActOutcome::Done(_) => held::use_token(tx, &token::hash(&tok), &actor, now)?,
        _ => held::log(
            tx,
            &list.name,
            Some(row.held_id),
            &actor,
            action.as_str(),
            "already",
            now,
        )?,
    }
    Ok(ByToken {
        list: Some(list.name.clone()),
        actor: Some(actor),
        line: outcome.text().to_string(),
    })
}

fn authorise_for_log(env_from: &str, parsed: Option<&Message<'_>>) -> String {
    parsed
        .and_then(|m| m.from())
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(str::to_string)
        .unwrap_or_else(|| {
            if env_from.is_empty() {
                "<>".into()
            } else {
                env_from.to_string()
            }
        })
}

/// Handles a moderator's reply to `NAME-moderate+TOKEN@`: the token says
/// which post and which action; the reply's own text (before any quote) is
/// the reason. The sender gets a short answer saying what happened.
/// Auto-replies and mail from the null sender never act (they are logged).
pub fn handle_reply(
    ctx: &Ctx,
    tx: &rusqlite::Transaction<'_>,
    msg: &Inbound,
) -> Result<(), HandlerError> {
    let Route::Moderate { list, token } = &msg.route else {
        return Err(HandlerError::Corrupt(format!(
            "moderation handler got a `{}` route",
            msg.route.kind()
        )));
    };
    let parsed = MessageParser::default().parse(&msg.bytes);
    let now = msg.now;
    if msg.env_from.is_empty() || parsed.as_ref().is_some_and(notice::is_automated) {
        let who = authorise_for_log(&msg.env_from, parsed.as_ref());
        held::log(tx, list, None, &who, "reply", "ignored-automated", now)?;
        tracing::info!(%list, sender = %who, "moderation reply from an automaton or the null sender ignored");
        return Ok(());
    }
    let (verb, note) = reply_verb(parsed.as_ref().and_then(reply_note).as_deref());
    let r = by_token(
        ctx,
        tx,
        msg.message_id,
        &msg.env_from,
        parsed.as_ref(),
        Some(list),
        Asked::Reply(verb),
        token,
        note.as_deref(),
        now,
    )?;
    let Some(cfg) = r.list.as_deref().and_then(|l| ctx.config.list(l)) else {
        tracing::warn!(%list, "moderation reply for a list that is not configured");
        return Ok(());
    };
    // a moderator's answer quotes the reply; anyone else's goes to an
    // unverified envelope sender: within its daily notice budget, and
    // without the Subject or Message-ID they wrote
    let verified = r.actor.is_some();
    let to = r.actor.clone().unwrap_or_else(|| msg.env_from.clone());
    if !verified && !notice::poster_may_be_told(ctx, tx, &cfg.name, &to, now)? {
        return Ok(());
    }
    let quoted = parsed.as_ref().filter(|_| verified);
    let subject = quoted
        .and_then(|m| m.subject())
        .map(|s| format!("Re: {}", notice::one_line(s).trim_start_matches("Re: ")))
        .unwrap_or_else(|| format!("[{}] moderation", cfg.name));
    let in_reply_to = quoted.and_then(|m| m.message_id()).map(str::to_string);
    notice::result(ctx, tx, cfg, &to, &r.line, &subject, in_reply_to, now)?;
    Ok(())
}

/// A moderation command sent to the robot (`approve TOKEN`, `reject TOKEN
/// [reason]`, `discard TOKEN`; also `accept` and `ban`). Returns the result
/// line for the robot's reply. The verb must match the token's action.
pub fn command(
    ctx: &Ctx,
    tx: &Connection,
    msg: &Inbound,
    verb: &str,
    token: &str,
    rest: &str,
) -> Result<String, HandlerError> {
    let Some(action) = ModAction::parse(verb) else {
        return Ok(format!("`{verb}` is not a moderation command"));
    };
    if token.trim().is_empty() {
        return Ok(format!("usage: {} TOKEN", action.as_str()));
    }
    let parsed = MessageParser::default().parse(&msg.bytes);
    let r = by_token(
        ctx,
        tx,
        msg.message_id,
        &msg.env_from,
        parsed.as_ref(),
        msg.route.list(),
        Asked::Command(action),
        token,
        Some(rest),
        msg.now,
    )?;
    Ok(r.line)
}
