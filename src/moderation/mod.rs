//! Moderation: the hold queue and what moderators do with it.
//!
//! - `hold` stores a post the posting rules held (by reference to the
//!   original in `messages`: the bytes are never copied or altered), issues
//!   one single-use token per action, mails one notice to each moderator with
//!   the original attached, and tells the poster (per list `notify_held`).
//! - Moderators act by replying to `NAME-moderate+TOKEN@` (`handle_reply`),
//!   by `approve|reject|discard TOKEN` to `NAME-request@` (`command`, called
//!   by the robot), or with `listd held` (`act`). The first action wins.
//! - `preapproval` checks an `Approved: PASSWORD` header or first body line
//!   before the posting rules run.
//! - `confirm::hold_unverified` holds a post whose claimed sender must prove
//!   itself (`sender_verification`) and mails that address a `confirm`
//!   token; using it releases the post through `act` like an approval.
//! - `expire`, `remind` and `flood::summarise` run periodically from the
//!   daemon; past `moderation_notices_per_hour` a list's moderators get one
//!   summary instead of a notice per post (`flood`).
//! - `lockout` stops `Approved:` guessing: repeated wrong passwords lock
//!   the check for the list for an hour.
//! - `is_accepted_sender` / `is_banned` are facts the posting rules read.
//!
//! Trusts the configuration and the envelope the spool recorded; trusts
//! nothing in message bytes or presented tokens. An action is allowed only
//! for a configured moderator or owner (see `act::authorise`).

pub mod act;
pub mod approved;
pub mod confirm;
pub mod expiry;
pub mod flood;
pub mod held;
pub mod lockout;
pub mod notice;
pub mod token;

pub use act::{act, command, handle_reply, ActOutcome};
pub use approved::{hash_password, preapproval, Preapproval};
pub use expiry::{expire, remind};
pub use held::{Held, SenderList};

use crate::handler::{Ctx, HandlerError, Inbound};
pub use crate::hold::{ClaimedRole, HoldReason};
use crate::store::StoreError;
use rusqlite::Connection;

/// What a moderator can do with a held post. Each has its own token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModAction {
    /// Distribute the post.
    Approve,
    /// Distribute it and add the sender to the list's accept list.
    Accept,
    /// Drop it and tell the poster, with an optional reason.
    Reject,
    /// Drop it silently.
    Discard,
    /// Drop it silently and ban the sender (future posts are discarded).
    Ban,
    /// The claimed sender confirms a post held as `sender-unverified`, by
    /// the token mailed to that address: distribute it. Never offered to
    /// moderators (not in [`ModAction::ALL`]).
    Confirm,
}

impl ModAction {
    /// Every action, in the order the notice lists them.
    pub const ALL: [ModAction; 5] = [
        ModAction::Approve,
        ModAction::Accept,
        ModAction::Reject,
        ModAction::Discard,
        ModAction::Ban,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModAction::Approve => "approve",
            ModAction::Accept => "accept",
            ModAction::Reject => "reject",
            ModAction::Discard => "discard",
            ModAction::Ban => "ban",
            ModAction::Confirm => "confirm",
        }
    }

    /// Parses an action word (as stored, or as a moderator writes it).
    pub fn parse(s: &str) -> Option<ModAction> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "approve" => ModAction::Approve,
            "accept" | "accept-sender" => ModAction::Accept,
            "reject" => ModAction::Reject,
            "discard" => ModAction::Discard,
            "ban" => ModAction::Ban,
            "confirm" => ModAction::Confirm,
            _ => return None,
        })
    }

    /// The held post's state after this action.
    pub fn final_state(self) -> &'static str {
        match self {
            ModAction::Approve | ModAction::Accept | ModAction::Confirm => "approved",
            ModAction::Reject => "rejected",
            ModAction::Discard | ModAction::Ban => "discarded",
        }
    }

    /// What it does, for the notice.
    pub fn describe(self) -> &'static str {
        match self {
            ModAction::Approve => "approve the post",
            ModAction::Accept => "approve the post and always accept this sender from now on",
            ModAction::Reject => {
                "reject the post; text in your reply is sent to the poster as the reason"
            }
            ModAction::Discard => "discard the post silently",
            ModAction::Ban => "discard the post and ban the sender (future posts are discarded)",
            ModAction::Confirm => "confirm that you sent the post, and release it to the list",
        }
    }
}

/// Holds a post: stores it in the hold queue by reference, issues its
/// tokens, sends one notice to each moderator (or to the owners when the list
/// has no moderators) and, per the list's `notify_held`, tells the poster
/// (never the null sender, never an automaton). Returns the held id.
pub fn hold(
    ctx: &Ctx,
    tx: &Connection,
    list: &str,
    msg: &Inbound,
    reason: HoldReason,
    now: i64,
) -> Result<i64, HandlerError> {
    let cfg = ctx
        .config
        .list(list)
        .ok_or_else(|| HandlerError::Corrupt(format!("hold: no list `{list}`")))?;
    let summary = notice::PostSummary::of(&msg.bytes, &msg.env_from);
    let notify = (!msg.env_from.is_empty() && !summary.automated).then_some(msg.env_from.as_str());
    let size = msg.bytes.len() as i64;
    let id = store_held(tx, cfg, msg, &reason, &summary, notify, now)?;
    let tokens = issue_tokens(tx, &cfg.name, id)?;
    notice::moderators(
        ctx, tx, cfg, id, &reason, &summary, size, &tokens, &msg.bytes, now,
    )?;
    if cfg.notify_held {
        if let Some(to) = notify {
            let subject = notice::subject_for(tx, to, &summary.subject)?;
            notice::poster_held(ctx, tx, cfg, to, &reason, subject.as_deref(), now)?;
        }
    }
    held::log(
        tx,
        &cfg.name,
        Some(id),
        &summary.sender,
        "hold",
        reason.code(),
        now,
    )?;
    tracing::info!(list = %cfg.name, held = id, reason = reason.code(), sender = %summary.sender, "post held for moderation");
    Ok(id)
}

/// Stores a post in the hold queue (by reference to its `messages` row);
/// returns the held id. `notify` is where poster notices go.
fn store_held(
    tx: &Connection,
    cfg: &crate::config::ListConfig,
    msg: &Inbound,
    reason: &HoldReason,
    summary: &notice::PostSummary,
    notify: Option<&str>,
    now: i64,
) -> Result<i64, HandlerError> {
    Ok(held::insert_held(
        tx,
        &held::NewHeld {
            list: &cfg.name,
            message_id: msg.message_id,
            reason: reason.code(),
            detail: &reason.describe(),
            sender: &summary.sender,
            env_from: &msg.env_from,
            notify,
            subject: &summary.subject,
            size: msg.bytes.len() as i64,
            held_at: now,
        },
    )?)
}

/// The moderation templates `list` cannot find (site or per-list), for
/// `listd check`. Without them moderation mail waits (the post stays in the
/// incoming queue and is retried) until they exist.
pub fn missing_templates(
    templates: &crate::templates::Templates,
    list: &crate::config::ListConfig,
) -> Vec<&'static str> {
    use notice::*;
    [
        T_NOTICE, T_HELD, T_REJECTED, T_EXPIRED, T_REMINDER, T_RESULT, T_SUMMARY, T_LOCKOUT,
        T_CONFIRM,
    ]
    .into_iter()
    .filter(|t| !templates.has(Some(&list.name), t))
    .collect()
}

/// The tokens minted for one held post, in clear (only their hashes are
/// stored): one per action for the notice's addresses and commands, and the
/// reply token of its Reply-To, which acts by the reply's first word.
pub struct HeldTokens {
    pub actions: Vec<(ModAction, String)>,
    pub reply: String,
}

/// What a `reply` token is bound to in `mod_tokens.action`: no action of its
/// own; the moderator's reply names it.
pub const REPLY_TOKEN: &str = "reply";

/// Creates the tokens of a held post.
fn issue_tokens(conn: &Connection, list: &str, held_id: i64) -> Result<HeldTokens, HandlerError> {
    let mint = |action: &str| -> Result<String, HandlerError> {
        let t = token::generate().map_err(HandlerError::Temporary)?;
        held::insert_token(conn, &token::hash(&t), list, held_id, action)?;
        Ok(t)
    };
    let mut actions = Vec::with_capacity(ModAction::ALL.len());
    for a in ModAction::ALL {
        actions.push((a, mint(a.as_str())?));
    }
    let reply = mint(REPLY_TOKEN)?;
    Ok(HeldTokens { actions, reply })
}

/// Whether posts from `addr` to `list` skip moderation (a moderator chose
/// "approve and always accept", or `listd held accept-sender`).
pub fn is_accepted_sender(conn: &Connection, list: &str, addr: &str) -> Result<bool, StoreError> {
    held::sender_listed(conn, SenderList::Accept, list, addr)
}

/// Whether posts from `addr` to `list` are discarded (banned sender).
pub fn is_banned(conn: &Connection, list: &str, addr: &str) -> Result<bool, StoreError> {
    held::sender_listed(conn, SenderList::Ban, list, addr)
}

/// Adds `addr` to the list's accept list and, when `addr` is a member held,
/// rejected or discarded by their own moderation flag, clears that flag: the
/// moderator asked for this sender to be let through. False if nothing
/// changed.
pub fn accept_sender(
    conn: &Connection,
    list: &str,
    addr: &str,
    by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    use crate::store::members::{self, Moderation};
    let added = held::add_sender(conn, SenderList::Accept, list, addr, by, now)?;
    let cleared = match crate::address::Address::parse(addr) {
        Ok(a) => match members::get(conn, list, &a.key())? {
            Some(m) if m.moderation.is_some_and(|f| f != Moderation::Accept) => {
                members::set_moderation(conn, list, &a.key(), None)?
            }
            _ => false,
        },
        Err(_) => false,
    };
    Ok(added || cleared)
}

/// Bans `addr` from posting to the list; false if it was already banned.
pub fn ban(
    conn: &Connection,
    list: &str,
    addr: &str,
    by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    held::add_sender(conn, SenderList::Ban, list, addr, by, now)
}

#[cfg(test)]
mod tests;
