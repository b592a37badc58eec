//! Address parsing and recipient routing on arbitrary text.
//!
//! Invariants: nothing panics; a parsed address prints as text that parses
//! to the same address, has a lower-case domain, fits the length limit and
//! keys like `address_key`; a
//! routed recipient names a configured list and survives the store's
//! (kind, list, tag) round trip, and routes the same when printed.

use crate::address::{address_key, Address, MAX_ADDRESS_LEN};
use crate::config::Config;
use crate::routing::{self, Route};

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    run(&super::shared_config(), &text);
}

/// Parses and routes `s` under `config`.
pub fn run(config: &Config, s: &str) {
    if let Ok(a) = Address::parse(s) {
        let printed = a.to_string();
        assert!(printed.len() <= MAX_ADDRESS_LEN, "{printed:?} too long");
        assert_eq!(Address::parse(&printed).as_ref(), Ok(&a), "reparse {s:?}");
        assert!(!a.domain().bytes().any(|b| b.is_ascii_uppercase()));
        assert_eq!(address_key(s), a.key());
        assert_eq!(
            routing::route(config, s),
            routing::route(config, &printed),
            "routing depends on the spelling of {s:?}"
        );
    }
    if let Ok(route) = routing::route(config, s) {
        if let Some(list) = route.list() {
            assert!(config.lists.contains_key(list), "routed to unknown {list}");
        }
        assert_eq!(
            Route::from_parts(route.kind(), route.list(), route.tag()),
            Some(route.clone()),
            "stored parts of {route:?}"
        );
    }
}
