//! Executing one command: the subscription policies, confirmations, owner
//! approvals, `who` / `which` / `info` / `lists` / `set` / `help`, and the
//! archive by mail (`index`, `get`) under the list's `archive_access`.
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

use std::collections::VecDeque;

use rusqlite::Connection;
use serde_json::json;

use super::parse::{CommandLine, Verb};
use super::requests::{self, Decision};
use super::tokens::{self, Lookup, TokenAction};
use super::{robot_address, site_robot, template_data, Identity, Mail, To};
use crate::address::Address;
use crate::config::{Access, Config, ListConfig, SubscriptionPolicy, UnsubscribePolicy};
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::store::members::{self, DeliveryMode};
use crate::store::outbound::JobKind;

/// Whether `s` reads `YYYY-MM`.
fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(
            &s[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

/// An archive index error: the store's stay errors (the mail is retried).
fn archive_error(e: crate::archive::ArchiveError) -> HandlerError {
    match e {
        crate::archive::ArchiveError::Store(e) => e.into(),
        other => HandlerError::Temporary(other.to_string()),
    }
}

/// Takes Mailman's `join` options out of a subscribe command's words:
/// `digest=mime|plain|no` (also `yes`, `each`) and `mode=MODE` (any `set`
/// mode). A word with `@` is an address, never an option.
fn take_mode(args: &mut VecDeque<String>) -> Result<Option<DeliveryMode>, String> {
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
fn no_digest(list: &ListConfig, mode: DeliveryMode) -> bool {
    mode.is_digest() && !list.digest.enabled
}

/// ` (the MIME digest)` after a subscription in a mode other than each.
fn mode_suffix(mode: DeliveryMode) -> String {
    match mode {
        DeliveryMode::Each => String::new(),
        m => format!(" ({})", mode_text(m)),
    }
}

/// Most addresses listed by one `who` reply.
pub const WHO_MAX: usize = 5000;

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
    /// The sender's address is proven, so a change it asks for in its own
    /// name needs no confirmation. Nothing sets it yet: the seam for a
    /// DMARC-aligned DKIM pass.
    pub sender_verified: bool,
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
    if a.domain().eq_ignore_ascii_case(&config.domain) {
        return Err(format!(
            "`{a}` is an address of this list server; it cannot be subscribed by mail."
        ));
    }
    Ok((a, name))
}

/// Who is joining a list, and how they asked to get it.
#[derive(Debug, Clone, Copy)]
pub struct Joining<'a> {
    pub addr: &'a Address,
    pub name: Option<&'a str>,
    pub mode: DeliveryMode,
}

/// How a member in `mode` gets the list, in words.
pub fn mode_text(mode: DeliveryMode) -> &'static str {
    match mode {
        DeliveryMode::Each => "each post as it is sent",
        DeliveryMode::DigestMime => "the MIME digest",
        DeliveryMode::DigestPlain => "the plain-text digest",
        DeliveryMode::NoMail => "no mail (you stay subscribed)",
    }
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
                   "expires": super::expiry_text(config, now)}),
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
        }
    }

    fn robot(&self) -> String {
        robot_address(&self.ctx.config, self.route_list.as_deref())
    }

    fn is_owner(&self, list: &ListConfig) -> bool {
        list.is_owner(&self.sender.address.to_string())
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

    /// The list an archive command names, if the sender may read its
    /// archive; else the answer to give.
    fn archive_list<'c>(
        &self,
        config: &'c Config,
        verb: &str,
        args: &mut VecDeque<String>,
    ) -> Result<Result<&'c ListConfig, String>, HandlerError> {
        let list = match self.list_arg(config, verb, args) {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        if !list.archive {
            return Ok(Err(format!("The {} list keeps no archive.", list.name)));
        }
        if !self.may(list, list.archive_access)? {
            tracing::info!(list = %list.name, sender = %self.sender.address, verb, "archive access refused by policy");
            return Ok(Err(format!(
                "The archive of {} is not available to you.",
                list.name
            )));
        }
        Ok(Ok(list))
    }

    /// `index LIST`: the archive's month files, with their posts and sizes.
    fn index(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.archive_list(&config, "index", &mut args)? {
            Ok(l) => l,
            Err(answer) => return Ok(answer),
        };
        let months = crate::archive::months(self.conn, &list.name).map_err(archive_error)?;
        if months.is_empty() {
            return Ok(format!("The archive of {} is empty.", list.name));
        }
        let mut out = format!(
            "The archive of {} has {} month{}:\n",
            list.name,
            months.len(),
            if months.len() == 1 { "" } else { "s" }
        );
        for m in &months {
            out.push_str(&format!(
                "  {}  {:>6} post{}  {:>6} KB\n",
                m.month,
                m.posts,
                if m.posts == 1 { " " } else { "s" },
                (m.bytes + 1023) / 1024
            ));
        }
        out.push_str(&format!(
            "Send `get {} YYYY-MM` for a month as an mbox file.",
            list.name
        ));
        Ok(out)
    }

    /// `get LIST YYYY-MM`: one archive month, mailed to the sender as an
    /// `application/mbox` attachment (at most `robot.max_get_size` bytes).
    fn get(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.archive_list(&config, "get", &mut args)? {
            Ok(l) => l,
            Err(answer) => return Ok(answer),
        };
        let Some(month) = args.pop_front().filter(|m| is_month(m)) else {
            return Ok(format!(
                "Name the month: `get {} YYYY-MM`. Send `index {}` for the months there are.",
                list.name, list.name
            ));
        };
        let to = self.sender.address.to_string();
        let budget = crate::limits::get_budget(&config.robot, &to);
        let asked = self.mails.iter().filter(|m| m.attachment.is_some()).count() as i64;
        let used = crate::store::rate::count(self.conn, &budget.bucket, budget.window, self.now)?;
        if !budget.allows(used + asked) {
            return Ok(format!(
                "This robot mails at most {} archive months a day to one address. Try again tomorrow.",
                budget.limit
            ));
        }
        let Some(m) =
            crate::archive::month(self.conn, &list.name, &month).map_err(archive_error)?
        else {
            return Ok(format!(
                "The archive of {} has nothing for {month}. Send `index {}` for the months there are.",
                list.name, list.name
            ));
        };
        let max = config.robot.max_get_size;
        if m.bytes as u64 > max {
            return Ok(format!(
                "The archive of {} for {month} is {} KB, more than the {} KB this robot mails. Ask the list owners at {}.",
                list.name,
                (m.bytes + 1023) / 1024,
                max / 1024,
                config.list_suffix_address(&list.name, "owner")
            ));
        }
        let mut mbox = Vec::with_capacity(m.bytes as usize);
        let posts = match crate::archive::export(
            &config.data_dir,
            self.conn,
            &list.name,
            crate::archive::Select::Month(&month),
            &mut mbox,
        ) {
            Ok(n) => n,
            Err(crate::archive::ArchiveError::Store(e)) => return Err(e.into()),
            Err(e) => {
                tracing::error!(list = %list.name, month = %month, error = %e, "archive month cannot be read for `get`");
                return Ok(format!(
                    "The archive of {} for {month} cannot be read just now. Please tell the list owners at {}.",
                    list.name,
                    config.list_suffix_address(&list.name, "owner")
                ));
            }
        };
        self.mails.push(Mail {
            to: To::One(to.clone()),
            list: Some(list.name.clone()),
            template: "archive-get",
            default_subject: format!("{} archive, {month}", list.name),
            data: template_data(
                &config,
                Some(list),
                json!({"address": to, "month": month, "posts": posts,
                       "bytes": mbox.len()}),
            ),
            kind: JobKind::Reply,
            reply_to: None,
            answers_command: true,
            limited: true,
            attachment: Some(super::answer::Attachment {
                content_type: "application/mbox".into(),
                filename: format!("{}-{month}.mbox", list.name),
                bytes: mbox,
            }),
        });
        Ok(format!(
            "The archive of {} for {month} ({posts} post{}) is on its way to you in a separate message.",
            list.name,
            if posts == 1 { "" } else { "s" }
        ))
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

    /// `echo TEXT`: the text back, to members only; anyone else could make
    /// the robot mail their text to a forged From:.
    fn echo(&mut self, args: &VecDeque<String>) -> Res {
        if self.sender_is_member()? {
            Ok(words(args))
        } else {
            Ok("echo: only members get their text echoed.".into())
        }
    }

    /// The command line as the results reply repeats it: an `echo` line of
    /// a non-member is shown without its text.
    pub fn shown(&mut self, cmd: &CommandLine) -> Result<String, HandlerError> {
        if cmd.verb == Some(Verb::Echo) && !self.sender_is_member()? {
            return Ok(Verb::Echo.name().into());
        }
        Ok(cmd.text.clone())
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
            Verb::Accept | Verb::Ban => {
                let Some(token) = args.pop_front() else {
                    return Ok(format!(
                        "Write the token after the command: `{} TOKEN`.",
                        verb.name()
                    ));
                };
                self.moderation_command(verb, &token, &words(&args))
            }
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

    fn confirmation(
        &mut self,
        list: &ListConfig,
        action: TokenAction,
        who: &Joining<'_>,
        third: bool,
    ) -> Result<(), HandlerError> {
        let (addr, name) = (who.addr, who.name);
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
        let config = self.ctx.config.clone();
        let requested_by = self.sender.address.to_string();
        let token = tokens::issue(
            self.conn,
            &tokens::NewToken {
                list: &list.name,
                action,
                address: addr,
                name,
                requested_by: &requested_by,
                request_id: None,
                mode: (who.mode != DeliveryMode::Each || action == TokenAction::SetMode)
                    .then_some(who.mode),
            },
            config.robot.token_expiry_days,
            self.now,
        )?;
        let confirm_address = format!("{}-confirm+{token}@{}", list.name, config.domain);
        let template = match action {
            TokenAction::Subscribe => "confirm-subscribe",
            TokenAction::OwnerAdd | TokenAction::OwnerRemove => "confirm-owner",
            TokenAction::SetMode => "confirm-set",
            _ => "confirm-unsubscribe",
        };
        // an owner's add/del is confirmed by that owner's mailbox, so a
        // forged From: reaches only the real owner
        let to = if action.by_owner() {
            requested_by.clone()
        } else {
            addr.to_string()
        };
        self.mails.push(Mail {
            to: To::One(to),
            list: Some(list.name.clone()),
            template,
            default_subject: format!("confirm {token}"),
            data: template_data(
                &config,
                Some(list),
                json!({"address": addr.to_string(), "token": token,
                       "confirm_address": confirm_address, "requester": requested_by,
                       "third_party": third, "action": action.as_str(),
                       "mode_text": mode_text(who.mode),
                       "expires": super::expiry_text(&config, self.now)}),
            ),
            kind: JobKind::Reply,
            reply_to: Some(confirm_address),
            // only the address's own command mail is answered in-thread
            answers_command: !third || action.by_owner(),
            limited: true,
            attachment: None,
        });
        Ok(())
    }

    fn subscribe(&mut self, mut args: VecDeque<String>) -> Res {
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
        let needs_confirmation = third
            || matches!(
                list.subscription,
                SubscriptionPolicy::Confirm | SubscriptionPolicy::ConfirmThenApprove
            );
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
        if list.subscription == SubscriptionPolicy::Approve {
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

    fn unsubscribe(&mut self, mut args: VecDeque<String>) -> Res {
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
        if third || list.unsubscription == UnsubscribePolicy::Confirm {
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

    fn confirm(&mut self, mut args: VecDeque<String>) -> Res {
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

    /// `add LIST ADDRESS [digest=...]` and `del LIST ADDRESS`: an owner
    /// changes the membership by mail. Nothing happens until the owner
    /// confirms from their own mailbox (the token goes there, so a forged
    /// From: achieves nothing); then no consent of the address is asked, as
    /// when the owner uses `listd members`, on any subscription policy.
    fn owner_change(&mut self, verb: Verb, mut args: VecDeque<String>) -> Res {
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

    fn help(&mut self) -> Res {
        let config = self.ctx.config.clone();
        let list = self.route_list.as_deref().and_then(|l| config.list(l));
        let data = template_data(
            &config,
            list,
            json!({"address": self.sender.address.to_string()}),
        );
        Ok(self
            .ctx
            .templates
            .render(self.route_list.as_deref(), "help", &data)?)
    }

    fn lists(&mut self) -> Res {
        let config = &self.ctx.config;
        let mut out = String::new();
        for l in config.lists.values().filter(|l| l.advertised) {
            out.push_str(&l.name);
            if !l.description.trim().is_empty() {
                out.push_str(&format!(": {}", l.description.trim()));
            }
            out.push_str(&format!(
                "\n    posts to     {}\n    commands to  {}\n",
                config.list_address(&l.name),
                config.list_suffix_address(&l.name, "request")
            ));
        }
        if out.is_empty() {
            out = "No lists are advertised here.".into();
        }
        Ok(out)
    }

    fn info(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.list_arg(&config, "info", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        if !list.advertised
            && self.route_list.is_none()
            && !self.is_owner(list)
            && !self.is_member(list)?
        {
            return Ok(format!(
                "There is no list named `{}` here. Send `lists` to {} for the lists.",
                list.name,
                site_robot(&config)
            ));
        }
        let data = template_data(
            &config,
            Some(list),
            json!({"address": self.sender.address.to_string()}),
        );
        Ok(self.ctx.templates.render(Some(&list.name), "info", &data)?)
    }

    fn who(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.list_arg(&config, "who", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        if !self.may(list, list.who)? {
            tracing::info!(list = %list.name, sender = %self.sender.address, "who refused by policy");
            return Ok(format!(
                "The membership of {} is not available to you.",
                list.name
            ));
        }
        let total = members::count(self.conn, &list.name)?;
        let mut out = format!(
            "{} has {total} member{}:\n",
            list.name,
            if total == 1 { "" } else { "s" }
        );
        let mut shown = 0usize;
        members::for_each(self.conn, &list.name, |m| {
            out.push_str("  ");
            out.push_str(&m.address);
            out.push('\n');
            shown += 1;
            shown < WHO_MAX
        })?;
        if (shown as i64) < total {
            out.push_str(&format!(
                "  ... and {} more (ask the site admin for the full list)\n",
                total - shown as i64
            ));
        }
        Ok(out)
    }

    fn which(&mut self) -> Res {
        let lists = members::lists_of(self.conn, &self.sender.address.key())?;
        if lists.is_empty() {
            return Ok(format!(
                "{} is not subscribed to any list here.",
                self.sender.address
            ));
        }
        let mut out = format!("{} is subscribed to:\n", self.sender.address);
        for l in lists {
            out.push_str(&format!("  {l}\n"));
        }
        Ok(out)
    }

    fn set(&mut self, mut args: VecDeque<String>) -> Res {
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
    fn apply_mode(&mut self, list: &ListConfig, addr: &Address, mode: DeliveryMode) -> Res {
        let Some(before) = members::get(self.conn, &list.name, &addr.key())? else {
            return Ok(format!("{addr} is not subscribed to {}.", list.name));
        };
        if no_digest(list, mode) {
            return Ok(format!("The {} list has no digest.", list.name));
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
                       "undo_address": format!("{}-confirm+{undo}@{}", list.name, config.domain),
                       "expires": super::expiry_text(&config, self.now)}),
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

    fn decide(&mut self, verb: Verb, args: &mut VecDeque<String>, decision: Decision) -> Res {
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

    /// THE single call point into moderation, for `approve|reject|discard
    /// TOKEN` whose token is not a subscription request, and for
    /// `accept|ban TOKEN`: held posts (`crate::moderation::command`).
    fn moderation_command(&mut self, verb: Verb, token: &str, rest: &str) -> Res {
        crate::moderation::command(self.ctx, self.conn, self.msg, verb.name(), token, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::{is_month, take_mode, DeliveryMode, VecDeque};

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

    #[test]
    fn months_are_yyyy_mm() {
        for ok in ["2026-11", "1999-01", "2000-12"] {
            assert!(is_month(ok), "{ok}");
        }
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "",
            "abcd-ef",
            "２０２６-11",
            "../../x",
        ] {
            assert!(!is_month(bad), "{bad}");
        }
    }
}
