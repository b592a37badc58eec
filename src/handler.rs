//! The handler contract: what the pipeline hands each handler (posts, the
//! robot, moderation, the owners' and postmaster's aliases, bounces) and
//! how a handler fails.
//!
//! A leaf: the pipeline dispatches to handlers, and handlers depend on this
//! contract, never on the pipeline. Trusts the envelope the spool recorded;
//! `Inbound::bytes` is untrusted network input that handlers parse.

use crate::config::Config;
use crate::routing::Route;
use crate::store::StoreError;
use crate::templates::Templates;
use std::sync::Arc;

/// What every handler may read: the configuration and the templates.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
}

/// One routed recipient of a stored inbound message, handed to its handler.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The `incoming` row.
    pub incoming_id: i64,
    /// The `messages` row holding the bytes.
    pub message_id: i64,
    /// The envelope recipient as given in RCPT TO.
    pub rcpt: String,
    pub route: Route,
    /// The envelope sender; empty for `<>`.
    pub env_from: String,
    pub client_ip: Option<String>,
    pub received_at: i64,
    /// The message as received, with our Received: header on top.
    pub bytes: Vec<u8>,
    /// Processing time (unix seconds); handlers use this, not the clock.
    pub now: i64,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try again later (the row stays `incoming`).
    #[error("temporary: {0}")]
    Temporary(String),
    /// Will never succeed: the row moves to `corrupt` with this reason.
    #[error("{0}")]
    Corrupt(String),
    /// The handler panicked (a bug): retried, then `corrupt`.
    #[error("handler panicked: {0}")]
    Panic(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for HandlerError {
    fn from(e: rusqlite::Error) -> Self {
        HandlerError::Store(StoreError::Sqlite(e))
    }
}

impl From<crate::templates::TemplateError> for HandlerError {
    fn from(e: crate::templates::TemplateError) -> Self {
        HandlerError::Temporary(e.to_string())
    }
}
