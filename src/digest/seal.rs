//! The proof that the MIME digest reads back one post per part, and the
//! sealed stand-in for a post that cannot be enclosed as it is.
//!
//! Closing a post's open multiparts (`mime::multipart_close`) repairs the
//! common damage, but a malformed post can still be read differently once
//! enclosed (mail-parser seeks a nested boundary past the post's end, reads
//! a delimiter as a header line, and so on): it would swallow the posts
//! after it. So the built digest is parsed back, and a post that does not
//! read as exactly its own part is replaced by a sealed copy: a new
//! one-part message from the list's point of view whose headers are the
//! post's decoded Subject, From and Date, and whose body is the original's
//! raw text, base64-encoded, so no line of it can be a delimiter.
//!
//! Trusts nothing in the posts: the stand-in carries their text only in
//! encoded words and base64.

use super::item::Item;
use crate::mime::{encoded_word, header_block, phrase, transfer};
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// A one-part message standing in for `item`, safe to enclose anywhere.
pub fn sealed(item: &Item<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |name: &str, value: &str| {
        let folded = header_block::fold_str(value, name.len(), "\r\n");
        out.extend_from_slice(format!("{name}: {folded}\r\n").as_bytes());
    };
    if let Some(address) = item
        .from_address()
        .and_then(|a| crate::address::Address::parse(&a).ok())
    {
        let name = &item.author;
        if *name == item.from_address().unwrap_or_default() {
            field("From", &format!("<{address}>"));
        } else {
            field(
                "From",
                &format!("{} <{address}>", phrase::encode(name, "From: ".len())),
            );
        }
    }
    field(
        "Subject",
        &encoded_word::encode_if_needed(&item.subject, "Subject: ".len()),
    );
    if let Some(date) = item.date_rfc822() {
        field("Date", &date);
    }
    field("MIME-Version", "1.0");
    field("Content-Type", "text/plain; charset=utf-8");
    field("Content-Transfer-Encoding", "base64");
    field(
        "Content-Description",
        "the original post as raw text (its MIME structure was malformed)",
    );
    out.extend_from_slice(b"\r\n");
    let text = String::from_utf8_lossy(item.raw);
    out.extend_from_slice(&transfer::base64_encode_lines(text.as_bytes(), "\r\n"));
    out
}

/// The first post the built digest does not read back as its own
/// message/rfc822 part: `Ok(None)` when all `posts` do, `Err(())` when
/// the digest does not say which (no multipart/digest at all).
pub fn first_misread(digest: &[u8], posts: usize) -> Result<Option<usize>, ()> {
    let Some(m) = MessageParser::default().parse(digest) else {
        return Err(());
    };
    let Some(kids) = m
        .parts
        .iter()
        .filter(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "multipart" && c.subtype() == Some("digest"))
        })
        .find_map(|p| match &p.body {
            PartType::Multipart(kids) => Some(kids),
            _ => None,
        })
    else {
        return Err(());
    };
    for i in 0..posts {
        let Some(part) = kids.get(i).and_then(|&k| m.parts.get(k as usize)) else {
            // a post swallowed the ones after it: the last one read
            return Ok(Some(i.saturating_sub(1)));
        };
        if part.content_type().is_some() || !matches!(part.body, PartType::Message(_)) {
            return Ok(Some(i));
        }
    }
    if kids.len() > posts {
        return Err(()); // a post split in two: which one is not known
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::build_mime::encloses_alone;

    #[test]
    fn a_sealed_post_reads_back_with_its_text_and_headers() {
        let raw = b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: broken\r\nDate: Mon, 03 Jun 2024 06:00:00 +0000\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\nno end";
        let item = Item::parse(raw);
        let s = sealed(&item);
        assert!(encloses_alone(&s, "=_b"));
        let m = MessageParser::default().parse(&s).unwrap();
        assert_eq!(m.subject(), Some("broken"));
        let from = m.from().unwrap().first().unwrap();
        assert_eq!(from.address(), Some("j@example.org"));
        assert_eq!(from.name(), Some("Jürgen"));
        assert!(m.date().is_some());
        assert_eq!(
            m.body_text(0).unwrap().as_bytes(),
            String::from_utf8_lossy(raw).as_bytes()
        );
    }

    #[test]
    fn a_post_without_a_from_address_is_sealed_without_a_from() {
        let item = Item::parse(b"Subject: \xff\r\n\r\nx");
        let s = sealed(&item);
        let m = MessageParser::default().parse(&s).unwrap();
        assert!(m.from().is_none());
        assert!(encloses_alone(&s, "=_b"));
    }

    #[test]
    fn an_unended_nested_multipart_does_not_enclose_alone() {
        // mail-parser seeks `--q` past the post's end and swallows the next part
        let raw = b"Subject: s\r\nContent-Type: multipart/alternative; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nx\r\n";
        assert!(!encloses_alone(raw, "=_b"));
        let closed = [&raw[..], &Item::parse(raw).missing_closes()].concat();
        assert!(encloses_alone(&closed, "=_b"));
        assert!(encloses_alone(b"Subject: fine\r\n\r\nbody\r\n", "=_b"));
    }
}
