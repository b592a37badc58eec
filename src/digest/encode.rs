//! Byte-level helpers for the mail the digest writes: the RFC 5322 date,
//! RFC 2047 encoded-words for header text, the choice of a transfer
//! encoding for a text part (7bit, 8bit or quoted-printable), CRLF line
//! ends, and the search for a boundary string inside the parts.
//!
//! Pure functions; they trust nothing about the text they are given.

use base64::Engine;

/// `Mon, 03 Jun 2024 06:00:00 +0000` for `now` (UTC).
pub fn rfc5322_date(now: i64) -> String {
    super::schedule::utc(now)
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// Header text as is when it is printable ASCII, else one or more RFC 2047
/// `=?utf-8?b?...?=` words (each under 75 characters, split on char
/// boundaries), separated by a folding space.
pub fn encode_header_text(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        // 45 bytes of UTF-8 make 60 base64 characters: 72 with the wrapper.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        if c == '\r' || c == '\n' {
            chunk.push(' ');
        } else {
            chunk.push(c);
        }
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// Rewrites every line end (`\n`, `\r\n` or a lone `\r`) as `eol`.
fn line_ends(text: &str, eol: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len() + b.len() / 32);
    let mut start = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &b[start..]) {
        let i = start + off;
        // `i` is an ASCII byte, so both slices fall on char boundaries
        out.push_str(&text[start..i]);
        out.push_str(eol);
        start = if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i + 2
        } else {
            i + 1
        };
    }
    out.push_str(&text[start..]);
    out
}

/// Turns any mix of `\n`, `\r\n` and lone `\r` line ends into CRLF.
pub fn crlf(text: &str) -> String {
    line_ends(text, "\r\n")
}

/// Turns any mix of `\n`, `\r\n` and lone `\r` line ends into `\n`.
pub fn lf(text: &str) -> String {
    line_ends(text, "\n")
}

/// Whether any line of `b` (without its line end) is longer than `max`.
pub fn has_long_line(b: &[u8], max: usize) -> bool {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', b) {
        let end = if nl > start && b[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if end - start > max {
            return true;
        }
        start = nl + 1;
    }
    b.len() - start > max
}

/// A text body ready to go under its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    /// `7bit`, `8bit` or `quoted-printable`.
    pub cte: &'static str,
    /// `us-ascii` or `utf-8`.
    pub charset: &'static str,
    /// CRLF line ends.
    pub body: Vec<u8>,
}

/// Longest line SMTP carries (RFC 5321 §4.5.3.1.6, without the CRLF).
pub const MAX_LINE: usize = 998;

/// Picks the transfer encoding for a text body (given with CRLF line ends):
/// 7bit for short-lined ASCII, 8bit for short-lined UTF-8, and
/// quoted-printable when any line is longer than SMTP allows.
pub fn encode_text(text: &str) -> EncodedText {
    let ascii = text.is_ascii();
    let charset = if ascii { "us-ascii" } else { "utf-8" };
    let long = has_long_line(text.as_bytes(), MAX_LINE);
    if !long {
        return EncodedText {
            cte: if ascii { "7bit" } else { "8bit" },
            charset,
            body: text.as_bytes().to_vec(),
        };
    }
    EncodedText {
        cte: "quoted-printable",
        charset,
        body: quoted_printable(text).into_bytes(),
    }
}

/// RFC 2045 §6.7 quoted-printable of a CRLF text: line breaks stay hard
/// breaks, lines are cut with soft breaks at 76 characters, and `=`,
/// control bytes, non-ASCII bytes and trailing white space are escaped.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let lines: Vec<&str> = text.split("\r\n").collect();
    for (i, line) in lines.iter().enumerate() {
        let bytes = line.as_bytes();
        let mut col = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece_len = if plain { 1 } else { 3 };
            // keep room for the soft break `=`
            if col + piece_len > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            if plain {
                out.push(b as char);
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            col += piece_len;
        }
        if i + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    out
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
    fn header_text_encodes_only_when_needed() {
        assert_eq!(encode_header_text("Plain text"), "Plain text");
        let e = encode_header_text("Grüße aus Köln");
        assert_eq!(e, "=?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=");
        let long = "ü".repeat(40);
        let e = encode_header_text(&long);
        assert!(e.lines().all(|l| l.trim_end().len() <= 76), "{e}");
        let raw = format!("Subject: {e}\r\n\r\nx");
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some(long.as_str()));
    }

    #[test]
    fn line_ends_normalise() {
        assert_eq!(crlf("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd");
        assert_eq!(crlf("ü\r\r\n\n"), "ü\r\n\r\n\r\n");
        assert_eq!(lf("a\r\nb\rc\n"), "a\nb\nc\n");
        assert_eq!(lf(""), "");
    }

    #[test]
    fn long_lines_are_found() {
        assert!(!has_long_line(b"abc\r\nde", 3));
        assert!(has_long_line(b"abcd\r\nde", 3));
        assert!(has_long_line(b"ab\nabcd", 3));
        assert!(!has_long_line(b"", 0));
    }

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
    fn qp_escapes_equals_and_trailing_space() {
        assert_eq!(quoted_printable("a=b \r\nc\t"), "a=3Db=20\r\nc=09");
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
