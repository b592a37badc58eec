//! The command robot: `NAME-request@`, `majordomo@`, `NAME-join@`,
//! `NAME-leave@` and `NAME-confirm+TOKEN@`.

use crate::pipeline::{Ctx, HandlerError, Inbound};
use rusqlite::Transaction;

/// Handles one command mail.
pub fn handle(_ctx: &Ctx, _tx: &Transaction<'_>, _msg: &Inbound) -> Result<(), HandlerError> {
    Err(HandlerError::Temporary(
        "the command robot is not built yet".into(),
    ))
}
