//! App passwords for archive readers: one per (list, member), made here,
//! mailed once by the robot (`password LIST`), stored only as an argon2
//! hash. A new one replaces the old.
//!
//! Trusts its callers for who the password is for (the robot mails it to
//! the member's subscribed address only).

use crate::store::rate::{self, Budget};
use crate::store::{Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

/// Characters of an app password (no look-alikes: 0/O, 1/l/I).
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Length of an app password: 20 of 32 symbols, 100 bits.
pub const LENGTH: usize = 20;
/// Failed logins one address may make per hour.
pub const FAILURES_PER_ADDRESS: u32 = 10;
/// Failed logins one client IP may make per hour.
pub const FAILURES_PER_IP: u32 = 30;

/// A fresh random app password.
pub fn generate() -> Result<String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; LENGTH];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StoreError::Invalid(format!("OS random source failed: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// Makes a new app password for `address_key` on `list`, stores its hash
/// (replacing any older one) and returns the password.
pub fn issue(conn: &Connection, list: &str, address_key: &str, now: i64) -> Result<String> {
    let password = generate()?;
    let hash = crate::password::hash_password(&password).map_err(StoreError::Invalid)?;
    conn.prepare_cached(
        "INSERT INTO archive_passwords(list, address_key, hash, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(list, address_key) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
    )?
    .execute(params![list, address_key, hash, now])?;
    Ok(password)
}

/// The lists for which `address_key` has an app password, with its hash.
pub fn hashes(conn: &Connection, address_key: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT list, hash FROM archive_passwords WHERE address_key = ?1 ORDER BY list",
    )?;
    let rows = stmt.query_map([address_key], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The hash for one list, if any.
pub fn hash(conn: &Connection, list: &str, address_key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT hash FROM archive_passwords WHERE list = ?1 AND address_key = ?2")?
        .query_row(params![list, address_key], |r| r.get(0))
        .optional()?)
}

/// Forgets every app password of a member of `list` (e.g. on leaving).
pub fn revoke(conn: &Connection, list: &str, address_key: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM archive_passwords WHERE list = ?1 AND address_key = ?2")?
        .execute(params![list, address_key])?
        > 0)
}

/// The failure budgets a login from `ip` as `address_key` counts against.
pub fn failure_budgets(ip: Option<std::net::IpAddr>, address_key: Option<&str>) -> Vec<Budget> {
    let mut out = Vec::new();
    if let Some(ip) = ip {
        out.push(Budget::hourly(
            format!("reader-fail-ip:{ip}"),
            FAILURES_PER_IP,
        ));
    }
    if let Some(k) = address_key {
        out.push(Budget::hourly(
            format!("reader-fail:{k}"),
            FAILURES_PER_ADDRESS,
        ));
    }
    out
}

/// Whether these budgets are spent: the login is then refused untried.
pub fn locked_out(conn: &Connection, budgets: &[Budget], now: i64) -> Result<bool> {
    Ok(rate::exhausted(conn, budgets, now)?.is_some())
}

/// Counts one failed login against every budget.
pub fn record_failure(conn: &Connection, budgets: &[Budget], now: i64) -> Result<()> {
    for b in budgets {
        rate::record(conn, &b.bucket, now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_passwords_are_stored_as_hashes_and_replace_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("l.db")).unwrap();
        let first = issue(&conn, "dev", "ann@example.org", 1).unwrap();
        assert_eq!(first.len(), LENGTH);
        assert!(first.bytes().all(|b| ALPHABET.contains(&b)));
        let stored = hash(&conn, "dev", "ann@example.org").unwrap().unwrap();
        assert!(!stored.contains(&first), "only the hash is stored");
        assert!(crate::password::verify_password(&stored, &first));
        let second = issue(&conn, "dev", "ann@example.org", 2).unwrap();
        assert_ne!(first, second);
        let stored = hash(&conn, "dev", "ann@example.org").unwrap().unwrap();
        assert!(!crate::password::verify_password(&stored, &first));
        assert!(crate::password::verify_password(&stored, &second));
        assert_eq!(hashes(&conn, "ann@example.org").unwrap().len(), 1);
        assert!(revoke(&conn, "dev", "ann@example.org").unwrap());
        assert!(hash(&conn, "dev", "ann@example.org").unwrap().is_none());
    }

    #[test]
    fn failures_lock_out_an_address_after_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("l.db")).unwrap();
        let budgets = failure_budgets(None, Some("ann@example.org"));
        for _ in 0..FAILURES_PER_ADDRESS {
            assert!(!locked_out(&conn, &budgets, 100).unwrap());
            record_failure(&conn, &budgets, 100).unwrap();
        }
        assert!(locked_out(&conn, &budgets, 100).unwrap());
        // an hour later the budget is back
        assert!(!locked_out(&conn, &budgets, 100 + 3601).unwrap());
        // another address is not locked out by ann's failures
        assert!(!locked_out(&conn, &failure_budgets(None, Some("bob@example.org")), 100).unwrap());
    }
}
