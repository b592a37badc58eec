//! Time-driven moderation: held posts expire after the list's `hold_days`
//! (discarded, the poster told), and moderators get a daily reminder of
//! posts still pending. The daemon calls both periodically; `now` is passed
//! in so tests can fake the clock.
//!
//! Trusts the configuration and the store; reads no network input.

use super::{held, notice};
use crate::handler::{Ctx, HandlerError};
use rusqlite::{Connection, TransactionBehavior};

/// Posts handled per transaction.
const BATCH: i64 = 200;
/// Spent tokens are kept this long after their post was closed, so a late
/// reply still gets "already approved by X at T".
pub const TOKEN_RETENTION_SECS: i64 = 30 * 86400;
/// Reminders go out at most this often per list.
pub const REMIND_EVERY_SECS: i64 = 86400;
/// Pending posts listed in one reminder.
const REMIND_LIST_MAX: i64 = 100;

/// Expires every held post older than its list's `hold_days`: marks it
/// expired, kills its tokens and tells the poster (template
/// `moderation-expired`). Also purges tokens of posts closed more than 30
/// days ago. Returns how many posts expired.
pub fn expire(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<usize, HandlerError> {
    let mut n = 0;
    for (name, list) in &ctx.config.lists {
        let cutoff = now - i64::from(list.hold_days) * 86400;
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let due = held::held_before(&tx, name, cutoff, BATCH)?;
            if due.is_empty() {
                break;
            }
            for h in &due {
                if !held::finish(&tx, h.id, "expired", "expire", "expiry", None, now)? {
                    continue;
                }
                if let Some(to) = &h.notify {
                    notice::poster_expired(ctx, &tx, list, to, h, now)?;
                }
                held::log(&tx, name, Some(h.id), "expiry", "expire", "done", now)?;
                tracing::info!(list = %name, held = h.id, sender = %h.sender, "held post expired");
                n += 1;
            }
            tx.commit()?;
        }
    }
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let purged = held::purge_tokens(&tx, now - TOKEN_RETENTION_SECS, BATCH)?;
        tx.commit()?;
        if purged == 0 {
            break;
        }
    }
    Ok(n)
}

/// Sends each list's moderators (lists with `moderator_reminders`) a
/// reminder of the posts held for more than a day, at most once a day per
/// list. Returns how many reminders were queued.
pub fn remind(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<usize, HandlerError> {
    let mut n = 0;
    for (name, list) in &ctx.config.lists {
        if !list.moderator_reminders {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if held::last_reminder(&tx, name)?.is_some_and(|t| now - t < REMIND_EVERY_SECS) {
            continue;
        }
        let cutoff = now - REMIND_EVERY_SECS;
        let pending = held::held_before(&tx, name, cutoff, REMIND_LIST_MAX)?;
        if pending.is_empty() {
            continue;
        }
        let total = held::pending_count(&tx, name)?;
        if notice::reminder(ctx, &tx, list, &pending, total, now)?.is_some() {
            n += 1;
        }
        held::set_last_reminder(&tx, name, now)?;
        tx.commit()?;
    }
    Ok(n)
}

/// How often the daemon runs `expire` and `remind`.
pub const TICK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The daemon's moderation task: runs [`expire`], [`remind`] and
/// `flood::summarise` (and purges the rate log) at start and every
/// [`TICK_EVERY`] until `shutdown` turns true; wakes the delivery worker
/// when any queued mail. A failing pass is logged and retried at
/// the next tick.
pub async fn run(
    live: impl Into<crate::plumbing::Live>,
    wakers: crate::plumbing::Wakers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), crate::store::StoreError> {
    use crate::store::{self, StoreError};
    let live = live.into();
    let conn = store::open(&live.current().config.db_path())?;
    let conn = std::sync::Arc::new(std::sync::Mutex::new(conn));
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let (c, ctx2) = (conn.clone(), live.current());
        let pass = tokio::task::spawn_blocking(move || {
            let mut guard = c
                .lock()
                .map_err(|_| StoreError::Invalid("moderation connection poisoned".into()))?;
            let now = store::now();
            let expired = expire(&ctx2, &mut guard, now);
            let reminded = remind(&ctx2, &mut guard, now);
            let summarised = super::flood::summarise(&ctx2, &mut guard, now);
            if let Err(e) = store::rate::purge(&guard, now) {
                tracing::error!(error = %e, "purging the rate log failed; retrying at the next tick");
            }
            Ok::<_, StoreError>((expired, reminded, summarised))
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("moderation task: {e}")))??;
        let mut queued = false;
        match pass.0 {
            Ok(n) => queued |= n > 0,
            Err(e) => {
                tracing::error!(error = %e, "held-post expiry failed; retrying at the next tick")
            }
        }
        match pass.1 {
            Ok(n) => queued |= n > 0,
            Err(e) => {
                tracing::error!(error = %e, "moderator reminders failed; retrying at the next tick")
            }
        }
        match pass.2 {
            Ok(n) => queued |= n > 0,
            Err(e) => {
                tracing::error!(error = %e, "held-post summaries failed; retrying at the next tick")
            }
        }
        if queued {
            wakers.delivery.notify_one();
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
