//! Stops `Approved:` password guessing. Every wrong password costs an
//! argon2 run in the single pipeline worker, so after the list's
//! `approved_failures_per_hour` wrong passwords within an hour the check is
//! locked for the list for an hour: posts are then read as if they carried
//! no password and no password is tried. The moderators get exactly one
//! notice when a lockout starts.
//!
//! The failures and the lockout are rows of the rate log (`store::rate`,
//! buckets `approved-fail:LIST` and `approved-lock:LIST`), so a restart does
//! not lift a lockout; each lookup is a seek on its index. Trusts the
//! configuration; the password tried is never stored or shown.

use super::notice;
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError};
use crate::store::rate::{self, HOUR};
use rusqlite::Connection;

/// How long a lockout lasts.
pub const LOCK_SECS: i64 = HOUR;

fn failures(list: &str) -> String {
    format!("approved-fail:{list}")
}
fn locks(list: &str) -> String {
    format!("approved-lock:{list}")
}

/// Whether `Approved:` checking is locked for `list` at `now`.
pub fn is_locked(conn: &Connection, list: &str, now: i64) -> Result<bool, HandlerError> {
    Ok(rate::count(conn, &locks(list), LOCK_SECS, now)? > 0)
}

/// What one more wrong password means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the check stays open.
    Counted,
    /// This failure reaches the limit: the lockout starts now.
    LockoutStarts,
}

/// Pure: the verdict on a wrong password after `earlier` within the hour,
/// with a limit of `limit` (0: never lock).
pub fn judge(earlier: i64, limit: u32) -> Failure {
    if limit > 0 && earlier + 1 >= i64::from(limit) {
        Failure::LockoutStarts
    } else {
        Failure::Counted
    }
}

/// Records a wrong password for `list`; when it starts a lockout, records
/// that and tells the moderators (once).
pub fn record_failure(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    now: i64,
) -> Result<Failure, HandlerError> {
    let earlier = rate::count(tx, &failures(&list.name), HOUR, now)?;
    let verdict = judge(earlier, list.approved_failures_per_hour);
    rate::record(tx, &failures(&list.name), now)?;
    if verdict == Failure::LockoutStarts {
        rate::record(tx, &locks(&list.name), now)?;
        tracing::warn!(list = %list.name, failures = earlier + 1, "Approved: checking locked for an hour after repeated wrong passwords");
        send_notice(ctx, tx, list, earlier + 1, now)?;
    }
    Ok(verdict)
}

fn send_notice(
    ctx: &Ctx,
    tx: &Connection,
    list: &ListConfig,
    failures: i64,
    now: i64,
) -> Result<Option<i64>, HandlerError> {
    let data = serde_json::json!({
        "list": list.name,
        "list_address": ctx.config.list_address(&list.name),
        "failures": failures,
        "until": notice::fmt_time(now + LOCK_SECS),
    });
    let text = ctx
        .templates
        .render(Some(&list.name), notice::T_LOCKOUT, &data)?;
    let subject = format!(
        "[{}] Approved: passwords locked for an hour after {failures} wrong tries",
        list.name
    );
    notice::tell_moderators(ctx, tx, list, subject, text, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_th_failure_starts_the_lockout() {
        assert_eq!(judge(0, 5), Failure::Counted);
        assert_eq!(judge(3, 5), Failure::Counted);
        assert_eq!(judge(4, 5), Failure::LockoutStarts);
        assert_eq!(judge(0, 1), Failure::LockoutStarts);
        assert_eq!(judge(100, 0), Failure::Counted);
    }
}
