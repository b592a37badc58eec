//! Confirmation tokens: 128 bits from the operating system's CSPRNG, written
//! as 26 lower-case base32 characters, stored only as their SHA-256 hash,
//! single-use, bound to one list, one action and one address, and expiring
//! after `robot.token_expiry_days`.
//!
//! Trusts nothing a mail offers as a token: any string is hashed and looked
//! up; a miss, an expired token and a used token are distinct answers, none
//! of which reveals anything about other tokens.

use rand::rngs::OsRng;
use rand::TryRngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::address::Address;
use crate::store::members::DeliveryMode;
use crate::store::{Result, StoreError};

/// Random bytes in a token (128 bits).
pub const TOKEN_BYTES: usize = 16;
/// Length of a token as written in mail (base32, no padding).
pub const TOKEN_LEN: usize = 26;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAction {
    /// The address confirms it wants to join.
    Subscribe,
    /// The address confirms it wants to leave.
    Unsubscribe,
    /// An owner decides a subscription request.
    Approve,
    /// An owner confirms adding the address (`add LIST ADDRESS` by mail).
    OwnerAdd,
    /// An owner confirms removing the address (`del LIST ADDRESS` by mail).
    OwnerRemove,
    /// The member confirms a delivery-mode change (`set LIST MODE`), or
    /// undoes one; the mode to set travels with the token.
    SetMode,
}

impl TokenAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAction::Subscribe => "subscribe",
            TokenAction::Unsubscribe => "unsubscribe",
            TokenAction::Approve => "approve",
            TokenAction::OwnerAdd => "owner_add",
            TokenAction::OwnerRemove => "owner_remove",
            TokenAction::SetMode => "set_mode",
        }
    }

    /// The command that asks for a new token of this kind.
    pub fn command(self) -> &'static str {
        match self {
            TokenAction::Subscribe => "subscribe",
            TokenAction::Unsubscribe => "unsubscribe",
            TokenAction::Approve => "approve",
            TokenAction::OwnerAdd => "add LIST ADDRESS",
            TokenAction::OwnerRemove => "del LIST ADDRESS",
            TokenAction::SetMode => "set LIST MODE",
        }
    }

    /// Whether an owner confirms it (the token goes to the owner who asked,
    /// not to the address concerned).
    pub fn by_owner(self) -> bool {
        matches!(self, TokenAction::OwnerAdd | TokenAction::OwnerRemove)
    }

    fn parse(s: &str) -> Option<TokenAction> {
        Some(match s {
            "subscribe" => TokenAction::Subscribe,
            "unsubscribe" => TokenAction::Unsubscribe,
            "approve" => TokenAction::Approve,
            "owner_add" => TokenAction::OwnerAdd,
            "owner_remove" => TokenAction::OwnerRemove,
            "set_mode" => TokenAction::SetMode,
            _ => return None,
        })
    }
}

/// A stored token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub list: String,
    pub action: TokenAction,
    pub address: String,
    pub name: Option<String>,
    pub requested_by: String,
    pub request_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub mode: Option<DeliveryMode>,
}

/// What looking up a presented token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Valid: now marked used.
    Valid(TokenRow),
    /// No such token, or not for this list / this kind of action.
    Unknown,
    Expired(TokenRow),
    AlreadyUsed(TokenRow),
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buf: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A fresh token from the OS CSPRNG.
pub fn generate() -> Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StoreError::Invalid(format!("no randomness for a token: {e}")))?;
    Ok(base32(&bytes))
}

/// The form a token is compared in: trimmed, lower-case (mail software may
/// change the case of a local part).
pub fn normalize(token: &str) -> String {
    token.trim().to_ascii_lowercase()
}

/// Hex SHA-256 of the normalized token: the only form stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(normalize(token).as_bytes()))
}

/// Whether a string looks like one of our tokens (used to tell tokens apart
/// from other words; lookup still decides).
pub fn looks_like_token(s: &str) -> bool {
    let s = normalize(s);
    s.len() == TOKEN_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// What a new token is for.
pub struct NewToken<'a> {
    pub list: &'a str,
    pub action: TokenAction,
    pub address: &'a Address,
    pub name: Option<&'a str>,
    pub requested_by: &'a str,
    pub request_id: Option<i64>,
    /// How a subscriber asked to get the list, or the mode a `set_mode`
    /// token sets (None: each post).
    pub mode: Option<DeliveryMode>,
}

/// Creates and stores a token valid for `expiry_days`; returns the token.
pub fn issue(conn: &Connection, t: &NewToken<'_>, expiry_days: u32, now: i64) -> Result<String> {
    let token = generate()?;
    let expires_at = now + i64::from(expiry_days.max(1)) * 86_400;
    conn.prepare_cached(
        "INSERT INTO tokens(token_hash, list, action, address, address_key, name, requested_by,
                            request_id, created_at, expires_at, mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        hash(&token),
        t.list,
        t.action.as_str(),
        t.address.to_string(),
        t.address.key(),
        t.name,
        t.requested_by,
        t.request_id,
        now,
        expires_at,
        t.mode.map(DeliveryMode::as_str)
    ])?;
    Ok(token)
}

fn load(conn: &Connection, token_hash: &str) -> Result<Option<TokenRow>> {
    let row = conn
        .prepare_cached(
            "SELECT list, action, address, name, requested_by, request_id, created_at,
                    expires_at, used_at, mode
             FROM tokens WHERE token_hash = ?1",
        )?
        .query_row([token_hash], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })
        .optional()?;
    let Some((
        list,
        action,
        address,
        name,
        requested_by,
        request_id,
        created_at,
        expires_at,
        used_at,
        mode,
    )) = row
    else {
        return Ok(None);
    };
    let action = TokenAction::parse(&action)
        .ok_or_else(|| StoreError::Invalid(format!("token with unknown action `{action}`")))?;
    Ok(Some(TokenRow {
        list,
        action,
        address,
        name,
        requested_by,
        request_id,
        created_at,
        expires_at,
        used_at,
        mode: mode.as_deref().and_then(DeliveryMode::parse),
    }))
}

/// Looks a presented token up and, when it is valid for `list` (if given)
/// and one of `actions`, marks it used. Call inside the transaction that
/// performs the action, so a token is spent exactly when its action commits.
pub fn redeem(
    conn: &Connection,
    token: &str,
    list: Option<&str>,
    actions: &[TokenAction],
    now: i64,
) -> Result<Lookup> {
    let h = hash(token);
    let Some(row) = load(conn, &h)? else {
        return Ok(Lookup::Unknown);
    };
    if list.is_some_and(|l| l != row.list) || !actions.contains(&row.action) {
        return Ok(Lookup::Unknown);
    }
    if row.used_at.is_some() {
        return Ok(Lookup::AlreadyUsed(row));
    }
    if row.expires_at <= now {
        return Ok(Lookup::Expired(row));
    }
    let n = conn.execute(
        "UPDATE tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
        params![h, now],
    )?;
    if n != 1 {
        return Ok(Lookup::AlreadyUsed(row));
    }
    Ok(Lookup::Valid(TokenRow {
        used_at: Some(now),
        ..row
    }))
}

/// Spends every unused token of a request (it was decided another way).
pub fn spend_for_request(conn: &Connection, request_id: i64, now: i64) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE tokens SET used_at = ?2 WHERE request_id = ?1 AND used_at IS NULL",
        params![request_id, now],
    )?)
}

/// Deletes tokens that expired more than `keep_days` ago (kept that long so
/// a late click is told "expired" rather than "unknown").
pub fn purge(conn: &Connection, keep_days: i64, now: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM tokens WHERE expires_at < ?1 AND request_id IS NULL",
        [now - keep_days * 86_400],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    #[test]
    fn tokens_are_long_random_and_stored_hashed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), TOKEN_LEN);
        assert_ne!(a, b);
        assert!(looks_like_token(&a) && looks_like_token(&a.to_uppercase()));
        assert!(!looks_like_token("dev"));
        assert_eq!(base32(&[0xff; 5]), "77777777");
        assert_eq!(base32(b"f"), "my");

        let (_d, conn) = db();
        let addr = Address::parse("ann@example.org").unwrap();
        let t = NewToken {
            list: "dev",
            action: TokenAction::Subscribe,
            address: &addr,
            name: None,
            requested_by: "ann@example.org",
            request_id: None,
            mode: Some(DeliveryMode::DigestPlain),
        };
        let tok = issue(&conn, &t, 7, 1000).unwrap();
        let stored: String = conn
            .query_row("SELECT token_hash FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, tok);
        assert_eq!(stored.len(), 64);
        let raw_hits: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM tokens WHERE token_hash LIKE '%' || ?1 || '%'",
                [&tok],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(raw_hits, 0, "the token itself is never stored");
    }

    #[test]
    fn single_use_bound_and_expiring() {
        let (_d, conn) = db();
        let addr = Address::parse("ann@example.org").unwrap();
        let mk = |action| NewToken {
            list: "dev",
            action,
            address: &addr,
            name: None,
            requested_by: "ann@example.org",
            request_id: None,
            mode: None,
        };
        let sub = [TokenAction::Subscribe, TokenAction::Unsubscribe];
        let tok = issue(&conn, &mk(TokenAction::Subscribe), 7, 1000).unwrap();
        // other list, other action: unknown, and not spent
        assert_eq!(
            redeem(&conn, &tok, Some("ops"), &sub, 1001).unwrap(),
            Lookup::Unknown
        );
        assert_eq!(
            redeem(&conn, &tok, Some("dev"), &[TokenAction::Approve], 1001).unwrap(),
            Lookup::Unknown
        );
        // case does not matter
        match redeem(&conn, &tok.to_uppercase(), Some("dev"), &sub, 1002).unwrap() {
            Lookup::Valid(r) => {
                assert_eq!(r.address, "ann@example.org");
                assert_eq!(r.action, TokenAction::Subscribe);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            redeem(&conn, &tok, None, &sub, 1003).unwrap(),
            Lookup::AlreadyUsed(_)
        ));
        let old = issue(&conn, &mk(TokenAction::Unsubscribe), 7, 1000).unwrap();
        assert!(matches!(
            redeem(&conn, &old, None, &sub, 1000 + 7 * 86_400).unwrap(),
            Lookup::Expired(_)
        ));
        assert_eq!(
            redeem(&conn, "nosuchtoken", None, &sub, 1000).unwrap(),
            Lookup::Unknown
        );
        assert_eq!(purge(&conn, 30, 1000 + 40 * 86_400).unwrap(), 2);
    }
}
