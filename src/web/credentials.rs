//! The web admin's credentials in the store: single-use login links,
//! browser sessions and API tokens. Each secret is random (32 bytes from
//! the OS, as moderation tokens are) and only its SHA-256 is stored, so a
//! copy of the database logs no one in; a presented secret is found by the
//! hash of what was presented, never compared as text.
//!
//! Trusts its callers for addresses and names; knows nothing of HTTP.

use crate::moderation::token;
use crate::store::{Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

/// How long a login link works.
pub const LOGIN_LINK_SECS: i64 = 15 * 60;

/// A fresh secret (64 hex digits).
pub fn fresh() -> Result<String> {
    token::generate().map_err(StoreError::Invalid)
}

fn hash(secret: &str) -> Vec<u8> {
    token::hash(secret.trim())
}

/// Stores a login link for `address`; returns its secret.
pub fn issue_login(conn: &Connection, address: &str, now: i64) -> Result<String> {
    let secret = fresh()?;
    conn.prepare_cached(
        "INSERT INTO web_login_tokens(hash, address, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![hash(&secret), address, now, now + LOGIN_LINK_SECS])?;
    Ok(secret)
}

/// What a presented login link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginLink {
    /// Unused and in time: for this address.
    Valid(String),
    /// Used already, or past its 15 minutes.
    Spent,
    Unknown,
}

/// Looks a login link up without using it.
pub fn peek_login(conn: &Connection, secret: &str, now: i64) -> Result<LoginLink> {
    let row: Option<(String, i64, Option<i64>)> = conn
        .prepare_cached(
            "SELECT address, expires_at, used_at FROM web_login_tokens WHERE hash = ?1",
        )?
        .query_row([hash(secret)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match row {
        None => LoginLink::Unknown,
        Some((a, exp, None)) if exp > now => LoginLink::Valid(a),
        Some(_) => LoginLink::Spent,
    })
}

/// Uses a login link: the address it was for, once, while it is valid.
pub fn use_login(conn: &Connection, secret: &str, now: i64) -> Result<LoginLink> {
    let used: Option<String> = conn
        .prepare_cached(
            "UPDATE web_login_tokens SET used_at = ?2
             WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING address",
        )?
        .query_row(params![hash(secret), now], |r| r.get(0))
        .optional()?;
    match used {
        Some(a) => Ok(LoginLink::Valid(a)),
        None => peek_login(conn, secret, now),
    }
}

/// A logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub address: String,
    /// The token every form of this session carries.
    pub csrf: String,
    pub expires_at: i64,
}

/// Opens a session for `address` lasting `days`; returns its secret (the
/// cookie's value) and the session.
pub fn open_session(
    conn: &Connection,
    address: &str,
    days: u32,
    now: i64,
) -> Result<(String, WebSession)> {
    let (secret, csrf) = (fresh()?, fresh()?);
    let expires_at = now + i64::from(days.max(1)) * crate::store::rate::DAY;
    conn.prepare_cached(
        "INSERT INTO web_sessions(hash, address, csrf, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![hash(&secret), address, csrf, now, expires_at])?;
    Ok((
        secret,
        WebSession {
            address: address.to_string(),
            csrf,
            expires_at,
        },
    ))
}

/// The session a cookie names, if it is still open.
pub fn session(conn: &Connection, secret: &str, now: i64) -> Result<Option<WebSession>> {
    Ok(conn
        .prepare_cached(
            "SELECT address, csrf, expires_at FROM web_sessions WHERE hash = ?1 AND expires_at > ?2",
        )?
        .query_row(params![hash(secret), now], |r| {
            Ok(WebSession {
                address: r.get(0)?,
                csrf: r.get(1)?,
                expires_at: r.get(2)?,
            })
        })
        .optional()?)
}

/// Ends a session; false if there was none.
pub fn close_session(conn: &Connection, secret: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM web_sessions WHERE hash = ?1")?
        .execute([hash(secret)])?
        == 1)
}

/// Forgets expired login links and sessions; returns how many.
pub fn purge(conn: &Connection, now: i64) -> Result<usize> {
    let a = conn
        .prepare_cached("DELETE FROM web_login_tokens WHERE expires_at <= ?1")?
        .execute([now])?;
    let b = conn
        .prepare_cached("DELETE FROM web_sessions WHERE expires_at <= ?1")?
        .execute([now])?;
    Ok(a + b)
}

/// What an API token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRole {
    /// Everything, on every list.
    Admin,
    /// What an owner may do, on this list.
    List(String),
}

impl ApiRole {
    /// `admin` or `list:NAME`.
    pub fn parse(s: &str) -> Option<ApiRole> {
        match s.split_once(':') {
            None if s == "admin" => Some(ApiRole::Admin),
            Some(("list", l)) if !l.is_empty() => Some(ApiRole::List(l.to_string())),
            _ => None,
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            ApiRole::Admin => "admin".into(),
            ApiRole::List(l) => format!("list:{l}"),
        }
    }
}

/// A stored API token (its secret is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub role: ApiRole,
    pub created_at: i64,
}

/// Creates the token `name`; returns its secret, or None when the name is taken.
pub fn create_api_token(
    conn: &Connection,
    name: &str,
    role: &ApiRole,
    now: i64,
) -> Result<Option<String>> {
    let secret = format!("listd_{}", fresh()?);
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO api_tokens(name, hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![name, hash(&secret), role.as_string(), now])?;
    Ok((n == 1).then_some(secret))
}

fn api_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn api_token_of((name, role, created_at): (String, String, i64)) -> Result<ApiToken> {
    let role = ApiRole::parse(&role)
        .ok_or_else(|| StoreError::Invalid(format!("API token `{name}`: bad role `{role}`")))?;
    Ok(ApiToken {
        name,
        role,
        created_at,
    })
}

/// The token whose secret was presented.
pub fn api_token(conn: &Connection, secret: &str) -> Result<Option<ApiToken>> {
    conn.prepare_cached("SELECT name, role, created_at FROM api_tokens WHERE hash = ?1")?
        .query_row([hash(secret)], api_row)
        .optional()?
        .map(api_token_of)
        .transpose()
}

/// Every API token, by name.
pub fn api_tokens(conn: &Connection) -> Result<Vec<ApiToken>> {
    let rows = conn
        .prepare_cached("SELECT name, role, created_at FROM api_tokens ORDER BY name")?
        .query_map([], api_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(api_token_of).collect()
}

/// Deletes the token `name`; false if there was none.
pub fn revoke_api_token(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM api_tokens WHERE name = ?1")?
        .execute([name])?
        == 1)
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
    fn a_login_link_works_once_and_only_in_time() {
        let (_d, c) = db();
        let s = issue_login(&c, "ann@example.org", 1000).unwrap();
        let stored: Vec<u8> = c
            .query_row("SELECT hash FROM web_login_tokens", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, s.as_bytes(), "only the hash is stored");
        assert_eq!(
            peek_login(&c, &s, 1001).unwrap(),
            LoginLink::Valid("ann@example.org".into())
        );
        assert_eq!(
            use_login(&c, &s, 1002).unwrap(),
            LoginLink::Valid("ann@example.org".into())
        );
        assert_eq!(use_login(&c, &s, 1003).unwrap(), LoginLink::Spent);
        let late = issue_login(&c, "ann@example.org", 1000).unwrap();
        assert_eq!(
            use_login(&c, &late, 1000 + LOGIN_LINK_SECS).unwrap(),
            LoginLink::Spent
        );
        assert_eq!(use_login(&c, "nope", 1000).unwrap(), LoginLink::Unknown);
    }

    #[test]
    fn sessions_expire_and_close() {
        let (_d, c) = db();
        let (s, open) = open_session(&c, "ann@example.org", 7, 0).unwrap();
        assert_eq!(session(&c, &s, 10).unwrap(), Some(open.clone()));
        assert_eq!(session(&c, &s, open.expires_at).unwrap(), None);
        assert!(close_session(&c, &s).unwrap());
        assert_eq!(session(&c, &s, 10).unwrap(), None);
        assert!(!close_session(&c, &s).unwrap());
        let (_, _) = open_session(&c, "bob@example.org", 1, 0).unwrap();
        assert_eq!(purge(&c, 2 * crate::store::rate::DAY).unwrap(), 1);
    }

    #[test]
    fn api_tokens_by_hash_and_roles() {
        let (_d, c) = db();
        let role = ApiRole::parse("list:dev").unwrap();
        let s = create_api_token(&c, "ci", &role, 5).unwrap().unwrap();
        assert!(create_api_token(&c, "ci", &ApiRole::Admin, 6)
            .unwrap()
            .is_none());
        let t = api_token(&c, &s).unwrap().unwrap();
        assert_eq!((t.name.as_str(), &t.role), ("ci", &role));
        assert_eq!(api_token(&c, "listd_00").unwrap(), None);
        assert_eq!(api_tokens(&c).unwrap().len(), 1);
        assert!(revoke_api_token(&c, "ci").unwrap());
        assert_eq!(api_token(&c, &s).unwrap(), None);
        for bad in ["", "list:", "owner", "admin:x"] {
            assert_eq!(ApiRole::parse(bad), None, "{bad}");
        }
        assert_eq!(ApiRole::parse("admin"), Some(ApiRole::Admin));
    }
}
