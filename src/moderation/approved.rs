//! Pre-approval: an `Approved: PASSWORD` header, or an `Approved: PASSWORD`
//! first line in the first text/plain part, lets a post skip the posting
//! rules when PASSWORD matches the list's argon2 `moderator_password`.
//!
//! Mailman-compatible: the header names `Approved`, `Approve`, `X-Approved`
//! and `X-Approve` are recognised; the header (or the body line) is removed
//! before distribution, and so is the same `Approved: PASSWORD` text in every
//! other text/* part (the HTML twin of a multipart/alternative), matched with
//! `&nbsp;` as well as whitespace after the colon.
//!
//! Trusts nothing in the message: it is parsed with mail-parser and edited
//! only by splicing byte ranges. A part that is edited is re-encoded in its
//! own transfer encoding; everything else stays byte-identical.

use crate::config::ListConfig;
use crate::mime::{header_block, lines, qp, transfer};
use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};

/// The result of the pre-approval check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preapproval {
    /// No `Approved:` header or first body line.
    None,
    /// The password matched: the post with the line removed, ready for distribution.
    Approved(Vec<u8>),
    /// An `Approved:` line with a wrong password (or a list without a moderator
    /// password): hold with `HoldReason::BadApprovedPassword`.
    BadPassword,
    /// An `Approved:` line while the list's check is locked (`lockout`): the
    /// password was not tried; the post with the line removed, to be
    /// handled as if it had none.
    Ignored(Vec<u8>),
}

/// Header names that carry a pre-approval password (compared case-insensitively).
pub const HEADERS: &[&str] = &["approved", "approve", "x-approved", "x-approve"];

/// Checks a post for a pre-approval password; with `locked` no password
/// is tried (no argon2 run). Never fails: a message that cannot be parsed
/// has no usable `Approved:` line.
pub fn preapproval(list: &ListConfig, bytes: &[u8], locked: bool) -> Preapproval {
    let Some(found) = find(bytes) else {
        return Preapproval::None;
    };
    if locked {
        return Preapproval::Ignored(strip(bytes, &found));
    }
    let ok = list
        .moderator_password
        .as_deref()
        .is_some_and(|hash| verify_password(hash, &found.password));
    if ok {
        Preapproval::Approved(strip(bytes, &found))
    } else {
        Preapproval::BadPassword
    }
}

/// Removes any `Approved:` header, and with `body_line` also an `Approved:`
/// first body line and its twins, whatever the password. Used when a
/// moderator releases a held post so that no password attempt is ever
/// distributed.
pub fn strip_any(bytes: &[u8], body_line: bool) -> Vec<u8> {
    let mut out = bytes.to_vec();
    // Several Approved headers: remove them one after another.
    for _ in 0..16 {
        match find_header(&out) {
            Some(f) => out = strip(&out, &f),
            None => break,
        }
    }
    if body_line {
        if let Some(f) = find_body_line(&out) {
            out = strip(&out, &f);
        }
    }
    out
}

pub use crate::password::{hash_password, verify_password};

/// Where the password was found.
#[derive(Debug, Clone)]
struct Found {
    password: String,
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    /// Raw byte range of the header field (with its folded lines and line end).
    Header(std::ops::Range<usize>),
    /// The first non-blank line of a text/plain part.
    BodyLine {
        /// The header name as written in the line (for the twin pattern).
        name: String,
    },
}

fn find(bytes: &[u8]) -> Option<Found> {
    find_header(bytes).or_else(|| find_body_line(bytes))
}

/// The first `Approved:`-like field of the header block, as
/// `mime::header_block` splits it (the parser every other path uses).
fn find_header(bytes: &[u8]) -> Option<Found> {
    let split = header_block::split(bytes);
    let f = split.fields.iter().find(|f| {
        let name = &bytes[f.name.clone()];
        HEADERS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
    })?;
    Some(Found {
        password: header_block::unfold_text(&bytes[f.value.clone()]),
        place: Place::Header(f.start..f.end),
    })
}

/// A leaf part's body: raw byte range, transfer encoding, decoded bytes.
struct Leaf {
    range: std::ops::Range<usize>,
    encoding: Encoding,
    decoded: Vec<u8>,
    is_plain: bool,
}

/// The text/* leaf parts of the top-level message, in document order.
fn text_leaves(bytes: &[u8]) -> Vec<Leaf> {
    let Some(msg) = MessageParser::default().parse(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in &msg.parts {
        if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
            continue;
        }
        let (ctype, subtype) = match part.content_type() {
            Some(ct) => (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or("plain").to_ascii_lowercase(),
            ),
            None => ("text".to_string(), "plain".to_string()),
        };
        if ctype != "text" {
            continue;
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        if start > end || end > bytes.len() {
            continue;
        }
        let raw = &bytes[start..end];
        let decoded = match part.encoding {
            Encoding::None => Some(raw.to_vec()),
            Encoding::QuotedPrintable => {
                mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)
            }
            Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw),
        };
        let Some(decoded) = decoded else { continue };
        out.push(Leaf {
            range: start..end,
            encoding: part.encoding,
            decoded,
            is_plain: subtype == "plain",
        });
    }
    out
}

/// The first non-blank line of `text`: (start, end including terminator).
fn first_line(text: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < text.len() {
        let end = lines::line_end(text, i).1;
        if !text[i..end].iter().all(u8::is_ascii_whitespace) {
            return Some((i, end));
        }
        i = end;
    }
    None
}

fn find_body_line(bytes: &[u8]) -> Option<Found> {
    let leaves = text_leaves(bytes);
    let plain = leaves.iter().find(|l| l.is_plain)?;
    let (s, e) = first_line(&plain.decoded)?;
    let line = String::from_utf8_lossy(&plain.decoded[s..e]);
    let (name, value) = line.split_once(':')?;
    let name = name.trim_start();
    if !HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return None;
    }
    Some(Found {
        password: value.trim().to_string(),
        place: Place::BodyLine {
            name: name.to_string(),
        },
    })
}

fn strip(bytes: &[u8], found: &Found) -> Vec<u8> {
    match &found.place {
        Place::Header(r) => {
            let mut out = Vec::with_capacity(bytes.len());
            out.extend_from_slice(&bytes[..r.start]);
            out.extend_from_slice(&bytes[r.end..]);
            out
        }
        Place::BodyLine { name } => {
            let eol = header_block::split(bytes).eol;
            let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
            let leaves = text_leaves(bytes);
            let mut first_plain_done = false;
            for leaf in &leaves {
                let new = if leaf.is_plain && !first_plain_done {
                    first_plain_done = true;
                    let Some((s, e)) = first_line(&leaf.decoded) else {
                        continue;
                    };
                    let mut d = leaf.decoded[..s].to_vec();
                    d.extend_from_slice(&leaf.decoded[e..]);
                    d
                } else {
                    match remove_twin(&leaf.decoded, name, &found.password) {
                        Some(d) => d,
                        None => continue,
                    }
                };
                edits.push((leaf.range.clone(), encode(&new, leaf.encoding, eol)));
            }
            let mut out = bytes.to_vec();
            edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
            for (r, new) in edits {
                out.splice(r, new);
            }
            out
        }
    }
}

/// Removes every `NAME:(\s|&nbsp;)*PASSWORD` from `text` (NAME compared
/// case-insensitively); `None` if there was none.
fn remove_twin(text: &[u8], name: &str, password: &str) -> Option<Vec<u8>> {
    let name = name.as_bytes();
    let pw = password.as_bytes();
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    let mut changed = false;
    while i < text.len() {
        if let Some(len) = twin_at(&text[i..], name, pw) {
            i += len;
            changed = true;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    changed.then_some(out)
}

/// Length of a twin match at the start of `s`, if any.
fn twin_at(s: &[u8], name: &[u8], pw: &[u8]) -> Option<usize> {
    if s.len() < name.len() + 1 || !s[..name.len()].eq_ignore_ascii_case(name) {
        return None;
    }
    let mut i = name.len();
    if s[i] != b':' {
        return None;
    }
    i += 1;
    loop {
        if i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        } else if s[i..].starts_with(b"&nbsp;") {
            i += 6;
        } else {
            break;
        }
    }
    if pw.is_empty() || !s[i..].starts_with(pw) {
        return None;
    }
    Some(i + pw.len())
}

/// Encodes a part body in the transfer encoding it came in, lines ending in `eol`.
fn encode(decoded: &[u8], encoding: Encoding, eol: &str) -> Vec<u8> {
    match encoding {
        Encoding::None => decoded.to_vec(),
        Encoding::QuotedPrintable => qp::encode(decoded, eol),
        Encoding::Base64 => transfer::base64_encode_lines(decoded, eol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn list(password: Option<&str>) -> ListConfig {
        let mut l = ListConfig::parse(std::path::Path::new("dev.yaml"), "dev", "").unwrap();
        l.moderator_password = password.map(|p| hash_password(p).unwrap());
        l
    }

    fn body_text(bytes: &[u8], n: usize) -> String {
        MessageParser::default()
            .parse(bytes)
            .unwrap()
            .body_text(n)
            .unwrap()
            .into_owned()
    }

    #[test]
    fn hash_round_trip() {
        let h = hash_password("s3cret pass").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "s3cret pass"));
        assert!(!verify_password(&h, "s3cret"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn no_approved_line_is_none() {
        let l = list(Some("pw"));
        let m = b"From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n";
        assert_eq!(preapproval(&l, m, false), Preapproval::None);
        assert_eq!(preapproval(&l, b"", false), Preapproval::None);
        assert_eq!(
            preapproval(&l, b"\xff\xfe garbage", false),
            Preapproval::None
        );
    }

    #[test]
    fn header_good_is_removed_rest_byte_identical() {
        let l = list(Some("open sesame"));
        let m = b"From: a@example.org\r\nApproved: open sesame\r\nX-Odd:  keep   me\r\nSubject: hi\r\n\r\nHello\r\n";
        let Preapproval::Approved(out) = preapproval(&l, m, false) else {
            panic!("not approved")
        };
        assert_eq!(
            out,
            b"From: a@example.org\r\nX-Odd:  keep   me\r\nSubject: hi\r\n\r\nHello\r\n".to_vec()
        );
    }

    #[test]
    fn folded_header_and_other_names() {
        let l = list(Some("open sesame"));
        let m =
            b"From: a@example.org\r\nx-approve: open\r\n sesame\r\nSubject: hi\r\n\r\nHello\r\n";
        let Preapproval::Approved(out) = preapproval(&l, m, false) else {
            panic!("not approved")
        };
        assert_eq!(
            out,
            b"From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n".to_vec()
        );
    }

    #[test]
    fn header_bad_or_no_password_configured() {
        let m = b"From: a@example.org\r\nApproved: guess\r\n\r\nHello\r\n";
        assert_eq!(
            preapproval(&list(Some("pw")), m, false),
            Preapproval::BadPassword
        );
        assert_eq!(preapproval(&list(None), m, false), Preapproval::BadPassword);
    }

    #[test]
    fn locked_tries_no_password_but_strips_the_line() {
        let l = list(Some("open sesame"));
        let m = b"From: a@example.org\r\nApproved: open sesame\r\nSubject: hi\r\n\r\nHello\r\n";
        assert_eq!(
            preapproval(&l, m, true),
            Preapproval::Ignored(b"From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n".to_vec())
        );
        let plain = b"From: a@example.org\r\n\r\nHello\r\n";
        assert_eq!(preapproval(&l, plain, true), Preapproval::None);
    }

    #[test]
    fn body_line_plain_good() {
        let l = list(Some("pw1"));
        let m =
            b"From: a@example.org\r\nSubject: hi\r\n\r\n\r\nApproved: pw1\r\nHello\r\nWorld\r\n";
        let Preapproval::Approved(out) = preapproval(&l, m, false) else {
            panic!("not approved")
        };
        assert_eq!(
            out,
            b"From: a@example.org\r\nSubject: hi\r\n\r\n\r\nHello\r\nWorld\r\n".to_vec()
        );
    }

    #[test]
    fn body_line_bad_and_not_first_line() {
        let l = list(Some("pw1"));
        let bad = b"From: a@example.org\r\n\r\nApproved: nope\r\nHello\r\n";
        assert_eq!(preapproval(&l, bad, false), Preapproval::BadPassword);
        let later = b"From: a@example.org\r\n\r\nHello\r\nApproved: pw1\r\n";
        assert_eq!(preapproval(&l, later, false), Preapproval::None);
    }

    fn alternative(plain_cte: &str, plain: &str, html_cte: &str, html: &str) -> Vec<u8> {
        format!(
            "From: a@example.org\r\nSubject: alt\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"BB\"\r\n\r\n\
             preamble\r\n--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: {plain_cte}\r\n\r\n{plain}\r\n\
             --BB\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: {html_cte}\r\n\r\n{html}\r\n--BB--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn alternative_strips_plain_line_and_html_twin() {
        let l = list(Some("s3cr3t"));
        let m = alternative(
            "7bit",
            "Approved: s3cr3t\r\nHello all",
            "7bit",
            "<p>Approved:&nbsp;s3cr3t</p><p>Hello all</p>",
        );
        let Preapproval::Approved(out) = preapproval(&l, &m, false) else {
            panic!("not approved")
        };
        let expected = alternative("7bit", "Hello all", "7bit", "<p></p><p>Hello all</p>");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn quoted_printable_and_base64_parts_are_reencoded() {
        use base64::Engine;
        let l = list(Some("pässwörd=1"));
        let plain = qp::encode(
            "Approved: pässwörd=1\r\nGrüße an alle\r\n".as_bytes(),
            "\r\n",
        );
        let html = base64::engine::general_purpose::STANDARD
            .encode("<div>Approved: pässwörd=1</div><div>Grüße</div>");
        let m = alternative(
            "quoted-printable",
            &String::from_utf8(plain).unwrap(),
            "base64",
            &html,
        );
        let Preapproval::Approved(out) = preapproval(&l, &m, false) else {
            panic!("not approved")
        };
        assert_eq!(body_text(&out, 0).trim_end(), "Grüße an alle");
        let parsed = MessageParser::default().parse(&out).unwrap();
        assert_eq!(
            parsed.body_html(0).unwrap().as_ref(),
            "<div></div><div>Grüße</div>"
        );
        assert!(!String::from_utf8_lossy(&out).contains("pässwörd"));
    }

    #[test]
    fn strip_any_removes_headers_and_optionally_line() {
        let m = b"Approved: a\r\nFrom: x@example.org\r\nApprove: b\r\n\r\nApproved: c\r\nHi\r\n";
        assert_eq!(
            strip_any(m, false),
            b"From: x@example.org\r\n\r\nApproved: c\r\nHi\r\n".to_vec()
        );
        assert_eq!(
            strip_any(m, true),
            b"From: x@example.org\r\n\r\nHi\r\n".to_vec()
        );
        let plain = b"From: x@example.org\r\n\r\nHi\r\n";
        assert_eq!(strip_any(plain, true), plain.to_vec());
    }

    #[test]
    fn an_approved_line_below_a_line_that_is_no_field_is_body_text() {
        // the header block ends at `X-Odd` (mime::header_block, as mail-parser
        // and every reader see it): the line below is body text, not a field,
        // and not the body's first line either
        let l = list(Some("open sesame"));
        let m = b"From: a@example.org\r\nX-Odd\r\nApproved: open sesame\r\n\r\nHello\r\n";
        assert_eq!(preapproval(&l, m, false), Preapproval::None);
        assert_eq!(strip_any(m, true), m.to_vec());
        // a name with a space before the colon is no field either
        let m = b"From: a@example.org\r\nApproved : open sesame\r\n\r\nHello\r\n";
        assert_eq!(preapproval(&l, m, false), Preapproval::None);
    }

    #[test]
    fn a_folded_password_is_unfolded_as_rfc_5322_says() {
        // unfolding removes only the line end: the tab stays
        let l = list(Some("open\tsesame"));
        let m = b"From: a@example.org\r\nApproved: open\r\n\tsesame\r\n\r\nHello\r\n";
        let Preapproval::Approved(out) = preapproval(&l, m, false) else {
            panic!("not approved")
        };
        assert_eq!(out, b"From: a@example.org\r\n\r\nHello\r\n".to_vec());
    }

    #[test]
    fn an_edited_part_of_a_lf_message_keeps_lf_line_ends() {
        let l = list(Some("pw1"));
        let m = "From: a@example.org\nContent-Type: text/plain; charset=utf-8\n\
                 Content-Transfer-Encoding: quoted-printable\n\nApproved: pw1\nGr=C3=BC=C3=9Fe\nend\n";
        let Preapproval::Approved(out) = preapproval(&l, m.as_bytes(), false) else {
            panic!("not approved")
        };
        assert!(!out.contains(&b'\r'), "{}", String::from_utf8_lossy(&out));
        assert_eq!(body_text(&out, 0), "Grüße\nend\n");
    }
}
