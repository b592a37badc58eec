//! Decoration of an accepted post: the RFC 2369 / 2919 / 8058 list headers,
//! `Precedence: list`, `X-Loop`, the subject prefix (never doubled, RFC 2047
//! aware), the Reply-To policy, a missing Message-ID or Date, and the
//! optional footer.
//!
//! Works on the raw bytes: header fields are removed, replaced or appended
//! through `header_block`; every other field and every body byte passes
//! through untouched. The footer is appended to a single text/plain part in
//! its own charset and transfer encoding, added as a text/plain part to a
//! multipart message, and never added to multipart/signed or encrypted mail.
//! A post whose multiparts are not all closed gets the missing close
//! delimiters before the footer part (`mime::multipart_close`), so no
//! reader takes the footer for part of the post; a decorated post is read
//! back, and one that no longer shows the original's parts unchanged goes
//! out without the footer.
//!
//! Trusts the decision already made (the message was accepted) and the
//! decoration settings; trusts nothing in the message bytes (any input gives
//! a well-formed output, no panic).

use crate::config::{Config, ListConfig, ReplyTo};
use crate::mime::header_block::{self, Rewrite, Split};
use crate::mime::leaves::leaves;
use crate::mime::{encoded_word, lines, multipart_close, qp, transfer};
use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// What decoration adds to one list's posts (plain data, built once per post).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoration {
    pub domain: String,
    /// `NAME@domain`.
    pub list_address: String,
    /// The List-Id value, unfolded: `description <NAME.domain>`.
    pub list_id: String,
    pub list_help: String,
    pub list_subscribe: String,
    pub list_unsubscribe: String,
    /// Whether List-Unsubscribe-Post: List-Unsubscribe=One-Click is added.
    pub one_click: bool,
    pub list_post: String,
    pub list_owner: String,
    pub list_archive: Option<String>,
    /// The X-Loop value.
    pub loop_address: String,
    /// e.g. `[dev]`; empty for none.
    pub subject_prefix: String,
    /// The Reply-To to set, if the policy sets one.
    pub reply_to: Option<String>,
    /// The Sender: to set (the list's bounce address), if the list sets one.
    pub sender: Option<String>,
    /// The rendered footer text, if the list has one.
    pub footer: Option<String>,
    /// The `Date:` a post without one gets (RFC 5322 requires it): the
    /// time listd distributes it; `None` adds none.
    pub date: Option<String>,
}

/// Headers listd owns on a distributed post: any copy in the incoming
/// message is removed before ours are added. `Approved`/`Approve` are removed
/// so a moderator password never reaches the members.
const OWNED_HEADERS: &[&str] = &[
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Precedence",
    "Approved",
    "Approve",
    "Return-Path",
];

impl Decoration {
    /// The decoration of `list` under `config`, with an already rendered footer.
    pub fn for_list(config: &Config, list: &ListConfig, footer: Option<String>) -> Decoration {
        let list_address = config.list_address(&list.name);
        let f = config.list_fields(list);
        Decoration {
            domain: config.list_domain(&list.name).to_string(),
            list_id: f.id,
            list_help: f.help,
            list_subscribe: f.subscribe,
            list_unsubscribe: f.unsubscribe,
            one_click: f.one_click,
            list_post: f.post,
            list_owner: f.owner,
            list_archive: f.archive,
            loop_address: f.loop_address,
            subject_prefix: list.subject_prefix.trim().to_string(),
            date: None,
            reply_to: match &list.reply_to {
                ReplyTo::None => None,
                ReplyTo::List => Some(list_address.clone()),
                ReplyTo::Address(a) => Some(a.clone()),
            },
            sender: list
                .sender_header
                .then(|| config.list_suffix_address(&list.name, "bounces")),
            list_address,
            footer,
        }
    }
}

/// Where the footer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterPlacement {
    /// The list has no footer.
    NoFooter,
    /// Appended to the single text/plain body.
    Appended,
    /// Added as a new part at the end of a multipart/mixed body.
    AddedPart,
    /// The body became the first part of a new multipart/mixed.
    Wrapped,
    /// Signed or encrypted: the body was left byte-identical.
    SkippedSigned,
    /// The footer would have changed how a reader sees the post's own parts
    /// (a malformed post, read back otherwise once extended): the body was
    /// left byte-identical.
    SkippedMalformed,
}

/// A decorated post.
#[derive(Debug, Clone)]
pub struct Decorated {
    pub bytes: Vec<u8>,
    /// The Message-ID (without brackets), added if the post had none.
    pub message_id: String,
    pub footer: FooterPlacement,
    /// The close delimiters appended to the post's bytes before the footer
    /// part (empty unless it left a multipart open).
    pub closed: Vec<u8>,
    /// When a footer was placed: the post decorated the same way without
    /// it, which the archive and the digests keep (one footer per digest,
    /// none in a thread of archived posts), as Mailman does.
    pub without_footer: Option<Vec<u8>>,
}

/// Decorates `original` (a complete message) for distribution.
///
/// With a footer, the result is read back (mail-parser) and must show every
/// part of the post as it was, then the footer; when it does not (a
/// malformed post that reads otherwise once extended), the post goes out
/// with the list headers only.
pub fn decorate(original: &[u8], d: &Decoration) -> Decorated {
    let out = decorate_with(original, d, d.footer.as_deref());
    let placed = matches!(
        out.footer,
        FooterPlacement::Appended | FooterPlacement::AddedPart | FooterPlacement::Wrapped
    );
    if !placed {
        return out;
    }
    // the same post without the footer, read the way the footed one is
    // (decoration's header block before it) is what the footer must keep
    let mut plain = decorate_with(original, d, None);
    if reads_back_whole(&plain.bytes, &out, d.footer.as_deref().unwrap_or_default()) {
        return Decorated {
            without_footer: Some(plain.bytes),
            ..out
        };
    }
    tracing::debug!(
        message_id = %out.message_id,
        "the post reads otherwise with the footer; sending it without"
    );
    plain.footer = FooterPlacement::SkippedMalformed;
    plain
}

/// Whether `out` reads as `plain`'s leaf parts (closed as decoration
/// closed them), unchanged, with the footer after them: appended to the
/// one text part, or as one more part.
fn reads_back_whole(plain: &[u8], out: &Decorated, footer: &str) -> bool {
    let repaired: Cow<'_, [u8]> = if out.closed.is_empty() {
        Cow::Borrowed(plain)
    } else {
        Cow::Owned([plain, out.closed.as_slice()].concat())
    };
    let (Some(before), Some(after)) = (
        MessageParser::default().parse(&repaired),
        MessageParser::default().parse(&out.bytes),
    ) else {
        return false;
    };
    let (lb, la) = (leaves(&before), leaves(&after));
    match out.footer {
        FooterPlacement::Appended => lb.len() == 1 && la.len() == 1 && la[0].starts_with(&lb[0]),
        FooterPlacement::AddedPart | FooterPlacement::Wrapped => {
            let want = normalize_eol(footer, header_block::split(plain).eol).into_bytes();
            la.len() == lb.len() + 1 && la[..lb.len()] == lb[..] && la.last() == Some(&want)
        }
        _ => true,
    }
}

/// Decorates with `footer` (or none), without reading the result back.
fn decorate_with(original: &[u8], d: &Decoration, footer: Option<&str>) -> Decorated {
    let split = header_block::split(original);
    let eol = split.eol;
    let mut rw = Rewrite::new();
    for h in OWNED_HEADERS {
        rw.remove_all(&split, original, h);
    }

    // Message-ID
    let message_id = match split
        .raw_value(original, "Message-ID")
        .map(header_block::unfold)
    {
        Some(v) if !v.is_empty() => {
            let s = String::from_utf8_lossy(&v).to_string();
            s.trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_string()
        }
        _ => {
            let hash = Sha256::digest(original);
            let id = format!("listd.{}@{}", hex::encode(&hash[..12]), d.domain);
            rw.append("Message-ID", format!("<{id}>").as_bytes(), eol);
            id
        }
    };

    // Date (RFC 5322 §3.6: every message has one)
    if let Some(date) = &d.date {
        let has_date = split
            .raw_value(original, "Date")
            .is_some_and(|v| !header_block::unfold(v).trim_ascii().is_empty());
        if !has_date {
            rw.remove_all(&split, original, "Date");
            rw.append("Date", date.as_bytes(), eol);
        }
    }

    // Subject
    if !d.subject_prefix.is_empty() {
        let idx = split.find(original, "Subject").next();
        let raw = idx.map(|i| header_block::unfold(&original[split.fields[i].value.clone()]));
        if let Some(new) = prefixed_subject(raw.as_deref(), &d.subject_prefix) {
            let folded = header_block::fold(&new, "Subject".len(), eol);
            match idx {
                Some(i) => {
                    // later duplicates of Subject go; the first is rewritten in place
                    rw.remove_all(&split, original, "Subject");
                    rw.replace(i, "Subject", &folded, eol);
                }
                None => rw.append("Subject", &folded, eol),
            }
        }
    }

    // Reply-To
    if let Some(r) = &d.reply_to {
        rw.remove_all(&split, original, "Reply-To");
        rw.append("Reply-To", r.as_bytes(), eol);
    }

    // Sender
    if let Some(a) = &d.sender {
        rw.remove_all(&split, original, "Sender");
        rw.append("Sender", a.as_bytes(), eol);
    }

    // the list headers
    rw.append(
        "List-Id",
        &header_block::fold(d.list_id.as_bytes(), "List-Id".len(), eol),
        eol,
    );
    rw.append("List-Help", d.list_help.as_bytes(), eol);
    rw.append("List-Subscribe", d.list_subscribe.as_bytes(), eol);
    rw.append(
        "List-Unsubscribe",
        &header_block::fold(d.list_unsubscribe.as_bytes(), "List-Unsubscribe".len(), eol),
        eol,
    );
    if d.one_click {
        rw.append("List-Unsubscribe-Post", b"List-Unsubscribe=One-Click", eol);
    }
    rw.append("List-Post", d.list_post.as_bytes(), eol);
    rw.append("List-Owner", d.list_owner.as_bytes(), eol);
    if let Some(a) = &d.list_archive {
        rw.append("List-Archive", a.as_bytes(), eol);
    }
    rw.append("Precedence", b"list", eol);
    rw.append("X-Loop", d.loop_address.as_bytes(), eol);

    let mut closed = Vec::new();
    let (body, footer) = match footer {
        None => (None, FooterPlacement::NoFooter),
        Some(f) => add_footer(original, &split, &mut rw, f, &mut closed),
    };
    let bytes = match body {
        Some(b) => rw.apply_with_body(&split, original, &b),
        None => rw.apply(&split, original),
    };
    Decorated {
        bytes,
        message_id,
        footer,
        closed,
        without_footer: None,
    }
}

fn starts_with_ci(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p)
}

fn contains_ci(s: &[u8], p: &[u8]) -> bool {
    !p.is_empty() && s.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p))
}

/// Strips leading `Re:` and `prefix` tokens; returns the rest and whether a
/// `Re:` was among them.
fn strip_leading<'a>(mut s: &'a [u8], prefix: &[u8]) -> (&'a [u8], bool) {
    let mut saw_re = false;
    loop {
        s = s.trim_ascii_start();
        if starts_with_ci(s, b"re:") {
            s = &s[3..];
            saw_re = true;
        } else if !prefix.is_empty() && starts_with_ci(s, prefix) {
            s = &s[prefix.len()..];
        } else {
            return (s.trim_ascii_end(), saw_re);
        }
    }
}

/// Decodes an unfolded raw header value (RFC 2047 words, raw UTF-8).
fn decode_text(raw: &[u8]) -> String {
    encoded_word::decode(raw).unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
}

/// The new (unfolded) Subject value, or `None` when the subject already
/// reads right. `raw` is the unfolded raw value of the incoming Subject.
///
/// `Re: [dev] Re: [dev] x` becomes `Re: [dev] x`; text outside the leading
/// `Re:`/prefix tokens is kept byte for byte (encoded words included); only
/// when those tokens sit inside encoded words is the subject decoded and
/// re-encoded.
pub fn prefixed_subject(raw: Option<&[u8]>, prefix: &str) -> Option<Vec<u8>> {
    let p = prefix.as_bytes();
    let raw = raw.unwrap_or_default().trim_ascii();
    let (rest, saw_re) = strip_leading(raw, p);
    let decoded_rest = decode_text(rest);
    let (drest, dre) = strip_leading(decoded_rest.as_bytes(), p);
    let new = if drest.len() != decoded_rest.trim().len() {
        // Re:/prefix tokens inside encoded words: decode the whole subject
        let decoded = decode_text(raw);
        let (rest, re) = strip_leading(decoded.as_bytes(), p);
        let rest = String::from_utf8_lossy(rest);
        let text = compose(
            re || dre || saw_re,
            prefix,
            &rest,
            contains_ci(rest.as_bytes(), p),
        );
        if text == decoded.trim() {
            return None;
        }
        if text.is_ascii() {
            text.into_bytes()
        } else {
            encoded_word::encode(&text, "Subject: ".len()).into_bytes()
        }
    } else {
        let mut v = Vec::new();
        let text = compose(saw_re, prefix, "", contains_ci(decoded_rest.as_bytes(), p));
        v.extend_from_slice(text.as_bytes());
        if !rest.is_empty() {
            if !v.is_empty() {
                v.push(b' ');
            }
            v.extend_from_slice(rest);
        }
        v
    };
    if new == raw {
        None
    } else {
        Some(new)
    }
}

/// `Re: ` (if a reply) + prefix (unless the rest already carries it) + rest.
fn compose(re: bool, prefix: &str, rest: &str, rest_has_prefix: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if re {
        parts.push("Re:");
    }
    if !rest_has_prefix {
        parts.push(prefix);
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts.join(" ")
}

/// Header fields that describe the content and move with it into a part.
fn is_content_field(name: &[u8]) -> bool {
    starts_with_ci(name, b"content-")
}

/// A fresh boundary that does not occur in `body`.
fn boundary_for(body: &[u8]) -> String {
    let hash = Sha256::digest(body);
    let mut n = 0u32;
    loop {
        let b = format!("listd-{}-{n}", hex::encode(&hash[..10]));
        if !contains_ci(body, b.as_bytes()) {
            return b;
        }
        n += 1;
    }
}

/// The footer as a text/plain part (headers and content, ending in `eol`).
fn footer_part(footer: &str, eol: &str) -> Vec<u8> {
    let text = normalize_eol(footer, eol);
    let mut p = Vec::new();
    if text.is_ascii() {
        p.extend_from_slice(
            format!("Content-Type: text/plain; charset=us-ascii{eol}Content-Transfer-Encoding: 7bit{eol}").as_bytes(),
        );
        p.extend_from_slice(format!("Content-Disposition: inline{eol}{eol}").as_bytes());
        p.extend_from_slice(text.as_bytes());
    } else {
        p.extend_from_slice(
            format!("Content-Type: text/plain; charset=utf-8{eol}Content-Transfer-Encoding: quoted-printable{eol}").as_bytes(),
        );
        p.extend_from_slice(format!("Content-Disposition: inline{eol}{eol}").as_bytes());
        p.extend_from_slice(&qp::encode(text.as_bytes(), eol));
    }
    if !p.ends_with(eol.as_bytes()) {
        p.extend_from_slice(eol.as_bytes());
    }
    p
}

/// `text` with every line end as `eol`, ending in one.
fn normalize_eol(text: &str, eol: &str) -> String {
    let mut s = lines::with_eol(text, eol);
    if !s.ends_with(eol) {
        s.push_str(eol);
    }
    s
}

/// Adds the footer; returns the new body (None: unchanged) and where it went.
/// May move Content-* fields (wrapping) through `rw`; the close delimiters
/// put at the end of the post go to `closed` too.
fn add_footer(
    b: &[u8],
    split: &Split,
    rw: &mut Rewrite,
    footer: &str,
    closed: &mut Vec<u8>,
) -> (Option<Vec<u8>>, FooterPlacement) {
    let eol = split.eol;
    let parsed = MessageParser::default().parse_headers(b);
    let root = parsed.as_ref().and_then(|m| m.parts.first());
    let ct = root.and_then(|p| p.content_type());
    let has_mime = split.find(b, "MIME-Version").next().is_some();
    // no Content-Type: plain text in US-ASCII (RFC 2045 §5.2)
    let (ctype, subtype) = match ct {
        Some(c) => (
            c.ctype().to_ascii_lowercase(),
            c.subtype().unwrap_or_default().to_ascii_lowercase(),
        ),
        None => ("text".to_string(), "plain".to_string()),
    };
    let protected = (ctype == "multipart" && (subtype == "signed" || subtype == "encrypted"))
        || (ctype == "application"
            && matches!(
                subtype.as_str(),
                "pkcs7-mime" | "x-pkcs7-mime" | "pgp-encrypted" | "pkcs7-signature"
            ));
    if protected {
        return (None, FooterPlacement::SkippedSigned);
    }
    // a multipart the post leaves open would swallow the footer part (and
    // the enclosing close delimiter): its missing close delimiters go at
    // the end of the post first. Only a multipart or a message holds one.
    *closed = if ctype == "multipart" || ctype == "message" {
        // what follows the post: listd's delimiters and the footer part
        let part = footer_part(footer, eol);
        let follows = |d: &[u8]| {
            contains_ci(&part, d) || b"--listd-".starts_with(d) || d.starts_with(b"--listd-")
        };
        multipart_close::missing_closes(b, &follows)
    } else {
        Vec::new()
    };
    let whole: Cow<'_, [u8]> = if closed.is_empty() {
        Cow::Borrowed(b)
    } else {
        Cow::Owned([b, closed.as_slice()].concat())
    };
    let body = &whole[split.body_start.min(b.len())..];
    if ctype == "multipart" && subtype == "mixed" {
        if let Some(boundary) = ct.and_then(|c| c.attribute("boundary")) {
            if let Some(new) = insert_part(body, boundary, footer, eol) {
                return (Some(new), FooterPlacement::AddedPart);
            }
        }
    }
    if ctype == "text" && subtype == "plain" {
        let attachment = root
            .and_then(|p| p.content_disposition())
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        if !attachment {
            let charset = ct
                .and_then(|c| c.attribute("charset"))
                .unwrap_or("us-ascii");
            let cte = split
                .raw_value(b, "Content-Transfer-Encoding")
                .map(|v| header_block::unfold_text(v).to_ascii_lowercase())
                .unwrap_or_else(|| "7bit".into());
            if let Some(new) = append_text(body, footer, charset, &cte, eol) {
                return (Some(new), FooterPlacement::Appended);
            }
        }
    }
    // wrap: the original content becomes the first part of a multipart/mixed
    let boundary = boundary_for(&whole);
    let mut inner = Vec::new();
    let content_fields: Vec<usize> = split
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| is_content_field(&b[f.name.clone()]))
        .map(|(i, _)| i)
        .collect();
    for &i in &content_fields {
        let f = &split.fields[i];
        inner.extend_from_slice(&b[f.start..f.end]);
        if !b[f.start..f.end].ends_with(b"\n") {
            inner.extend_from_slice(eol.as_bytes());
        }
        rw.remove(i);
    }
    if !has_mime {
        rw.append("MIME-Version", b"1.0", eol);
    }
    rw.append(
        "Content-Type",
        format!("multipart/mixed; boundary=\"{boundary}\"").as_bytes(),
        eol,
    );
    let mut out = Vec::with_capacity(body.len() + inner.len() + footer.len() + 256);
    out.extend_from_slice(format!("--{boundary}{eol}").as_bytes());
    out.extend_from_slice(&inner);
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(body);
    // the line end before a delimiter belongs to it: after a body ending in a
    // lone CR, a bare LF would take that CR along (`x\r` + `\n--b` reads `x`)
    let before = if body.ends_with(b"\r") { "\r\n" } else { eol };
    out.extend_from_slice(format!("{before}--{boundary}{eol}").as_bytes());
    out.extend_from_slice(&footer_part(footer, eol));
    out.extend_from_slice(format!("{eol}--{boundary}--{eol}").as_bytes());
    (Some(out), FooterPlacement::Wrapped)
}

/// Inserts the footer part before the closing delimiter of a multipart body.
fn insert_part(body: &[u8], boundary: &str, footer: &str, eol: &str) -> Option<Vec<u8>> {
    let close = format!("--{boundary}--");
    let c = close.as_bytes();
    // the last close delimiter that starts a line
    let pos = (0..body.len().saturating_sub(c.len() - 1))
        .rev()
        .find(|&i| body[i..].starts_with(c) && (i == 0 || body[i - 1] == b'\n'))?;
    if pos == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + footer.len() + 200);
    out.extend_from_slice(&body[..pos]);
    out.extend_from_slice(format!("--{boundary}{eol}").as_bytes());
    out.extend_from_slice(&footer_part(footer, eol));
    // the line end before a delimiter belongs to the delimiter
    out.extend_from_slice(eol.as_bytes());
    out.extend_from_slice(&body[pos..]);
    Some(out)
}

/// Appends the footer to a text/plain body in its charset and transfer
/// encoding; `None` when that cannot be done exactly.
fn append_text(body: &[u8], footer: &str, charset: &str, cte: &str, eol: &str) -> Option<Vec<u8>> {
    let cte = cte.trim();
    match cte {
        "7bit" | "8bit" | "binary" | "" => {
            let text = transfer::to_charset(&normalize_eol(footer, eol), charset)?;
            if (cte == "7bit" || cte.is_empty()) && !text.is_ascii() {
                return None;
            }
            let mut out = body.to_vec();
            if !out.is_empty() && !out.ends_with(b"\n") {
                out.extend_from_slice(eol.as_bytes());
            }
            out.extend_from_slice(&text);
            Some(out)
        }
        "quoted-printable" => {
            let text = transfer::to_charset(&normalize_eol(footer, eol), charset)?;
            let mut out = body.to_vec();
            // end the last decoded line: no line end, or a soft break at the end
            let trimmed = out.trim_ascii_end();
            let soft = trimmed.ends_with(b"=");
            if !out.is_empty() && (soft || !out.ends_with(b"\n")) {
                if soft && !out.ends_with(b"\n") {
                    out.extend_from_slice(eol.as_bytes());
                }
                out.extend_from_slice(eol.as_bytes());
            }
            out.extend_from_slice(&qp::encode(&text, eol));
            Some(out)
        }
        "base64" => {
            let mut data = transfer::base64_decode(body).ok()?;
            let text = transfer::to_charset(&normalize_eol(footer, "\r\n"), charset)?;
            if !data.is_empty() && !data.ends_with(b"\n") {
                data.extend_from_slice(b"\r\n");
            }
            data.extend_from_slice(&text);
            Some(transfer::base64_encode_lines(&data, eol))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::{MessageParser, MimeHeaders, PartType};

    fn deco(footer: Option<&str>) -> Decoration {
        let dir = std::path::Path::new("/nonexistent");
        let mut config = Config::for_tests("lists.example.org", dir);
        config.web.archive_url = Some("https://lists.example.org/archive/".into());
        let list = ListConfig::parse(
            std::path::Path::new("dev.yaml"),
            "dev",
            "description: Dev talk\nsubject_prefix: \"[dev]\"\nreply_to: list\n",
        )
        .unwrap();
        Decoration::for_list(&config, &list, footer.map(str::to_string))
    }

    #[test]
    fn the_sender_header_is_the_bounce_address_when_the_list_sets_it() {
        let post = format!("{HEAD}Sender: ann@example.org\r\nSubject: s\r\n\r\nbody\r\n");
        let off = decorate(post.as_bytes(), &deco(None)).bytes;
        assert_eq!(header(&off, "Sender").as_deref(), Some("ann@example.org"));
        let mut d = deco(None);
        d.sender = Some("dev-bounces@lists.example.org".into());
        let on = decorate(post.as_bytes(), &d).bytes;
        let s = header_block::split(&on);
        assert_eq!(s.find(&on, "Sender").count(), 1, "replaced, not added");
        assert_eq!(
            header(&on, "Sender").as_deref(),
            Some("dev-bounces@lists.example.org")
        );
        let dir = std::path::Path::new("/nonexistent");
        let config = Config::for_tests("lists.example.org", dir);
        let list = ListConfig::parse(
            std::path::Path::new("dev.yaml"),
            "dev",
            "sender_header: true\n",
        )
        .unwrap();
        assert_eq!(
            Decoration::for_list(&config, &list, None).sender.as_deref(),
            Some("dev-bounces@lists.example.org")
        );
    }

    fn header(m: &[u8], name: &str) -> Option<String> {
        let s = header_block::split(m);
        s.raw_value(m, name).map(header_block::unfold_text)
    }

    fn body(m: &[u8]) -> &[u8] {
        &m[header_block::split(m).body_start..]
    }

    const HEAD: &str = "Received: from a by b; Sat, 22 Nov 2025 03:00:00 +0000\r\n\
From: Ann <ann@example.org>\r\nTo: dev@lists.example.org\r\n\
X-Unknown:  odd   spacing\r\n\tfolded\r\nMessage-ID: <m1@example.org>\r\n";

    #[test]
    fn list_headers_are_set_and_the_rest_passes_through() {
        let m = format!(
            "{HEAD}Subject: hello\r\nList-Id: upstream <up.example.net>\r\nPrecedence: bulk\r\n\
Approved: secret\r\nReply-To: ann@example.org\r\n\r\nbody line\r\n"
        );
        let d = decorate(m.as_bytes(), &deco(None));
        let out = &d.bytes;
        assert_eq!(d.message_id, "m1@example.org");
        assert_eq!(d.footer, FooterPlacement::NoFooter);
        assert_eq!(
            header(out, "List-Id").unwrap(),
            "Dev talk <dev.lists.example.org>"
        );
        assert_eq!(
            header(out, "List-Help").unwrap(),
            "<mailto:dev-request@lists.example.org?subject=help>"
        );
        assert_eq!(
            header(out, "List-Subscribe").unwrap(),
            "<mailto:dev-join@lists.example.org>"
        );
        assert_eq!(
            header(out, "List-Unsubscribe").unwrap(),
            "<mailto:dev-leave@lists.example.org>"
        );
        assert_eq!(header(out, "List-Unsubscribe-Post"), None);
        assert_eq!(
            header(out, "List-Post").unwrap(),
            "<mailto:dev@lists.example.org>"
        );
        assert_eq!(
            header(out, "List-Owner").unwrap(),
            "<mailto:dev-owner@lists.example.org>"
        );
        assert_eq!(
            header(out, "List-Archive").unwrap(),
            "<https://lists.example.org/archive/dev/>"
        );
        assert_eq!(header(out, "Precedence").unwrap(), "list");
        assert_eq!(header(out, "X-Loop").unwrap(), "dev@lists.example.org");
        assert_eq!(header(out, "Reply-To").unwrap(), "dev@lists.example.org");
        assert_eq!(header(out, "Approved"), None);
        assert_eq!(header(out, "Subject").unwrap(), "[dev] hello");
        let s = header_block::split(out);
        assert_eq!(s.find(out, "List-Id").count(), 1);
        assert_eq!(s.find(out, "Precedence").count(), 1);
        assert_eq!(s.find(out, "Reply-To").count(), 1);
        // untouched fields and the body are byte-exact, in order
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(HEAD), "{text}");
        assert_eq!(body(out), b"body line\r\n");
        // and mail-parser reads the result
        let p = MessageParser::default().parse(out).unwrap();
        assert_eq!(p.subject(), Some("[dev] hello"));
        assert_eq!(p.body_text(0).unwrap(), "body line\r\n");
    }

    #[test]
    fn one_click_only_with_an_https_unsubscribe_url() {
        let dir = tempfile::tempdir().unwrap();
        let list = ListConfig::parse(std::path::Path::new("dev.yaml"), "dev", "").unwrap();
        let mut config = Config::for_tests("lists.example.org", dir.path());
        for (url, one_click) in [
            (None, false),
            (Some("http://lists.example.org/u"), false),
            (Some("HTTPS-ish://lists.example.org/u"), false),
            (Some("https://lists.example.org/u"), true),
        ] {
            config.web.unsubscribe_url = url.map(str::to_string);
            let d = Decoration::for_list(&config, &list, None);
            assert_eq!(d.one_click, one_click, "{url:?}");
            let out = decorate(b"Subject: x\r\n\r\nb\r\n", &d).bytes;
            assert_eq!(
                header(&out, "List-Unsubscribe-Post").is_some(),
                one_click,
                "{url:?}"
            );
        }
        // and a configuration with a plain-http URL is refused at load,
        // naming the file and the key
        let cfg = dir.path().join("listd.yaml");
        std::fs::create_dir_all(dir.path().join("lists")).unwrap();
        std::fs::write(
            &cfg,
            "domain: lists.example.org\nweb:\n  unsubscribe_url: \"http://lists.example.org/u\"\n",
        )
        .unwrap();
        let err = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("listd.yaml") && err.contains("web.unsubscribe_url must be an https://"),
            "{err}"
        );
    }

    #[test]
    fn one_click_announce_and_quoted_description() {
        let dir = std::path::Path::new("/nonexistent");
        let mut config = Config::for_tests("lists.example.org", dir);
        config.web.unsubscribe_url = Some("https://lists.example.org/u".into());
        let list = ListConfig::parse(
            std::path::Path::new("news.yaml"),
            "news",
            "description: \"News, from: us\"\nposting: announce\n",
        )
        .unwrap();
        let d = Decoration::for_list(&config, &list, None);
        let out = decorate(b"Subject: x\r\n\r\nb\r\n", &d).bytes;
        assert_eq!(
            header(&out, "List-Unsubscribe").unwrap(),
            "<https://lists.example.org/u/news>, <mailto:news-leave@lists.example.org>"
        );
        assert_eq!(
            header(&out, "List-Unsubscribe-Post").unwrap(),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(header(&out, "List-Post").unwrap(), "NO");
        assert_eq!(
            header(&out, "List-Id").unwrap(),
            "\"News, from: us\" <news.lists.example.org>"
        );
        // no prefix configured: the subject is untouched
        assert_eq!(header(&out, "Subject").unwrap(), "x");
        // a missing Message-ID is added
        let id = header(&out, "Message-ID").unwrap();
        assert!(
            id.starts_with("<listd.") && id.ends_with("@lists.example.org>"),
            "{id}"
        );
        let p = MessageParser::default().parse(&out).unwrap();
        assert!(format!("{:?}", p.list_id()).contains("news.lists.example.org"));
    }

    fn subj(raw: &str) -> Option<String> {
        prefixed_subject(Some(raw.as_bytes()), "[dev]").map(|v| String::from_utf8(v).unwrap())
    }

    fn decoded(raw: &str) -> String {
        decode_text(raw.as_bytes())
    }

    #[test]
    fn prefix_is_never_doubled() {
        assert_eq!(subj("x").as_deref(), Some("[dev] x"));
        assert_eq!(
            subj("Re: [dev] Re: [dev] x").as_deref(),
            Some("Re: [dev] x")
        );
        assert_eq!(subj("[dev] Re: x").as_deref(), Some("Re: [dev] x"));
        assert_eq!(subj("RE: re: x").as_deref(), Some("Re: [dev] x"));
        assert_eq!(subj("[DEV] x").as_deref(), Some("[dev] x"));
        assert_eq!(subj("[dev] x"), None);
        assert_eq!(subj("Re: [dev] x"), None);
        assert_eq!(subj("Fwd: [dev] x"), None);
        assert_eq!(subj("").as_deref(), Some("[dev]"));
        assert_eq!(
            prefixed_subject(None, "[dev]").as_deref(),
            Some(&b"[dev]"[..])
        );
    }

    #[test]
    fn encoded_subjects_keep_their_words_or_are_re_encoded_when_touched() {
        // the encoded word is kept byte for byte
        let raw = "=?UTF-8?Q?caf=C3=A9?=";
        assert_eq!(subj(raw).as_deref(), Some("[dev] =?UTF-8?Q?caf=C3=A9?="));
        assert_eq!(
            subj("Re: [dev] Re: [dev] =?UTF-8?Q?caf=C3=A9?=").as_deref(),
            Some("Re: [dev] =?UTF-8?Q?caf=C3=A9?=")
        );
        assert_eq!(subj("Re: [dev] =?UTF-8?Q?caf=C3=A9?="), None);
        // the tokens inside an encoded word: decoded, fixed, re-encoded
        let raw = "=?UTF-8?B?UmU6IFtkZXZdIFJlOiBbZGV2XSBjYWbDqQ==?="; // "Re: [dev] Re: [dev] café"
        assert_eq!(decoded(raw), "Re: [dev] Re: [dev] café");
        let new = subj(raw).unwrap();
        assert!(new.starts_with("=?"), "{new}");
        assert_eq!(decoded(&new), "Re: [dev] café");
        // an encoded subject already right is left alone
        let raw = "=?UTF-8?B?W2Rldl0gY2Fmw6k=?="; // "[dev] café"
        assert_eq!(subj(raw), None);
        // ASCII after the fix: written plainly
        let raw = "=?UTF-8?Q?=5Bdev=5D_Re=3A_x?="; // "[dev] Re: x"
        assert_eq!(subj(raw).as_deref(), Some("Re: [dev] x"));
        // in a whole message, decoded by mail-parser
        let m =
            format!("{HEAD}Subject: Re: [dev] Re: [dev]\r\n =?ISO-8859-1?Q?caf=E9?=\r\n\r\nx\r\n");
        let out = decorate(m.as_bytes(), &deco(None)).bytes;
        let p = MessageParser::default().parse(&out).unwrap();
        assert_eq!(p.subject(), Some("Re: [dev] café"));
        assert_eq!(
            header(&out, "Subject").unwrap(),
            "Re: [dev] =?ISO-8859-1?Q?caf=E9?="
        );
    }

    const FOOT: &str = "-- \nDev list: dév@example\n";

    fn parsed_text(out: &[u8], i: usize) -> String {
        let p = MessageParser::default().parse(out).unwrap();
        p.body_text(i).unwrap().to_string()
    }

    #[test]
    fn footer_on_plain_8bit_and_7bit() {
        let m = format!("{HEAD}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nhé\r\n");
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert_eq!(d.footer, FooterPlacement::Appended);
        assert_eq!(
            body(&d.bytes),
            "hé\r\n-- \r\nDev list: dév@example\r\n".as_bytes()
        );
        // 7bit without a line end at the end; ASCII footer appended as is
        let m = format!("{HEAD}\r\nno newline");
        let d = decorate(m.as_bytes(), &deco(Some("-- \nplain footer\n")));
        assert_eq!(d.footer, FooterPlacement::Appended);
        assert_eq!(body(&d.bytes), b"no newline\r\n-- \r\nplain footer\r\n");
        // 7bit us-ascii cannot take a non-ASCII footer: it is added as a part
        let m = format!("{HEAD}\r\nascii body\r\n");
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert_eq!(d.footer, FooterPlacement::Wrapped);
        assert_eq!(parsed_text(&d.bytes, 0), "ascii body\r\n");
        assert!(parsed_text(&d.bytes, 1).contains("dév@example"));
        // latin-1 8bit: the footer is written in latin-1
        let mut raw = format!("{HEAD}Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nh").into_bytes();
        raw.extend_from_slice(b"\xe9\r\n");
        let d = decorate(&raw, &deco(Some(FOOT)));
        assert_eq!(d.footer, FooterPlacement::Appended);
        assert!(body(&d.bytes).ends_with(b"d\xe9v@example\r\n"));
        assert_eq!(
            parsed_text(&d.bytes, 0),
            "h\u{e9}\r\n-- \r\nDev list: dév@example\r\n"
        );
    }

    #[test]
    fn footer_on_quoted_printable() {
        let original_body =
            "caf=C3=A9 au lait, a long line that was soft-broken by the sen=\r\nder\r\n";
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{original_body}");
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert_eq!(d.footer, FooterPlacement::Appended);
        assert!(body(&d.bytes).starts_with(original_body.as_bytes()));
        assert_eq!(
            parsed_text(&d.bytes, 0),
            "café au lait, a long line that was soft-broken by the sender\r\n-- \r\nDev list: dév@example\r\n"
        );
        // a body ending in a soft line break still gets the footer on its own line
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nend=\r\n");
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert_eq!(
            parsed_text(&d.bytes, 0),
            "end\r\n-- \r\nDev list: dév@example\r\n"
        );
    }

    #[test]
    fn footer_on_base64() {
        let text = "première ligne\r\nseconde\r\n";
        let enc = transfer::base64_encode_lines(text.as_bytes(), "\r\n");
        let m = format!(
            "{HEAD}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            String::from_utf8(enc).unwrap()
        );
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert_eq!(d.footer, FooterPlacement::Appended);
        assert_eq!(
            parsed_text(&d.bytes, 0),
            format!("{text}-- \r\nDev list: dév@example\r\n")
        );
        assert!(body(&d.bytes).split(|c| *c == b'\n').all(|l| l.len() <= 77));
        // a base64 body that does not decode is left alone and the footer added as a part
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@@ not base64 @@@@\r\n");
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert_eq!(d.footer, FooterPlacement::Wrapped);
        assert!(String::from_utf8_lossy(&d.bytes)
            .contains("\r\n\r\n@@@@ not base64 @@@@\r\n\r\n--listd-"));
    }

    #[test]
    fn footer_wraps_multipart_alternative() {
        let alt = "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--alt--\r\n";
        let m = format!("{HEAD}Subject: a\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n{alt}");
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert!(d.closed.is_empty(), "a well-formed post is not repaired");
        assert_eq!(d.footer, FooterPlacement::Wrapped);
        let out = String::from_utf8(d.bytes.clone()).unwrap();
        // the alternative moved into the first part, byte for byte
        assert!(
            out.contains(&format!(
                "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n{alt}\r\n--listd-"
            )),
            "{out}"
        );
        let s = header_block::split(&d.bytes);
        assert_eq!(s.find(&d.bytes, "Content-Type").count(), 1);
        assert_eq!(s.find(&d.bytes, "MIME-Version").count(), 1);
        let p = MessageParser::default().parse(&d.bytes).unwrap();
        let root = &p.parts[0];
        assert_eq!(root.content_type().unwrap().subtype(), Some("mixed"));
        let PartType::Multipart(kids) = &root.body else {
            panic!("not multipart")
        };
        assert_eq!(kids.len(), 2);
        let first = &p.parts[kids[0] as usize];
        assert_eq!(first.content_type().unwrap().subtype(), Some("alternative"));
        let last = &p.parts[kids[1] as usize];
        assert_eq!(last.content_type().unwrap().ctype(), "text");
        assert_eq!(
            last.text_contents().unwrap(),
            "-- \r\nDev list: dév@example\r\n"
        );
    }

    #[test]
    fn footer_added_as_last_part_of_multipart_mixed() {
        let mixed = "preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\nepilogue\r\n";
        let m = format!(
            "{HEAD}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n{mixed}"
        );
        let d = decorate(m.as_bytes(), &deco(Some("footer\n")));
        assert_eq!(d.footer, FooterPlacement::AddedPart);
        let b = String::from_utf8(body(&d.bytes).to_vec()).unwrap();
        assert_eq!(
            b,
            "preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n\
--b1\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\nContent-Disposition: inline\r\n\r\nfooter\r\n\r\n\
--b1--\r\nepilogue\r\n"
        );
        let p = MessageParser::default().parse(&d.bytes).unwrap();
        assert_eq!(p.body_text(1).unwrap(), "footer\r\n");
        assert_eq!(p.attachment(0).unwrap().contents(), &[0, 1, 2]);
    }

    #[test]
    fn signed_and_encrypted_bodies_stay_byte_identical() {
        let signed = "--s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\nxx\r\n-----END PGP SIGNATURE-----\r\n--s--\r\n";
        for ct in [
            "multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"s\"",
            "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"s\"",
        ] {
            let m = format!("{HEAD}Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: {ct}\r\n\r\n{signed}");
            let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
            assert_eq!(d.footer, FooterPlacement::SkippedSigned);
            assert_eq!(body(&d.bytes), signed.as_bytes());
            assert_eq!(header(&d.bytes, "Content-Type").unwrap(), ct);
            // decoration still happens in the header
            assert_eq!(header(&d.bytes, "Subject").unwrap(), "[dev] s");
        }
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQ==\r\n");
        let d = decorate(m.as_bytes(), &deco(Some(FOOT)));
        assert_eq!(d.footer, FooterPlacement::SkippedSigned);
        assert_eq!(body(&d.bytes), b"MIAGCSqGSIb3DQEHA6CAMIACAQ==\r\n");
    }

    #[test]
    fn html_only_and_attachment_text_are_wrapped() {
        let m = format!(
            "{HEAD}MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>x</p>\r\n"
        );
        let d = decorate(m.as_bytes(), &deco(Some("f\n")));
        assert_eq!(d.footer, FooterPlacement::Wrapped);
        let p = MessageParser::default().parse(&d.bytes).unwrap();
        assert_eq!(p.body_html(0).unwrap(), "<p>x</p>\r\n");
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\ndata\r\n");
        let d = decorate(m.as_bytes(), &deco(Some("f\n")));
        assert_eq!(d.footer, FooterPlacement::Wrapped);
        assert!(String::from_utf8_lossy(&d.bytes).contains(
            "Content-Disposition: attachment; filename=a.txt\r\n\r\ndata\r\n\r\n--listd-"
        ));
    }

    /// Found by the property tests (tests/props.rs): wrapping an LF message
    /// whose body ends in a lone CR lost that CR to the delimiter's line end.
    #[test]
    fn wrapping_keeps_a_final_lone_cr() {
        for m in [&b"\n\r"[..], b"Subject: x\n\nbody\r"] {
            let d = decorate(m, &deco(Some(FOOT)));
            assert_eq!(d.footer, FooterPlacement::Wrapped);
            let before = MessageParser::default().parse(m).unwrap();
            let want = before.body_text(0).unwrap().to_string();
            assert!(want.ends_with('\r'), "{want:?}");
            assert_eq!(parsed_text(&d.bytes, 0), want);
        }
    }

    /// Found by the fuzzers (fuzz/seeds/decorate/regress_unclosed_*): a
    /// multipart left open swallowed the footer part and listd's close
    /// delimiter, so mail-parser read them as part of the post's last part.
    #[test]
    fn an_open_multipart_is_closed_before_the_footer() {
        let alt = "--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n";
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n{alt}");
        let d = decorate(m.as_bytes(), &deco(Some("f\n")));
        assert_eq!(d.footer, FooterPlacement::Wrapped);
        let out = String::from_utf8(d.bytes.clone()).unwrap();
        assert!(
            out.contains(&format!("{alt}\r\n--a--\r\n\r\n--listd-")),
            "{out}"
        );
        assert_eq!(d.closed, b"\r\n--a--\r\n");
        let p = MessageParser::default().parse(&d.bytes).unwrap();
        assert_eq!(p.body_html(0).as_deref(), Some("<p>x</p>\r\n"));
        let PartType::Multipart(kids) = &p.parts[0].body else {
            panic!("not multipart")
        };
        assert_eq!(kids.len(), 2);
        let last = &p.parts[kids[1] as usize];
        assert_eq!(last.text_contents(), Some("f\r\n"));
        // a multipart/mixed left open gets its close, then the footer part
        // is added before it; LF line ends stay LF
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhello\r\n")
            .replace("\r\n", "\n");
        let d = decorate(m.as_bytes(), &deco(Some("f\n")));
        assert_eq!(d.footer, FooterPlacement::AddedPart);
        assert!(body(&d.bytes).ends_with(b"hello\n\n--b\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\nContent-Disposition: inline\n\nf\n\n--b--\n"));
        assert_eq!(parsed_text(&d.bytes, 1), "f\n");
        // without a footer nothing is enclosed: the body stays as it is
        let d = decorate(m.as_bytes(), &deco(None));
        assert_eq!(body(&d.bytes), body(m.as_bytes()));
        assert!(d.closed.is_empty());
    }

    /// Found by the fuzzers (fuzz/seeds/decorate/regress_misread_*): a
    /// post that reads otherwise once the footer is added goes out without
    /// it, its body byte for byte.
    #[test]
    fn a_post_that_reads_otherwise_with_the_footer_goes_out_without_it() {
        // quoted-printable ending in white space with no line end: a reader
        // drops that space once the footer's line follows
        let m = format!("{HEAD}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 ");
        let d = decorate(m.as_bytes(), &deco(Some("f\n")));
        assert_eq!(d.footer, FooterPlacement::SkippedMalformed);
        assert_eq!(body(&d.bytes), body(m.as_bytes()));
        assert_eq!(parsed_text(&d.bytes, 0), "café ");
        // the list headers are there all the same
        assert!(header_block::split(&d.bytes)
            .find(&d.bytes, "List-Id")
            .next()
            .is_some());
        // with its line end it takes the footer
        let m = format!("{m}\r\n");
        let d = decorate(m.as_bytes(), &deco(Some("f\n")));
        assert_eq!(d.footer, FooterPlacement::Appended);
    }

    #[test]
    fn a_post_without_a_date_gets_one_and_one_with_a_date_keeps_it() {
        let mut d = deco(None);
        d.date = Some("Mon, 03 Jun 2024 06:00:00 +0000".into());
        let m = "From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n";
        let out = decorate(m.as_bytes(), &d);
        let p = MessageParser::default().parse(&out.bytes).unwrap();
        assert_eq!(p.date().unwrap().to_timestamp(), 1_717_394_400);
        assert!(p.message_id().is_some(), "and a Message-ID");
        let dated = format!("Date: Tue, 04 Jun 2024 06:00:00 +0000\r\n{m}");
        let out = decorate(dated.as_bytes(), &d);
        let split = header_block::split(&out.bytes);
        assert_eq!(split.find(&out.bytes, "Date").count(), 1);
        assert_eq!(
            MessageParser::default()
                .parse(&out.bytes)
                .unwrap()
                .date()
                .unwrap()
                .to_timestamp(),
            1_717_480_800
        );
        // an empty Date: is none
        let empty = format!("Date: \r\n{m}");
        let out = decorate(empty.as_bytes(), &d);
        assert_eq!(
            header_block::split(&out.bytes)
                .find(&out.bytes, "Date")
                .count(),
            1
        );
        assert!(MessageParser::default()
            .parse(&out.bytes)
            .unwrap()
            .date()
            .is_some());
    }

    #[test]
    fn garbage_in_gives_a_message_out() {
        for m in [
            &b""[..],
            b"\r\n\r\n",
            b"no header at all",
            b"\xff\xfe: \x00\r\n\r\n\xff",
        ] {
            let d = decorate(m, &deco(Some(FOOT)));
            let s = header_block::split(&d.bytes);
            assert!(s.find(&d.bytes, "List-Id").count() == 1);
        }
    }

    #[test]
    fn encoded_words_are_folded_with_the_message_s_own_line_ends() {
        let dir = std::path::Path::new("/nonexistent");
        let config = Config::for_tests("lists.example.org", dir);
        let desc = "Entwickler-Café für lange Beschreibungen, die über eine Zeile gehen";
        let list = ListConfig::parse(
            std::path::Path::new("dev.yaml"),
            "dev",
            &format!("description: \"{desc}\"\nsubject_prefix: \"[dev]\"\n"),
        )
        .unwrap();
        let d = Decoration::for_list(&config, &list, None);
        let subject = "Re: [dev] Re: [dev] ".to_string() + &"Grüße ".repeat(12);
        let raw_subject = encoded_word::encode(&subject, 9);
        for eol in ["\r\n", "\n"] {
            let m = format!("From: a@example.org{eol}Subject: {raw_subject}{eol}{eol}x{eol}");
            let out = decorate(m.as_bytes(), &d).bytes;
            let text = String::from_utf8(out.clone()).unwrap();
            let head = &text[..header_block::split(&out).header_end];
            // every line of the new fields ends in the message's own line end
            // and fits RFC 2047's 76 columns
            assert_eq!(head.contains('\r'), eol == "\r\n", "{head}");
            for l in head.split(eol).filter(|l| l.contains("=?")) {
                assert!(l.len() <= 76, "{l}");
            }
            let p = MessageParser::default().parse(&out).unwrap();
            let want = format!("Re: [dev] {}", "Grüße ".repeat(12).trim_end());
            assert_eq!(p.subject(), Some(want.as_str()));
            let id = header(&out, "List-Id").unwrap();
            assert_eq!(
                encoded_word::decode(id.as_bytes()).unwrap(),
                format!("{desc} <dev.lists.example.org>")
            );
        }
    }
}
