//! Per-recipient copies of a post: on a list with `personalize: true` (and
//! `web.public_url` set), each member's copy carries their own one-click
//! unsubscribe link (RFC 8058) in `List-Unsubscribe`, with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
//!
//! The stored body (archived, digested) keeps the list's generic header;
//! [`Personalizer::copy_for`] makes one recipient's copy from it just
//! before it goes to the relay, one copy at a time, so memory never grows
//! with the list. It is the one place a body becomes a recipient's own
//! (bytes in, bytes out): whatever must see the final copy (DKIM signing)
//! comes after it.
//!
//! Trusts the stored body only as far as `header_block` splits it (any
//! bytes give a well-formed rewrite); the site keys from `member_token`.

use super::queue::JobInfo;
use crate::config::Config;
use crate::member_token::{self, KeyFileError, SiteKeys};
use crate::mime::header_block::{self, Rewrite};
use crate::store::outbound::JobKind;
use std::collections::HashMap;

/// What it takes to personalize the posts of the lists that ask for it.
#[derive(Debug)]
pub struct Personalizer {
    public_url: String,
    keys: SiteKeys,
    /// Each personalizing list's `<mailto:NAME-leave@domain>`.
    mailto: HashMap<String, String>,
}

impl Personalizer {
    /// The personalizer for `config` at `now` (the site keys are made on
    /// first use); None when no list personalizes or `web.public_url` is unset.
    pub fn for_config(config: &Config, now: i64) -> Option<Result<Personalizer, KeyFileError>> {
        let public_url = config.web.public_url.clone()?;
        let mailto: HashMap<String, String> = config
            .lists
            .values()
            .filter(|l| l.personalize)
            .map(|l| {
                let leave = config.list_suffix_address(&l.name, "leave");
                (l.name.clone(), format!("<mailto:{leave}>"))
            })
            .collect();
        if mailto.is_empty() {
            return None;
        }
        Some(
            SiteKeys::load_or_create(&config.data_dir, now).map(|keys| Personalizer {
                public_url,
                keys,
                mailto,
            }),
        )
    }

    /// The list whose copies of `job` are personal, if they are (posts only).
    pub fn list_of<'a>(&self, job: &'a JobInfo) -> Option<&'a str> {
        let list = job.list.as_deref()?;
        (job.kind == JobKind::Post && self.mailto.contains_key(list)).then_some(list)
    }

    /// `rcpt`'s `List-Unsubscribe` value on `list`.
    pub fn list_unsubscribe(&self, list: &str, rcpt: &str) -> Option<String> {
        let mailto = self.mailto.get(list)?;
        let token = self.keys.mint(list, rcpt)?;
        let url = member_token::unsubscribe_url(&self.public_url, &token);
        Some(format!("<{url}>, {mailto}"))
    }

    /// `rcpt`'s copy of `body`, a post to `list`: the body with `rcpt`'s own
    /// List-Unsubscribe and List-Unsubscribe-Post.
    pub fn copy_for(&self, list: &str, body: &[u8], rcpt: &str) -> Vec<u8> {
        match self.list_unsubscribe(list, rcpt) {
            Some(value) => with_list_unsubscribe(body, &value),
            None => body.to_vec(),
        }
    }
}

/// `body` with `value` as its one List-Unsubscribe (in place of the first,
/// others removed) and one `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
pub fn with_list_unsubscribe(body: &[u8], value: &str) -> Vec<u8> {
    let split = header_block::split(body);
    let eol = split.eol;
    let mut rw = Rewrite::new();
    for (name, v) in [
        ("List-Unsubscribe", value.as_bytes()),
        (
            "List-Unsubscribe-Post",
            b"List-Unsubscribe=One-Click".as_slice(),
        ),
    ] {
        let first = split.find(body, name).next();
        rw.remove_all(&split, body, name);
        let folded = header_block::fold(v, name.len(), eol);
        match first {
            Some(i) => rw.replace(i, name, &folded, eol),
            None => rw.append(name, &folded, eol),
        }
    }
    rw.apply(&split, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn header(bytes: &[u8], name: &str) -> Vec<String> {
        let m = MessageParser::default().parse(bytes).unwrap();
        m.header_values(name)
            .filter_map(|v| v.as_text().map(str::to_string))
            .collect()
    }

    #[test]
    fn the_header_is_replaced_in_place_and_the_body_untouched() {
        let post = b"From: a@example.org\r\nList-Unsubscribe: <mailto:dev-leave@l.example.org>\r\nList-Unsubscribe: <https://old>\r\nSubject: hi\r\n\r\nbody\r\n";
        let out = with_list_unsubscribe(post, "<https://l.example.org/u/TOK>, <mailto:x@y>");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.ends_with("\r\n\r\nbody\r\n"), "{text}");
        assert!(
            text.find("List-Unsubscribe:").unwrap() < text.find("Subject:").unwrap(),
            "{text}"
        );
        assert_eq!(text.matches("List-Unsubscribe:").count(), 1, "{text}");
        assert_eq!(
            header(&out, "List-Unsubscribe-Post"),
            ["List-Unsubscribe=One-Click"]
        );
        // a post that already had the Post field keeps only one
        let again = with_list_unsubscribe(&out, "<https://l.example.org/u/B>");
        assert_eq!(
            String::from_utf8(again)
                .unwrap()
                .matches("List-Unsubscribe-Post:")
                .count(),
            1
        );
    }

    #[test]
    fn any_bytes_give_a_rewrite_without_a_panic() {
        for junk in [
            &b""[..],
            b"\r\n",
            b"no header block",
            b"List-Unsubscribe",
            b"\xff\xfe: \xc3\r\n\r\n\xff",
        ] {
            let out = with_list_unsubscribe(junk, "<https://x/u/t>");
            assert!(
                memchr::memmem::find(&out, b"List-Unsubscribe-Post").is_some(),
                "{junk:?}"
            );
        }
    }
}
