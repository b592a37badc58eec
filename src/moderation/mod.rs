//! Moderation: the hold queue and moderators' actions.

use crate::pipeline::{Ctx, HandlerError, Inbound};
use rusqlite::Transaction;

/// Handles a moderator's reply to `NAME-moderate+TOKEN@`.
pub fn handle_reply(_ctx: &Ctx, _tx: &Transaction<'_>, _msg: &Inbound) -> Result<(), HandlerError> {
    Err(HandlerError::Temporary(
        "moderation is not built yet".into(),
    ))
}
