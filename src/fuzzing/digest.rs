//! Both digest builders on arbitrary posts.
//!
//! Invariants: nothing panics; the MIME digest parses and its
//! multipart/digest holds exactly one message/rfc822 part per post; the
//! plain (RFC 1153) digest parses and has exactly one 30-hyphen separator
//! line per post (plus one after a footer), so a burster splits it right.

use crate::digest::build_plain::SEP30;
use crate::digest::item::Item;
use crate::digest::text::Digest;
use crate::digest::{build_mime, build_plain, encode};
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Splits the input at NUL bytes: the first piece is `header text` SOH
/// `footer text`, every further piece (at most 50) a post.
pub fn check(data: &[u8]) {
    let mut pieces = data.split(|&b| b == 0);
    let texts = String::from_utf8_lossy(pieces.next().unwrap_or_default()).to_string();
    let (header, footer) = texts.split_once('\x01').unwrap_or((&texts, ""));
    let posts: Vec<&[u8]> = pieces.take(50).collect();
    run(header, footer, &posts);
}

/// Builds both digests of `posts` and checks them.
pub fn run(header_text: &str, footer_text: &str, posts: &[&[u8]]) {
    let headers = vec![
        (
            "From".to_string(),
            "dev-request@lists.example.org".to_string(),
        ),
        (
            "Subject".to_string(),
            "dev Digest, Vol 1, Issue 2".to_string(),
        ),
    ];
    let d = Digest {
        list: "dev",
        volume: 1,
        issue: 2,
        now: 1_717_372_800,
        headers: &headers,
        header_text,
        footer_text,
    };
    let items: Vec<Item<'_>> = posts.iter().map(|p| Item::parse(p)).collect();

    let mime = build_mime::build(&d, &items, &mut encode::random_boundary)
        .expect("a random boundary never collides");
    let m = MessageParser::default()
        .parse(&mime)
        .expect("the MIME digest parses");
    let digests: Vec<&Vec<u32>> = m
        .parts
        .iter()
        .filter(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "multipart" && c.subtype() == Some("digest"))
        })
        .filter_map(|p| match &p.body {
            PartType::Multipart(kids) => Some(kids),
            _ => None,
        })
        .collect();
    if posts.is_empty() {
        assert!(digests.is_empty(), "an empty issue has no multipart/digest");
    } else {
        assert_eq!(digests.len(), 1, "one multipart/digest");
        let kids = digests[0];
        assert_eq!(kids.len(), posts.len(), "one part per post");
        for &k in kids {
            let part = &m.parts[k as usize];
            assert!(
                part.content_type().is_none(),
                "a post part has its own Content-Type"
            );
            assert!(
                matches!(part.body, PartType::Message(_)),
                "a post is not read as message/rfc822"
            );
        }
    }

    let plain = build_plain::build(&d, &items);
    let m = MessageParser::default()
        .parse(&plain)
        .expect("the plain digest parses");
    let text = m.body_text(0).expect("the plain digest has text");
    let separators = crate::mime::lines::lf(&text)
        .split('\n')
        .filter(|l| *l == SEP30)
        .count();
    let footer = usize::from(!footer_text.trim().is_empty());
    assert_eq!(
        separators,
        posts.len() + footer,
        "30-hyphen separators in the plain digest"
    );
}
