//! Archive readers: who may read which list's archive over IMAP and POP3,
//! their app passwords, and the archived posts as mailboxes (UIDs, bytes,
//! full-text search). A leaf: the IMAP and POP3 sessions use it, and the
//! robot's `password LIST` issues passwords through it.
//!
//! Trusts the archive index it reads and the configuration; trusts no
//! user name or password: privilege comes only from an app password whose
//! argon2 hash is stored, and a list whose `archive_access` is `anyone`
//! needs none. Failed logins are counted in the rate log, per address and
//! per client IP, and refused once over budget without a hash being tried.

pub mod access;
pub mod login;
pub mod mailbox;
pub mod passwords;
pub mod sample;
pub mod text;

pub use access::{may_read, Reader};
pub use login::{ArchiveDb, Credential, LoginError};
pub use mailbox::Post;
