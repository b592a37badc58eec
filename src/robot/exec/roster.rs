//! Membership changes that take effect now: `add_member` (with the welcome,
//! and the owners' notice when the list asks for one), `remove_member`
//! (with the goodbye), and `request_approval` (a request the owners decide,
//! its token mailed to them). Called once consent is settled: by the
//! commands, and by `robot::requests` when an owner approves.
//!
//! Trusts its callers to have settled consent; it checks only whether the
//! address is already a member (or a request already waits).

use rusqlite::Connection;
use serde_json::json;

use super::mode::{mode_text, no_digest};
use super::Res;
use crate::address::Address;
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError};
use crate::robot::requests;
use crate::robot::tokens::{self, TokenAction};
use crate::robot::{template_data, Mail, To};
use crate::store::members::{self, DeliveryMode};
use crate::store::outbound::JobKind;

/// Who is joining a list, and how they asked to get it.
#[derive(Debug, Clone, Copy)]
pub struct Joining<'a> {
    pub addr: &'a Address,
    pub name: Option<&'a str>,
    pub mode: DeliveryMode,
}

/// Subscribes `who` now: the welcome goes to it, and a notice to the owners
/// when the list asks for one. Returns false if it was already a member.
pub fn add_member(
    ctx: &Ctx,
    conn: &Connection,
    list: &ListConfig,
    who: &Joining<'_>,
    now: i64,
    mails: &mut Vec<Mail>,
) -> Result<bool, HandlerError> {
    let addr = who.addr;
    // a digest mode asked for before the list's digests were turned off
    let mode = if no_digest(list, who.mode) {
        DeliveryMode::Each
    } else {
        who.mode
    };
    if !members::add_new(
        conn,
        &list.name,
        &addr.to_string(),
        &addr.key(),
        who.name,
        mode,
        list.moderate_new_members,
        now,
    )? {
        return Ok(false);
    }
    tracing::info!(list = %list.name, address = %addr, "member added");
    let config = &ctx.config;
    mails.push(Mail {
        to: To::One(addr.to_string()),
        list: Some(list.name.clone()),
        template: "welcome",
        default_subject: format!("Welcome to the {} mailing list", list.name),
        data: template_data(
            config,
            Some(list),
            json!({"address": addr.to_string(), "mode": mode.as_str(),
                   "mode_text": mode_text(mode)}),
        ),
        kind: JobKind::Reply,
        reply_to: None,
        answers_command: false,
        limited: true,
        attachment: None,
    });
    owner_notice(ctx, list, addr, true, mails);
    Ok(true)
}

/// Unsubscribes `addr` now: the goodbye goes to it, and a notice to the
/// owners when the list asks for one. Returns false if it was not a member.
pub fn remove_member(
    ctx: &Ctx,
    conn: &Connection,
    list: &ListConfig,
    addr: &Address,
    mails: &mut Vec<Mail>,
) -> Result<bool, HandlerError> {
    if !members::remove(conn, &list.name, &addr.key())? {
        return Ok(false);
    }
    tracing::info!(list = %list.name, address = %addr, "member removed");
    mails.push(Mail {
        to: To::One(addr.to_string()),
        list: Some(list.name.clone()),
        template: "goodbye",
        default_subject: format!("You have left the {} mailing list", list.name),
        data: template_data(
            &ctx.config,
            Some(list),
            json!({"address": addr.to_string()}),
        ),
        kind: JobKind::Reply,
        reply_to: None,
        answers_command: false,
        limited: true,
        attachment: None,
    });
    owner_notice(ctx, list, addr, false, mails);
    Ok(true)
}

fn owner_notice(ctx: &Ctx, list: &ListConfig, addr: &Address, joined: bool, mails: &mut Vec<Mail>) {
    if !list.notify_owners || list.owners.is_empty() {
        return;
    }
    mails.push(Mail {
        to: To::Owners(list.owners.clone()),
        list: Some(list.name.clone()),
        template: "owner-notice",
        default_subject: format!(
            "{addr} has {} {}",
            if joined { "joined" } else { "left" },
            list.name
        ),
        data: template_data(
            &ctx.config,
            Some(list),
            json!({"address": addr.to_string(), "subscribed": joined,
                   "event": if joined { "subscribe" } else { "unsubscribe" }}),
        ),
        kind: JobKind::Notice,
        reply_to: None,
        answers_command: false,
        limited: false,
        attachment: None,
    });
}

/// Records a request for the owners and mails them an approval token.
/// Returns the text for whoever asked.
#[allow(clippy::too_many_arguments)]
pub fn request_approval(
    ctx: &Ctx,
    conn: &Connection,
    list: &ListConfig,
    who: &Joining<'_>,
    requested_by: &str,
    confirmed: bool,
    now: i64,
    mails: &mut Vec<Mail>,
) -> Res {
    let (addr, name) = (who.addr, who.name);
    if requests::pending_for(conn, &list.name, addr)?.is_some() {
        return Ok(format!(
            "A request to subscribe {addr} to {} is already waiting for the owners' approval.",
            list.name
        ));
    }
    let id = requests::create(conn, &list.name, who, requested_by, now)?;
    let config = &ctx.config;
    let token = tokens::issue(
        conn,
        &tokens::NewToken {
            list: &list.name,
            action: TokenAction::Approve,
            address: addr,
            name,
            requested_by,
            request_id: Some(id),
            mode: None,
        },
        config.robot.token_expiry_days,
        now,
    )?;
    if list.owners.is_empty() {
        tracing::warn!(list = %list.name, request = id, "subscription request waits for approval, but the list has no owners to ask; see `listd requests`");
    }
    mails.push(Mail {
        to: To::Owners(list.owners.clone()),
        list: Some(list.name.clone()),
        template: "owner-approval",
        default_subject: format!("approve {token}"),
        data: template_data(
            config,
            Some(list),
            json!({"address": addr.to_string(), "name": name, "requester": requested_by,
                   "token": token, "request_id": id, "confirmed": confirmed,
                   "expires": crate::robot::expiry_text(config, now)}),
        ),
        kind: JobKind::Notice,
        reply_to: None,
        answers_command: false,
        limited: false,
        attachment: None,
    });
    Ok(format!(
        "Your request to subscribe {addr} to {} has been sent to the list owners for approval. You will get a message when they decide.",
        list.name
    ))
}
