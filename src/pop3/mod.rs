//! The list archives over POP3 (RFC 1939), read-only: `pop3.listen`.
//!
//! A maildrop is one list's recent archive, the newest
//! `pop3.maildrop_size` posts. The user name is `LIST` (anonymous, for a
//! public archive) or `ADDRESS+LIST` with the app password the robot
//! mailed (`password LIST`). `DELE` marks a message for this session only:
//! QUIT never deletes anything from the archive.
//!
//! `session` is sans-IO (lines in, replies out; no sockets, no clock), one
//! file per command family under `commands`; `server` only moves bytes.
//! Trusts nothing from the client: privilege comes from `reader::login`.
//! Off the mail path: uses leaves only.

mod commands;
pub mod server;
pub mod session;
#[cfg(test)]
mod tests;

pub use session::{Pop3Peer, Pop3Session};
