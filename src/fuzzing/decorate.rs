//! Posting rules and decoration on arbitrary messages.
//!
//! Invariants: nothing panics; the decorated post has exactly one List-Id,
//! parses, and reads as a loop to the rules of its own list. Whenever
//! mail-parser and `header_block` agree on where the original's body
//! starts, decoration keeps every leaf body part (decoded contents) of the
//! original: without a footer, or when the footer was skipped (signed or
//! encrypted), the leaves are the same; with the footer appended to the
//! single text part, that part's text still starts with the original text;
//! with the footer added as a part (multipart/mixed) or the body wrapped,
//! the original leaves come first, unchanged, then the footer's text. A
//! post that left a multipart open is compared as decoration closed it
//! (`Decorated::closed`), and closing it keeps every leaf but the last.

use crate::config::ListConfig;
use crate::mime::header_block;
use crate::mime::leaves::leaves;
use crate::posts::decorate::{decorate, Decoration, FooterPlacement};
use crate::posts::rules::{self, DiscardReason, Facts, PostAction, PostView, SenderRule};
use mail_parser::{Message, MessageParser};

/// First byte: flags (footer, non-ASCII footer, list `news`, facts); the
/// rest: the message.
pub fn check(data: &[u8]) {
    let Some((&flags, msg)) = data.split_first() else {
        return;
    };
    let footer = match flags & 3 {
        0 => None,
        1 => Some("-- \nDev list footer\n"),
        2 => Some("-- \nListe dév: €\n"),
        _ => Some(""),
    };
    let list = if flags & 4 == 0 { "dev" } else { "news" };
    let facts = Facts {
        is_member: flags & 8 != 0,
        is_moderator: flags & 16 != 0,
        duplicate: flags & 32 != 0,
        pre_approved: flags & 64 != 0,
        verified_sender: false,
        from_dmarc_fail: false,
        bad_approved_password: false,
        sender_rule: (flags & 128 != 0).then_some(SenderRule::Hold),
    };
    run(msg, list, footer, &facts);
}

/// Decides and decorates `msg` for `list`, checking every invariant.
pub fn run(msg: &[u8], list: &str, footer: Option<&str>, facts: &Facts) {
    let config = super::shared_config();
    let lc: &ListConfig = config.list(list).expect("fuzz list");
    let parsed = MessageParser::default().parse_headers(msg);
    let view = PostView::from_message(parsed.as_ref(), msg);
    let action = rules::decide(&view, "ann@example.org", lc, &config.domain, 4096, facts);
    let again = rules::decide(&view, "ann@example.org", lc, &config.domain, 4096, facts);
    assert_eq!(action, again, "decide is not a function of its input");
    if let PostAction::Reject(code, _) = action {
        assert!((500..600).contains(&code), "reject code {code}");
    }

    let d = Decoration::for_list(&config, lc, footer.map(str::to_string));
    let out = decorate(msg, &d);
    let split = header_block::split(&out.bytes);
    assert_eq!(
        split.find(&out.bytes, "List-Id").count(),
        1,
        "List-Id count"
    );
    let after = MessageParser::default()
        .parse(&out.bytes)
        .expect("a decorated post parses");
    let view = PostView::from_message(Some(&after), &out.bytes);
    let facts = Facts::default();
    assert_eq!(
        rules::decide(&view, "ann@example.org", lc, &config.domain, 4096, &facts),
        PostAction::Discard(DiscardReason::LoopListId),
        "the decorated post is not seen as a loop"
    );

    let Some(before) = MessageParser::default().parse(msg) else {
        return;
    };
    if !body_agrees(msg, &before) || !body_agrees(&out.bytes, &after) {
        return; // the parsers disagree on the header block: nothing to compare
    }
    let mut lb = leaves(&before);
    if !out.closed.is_empty() {
        // a post that left a multipart open was closed first: every leaf but
        // the last (which ran to the end, read raw) reads the same closed
        let repaired = [msg, &out.closed].concat();
        let closed = MessageParser::default()
            .parse(&repaired)
            .expect("a repaired post parses");
        let lc = leaves(&closed);
        let kept = lb.len().saturating_sub(1);
        assert!(
            lc.len() >= kept && lc[..kept] == lb[..kept],
            "closing the post changed a part"
        );
        lb = lc;
    }
    let la = leaves(&after);
    match out.footer {
        FooterPlacement::NoFooter
        | FooterPlacement::SkippedSigned
        | FooterPlacement::SkippedMalformed => {
            assert_eq!(lb, la, "decoration changed a body part")
        }
        FooterPlacement::Appended => {
            assert_eq!(lb.len(), 1, "appended to a multi-part body");
            assert_eq!(la.len(), 1, "appending made parts");
            let (b, a) = (&lb[0], &la[0]);
            assert!(a.starts_with(b), "text changed: {b:?} -> {a:?}");
        }
        FooterPlacement::AddedPart | FooterPlacement::Wrapped => {
            assert_eq!(la.len(), lb.len() + 1, "{:?}: one part more", out.footer);
            assert_eq!(la[..lb.len()], lb[..], "{:?} changed a part", out.footer);
            let eol = header_block::split(msg).eol;
            let mut want = footer
                .unwrap_or_default()
                .replace("\r\n", "\n")
                .replace('\n', eol);
            if !want.ends_with(eol) {
                want.push_str(eol);
            }
            assert_eq!(la.last(), Some(&want.into_bytes()), "the footer part");
        }
    }
}

/// Whether mail-parser's root body starts where `header_block` says.
fn body_agrees(raw: &[u8], m: &Message<'_>) -> bool {
    let split = header_block::split(raw);
    m.parts
        .first()
        .is_some_and(|p| p.offset_body as usize == split.body_start.min(raw.len()))
}
