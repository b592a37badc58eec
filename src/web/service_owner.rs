//! The owners' part of the service layer the pages and the API share: a
//! list's members (count, add one or a pasted list, remove, delivery mode,
//! moderation flag) and its pending subscription requests (decided through
//! `robot::requests`, so the same welcome or refusal is queued as by mail
//! and `listd requests`). Owners are the list's `owners`, site admins, and
//! `admin` or `list:NAME` API tokens; moderators are not.
//!
//! Trusts the caller's identity as the handlers established it; every
//! address and value from the request is parsed here.

use super::service::{Caller, MemberView, ServiceError, ServiceResult};
use crate::address::{pasted_entries, split_display_name, Address};
use crate::config::{Config, ListConfig};
use crate::handler::Ctx;
use crate::moderation::held;
use crate::robot::exec::roster::{self, Joining};
use crate::robot::requests::{self, Decision};
use crate::store::members::{self, DeliveryMode, Moderation};
use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

/// Most addresses one add request may carry.
pub const MAX_ADD: usize = 10_000;

/// The list `name`, if the caller may administer it.
pub fn administered_list<'a>(
    config: &'a Config,
    caller: &Caller,
    name: &str,
) -> ServiceResult<&'a ListConfig> {
    let l = config
        .list(name)
        .ok_or_else(|| ServiceError::NotFound(format!("no list `{name}`")))?;
    if !caller.may_administer(config, l) {
        return Err(ServiceError::Forbidden(format!(
            "you do not administer the list `{}`",
            l.name
        )));
    }
    Ok(l)
}

/// What the owner overview shows.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerOverview {
    pub list: String,
    pub address: String,
    pub members: i64,
    pub requests: usize,
    pub held: i64,
}

/// Counts for the overview (members through the `(list, address_key)` index).
pub fn overview(
    conn: &Connection,
    config: &Config,
    caller: &Caller,
    list: &str,
) -> ServiceResult<OwnerOverview> {
    let l = administered_list(config, caller, list)?;
    Ok(OwnerOverview {
        list: l.name.clone(),
        address: config.list_address(&l.name),
        members: members::count(conn, &l.name)?,
        requests: requests::pending(conn, Some(&l.name))?.len(),
        held: held::pending_count(conn, &l.name)?,
    })
}

/// What became of one entry of an add request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AddResult {
    /// The entry as given.
    pub input: String,
    /// `added`, `already_member` or `invalid`.
    pub outcome: &'static str,
    pub detail: String,
}

/// Adds `entries` (`ann@example.org` or `Ann <ann@example.org>`) to `list`
/// in one transaction, each getting the list's welcome (and the owners
/// their notice) when `welcome` is set, as `listd members add --welcome`
/// does; one result per entry.
pub fn add_members(
    ctx: &Ctx,
    conn: &mut Connection,
    caller: &Caller,
    list: &str,
    entries: &[String],
    welcome: bool,
    now: i64,
) -> ServiceResult<Vec<AddResult>> {
    let l = administered_list(&ctx.config, caller, list)?;
    if entries.is_empty() {
        return Err(ServiceError::BadRequest("no address was given".into()));
    }
    if entries.len() > MAX_ADD {
        return Err(ServiceError::BadRequest(format!(
            "{} addresses given; at most {MAX_ADD} at a time",
            entries.len()
        )));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mut out, mut mails) = (Vec::with_capacity(entries.len()), Vec::new());
    for e in entries {
        let (name, addr) = split_display_name(e.trim());
        let a = match Address::parse(&addr) {
            Ok(a) => a,
            Err(why) => {
                out.push(AddResult {
                    input: e.clone(),
                    outcome: "invalid",
                    detail: format!("`{e}` is not an address: {why}"),
                });
                continue;
            }
        };
        let new = if welcome {
            let who = Joining {
                addr: &a,
                name: name.as_deref(),
                mode: DeliveryMode::Each,
            };
            roster::add_member(ctx, &tx, l, &who, now, &mut mails)?
        } else {
            members::add_new(
                &tx,
                &l.name,
                &a.to_string(),
                &a.key(),
                name.as_deref(),
                DeliveryMode::Each,
                l.moderate_new_members,
                now,
            )?
        };
        out.push(if new {
            AddResult {
                input: e.clone(),
                outcome: "added",
                detail: format!("{a} added"),
            }
        } else {
            AddResult {
                input: e.clone(),
                outcome: "already_member",
                detail: format!("{a} is already a member"),
            }
        });
    }
    crate::robot::send(ctx, &tx, mails, None, now)?;
    tx.commit()?;
    Ok(out)
}

/// [`add_members`] on pasted text: one address a line, or separated by
/// commas or semicolons.
pub fn add_pasted(
    ctx: &Ctx,
    conn: &mut Connection,
    caller: &Caller,
    list: &str,
    text: &str,
    welcome: bool,
    now: i64,
) -> ServiceResult<Vec<AddResult>> {
    add_members(ctx, conn, caller, list, &pasted_entries(text), welcome, now)
}

/// The member `address` names; one that is not an address is no member.
fn member_address(address: &str, list: &str) -> ServiceResult<Address> {
    Address::parse(address.trim()).map_err(|_| {
        ServiceError::NotFound(format!(
            "`{}` is not a member of {list} (not an email address)",
            address.trim()
        ))
    })
}

fn not_member(a: &Address, list: &str) -> ServiceError {
    ServiceError::NotFound(format!("{a} is not a member of {list}"))
}

/// Removes `address` from `list`; with `goodbye` it gets the goodbye (and
/// the owners their notice), as an unsubscription does.
pub fn remove_member(
    ctx: &Ctx,
    conn: &mut Connection,
    caller: &Caller,
    list: &str,
    address: &str,
    goodbye: bool,
    now: i64,
) -> ServiceResult<()> {
    let l = administered_list(&ctx.config, caller, list)?;
    let a = member_address(address, &l.name)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut mails = Vec::new();
    let gone = if goodbye {
        roster::remove_member(ctx, &tx, l, &a, &mut mails)?
    } else {
        members::remove(&tx, &l.name, &a.key())?
    };
    if !gone {
        return Err(not_member(&a, &l.name));
    }
    crate::robot::send(ctx, &tx, mails, None, now)?;
    tx.commit()?;
    Ok(())
}

/// A change to one member: its delivery mode and/or its moderation flag
/// (`Some(None)` clears the flag: the list's policy applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberChange {
    pub mode: Option<DeliveryMode>,
    pub moderation: Option<Option<Moderation>>,
}

/// Reads a moderation flag as the pages and the API name it: `accept`,
/// `hold`, `reject`, `discard`, or `default`/`none`/empty to clear it.
pub fn parse_moderation(s: &str) -> ServiceResult<Option<Moderation>> {
    match s.trim() {
        "" | "default" | "none" => Ok(None),
        m => Moderation::parse(m).map(Some).ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "`{m}` is not a moderation flag: use accept, hold, reject, discard or default"
            ))
        }),
    }
}

/// Reads a delivery mode (`each`, `digest_mime`, `digest_plain`, `nomail`,
/// or the CLI's names).
pub fn parse_mode(s: &str) -> ServiceResult<DeliveryMode> {
    DeliveryMode::parse(s.trim()).ok_or_else(|| {
        ServiceError::BadRequest(format!(
            "`{}` is not a delivery mode: use each, digest_mime, digest_plain or nomail",
            s.trim()
        ))
    })
}

/// Applies `change` to `address` on `list`; the member as it is now.
pub fn change_member(
    conn: &mut Connection,
    config: &Config,
    caller: &Caller,
    list: &str,
    address: &str,
    change: MemberChange,
) -> ServiceResult<MemberView> {
    let l = administered_list(config, caller, list)?;
    let a = member_address(address, &l.name)?;
    if change.mode.is_some_and(DeliveryMode::is_digest) && !l.digest.enabled {
        return Err(ServiceError::Conflict(format!(
            "{} has digests turned off (digest.enabled: false)",
            l.name
        )));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let key = a.key();
    if members::get(&tx, &l.name, &key)?.is_none() {
        return Err(not_member(&a, &l.name));
    }
    if let Some(m) = change.mode {
        members::set_mode(&tx, &l.name, &key, m)?;
    }
    if let Some(m) = change.moderation {
        members::set_moderation(&tx, &l.name, &key, m)?;
    }
    let now = members::get(&tx, &l.name, &key)?.ok_or_else(|| not_member(&a, &l.name))?;
    tx.commit()?;
    Ok(MemberView::from(now))
}

/// A pending subscription request as the pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub id: i64,
    pub list: String,
    pub address: String,
    pub name: Option<String>,
    pub requested_by: String,
    pub created_at: i64,
    pub created_at_text: String,
    pub mode: &'static str,
}

/// The pending requests of `list`, oldest first.
pub fn pending_requests(
    conn: &Connection,
    config: &Config,
    caller: &Caller,
    list: &str,
) -> ServiceResult<Vec<RequestView>> {
    let l = administered_list(config, caller, list)?;
    Ok(requests::pending(conn, Some(&l.name))?
        .into_iter()
        .map(|r| RequestView {
            created_at_text: crate::moderation::notice::fmt_time(r.created_at),
            id: r.id,
            list: r.list,
            address: r.address,
            name: r.name,
            requested_by: r.requested_by,
            created_at: r.created_at,
            mode: r.mode.unwrap_or(DeliveryMode::Each).as_str(),
        })
        .collect())
}

/// Reads a decision: `approve`, `reject` (with `reason`) or `discard`.
pub fn parse_decision(action: &str, reason: Option<&str>) -> ServiceResult<Decision> {
    let reason = reason
        .map(|r| r.trim().chars().take(2000).collect::<String>())
        .filter(|r| !r.is_empty());
    match action.trim() {
        "approve" => Ok(Decision::Approve),
        "reject" => Ok(Decision::Reject(reason)),
        "discard" => Ok(Decision::Discard),
        a => Err(ServiceError::BadRequest(format!(
            "unknown action `{a}`: use approve, reject or discard"
        ))),
    }
}

/// Decides request `id` of `list` as the caller, in one transaction with
/// the mail it causes; the text of what happened. 404 for a request of
/// another list or none, 409 when it was already decided.
pub fn decide_request(
    ctx: &Ctx,
    conn: &mut Connection,
    caller: &Caller,
    list: &str,
    id: i64,
    decision: &Decision,
    now: i64,
) -> ServiceResult<String> {
    let l = administered_list(&ctx.config, caller, list)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let r = requests::get(&tx, id)?
        .filter(|r| r.list == l.name)
        .ok_or_else(|| {
            ServiceError::NotFound(format!("no subscription request #{id} on {}", l.name))
        })?;
    let mut mails = Vec::new();
    let text = match requests::decide(ctx, &tx, r.id, decision, &caller.actor(), now, &mut mails)? {
        Ok(t) => t,
        Err(t) if r.state != "pending" => return Err(ServiceError::Conflict(t)),
        Err(t) => return Err(ServiceError::NotFound(t)),
    };
    crate::robot::send(ctx, &tx, mails, None, now)?;
    tx.commit()?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_modes_and_decisions_are_read_or_refused() {
        assert_eq!(parse_moderation("hold").unwrap(), Some(Moderation::Hold));
        assert_eq!(parse_moderation("default").unwrap(), None);
        assert_eq!(parse_moderation("").unwrap(), None);
        assert!(parse_moderation("é").is_err());
        assert_eq!(parse_mode("nomail").unwrap(), DeliveryMode::NoMail);
        assert!(parse_mode("sometimes").is_err());
        assert_eq!(
            parse_decision("reject", Some("  off topic ")).unwrap(),
            Decision::Reject(Some("off topic".into()))
        );
        assert_eq!(
            parse_decision("reject", Some("  ")).unwrap(),
            Decision::Reject(None)
        );
        assert_eq!(parse_decision("approve", None).unwrap(), Decision::Approve);
        assert!(parse_decision("ban", None).is_err());
        // a long multi-byte reason is cut at a character, never inside one
        let long = "é".repeat(3000);
        match parse_decision("reject", Some(&long)).unwrap() {
            Decision::Reject(Some(r)) => assert_eq!(r.chars().count(), 2000),
            d => panic!("{d:?}"),
        }
    }
}
