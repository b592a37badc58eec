//! Confirmation tokens, both ends: `confirmation` mails a token to the
//! mailbox whose consent a change needs (the owner's own for an owner's
//! add/del), once per request per command mail; `confirm TOKEN` redeems it
//! and makes the change (subscribe, unsubscribe, an owner's add/del, a mode
//! change), or hands a held post's token on to moderation.
//!
//! Trusts only the token: list, address and action come from its stored
//! row, never from the mail that redeems it, and the list's subscription
//! policy and owners are read again at redemption.

use std::collections::VecDeque;

use serde_json::json;

use super::mode::{mode_suffix, mode_text};
use super::roster::{add_member, remove_member, request_approval, Joining};
use super::{Res, RobotSession};
use crate::address::Address;
use crate::config::{ListConfig, SubscriptionPolicy};
use crate::handler::HandlerError;
use crate::robot::parse::Verb;
use crate::robot::tokens::{self, Lookup, TokenAction};
use crate::robot::{template_data, Mail, To};
use crate::store::members::DeliveryMode;
use crate::store::outbound::JobKind;

/// Issues a confirmation token for `action` on `list` and returns the mail
/// that asks for it: to the address whose consent the change needs (the
/// requesting owner's own mailbox for an owner's add/del). Shared by command
/// mail and `start_subscription` (the web's subscribe form).
#[allow(clippy::too_many_arguments)]
pub(crate) fn confirmation_mail(
    ctx: &crate::handler::Ctx,
    conn: &rusqlite::Connection,
    list: &ListConfig,
    action: TokenAction,
    who: &Joining<'_>,
    requested_by: &str,
    third: bool,
    now: i64,
) -> Result<Mail, HandlerError> {
    let (addr, name) = (who.addr, who.name);
    let config = &ctx.config;
    let token = tokens::issue(
        conn,
        &tokens::NewToken {
            list: &list.name,
            action,
            address: addr,
            name,
            requested_by,
            request_id: None,
            mode: (who.mode != DeliveryMode::Each || action == TokenAction::SetMode)
                .then_some(who.mode),
        },
        config.robot.token_expiry_days,
        now,
    )?;
    let confirm_address = config.list_suffix_address(&list.name, &format!("confirm+{token}"));
    let template = match action {
        TokenAction::Subscribe => "confirm-subscribe",
        TokenAction::OwnerAdd | TokenAction::OwnerRemove => "confirm-owner",
        TokenAction::SetMode => "confirm-set",
        _ => "confirm-unsubscribe",
    };
    // an owner's add/del is confirmed by that owner's mailbox, so a
    // forged From: reaches only the real owner
    let to = if action.by_owner() {
        requested_by.to_string()
    } else {
        addr.to_string()
    };
    Ok(Mail {
        to: To::One(to),
        list: Some(list.name.clone()),
        template,
        default_subject: format!("confirm {token}"),
        data: template_data(
            config,
            Some(list),
            json!({"address": addr.to_string(), "token": token,
                   "confirm_address": confirm_address, "requester": requested_by,
                   "third_party": third, "action": action.as_str(),
                   "mode_text": mode_text(who.mode),
                   "expires": crate::robot::expiry_text(config, now)}),
        ),
        kind: JobKind::Reply,
        reply_to: Some(confirm_address),
        // only the address's own command mail is answered in-thread
        answers_command: !third || action.by_owner(),
        limited: true,
        attachment: None,
    })
}

impl RobotSession<'_> {
    pub(super) fn confirmation(
        &mut self,
        list: &ListConfig,
        action: TokenAction,
        who: &Joining<'_>,
        third: bool,
    ) -> Result<(), HandlerError> {
        let addr = who.addr;
        // two `set` commands for different modes are two requests
        let mode_key = if action == TokenAction::SetMode {
            who.mode.as_str()
        } else {
            ""
        };
        let key = (list.name.clone(), action.as_str(), addr.key(), mode_key);
        if self.confirmations.contains(&key) {
            // the same request twice in one mail: one confirmation
            return Ok(());
        }
        self.confirmations.push(key);
        let requested_by = self.sender.address.to_string();
        let mail = confirmation_mail(
            self.ctx,
            self.conn,
            list,
            action,
            who,
            &requested_by,
            third,
            self.now,
        )?;
        self.mails.push(mail);
        Ok(())
    }

    pub(super) fn confirm(&mut self, mut args: VecDeque<String>) -> Res {
        let Some(token) = args.pop_front() else {
            return Ok("Write the token after the command: `confirm TOKEN`.".into());
        };
        let lookup = tokens::redeem(
            self.conn,
            &token,
            self.route_list.as_deref(),
            &[
                TokenAction::Subscribe,
                TokenAction::Unsubscribe,
                TokenAction::OwnerAdd,
                TokenAction::OwnerRemove,
                TokenAction::SetMode,
            ],
            self.now,
        )?;
        let row = match lookup {
            Lookup::Valid(row) => row,
            Lookup::Expired(row) => {
                return Ok(format!(
                    "This confirmation has expired (confirmations are valid for {} days), so nothing was changed. For a new one, send `{}` to {}.",
                    self.ctx.config.robot.token_expiry_days.max(1),
                    row.action.command(),
                    self.ctx.config.list_suffix_address(&row.list, "request")
                ))
            }
            Lookup::AlreadyUsed(_) => {
                return Ok("This confirmation was already used; there is nothing more to do.".into())
            }
            // a held post's confirmation (moderation tokens are 32 hex digits)
            Lookup::Unknown if crate::moderation::token::normalise(&token).is_some() => {
                return self.moderation_command(Verb::Confirm, &token, "");
            }
            Lookup::Unknown => {
                return Ok(format!(
                    "No request is waiting for this confirmation token. Check that you copied the whole token ({} letters and digits).",
                    tokens::TOKEN_LEN
                ))
            }
        };
        let config = self.ctx.config.clone();
        let Some(list) = config.list(&row.list) else {
            return Ok(format!("The list {} no longer exists.", row.list));
        };
        let addr = Address::parse(&row.address).map_err(|e| {
            HandlerError::Corrupt(format!("stored token address `{}`: {e}", row.address))
        })?;
        let who = Joining {
            addr: &addr,
            name: row.name.as_deref(),
            mode: row.mode.unwrap_or(DeliveryMode::Each),
        };
        match row.action {
            TokenAction::Subscribe => {
                if list.subscription == SubscriptionPolicy::Closed {
                    return Ok(format!(
                        "The {} list has been closed since you asked; its owners add members themselves.",
                        list.name
                    ));
                }
                if matches!(
                    list.subscription,
                    SubscriptionPolicy::Approve | SubscriptionPolicy::ConfirmThenApprove
                ) {
                    let text = request_approval(
                        self.ctx,
                        self.conn,
                        list,
                        &who,
                        &row.requested_by,
                        true,
                        self.now,
                        &mut self.mails,
                    )?;
                    return Ok(format!("Thank you for confirming. {text}"));
                }
                if add_member(self.ctx, self.conn, list, &who, self.now, &mut self.mails)? {
                    Ok(format!(
                        "Confirmed: {addr} is now subscribed to {}{}.",
                        list.name,
                        mode_suffix(who.mode)
                    ))
                } else {
                    Ok(format!("{addr} is already subscribed to {}.", list.name))
                }
            }
            TokenAction::Unsubscribe => {
                if remove_member(self.ctx, self.conn, list, &addr, &mut self.mails)? {
                    Ok(format!(
                        "Confirmed: {addr} has been unsubscribed from {}.",
                        list.name
                    ))
                } else {
                    Ok(format!("{addr} was not subscribed to {}.", list.name))
                }
            }
            TokenAction::OwnerAdd | TokenAction::OwnerRemove
                if !list.is_owner(&row.requested_by) =>
            {
                Ok(format!(
                    "{} is no longer an owner of {}, so nothing was changed.",
                    row.requested_by, list.name
                ))
            }
            TokenAction::OwnerAdd => {
                if add_member(self.ctx, self.conn, list, &who, self.now, &mut self.mails)? {
                    tracing::info!(list = %list.name, address = %addr, by = %row.requested_by, "member added by an owner by mail");
                    Ok(format!(
                        "Confirmed: {addr} has been added to {}{}.",
                        list.name,
                        mode_suffix(who.mode)
                    ))
                } else {
                    Ok(format!("{addr} is already subscribed to {}.", list.name))
                }
            }
            TokenAction::OwnerRemove => {
                if remove_member(self.ctx, self.conn, list, &addr, &mut self.mails)? {
                    tracing::info!(list = %list.name, address = %addr, by = %row.requested_by, "member removed by an owner by mail");
                    Ok(format!(
                        "Confirmed: {addr} has been removed from {}.",
                        list.name
                    ))
                } else {
                    Ok(format!("{addr} was not subscribed to {}.", list.name))
                }
            }
            TokenAction::SetMode => self.apply_mode(list, &addr, who.mode),
            TokenAction::Approve => Ok("This token is not a confirmation.".into()),
        }
    }
}
