//! Keeps a flood of held posts from flooding the moderators: a list's
//! moderators get at most `moderation_notices_per_hour` notices of single
//! held posts an hour; every post past that is counted, and the periodic
//! pass mails one summary ("N more posts were held") at most once an hour.
//! The posts themselves stay held, listed by `listd held` and the reminder.
//!
//! Trusts the configuration and the rate log (`store::rate`, buckets
//! `mod-notice:LIST`, `mod-skipped:LIST`, `mod-summary:LIST`).

use super::held;
use super::notice;
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError};
use crate::store::rate::{self, Budget, HOUR};
use rusqlite::{Connection, TransactionBehavior};

fn notices(list: &str) -> String {
    format!("mod-notice:{list}")
}
fn skipped(list: &str) -> String {
    format!("mod-skipped:{list}")
}
fn summaries(list: &str) -> String {
    format!("mod-summary:{list}")
}

/// Takes one moderator notice from the list's hourly budget; when it is
/// spent, counts the post for the next summary instead and returns false.
pub fn notice_allowed(tx: &Connection, list: &ListConfig, now: i64) -> Result<bool, HandlerError> {
    let budget = [Budget::hourly(
        notices(&list.name),
        list.moderation_notices_per_hour,
    )];
    if rate::take(tx, &budget, now)?.is_none() {
        return Ok(true);
    }
    rate::record(tx, &skipped(&list.name), now)?;
    Ok(false)
}

/// What the summary pass should do for one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryDue {
    Nothing,
    /// Tell the moderators of this many posts held without a notice.
    Send(i64),
}

/// Pure: a summary goes out when posts were held without a notice and the
/// last summary (if any) is at least an hour old.
pub fn summary_due(unannounced: i64, last_summary: Option<i64>, now: i64) -> SummaryDue {
    if unannounced > 0 && last_summary.is_none_or(|t| now - t >= HOUR) {
        SummaryDue::Send(unannounced)
    } else {
        SummaryDue::Nothing
    }
}

/// Mails each list's moderators a summary of the posts held without a
/// notice, at most once an hour per list. Returns how many were queued.
pub fn summarise(ctx: &Ctx, conn: &mut Connection, now: i64) -> Result<usize, HandlerError> {
    let mut n = 0;
    for (name, list) in &ctx.config.lists {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unannounced = rate::count(&tx, &skipped(name), rate::DAY, now)?;
        let due = summary_due(unannounced, rate::latest(&tx, &summaries(name))?, now);
        let SummaryDue::Send(count) = due else {
            continue;
        };
        let pending = held::pending_count(&tx, name)?;
        if send_summary(ctx, &tx, list, count, pending, now)?.is_some() {
            n += 1;
        }
        rate::record(&tx, &summaries(name), now)?;
        rate::clear(&tx, &skipped(name))?;
        tracing::info!(list = %name, count, pending, "moderators sent a summary of held posts");
        tx.commit()?;
    }
    Ok(n)
}

fn send_summary(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    count: i64,
    pending: i64,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let data = serde_json::json!({
        "list": list.name,
        "list_address": ctx.config.list_address(&list.name),
        "count": count,
        "pending": pending,
        "limit": list.moderation_notices_per_hour,
        "hold_days": list.hold_days,
    });
    let text = ctx
        .templates
        .render(Some(&list.name), notice::T_SUMMARY, &data)?;
    let subject = format!(
        "[{}] {count} more post(s) held without a notice each",
        list.name
    );
    notice::tell_moderators(ctx, tx, list, subject, text, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_at_most_once_an_hour_and_only_when_something_was_held() {
        assert_eq!(summary_due(0, None, 5000), SummaryDue::Nothing);
        assert_eq!(summary_due(3, None, 5000), SummaryDue::Send(3));
        assert_eq!(
            summary_due(3, Some(5000 - HOUR + 1), 5000),
            SummaryDue::Nothing
        );
        assert_eq!(summary_due(3, Some(5000 - HOUR), 5000), SummaryDue::Send(3));
    }
}
