//! `NAME-bounces@` and `NAME-bounces+TAG@`: hands the mail to bounce
//! processing (`crate::bounce::receive`), which records and scores it.
//! Nothing is dropped and the route never waits: every message is recorded.
//!
//! Trusts the route the spool recorded; nothing in the bounce.

use crate::handler::{Ctx, HandlerError, Inbound};
use crate::routing::Route;
use rusqlite::Transaction;

/// Records and scores one bounce.
pub fn record(ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<(), HandlerError> {
    let Route::Bounces { list, tag } = &msg.route else {
        return Err(HandlerError::Corrupt(format!(
            "bounce handler got a `{}` route",
            msg.route.kind()
        )));
    };
    crate::bounce::receive(ctx, tx, msg, list, tag.as_deref())
}
