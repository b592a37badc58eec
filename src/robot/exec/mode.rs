//! `set LIST [MODE]` and the delivery-mode words: `set` shows or changes how
//! a member gets the list (each post, the MIME or the plain-text digest, no
//! mail); `subscribe` and `add` take the same modes as Mailman's `digest=`
//! and `mode=` options.
//!
//! Trusts nothing in the From:: a change needs a confirmation from the
//! member's own mailbox unless the sender is verified, and the member is
//! then told of it with a token that undoes it.

use std::collections::VecDeque;

use serde_json::json;

use super::roster::Joining;
use super::{Res, RobotSession};
use crate::address::Address;
use crate::config::ListConfig;
use crate::robot::tokens::{self, TokenAction};
use crate::robot::{template_data, Mail, To};
use crate::store::members::{self, DeliveryMode};
use crate::store::outbound::JobKind;

/// Takes Mailman's `join` options out of a subscribe command's words:
/// `digest=mime|plain|no` (also `yes`, `each`) and `mode=MODE` (any `set`
/// mode). A word with `@` is an address, never an option.
pub(super) fn take_mode(args: &mut VecDeque<String>) -> Result<Option<DeliveryMode>, String> {
    let mut mode = None;
    let mut rest = VecDeque::with_capacity(args.len());
    for word in args.drain(..) {
        let lower = word.to_ascii_lowercase();
        let parsed = match lower.split_once('=') {
            Some(("digest", v)) if !word.contains('@') => match v {
                "mime" | "yes" | "digest" => Some(DeliveryMode::DigestMime),
                "plain" => Some(DeliveryMode::DigestPlain),
                "no" | "each" | "none" => Some(DeliveryMode::Each),
                _ => None,
            },
            Some(("mode", v)) if !word.contains('@') => DeliveryMode::parse(v),
            _ => {
                rest.push_back(word);
                continue;
            }
        };
        match parsed {
            Some(m) => mode = Some(m),
            None => {
                return Err(format!(
                    "Unknown option `{word}`: use digest=mime, digest=plain or digest=no (or mode=each|digest|plain|nomail)."
                ))
            }
        }
    }
    *args = rest;
    Ok(mode)
}

/// Whether `mode` is a digest mode and `list` has digests turned off.
pub(super) fn no_digest(list: &ListConfig, mode: DeliveryMode) -> bool {
    mode.is_digest() && !list.digest.enabled
}

/// ` (the MIME digest)` after a subscription in a mode other than each.
pub(super) fn mode_suffix(mode: DeliveryMode) -> String {
    match mode {
        DeliveryMode::Each => String::new(),
        m => format!(" ({})", mode_text(m)),
    }
}

/// How a member in `mode` gets the list, in words.
pub(super) fn mode_text(mode: DeliveryMode) -> &'static str {
    match mode {
        DeliveryMode::Each => "each post as it is sent",
        DeliveryMode::DigestMime => "the MIME digest",
        DeliveryMode::DigestPlain => "the plain-text digest",
        DeliveryMode::NoMail => "no mail (you stay subscribed)",
    }
}

impl RobotSession<'_> {
    pub(super) fn set(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.list_arg(&config, "set", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        let modes = if list.digest.enabled {
            "each (or mail), digest (or mime), plain, nomail"
        } else {
            "each (or mail), nomail"
        };
        let not_member = || {
            format!(
                "{} is not subscribed to {}.",
                self.sender.address, list.name
            )
        };
        let Some(word) = args.pop_front() else {
            // `set LIST`: the sender's current setting
            let Some(m) = members::get(self.conn, &list.name, &self.sender.address.key())? else {
                return Ok(not_member());
            };
            return Ok(format!(
                "{} gets {} from {}. To change it, send `set {} MODE`, with MODE one of {modes}.",
                self.sender.address,
                mode_text(m.mode),
                list.name,
                list.name
            ));
        };
        let Some(mode) = DeliveryMode::parse(&word) else {
            return Ok(format!("Unknown mode `{word}`. The modes are {modes}."));
        };
        if no_digest(list, mode) {
            return Ok(format!("The {} list has no digest.", list.name));
        }
        let addr = self.sender.address.clone();
        let Some(m) = members::get(self.conn, &list.name, &addr.key())? else {
            return Ok(not_member());
        };
        if m.mode == mode {
            return Ok(format!(
                "{addr} already gets {} from {}.",
                mode_text(mode),
                list.name
            ));
        }
        if self.sender_verified {
            return self.apply_mode(list, &addr, mode);
        }
        // From: is a claim: the member's own mailbox confirms the change
        let who = Joining {
            addr: &addr,
            name: None,
            mode,
        };
        self.confirmation(list, TokenAction::SetMode, &who, false)?;
        Ok(format!(
            "To make sure this comes from {addr}, a confirmation has been sent there. Nothing changes until it is confirmed; then {addr} gets {} from {}.",
            mode_text(mode),
            list.name
        ))
    }

    /// Sets `addr`'s delivery mode (confirmed, or asked for by a verified
    /// sender) and tells the address, with a token that restores the
    /// previous mode.
    pub(super) fn apply_mode(
        &mut self,
        list: &ListConfig,
        addr: &Address,
        mode: DeliveryMode,
    ) -> Res {
        let Some(before) = members::get(self.conn, &list.name, &addr.key())? else {
            return Ok(format!("{addr} is not subscribed to {}.", list.name));
        };
        if no_digest(list, mode) {
            return Ok(format!("The {} list has no digest.", list.name));
        }
        // a confirmed (or verified) `set` proves the mailbox works again:
        // a member disabled by bounces gets mail again
        let reenabled =
            before.disabled && crate::store::bounces::enable(self.conn, &list.name, &addr.key())?;
        if reenabled {
            tracing::info!(list = %list.name, address = %addr, "delivery re-enabled by the member");
        }
        if before.mode == mode && reenabled {
            return Ok(format!(
                "Delivery of {} to {addr} is re-enabled: {addr} gets {} again.",
                list.name,
                mode_text(mode)
            ));
        }
        if before.mode == mode {
            return Ok(format!(
                "{addr} already gets {} from {}.",
                mode_text(mode),
                list.name
            ));
        }
        members::set_mode(self.conn, &list.name, &addr.key(), mode)?;
        tracing::info!(list = %list.name, address = %addr, mode = mode.as_str(), "delivery mode changed");
        let config = self.ctx.config.clone();
        let undo = tokens::issue(
            self.conn,
            &tokens::NewToken {
                list: &list.name,
                action: TokenAction::SetMode,
                address: addr,
                name: None,
                requested_by: &addr.to_string(),
                request_id: None,
                mode: Some(before.mode),
            },
            config.robot.token_expiry_days,
            self.now,
        )?;
        self.mails.push(Mail {
            to: To::One(addr.to_string()),
            list: Some(list.name.clone()),
            template: "mode-changed",
            default_subject: format!("Your delivery from {} changed", list.name),
            data: template_data(
                &config,
                Some(list),
                json!({"address": addr.to_string(), "mode": mode.as_str(),
                       "mode_text": mode_text(mode), "before": before.mode.as_str(),
                       "before_text": mode_text(before.mode), "token": undo,
                       "undo_address": config.list_suffix_address(&list.name, &format!("confirm+{undo}")),
                       "expires": crate::robot::expiry_text(&config, self.now)}),
            ),
            kind: JobKind::Reply,
            reply_to: None,
            answers_command: false,
            limited: true,
            attachment: None,
        });
        Ok(format!(
            "Confirmed: {addr} now gets {} from {}.",
            mode_text(mode),
            list.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{take_mode, DeliveryMode, VecDeque};

    #[test]
    fn join_options_are_taken_out_addresses_stay() {
        let mut args: VecDeque<String> = ["dev", "DIGEST=Plain", "a=b@example.org"]
            .map(String::from)
            .into();
        assert_eq!(take_mode(&mut args), Ok(Some(DeliveryMode::DigestPlain)));
        assert_eq!(args, ["dev", "a=b@example.org"]);
        let mut args: VecDeque<String> = ["mode=nomail"].map(String::from).into();
        assert_eq!(take_mode(&mut args), Ok(Some(DeliveryMode::NoMail)));
        assert!(args.is_empty());
        let mut args: VecDeque<String> = ["dev"].map(String::from).into();
        assert_eq!(take_mode(&mut args), Ok(None));
        for bad in ["digest=weekly", "mode=loud"] {
            let mut args: VecDeque<String> = [bad].map(String::from).into();
            assert!(take_mode(&mut args).unwrap_err().contains(bad));
        }
    }
}
