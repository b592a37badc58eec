//! Intake: the ESMTP/LMTP server that accepts list mail.
//!
//! - `session`: the sans-IO protocol state machine (bytes in, replies and
//!   requests out), with `commands/` holding one file per command family;
//! - `reply`: reply codes, enhanced status codes and their wire form;
//! - `trace`: the `Received:` header and queue ids;
//! - `writer`: the single spool writer that commits accepted messages with
//!   group commit before any 250 is sent;
//! - `expn`: the member lookup behind EXPN (over `membership`);
//! - `server`: tokio listeners and the per-connection driver.
//!
//! Trusts nothing from the network; see each file for its limits.

pub mod commands;
pub mod expn;
pub mod inflow;
pub mod reply;
pub mod server;
pub mod session;
pub mod trace;
pub mod writer;

pub use reply::Reply;
pub use session::{
    Completion, ExpnEntry, Moment, Peer, Protocol, Request, Session, Step, Submission,
};
pub use writer::SpoolWriter;
