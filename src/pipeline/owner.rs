//! `NAME-owner@`: forwards the message to the list's owners, unchanged but
//! for an `X-Loop: NAME-owner@domain` line on top and the list's DMARC
//! mitigation (`posts::mitigate`), with the envelope sender
//! `NAME-bounces@domain` so failures never go back to the original sender.
//!
//! Loop protection: a message that already carries our X-Loop is dropped
//! (and logged). Trusts the configured owners; the bytes are untrusted and
//! only scanned by the byte-exact header splitter.

use crate::handler::{Ctx, HandlerError, Inbound};
use crate::mime::header_block::{self, Rewrite};
use crate::mime::list_id;
use crate::posts::mitigate::{self, Mitigation};
use crate::routing::Route;
use crate::store::outbound::{self, JobKind, NewJob};
use rusqlite::Transaction;

/// What [`forward`] did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// Queued to the owners as this job.
    Queued(i64),
    /// It carried our own X-Loop: dropped.
    Loop,
}

/// Whether the message has an `X-Loop:` header naming `addr` (any case,
/// read as `mime::list_id::parse_x_loop` reads it).
pub fn carries_x_loop(split: &header_block::Split, bytes: &[u8], addr: &str) -> bool {
    let addr = addr.to_ascii_lowercase();
    split
        .raw_values(bytes, "X-Loop")
        .iter()
        .any(|v| list_id::parse_x_loop(&header_block::unfold_text(v)) == addr)
}

/// Forwards one message to the owners.
pub fn forward(ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<(), HandlerError> {
    forward_message(ctx, tx, msg).map(|_| ())
}

/// [`forward`], saying what happened.
pub fn forward_message(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    msg: &Inbound,
) -> Result<Forwarded, HandlerError> {
    let Route::Owner { list } = &msg.route else {
        return Err(HandlerError::Corrupt(format!(
            "owner handler got a `{}` route",
            msg.route.kind()
        )));
    };
    let Some(lc) = ctx.config.list(list) else {
        return Err(HandlerError::Corrupt(format!(
            "list `{list}` is no longer configured; the owner mail stays here"
        )));
    };
    let loop_addr = ctx.config.list_suffix_address(&lc.name, "owner");
    let split = header_block::split(&msg.bytes);
    if carries_x_loop(&split, &msg.bytes, &loop_addr) {
        tracing::warn!(list = %lc.name, incoming = msg.incoming_id, from = %msg.env_from,
            "owner mail already carries our X-Loop: dropped to break a mail loop");
        return Ok(Forwarded::Loop);
    }
    if lc.owners.is_empty() {
        return Err(HandlerError::Corrupt(format!(
            "list `{}` has no owners to forward NAME-owner mail to; it stays here",
            lc.name
        )));
    }
    // the owners' providers check DMARC too: the list's mitigation applies
    let verdict = crate::auth::stored(tx, msg.message_id)?;
    let list_address = ctx.config.list_address(&lc.name);
    let original = match mitigate::choose(lc.dmarc_mitigation, verdict.as_ref()) {
        Mitigation::Keep => msg.bytes.clone(),
        Mitigation::Munge => mitigate::munge(&msg.bytes, &lc.name, &list_address),
        Mitigation::Wrap => mitigate::wrap(&msg.bytes, &lc.name, &list_address),
    };
    let split = header_block::split(&original);
    let mut rw = Rewrite::new();
    rw.prepend("X-Loop", loop_addr.as_bytes(), split.eol);
    let bytes = rw.apply(&split, &original);
    let env_from = ctx.config.list_suffix_address(&lc.name, "bounces");
    let owners: Vec<&str> = lc.owners.iter().map(String::as_str).collect();
    let job = outbound::enqueue(
        tx,
        &NewJob {
            list: Some(&lc.name),
            kind: JobKind::Forward,
            env_from: &env_from,
            verp: false,
            bytes: &bytes,
        },
        &owners,
        msg.now,
    )?;
    tracing::info!(list = %lc.name, job, owners = owners.len(), from = %msg.env_from, "owner mail forwarded");
    Ok(Forwarded::Queued(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_loop_is_read_in_every_form() {
        let ours = "dev-owner@lists.example.org";
        for v in [
            "dev-owner@lists.example.org",
            "<DEV-owner@Lists.Example.org>",
            "Owners\r\n <dev-owner@lists.example.org>",
        ] {
            let m = format!("X-Loop: other@x.org\r\nX-Loop: {v}\r\n\r\nx");
            let split = header_block::split(m.as_bytes());
            assert!(carries_x_loop(&split, m.as_bytes(), ours), "{v}");
        }
        let m = b"X-Loop: dev@lists.example.org\r\n\r\nX-Loop: dev-owner@lists.example.org\r\n";
        assert!(!carries_x_loop(&header_block::split(m), m, ours));
    }
}
