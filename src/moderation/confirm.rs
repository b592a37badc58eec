//! Sender confirmation (Sympa's "editor key"): a post that the posting rules
//! would let through only because of the address it claims (an owner, a
//! moderator, an accept-listed sender; members under `confirm_members`) and
//! that nothing proved is held as `sender-unverified`, and one `confirm`
//! token is mailed to the claimed address, with the post attached. Using the
//! token (a reply to `NAME-moderate+TOKEN@`, or `confirm TOKEN` to the
//! robot) releases the post through `act`, exactly as an approval does;
//! moderators can still act on it, and unconfirmed it expires after
//! `hold_days` like any held post.
//!
//! Trusts the configuration and the claimed address only as a place to send
//! mail: nobody else is told about the post (no moderator notice, no poster
//! notice to the equally forgeable envelope sender), and the confirmation
//! request counts against `robot.replies_per_hour` of that address, so
//! forged posts cannot turn the list into a mail cannon.

use super::{held, notice, store_held, token, ClaimedRole, HoldReason, ModAction};
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError, Inbound};
use rusqlite::Connection;

/// Holds `msg` until `claimed` (the address whose `role` lets it through)
/// confirms it; mails that address its token unless the address is over
/// its hourly limit or the post is automated. Returns the held id.
pub fn hold_unverified(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    msg: &Inbound,
    role: ClaimedRole,
    claimed: &str,
    now: i64,
) -> Result<i64, HandlerError> {
    let reason = HoldReason::SenderUnverified(role);
    let summary = notice::PostSummary::of(&msg.bytes, &msg.env_from);
    let id = store_held(tx, list, msg, &reason, &summary, None, now)?;
    let t = token::generate().map_err(HandlerError::Temporary)?;
    held::insert_token(
        tx,
        &token::hash(&t),
        &list.name,
        id,
        ModAction::Confirm.as_str(),
    )?;
    let budgets = crate::limits::reply_budgets(&ctx.config.robot, claimed, false);
    if summary.automated {
        tracing::info!(list = %list.name, held = id, %claimed, "automated post: no confirmation request sent");
    } else if let Some(spent) = crate::store::rate::take(tx, &budgets, now)? {
        tracing::warn!(list = %list.name, held = id, %claimed, budget = %spent.bucket,
            "confirmation request not sent: a reply limit for this address is reached");
    } else {
        notice::sender_confirm(
            ctx, tx, list, claimed, id, role, &summary, &t, &msg.bytes, now,
        )?;
    }
    held::log(
        tx,
        &list.name,
        Some(id),
        &summary.sender,
        "hold",
        reason.code(),
        now,
    )?;
    tracing::info!(list = %list.name, held = id, %claimed, role = role.describe(),
        "post held until its claimed sender confirms it");
    Ok(id)
}
