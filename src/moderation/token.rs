//! Moderation tokens: 128 random bits from the operating system's CSPRNG,
//! written as 32 lower-case hex digits (safe in a local part, and immune to
//! MTAs that fold case), and stored only as their SHA-256 hash.
//!
//! Trusts the OS random source; trusts nothing in a token presented by mail
//! (it is normalised and hashed, never used as SQL or a path).

use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// Bytes of randomness in a token (128 bits).
pub const TOKEN_BYTES: usize = 16;

/// A fresh token. Fails only if the OS random source fails.
pub fn generate() -> Result<String, String> {
    let mut buf = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| format!("OS random source failed: {e}"))?;
    Ok(hex::encode(buf))
}

/// The normalised form of a presented token: trimmed and lower-cased; `None`
/// unless it is exactly 32 hex digits.
pub fn normalise(token: &str) -> Option<String> {
    let t = token.trim().to_ascii_lowercase();
    (t.len() == TOKEN_BYTES * 2 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
}

/// The stored hash of a (normalised) token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(
            normalise(&a.to_ascii_uppercase()).as_deref(),
            Some(a.as_str())
        );
        assert_eq!(hash(&a).len(), 32);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert_eq!(normalise(""), None);
        assert_eq!(normalise("xyz"), None);
        assert_eq!(normalise(&"g".repeat(32)), None);
        assert_eq!(normalise(&"a".repeat(31)), None);
        assert_eq!(normalise(&"a".repeat(33)), None);
    }
}
