//! The pipeline: what happens to a message after the spool committed it.
//!
//! A worker claims rows of the `incoming` queue in order, loads the stored
//! message, and dispatches by route to its handler. Each handler runs inside
//! one SQLite transaction together with marking the row `done`, so a state
//! change and the mail it causes commit together; a crash replays the row.
//!
//! Trusts the envelope the spool recorded; the message bytes are untrusted
//! network input that handlers parse themselves. A row whose handler reports
//! a permanent failure moves to `corrupt` with the reason, never vanishes.

pub mod bounces;
pub mod decorate;
pub mod header_block;
pub mod owner;
pub mod post;
pub mod postmaster;
pub mod rules;
pub mod transfer;

use crate::config::Config;
use crate::routing::Route;
use crate::store::{self, StoreError};
use crate::templates::Templates;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::sync::Arc;
use std::time::Duration;

/// What every handler may read: the configuration and the templates.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
}

/// One routed recipient of a stored inbound message, handed to its handler.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The `incoming` row.
    pub incoming_id: i64,
    /// The `messages` row holding the bytes.
    pub message_id: i64,
    /// The envelope recipient as given in RCPT TO.
    pub rcpt: String,
    pub route: Route,
    /// The envelope sender; empty for `<>`.
    pub env_from: String,
    pub client_ip: Option<String>,
    pub received_at: i64,
    /// The message as received, with our Received: header on top.
    pub bytes: Vec<u8>,
    /// Processing time (unix seconds); handlers use this, not the clock.
    pub now: i64,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try again later (the row stays `incoming`).
    #[error("temporary: {0}")]
    Temporary(String),
    /// Will never succeed: the row moves to `corrupt` with this reason.
    #[error("{0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for HandlerError {
    fn from(e: rusqlite::Error) -> Self {
        HandlerError::Store(StoreError::Sqlite(e))
    }
}

impl From<crate::templates::TemplateError> for HandlerError {
    fn from(e: crate::templates::TemplateError) -> Self {
        HandlerError::Temporary(e.to_string())
    }
}

/// Attempts after which a row that keeps failing temporarily goes to `corrupt`.
pub const MAX_ATTEMPTS: i64 = 50;

/// Dispatches one inbound item to its handler, inside `tx`.
pub fn dispatch(ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<(), HandlerError> {
    match &msg.route {
        Route::Post { .. } => post::handle(ctx, tx, msg),
        Route::Request { .. }
        | Route::Majordomo
        | Route::Join { .. }
        | Route::Leave { .. }
        | Route::Confirm { .. } => crate::commands::handle(ctx, tx, msg),
        Route::Moderate { .. } => crate::moderation::handle_reply(ctx, tx, msg),
        Route::Owner { .. } => owner::forward(ctx, tx, msg),
        Route::Postmaster => postmaster::forward(ctx, tx, msg).map(|_| ()),
        Route::Bounces { .. } => bounces::record(ctx, tx, msg),
    }
}

/// Outcome of one `process_one` call.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A row was handled (done, corrupt or deferred for retry).
    Worked,
    /// Nothing is due.
    Idle,
}

/// Claims the oldest due `incoming` row and runs its handler.
pub fn process_one(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<Step, StoreError> {
    let row = conn
        .query_row(
            "SELECT i.id, i.message_id, i.rcpt, i.route, i.list, i.tag, i.attempts,
                    m.env_from, m.client_ip, m.received_at
             FROM incoming i JOIN messages m ON m.id = i.message_id
             WHERE i.state = 'incoming' AND i.updated_at <= ?1
             ORDER BY i.id LIMIT 1",
            [now],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, i64>(9)?,
                ))
            },
        )
        .optional()?;
    let Some((id, message_id, rcpt, kind, list, tag, attempts, env_from, client_ip, received_at)) =
        row
    else {
        return Ok(Step::Idle);
    };
    let Some(route) = Route::from_parts(&kind, list.as_deref(), tag.as_deref()) else {
        mark(
            conn,
            id,
            "corrupt",
            Some(&format!("unknown route `{kind}`")),
            now,
        )?;
        return Ok(Step::Worked);
    };
    let bytes = match store::spool::load(conn, message_id)? {
        Some(m) => m.bytes,
        None => {
            mark(conn, id, "corrupt", Some("message bytes missing"), now)?;
            return Ok(Step::Worked);
        }
    };
    let msg = Inbound {
        incoming_id: id,
        message_id,
        rcpt,
        route,
        env_from,
        client_ip,
        received_at,
        bytes,
        now,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let result = dispatch(ctx, &tx, &msg);
    match result {
        Ok(()) => {
            mark(&tx, id, "done", None, now)?;
            tx.commit()?;
            tracing::debug!(incoming = id, route = msg.route.kind(), "handled");
        }
        Err(HandlerError::Corrupt(reason)) => {
            drop(tx);
            tracing::warn!(incoming = id, route = msg.route.kind(), %reason, "moved to corrupt");
            mark(conn, id, "corrupt", Some(&reason), now)?;
        }
        Err(e) => {
            drop(tx);
            let reason = e.to_string();
            if attempts + 1 >= MAX_ATTEMPTS {
                tracing::error!(incoming = id, %reason, "giving up after {MAX_ATTEMPTS} attempts; moved to corrupt");
                mark(conn, id, "corrupt", Some(&reason), now)?;
            } else {
                // back off: 10 s, 20 s, ... capped at 10 minutes
                let delay = (10 * (attempts + 1)).min(600);
                tracing::warn!(incoming = id, route = msg.route.kind(), %reason, delay, "handler failed; will retry");
                conn.execute(
                    "UPDATE incoming SET attempts = attempts + 1, error = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, reason, now + delay],
                )?;
            }
        }
    }
    Ok(Step::Worked)
}

fn mark(
    conn: &Connection,
    id: i64,
    state: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE incoming SET state = ?2, error = ?3, updated_at = ?4, attempts = attempts + 1 WHERE id = ?1",
        params![id, state, error, now],
    )?;
    Ok(())
}

/// Drains everything due now; returns how many rows were handled.
pub fn drain(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<usize, StoreError> {
    let mut n = 0;
    while process_one(ctx, conn, now)? == Step::Worked {
        n += 1;
    }
    Ok(n)
}

/// Wake-up signals between the daemon's workers.
#[derive(Clone, Default)]
pub struct Wakers {
    /// The spool committed new incoming rows.
    pub pipeline: Arc<tokio::sync::Notify>,
    /// New outbound jobs or due retries.
    pub delivery: Arc<tokio::sync::Notify>,
}

/// The pipeline worker: drains the incoming queue whenever woken, and at
/// least every few seconds (for retries), until `shutdown` turns true.
pub async fn run(
    ctx: Ctx,
    wakers: Wakers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let db = ctx.config.db_path();
    let conn = store::open(&db)?;
    let conn = Arc::new(std::sync::Mutex::new(conn));
    loop {
        let c = conn.clone();
        let ctx2 = ctx.clone();
        let handled = tokio::task::spawn_blocking(move || {
            let mut guard = c
                .lock()
                .map_err(|_| StoreError::Invalid("pipeline connection poisoned".into()))?;
            drain(&ctx2, &mut guard, store::now())
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("pipeline task: {e}")))?;
        match handled {
            Ok(n) if n > 0 => wakers.delivery.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "pipeline pass failed"),
        }
        if *shutdown.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = wakers.pipeline.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
