//! The 7-bit conversion (`mime::seven_bit`) on arbitrary bytes.
//!
//! Invariants: nothing panics; ASCII input comes back unchanged; and when
//! the input has 8-bit bytes only in its bodies (its header fields are
//! ASCII), the output is all ASCII and every leaf part decodes to what it
//! did before, but for line ends: quoted-printable writes each line end of
//! a text as the message's own (RFC 2045 hard line breaks), so a stray bare
//! `\n` in a CRLF text may come back as CRLF.

use crate::mime::{header_block, leaves::leaves, lines::with_eol_bytes, seven_bit::to_seven_bit};
use mail_parser::MessageParser;

pub fn check(data: &[u8]) {
    let out = to_seven_bit(data);
    if data.is_ascii() {
        assert_eq!(&out[..], data, "ASCII input changed");
    }
}

/// `msg`, whose header fields are ASCII, converts to ASCII with the same
/// leaf parts.
pub fn run(msg: &[u8]) {
    check(msg);
    let split = header_block::split(msg);
    assert!(msg[..split.header_end.min(msg.len())].is_ascii());
    let out = to_seven_bit(msg);
    let show = || String::from_utf8_lossy(&out).to_string();
    let parser = MessageParser::default();
    let (Some(before), Some(after)) = (parser.parse(msg), parser.parse(&out)) else {
        panic!("parse changed:\n{}", show());
    };
    let lf = |m: &mail_parser::Message<'_>| -> Vec<Vec<u8>> {
        leaves(m).iter().map(|l| with_eol_bytes(l, b"\n")).collect()
    };
    assert_eq!(lf(&after), lf(&before), "leaf parts changed:\n{}", show());
    if before.parts.iter().all(|p| {
        let h = &msg[p.raw_header_offset() as usize..p.raw_body_offset() as usize];
        h.is_ascii()
    }) {
        assert!(out.is_ascii(), "8-bit left:\n{}", show());
    }
}
