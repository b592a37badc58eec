//! `postmaster@domain` and `<Postmaster>` (RFC 5321 §4.5.1): forwards the
//! message to the site's administrators — the `postmaster:` addresses of
//! listd.yaml, or, when none are set, the owners of every list — unchanged
//! but for an `X-Loop: postmaster@domain` line on top.
//!
//! The envelope sender is `robot.bounce_address` (the null sender `<>` by
//! default), so a failed forward never goes back to the original sender.
//! Nothing is dropped: a message that already carries our X-Loop (a mail
//! loop), or one with nowhere to go (no `postmaster:` and no owners), moves
//! to `corrupt` with the reason, where `listd queue` shows it. Trusts the
//! configuration; the bytes are untrusted and only scanned by the byte-exact
//! header splitter.

use crate::handler::{Ctx, HandlerError, Inbound};
use crate::mime::header_block::{self, Rewrite};
use crate::routing::Route;
use crate::store::outbound::{self, JobKind, NewJob};
use rusqlite::Transaction;

/// Forwards one postmaster message; returns the outbound job.
pub fn forward(ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<i64, HandlerError> {
    if msg.route != Route::Postmaster {
        return Err(HandlerError::Corrupt(format!(
            "postmaster handler got a `{}` route",
            msg.route.kind()
        )));
    }
    let config = &ctx.config;
    let loop_addr = config.postmaster_address();
    let split = header_block::split(&msg.bytes);
    if super::owner::carries_x_loop(&split, &msg.bytes, &loop_addr) {
        return Err(HandlerError::Corrupt(format!(
            "postmaster mail already carries X-Loop: {loop_addr} (a mail loop); kept here, not forwarded"
        )));
    }
    let rcpts = config.postmaster_recipients();
    if rcpts.is_empty() {
        return Err(HandlerError::Corrupt(
            "postmaster mail has nowhere to go: set `postmaster:` in listd.yaml (no list has owners either); kept here"
                .into(),
        ));
    }
    let mut rw = Rewrite::new();
    rw.prepend("X-Loop", loop_addr.as_bytes(), split.eol);
    let bytes = rw.apply(&split, &msg.bytes);
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let job = outbound::enqueue(
        tx,
        &NewJob {
            list: None,
            kind: JobKind::Forward,
            env_from: &config.robot.bounce_address,
            verp: false,
            bytes: &bytes,
        },
        &rcpts,
        msg.now,
    )?;
    tracing::info!(job, to = rcpts.len(), from = %msg.env_from, "postmaster mail forwarded");
    Ok(job)
}
