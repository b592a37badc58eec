//! DMARC mitigation: the list's copy of a post whose author's domain says
//! `p=quarantine` or `p=reject` would fail DMARC at every receiver (the
//! list rewrites the message and sends it from its own servers). So the
//! From: becomes the list's (`"Alice Example via dev" <dev@...>`, the
//! author in `Reply-To:` and `X-Original-From:`), or the post is wrapped
//! whole in a new message from the list (message/rfc822).
//!
//! [`choose`] is pure (the list's mode and intake's stored verdict);
//! [`munge`] and [`wrap`] are bytes in, bytes out like `decorate()`, every
//! other field and the body passing through untouched. Trusts the verdict;
//! trusts nothing in the message bytes (any input gives a well-formed
//! output, no panic).

use crate::auth::AuthVerdict;
use crate::config::DmarcMitigation;
use crate::mime::header_block::{self, Rewrite};
use crate::mime::phrase;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_parser::MessageParser;

/// What to do to a post's From:.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mitigation {
    Keep,
    Munge,
    Wrap,
}

/// The mitigation for a post under `mode`, given intake's verdict (`None`:
/// not checked, so nothing is known to need it).
pub fn choose(mode: DmarcMitigation, verdict: Option<&AuthVerdict>) -> Mitigation {
    let strict = verdict.is_some_and(AuthVerdict::strict_policy);
    match mode {
        DmarcMitigation::Never => Mitigation::Keep,
        DmarcMitigation::Always => Mitigation::Munge,
        DmarcMitigation::Auto if strict => Mitigation::Munge,
        DmarcMitigation::Wrap if strict => Mitigation::Wrap,
        DmarcMitigation::Auto | DmarcMitigation::Wrap => Mitigation::Keep,
    }
}

/// The author: the first From: mailbox's display name (or local part) and
/// the field's raw value, unfolded.
fn author(bytes: &[u8]) -> Option<(String, String)> {
    let split = header_block::split(bytes);
    let raw = header_block::unfold_text(split.raw_value(bytes, "From")?)
        .trim()
        .to_string();
    let m = MessageParser::default().parse_headers(bytes)?;
    let first = m.from()?.first()?;
    let addr = first.address.as_deref()?.trim();
    let name = first
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| addr.split('@').next().unwrap_or(addr).to_string());
    (!raw.is_empty()).then_some((name, raw))
}

/// `NAME via LIST`, as a phrase on the wire.
fn via(name: &str, list: &str) -> String {
    phrase::encode(&format!("{name} via {list}"), "From: ".len())
}

/// The From: munged to the list's address (see the module doc). The
/// author goes into `X-Original-From:` and is added to `Reply-To:` (after
/// what the list's reply_to policy put there). A message without a
/// readable From: is returned unchanged.
pub fn munge(bytes: &[u8], list: &str, list_address: &str) -> Vec<u8> {
    let Some((name, raw_from)) = author(bytes) else {
        return bytes.to_vec();
    };
    let split = header_block::split(bytes);
    let eol = split.eol;
    let mut rw = Rewrite::new();
    let from = format!("{} <{list_address}>", via(&name, list));
    let froms: Vec<usize> = split.find(bytes, "From").collect();
    for (k, i) in froms.iter().enumerate() {
        if k == 0 {
            rw.replace(
                *i,
                "From",
                &header_block::fold(from.as_bytes(), 4, eol),
                eol,
            );
        } else {
            rw.remove(*i);
        }
    }
    rw.remove_all(&split, bytes, "X-Original-From");
    rw.append(
        "X-Original-From",
        &header_block::fold(raw_from.as_bytes(), "X-Original-From".len(), eol),
        eol,
    );
    let replies: Vec<usize> = split.find(bytes, "Reply-To").collect();
    let reply_to = match replies.first() {
        Some(&i) => {
            let old = header_block::unfold_text(&bytes[split.fields[i].value.clone()]);
            let old = old.trim();
            for j in &replies {
                rw.remove(*j);
            }
            if old.is_empty() {
                raw_from.clone()
            } else {
                format!("{old}, {raw_from}")
            }
        }
        None => raw_from.clone(),
    };
    rw.append(
        "Reply-To",
        &header_block::fold(reply_to.as_bytes(), "Reply-To".len(), eol),
        eol,
    );
    rw.apply(&split, bytes)
}

/// A new message from the list with the post enclosed unchanged as a
/// message/rfc822 part. To, Cc, Subject, Date and Message-ID are carried
/// over (so threads and duplicate checks hold); the author is in
/// `Reply-To:` and `X-Original-From:`.
pub fn wrap(bytes: &[u8], list: &str, list_address: &str) -> Vec<u8> {
    let Some((name, raw_from)) = author(bytes) else {
        return bytes.to_vec();
    };
    let split = header_block::split(bytes);
    let raw = |n: &str| {
        split
            .raw_value(bytes, n)
            .map(|v| header_block::unfold_text(v).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut b = mail_builder::MessageBuilder::new()
        .header(
            "From",
            Raw::new(format!("{} <{list_address}>", via(&name, list))),
        )
        .header("Reply-To", Raw::new(raw_from.clone()))
        .header("X-Original-From", Raw::new(raw_from));
    for n in [
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
    ] {
        if let Some(v) = raw(n) {
            b = b.header(n, Raw::new(v));
        }
    }
    let enclosed = MimePart::new("message/rfc822", bytes.to_vec()).transfer_encoding(
        if bytes.iter().any(|c| *c >= 0x80) {
            "8bit"
        } else {
            "7bit"
        },
    );
    b.body(MimePart::new("multipart/mixed", vec![enclosed]))
        .write_to_vec()
        .unwrap_or_else(|_| bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{DmarcStatus, FromPolicy};
    use mail_parser::{MimeHeaders, PartType};

    const POST: &[u8] = b"From: Alice Example <alice@example.com>\r\nTo: dev@lists.example.org\r\n\
Subject: hi\r\nMessage-ID: <1@x>\r\nReply-To: dev@lists.example.org\r\n\r\nbody\r\n";

    fn verdict(policy: FromPolicy) -> AuthVerdict {
        AuthVerdict {
            dmarc: DmarcStatus::Fail,
            policy,
            from_domain: "example.com".into(),
        }
    }

    #[test]
    fn each_mode_chooses_by_the_published_policy() {
        use DmarcMitigation::*;
        let reject = verdict(FromPolicy::Reject);
        let unknown = verdict(FromPolicy::Unknown);
        let none = verdict(FromPolicy::None);
        assert_eq!(choose(Auto, Some(&reject)), Mitigation::Munge);
        assert_eq!(choose(Auto, Some(&unknown)), Mitigation::Munge);
        assert_eq!(choose(Auto, Some(&none)), Mitigation::Keep);
        assert_eq!(choose(Auto, None), Mitigation::Keep);
        assert_eq!(choose(Always, Some(&none)), Mitigation::Munge);
        assert_eq!(choose(Never, Some(&reject)), Mitigation::Keep);
        assert_eq!(choose(Wrap, Some(&reject)), Mitigation::Wrap);
        assert_eq!(choose(Wrap, Some(&none)), Mitigation::Keep);
    }

    #[test]
    fn munging_moves_the_author_to_reply_to_and_x_original_from() {
        let out = munge(POST, "dev", "dev@lists.example.org");
        let m = MessageParser::default().parse(&out).unwrap();
        let from = m.from().unwrap().first().unwrap();
        assert_eq!(from.name.as_deref(), Some("Alice Example via dev"));
        assert_eq!(from.address.as_deref(), Some("dev@lists.example.org"));
        let rt: Vec<&str> = m
            .reply_to()
            .unwrap()
            .iter()
            .filter_map(|a| a.address.as_deref())
            .collect();
        assert_eq!(rt, ["dev@lists.example.org", "alice@example.com"]);
        assert_eq!(
            m.header_raw("X-Original-From").map(str::trim),
            Some("Alice Example <alice@example.com>")
        );
        assert_eq!(m.body_text(0).as_deref(), Some("body\r\n"));
        // no From: at all: unchanged
        let bare = b"Subject: x\r\n\r\nb\r\n";
        assert_eq!(munge(bare, "dev", "dev@lists.example.org"), bare);
    }

    #[test]
    fn a_non_ascii_name_is_encoded_and_a_bare_address_uses_its_local_part() {
        let p = "From: Jürgen <j@example.com>\r\n\r\nx\r\n".as_bytes();
        let out = munge(p, "dev", "dev@lists.example.org");
        let split = header_block::split(&out);
        let from = split.raw_value(&out, "From").unwrap();
        assert!(from.is_ascii(), "our From: is encoded: {from:?}");
        let m = MessageParser::default().parse(&out).unwrap();
        assert_eq!(
            m.from().unwrap().first().unwrap().name.as_deref(),
            Some("Jürgen via dev")
        );
        let out = munge(
            b"From: bob@example.com\r\n\r\nx\r\n",
            "dev",
            "dev@l.example",
        );
        let m = MessageParser::default().parse(&out).unwrap();
        assert_eq!(
            m.from().unwrap().first().unwrap().name.as_deref(),
            Some("bob via dev")
        );
    }

    #[test]
    fn wrapping_encloses_the_post_unchanged() {
        let out = wrap(POST, "dev", "dev@lists.example.org");
        let m = MessageParser::default().parse(&out).unwrap();
        let from = m.from().unwrap().first().unwrap();
        assert_eq!(from.address.as_deref(), Some("dev@lists.example.org"));
        assert_eq!(m.subject(), Some("hi"));
        assert_eq!(m.message_id(), Some("1@x"));
        let inner = m
            .parts
            .iter()
            .find(|p| p.content_type().is_some_and(|c| c.c_type == "message"))
            .expect("a message/rfc822 part");
        let PartType::Message(inner) = &inner.body else {
            panic!("not parsed as a message: {:?}", inner.body)
        };
        assert_eq!(inner.raw_message(), POST);
    }
}
