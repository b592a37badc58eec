//! The pipeline: what happens to a message after the spool committed it.
//!
//! A worker claims rows of the `incoming` queue in order, loads the stored
//! message, and dispatches by route to its handler. Rows are handled in
//! batches: one SQLite transaction (one fsync) for up to [`BATCH_ROWS`] rows,
//! each row's handler inside its own SAVEPOINT together with marking the row
//! `done`, so a state change and the mail it causes commit together, a
//! failing row rolls back alone, and a crash replays the uncommitted rows.
//!
//! Trusts the envelope the spool recorded; the message bytes are untrusted
//! network input that handlers parse themselves. A row whose handler reports
//! a permanent failure moves to `corrupt` with the reason, never vanishes.

pub mod bounces;
pub mod owner;
pub mod post;
pub mod postmaster;

use crate::background::BackgroundThread;
use crate::handler::{Ctx, HandlerError, Inbound};
use crate::plumbing::{Live, Wakers};
use crate::routing::Route;
use crate::store::{self, IntakeFlow, StoreError};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use std::sync::Arc;
use std::time::Duration;

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
        | Route::Confirm { .. } => crate::robot::handle(ctx, tx, msg),
        Route::Moderate { .. } => crate::moderation::handle_reply(ctx, tx, msg),
        Route::Owner { .. } => owner::forward(ctx, tx, msg),
        Route::Postmaster => postmaster::forward(ctx, tx, msg).map(|_| ()),
        Route::Bounces { .. } => bounces::record(ctx, tx, msg),
    }
}

/// Outcome of one `process_one` call.
#[derive(Debug, PartialEq, Eq)]
pub enum PipelineStep {
    /// A row was handled (done, corrupt or deferred for retry).
    Worked,
    /// Nothing is due.
    Idle,
}

/// Most rows handled in one transaction (one commit, one fsync).
pub const BATCH_ROWS: usize = 128;

/// A batch takes no new row after this long, or as soon as the spool writer
/// waits for the write lock (`IntakeFlow`), so the lock goes back to it
/// (its sessions wait for their 250) soon enough.
const BATCH_TIME: Duration = Duration::from_millis(10);

/// Hard failures (the worker died, or the handler panicked, while the row
/// was being handled) after which a row moves to `corrupt` without being
/// tried again.
pub const MAX_HARD_FAILURES: i64 = 3;

/// One due `incoming` row with its message's envelope.
#[derive(Debug)]
struct Row {
    id: i64,
    message_id: i64,
    rcpt: String,
    kind: String,
    list: Option<String>,
    tag: Option<String>,
    attempts: i64,
    /// Claims of this row that no outcome followed: hard failures so far.
    inflight: i64,
    env_from: String,
    client_ip: Option<String>,
    received_at: i64,
}

/// The oldest `limit` rows due at `now`.
fn due_rows(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.id, i.message_id, i.rcpt, i.route, i.list, i.tag, i.attempts, i.inflight,
                m.env_from, m.client_ip, m.received_at
         FROM incoming i JOIN messages m ON m.id = i.message_id
         WHERE i.state = 'incoming' AND i.updated_at <= ?1
         ORDER BY i.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit as i64], |r| {
        Ok(Row {
            id: r.get(0)?,
            message_id: r.get(1)?,
            rcpt: r.get(2)?,
            kind: r.get(3)?,
            list: r.get(4)?,
            tag: r.get(5)?,
            attempts: r.get(6)?,
            inflight: r.get(7)?,
            env_from: r.get(8)?,
            client_ip: r.get(9)?,
            received_at: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The handler's input for a row, or why the row can never be handled.
fn inbound(conn: &Connection, row: &Row, now: i64) -> Result<Result<Inbound, String>, StoreError> {
    let Some(route) = Route::from_parts(&row.kind, row.list.as_deref(), row.tag.as_deref()) else {
        return Ok(Err(format!("unknown route `{}`", row.kind)));
    };
    let Some(stored) = store::spool::load(conn, row.message_id)? else {
        return Ok(Err("message bytes missing".into()));
    };
    Ok(Ok(Inbound {
        incoming_id: row.id,
        message_id: row.message_id,
        rcpt: row.rcpt.clone(),
        route,
        env_from: row.env_from.clone(),
        client_ip: row.client_ip.clone(),
        received_at: row.received_at,
        bytes: stored.bytes,
        now,
    }))
}

/// Records that these rows are about to be handled, in a transaction of its
/// own that commits before any handler runs: should the worker die before
/// the rows' outcomes commit, the count survives (the batch's rollback and
/// a crash alike) and names the rows to handle alone next time. Committed
/// with `synchronous=NORMAL`: the WAL write survives the process dying
/// without an fsync of its own; the batch's commit syncs it.
fn claim(conn: &mut Connection, ids: &[i64]) -> Result<(), StoreError> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let claimed = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut up = tx.prepare_cached(
                "UPDATE incoming SET inflight = inflight + 1 WHERE id = ?1 AND state = 'incoming'",
            )?;
            for id in ids {
                up.execute([id])?;
            }
        }
        tx.commit()
    })();
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(claimed?)
}

/// Claims the oldest due `incoming` row and runs its handler in a
/// transaction of its own.
pub fn process_one(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<PipelineStep, StoreError> {
    let Some(row) = due_rows(conn, now, 1)?.pop() else {
        return Ok(PipelineStep::Idle);
    };
    process_row(ctx, conn, &row, now)?;
    Ok(PipelineStep::Worked)
}

/// One row, one transaction: the handler and the `done` mark commit
/// together; a failure is recorded after the handler's work is rolled back.
/// A row that failed hard [`MAX_HARD_FAILURES`] times moves to `corrupt`
/// without running again.
fn process_row(ctx: &Ctx, conn: &mut Connection, row: &Row, now: i64) -> Result<(), StoreError> {
    if row.inflight >= MAX_HARD_FAILURES {
        let reason = format!(
            "the pipeline failed hard (a crash or a panic) {} times while handling this row",
            row.inflight
        );
        tracing::error!(incoming = row.id, message = row.message_id, rcpt = %row.rcpt, %reason, "moved to corrupt; see `listd queue corrupt`");
        return mark(conn, row.id, "corrupt", Some(&reason), now);
    }
    claim(conn, &[row.id])?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let syncs = crate::archive::SyncBatch::begin();
    match handle_in_batch(ctx, &tx, row, now) {
        Ok(()) => {
            syncs
                .finish()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            Ok(tx.commit()?)
        }
        Err(e) => {
            // the transaction itself was lost: record the failure on its own
            drop(tx);
            record_failure(conn, row, &row.kind, HandlerError::Store(e), now)
        }
    }
}

/// Handles up to `max` due rows in one transaction, each inside its own
/// SAVEPOINT: a row whose handler fails (or panics) has its own work rolled
/// back and its failure recorded, and the other rows still commit. Every
/// row's handler runs in the transaction that marks it done, so a crash at
/// any instant replays the uncommitted rows and loses nothing. A row that
/// an earlier batch claimed without an outcome (the worker died) is handled
/// alone, so it can take no other row down with it. Should the batch itself
/// fail (say the transaction is lost to an I/O error), its rows are handled
/// again one by one, each in its own transaction. Returns how many rows
/// were handled (0: nothing is due).
pub fn process_batch(
    ctx: &Ctx,
    conn: &mut Connection,
    intake: &IntakeFlow,
    now: i64,
    max: usize,
) -> Result<usize, StoreError> {
    let rows = due_rows(conn, now, max.max(1))?;
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    if first.inflight > 0 {
        process_row(ctx, conn, first, now)?;
        return Ok(1);
    }
    let n = rows.iter().take_while(|r| r.inflight == 0).count();
    let rows = &rows[..n];
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    claim(conn, &ids)?;
    match run_batch(ctx, conn, intake, rows, now) {
        Ok(n) => Ok(n),
        Err(e) => {
            tracing::warn!(error = %e, rows = rows.len(), "pipeline batch failed; handling its rows one by one");
            // the batch failed, not a handler: this claim counts against no row
            for id in &ids {
                conn.execute(
                    "UPDATE incoming SET inflight = inflight - 1 WHERE id = ?1 AND inflight > 0",
                    [id],
                )?;
            }
            for row in rows {
                process_row(ctx, conn, row, now)?;
            }
            Ok(rows.len())
        }
    }
}

fn run_batch(
    ctx: &Ctx,
    conn: &mut Connection,
    intake: &IntakeFlow,
    rows: &[Row],
    now: i64,
) -> Result<usize, StoreError> {
    let started = std::time::Instant::now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // the batch's archive appends are synced once per file, before it commits
    let syncs = crate::archive::SyncBatch::begin();
    let mut n = 0;
    for row in rows {
        if n > 0 && (started.elapsed() >= BATCH_TIME || intake.waiting()) {
            // not handled in this batch (it is long enough, or the spool
            // writer waits for the lock with senders waiting for their
            // 250): give the claim back
            tx.execute(
                "UPDATE incoming SET inflight = inflight - 1 WHERE id = ?1 AND inflight > 0",
                [row.id],
            )?;
            continue;
        }
        handle_in_batch(ctx, &tx, row, now)?;
        n += 1;
    }
    syncs
        .finish()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    tx.commit()?;
    Ok(n)
}

/// Runs the row's handler, a panic included: a panic is this row's failure,
/// never the worker's.
fn dispatch_guarded(ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<(), HandlerError> {
    let run = std::panic::AssertUnwindSafe(|| {
        crate::fault::point("pipeline", &msg.bytes);
        dispatch(ctx, tx, msg)
    });
    match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(panic) => Err(HandlerError::Panic(crate::health::panic_message(
            panic.as_ref(),
        ))),
    }
}

/// One row of a batch, inside `SAVEPOINT pipeline_row`.
fn handle_in_batch(ctx: &Ctx, tx: &Transaction<'_>, row: &Row, now: i64) -> Result<(), StoreError> {
    let msg = match inbound(tx, row, now)? {
        Ok(m) => m,
        Err(reason) => return mark(tx, row.id, "corrupt", Some(&reason), now),
    };
    tx.execute_batch("SAVEPOINT pipeline_row")?;
    let result = dispatch_guarded(ctx, tx, &msg).and_then(|()| {
        mark(tx, row.id, "done", None, now)?;
        Ok(())
    });
    match result {
        Ok(()) => {
            tx.execute_batch("RELEASE pipeline_row")?;
            tracing::debug!(incoming = row.id, route = msg.route.kind(), "handled");
            Ok(())
        }
        Err(e) => match tx.execute_batch("ROLLBACK TO pipeline_row; RELEASE pipeline_row") {
            Ok(()) => record_failure(tx, row, msg.route.kind(), e, now),
            // the handler's failure took the whole transaction with it
            Err(lost) => Err(StoreError::Invalid(format!(
                "{e} (transaction lost: {lost})"
            ))),
        },
    }
}

/// A handler failed: `corrupt` for a permanent failure, after
/// [`MAX_ATTEMPTS`] temporary ones or after [`MAX_HARD_FAILURES`] panics;
/// else the row waits and is tried again later.
fn record_failure(
    conn: &Connection,
    row: &Row,
    route: &str,
    e: HandlerError,
    now: i64,
) -> Result<(), StoreError> {
    let id = row.id;
    let reason = e.to_string();
    // this claim is counted in `inflight` already (claim committed it)
    let hard = row.inflight + 1;
    let corrupt = match &e {
        HandlerError::Corrupt(_) => true,
        HandlerError::Panic(_) => hard >= MAX_HARD_FAILURES,
        _ => row.attempts + 1 >= MAX_ATTEMPTS,
    };
    if corrupt {
        tracing::error!(incoming = id, message = row.message_id, rcpt = %row.rcpt, route, %reason, "moved to corrupt; see `listd queue corrupt`");
        return mark(conn, id, "corrupt", Some(&reason), now);
    }
    // a panic keeps its claim counted (a hard failure) and is tried again
    // at once, alone, until it reaches the limit; any other failure clears
    // the count and backs off: 10 s, 20 s, ... capped at 10 minutes
    let (inflight, delay) = match e {
        HandlerError::Panic(_) => (hard, 0),
        _ => (0, (10 * (row.attempts + 1)).min(600)),
    };
    tracing::warn!(incoming = id, route, %reason, delay, "handler failed; will retry");
    conn.execute(
        "UPDATE incoming SET attempts = attempts + 1, error = ?2, updated_at = ?3, inflight = ?4
         WHERE id = ?1",
        params![id, reason, now + delay, inflight],
    )?;
    Ok(())
}

fn mark(
    conn: &Connection,
    id: i64,
    state: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE incoming SET state = ?2, error = ?3, updated_at = ?4, attempts = attempts + 1,
                             inflight = 0
         WHERE id = ?1",
        params![id, state, error, now],
    )?;
    Ok(())
}

/// Drains everything due now, in batches; returns how many rows were handled.
/// Then runs the bounce pass ([`bounce_pass`]).
pub fn drain(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<usize, StoreError> {
    let mut n = 0;
    loop {
        match process_batch(ctx, conn, &IntakeFlow::default(), now, BATCH_ROWS)? {
            0 => break,
            k => n += k,
        }
    }
    bounce_pass(ctx, conn, now);
    Ok(n)
}

/// Scores the outbound queue's refusals and sends the bounce probes due
/// (`crate::bounce::pass`); a failure is logged and retried next time.
pub fn bounce_pass(ctx: &Ctx, conn: &mut Connection, now: i64) {
    match crate::bounce::pass(ctx, conn, now) {
        Ok(s) if s != crate::bounce::PassStats::default() => {
            tracing::info!(
                events = s.events,
                probes = s.probes,
                removed = s.removed,
                "bounce pass"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "bounce pass failed"),
    }
}

/// After shutdown is asked for, the worker goes on handling what is due for
/// at most this long; the rest waits in the store for the next start.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// The pipeline worker: handles the incoming queue one batch (one
/// transaction) at a time whenever woken, and at least every few seconds
/// (for retries), waking delivery and the digest worker after each batch
/// (a post may have marked a digest issue due), until `shutdown` turns
/// true; then it finishes what is due (within [`SHUTDOWN_DRAIN`]).
pub async fn run(
    live: impl Into<Live>,
    wakers: Wakers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let live = live.into();
    let db = live.current().config.db_path();
    let mut conn = store::open(&db)?;
    store::poll_when_busy(&mut conn)?;
    let conn = Arc::new(std::sync::Mutex::new(conn));
    // the batches run on a thread of lower priority than intake's
    let thread = BackgroundThread::start("listd-pipeline")
        .map_err(|e| StoreError::Invalid(format!("cannot start the pipeline thread: {e}")))?;
    let mut stopping_since: Option<tokio::time::Instant> = None;
    loop {
        let c = conn.clone();
        let ctx2 = live.current();
        let intake = wakers.intake.clone();
        let handled = thread
            .run(move || {
                let mut guard = c
                    .lock()
                    .map_err(|_| StoreError::Invalid("pipeline connection poisoned".into()))?;
                let n = process_batch(&ctx2, &mut guard, &intake, store::now(), BATCH_ROWS)?;
                intake.handled(n);
                if n == 0 {
                    bounce_pass(&ctx2, &mut guard, store::now());
                }
                Ok::<usize, StoreError>(n)
            })
            .await
            .map_err(|e| StoreError::Invalid(format!("pipeline task: {e}")))?;
        let more = match handled {
            Ok(n) if n > 0 => {
                wakers.delivery.notify_one();
                wakers.digest.notify_one();
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(error = %e, "pipeline pass failed");
                false
            }
        };
        if *shutdown.borrow() {
            let since = *stopping_since.get_or_insert_with(tokio::time::Instant::now);
            if !more || since.elapsed() >= SHUTDOWN_DRAIN {
                return Ok(());
            }
            continue;
        }
        if more {
            // let other tasks in between two batches
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = wakers.pipeline.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => {}
        }
    }
}
