//! The leaf body parts of a parsed message, by their decoded contents: what
//! a reader sees, and so what decoration must keep.
//!
//! Trusts nothing: any parse of any bytes.

use mail_parser::{Message, PartType};

/// The decoded contents of each leaf body part, in order: text as UTF-8,
/// binary as is, a nested message by its raw bytes. (Contents, not kinds:
/// mail-parser calls the empty body of a one-part message text whatever
/// its type.)
pub fn leaves(m: &Message<'_>) -> Vec<Vec<u8>> {
    m.parts
        .iter()
        .filter_map(|p| match &p.body {
            PartType::Text(t) | PartType::Html(t) => Some(t.as_bytes().to_vec()),
            PartType::Binary(b) | PartType::InlineBinary(b) => Some(b.to_vec()),
            PartType::Message(n) => Some(n.raw_message().to_vec()),
            PartType::Multipart(_) => None,
        })
        .collect()
}
