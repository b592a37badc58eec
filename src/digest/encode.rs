//! Byte-level helpers for the mail the digest writes: the RFC 5322 date
//! and the search for a boundary string inside the parts. The MIME
//! encodings themselves (encoded words, transfer encodings, line ends) are
//! `crate::mime`'s.
//!
//! Pure functions; they trust nothing about the text they are given.

/// `Mon, 03 Jun 2024 06:00:00 +0000` for `now` (UTC).
pub fn rfc5322_date(now: i64) -> String {
    crate::config::schedule::utc(now)
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

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
    fn date_is_rfc5322() {
        assert_eq!(
            rfc5322_date(1_717_394_400),
            "Mon, 03 Jun 2024 06:00:00 +0000"
        );
    }

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
