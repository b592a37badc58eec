//! Member tokens on arbitrary input.
//!
//! Invariants: no token text panics `verify`; what verifies was minted by
//! these keys (it re-mints to itself under its key); a token minted for
//! any list and address verifies to exactly them; and one changed byte of
//! a minted token never verifies.

use crate::member_token::{SiteKeys, MAX_TOKEN_CHARS};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// When the checks run: key 1's one grace day is over.
const NOW: i64 = 100 + 86_400;

/// Two keys: 1 (replaced at 100) and 2 (current).
fn keys() -> SiteKeys {
    SiteKeys::parse(&format!(
        "1 0 {}\n2 100 {}\n",
        "11".repeat(32),
        "22".repeat(32)
    ))
    .expect("fixed keys")
}

pub fn check(data: &[u8]) {
    let keys = keys();
    let text = String::from_utf8_lossy(data);
    if let Ok(claim) = keys.verify(&text, NOW, 1) {
        assert_eq!(claim.key_id, 2, "an expired key verified");
        assert_eq!(
            keys.mint(&claim.list, &claim.address).as_deref(),
            Some(text.as_ref()),
            "a token verified that these keys did not make"
        );
    }
    // a minted token of (list, address) taken from the input
    let (list, address) = match text.split_once('\n') {
        Some((l, a)) => (l, a),
        None => ("dev", text.as_ref()),
    };
    let Some(token) = keys.mint(list, address) else {
        assert!(
            list.len() > 255 || address.is_empty() || list.len() + address.len() > 400,
            "no token for list {list:?}, address {address:?}"
        );
        return;
    };
    assert!(token.len() <= MAX_TOKEN_CHARS);
    let claim = keys.verify(&token, NOW, 1).expect("a fresh token verifies");
    assert_eq!(
        (claim.list.as_str(), claim.address.as_str()),
        (list, address)
    );
    let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
    let at = data.first().map_or(0, |b| usize::from(*b)) % raw.len();
    raw[at] ^= 1 << (data.len() % 8);
    assert!(
        keys.verify(&URL_SAFE_NO_PAD.encode(&raw), NOW, 1).is_err(),
        "a token changed at byte {at} still verifies"
    );
}
