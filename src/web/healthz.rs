//! `GET /healthz`: every supervised worker's state from `health::Health`,
//! as JSON; 200 when all run, 503 otherwise (and before any has started).
//!
//! Trusts the supervisor's records; reads nothing from the request.

use super::WebState;
use crate::health::WorkerState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

/// The report and its status.
pub async fn get(State(s): State<WebState>) -> (StatusCode, Json<Value>) {
    let report = s.health.report();
    let ok = !report.is_empty() && report.iter().all(|(_, w)| *w == WorkerState::Running);
    let mut workers = Map::new();
    for (name, state) in report {
        let v = match state {
            WorkerState::Running => json!({"state": "running"}),
            WorkerState::Stopped => json!({"state": "stopped"}),
            WorkerState::Restarting {
                error,
                restarts,
                since,
                retry_at,
            } => json!({"state": "restarting", "error": error, "restarts": restarts,
                        "since": since, "retry_at": retry_at}),
        };
        workers.insert(name.to_string(), v);
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if ok { "ok" } else { "unavailable" }, "workers": workers})),
    )
}
