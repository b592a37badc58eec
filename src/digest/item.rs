//! One post as a digest sees it: its bytes as distributed, and what the
//! table of contents and the plain digest need from them (decoded subject
//! and author, the RFC 1153 header subset, the body reduced to text).
//!
//! The bytes are untrusted mail (they came from the network, then through
//! the post handlers): parsing is best effort and never panics; a message
//! mail-parser cannot read still gets an entry, with placeholders.

use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};

/// A post in a digest issue.
pub struct Item<'a> {
    /// The post exactly as it was distributed.
    pub raw: &'a [u8],
    /// Decoded Subject (`(no subject)` when there is none).
    pub subject: String,
    /// Decoded author: the From display name, else its address.
    pub author: String,
    parsed: Option<Message<'a>>,
}

/// The RFC 1153 header subset, in the order RFC 1153 gives (Summary last).
pub const RFC1153_HEADERS: [&str; 8] = [
    "Date",
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "Keywords",
    "Summary",
];

/// Parses the MIME structure and only the header fields a digest reads;
/// every other field (Received and the like) is kept raw, unparsed.
fn parser() -> MessageParser {
    MessageParser::new()
        .with_mime_headers()
        .header_address(HeaderName::From)
        .header_address(HeaderName::To)
        .header_address(HeaderName::Cc)
        .header_text(HeaderName::Subject)
        .header_id(HeaderName::MessageId)
        .header_date(HeaderName::Date)
        .header_comma_separated(HeaderName::Keywords)
}

/// Unfolds and RFC 2047-decodes an unstructured header value that
/// mail-parser keeps raw (like Summary).
fn decode_unstructured(raw: &str) -> Option<String> {
    crate::mime::encoded_word::decode(raw.as_bytes()).map(|s| one_line(&s))
}

/// Collapses folding and runs of white space into single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn format_addresses(a: &Address<'_>) -> String {
    a.iter()
        .map(|addr| {
            let email = addr.address().unwrap_or_default();
            match addr.name() {
                Some(n) if !n.trim().is_empty() && !email.is_empty() => {
                    format!("{} <{email}>", crate::mime::phrase::quote(&one_line(n)))
                }
                Some(n) if !n.trim().is_empty() => one_line(n),
                _ => email.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'a> Item<'a> {
    /// Reads what the digest needs from a distributed post.
    pub fn parse(raw: &'a [u8]) -> Item<'a> {
        let parsed = parser().parse(raw);
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .map(one_line)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(no subject)".to_string());
        let author = parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .and_then(|a| {
                a.name()
                    .map(one_line)
                    .filter(|n| !n.is_empty())
                    .or_else(|| a.address().map(str::to_string))
            })
            .unwrap_or_else(|| "(unknown sender)".to_string());
        Item {
            raw,
            subject,
            author,
            parsed,
        }
    }

    /// The address of the first `From:` mailbox, as written.
    pub fn from_address(&self) -> Option<String> {
        let from = self.parsed.as_ref()?.from()?.first()?;
        from.address().map(str::to_string)
    }

    /// The post's `Date:` in RFC 5322 form, when it has a readable one.
    pub fn date_rfc822(&self) -> Option<String> {
        self.parsed.as_ref()?.date().map(|d| d.to_rfc822())
    }

    /// What the post needs appended to close the multiparts it leaves
    /// open (empty for a well-formed post), so that enclosing it cannot
    /// swallow what follows: see [`crate::mime::multipart_close`].
    pub fn missing_closes(&self) -> Vec<u8> {
        // what follows a post is the other posts: anything
        crate::mime::multipart_close::missing_closes_parsed(self.raw, self.parsed.as_ref(), &|_| {
            true
        })
    }

    /// The RFC 1153 header lines present in the post, decoded to text,
    /// one line each, in RFC 1153 order.
    pub fn rfc1153_headers(&self) -> Vec<(&'static str, String)> {
        let Some(m) = &self.parsed else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in RFC1153_HEADERS {
            let value = match name {
                "Date" => m.header_raw("Date").map(one_line),
                "From" => m.from().map(format_addresses),
                "To" => m.to().map(format_addresses),
                "Cc" => m.cc().map(format_addresses),
                "Subject" => m.subject().map(one_line),
                "Message-ID" => m.message_id().map(|id| format!("<{id}>")),
                "Keywords" => match m.keywords() {
                    HeaderValue::TextList(l) => {
                        Some(l.iter().map(|k| one_line(k)).collect::<Vec<_>>().join(", "))
                    }
                    HeaderValue::Text(t) => Some(one_line(t)),
                    _ => None,
                },
                _ => m.header_raw("Summary").and_then(decode_unstructured),
            };
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.push((name, v));
            }
        }
        out
    }

    /// The body as plain text: text parts as they are, HTML reduced to
    /// text, and every other part (attachments, images, enclosed messages)
    /// replaced by a one-line note. Line ends are `\n`.
    pub fn body_text(&self) -> String {
        let Some(m) = &self.parsed else {
            // Unparsable: whatever follows the header block, as text.
            let body = &self.raw[crate::mime::header_block::split(self.raw).body_start..];
            return crate::mime::lines::lf(&String::from_utf8_lossy(body));
        };
        let mut out = String::new();
        let mut push = |s: &str| {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        };
        for &i in &m.text_body {
            let Some(part) = m.parts.get(i as usize) else {
                continue;
            };
            match &part.body {
                PartType::Text(t) => push(t),
                PartType::Html(h) => push(&mail_parser::decoders::html::html_to_text(h)),
                _ => push(&note(part)),
            }
        }
        for &i in &m.attachments {
            if m.text_body.contains(&i) {
                continue;
            }
            if let Some(part) = m.parts.get(i as usize) {
                push(&note(part));
            }
        }
        crate::mime::lines::lf(&out)
    }
}

/// `[Attachment: report.pdf (application/pdf, 12345 bytes) not included]`.
fn note(part: &mail_parser::MessagePart<'_>) -> String {
    let ctype = part
        .content_type()
        .map(|c| match c.subtype() {
            Some(s) => format!("{}/{}", c.ctype(), s),
            None => c.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase();
    let size = part.len();
    match &part.body {
        PartType::Message(inner) => format!(
            "[Attached message: \"{}\" ({size} bytes) not included]",
            inner
                .subject()
                .map(one_line)
                .unwrap_or_else(|| "(no subject)".into())
        ),
        _ => match part.attachment_name() {
            Some(name) => format!(
                "[Attachment: {} ({ctype}, {size} bytes) not included]",
                one_line(name)
            ),
            None => format!("[Attachment ({ctype}, {size} bytes) not included]"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_subject_and_author() {
        let raw = b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.org>\r\nSubject: =?utf-8?b?R3LDvMOfZQ==?= und\r\n mehr\r\nDate: Mon, 3 Jun 2024 06:00:00 +0000\r\nMessage-ID: <a@b>\r\nReceived: from x\r\nKeywords: one, two\r\nSummary: short\r\n\r\nBody\r\n";
        let it = Item::parse(raw);
        assert_eq!(it.subject, "Grüße und mehr");
        assert_eq!(it.author, "Jürgen Müller");
        let h = it.rfc1153_headers();
        let names: Vec<&str> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "Date",
                "From",
                "Subject",
                "Message-ID",
                "Keywords",
                "Summary"
            ]
        );
        assert_eq!(h[1].1, "Jürgen Müller <jm@example.org>");
        assert_eq!(h[3].1, "<a@b>");
        assert_eq!(h[4].1, "one, two");
        assert_eq!(h[5].1, "short");
        assert_eq!(it.body_text(), "Body\n");
    }

    #[test]
    fn falls_back_on_address_and_placeholders() {
        let it = Item::parse(b"From: ann@example.org\r\n\r\nhi\r\n");
        assert_eq!(it.author, "ann@example.org");
        assert_eq!(it.subject, "(no subject)");
        let it = Item::parse(b"");
        assert_eq!(it.author, "(unknown sender)");
        assert!(it.rfc1153_headers().is_empty());
        assert_eq!(it.body_text(), "");
    }

    #[test]
    fn html_is_reduced_and_attachments_noted() {
        let raw = concat!(
            "From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n",
            "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
            "<html><body><p>Hello <b>world</b></p><script>x()</script></body></html>\r\n",
            "--b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n",
            "Content-Disposition: attachment; filename=\"report.pdf\"\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n",
            "--b1--\r\n"
        );
        let it = Item::parse(raw.as_bytes());
        let text = it.body_text();
        assert!(text.contains("Hello world"), "{text}");
        assert!(!text.contains('<'), "{text}");
        assert!(
            text.contains("[Attachment: report.pdf (application/pdf, 3 bytes) not included]"),
            "{text}"
        );
    }

    #[test]
    fn alternative_prefers_plain() {
        let raw = concat!(
            "From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n",
            "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n",
            "--b1\r\nContent-Type: text/plain\r\n\r\nplain version\r\n",
            "--b1\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n",
            "--b1--\r\n"
        );
        let text = Item::parse(raw.as_bytes()).body_text();
        assert!(text.contains("plain version"), "{text}");
        assert!(!text.contains("html version"), "{text}");
    }
}
