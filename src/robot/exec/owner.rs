//! What owners do by mail: `add LIST ADDRESS [digest=...]` and
//! `del LIST ADDRESS`, and `approve|reject|discard TOKEN` for a
//! subscription request waiting for their approval (a token that is no
//! request's goes on to moderation).
//!
//! Trusts no From:: an add or del takes effect only once the owner confirms
//! it from their own mailbox, and a decision needs the approval token that
//! was mailed to the owners.

use std::collections::VecDeque;

use super::mode::{no_digest, take_mode};
use super::roster::Joining;
use super::{parse_target, words, Res, RobotSession};
use crate::robot::parse::Verb;
use crate::robot::requests::{self, Decision};
use crate::robot::tokens::{self, Lookup, TokenAction};
use crate::store::members::{self, DeliveryMode};

impl RobotSession<'_> {
    /// `add LIST ADDRESS [digest=...]` and `del LIST ADDRESS`: an owner
    /// changes the membership by mail. Nothing happens until the owner
    /// confirms from their own mailbox (the token goes there, so a forged
    /// From: achieves nothing); then no consent of the address is asked, as
    /// when the owner uses `listd members`, on any subscription policy.
    pub(super) fn owner_change(&mut self, verb: Verb, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let adding = verb == Verb::Add;
        let mode = if adding {
            match take_mode(&mut args) {
                Ok(m) => m.unwrap_or(DeliveryMode::Each),
                Err(e) => return Ok(e),
            }
        } else {
            DeliveryMode::Each
        };
        let list = match self.list_arg(&config, verb.name(), &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        if !self.is_owner(list) {
            return Ok(format!(
                "Only the owners of {} may {} members by mail. To {} yourself, send `{}`.",
                list.name,
                if adding { "add" } else { "remove" },
                if adding { "join" } else { "leave" },
                if adding { "subscribe" } else { "unsubscribe" },
            ));
        }
        if args.is_empty() {
            return Ok(format!(
                "Name the address: `{} {} ADDRESS`.",
                verb.name(),
                list.name
            ));
        }
        if no_digest(list, mode) {
            return Ok(format!("The {} list has no digest.", list.name));
        }
        let (addr, name) = match parse_target(&config, &words(&args)) {
            Ok(t) => t,
            Err(e) => return Ok(e),
        };
        let member = members::get(self.conn, &list.name, &addr.key())?.is_some();
        if adding && member {
            return Ok(format!("{addr} is already subscribed to {}.", list.name));
        }
        if !adding && !member {
            return Ok(format!("{addr} is not subscribed to {}.", list.name));
        }
        let who = Joining {
            addr: &addr,
            name: name.as_deref(),
            mode,
        };
        let action = if adding {
            TokenAction::OwnerAdd
        } else {
            TokenAction::OwnerRemove
        };
        self.confirmation(list, action, &who, false)?;
        Ok(format!(
            "To make sure this comes from you, a confirmation has been sent to {}. Reply to it to {} {addr}.",
            self.sender.address,
            if adding { "add" } else { "remove" }
        ))
    }

    pub(super) fn decide(
        &mut self,
        verb: Verb,
        args: &mut VecDeque<String>,
        decision: Decision,
    ) -> Res {
        let Some(token) = args.pop_front() else {
            return Ok(format!(
                "Write the token after the command: `{} TOKEN`.",
                verb.name()
            ));
        };
        let lookup = tokens::redeem(
            self.conn,
            &token,
            self.route_list.as_deref(),
            &[TokenAction::Approve],
            self.now,
        )?;
        let by = self.sender.address.to_string();
        match lookup {
            Lookup::Valid(row) => {
                let Some(id) = row.request_id else {
                    return Ok("This token belongs to no request.".into());
                };
                match requests::decide(
                    self.ctx,
                    self.conn,
                    id,
                    &decision,
                    &by,
                    self.now,
                    &mut self.mails,
                )? {
                    Ok(text) | Err(text) => Ok(text),
                }
            }
            Lookup::Expired(row) => Ok(format!(
                "This approval token has expired. The request is still waiting: decide it on the server with `listd requests {}`.",
                row.list
            )),
            Lookup::AlreadyUsed(_) => Ok("This request was already decided.".into()),
            Lookup::Unknown => self.moderation_command(verb, &token, &words(args)),
        }
    }
}
