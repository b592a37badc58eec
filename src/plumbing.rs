//! The daemon's plumbing: the live configuration that a reload replaces,
//! and the wake-up signals between its workers.
//!
//! A leaf that intake, the pipeline and the workers share; it decides
//! nothing and trusts its callers.

use crate::handler::Ctx;
use std::sync::Arc;

/// The daemon's current [`Ctx`], replaced as a whole by a reload
/// (`listd serve` on SIGHUP, `DaemonHandle::reload`). Workers read it at the
/// start of each pass and SMTP sessions when they connect, so a pass or a
/// session runs on one configuration from start to end.
#[derive(Clone)]
pub struct Live(tokio::sync::watch::Receiver<Ctx>);

impl Live {
    /// A live context and the sender that replaces it.
    pub fn channel(ctx: Ctx) -> (tokio::sync::watch::Sender<Ctx>, Live) {
        let (tx, rx) = tokio::sync::watch::channel(ctx);
        (tx, Live(rx))
    }

    /// The context now.
    pub fn current(&self) -> Ctx {
        self.0.borrow().clone()
    }

    /// The new context if it was replaced since this handle last looked.
    pub fn changed(&mut self) -> Option<Ctx> {
        match self.0.has_changed() {
            Ok(true) => Some(self.0.borrow_and_update().clone()),
            _ => None,
        }
    }
}

/// A context that never changes (tests, one-off runs).
impl From<Ctx> for Live {
    fn from(ctx: Ctx) -> Live {
        Live::channel(ctx).1
    }
}

/// Wake-up signals between the daemon's workers.
#[derive(Clone, Default)]
pub struct Wakers {
    /// The spool committed new incoming rows.
    pub pipeline: Arc<tokio::sync::Notify>,
    /// New outbound jobs or due retries.
    pub delivery: Arc<tokio::sync::Notify>,
    /// A pipeline batch committed: a post may have marked a digest issue due.
    pub digest: Arc<tokio::sync::Notify>,
}

/// Returns once a shutdown signal turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}
