//! The service layer the web pages and the REST API share: who the caller
//! is and what it may do, the held posts of the lists it moderates, acting
//! on them (through `moderation::act`, the code mail and the CLI use: the
//! first action wins), the advertised lists, and the start of a
//! subscription (the robot's double opt-in). Pages and API call these
//! functions; neither calls the other over HTTP.
//!
//! Trusts the caller's identity as the handlers established it (a session
//! cookie or an API token found by its hash), the configuration for roles;
//! nothing else in a request.

use super::credentials::{ApiRole, ApiToken};
use crate::address::Address;
use crate::config::{Config, ListConfig};
use crate::handler::{Ctx, HandlerError};
use crate::moderation::{self, held, notice::PostSummary, ActOutcome, ModAction};
use crate::robot::exec::SubscribeStart;
use crate::store::rate::{self, Budget};
use crate::store::{self, members, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A person logged in by an emailed link.
    Person(String),
    /// An API token.
    Token(ApiToken),
}

impl Caller {
    /// The name moderation records for this caller's actions.
    pub fn actor(&self) -> String {
        match self {
            Caller::Person(a) => format!("web:{a}"),
            Caller::Token(t) => format!("api:{}", t.name),
        }
    }

    /// A site admin (`web.admins`) or an admin token.
    pub fn is_admin(&self, config: &Config) -> bool {
        match self {
            Caller::Person(a) => config.web.is_admin(a),
            Caller::Token(t) => t.role == ApiRole::Admin,
        }
    }

    /// Whether the caller may moderate `list`: an admin, the list's owners
    /// and moderators, a token for this list.
    pub fn may_moderate(&self, config: &Config, list: &ListConfig) -> bool {
        self.is_admin(config)
            || match self {
                Caller::Person(a) => list.is_moderator(a),
                Caller::Token(t) => t.role == ApiRole::List(list.name.clone()),
            }
    }
}

/// Why a request was not done: each maps to one 4xx (or 503 for the store).
#[derive(Debug)]
pub enum ServiceError {
    NotFound(String),
    Forbidden(String),
    BadRequest(String),
    RateLimited(String),
    /// The request conflicts with the state (a request already decided).
    Conflict(String),
    /// A setting's value (or the setting) is not acceptable: 422.
    Invalid {
        key: String,
        message: String,
    },
    /// A write without `If-Match` (API 428).
    VersionRequired(String),
    /// A write whose `If-Match` is not the current version (API 412).
    VersionMismatch(String),
    Store(HandlerError),
}

impl ServiceError {
    /// The text shown for a refusal (none for a store error, which is logged).
    pub fn message(&self) -> String {
        match self {
            ServiceError::NotFound(m)
            | ServiceError::Forbidden(m)
            | ServiceError::BadRequest(m)
            | ServiceError::RateLimited(m)
            | ServiceError::Conflict(m)
            | ServiceError::VersionRequired(m)
            | ServiceError::VersionMismatch(m) => m.clone(),
            ServiceError::Invalid { key, message } => format!("{key}: {message}"),
            ServiceError::Store(_) => "temporarily unavailable; try again later".into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e.into())
    }
}

impl From<HandlerError> for ServiceError {
    fn from(e: HandlerError) -> Self {
        ServiceError::Store(e)
    }
}

impl From<rusqlite::Error> for ServiceError {
    fn from(e: rusqlite::Error) -> Self {
        ServiceError::Store(e.into())
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Whether `addr` has any role here: admin, owner or moderator of a list,
/// or member of one. Only they are mailed a login link.
pub fn has_role(conn: &Connection, config: &Config, addr: &Address) -> ServiceResult<bool> {
    let a = addr.to_string();
    Ok(config.web.is_admin(&a)
        || config.lists.values().any(|l| l.is_moderator(&a))
        || members::is_member_anywhere(conn, &addr.key())?)
}

/// A list as the pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct ListView {
    pub name: String,
    pub description: String,
    pub address: String,
    pub advertised: bool,
    /// Whether the caller may moderate it.
    pub moderated_by_caller: bool,
    /// Whether the caller may administer it (owner pages).
    pub administered_by_caller: bool,
    /// Posts waiting, shown only to those who moderate the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<i64>,
    /// Whether the caller may read its archive (`/archive/NAME`).
    pub archive: bool,
}

/// The lists the caller may moderate.
pub fn moderated<'a>(config: &'a Config, caller: &Caller) -> Vec<&'a ListConfig> {
    config
        .lists
        .values()
        .filter(|l| caller.may_moderate(config, l))
        .collect()
}

/// The advertised lists, and those the caller moderates, by name.
pub fn lists(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
) -> ServiceResult<Vec<ListView>> {
    let mut out = Vec::new();
    for l in config.lists.values() {
        let moderates = caller.is_some_and(|c| c.may_moderate(config, l));
        if !l.advertised && !moderates {
            continue;
        }
        out.push(ListView {
            name: l.name.clone(),
            description: l.description.clone(),
            address: config.list_address(&l.name),
            advertised: l.advertised,
            moderated_by_caller: moderates,
            administered_by_caller: caller.is_some_and(|c| c.may_administer(config, l)),
            held: if moderates {
                Some(held::pending_count(conn, &l.name)?)
            } else {
                None
            },
            archive: super::archive_service::may_read(conn, config, caller, &l.name)?,
        });
    }
    Ok(out)
}

/// A held post as the pages and the API show it; `preview` is plain text.
#[derive(Debug, Clone, Serialize)]
pub struct HeldView {
    pub id: i64,
    pub list: String,
    pub reason: String,
    pub detail: String,
    pub sender: String,
    pub subject: String,
    pub size: i64,
    pub held_at: i64,
    pub held_at_text: String,
    pub preview: String,
}

fn view(conn: &Connection, h: held::Held) -> ServiceResult<HeldView> {
    let preview = match store::spool::load(conn, h.message_id)? {
        Some(m) => PostSummary::of(&m.bytes, &h.env_from).excerpt,
        None => String::new(),
    };
    Ok(HeldView {
        held_at_text: moderation::notice::fmt_time(h.held_at),
        id: h.id,
        list: h.list,
        reason: h.reason,
        detail: h.detail,
        sender: h.sender,
        subject: h.subject,
        size: h.size,
        held_at: h.held_at,
        preview,
    })
}

/// The list `name`, if the caller may moderate it.
pub fn moderated_list<'a>(
    config: &'a Config,
    caller: &Caller,
    name: &str,
) -> ServiceResult<&'a ListConfig> {
    let list = config
        .list(name)
        .ok_or_else(|| ServiceError::NotFound(format!("no list `{name}`")))?;
    if !caller.may_moderate(config, list) {
        return Err(ServiceError::Forbidden(format!(
            "you do not moderate the list `{}`",
            list.name
        )));
    }
    Ok(list)
}

/// Held posts of `list`, newest first: at most `limit`, after the post
/// `after` (the last id of the previous page).
pub fn held_posts(
    conn: &Connection,
    config: &Config,
    caller: &Caller,
    list: &str,
    after: Option<i64>,
    limit: i64,
) -> ServiceResult<Vec<HeldView>> {
    let list = moderated_list(config, caller, list)?;
    held::pending_newest(conn, &list.name, after, limit.clamp(1, 500))?
        .into_iter()
        .map(|h| view(conn, h))
        .collect()
}

/// Held posts of every list the caller moderates, newest first, at most
/// `per_list` of each.
pub fn all_held(
    conn: &Connection,
    config: &Config,
    caller: &Caller,
    per_list: i64,
) -> ServiceResult<Vec<HeldView>> {
    let mut out = Vec::new();
    for l in moderated(config, caller) {
        out.extend(held_posts(conn, config, caller, &l.name, None, per_list)?);
    }
    out.sort_by_key(|h| std::cmp::Reverse((h.held_at, h.id)));
    Ok(out)
}

/// The action a moderator names (`approve`, `accept`, `reject`, `discard`,
/// `ban`); `confirm` is the poster's, never a moderator's.
pub fn parse_action(s: &str) -> ServiceResult<ModAction> {
    ModAction::ALL
        .into_iter()
        .find(|a| a.as_str() == s.trim())
        .ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "unknown action `{s}`: use approve, accept, reject, discard or ban"
            ))
        })
}

/// Applies `action` to held post `id` (of `list`, when the caller named
/// one) as the caller, in one transaction: `moderation::act`, first action
/// wins.
#[allow(clippy::too_many_arguments)]
pub fn act(
    ctx: &Ctx,
    conn: &mut Connection,
    caller: &Caller,
    list: Option<&str>,
    id: i64,
    action: ModAction,
    reason: Option<&str>,
    now: i64,
) -> ServiceResult<ActOutcome> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let h = held::get(&tx, id)?
        .filter(|h| list.is_none_or(|l| l == h.list))
        .ok_or_else(|| ServiceError::NotFound(format!("no held post {id}")))?;
    let l = ctx
        .config
        .list(&h.list)
        .ok_or_else(|| ServiceError::NotFound(format!("no list `{}`", h.list)))?;
    if !caller.may_moderate(&ctx.config, l) {
        return Err(ServiceError::Forbidden(format!(
            "you do not moderate the list `{}`",
            l.name
        )));
    }
    let reason: Option<String> = reason.map(|r| r.chars().take(2000).collect());
    let outcome = moderation::act(
        ctx,
        &tx,
        id,
        action,
        &caller.actor(),
        reason.as_deref(),
        now,
    )?;
    tx.commit()?;
    Ok(outcome)
}

/// Starts a subscription from the web form: at most
/// `web.subscribe_per_ip_per_hour` attempts per client IP (refused ones
/// count too), then the robot's double opt-in (a confirmation mailed to the
/// address; nothing else changes).
pub fn subscribe(
    ctx: &Ctx,
    conn: &mut Connection,
    list: &str,
    address: &str,
    client_ip: &str,
    now: i64,
) -> ServiceResult<SubscribeStart> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let budget = [Budget::hourly(
        format!("web-subscribe:{client_ip}"),
        ctx.config.web.subscribe_per_ip_per_hour,
    )];
    let out = if rate::take(&tx, &budget, now)?.is_some() {
        Err(ServiceError::RateLimited(
            "too many subscribe requests from your network; try again in an hour".into(),
        ))
    } else {
        start(ctx, &tx, list, address, now)
    };
    if let Err(ServiceError::Store(e)) = out {
        return Err(ServiceError::Store(e));
    }
    tx.commit()?;
    out
}

fn start(
    ctx: &Ctx,
    conn: &Connection,
    list: &str,
    address: &str,
    now: i64,
) -> ServiceResult<SubscribeStart> {
    let l = ctx
        .config
        .list(list)
        .filter(|l| l.advertised)
        .ok_or_else(|| ServiceError::NotFound(format!("no list `{list}`")))?;
    let addr = Address::parse(address.trim()).map_err(|_| {
        ServiceError::BadRequest(format!("`{}` is not an email address", address.trim()))
    })?;
    Ok(crate::robot::exec::start_subscription(
        ctx, conn, l, &addr, now,
    )?)
}

impl Caller {
    /// Whether the caller may administer `list`'s members: an admin, the
    /// list's owners, a token for this list (moderators may not).
    pub fn may_administer(&self, config: &Config, list: &ListConfig) -> bool {
        self.is_admin(config)
            || match self {
                Caller::Person(a) => list.is_owner(a),
                Caller::Token(t) => t.role == ApiRole::List(list.name.clone()),
            }
    }
}

/// A member as the pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub address: String,
    pub key: String,
    pub mode: &'static str,
    pub moderation: Option<&'static str>,
    pub disabled: bool,
    pub joined_at: i64,
}

impl From<members::Member> for MemberView {
    fn from(m: members::Member) -> MemberView {
        MemberView {
            key: Address::parse(&m.address)
                .map(|a| a.key())
                .unwrap_or_else(|_| m.address.clone()),
            address: m.address,
            mode: m.mode.as_str(),
            moderation: m.moderation.map(members::Moderation::as_str),
            disabled: m.disabled,
            joined_at: m.joined_at,
        }
    }
}

/// A page of `list`'s members whose address starts with `q` (keys fold the
/// domain only, so `q` is matched as given), after the key `after`.
pub fn members_page(
    conn: &Connection,
    config: &Config,
    caller: &Caller,
    list: &str,
    q: &str,
    after: Option<&str>,
    limit: i64,
) -> ServiceResult<Vec<MemberView>> {
    let l = super::service_owner::administered_list(config, caller, list)?;
    Ok(
        members::page(conn, &l.name, q.trim(), after, limit.clamp(1, 500))?
            .into_iter()
            .map(MemberView::from)
            .collect(),
    )
}
