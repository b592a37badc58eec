//! `NAME-bounces@` and `NAME-bounces+TAG@`: records bounces for the bounce
//! processor (a later issue); nothing is dropped.

use super::{Ctx, HandlerError, Inbound};
use rusqlite::Transaction;

/// Records one bounce.
pub fn record(_ctx: &Ctx, _tx: &Transaction<'_>, _msg: &Inbound) -> Result<(), HandlerError> {
    Err(HandlerError::Temporary(
        "bounce recording is not built yet".into(),
    ))
}
