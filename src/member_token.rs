//! Member tokens: the proof in a one-click unsubscribe URL that the bearer
//! got a list's mail at an address.
//!
//! A token is `base64url(payload || HMAC-SHA256(secret, payload))`, no
//! padding, where the payload is a format byte, the site key id, the list
//! name and the address. It is verified from the site keys alone, without a
//! database read. The site keys live in `data_dir/web-keys` (mode 0600),
//! made on first use; `rotate` adds a new current key, and a key replaced
//! `grace_days` ago or longer no longer verifies tokens.
//!
//! A leaf: trusts the key file it wrote (it is read and checked, never
//! executed), nothing in a token. No token input panics.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The key file's name in `data_dir`.
pub const KEYS_FILE: &str = "web-keys";

/// The payload's format byte.
const FORMAT: u8 = 1;
/// What the MAC covers besides the payload (domain separation).
const CONTEXT: &[u8] = b"listd unsubscribe\0";
const MAC_LEN: usize = 32;
/// Longest token text made or accepted (a 64-byte list and a 254-byte
/// address fit).
pub const MAX_TOKEN_CHARS: usize = 600;

/// One site key.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteKey {
    pub id: u32,
    /// Unix time it was made; it replaces the key before it from then on.
    pub created: i64,
    secret: [u8; 32],
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SiteKey {{ id: {}, created: {} }}",
            self.id, self.created
        )
    }
}

/// Every site key, oldest first; the last is the current one.
#[derive(Debug, Clone)]
pub struct SiteKeys {
    keys: Vec<SiteKey>,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaim {
    pub list: String,
    pub address: String,
    pub key_id: u32,
}

/// Why a token does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not a valid unsubscribe link")]
    Malformed,
    #[error("the link was signed with a key this site does not have")]
    UnknownKey,
    #[error("the link has been altered")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

/// Why the key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

fn mac_of(secret: &[u8; 32], payload: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(CONTEXT);
    m.update(payload);
    m
}

fn payload(key_id: u32, list: &str, address: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(list.len()).ok()?;
    let mut p = Vec::with_capacity(6 + list.len() + address.len());
    p.push(FORMAT);
    p.extend_from_slice(&key_id.to_be_bytes());
    p.push(len);
    p.extend_from_slice(list.as_bytes());
    p.extend_from_slice(address.as_bytes());
    Some(p)
}

impl SiteKeys {
    /// The key file of `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEYS_FILE)
    }

    /// The keys, made (one new key) when the file does not exist yet.
    pub fn load_or_create(data_dir: &Path, now: i64) -> Result<SiteKeys, KeyFileError> {
        if let Some(k) = SiteKeys::load(data_dir)? {
            return Ok(k);
        }
        let fresh = SiteKeys {
            keys: vec![new_key(1, now)],
        };
        // written aside, then linked into place: linking fails if another
        // process made the file meanwhile, and then its keys are the keys
        let path = SiteKeys::path(data_dir);
        let tmp = write_aside(&path, &fresh.render())?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(fresh),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                SiteKeys::load(data_dir)?.ok_or(KeyFileError::Io { path, source: e })
            }
            Err(source) => Err(KeyFileError::Io { path, source }),
        }
    }

    /// The keys, or None when the file does not exist.
    pub fn load(data_dir: &Path) -> Result<Option<SiteKeys>, KeyFileError> {
        let path = SiteKeys::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => SiteKeys::parse(&text)
                .map(Some)
                .map_err(|(line, reason)| KeyFileError::Invalid { path, line, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyFileError::Io { path, source }),
        }
    }

    /// Adds a new current key made at `now`, keeping the old ones (they
    /// verify for their grace period), and writes the file (replaced whole).
    pub fn rotate(data_dir: &Path, now: i64) -> Result<SiteKeys, KeyFileError> {
        let mut keys = SiteKeys::load_or_create(data_dir, now)?;
        let id = keys.current().id.saturating_add(1);
        keys.keys.push(new_key(id, now));
        keys.save(data_dir)?;
        Ok(keys)
    }

    /// Writes the file (mode 0600), replacing it whole.
    pub fn save(&self, data_dir: &Path) -> Result<(), KeyFileError> {
        let path = SiteKeys::path(data_dir);
        let tmp = write_aside(&path, &self.render())?;
        std::fs::rename(&tmp, &path).map_err(|source| KeyFileError::Io { path, source })
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[SiteKey] {
        &self.keys
    }

    /// Every key, to change (tests back-date them).
    pub fn keys_mut(&mut self) -> &mut [SiteKey] {
        &mut self.keys
    }

    /// The key new tokens are made with.
    pub fn current(&self) -> &SiteKey {
        self.keys.last().expect("a key file has at least one key")
    }

    /// Until when key `id` verifies tokens (None: no end, it is current).
    pub fn valid_until(&self, id: u32, grace_days: u32) -> Option<i64> {
        let i = self.keys.iter().position(|k| k.id == id)?;
        let next = self.keys.get(i + 1)?;
        Some(next.created + i64::from(grace_days) * 86_400)
    }

    /// The token for `address` on `list`, made with the current key. What
    /// `verify` would refuse gets none: an empty address, a list name over
    /// 255 bytes, a token over [`MAX_TOKEN_CHARS`] (never valid names).
    pub fn mint(&self, list: &str, address: &str) -> Option<String> {
        if address.is_empty() {
            return None;
        }
        let key = self.current();
        let mut p = payload(key.id, list, address)?;
        let mac = mac_of(&key.secret, &p).finalize().into_bytes();
        p.extend_from_slice(&mac);
        Some(URL_SAFE_NO_PAD.encode(p)).filter(|t| t.len() <= MAX_TOKEN_CHARS)
    }

    /// Reads and checks `token` at `now`.
    pub fn verify(&self, token: &str, now: i64, grace_days: u32) -> Result<TokenClaim, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        let Some(body_len) = raw.len().checked_sub(MAC_LEN) else {
            return Err(TokenError::Malformed);
        };
        let (p, mac) = raw.split_at(body_len);
        if p.len() < 6 || p[0] != FORMAT {
            return Err(TokenError::Malformed);
        }
        let key_id = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
        let list_len = usize::from(p[5]);
        let rest = &p[6..];
        if rest.len() <= list_len {
            return Err(TokenError::Malformed);
        }
        let (list, address) = rest.split_at(list_len);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(TokenError::UnknownKey)?;
        mac_of(&key.secret, p)
            .verify_slice(mac)
            .map_err(|_| TokenError::BadSignature)?;
        if self
            .valid_until(key_id, grace_days)
            .is_some_and(|t| now >= t)
        {
            return Err(TokenError::Expired);
        }
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| TokenError::Malformed);
        Ok(TokenClaim {
            list: text(list)?,
            address: text(address)?,
            key_id,
        })
    }

    fn render(&self) -> String {
        let mut s = String::from(
            "# listd site keys for unsubscribe links: id, unix time made, secret (hex).\n\
             # The last is current; `listd web rotate-secret` adds one. Keep this file private.\n",
        );
        for k in &self.keys {
            s += &format!("{} {} {}\n", k.id, k.created, hex::encode(k.secret));
        }
        s
    }

    /// Parses the key file's text; the error is (line, reason).
    pub fn parse(text: &str) -> Result<SiteKeys, (usize, String)> {
        let mut keys: Vec<SiteKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| (n + 1, why.to_string());
            let f: Vec<&str> = line.split_whitespace().collect();
            let [id, created, secret] = f[..] else {
                return Err(bad("expected `ID CREATED SECRET`"));
            };
            let id: u32 = id.parse().map_err(|_| bad("the key id is not a number"))?;
            let created: i64 = created
                .parse()
                .map_err(|_| bad("the creation time is not a unix time"))?;
            let secret: [u8; 32] = hex::decode(secret)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad("the secret is not 64 hex digits"))?;
            if keys.last().is_some_and(|k| k.id >= id) {
                return Err(bad("key ids must increase from line to line"));
            }
            keys.push(SiteKey {
                id,
                created,
                secret,
            });
        }
        if keys.is_empty() {
            return Err((1, "the file has no key".into()));
        }
        Ok(SiteKeys { keys })
    }
}

fn new_key(id: u32, now: i64) -> SiteKey {
    SiteKey {
        id,
        created: now,
        secret: rand::random(),
    }
}

/// Writes `text` to a new private file beside `path` and returns its path.
fn write_aside(path: &Path, text: &str) -> Result<PathBuf, KeyFileError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let io = |source| KeyFileError::Io {
        path: tmp.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(tmp)
}

/// The one-click unsubscribe URL for `token` under `public_url`.
pub fn unsubscribe_url(public_url: &str, token: &str) -> String {
    format!("{}/u/{token}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn a_token_verifies_and_any_change_to_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SiteKeys::load_or_create(dir.path(), 1000).unwrap();
        let t = keys.mint("dev", "Ann@Example.org").unwrap();
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let claim = keys.verify(&t, 1000, 30).unwrap();
        assert_eq!(
            claim,
            TokenClaim {
                list: "dev".into(),
                address: "Ann@Example.org".into(),
                key_id: 1
            }
        );
        // flip each character in turn: never accepted, never a panic
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(b).unwrap();
            assert!(keys.verify(&s, 1000, 30).is_err(), "changed at {i}");
        }
        // another list or address under the same MAC
        let other = keys.mint("ops", "Ann@Example.org").unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(&other).unwrap();
        let n = raw.len();
        raw[n - MAC_LEN..].copy_from_slice(&URL_SAFE_NO_PAD.decode(&t).unwrap()[n - MAC_LEN..]);
        assert_eq!(
            keys.verify(&URL_SAFE_NO_PAD.encode(raw), 1000, 30),
            Err(TokenError::BadSignature)
        );
        // what verify would refuse is never minted
        assert_eq!(keys.mint("dev", ""), None);
        assert_eq!(keys.mint(&"l".repeat(256), "x@y"), None);
        assert_eq!(keys.mint("dev", &"x".repeat(500)), None);
        for junk in ["", "a", "!!!!", "AAAA", &"A".repeat(5000), "é", "AQAAAAEA"] {
            assert!(keys.verify(junk, 1000, 30).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_file_is_private_kept_and_shared_between_loads() {
        let dir = tempfile::tempdir().unwrap();
        let a = SiteKeys::load_or_create(dir.path(), 5).unwrap();
        let b = SiteKeys::load_or_create(dir.path(), 99).unwrap();
        assert_eq!(a.keys(), b.keys());
        assert_eq!(b.current().created, 5);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(SiteKeys::path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let t = a.mint("dev", "x@example.org").unwrap();
        assert!(b.verify(&t, 5, 30).is_ok());
    }

    #[test]
    fn an_old_key_verifies_for_its_grace_period_only() {
        let dir = tempfile::tempdir().unwrap();
        let old = SiteKeys::load_or_create(dir.path(), 0).unwrap();
        let t = old.mint("dev", "x@example.org").unwrap();
        let keys = SiteKeys::rotate(dir.path(), 10 * DAY).unwrap();
        assert_eq!(keys.keys().len(), 2);
        assert_eq!(keys.current().id, 2);
        assert_eq!(keys.valid_until(1, 30), Some(40 * DAY));
        assert_eq!(keys.valid_until(2, 30), None);
        assert_eq!(keys.verify(&t, 40 * DAY - 1, 30).unwrap().key_id, 1);
        assert_eq!(keys.verify(&t, 40 * DAY, 30), Err(TokenError::Expired));
        // new tokens use the new key and outlive the grace period
        let fresh = keys.mint("dev", "x@example.org").unwrap();
        assert_eq!(keys.verify(&fresh, 1000 * DAY, 30).unwrap().key_id, 2);
        // a key this site never had
        let stranger = SiteKeys {
            keys: vec![new_key(7, 0)],
        };
        let t7 = stranger.mint("dev", "x@example.org").unwrap();
        assert_eq!(keys.verify(&t7, 0, 30), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_broken_key_file_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        for (text, line) in [
            ("", 1),
            ("# only a comment\n", 1),
            ("1 2\n", 1),
            ("# c\n1 2 zz\n", 2),
            (
                &format!("2 0 {}\n1 0 {}\n", "00".repeat(32), "00".repeat(32)),
                2,
            ),
        ] {
            std::fs::write(SiteKeys::path(dir.path()), text).unwrap();
            match SiteKeys::load(dir.path()) {
                Err(KeyFileError::Invalid { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_url_joins_the_public_url_and_the_token() {
        assert_eq!(
            unsubscribe_url("https://l.example.org/", "abc"),
            "https://l.example.org/u/abc"
        );
    }
}
