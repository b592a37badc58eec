//! The workers' health, as their supervisor sees it.
//!
//! The daemon runs each worker (pipeline, delivery, digest, moderation)
//! under a supervisor that restarts it with backoff when it stops or
//! panics, and records here whether it is running. Intake asks
//! [`Health::intake_refusal`] before it commits a message: while the
//! pipeline is down, new mail is answered 451 instead of 250, so the daemon
//! never accepts mail that nothing handles.
//!
//! A leaf: it trusts what the supervisor tells it and imports nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One worker's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    Running,
    /// Stopped or panicked; the supervisor restarts it at `retry_at`.
    Restarting {
        error: String,
        restarts: u32,
        since: i64,
        retry_at: i64,
    },
    /// Stopped on purpose (shutdown).
    Stopped,
}

/// The worker whose absence stops intake.
pub const PIPELINE: &str = "pipeline";

/// Every worker's state, shared by the supervisor, intake and reports.
#[derive(Debug, Default)]
pub struct Health {
    workers: Mutex<BTreeMap<&'static str, WorkerState>>,
    /// Cached "the pipeline is not running", read on every message.
    pipeline_down: AtomicBool,
}

impl Health {
    /// Records `worker`'s state.
    pub fn set(&self, worker: &'static str, state: WorkerState) {
        if worker == PIPELINE {
            let down = matches!(state, WorkerState::Restarting { .. });
            self.pipeline_down.store(down, Ordering::Release);
        }
        self.lock().insert(worker, state);
    }

    /// Why intake must not answer 250 now, if it must not.
    pub fn intake_refusal(&self) -> Option<String> {
        if !self.pipeline_down.load(Ordering::Acquire) {
            return None;
        }
        let error = match self.lock().get(PIPELINE) {
            Some(WorkerState::Restarting { error, .. }) => error.clone(),
            _ => "not running".into(),
        };
        Some(format!(
            "mail processing is stopped ({error}); try again later"
        ))
    }

    /// Every worker and its state, by name.
    pub fn report(&self) -> Vec<(&'static str, WorkerState)> {
        self.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, WorkerState>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The message a panic carried (`panic!("...")` gives a `&str` or a
/// `String`), for the logs and the worker state.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_is_refused_only_while_the_pipeline_restarts() {
        let h = Health::default();
        assert_eq!(h.intake_refusal(), None);
        let down = WorkerState::Restarting {
            error: "panicked".into(),
            restarts: 1,
            since: 0,
            retry_at: 1,
        };
        h.set("delivery", down.clone());
        assert_eq!(h.intake_refusal(), None);
        h.set(PIPELINE, down);
        assert!(h.intake_refusal().unwrap().contains("panicked"));
        h.set(PIPELINE, WorkerState::Running);
        assert_eq!(h.intake_refusal(), None);
        assert_eq!(h.report().len(), 2);
    }

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "plain");
        let p = std::panic::catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "formatted 7");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "a panic");
    }
}
