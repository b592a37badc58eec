//! `subscribe` and `unsubscribe`, under the list's subscription policy
//! (open, confirm, approve, confirm-then-approve, closed) and unsubscribe
//! policy.
//!
//! Trusts the From: only as far as those policies do: the sender's own
//! request on an open list (or where leaving needs no confirmation) acts at
//! once; a change for any other address needs that address's confirmation,
//! and the answer never says whether a third party is a member.

use std::collections::VecDeque;

use super::confirm::confirmation_mail;
use super::mode::{mode_suffix, no_digest, take_mode};
use super::roster::{add_member, remove_member, request_approval, Joining};
use super::{Res, RobotSession};
use crate::address::Address;
use crate::config::{ListConfig, SubscriptionPolicy, UnsubscribePolicy};
use crate::handler::{Ctx, HandlerError};
use crate::robot::requests;
use crate::robot::tokens::TokenAction;
use crate::store::members::{self, DeliveryMode};

impl RobotSession<'_> {
    pub(super) fn subscribe(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let asked_mode = match take_mode(&mut args) {
            Ok(m) => m,
            Err(e) => return Ok(e),
        };
        let list = match self.list_arg(&config, "subscribe", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        if asked_mode.is_some_and(|m| no_digest(list, m)) {
            return Ok(format!(
                "The {} list has no digest; subscribe without `digest=`.",
                list.name
            ));
        }
        let mode = asked_mode.unwrap_or(DeliveryMode::Each);
        let (addr, name, third) = match self.target(&config, &args) {
            Ok(t) => t,
            Err(e) => return Ok(e),
        };
        let who = Joining {
            addr: &addr,
            name: name.as_deref(),
            mode,
        };
        let third_party_text = || {
            format!(
                "A confirmation request has been sent to {addr}. Nothing changes unless that address confirms it."
            )
        };
        if list.subscription == SubscriptionPolicy::Closed {
            return Ok(format!(
                "The {} list is closed: its owners add members themselves. Write to {} if you would like to join.",
                list.name,
                config.list_suffix_address(&list.name, "owner")
            ));
        }
        if members::get(self.conn, &list.name, &addr.key())?.is_some() {
            return Ok(if third {
                third_party_text()
            } else {
                format!("You are already subscribed to {} as {addr}.", list.name)
            });
        }
        if !third && requests::pending_for(self.conn, &list.name, &addr)?.is_some() {
            return Ok(format!(
                "Your request to subscribe {addr} to {} is already waiting for the owners' approval.",
                list.name
            ));
        }
        // a sender whose From: passed DMARC has proven the address already
        let needs_confirmation = third
            || (!self.sender_verified
                && matches!(
                    list.subscription,
                    SubscriptionPolicy::Confirm | SubscriptionPolicy::ConfirmThenApprove
                ));
        if needs_confirmation {
            self.confirmation(list, TokenAction::Subscribe, &who, third)?;
            return Ok(if third {
                third_party_text()
            } else {
                format!(
                    "A confirmation request has been sent to {addr}. Reply to it, or send the `confirm` line it contains, to complete your subscription to {}. It expires in {} days.",
                    list.name, config.robot.token_expiry_days
                )
            });
        }
        let requested_by = self.sender.address.to_string();
        if matches!(
            list.subscription,
            SubscriptionPolicy::Approve | SubscriptionPolicy::ConfirmThenApprove
        ) {
            return request_approval(
                self.ctx,
                self.conn,
                list,
                &who,
                &requested_by,
                false,
                self.now,
                &mut self.mails,
            );
        }
        add_member(self.ctx, self.conn, list, &who, self.now, &mut self.mails)?;
        Ok(format!(
            "{addr} is now subscribed to {}{}.",
            list.name,
            mode_suffix(mode)
        ))
    }

    pub(super) fn unsubscribe(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.list_arg(&config, "unsubscribe", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        let (addr, _name, third) = match self.target(&config, &args) {
            Ok(t) => t,
            Err(e) => return Ok(e),
        };
        let third_party_text = format!(
            "If {addr} is subscribed to {}, a confirmation request has been sent to that address. Nothing changes unless it confirms.",
            list.name
        );
        if members::get(self.conn, &list.name, &addr.key())?.is_none() {
            return Ok(if third {
                third_party_text
            } else {
                format!(
                    "{addr} is not subscribed to {}. If you are subscribed under another address, send the command from that address, or write `unsubscribe {} ADDRESS`.",
                    list.name, list.name
                )
            });
        }
        if third || (!self.sender_verified && list.unsubscription == UnsubscribePolicy::Confirm) {
            let who = Joining {
                addr: &addr,
                name: None,
                mode: DeliveryMode::Each,
            };
            self.confirmation(list, TokenAction::Unsubscribe, &who, third)?;
            return Ok(if third {
                third_party_text
            } else {
                format!(
                    "A confirmation request has been sent to {addr}. Reply to it, or send the `confirm` line it contains, to leave {}.",
                    list.name
                )
            });
        }
        remove_member(self.ctx, self.conn, list, &addr, &mut self.mails)?;
        Ok(format!("{addr} has been unsubscribed from {}.", list.name))
    }
}

/// What a subscription asked for outside a command mail came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeStart {
    /// The list is closed: its owners add members themselves.
    Closed,
    /// A confirmation request was mailed to the address, unless it is a
    /// member already or waits for the owners (the answer does not say).
    Asked,
}

/// Starts `addr`'s subscription to `list` for someone who has not proven
/// the address (the web's subscribe form): the same double opt-in as a
/// `subscribe` command, so nothing changes until the address confirms, and
/// the list's policy (owner approval) applies when it does. The mail is
/// queued in `conn`'s transaction under the robot's reply budgets.
pub fn start_subscription(
    ctx: &Ctx,
    conn: &rusqlite::Connection,
    list: &ListConfig,
    addr: &Address,
    now: i64,
) -> Result<SubscribeStart, HandlerError> {
    if list.subscription == SubscriptionPolicy::Closed {
        return Ok(SubscribeStart::Closed);
    }
    if members::get(conn, &list.name, &addr.key())?.is_some()
        || requests::pending_for(conn, &list.name, addr)?.is_some()
    {
        return Ok(SubscribeStart::Asked);
    }
    let who = Joining {
        addr,
        name: None,
        mode: DeliveryMode::Each,
    };
    let requested_by = addr.to_string();
    let mail = confirmation_mail(
        ctx,
        conn,
        list,
        TokenAction::Subscribe,
        &who,
        &requested_by,
        false,
        now,
    )?;
    crate::robot::send(ctx, conn, vec![mail], None, now)?;
    Ok(SubscribeStart::Asked)
}
