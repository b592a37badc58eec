//! Subscription requests waiting for an owner (policies `approve` and
//! `confirm_then_approve`): the `sub_requests` table, and deciding a request
//! — shared by `approve|reject|discard TOKEN` mail and `listd requests`.
//!
//! Trusts its callers to have checked who is deciding (token possession or
//! shell access to the server); trusts nothing else.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::exec::roster;
use super::{template_data, Mail, To};
use crate::address::Address;
use crate::handler::{Ctx, HandlerError};
use crate::store::members::DeliveryMode;
use crate::store::outbound::JobKind;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRequest {
    pub id: i64,
    pub list: String,
    pub address: String,
    pub name: Option<String>,
    pub requested_by: String,
    pub state: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// How the subscriber asked to get the list (None: each post).
    pub mode: Option<DeliveryMode>,
}

const COLS: &str =
    "id, list, address, name, requested_by, state, created_at, decided_at, decided_by, reason, mode";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SubRequest> {
    Ok(SubRequest {
        id: r.get(0)?,
        list: r.get(1)?,
        address: r.get(2)?,
        name: r.get(3)?,
        requested_by: r.get(4)?,
        state: r.get(5)?,
        created_at: r.get(6)?,
        decided_at: r.get(7)?,
        decided_by: r.get(8)?,
        reason: r.get(9)?,
        mode: r
            .get::<_, Option<String>>(10)?
            .as_deref()
            .and_then(DeliveryMode::parse),
    })
}

/// The pending request of `address` on `list`, if any.
pub fn pending_for(
    conn: &Connection,
    list: &str,
    address: &Address,
) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM sub_requests WHERE list = ?1 AND address_key = ?2 AND state = 'pending'",
        params![list, address.key()],
        |r| r.get(0),
    )
    .optional()
}

/// Records a new pending request; returns its id.
pub fn create(
    conn: &Connection,
    list: &str,
    who: &roster::Joining<'_>,
    requested_by: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO sub_requests(list, address, address_key, name, requested_by, created_at, mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            list,
            who.addr.to_string(),
            who.addr.key(),
            who.name,
            requested_by,
            now,
            who.mode.as_str()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A request by id.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<SubRequest>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM sub_requests WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// Pending requests, oldest first; of one list or of all.
pub fn pending(conn: &Connection, list: Option<&str>) -> rusqlite::Result<Vec<SubRequest>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLS} FROM sub_requests
         WHERE state = 'pending' AND (?1 IS NULL OR list = ?1) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![list], from_row)?;
    rows.collect()
}

/// An owner's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Subscribe the address; it gets the welcome.
    Approve,
    /// Refuse; the requester is told, with the reason if any.
    Reject(Option<String>),
    /// Refuse without telling anyone.
    Discard,
}

/// Decides request `id`. `Ok(Ok(text))`: done, `text` says what happened;
/// `Ok(Err(text))`: nothing done (unknown id, already decided, list gone).
/// Mail the decision causes is pushed to `mails`.
pub fn decide(
    ctx: &Ctx,
    conn: &Connection,
    id: i64,
    decision: &Decision,
    by: &str,
    now: i64,
    mails: &mut Vec<Mail>,
) -> Result<Result<String, String>, HandlerError> {
    let Some(req) = get(conn, id)? else {
        return Ok(Err(format!("There is no subscription request #{id}.")));
    };
    if req.state != "pending" {
        return Ok(Err(format!(
            "Request #{id} ({} to {}) was already {} by {}.",
            req.address,
            req.list,
            req.state,
            req.decided_by.as_deref().unwrap_or("someone")
        )));
    }
    let config = ctx.config.clone();
    let Some(list) = config.list(&req.list) else {
        return Ok(Err(format!(
            "Request #{id} is for the list {}, which no longer exists.",
            req.list
        )));
    };
    let addr = Address::parse(&req.address).map_err(|e| {
        HandlerError::Corrupt(format!(
            "request #{id} has a bad address `{}`: {e}",
            req.address
        ))
    })?;
    super::tokens::spend_for_request(conn, id, now)?;
    let (state, reason) = match decision {
        Decision::Approve => ("approved", None),
        Decision::Reject(r) => ("rejected", r.clone().filter(|r| !r.trim().is_empty())),
        Decision::Discard => ("rejected", Some("(discarded)".to_string())),
    };
    conn.execute(
        "UPDATE sub_requests SET state = ?2, decided_at = ?3, decided_by = ?4, reason = ?5
         WHERE id = ?1",
        params![id, state, now, by, reason],
    )?;
    tracing::info!(request = id, list = %req.list, address = %req.address, %state, by, "subscription request decided");
    let text = match decision {
        Decision::Approve => {
            let who = roster::Joining {
                addr: &addr,
                name: req.name.as_deref(),
                mode: req.mode.unwrap_or(DeliveryMode::Each),
            };
            if roster::add_member(ctx, conn, list, &who, now, mails)? {
                format!(
                    "Approved request #{id}: {addr} is now subscribed to {}.",
                    list.name
                )
            } else {
                format!(
                    "Approved request #{id}: {addr} was already subscribed to {}.",
                    list.name
                )
            }
        }
        Decision::Reject(r) => {
            let mut why = format!(
                "Your request to join the {} mailing list ({}) was declined by its owners.",
                list.name,
                config.list_address(&list.name)
            );
            if let Some(r) = r.as_deref().filter(|r| !r.trim().is_empty()) {
                why.push_str(&format!(
                    "\n\nThe owners gave this reason:\n\n    {}",
                    r.trim()
                ));
            }
            mails.push(Mail {
                to: To::One(addr.to_string()),
                list: Some(list.name.clone()),
                template: "refusal",
                default_subject: format!("Your request to join {} was declined", list.name),
                data: template_data(
                    &config,
                    Some(list),
                    json!({"address": addr.to_string(), "reason": why,
                           "subject": format!("Your request to join {} was declined", list.name)}),
                ),
                kind: JobKind::Reply,
                reply_to: None,
                answers_command: false,
                limited: true,
                attachment: None,
            });
            format!(
                "Rejected request #{id}: {addr} was not subscribed to {} and has been told.",
                list.name
            )
        }
        Decision::Discard => format!(
            "Discarded request #{id}: {addr} was not subscribed to {}; nobody was told.",
            list.name
        ),
    };
    Ok(Ok(text))
}
