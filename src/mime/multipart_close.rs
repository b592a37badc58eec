//! The close delimiters a message's multiparts lack, so that it can be
//! enclosed in (or extended by) another multipart without swallowing what
//! follows it.
//!
//! A nested multipart whose close delimiter (`--BOUNDARY--`) never comes is
//! not ended by the enclosing boundary in every reader: mail-parser looks
//! only for the innermost boundary and reads everything after the message
//! (the next digest post, a footer part, the enclosing close delimiter) as
//! its last part. Appending the missing close delimiters, innermost first,
//! at the end of the message makes every reader end it there.
//!
//! Which multiparts are open is read from mail-parser's own parse (its
//! boundaries, its part offsets), so the repair closes exactly what that
//! reader left open; a close delimiter must also start a line, as RFC 2046
//! readers require. Trusts nothing in the message: any bytes, any parse,
//! never panics.

use mail_parser::{Encoding, Message, MessageParser, MimeHeaders, PartType};

/// The bytes to append to `raw` so that every multipart in it is closed
/// (see [`missing_closes_parsed`]); `raw` is parsed here.
pub fn missing_closes(raw: &[u8], follows: &dyn Fn(&[u8]) -> bool) -> Vec<u8> {
    missing_closes_parsed(raw, MessageParser::default().parse(raw).as_ref(), follows)
}

/// The bytes to append to `raw` so that no multipart in it is left open:
/// `eol--BOUNDARY--eol` for each open one, innermost first; empty when all
/// are closed (a well-formed message stays byte-identical). `parsed` must
/// be mail-parser's parse of exactly `raw`, with its MIME headers.
///
/// A multipart whose first delimiter never comes (mail-parser reads its
/// body as text) is open too when its body runs to the end of the message
/// and `follows(b"--BOUNDARY")` says the bytes that will follow the message
/// may hold that delimiter: mail-parser seeks it past the message's end.
/// It gets a delimiter, an empty part and its close delimiter.
pub fn missing_closes_parsed(
    raw: &[u8],
    parsed: Option<&Message<'_>>,
    follows: &dyn Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let mut open = Vec::new();
    if let Some(m) = parsed {
        collect_open(raw, m, &mut open, 0);
    }
    // the innermost last: a multipart read as text can only be a leaf
    let unopened = parsed
        .and_then(|m| last_leaf(raw, m, 0))
        .filter(|b| follows(&delimiter(b.as_bytes())));
    if open.is_empty() && unopened.is_none() {
        return Vec::new();
    }
    let eol: &[u8] = if line_end_is_lf(raw) { b"\n" } else { b"\r\n" };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    if let Some(b) = unopened {
        lines.push(delimiter(b.as_bytes()));
        lines.push([&delimiter(b.as_bytes())[..], b"--"].concat());
    }
    for b in open.iter().rev() {
        lines.push([&delimiter(b.as_bytes())[..], b"--"].concat());
    }
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // the line end before a delimiter belongs to it: after a final lone
        // CR a bare LF would take that CR along, so that one is a CRLF
        if i == 0 && raw.ends_with(b"\r") {
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(line);
        out.extend_from_slice(eol);
    }
    // a message that stops inside a part's header section (mail-parser
    // reads a line that is no field as part of it) needs an empty line
    // first, or the delimiters are read as header lines
    if !out.is_empty() && !raw.ends_with(b"\n") {
        let fixed = [raw, &out].concat();
        let mut still = Vec::new();
        if let Some(m) = MessageParser::default().parse(&fixed) {
            collect_open(&fixed, &m, &mut still, 0);
        }
        if !still.is_empty() {
            out.splice(0..0, eol.iter().copied());
        }
    }
    out
}

/// `--boundary`.
fn delimiter(boundary: &[u8]) -> Vec<u8> {
    [&b"--"[..], boundary].concat()
}

/// The boundary of a multipart that mail-parser read as text (its first
/// delimiter never came) and whose body runs to the end of `raw`.
fn last_leaf<'m>(raw: &[u8], m: &'m Message<'_>, depth: usize) -> Option<&'m str> {
    if depth > MAX_DEPTH {
        return None;
    }
    m.parts.iter().rev().find_map(|part| match &part.body {
        PartType::Multipart(_) => None,
        PartType::Message(nested) if part.encoding == Encoding::None => {
            last_leaf(raw, nested, depth + 1)
        }
        _ if part.offset_end as usize >= raw.len() => part
            .content_type()
            .filter(|c| c.ctype().eq_ignore_ascii_case("multipart"))
            .and_then(|c| c.attribute("boundary"))
            .filter(|b| !b.is_empty()),
        _ => None,
    })
}

/// Nested messages are followed at most this deep (mail-parser's own parse
/// is bounded; this keeps the walk bounded whatever it returns).
const MAX_DEPTH: usize = 64;

/// Whether the message's first line ends in a bare LF (as
/// `header_block::split` decides its line end).
fn line_end_is_lf(raw: &[u8]) -> bool {
    matches!(memchr::memchr(b'\n', raw), Some(i) if i == 0 || raw[i - 1] != b'\r')
}

/// Pushes the boundary of every open multipart in `m`, outermost first.
fn collect_open(raw: &[u8], m: &Message<'_>, open: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for part in &m.parts {
        match &part.body {
            PartType::Multipart(kids) => {
                let Some(boundary) = part.content_type().and_then(|c| c.attribute("boundary"))
                else {
                    continue;
                };
                // where the last child ended: the first `--BOUNDARY` after it
                // is where mail-parser ended that child. With no child at all
                // mail-parser never got past the first part's header section
                // (even when the delimiter that opened it reads `--B--`)
                let from = kids
                    .last()
                    .and_then(|&k| m.parts.get(k as usize))
                    .map(|k| k.offset_end as usize);
                if !from.is_some_and(|f| is_closed_from(raw, f, boundary.as_bytes())) {
                    open.push(boundary.to_string());
                }
            }
            // a message/rfc822 part read in place (not transfer-encoded):
            // its parts have offsets into the same bytes
            PartType::Message(nested) if part.encoding == Encoding::None => {
                collect_open(raw, nested, open, depth + 1)
            }
            _ => {}
        }
    }
}

/// Whether the first `--boundary` at or after `from` is a close delimiter
/// (`--boundary--`) starting a line.
fn is_closed_from(raw: &[u8], from: usize, boundary: &[u8]) -> bool {
    if boundary.is_empty() {
        return true; // mail-parser never opens a multipart without a boundary
    }
    let Some(rest) = raw.get(from..) else {
        return false;
    };
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let Some(i) = memchr::memmem::find(rest, &delim) else {
        return false;
    };
    let at = from + i;
    let starts_line = at == 0 || raw[at - 1] == b'\n';
    starts_line && raw[at + delim.len()..].starts_with(b"--")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "From: a@example.org\r\nMIME-Version: 1.0\r\n";

    fn closes(m: &str) -> String {
        String::from_utf8(missing_closes(m.as_bytes(), &|_| true)).unwrap()
    }

    #[test]
    fn well_formed_messages_need_nothing() {
        for m in [
            format!("{HEAD}Subject: plain\r\n\r\nno parts\r\n"),
            format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"),
            format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--a--\r\n--b--\r\nepilogue"),
            String::new(),
        ] {
            assert_eq!(closes(&m), "", "{m}");
        }
    }

    #[test]
    fn open_multiparts_are_closed_innermost_first_with_the_message_s_line_ends() {
        let m = format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n");
        assert_eq!(closes(&m), "\r\n--b--\r\n");
        // the outer one closed, the inner one not: both are open to mail-parser
        // (the outer close is read as part of the inner's last part)
        let m = format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--b--\r\n");
        assert_eq!(closes(&m), "\r\n--a--\r\n\r\n--b--\r\n");
        let lf = m.replace("\r\n", "\n");
        assert_eq!(closes(&lf), "\n--a--\n\n--b--\n");
        // a delimiter without the closing `--` at the very end: its part
        // gets an empty header section
        let m =
            format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b");
        assert_eq!(closes(&m), "\r\n\r\n--b--\r\n");
        // a close delimiter inside a line is none to an RFC 2046 reader
        let m = format!(
            "{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx --b--\r\n"
        );
        assert_eq!(closes(&m), "\r\n--b--\r\n");
        // a final lone CR keeps its own line end
        let m = format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r");
        assert_eq!(closes(&m), "\r\n--b--\r\n");
    }

    #[test]
    fn a_repaired_message_reads_the_same_and_ends_where_its_bytes_end() {
        let m = format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nx\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n");
        let mut fixed = m.clone().into_bytes();
        fixed.extend_from_slice(&missing_closes(m.as_bytes(), &|_| true));
        assert_eq!(missing_closes(&fixed, &|_| true), b"");
        // enclosed in a multipart with a part after it: unrepaired, the post
        // swallows that part; repaired, it ends where its bytes end
        let enclose = |post: &[u8]| {
            let mut o = b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n".to_vec();
            o.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
            o.extend_from_slice(post);
            o.extend_from_slice(b"\r\n--o\r\nContent-Type: text/plain\r\n\r\nafter\r\n--o--\r\n");
            o
        };
        let kids = |raw: &[u8]| {
            let p = MessageParser::default().parse(raw).unwrap();
            match &p.parts[0].body {
                PartType::Multipart(k) => k.len(),
                _ => 0,
            }
        };
        assert_eq!(kids(&enclose(m.as_bytes())), 1, "the bug this repairs");
        let outer = enclose(&fixed);
        assert_eq!(kids(&outer), 2);
        let p = MessageParser::default().parse(&outer).unwrap();
        let PartType::Multipart(k) = &p.parts[0].body else {
            panic!("not multipart");
        };
        let PartType::Message(post) = &p.parts[k[0] as usize].body else {
            panic!("not a message");
        };
        assert_eq!(post.body_html(0).as_deref(), Some("<p>x</p>\r\n"));
        assert_eq!(p.parts[k[1] as usize].text_contents(), Some("after"));
    }

    #[test]
    fn a_multipart_without_a_delimiter_is_opened_only_when_what_follows_has_one() {
        // mail-parser reads its body as text, and seeks its first delimiter
        // past the message's end: in the next digest post, say
        let m = format!(
            "{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\r\nno delimiter\r\n"
        );
        assert_eq!(missing_closes(m.as_bytes(), &|_| false), b"");
        let asked = std::cell::RefCell::new(Vec::new());
        let follows = |d: &[u8]| {
            asked.borrow_mut().push(d.to_vec());
            true
        };
        assert_eq!(
            missing_closes(m.as_bytes(), &follows),
            b"\r\n--q\r\n\r\n--q--\r\n"
        );
        assert_eq!(asked.into_inner(), vec![b"--q".to_vec()]);
        // in an open multipart: innermost first
        let m = format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/related; boundary=r\r\n\r\ntext\n");
        assert_eq!(closes(&m), "\r\n--r\r\n\r\n--r--\r\n\r\n--b--\r\n");
        // one that is not last is followed by the rest of the message
        let m = format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/related; boundary=r\r\n\r\ntext\r\n--b--\r\n");
        assert_eq!(closes(&m), "");
        // repaired, the multipart reads as one (empty part) and ends there
        for m in [
            format!("{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\r\nx\r\n"),
            format!("{HEAD}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/related; boundary=r\r\n\r\ntext"),
        ] {
            let mut fixed = m.clone().into_bytes();
            fixed.extend_from_slice(&missing_closes(m.as_bytes(), &|_| true));
            assert_eq!(missing_closes(&fixed, &|_| true), b"", "{m}");
        }
    }

    /// Found by the digest fuzzer: mail-parser read the close delimiter
    /// after an unended part header section as one more header line.
    #[test]
    fn a_message_ending_in_a_part_header_section_gets_an_empty_line() {
        let m = format!("{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/html\r\n<p>x</p>");
        assert_eq!(closes(&m), "\r\n\r\n--q--\r\n");
        // ending in a line end, the first line end of the repair is that empty line
        let m = format!("{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/html\r\n--q--\r\n");
        assert_eq!(closes(&m), "\r\n--q--\r\n");
        for m in [&m[..], &m[..m.len() - 9]] {
            let mut fixed = m.as_bytes().to_vec();
            fixed.extend_from_slice(&missing_closes(m.as_bytes(), &|_| true));
            assert_eq!(missing_closes(&fixed, &|_| true), b"", "{m}");
        }
    }

    /// Found by the fuzzers: a multipart whose only delimiter is its close
    /// delimiter is opened there by mail-parser, and left open.
    #[test]
    fn a_multipart_opened_by_its_close_delimiter_is_open() {
        let m = format!(
            "{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\r\n--x\r\n--q--\r\n"
        );
        assert_eq!(closes(&m), "\r\n--q--\r\n");
        // and a header section that never ends before it
        let m = format!("{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\x05\n\x01");
        assert_eq!(closes(&m), "\r\n\r\n--q\r\n\r\n--q--\r\n");
        for m in [
            format!(
                "{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\r\n--x\r\n--q--\r\n"
            ),
            format!("{HEAD}Content-Type: multipart/alternative; boundary=q\r\n\x05\n\x01"),
        ] {
            let mut fixed = m.clone().into_bytes();
            fixed.extend_from_slice(&missing_closes(m.as_bytes(), &|_| true));
            assert_eq!(missing_closes(&fixed, &|_| true), b"", "{m}");
        }
    }

    #[test]
    fn messages_nested_in_place_are_walked() {
        // a digest whose enclosed post never closes its own multipart
        let m = "Content-Type: multipart/digest; boundary=b\r\n\r\n--b\r\n\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nx\r\n";
        assert_eq!(closes(m), "\r\n--c--\r\n\r\n--b--\r\n");
        let mut fixed = m.as_bytes().to_vec();
        fixed.extend_from_slice(&missing_closes(m.as_bytes(), &|_| true));
        assert_eq!(missing_closes(&fixed, &|_| true), b"");
    }

    #[test]
    fn hostile_input_never_panics() {
        for m in [
            &b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n----\r\n"[..],
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--",
            b"\xff\xfe: \x00\r\n\r\n--",
        ] {
            let _ = missing_closes(m, &|_| true);
        }
        let _ = missing_closes_parsed(b"x", None, &|_| true);
    }
}
