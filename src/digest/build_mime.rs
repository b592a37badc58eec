//! The MIME digest (RFC 2046 §5.1.5): a `multipart/mixed` holding a
//! `text/plain` front part (masthead, header text, table of contents), a
//! `multipart/digest` whose body parts are the posts byte for byte with no
//! part headers at all (so each is `message/rfc822` by default), and a
//! `text/plain` footer part.
//!
//! Trusts nothing in the posts: each boundary is random and checked against
//! every part (and the other boundary); on a collision a new one is drawn.
//! The posts are never re-encoded, so the enclosing parts declare `8bit`
//! (or `binary`) when any post needs it. A post that leaves a multipart
//! open gets the missing close delimiters appended
//! ([`crate::mime::multipart_close`]): else it would swallow the posts
//! after it. The digest is read back, and a post that still does not read
//! as its own part is enclosed sealed ([`super::seal`]). A well-formed post
//! is enclosed byte for byte.

use super::encode::contains;
use super::item::Item;
use super::seal;
use super::text::{front_matter, Digest};
use crate::mime::lines::{crlf, has_long_line, MAX_LINE};
use crate::mime::transfer::encode_text;
use crate::mime::{encoded_word, header_block};
use std::borrow::Cow;

/// Why a digest could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("no MIME boundary free of the digest's content after {0} tries")]
    NoBoundary(usize),
}

/// Tries at drawing a boundary before giving up (a random 32-character
/// boundary colliding even once is already astronomically unlikely).
pub const BOUNDARY_TRIES: usize = 16;

/// The transfer encoding a multipart holding these bytes must declare.
fn cte_of(parts: &[&[u8]]) -> Option<&'static str> {
    if parts.iter().any(|p| has_long_line(p, MAX_LINE)) {
        return Some("binary");
    }
    parts.iter().any(|p| !p.is_ascii()).then_some("8bit")
}

fn draw(
    next: &mut dyn FnMut() -> String,
    avoid: &[&[u8]],
    other: Option<&str>,
) -> Result<String, BuildError> {
    for _ in 0..BOUNDARY_TRIES {
        let b = next();
        let clash = b.is_empty()
            || b.len() > 70
            || avoid.iter().any(|p| contains(p, b.as_bytes()))
            || other.is_some_and(|o| o.contains(&b) || b.contains(o));
        if !clash {
            return Ok(b);
        }
        tracing::debug!(boundary = %b, "boundary occurs in the digest; drawing another");
    }
    Err(BuildError::NoBoundary(BOUNDARY_TRIES))
}

fn text_part(out: &mut Vec<u8>, text: &str, description: &str) {
    let enc = encode_text(&crlf(text));
    out.extend_from_slice(
        format!(
            "Content-Type: text/plain; charset={}\r\nContent-Transfer-Encoding: {}\r\nContent-Description: {}\r\n\r\n",
            enc.charset,
            enc.cte,
            header_block::fold_str(
                &encoded_word::encode_if_needed(description, "Content-Description: ".len()),
                "Content-Description".len(),
                "\r\n"
            )
        )
        .as_bytes(),
    );
    out.extend_from_slice(&enc.body);
}

/// Builds the MIME digest. `boundary` draws candidate boundaries
/// (normally [`super::encode::random_boundary`]).
///
/// Each post is enclosed as it is, with the close delimiters it lacks; one
/// that does not read back as its own part even so is sealed
/// ([`seal::sealed`]): first when it is tried alone, then, should the
/// posts still interact, in the whole digest read back.
pub fn build(
    d: &Digest<'_>,
    items: &[Item<'_>],
    boundary: &mut dyn FnMut() -> String,
) -> Result<Vec<u8>, BuildError> {
    let front = front_matter(d, items);
    let footer = d.footer_text.trim_matches('\n').to_string();
    let mut enclosed: Vec<Cow<'_, [u8]>> = items.iter().map(enclosable).collect();
    let mut sealed = vec![false; items.len()];
    for (i, e) in enclosed.iter_mut().enumerate() {
        let probe = super::encode::random_boundary();
        if !contains(e, probe.as_bytes()) && !encloses_alone(e, &probe) {
            *e = Cow::Owned(seal::sealed(&items[i]));
            sealed[i] = true;
        }
    }
    loop {
        let out = assemble(d, &front, &footer, &enclosed, boundary)?;
        if items.is_empty() {
            return Ok(out);
        }
        let misread = match seal::first_misread(&out, items.len()) {
            Ok(None) => return Ok(out),
            Ok(Some(i)) if !sealed[i] => vec![i],
            _ => (0..items.len()).filter(|&i| !sealed[i]).collect(),
        };
        if misread.is_empty() {
            tracing::warn!("the MIME digest does not read back one part per post even sealed");
            return Ok(out);
        }
        for i in misread {
            tracing::debug!(
                post = i,
                "post misread inside the digest; enclosing it sealed"
            );
            enclosed[i] = Cow::Owned(seal::sealed(&items[i]));
            sealed[i] = true;
        }
    }
}

/// A post as the digest encloses it: its bytes, with the close delimiters
/// of the multiparts it leaves open (a post leaving one open would swallow
/// the posts after it).
fn enclosable<'a>(it: &Item<'a>) -> Cow<'a, [u8]> {
    let close = it.missing_closes();
    if close.is_empty() {
        Cow::Borrowed(it.raw)
    } else {
        Cow::Owned([it.raw, close.as_slice()].concat())
    }
}

/// Writes `post` as the next part of the multipart/digest with `boundary`.
fn enclose(out: &mut Vec<u8>, boundary: &str, post: &[u8]) {
    // delimiter, then an empty header section: no Content-Type, so
    // the part is message/rfc822 (RFC 2046 §5.1.5); then the post as is.
    out.extend_from_slice(format!("\r\n--{boundary}\r\n\r\n").as_bytes());
    out.extend_from_slice(post);
    // a post with no empty line at all is all header section, as
    // any parser reads it; unterminated, it would swallow the next
    // delimiter (the CRLF before a delimiter belongs to the
    // delimiter): end it with its empty line, so no reader
    // (mail-parser's field parsers included) runs on into the
    // delimiter. A post with a body is enclosed as it is, final
    // line end or not
    let no_body = memchr::memmem::find(post, b"\n\r\n").is_none()
        && memchr::memmem::find(post, b"\n\n").is_none();
    if no_body {
        if !post.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether `post`, enclosed as the first of two parts of a
/// multipart/digest, reads back as one message/rfc822 part followed by the
/// second: the check each post passes before it is enclosed as it is.
pub(super) fn encloses_alone(post: &[u8], boundary: &str) -> bool {
    let mut probe =
        format!("Content-Type: multipart/digest; boundary=\"{boundary}\"\r\n\r\n").into_bytes();
    enclose(&mut probe, boundary, post);
    enclose(&mut probe, boundary, b"Subject: next\r\n\r\nnext\r\n");
    probe.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    matches!(seal::first_misread(&probe, 2), Ok(None))
}

/// Writes the digest around the `enclosed` posts.
fn assemble(
    d: &Digest<'_>,
    front: &str,
    footer: &str,
    enclosed: &[Cow<'_, [u8]>],
    boundary: &mut dyn FnMut() -> String,
) -> Result<Vec<u8>, BuildError> {
    let mut avoid: Vec<&[u8]> = enclosed.iter().map(|e| e.as_ref()).collect();
    let cte = cte_of(&avoid);
    avoid.push(front.as_bytes());
    avoid.push(footer.as_bytes());
    let outer = draw(boundary, &avoid, None)?;
    let inner = draw(boundary, &avoid, Some(&outer))?;
    let front_enc_8bit = !front.is_ascii() || !footer.is_ascii();
    let outer_cte = match (cte, front_enc_8bit) {
        (Some(c), _) => Some(c),
        (None, true) => Some("8bit"),
        (None, false) => None,
    };

    let size: usize = enclosed.iter().map(|e| e.len() + inner.len() + 8).sum();
    let mut out = Vec::with_capacity(size + front.len() + footer.len() + 2048);
    for (name, value) in d.headers {
        let value = header_block::fold_str(value, name.len(), "\r\n");
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!("MIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"{outer}\"\r\n")
            .as_bytes(),
    );
    if let Some(c) = outer_cte {
        out.extend_from_slice(format!("Content-Transfer-Encoding: {c}\r\n").as_bytes());
    }
    out.extend_from_slice(
        b"\r\nThis is a MIME digest. Each post is enclosed as a message/rfc822 part.\r\n",
    );

    // the front part: masthead, header text, table of contents
    out.extend_from_slice(format!("\r\n--{outer}\r\n").as_bytes());
    text_part(&mut out, front, &d.title());

    // the posts; an empty issue has no multipart/digest (a multipart needs a part)
    if !enclosed.is_empty() {
        out.extend_from_slice(format!("\r\n--{outer}\r\n").as_bytes());
        out.extend_from_slice(
            format!("Content-Type: multipart/digest;\r\n boundary=\"{inner}\"\r\n").as_bytes(),
        );
        if let Some(c) = cte {
            out.extend_from_slice(format!("Content-Transfer-Encoding: {c}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        for post in enclosed {
            enclose(&mut out, &inner, post);
        }
        out.extend_from_slice(format!("\r\n--{inner}--\r\n").as_bytes());
    }

    if !footer.trim().is_empty() {
        out.extend_from_slice(format!("\r\n--{outer}\r\n").as_bytes());
        text_part(&mut out, footer, "Digest Footer");
    }
    out.extend_from_slice(format!("\r\n--{outer}--\r\n").as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest<'a>(headers: &'a [(String, String)]) -> Digest<'a> {
        Digest {
            list: "dev",
            volume: 1,
            issue: 2,
            now: 1_717_372_800,
            headers,
            header_text: "head",
            footer_text: "foot",
        }
    }

    #[test]
    fn a_boundary_found_in_a_post_is_drawn_again() {
        let post = b"From: a@example.org\r\nSubject: tricky\r\n\r\n--=_taken\r\n".to_vec();
        let items = vec![Item::parse(&post)];
        let headers = vec![(
            "Subject".to_string(),
            "dev Digest, Vol 1, Issue 2".to_string(),
        )];
        let mut drawn = vec!["=_fresh_inner", "=_taken", "=_fresh_outer", "=_taken"];
        let mut next = move || drawn.pop().unwrap_or("=_x").to_string();
        let out = build(&digest(&headers), &items, &mut next).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("boundary=\"=_fresh_outer\""), "{text}");
        assert!(text.contains("boundary=\"=_fresh_inner\""), "{text}");
        assert!(!text.contains("boundary=\"=_taken\""));
        // the enclosed line is untouched
        assert!(text.contains("\r\n--=_taken\r\n"));
    }

    #[test]
    fn a_boundary_nested_in_the_other_is_refused() {
        let items: Vec<Item<'_>> = Vec::new();
        let headers = vec![];
        let mut drawn = vec!["=_bb", "=_b", "=_abc", "=_a"];
        let mut next = move || drawn.pop().unwrap_or("=_zz").to_string();
        let out = String::from_utf8(build(&digest(&headers), &items, &mut next).unwrap()).unwrap();
        // no posts: no multipart/digest, just the front and footer parts
        assert!(!out.contains("multipart/digest"));
        assert!(out.contains("boundary=\"=_a\""), "{out}");
        assert!(out.ends_with("\r\n--=_a--\r\n"));
    }

    #[test]
    fn gives_up_when_every_boundary_collides() {
        let post = b"Subject: x\r\n\r\n=_same\r\n".to_vec();
        let items = vec![Item::parse(&post)];
        let headers = vec![];
        let mut next = || "=_same".to_string();
        assert_eq!(
            build(&digest(&headers), &items, &mut next),
            Err(BuildError::NoBoundary(BOUNDARY_TRIES))
        );
    }

    /// Found by the property tests (tests/props.rs): a post whose header
    /// section runs to its last byte without a line end swallowed the next
    /// delimiter, so two posts read back as one.
    #[test]
    fn a_post_without_a_final_line_end_keeps_its_own_part() {
        use mail_parser::{MessageParser, MimeHeaders, PartType};
        let posts: [&[u8]; 3] = [b"R: x\r\nx", b"R: x\r\n-", b"Subject: y\r\n\r\nz\r\n"];
        let items: Vec<Item<'_>> = posts.iter().map(|p| Item::parse(p)).collect();
        let headers = vec![];
        let out = build(
            &digest(&headers),
            &items,
            &mut crate::digest::encode::random_boundary,
        )
        .unwrap();
        let m = MessageParser::default().parse(&out).unwrap();
        let kids = m
            .parts
            .iter()
            .find(|p| p.content_type().and_then(|c| c.subtype()) == Some("digest"))
            .map(|p| match &p.body {
                PartType::Multipart(k) => k.clone(),
                _ => Vec::new(),
            })
            .unwrap();
        assert_eq!(kids.len(), 3);
        for (k, post) in kids.iter().zip(posts) {
            let PartType::Message(msg) = &m.parts[*k as usize].body else {
                panic!("not a message part");
            };
            assert!(msg.raw_message().starts_with(post));
        }
        // a post that ends in a line end is enclosed exactly as it is
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("\r\n\r\nSubject: y\r\n\r\nz\r\n\r\n--"),
            "{text}"
        );
    }

    /// Found by the fuzzers (fuzz/seeds/digest/regress_*): a post whose
    /// multipart never closed (or never opened: mail-parser sought its
    /// first delimiter in the later posts) swallowed the posts after it.
    #[test]
    fn a_post_leaving_a_multipart_open_keeps_the_next_posts_apart() {
        use mail_parser::{MessageParser, MimeHeaders, PartType};
        let open =
            b"Subject: open\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nx\r\n";
        let unopened =
            b"Subject: unopened\r\nContent-Type: multipart/alternative; boundary=q\r\n\r\ny\r\n";
        let later = b"Subject: later\r\n\r\n--q\r\nz\r\n--q--\r\n";
        let posts: [&[u8]; 4] = [open, unopened, later, b"Subject: last\r\n\r\nw\r\n"];
        let items: Vec<Item<'_>> = posts.iter().map(|p| Item::parse(p)).collect();
        let headers = vec![];
        let out = build(
            &digest(&headers),
            &items,
            &mut crate::digest::encode::random_boundary,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("\r\nx\r\n\r\n--q--\r\n\r\n--"), "{text}");
        assert!(
            text.contains("\r\ny\r\n\r\n--q\r\n\r\n--q--\r\n\r\n--"),
            "{text}"
        );
        // the well-formed posts are enclosed as they are
        assert!(text.contains("\r\n\r\nSubject: later\r\n\r\n--q\r\nz\r\n--q--\r\n\r\n--"));
        let m = MessageParser::default().parse(&out).unwrap();
        let kids = m
            .parts
            .iter()
            .find(|p| p.content_type().and_then(|c| c.subtype()) == Some("digest"))
            .map(|p| match &p.body {
                PartType::Multipart(k) => k.clone(),
                _ => Vec::new(),
            })
            .unwrap();
        assert_eq!(kids.len(), 4);
        for (k, post) in kids.iter().zip(posts) {
            let PartType::Message(msg) = &m.parts[*k as usize].body else {
                panic!("not a message part");
            };
            assert!(msg.raw_message().starts_with(post));
        }
    }

    #[test]
    fn eight_bit_posts_make_the_multiparts_8bit() {
        let post = "Subject: x\r\n\r\nGrüße\r\n".as_bytes().to_vec();
        assert_eq!(cte_of(&[&post]), Some("8bit"));
        assert_eq!(cte_of(&[b"a\r\nb"]), None);
        let long = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(2000));
        assert_eq!(cte_of(&[long.as_bytes()]), Some("binary"));
        let items = vec![Item::parse(&post)];
        let headers = vec![];
        let out = build(
            &digest(&headers),
            &items,
            &mut crate::digest::encode::random_boundary,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches("Content-Transfer-Encoding: 8bit").count(),
            2,
            "{text}"
        );
    }
}
