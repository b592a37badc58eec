//! Byte-level helpers for the mail the digest writes: the search for a
//! boundary string inside the parts, and fresh boundaries. The MIME
//! encodings themselves (encoded words, transfer encodings, line ends) are
//! `crate::mime`'s.
//!
//! Pure functions; they trust nothing about the text they are given.

/// Whether `needle` occurs anywhere in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// A fresh random MIME boundary: `=_` (which quoted-printable and base64
/// text cannot contain) then 32 random alphanumerics.
pub fn random_boundary() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!(
        "=_listd_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_random_and_safe() {
        let a = random_boundary();
        let b = random_boundary();
        assert_ne!(a, b);
        assert!(a.starts_with("=_") && a.len() <= 70);
        assert!(contains(b"xx--yy", b"--"));
        assert!(!contains(b"xx", b"--"));
    }
}
