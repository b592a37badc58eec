//! The 7-bit form of a message, for a relay that does not offer 8BITMIME
//! (RFC 6152 §3: such a server must not be sent 8-bit data; the client
//! converts it). Each leaf part whose body holds 8-bit bytes under `7bit`,
//! `8bit`, `binary` or no Content-Transfer-Encoding is re-encoded: text as
//! quoted-printable, anything else as base64; an enclosed message is
//! converted the same way, and an `8bit`/`binary` label on a multipart or an
//! enclosed message becomes `7bit`. UTF-8 text in an unstructured field
//! (Subject, Comments, Content-Description) becomes RFC 2047 encoded words.
//! Every other byte passes through.
//!
//! Trusts nothing: any bytes, any parse (read with mail-parser's offsets),
//! never panics. What it cannot convert (8-bit address fields or
//! parameters, a field in an unknown 8-bit charset, a preamble) is left as
//! it is: the caller checks whether the result is all ASCII.

use super::header_block::{fold, split, unfold_text, Rewrite};
use super::{encoded_word, qp, transfer};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use std::borrow::Cow;

/// How deep enclosed messages are followed.
const MAX_DEPTH: usize = 8;

/// `raw` with every 8-bit body re-encoded in 7 bits; `raw` itself when it
/// is already ASCII or does not parse.
pub fn to_seven_bit(raw: &[u8]) -> Cow<'_, [u8]> {
    convert(raw, 0)
}

fn convert(raw: &[u8], depth: usize) -> Cow<'_, [u8]> {
    if raw.is_ascii() || depth > MAX_DEPTH {
        return Cow::Borrowed(raw);
    }
    let Some(m) = MessageParser::default().parse(raw) else {
        return Cow::Borrowed(raw);
    };
    let edits = edits(&m, raw, depth);
    if edits.is_empty() {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 4);
    let mut pos = 0;
    for (start, end, bytes) in edits {
        if start < pos || end > raw.len() || start > end {
            continue; // overlapping or out of range: leave that part alone
        }
        out.extend_from_slice(&raw[pos..start]);
        out.extend_from_slice(&bytes);
        pos = end;
    }
    out.extend_from_slice(&raw[pos..]);
    Cow::Owned(out)
}

/// Whether a Content-Transfer-Encoding lets the body hold raw bytes
/// (absent means 7bit, which 8-bit bytes break all the same).
fn carries_raw(cte: Option<&str>) -> bool {
    match cte.map(|c| c.trim().to_ascii_lowercase()) {
        None => true,
        Some(c) => matches!(c.as_str(), "7bit" | "8bit" | "binary"),
    }
}

/// The replacements, as (start, end, bytes) in `raw`, sorted by start.
fn edits(m: &Message<'_>, raw: &[u8], depth: usize) -> Vec<(usize, usize, Vec<u8>)> {
    let mut out = Vec::new();
    for part in &m.parts {
        let (h, b, e) = (
            part.raw_header_offset() as usize,
            part.raw_body_offset() as usize,
            part.raw_end_offset() as usize,
        );
        if h > b || b > e || e > raw.len() {
            continue;
        }
        let cte = part.content_transfer_encoding();
        let header = &raw[h..b];
        let body = &raw[b..e];
        let eol = eol_of(header);
        // the new label and body, if they change
        let (label, new_body): (Option<&str>, Option<Vec<u8>>) = match &part.body {
            _ if !carries_raw(cte) => (None, None),
            PartType::Multipart(_) => {
                let relabel = cte.is_some_and(|c| !c.trim().eq_ignore_ascii_case("7bit"));
                (relabel.then_some("7bit"), None)
            }
            PartType::Message(_) => match convert(body, depth + 1) {
                Cow::Owned(inner) => (Some("7bit"), Some(inner)),
                Cow::Borrowed(_) => (None, None),
            },
            _ if body.is_ascii() => (None, None),
            PartType::Text(_) | PartType::Html(_) => {
                let encoded = qp::encode(body, eol);
                if soft_breaks_safe(&encoded) {
                    (Some("quoted-printable"), Some(encoded))
                } else {
                    (
                        Some("base64"),
                        Some(transfer::base64_encode_lines(body, eol)),
                    )
                }
            }
            PartType::Binary(_) | PartType::InlineBinary(_) => (
                Some("base64"),
                Some(transfer::base64_encode_lines(body, eol)),
            ),
        };
        let new_header = rewrite_header(header, label);
        match (new_header, new_body) {
            (None, None) => {}
            (Some(nh), None) => out.push((h, b, nh)),
            (nh, Some(nb)) => {
                let nh = nh.unwrap_or_else(|| header.to_vec());
                out.push((h, e, [nh, nb].concat()));
            }
        }
    }
    out.sort_by_key(|(s, _, _)| *s);
    out
}

/// Whether quoted-printable text can stand inside a multipart: no soft
/// line break may start a line with `--`, which could read as a boundary
/// (the original line did not start there). Such text goes as base64,
/// whose alphabet has no `-`.
fn soft_breaks_safe(encoded: &[u8]) -> bool {
    let mut after_soft_break = false;
    for line in encoded.split(|&c| c == b'\n') {
        if after_soft_break && line.starts_with(b"--") {
            return false;
        }
        // `=` ends a line only as a soft break (a literal `=` is `=3D`)
        after_soft_break = line.strip_suffix(b"\r").unwrap_or(line).ends_with(b"=");
    }
    true
}

fn eol_of(header: &[u8]) -> &'static str {
    split(header).eol
}

/// Unstructured fields whose 8-bit text is written as RFC 2047 encoded
/// words (address fields and parameters are left as they are).
const UNSTRUCTURED: [&str; 3] = ["Subject", "Comments", "Content-Description"];

/// The header block `header` (ended by its empty line) with its
/// Content-Transfer-Encoding set to `cte` (if given) and its unstructured
/// UTF-8 fields as encoded words; `None` when nothing changes.
fn rewrite_header(header: &[u8], cte: Option<&str>) -> Option<Vec<u8>> {
    let s = split(header);
    let mut rw = Rewrite::new();
    if let Some(cte) = cte {
        let mut found = s.find(header, "Content-Transfer-Encoding");
        match found.next() {
            Some(i) => rw.replace(i, "Content-Transfer-Encoding", cte.as_bytes(), s.eol),
            None => rw.append("Content-Transfer-Encoding", cte.as_bytes(), s.eol),
        }
        let rest: Vec<usize> = found.collect();
        for i in rest {
            rw.remove(i);
        }
    }
    for name in UNSTRUCTURED {
        let found: Vec<usize> = s.find(header, name).collect();
        for i in found {
            let raw = &header[s.fields[i].value.clone()];
            if raw.is_ascii() {
                continue;
            }
            // raw bytes in another charset cannot be named: left as they are
            let Ok(text) = std::str::from_utf8(raw) else {
                continue;
            };
            let text = unfold_text(text.as_bytes());
            let words = encoded_word::encode(text.trim(), name.len() + 2);
            rw.replace(i, name, &fold(words.as_bytes(), name.len(), s.eol), s.eol);
        }
    }
    if rw.is_empty() {
        return None;
    }
    let mut out = rw.header_bytes(&s, header);
    out.extend_from_slice(s.eol.as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Message<'_> {
        MessageParser::default().parse(b).unwrap()
    }

    #[test]
    fn ascii_and_unparsable_pass_through() {
        let m = b"Subject: x\r\n\r\nplain\r\n";
        assert!(matches!(to_seven_bit(m), Cow::Borrowed(_)));
        assert!(matches!(to_seven_bit(b""), Cow::Borrowed(_)));
    }

    #[test]
    fn a_one_part_text_becomes_quoted_printable() {
        let m = "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nh\u{e9}llo = w\u{f6}rld\r\n.dot\r\n";
        let out = to_seven_bit(m.as_bytes());
        assert!(out.is_ascii(), "{}", String::from_utf8_lossy(&out));
        let p = parse(&out);
        assert_eq!(
            p.parts[0].content_transfer_encoding(),
            Some("quoted-printable")
        );
        assert_eq!(
            p.body_text(0).unwrap(),
            "h\u{e9}llo = w\u{f6}rld\r\n.dot\r\n"
        );
        assert_eq!(p.subject(), Some("x"));
    }

    #[test]
    fn multipart_parts_keep_their_contents() {
        let bin: Vec<u8> = (0u8..=255).collect();
        let mut m = b"Subject: y\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\npre\r\n--b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
        m.extend_from_slice(&bin);
        m.extend_from_slice(b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nascii\r\n--b1--\r\n");
        let before = parse(&m);
        let leaves_before = crate::mime::leaves::leaves(&before);
        let out = to_seven_bit(&m);
        assert!(out.is_ascii(), "{}", String::from_utf8_lossy(&out));
        let after = parse(&out);
        assert_eq!(crate::mime::leaves::leaves(&after), leaves_before);
        assert_eq!(after.body_text(0).unwrap(), "caf\u{e9}");
        let s = String::from_utf8_lossy(&out);
        assert!(
            s.contains("Content-Transfer-Encoding: 7bit\r\n\r\npre"),
            "{s}"
        );
        assert!(s.contains("\r\n--b1\r\nContent-Type: text/plain\r\n\r\nascii\r\n--b1--"));
    }

    #[test]
    fn a_soft_break_never_makes_a_boundary() {
        // wherever the soft break falls, the outer boundary `--zz` (text
        // in the inner multipart's part: mail-parser looks only for the
        // innermost boundary, as strict readers would not) never starts a line
        for pad in 60..80 {
            let m = format!(
                "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\u{e9}{}--zz--\r\nend\r\n--in--\r\n--zz--\r\n",
                "x".repeat(pad)
            );
            let before = crate::mime::leaves::leaves(&parse(m.as_bytes()));
            let out = to_seven_bit(m.as_bytes());
            assert!(out.is_ascii());
            let after = crate::mime::leaves::leaves(&parse(&out));
            assert_eq!(after, before, "pad {pad}");
            // a strict reader (RFC 2046) sees delimiters only at line starts
            let delimiters = |b: &[u8]| {
                b.split(|&c| c == b'\n')
                    .filter(|l| l.starts_with(b"--zz"))
                    .count()
            };
            assert_eq!(delimiters(&out), delimiters(m.as_bytes()), "pad {pad}");
        }
        assert!(soft_breaks_safe(b"a=\r\n-b\r\n--c\r\n"));
        assert!(!soft_breaks_safe(b"a=\r\n--zz\r\n"));
    }

    #[test]
    fn an_enclosed_message_is_converted_inside() {
        let m = "Subject: z\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSubject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\u{fc}ber\r\n--b--\r\n";
        let out = to_seven_bit(m.as_bytes());
        assert!(out.is_ascii(), "{}", String::from_utf8_lossy(&out));
        let after = parse(&out);
        let inner = after.attachment(0).and_then(|a| a.message()).unwrap();
        assert_eq!(inner.body_text(0).unwrap(), "\u{fc}ber");
        assert_eq!(inner.subject(), Some("inner"));
    }

    #[test]
    fn unstructured_fields_become_encoded_words_and_the_rest_stays() {
        let long = "\u{e9}t\u{e9} ".repeat(20);
        let m = format!("From: Jos\u{e9} <j@example.org>\r\nSubject: {long}\r\nComments: caf\u{e9}\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nd=C3=A9j=C3=A0\r\n");
        let out = to_seven_bit(m.as_bytes());
        let p = parse(&out);
        assert_eq!(p.subject(), Some(long.trim()));
        assert_eq!(
            p.header_raw("Comments")
                .map(str::trim)
                .map(|c| c.starts_with("=?utf-8?")),
            Some(true)
        );
        let s = split(&out);
        assert!(s.raw_values(&out, "Subject").iter().all(|v| v.is_ascii()));
        assert!(out.split(|&c| c == b'\n').all(|l| l.len() <= 78), "folded");
        // the address field stays 8-bit: the caller sees the result is not ASCII
        assert!(!out.is_ascii());
        assert!(out.starts_with("From: Jos\u{e9} <j@example.org>\r\n".as_bytes()));
        assert!(out.ends_with(b"\r\n\r\nd=C3=A9j=C3=A0\r\n"));
        // an unknown 8-bit charset cannot be named: left alone
        let m = b"Subject: caf\xe9\r\n\r\nbody\r\n";
        assert!(matches!(to_seven_bit(m), Cow::Borrowed(_)));
    }
}
