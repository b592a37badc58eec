//! `NAME-owner@`: forwards the message to the list's owners.

use super::{Ctx, HandlerError, Inbound};
use rusqlite::Transaction;

/// Forwards one message to the owners.
pub fn forward(_ctx: &Ctx, _tx: &Transaction<'_>, _msg: &Inbound) -> Result<(), HandlerError> {
    Err(HandlerError::Temporary(
        "owner forwarding is not built yet".into(),
    ))
}
