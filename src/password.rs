//! Password hashes: argon2id PHC strings with a random salt, made and
//! checked here for every secret listd stores (a list's
//! `moderator_password`, archive readers' app passwords).
//!
//! Trusts nothing in the hash it is given: a malformed one never verifies.

/// Checks a password against an argon2 PHC hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(hash) else {
        tracing::warn!("a stored password hash is not a valid argon2 hash");
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Makes an argon2id PHC hash of a password with a random salt
/// (`listd hash-password`, app passwords).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use rand::TryRngCore;
    let mut salt = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| format!("OS random source failed: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "s3cret "));
        assert!(!verify_password("not a hash", "s3cret"));
        assert_ne!(h, hash_password("s3cret").unwrap(), "salted");
    }
}
