//! The list archives over IMAP4rev1 (RFC 3501), read-only: `imap.listen`.
//!
//! Each list whose archive the user may read is one mailbox, named as the
//! list (`dev`); `INBOX` holds one message on how this works. A message's
//! UID is its archive row id; UIDVALIDITY is a hash of the list name.
//! Every mailbox is read-only: SELECT answers `[READ-ONLY]` as EXAMINE
//! does, `\Seen` lasts for the session, and APPEND, COPY, MOVE, CREATE,
//! DELETE, RENAME and EXPUNGE get NO. LOGIN with a password is refused
//! (LOGINDISABLED) unless the connection is over TLS (STARTTLS, or
//! `imap.listen_tls`), on loopback, or from `smtp.trusted_networks`.
//!
//! The protocol is parsed and written by `imap-codec`, its flows (literals,
//! IDLE, AUTHENTICATE) kept by `imap-next`'s sans-IO server; `session`
//! holds listd's side (states and mailboxes), one file per command family
//! under `commands`, and `server` only moves bytes. Trusts nothing from
//! the client: privilege comes from `reader::login`. Off the mail path:
//! uses leaves only.

mod commands;
pub mod message;
pub mod server;
pub mod session;
#[cfg(test)]
mod tests;
pub mod tls;

pub use session::{ImapPeer, ImapSession};
