//! Content-Transfer-Encoding and charset helpers for text listd writes:
//! the choice of 7bit, 8bit or quoted-printable for a text body, base64
//! decoding of an existing part, base64 encoding wrapped at 76 columns, and
//! conversion of text to a part's charset. Quoted-printable itself is
//! [`super::qp`].
//!
//! Trusts nothing in encoded input: a base64 body that does not decode is an
//! error the caller handles (it then leaves the part alone).

use super::lines::{has_long_line, MAX_LINE};
use base64::Engine;

/// A text body ready to go under its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    /// `7bit`, `8bit` or `quoted-printable`.
    pub cte: &'static str,
    /// `us-ascii` or `utf-8`.
    pub charset: &'static str,
    /// The body, with the line ends it was given (quoted-printable: CRLF).
    pub body: Vec<u8>,
}

/// Picks the transfer encoding for a text body (given with CRLF line ends):
/// 7bit for short-lined ASCII, 8bit for short-lined UTF-8, and
/// quoted-printable when any line is longer than SMTP allows.
pub fn encode_text(text: &str) -> EncodedText {
    let ascii = text.is_ascii();
    let charset = if ascii { "us-ascii" } else { "utf-8" };
    if !has_long_line(text.as_bytes(), MAX_LINE) {
        return EncodedText {
            cte: if ascii { "7bit" } else { "8bit" },
            charset,
            body: text.as_bytes().to_vec(),
        };
    }
    EncodedText {
        cte: "quoted-printable",
        charset,
        body: super::qp::encode(text.as_bytes(), "\r\n"),
    }
}

/// Decodes a base64 body, ignoring line ends and other white space.
pub fn base64_decode(body: &[u8]) -> Result<Vec<u8>, String> {
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|e| format!("base64 body does not decode: {e}"))
}

/// Encodes base64 in lines of 76 characters, each ended by `eol`.
pub fn base64_encode_lines(data: &[u8], eol: &str) -> Vec<u8> {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(enc.len() + enc.len() / 76 * eol.len() + eol.len());
    for chunk in enc.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(eol.as_bytes());
    }
    out
}

/// Converts UTF-8 `text` to the bytes of `charset`, if listd can do so
/// exactly: UTF-8 always, ASCII text into any ASCII-compatible charset, and
/// Latin-1 text into ISO-8859-1 (and windows-1252 outside 0x80-0x9F).
/// `None` when the text cannot be written in that charset.
pub fn to_charset(text: &str, charset: &str) -> Option<Vec<u8>> {
    let cs = charset.trim().trim_matches('"').to_ascii_lowercase();
    if cs == "utf-8" || cs == "utf8" {
        return Some(text.as_bytes().to_vec());
    }
    let ascii_incompatible = [
        "utf-16", "utf-32", "ucs-2", "ucs-4", "utf-7", "iso-2022", "hz-gb",
    ]
    .iter()
    .any(|p| cs.starts_with(p));
    if ascii_incompatible {
        return None;
    }
    if text.is_ascii() {
        return Some(text.as_bytes().to_vec());
    }
    let latin1 = matches!(
        cs.as_str(),
        "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1" | "windows-1252" | "cp1252"
    );
    if latin1 {
        return text
            .chars()
            .map(|c| match c as u32 {
                n @ 0..=0x7f | n @ 0xa0..=0xff => Some(n as u8),
                _ => None,
            })
            .collect();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_encoding_choice() {
        assert_eq!(encode_text("hello\r\n").cte, "7bit");
        let e = encode_text("héllo\r\n");
        assert_eq!((e.cte, e.charset), ("8bit", "utf-8"));
        let long = format!("{}é\r\nshort\r\n", "x".repeat(1200));
        let e = encode_text(&long);
        assert_eq!(e.cte, "quoted-printable");
        let body = String::from_utf8(e.body.clone()).unwrap();
        assert!(body.split("\r\n").all(|l| l.len() <= 76), "{body}");
        // round trip through a real parser
        let msg = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{body}"
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(msg.as_bytes())
            .unwrap();
        assert_eq!(parsed.body_text(0).unwrap(), long);
    }

    #[test]
    fn base64_round_trip_and_errors() {
        let data = vec![7u8; 200];
        let enc = base64_encode_lines(&data, "\r\n");
        assert!(enc.split(|c| *c == b'\n').all(|l| l.len() <= 77));
        assert_eq!(base64_decode(&enc).unwrap(), data);
        assert!(base64_decode(b"@@@not base64").is_err());
    }

    #[test]
    fn charsets() {
        assert_eq!(to_charset("é", "UTF-8").unwrap(), "é".as_bytes());
        assert_eq!(to_charset("é", "iso-8859-1").unwrap(), vec![0xe9]);
        assert_eq!(to_charset("abc", "koi8-r").unwrap(), b"abc");
        assert!(to_charset("é", "us-ascii").is_none());
        assert!(to_charset("€", "iso-8859-1").is_none());
        assert!(to_charset("abc", "utf-16").is_none());
        assert!(to_charset("abc", "ISO-2022-JP").is_none());
    }
}
