//! The intake's reading of `Authentication-Results:` fields and the static
//! zone parser, on arbitrary bytes.
//!
//! Invariants: nothing panics; after `replace_ours` no field but the one we
//! added claims our authserv-id, every other field is kept, and doing it
//! again changes nothing; the zone parser either accepts the text or names
//! lines that exist, and what it accepted parses again to the same zone.

use crate::auth::fields::{authserv_id, replace_ours, upstream_verdict};
use crate::dns::zone;
use crate::mime::header_block;

const OURS: &str = "lists.example.org";

/// A-R fields: the input is a message (header block and body).
pub fn check(data: &[u8]) {
    let _ = upstream_verdict(data, "mx.example.org");
    let ours_field = format!("Authentication-Results: {OURS}; spf=pass\r\n");
    let out = replace_ours(data, OURS, Some(&ours_field));
    let split = header_block::split(&out);
    let claiming: Vec<usize> = split
        .find(&out, "Authentication-Results")
        .filter(|&i| authserv_id(&out[split.fields[i].value.clone()]) == OURS)
        .collect();
    assert_eq!(claiming.len(), 1, "exactly our field claims our id");
    // the others are all still there
    let before = header_block::split(data);
    let others = |b: &[u8], s: &header_block::Split| {
        s.find(b, "Authentication-Results")
            .filter(|&i| authserv_id(&b[s.fields[i].value.clone()]) != OURS)
            .count()
    };
    assert_eq!(
        others(&out, &split),
        others(data, &before),
        "a foreign field went"
    );
    // removing ours again and adding it again is where we started
    let again = replace_ours(&out, OURS, Some(&ours_field));
    assert_eq!(
        header_block::split(&again)
            .find(&again, "Authentication-Results")
            .count(),
        split.find(&out, "Authentication-Results").count()
    );
}

/// The static zone: the input is the file's text.
pub fn check_zone(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match zone::parse(&text) {
        Ok(z) => {
            // a zone that loaded is the same when loaded again
            assert_eq!(zone::parse(&text).ok(), Some(z));
        }
        Err(errors) => {
            let lines = text.lines().count().max(1);
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
                assert!(!e.reason.is_empty());
            }
        }
    }
}
