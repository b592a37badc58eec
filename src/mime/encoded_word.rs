//! RFC 2047 encoded words for header text: the one encoder listd writes
//! non-ASCII header text with (subjects it rewrites, List-Id descriptions,
//! digest part descriptions), and the decoder of a raw unstructured value
//! (mail-parser's, run on the value alone).
//!
//! Trusts nothing in the text: any string encodes; words are cut only
//! between characters, so each decodes on its own (RFC 2047 §5), and each
//! word is at most 75 characters (§2).

use base64::Engine;
use mail_parser::{HeaderName, MessageParser};

/// The longest encoded word (RFC 2047 §2).
pub const MAX_WORD: usize = 75;

/// The longest header line holding an encoded word (RFC 2047 §2).
pub const MAX_LINE: usize = 76;

/// `=?utf-8?b?` + `?=`.
const WRAPPER: usize = 12;

/// How many bytes of UTF-8 fit in one `b` word of at most `room` characters.
fn bytes_for(room: usize) -> usize {
    3 * (room.min(MAX_WORD).saturating_sub(WRAPPER) / 4)
}

/// `text` as `=?utf-8?b?...?=` words separated by single spaces (unfolded:
/// fold it with `header_block::fold`, which breaks between the words).
/// `used` is the width already on the first line (`Name: `): the first word
/// fits in the rest of [`MAX_LINE`], every other one on a line of its own
/// after the folding space. Line ends in `text` become spaces; an empty
/// `text` gives an empty string.
pub fn encode(text: &str, used: usize) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut chunk = String::new();
    let mut room = bytes_for(MAX_LINE.saturating_sub(used));
    for c in text.chars() {
        let c = if c == '\r' || c == '\n' { ' ' } else { c };
        // a word always takes at least one character, so the text is consumed
        if !chunk.is_empty() && chunk.len() + c.len_utf8() > room {
            words.push(word(&std::mem::take(&mut chunk)));
            room = bytes_for(MAX_LINE - 1);
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(word(&chunk));
    }
    words.join(" ")
}

fn word(chunk: &str) -> String {
    format!(
        "=?utf-8?b?{}?=",
        base64::engine::general_purpose::STANDARD.encode(chunk.as_bytes())
    )
}

/// `text` as it is when it is printable ASCII, else [`encode`]d.
pub fn encode_if_needed(text: &str, used: usize) -> String {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.to_string()
    } else {
        encode(text, used)
    }
}

/// The text of a raw unstructured header value (folded or not): encoded
/// words decoded, folding removed. `None` when mail-parser reads no text.
pub fn decode(raw: &[u8]) -> Option<String> {
    let mut m = b"Subject: ".to_vec();
    m.extend_from_slice(raw);
    m.extend_from_slice(b"\r\n\r\n");
    MessageParser::new()
        .header_text(HeaderName::Subject)
        .parse_headers(&m)
        .and_then(|p| p.subject().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::header_block;

    fn words(e: &str) -> Vec<&str> {
        e.split(' ').collect()
    }

    #[test]
    fn short_text_is_one_word_and_decodes() {
        let e = encode("Grüße aus Köln", 9);
        assert_eq!(e, "=?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=");
        assert_eq!(decode(e.as_bytes()).as_deref(), Some("Grüße aus Köln"));
        assert_eq!(encode_if_needed("Plain text", 9), "Plain text");
        assert_eq!(encode_if_needed("tab\there", 9), encode("tab\there", 9));
        assert_eq!(
            decode(b"=?ISO-8859-1?Q?caf=E9?=\r\n x").as_deref(),
            Some("café x")
        );
    }

    #[test]
    fn words_are_at_most_75_and_never_split_a_character() {
        // 1-, 2-, 3- and 4-byte characters, in every alignment
        for text in [
            "a".repeat(200),
            "ü".repeat(100),
            "€".repeat(70),
            "😀".repeat(50),
            format!("x{}", "😀€ü".repeat(30)),
        ] {
            for used in [0, 9, 21, 60, 100] {
                let e = encode(&text, used);
                let mut decoded = String::new();
                for w in words(&e) {
                    assert!(w.len() <= MAX_WORD, "{w}");
                    let b64 = w
                        .strip_prefix("=?utf-8?b?")
                        .unwrap()
                        .strip_suffix("?=")
                        .unwrap();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap();
                    // each word is whole UTF-8 on its own
                    decoded.push_str(&String::from_utf8(bytes).expect("split inside a character"));
                }
                assert_eq!(decoded, text);
                // folded after `used` columns, every line fits RFC 2047's 76
                if used < 60 {
                    let folded = header_block::fold(e.as_bytes(), used.saturating_sub(2), "\r\n");
                    let folded = String::from_utf8(folded).unwrap();
                    for (i, l) in folded.split("\r\n").enumerate() {
                        let width = l.len() + if i == 0 { used } else { 0 };
                        assert!(width <= MAX_LINE, "{used}: {folded}");
                    }
                    let raw = format!("Subject: {folded}\r\n\r\n");
                    let p = MessageParser::default()
                        .parse_headers(raw.as_bytes())
                        .unwrap();
                    assert_eq!(p.subject(), Some(text.as_str()));
                }
            }
        }
        assert_eq!(
            decode(encode("a\r\nb", 0).as_bytes()).as_deref(),
            Some("a  b")
        );
        assert_eq!(encode("", 0), "");
    }
}
