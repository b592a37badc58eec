//! Invariant checks over the parsers, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/`) and the property tests (`tests/props.rs`).
//!
//! Each `check` takes arbitrary bytes (or a few plain values built from
//! them), drives the real entry point and panics when an invariant breaks:
//! a panic is what libFuzzer reports as a crash and what proptest shrinks.
//! Trusts nothing in its input; the fixed configuration (`config`) is the
//! only thing built here. Not part of the daemon's behaviour.

pub mod address;
pub mod auth;
pub mod bounce;
pub mod decorate;
pub mod digest;
pub mod mbox;
pub mod member_token;
pub mod reader;
pub mod robot;
pub mod seven_bit;
pub mod smtp;

use crate::config::{Config, ListConfig};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The domain of [`config`].
pub const DOMAIN: &str = "lists.example.org";

/// A site with lists `dev` (prefix `[dev]`, Reply-To the list, footer on),
/// `news` (announce, `[news]`) and `dev-team`, on [`DOMAIN`].
pub fn config() -> Config {
    let mut c = Config::for_tests(DOMAIN, Path::new("/nonexistent"));
    c.smtp.hostname = DOMAIN.into();
    c.smtp.max_message_size = 4096;
    c.smtp.max_recipients = 4;
    for (name, yaml) in [
        (
            "dev",
            "description: Dev talk\nsubject_prefix: \"[dev]\"\nreply_to: list\nexpn: anyone\n",
        ),
        (
            "news",
            "description: \"News, from: us\"\nsubject_prefix: \"[news]\"\nposting: announce\nmax_message_size: 200\noversize_posts: reject\n",
        ),
        ("dev-team", ""),
    ] {
        let l = ListConfig::parse(Path::new("fuzz.yaml"), name, yaml)
            .unwrap_or_else(|e| panic!("fuzz list {name}: {e:?}"));
        c.lists.insert(name.into(), l);
    }
    c
}

/// [`config`], built once per process (fuzzers run millions of inputs).
pub fn shared_config() -> Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(config())).clone()
}

/// Whether every CR in `b` is followed by LF and every LF preceded by CR.
pub fn crlf_only(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| match c {
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && b[i - 1] == b'\r',
        _ => true,
    })
}
