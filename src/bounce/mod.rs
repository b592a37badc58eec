//! Bounce processing: mail to `NAME-bounces@` / `NAME-bounces+TAG@` and the
//! outbound queue's own refusals (`bounce_events`) become scores; a member
//! whose score reaches `bounce.threshold` is disabled and told how to
//! re-enable (a token), probed, and removed when the probes go unanswered.
//! Spam/policy refusals are recorded and reported to the owners, never
//! held against the member.
//!
//! Reading is `parse`, the decision is `score::decide` (pure); this module
//! gathers the facts and acts in the caller's transaction. Trusts nothing
//! in the bounce: an address it names is only a claim, so a bounce counts
//! at most once per member per day, a VERP tag for no member is dropped,
//! and nothing is ever sent to a bounce's sender. Privilege to re-enable
//! comes only from the token mailed to the member's own address.

pub mod parse;
pub mod score;

use crate::address::Address;
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::robot::tokens::{self, TokenAction};
use crate::robot::{template_data, Mail, To};
use crate::store::bounces::{self, NewBounce, Score};
use crate::store::members::{self, Member};
use crate::store::outbound::JobKind;
use crate::store::rate::{self, Budget};
use parse::{Bounce, BounceKind};
use rusqlite::{Connection, TransactionBehavior};
use score::{BounceAction, BounceEvent, BounceFacts, IgnoreBounce};
use serde_json::json;

/// Templates bounce processing renders.
pub const T_DISABLED: &str = "bounce-disabled";
pub const T_OWNER: &str = "bounce-owner";

/// Queue events and due probes handled per transaction.
const PASS_ROWS: usize = 200;

/// Recipients scored from one bounce without a VERP tag (a relay's DSN
/// names at most one batch; a forged one gets no further).
const MAX_NAMED: usize = 100;

/// Decodes a VERP tag `user=example.org` into `user@example.org`.
pub fn verp_address(tag: &str) -> Option<String> {
    let (local, domain) = tag.rsplit_once('=')?;
    if local.is_empty() || domain.is_empty() || !domain.contains('.') {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// The member an address names on `list`, if it parses and is one.
fn member_of(conn: &Connection, list: &str, addr: &str) -> Result<Option<Member>, HandlerError> {
    let Ok(a) = Address::parse(addr) else {
        return Ok(None);
    };
    Ok(members::get(conn, list, &a.key())?)
}

/// Handles one mail to the list's bounce address: records what it says and
/// scores the member(s) it names.
pub fn receive(
    ctx: &Ctx,
    tx: &Connection,
    msg: &Inbound,
    list: &str,
    tag: Option<&str>,
) -> Result<(), HandlerError> {
    let readings = parse::read(&msg.bytes);
    let lc = ctx.config.list(list);
    let record = |b: &Bounce, recipient: Option<&str>| -> Result<(), HandlerError> {
        bounces::insert(
            tx,
            &NewBounce {
                list,
                message_id: msg.message_id,
                tag,
                recipient,
                status: b.status.as_deref(),
                diagnostic: b.diagnostic.as_deref(),
                kind: b.kind.as_str(),
                env_from: &msg.env_from,
                received_at: msg.received_at,
            },
        )?;
        tracing::info!(%list, tag = tag.unwrap_or(""), recipient = recipient.unwrap_or("?"),
            status = b.status.as_deref().unwrap_or("?"), kind = b.kind.as_str(), "bounce recorded");
        Ok(())
    };
    if let Some(tag) = tag {
        // VERP: the tag names the member whatever the report says
        let reading = readings
            .iter()
            .find(|b| b.kind.is_failure())
            .unwrap_or(&readings[0]);
        let addr = verp_address(tag);
        let member = match (&addr, lc) {
            (Some(a), Some(_)) => member_of(tx, list, a)?,
            _ => None,
        };
        // the row names the member the tag names, as listd sent it
        record(reading, addr.as_deref())?;
        match (member, lc) {
            (Some(m), Some(lc)) => {
                apply(
                    ctx,
                    tx,
                    lc,
                    &m,
                    reading.kind,
                    reading.status.as_deref(),
                    msg.now,
                )?;
            }
            _ => tracing::warn!(%list, %tag, "bounce: VERP tag names no member; dropped"),
        }
        return Ok(());
    }
    if readings.len() > MAX_NAMED {
        tracing::warn!(%list, named = readings.len(), "bounce names too many recipients; only the first {MAX_NAMED} are read");
    }
    for b in readings.iter().take(MAX_NAMED) {
        // Original-Recipient is what we sent to; Final-Recipient may be
        // where it was forwarded
        let mut member = None;
        if let Some(lc) = lc {
            for a in [&b.original, &b.recipient].into_iter().flatten() {
                if let Some(m) = member_of(tx, &lc.name, a)? {
                    member = Some(m);
                    break;
                }
            }
        }
        let shown = member
            .as_ref()
            .map(|m| m.address.clone())
            .or(b.recipient.clone())
            .or(b.original.clone());
        let shown = shown.as_deref();
        record(b, shown)?;
        match (member, lc) {
            (Some(m), Some(lc)) => {
                apply(ctx, tx, lc, &m, b.kind, b.status.as_deref(), msg.now)?;
            }
            _ if b.kind.is_failure() => {
                tracing::info!(%list, recipient = shown.unwrap_or("?"), "bounce names no member; not scored")
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decides for one member's bounce of `kind` and acts; returns the action.
pub fn apply(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    m: &Member,
    kind: BounceKind,
    status: Option<&str>,
    now: i64,
) -> Result<BounceAction, HandlerError> {
    let key = crate::address::address_key(&m.address);
    let old = bounces::score(tx, &list.name, &key)?;
    let action = score::decide(
        &ctx.config.bounce,
        &BounceFacts {
            event: BounceEvent::Bounce(kind),
            member: true,
            disabled: m.disabled,
            score: old.as_ref(),
            now,
        },
    );
    let counted = |score: f64| Score {
        list: list.name.clone(),
        address_key: key.clone(),
        address: m.address.clone(),
        score,
        counted: old.as_ref().map_or(0, |s| s.counted) + 1,
        last_day: Some(score::day(now)),
        last_bounce_at: Some(now),
        last_status: status.map(str::to_string),
        ..Score::default()
    };
    match action {
        BounceAction::Count { score } => bounces::put_score(tx, &counted(score))?,
        BounceAction::Disable { score } => {
            let interval = i64::from(ctx.config.bounce.probe_interval_days.max(1)) * 86_400;
            bounces::put_score(
                tx,
                &Score {
                    disabled_at: Some(now),
                    probes: 1,
                    next_probe_at: Some(now + interval),
                    ..counted(score)
                },
            )?;
            members::set_disabled(tx, &list.name, &key, true)?;
            tracing::warn!(list = %list.name, address = %m.address, score, "member disabled by bounces");
            let mut mails = vec![member_notice(ctx, tx, list, m, 1, now)?];
            mails.extend(owner_notice(
                ctx, list, "disabled", &m.address, score, status,
            ));
            crate::robot::send(ctx, tx, mails, None, now)?;
        }
        BounceAction::IgnoreBounce(IgnoreBounce::Policy) => {
            policy_refusal(ctx, tx, list, &m.address, status, now)?
        }
        BounceAction::IgnoreBounce(why) => {
            tracing::debug!(list = %list.name, address = %m.address, ?why, "bounce not counted")
        }
        BounceAction::Probe { .. } | BounceAction::Remove => {}
    }
    Ok(action)
}

/// A policy refusal: counted against the list; the owners hear once a day
/// when `bounce.policy_report_after` of them came within a day.
fn policy_refusal(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    addr: &str,
    status: Option<&str>,
    now: i64,
) -> Result<(), HandlerError> {
    let bucket = format!("bounce-policy:{}", list.name);
    rate::record(tx, &bucket, now)?;
    let after = ctx.config.bounce.policy_report_after;
    let seen = rate::count(tx, &bucket, rate::DAY, now)?;
    tracing::warn!(list = %list.name, address = %addr, status = status.unwrap_or("?"), today = seen,
        "spam/policy refusal: not counted against the member");
    if after == 0 || seen < i64::from(after) {
        return Ok(());
    }
    let once = [Budget::daily(
        format!("bounce-policy-report:{}", list.name),
        1,
    )];
    if rate::take(tx, &once, now)?.is_some() {
        return Ok(());
    }
    let mails = owner_notice(ctx, list, "policy", addr, seen as f64, status);
    crate::robot::send(ctx, tx, mails.into_iter().collect(), None, now)?;
    Ok(())
}

/// The notice to a disabled member: probe `n` of `bounce.probes`, with a
/// token that re-enables delivery.
fn member_notice(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    m: &Member,
    n: u32,
    now: i64,
) -> Result<Mail, HandlerError> {
    let config = &ctx.config;
    let addr = Address::parse(&m.address)
        .map_err(|e| HandlerError::Corrupt(format!("stored member address: {e}")))?;
    let token = tokens::issue(
        tx,
        &tokens::NewToken {
            list: &list.name,
            action: TokenAction::SetMode,
            address: &addr,
            name: None,
            requested_by: &m.address,
            request_id: None,
            mode: Some(m.mode),
        },
        config
            .robot
            .token_expiry_days
            .max(config.bounce.probe_interval_days),
        now,
    )?;
    let confirm_address = config.list_suffix_address(&list.name, &format!("confirm+{token}"));
    Ok(Mail {
        to: To::One(m.address.clone()),
        list: Some(list.name.clone()),
        template: T_DISABLED,
        default_subject: format!("Your {} membership is disabled", list.name),
        data: template_data(
            config,
            Some(list),
            json!({"address": m.address, "token": token, "confirm_address": confirm_address,
                   "probe": n, "probes": config.bounce.probes.max(1)}),
        ),
        kind: JobKind::Notice,
        reply_to: Some(confirm_address),
        answers_command: false,
        limited: true,
        attachment: None,
    })
}

/// The owners' notice of an `event` (disabled, removed, policy).
fn owner_notice(
    ctx: &Ctx,
    list: &ListConfig,
    event: &str,
    addr: &str,
    score: f64,
    status: Option<&str>,
) -> Option<Mail> {
    if list.owners.is_empty() {
        return None;
    }
    Some(Mail {
        to: To::Owners(list.owners.clone()),
        list: Some(list.name.clone()),
        template: T_OWNER,
        default_subject: format!("{} bounces: {addr} {event}", list.name),
        data: template_data(
            &ctx.config,
            Some(list),
            json!({"address": addr, "event": event, "disabled": event == "disabled",
                   "removed": event == "removed", "policy": event == "policy",
                   "score": score, "status": status}),
        ),
        kind: JobKind::Notice,
        reply_to: None,
        answers_command: false,
        limited: false,
        attachment: None,
    })
}

/// What one [`pass`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub events: usize,
    pub probes: usize,
    pub removed: usize,
}

/// Scores the outbound queue's pending refusals and sends the probes (or
/// removals) due at `now`, in one transaction per [`PASS_ROWS`].
pub fn pass(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<PassStats, HandlerError> {
    let mut stats = PassStats::default();
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let events = bounces::pending_events(&tx, PASS_ROWS)?;
        for e in &events {
            bounces::event_done(&tx, e.id)?;
            let Some(lc) = e.list.as_deref().and_then(|l| ctx.config.list(l)) else {
                continue;
            };
            let Some(m) = member_of(&tx, &lc.name, &e.address)? else {
                continue;
            };
            let status = parse::find_status(&e.reason);
            let kind = match e.kind.as_str() {
                "expired" => BounceKind::Soft,
                _ => match parse::classify(Some("failed"), status.as_deref(), &e.reason) {
                    BounceKind::Unrecognised => BounceKind::Soft,
                    k => k,
                },
            };
            apply(ctx, &tx, lc, &m, kind, status.as_deref(), now)?;
        }
        let due = bounces::probes_due(&tx, now, PASS_ROWS)?;
        for s in &due {
            match probe(ctx, &tx, s, now)? {
                BounceAction::Probe { .. } => stats.probes += 1,
                BounceAction::Remove => stats.removed += 1,
                _ => {}
            }
        }
        tx.commit()?;
        stats.events += events.len();
        if events.len() < PASS_ROWS && due.len() < PASS_ROWS {
            return Ok(stats);
        }
    }
}

/// A disabled member's due probe: another notice, or removal.
fn probe(ctx: &Ctx, tx: &Connection, s: &Score, now: i64) -> Result<BounceAction, HandlerError> {
    let lc = ctx.config.list(&s.list);
    let member = match lc {
        Some(_) => members::get(tx, &s.list, &s.address_key)?,
        None => None,
    };
    let action = score::decide(
        &ctx.config.bounce,
        &BounceFacts {
            event: BounceEvent::Tick,
            member: member.is_some(),
            disabled: member.as_ref().is_some_and(|m| m.disabled),
            score: Some(s),
            now,
        },
    );
    let (Some(lc), Some(m)) = (lc, member) else {
        bounces::clear_score(tx, &s.list, &s.address_key)?;
        return Ok(action);
    };
    match action {
        BounceAction::Probe { n } => {
            let interval = i64::from(ctx.config.bounce.probe_interval_days.max(1)) * 86_400;
            bounces::put_score(
                tx,
                &Score {
                    probes: n,
                    next_probe_at: Some(now + interval),
                    ..s.clone()
                },
            )?;
            let mail = member_notice(ctx, tx, lc, &m, n, now)?;
            crate::robot::send(ctx, tx, vec![mail], None, now)?;
        }
        BounceAction::Remove => {
            members::remove(tx, &s.list, &s.address_key)?;
            bounces::clear_score(tx, &s.list, &s.address_key)?;
            tracing::warn!(list = %s.list, address = %m.address, "member removed after unanswered bounce probes");
            let mails = owner_notice(
                ctx,
                lc,
                "removed",
                &m.address,
                s.score,
                s.last_status.as_deref(),
            );
            crate::robot::send(ctx, tx, mails.into_iter().collect(), None, now)?;
        }
        // re-enabled meanwhile (no longer disabled): its probes end
        _ => {
            bounces::put_score(
                tx,
                &Score {
                    next_probe_at: None,
                    ..s.clone()
                },
            )?;
        }
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::verp_address;

    #[test]
    fn verp_tags() {
        assert_eq!(
            verp_address("ann=example.org").as_deref(),
            Some("ann@example.org")
        );
        assert_eq!(
            verp_address("a=b=example.org").as_deref(),
            Some("a=b@example.org")
        );
        assert_eq!(verp_address("nodomain"), None);
        assert_eq!(verp_address("x=localhost"), None);
        assert_eq!(verp_address("=example.org"), None);
    }
}
