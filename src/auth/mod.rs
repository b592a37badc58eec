//! Inbound authentication at intake: SPF (MAIL FROM and HELO against the
//! client's address), every DKIM signature and DMARC with alignment, all
//! checked by mail-auth through the one resolver (`crate::dns`). Run by the
//! SMTP driver after DATA and before the spool commit, like a milter.
//!
//! [`authenticate`] returns the message with every `Authentication-Results:`
//! field claiming our authserv-id removed and ours under our `Received:`, and the compact
//! [`AuthVerdict`] the spool stores beside it; the pipeline reads the
//! verdict from the store, never from a header. With
//! `trust_upstream_authserv_id` and a client in `smtp.trusted_networks`,
//! the MTA in front's verdict is taken instead (see `fields`).
//!
//! A DNS failure or the time limit gives `temperror`, never an error: the
//! mail is accepted all the same. Trusts the resolver's answers; trusts
//! nothing in the message or the envelope.

mod check;
pub mod fields;
mod verdict;

pub use check::{authenticate, AuthInput, AuthSettings, Authenticated};
pub use fields::{authserv_id, replace_ours, upstream_verdict};
pub use verdict::{AuthVerdict, DmarcStatus, FromPolicy};

use crate::store::{self, StoreError};
use rusqlite::Connection;

/// The verdict intake stored with message `message_id` (`None`: not
/// checked, e.g. `auth.enabled: false`).
pub fn stored(conn: &Connection, message_id: i64) -> Result<Option<AuthVerdict>, StoreError> {
    Ok(store::spool::load_auth(conn, message_id)?.map(|r| AuthVerdict::from_row(&r)))
}
