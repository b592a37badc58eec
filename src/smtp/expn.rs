//! The member lookup behind EXPN: who a list expands to.
//!
//! One function, so the source is in one place: `membership::expand`, the
//! same streaming expansion fan-out uses (nested lists expanded, addresses
//! deduplicated, cycles skipped), here with every member whatever their
//! delivery mode. Reads only; trusts the store.

use super::session::ExpnEntry;
use crate::config::Config;
use crate::membership::{self, ExpandOptions};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension};

/// The addresses `list` expands to, in address-key order, with their
/// display names: at most
/// `smtp.expn_max_members` + 1 of them (one more than the limit tells the
/// answer that the list is too big; the expansion stops there).
pub fn expn_members(
    conn: &Connection,
    config: &Config,
    list: &str,
) -> Result<Vec<ExpnEntry>, StoreError> {
    // (address key, address) as expansion gives them
    let mut found = Vec::new();
    let opts = ExpandOptions {
        all_members: true,
        ..ExpandOptions::default()
    };
    let most = config.smtp.expn_max_members.saturating_add(1);
    membership::expand(conn, config, list, &opts, |r| {
        found.push((r.key.clone(), r.address.clone()));
        found.len() < most
    })?;
    // display names (RFC 5321 §3.5.1 shows `User Name <address>`): the one
    // on this list first, else one from any list the address is on; not
    // looked up for a list over the limit, which is refused anyway
    let named = found.len() <= config.smtp.expn_max_members;
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM members WHERE address_key = ?1 AND COALESCE(name, '') <> ''
         ORDER BY list = ?2 DESC LIMIT 1",
    )?;
    found
        .into_iter()
        .map(|(key, address)| {
            let name = if named {
                stmt.query_row(rusqlite::params![key, list], |r| r.get(0))
                    .optional()?
            } else {
                None
            };
            Ok(ExpnEntry { name, address })
        })
        .collect()
}

/// Opens the store read-only and looks up `list` (the driver's side of
/// `Request::Expand`, run on a blocking thread).
pub fn lookup(config: &Config, list: &str) -> Result<Vec<ExpnEntry>, String> {
    let path = config.db_path();
    let conn = Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    expn_members(&conn, config, list).map_err(|e| e.to_string())
}
