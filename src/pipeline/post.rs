//! Posts to `NAME@`: rules decide (Accept, Hold, Reject, Discard), then
//! handlers decorate, archive and queue the fan-out.

use super::{Ctx, HandlerError, Inbound};
use rusqlite::Transaction;

/// Handles one post.
pub fn handle(_ctx: &Ctx, _tx: &Transaction<'_>, _msg: &Inbound) -> Result<(), HandlerError> {
    Err(HandlerError::Temporary(
        "post handling is not built yet".into(),
    ))
}
