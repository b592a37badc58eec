//! Executing one command. `RobotSession` holds what the commands of one
//! command mail share (the sender, the list the mail came to, the mail
//! caused so far), dispatches each command line from its `Verb` to the
//! family that runs it, and keeps the helpers the families share: the list
//! a command names, the address it is for, and what the sender is to a list.
//!
//! The families, a file each: `subscription` (subscribe, unsubscribe),
//! `confirm` (confirmation tokens, sent and redeemed), `mode` (set, and the
//! delivery-mode words), `info` (help, lists, info, who, which, echo),
//! `archive` (index, get, password), `owner` (add, del, and approve/reject/discard of
//! a subscription request), `moderation` (the one call into moderation);
//! `roster` makes the membership changes they settle on.
//!
//! Each command returns the text echoed under it in the results reply, and
//! pushes any other mail it causes (confirmation requests, welcome, goodbye,
//! owner notices) onto the session as `Mail` values; nothing is sent here.
//!
//! Trusts the sender identity only as far as mail allows: anything that
//! changes a membership on behalf of an address other than the sender needs
//! a confirmation from that address, a delivery-mode change (`set`) needs
//! one from the member's own mailbox whoever the From: says (the member is
//! then told, with a token that undoes it), answers never reveal whether a
//! third party is a member, and a membership listing is shown only under
//! the list's `who` policy.

mod archive;
mod confirm;
mod info;
mod mode;
mod moderation;
mod owner;
pub mod roster;
mod subscription;

pub use subscription::{start_subscription, SubscribeStart};

use std::collections::VecDeque;

use rusqlite::Connection;

use super::parse::{CommandLine, Verb};
use super::requests::Decision;
use super::{robot_address, site_robot, Identity, Mail};
use crate::address::Address;
use crate::config::{Access, Config, ListConfig};
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::store::members::{self, DeliveryMode};

/// The state one command mail's commands run in.
pub struct RobotSession<'a> {
    pub ctx: &'a Ctx,
    /// The handler's transaction.
    pub conn: &'a Connection,
    pub msg: &'a Inbound,
    pub sender: Identity,
    /// The list implied by the address the mail came to (`NAME-request@` ...).
    pub route_list: Option<String>,
    pub now: i64,
    /// Mail caused by the commands so far (the results reply is not here).
    pub mails: Vec<Mail>,
    /// Confirmations already sent by this mail: (list, action, address
    /// key, mode for `set`).
    confirmations: Vec<(String, &'static str, String, &'static str)>,
    /// Whether an unknown line was already answered (the pointer to `help`
    /// is given once, not under each of 25 lines).
    unknown_seen: bool,
    /// Whether the sender is a member of some list here (looked up once).
    member_somewhere: Option<bool>,
    /// The sender's address is proven (its From: passed DMARC at our
    /// intake), so a change it asks for in its own name needs no
    /// confirmation.
    pub sender_verified: bool,
    /// The verdict intake stored with the mail (`None`: not checked).
    pub verdict: Option<crate::auth::AuthVerdict>,
}

type Res = Result<String, HandlerError>;

fn words(args: &VecDeque<String>) -> String {
    args.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// A token as written, without the quotes, brackets or punctuation people
/// copy around it (`<abc>`, `` `abc` ``, `abc.`); tokens are letters and
/// digits only.
pub fn token_word(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Parses the address part of `subscribe LIST ADDRESS`: `addr`, `<addr>` or
/// `Name <addr>`. Addresses at our own domain are refused (they are lists or
/// the robot's own addresses; owners nest lists on the server).
pub fn parse_target(config: &Config, rest: &str) -> Result<(Address, Option<String>), String> {
    let rest = rest.trim();
    let (addr, name) = match (rest.rfind('<'), rest.rfind('>')) {
        (Some(lt), Some(gt)) if lt < gt => {
            let name = rest[..lt].trim().trim_matches('"').trim();
            (
                &rest[lt + 1..gt],
                (!name.is_empty()).then(|| name.to_string()),
            )
        }
        _ => (rest, None),
    };
    let a = Address::parse(addr).map_err(|e| format!("`{addr}` is not a valid address: {e}."))?;
    if config.serves_domain(a.domain()) {
        return Err(format!(
            "`{a}` is an address of this list server; it cannot be subscribed by mail."
        ));
    }
    Ok((a, name))
}

impl<'a> RobotSession<'a> {
    pub fn new(
        ctx: &'a Ctx,
        conn: &'a Connection,
        msg: &'a Inbound,
        sender: Identity,
        route_list: Option<String>,
        now: i64,
    ) -> RobotSession<'a> {
        RobotSession {
            ctx,
            conn,
            msg,
            sender,
            route_list,
            now,
            mails: Vec::new(),
            confirmations: Vec::new(),
            unknown_seen: false,
            member_somewhere: None,
            sender_verified: false,
            verdict: None,
        }
    }

    fn robot(&self) -> String {
        robot_address(&self.ctx.config, self.route_list.as_deref())
    }

    /// The sender is an owner of `list`, and believed: a From: whose
    /// domain publishes DMARC (or whose policy intake could not read) must
    /// have passed it.
    fn is_owner(&self, list: &ListConfig) -> bool {
        let addr = self.sender.address.to_string();
        list.is_owner(&addr) && self.verdict.as_ref().is_none_or(|v| v.may_act_as(&addr))
    }

    fn is_member(&self, list: &ListConfig) -> Result<bool, HandlerError> {
        Ok(members::get(self.conn, &list.name, &self.sender.address.key())?.is_some())
    }

    /// Whether the sender passes a list's `who` / `archive_access` policy.
    /// "trusted" means trusted networks for EXPN; by mail there is no
    /// network to trust, so it is read as owners-only.
    fn may(&self, list: &ListConfig, access: Access) -> Result<bool, HandlerError> {
        Ok(match access {
            Access::Anyone => true,
            Access::Members => self.is_owner(list) || self.is_member(list)?,
            Access::Owners | Access::Trusted => self.is_owner(list),
            Access::Nobody => false,
        })
    }

    /// Whether the sender is a member of some list on this server. The
    /// From: is still a claim, but text reflected to it then reaches at
    /// most a member.
    pub fn sender_is_member(&mut self) -> Result<bool, HandlerError> {
        if let Some(known) = self.member_somewhere {
            return Ok(known);
        }
        let known = members::is_member_anywhere(self.conn, &self.sender.address.key())?;
        self.member_somewhere = Some(known);
        Ok(known)
    }

    /// The command line as the results reply repeats it. A member sees the
    /// line as written. Anyone else may be a forged sender, so no text of
    /// theirs is repeated: a line that is no command is not shown, `echo`
    /// shows only its verb, and of other commands only the verb, list
    /// names, token-shaped words and known options are shown (`...` for
    /// each other word).
    pub fn shown(&mut self, cmd: &CommandLine) -> Result<String, HandlerError> {
        if self.sender_is_member()? {
            return Ok(cmd.text.clone());
        }
        let Some(verb) = cmd.verb else {
            return Ok("(a line that is no command; not repeated)".into());
        };
        if verb == Verb::Echo {
            return Ok(verb.name().into());
        }
        // the verb as written (a known verb or alias)
        let written = cmd.text.split_whitespace().next().unwrap_or(verb.name());
        let mut words = vec![written.to_string()];
        for a in &cmd.args {
            words.push(if self.harmless_word(a) {
                a.clone()
            } else {
                "...".into()
            });
        }
        Ok(words.join(" "))
    }

    /// A command argument that carries no free text: a configured list's
    /// name or address, a delivery mode, a mailbox address, a date or month,
    /// a token-shaped word, or a known `key=value` option.
    fn harmless_word(&self, a: &str) -> bool {
        let date = a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if date
            || DeliveryMode::parse(&a.to_ascii_lowercase()).is_some()
            || Address::parse(a.trim_matches(['<', '>'])).is_ok()
        {
            return true;
        }
        let config = &self.ctx.config;
        let lc = a.to_ascii_lowercase();
        let list =
            lc.split_once('@').map_or(
                lc.as_str(),
                |(l, d)| {
                    if d == config.list_domain(l) {
                        l
                    } else {
                        ""
                    }
                },
            );
        let token = token_word(a);
        let option = lc
            .split_once('=')
            .is_some_and(|(k, v)| matches!(k, "digest" | "mode") && v.len() <= 8);
        config.list(list).is_some()
            || (token == a && (16..=64).contains(&a.len()))
            || (option && lc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'='))
    }

    /// Runs one command line; returns the text for the results reply.
    pub fn run(&mut self, cmd: &CommandLine) -> Res {
        let Some(verb) = cmd.verb else {
            if std::mem::replace(&mut self.unknown_seen, true) {
                return Ok("Unknown command.".into());
            }
            return Ok(format!(
                "Unknown command. Send `help` to {} for the commands this robot knows.",
                self.robot()
            ));
        };
        let mut args: VecDeque<String> = cmd.args.iter().cloned().collect();
        if verb.takes_token() {
            if let Some(t) = args.front_mut() {
                *t = token_word(t);
            }
        }
        match verb {
            Verb::Subscribe => self.subscribe(args),
            Verb::Unsubscribe => self.unsubscribe(args),
            Verb::Confirm => self.confirm(args),
            Verb::Help => self.help(),
            Verb::Lists => self.lists(),
            Verb::Info => self.info(args),
            Verb::Who => self.who(args),
            Verb::Which => self.which(),
            Verb::Set => self.set(args),
            Verb::Index => self.index(args),
            Verb::Get => self.get(args),
            Verb::Password => self.password(args),
            Verb::Echo => self.echo(&args),
            Verb::Add | Verb::Del => self.owner_change(verb, args),
            Verb::Approve => self.decide(verb, &mut args, Decision::Approve),
            Verb::Reject => {
                let reason = words(&args.iter().skip(1).cloned().collect());
                self.decide(
                    verb,
                    &mut args,
                    Decision::Reject((!reason.is_empty()).then_some(reason)),
                )
            }
            Verb::Discard => self.decide(verb, &mut args, Decision::Discard),
            Verb::Accept | Verb::Ban => self.moderate(verb, args),
            Verb::End => Ok(String::new()),
        }
    }

    /// Takes the list a command names. On `NAME-request@` the list is
    /// implied and may be left out; on `majordomo@` it must be given.
    fn list_arg<'c>(
        &self,
        config: &'c Config,
        verb: &str,
        args: &mut VecDeque<String>,
    ) -> Result<&'c ListConfig, String> {
        match &self.route_list {
            Some(name) => {
                let here = config
                    .list(name)
                    .ok_or_else(|| format!("The list {name} no longer exists."))?;
                if let Some(first) = args.front() {
                    if !first.contains('@') && !first.contains('<') {
                        let lc = first.to_ascii_lowercase();
                        if lc == here.name {
                            args.pop_front();
                        } else if config.list(&lc).is_some() {
                            return Err(format!(
                                "This address only handles the {} list. Send commands for {lc} to {}.",
                                here.name,
                                config.list_suffix_address(&lc, "request")
                            ));
                        }
                    }
                }
                Ok(here)
            }
            None => {
                let robot = site_robot(config);
                let Some(first) = args.pop_front() else {
                    return Err(format!(
                        "Name the list: `{verb} LIST`. Send `lists` to {robot} for the lists here."
                    ));
                };
                if first.contains('@') {
                    return Err(format!(
                        "Name the list first: `{verb} LIST ...`. Send `lists` to {robot} for the lists here."
                    ));
                }
                config.list(&first).ok_or_else(|| {
                    format!(
                        "There is no list named `{first}` here. Send `lists` to {robot} for the lists."
                    )
                })
            }
        }
    }

    /// The address a subscribe/unsubscribe is for: the sender, or the one
    /// named. Returns (address, name, whether it is someone else).
    fn target(
        &self,
        config: &Config,
        args: &VecDeque<String>,
    ) -> Result<(Address, Option<String>, bool), String> {
        let rest = words(args);
        if rest.is_empty() {
            return Ok((self.sender.address.clone(), self.sender.name.clone(), false));
        }
        let (a, name) = parse_target(config, &rest)?;
        let third = a.key() != self.sender.address.key();
        let name = name.or_else(|| (!third).then(|| self.sender.name.clone()).flatten());
        Ok((a, name, third))
    }
}
