//! In-flow control, after Postfix's `in_flow_delay`: while the pipeline is
//! more than `smtp.in_flow_backlog` rows behind the spool, a session
//! pauses before it commits its next message, up to
//! `smtp.in_flow_delay_ms`, then goes on. A burst below the backlog limit
//! is taken at full speed (the pipeline catches up at its lower priority,
//! `background`); a sustained overload is slowed to what the pipeline
//! handles, so the incoming queue cannot grow without end. Mail is never
//! refused for it.
//!
//! Trusts the counts in `store::IntakeFlow` (approximate: the pipeline
//! resets them whenever it finds nothing due).

use crate::store::IntakeFlow;
use std::time::Duration;

/// How often a paused session looks at the backlog again.
const LOOK: Duration = Duration::from_millis(10);

/// Whether a session must pause now.
pub fn must_pause(backlog: u64, limit: u64) -> bool {
    limit > 0 && backlog > limit
}

/// Pauses while the backlog is over `limit`, at most `max`; how long it
/// paused.
pub async fn pause(flow: &IntakeFlow, limit: u64, max: Duration) -> Duration {
    if !must_pause(flow.backlog(), limit) {
        return Duration::ZERO;
    }
    let start = tokio::time::Instant::now();
    while must_pause(flow.backlog(), limit) && start.elapsed() < max {
        tokio::time::sleep(LOOK.min(max.saturating_sub(start.elapsed()))).await;
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_only_over_a_set_limit() {
        assert!(!must_pause(5, 0), "0 turns it off");
        assert!(!must_pause(5, 5));
        assert!(must_pause(6, 5));
    }

    #[tokio::test]
    async fn a_pause_ends_when_the_pipeline_catches_up_or_at_the_limit() {
        let flow = std::sync::Arc::new(IntakeFlow::default());
        let max = Duration::from_millis(400);
        assert_eq!(pause(&flow, 10, max).await, Duration::ZERO);
        flow.queued(25);
        assert!(pause(&flow, 10, max).await >= max, "held to the limit");
        let f = flow.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            f.handled(20);
        });
        let took = pause(&flow, 10, max).await;
        assert!(took >= Duration::from_millis(100) && took < max, "{took:?}");
        assert_eq!(flow.backlog(), 5);
        flow.handled(0);
        assert_eq!(flow.backlog(), 0, "nothing due: the backlog is empty");
    }
}
