//! Composing the robot's mail with mail-builder: UTF-8 text/plain,
//! quoted-printable whenever a line is not plain short ASCII, a Date from the
//! handler's clock, a fresh Message-ID at our domain, `Auto-Submitted`,
//! `X-Loop`, and `In-Reply-To` / `References` pointing to the command mail.
//!
//! Trusts its inputs to be checked addresses; strips control characters
//! from every header text so nothing rendered can inject a header.

use mail_builder::headers::address::Address as HAddress;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;
use rand::RngCore;

/// Everything one outgoing robot mail needs.
#[derive(Debug, Clone)]
pub struct Compose<'a> {
    /// `NAME-request@domain` or `majordomo@domain`.
    pub from: &'a str,
    pub from_name: Option<&'a str>,
    pub to: &'a str,
    pub reply_to: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    /// Message-ID of the mail this answers, without angle brackets.
    pub in_reply_to: Option<&'a str>,
    /// Its References (without angle brackets), oldest first.
    pub references: &'a [String],
    /// `auto-replied` for answers, `auto-generated` for notices.
    pub auto_submitted: &'a str,
    /// Our domain, for the Message-ID.
    pub domain: &'a str,
    pub now: i64,
    /// Sent after the text in a multipart/mixed message.
    pub attachment: Option<&'a Attachment>,
}

/// A file attached to a robot mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// e.g. `application/mbox`.
    pub content_type: String,
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// Replaces control characters (CR, LF, NUL ...) by spaces and trims.
pub fn header_text(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    t.trim().to_string()
}

/// A new Message-ID (without brackets): random, at our domain.
pub fn new_message_id(domain: &str, now: i64) -> String {
    let mut r = [0u8; 12];
    rand::rng().fill_bytes(&mut r);
    format!("{}.{}@{}", now, hex::encode(r), domain)
}

/// Whether a text must be quoted-printable: any byte outside printable
/// ASCII, a line longer than 76, or trailing white space on a line.
fn needs_qp(text: &str) -> bool {
    text.lines().any(|l| {
        l.len() > 76
            || l.ends_with(' ')
            || l.ends_with('\t')
            || l.bytes().any(|b| b >= 0x7f || (b < 0x20 && b != b'\t'))
    })
}

/// The body part: 7bit when that is safe, quoted-printable otherwise.
fn body_part(text: &str) -> std::io::Result<MimePart<'static>> {
    // one line-end convention in, CRLF out
    let mut t = text.replace("\r\n", "\n").replace('\r', "\n");
    if !t.ends_with('\n') {
        t.push('\n');
    }
    let ct = ContentType::new("text/plain").attribute("charset", "utf-8");
    if needs_qp(&t) {
        let mut out = Vec::with_capacity(t.len() + t.len() / 8);
        mail_builder::encoders::quoted_printable::quoted_printable_encode(
            t.as_bytes(),
            &mut out,
            true,
        )?;
        let encoded = String::from_utf8(out).map_err(std::io::Error::other)?;
        Ok(MimePart::new(ct, encoded).transfer_encoding("quoted-printable"))
    } else {
        Ok(MimePart::new(ct, t.replace('\n', "\r\n")).transfer_encoding("7bit"))
    }
}

/// Builds the complete message (CRLF line ends).
pub fn compose(c: &Compose<'_>) -> std::io::Result<Vec<u8>> {
    let from: HAddress<'_> = match c.from_name.map(header_text) {
        Some(n) if !n.is_empty() => (n, c.from.to_string()).into(),
        _ => c.from.to_string().into(),
    };
    let mut b = MessageBuilder::new()
        .from(from)
        .to(c.to.to_string())
        .subject(Text::new(header_text(c.subject)))
        .date(Date::new(c.now))
        .message_id(new_message_id(c.domain, c.now));
    if let Some(r) = c.reply_to {
        b = b.reply_to(r.to_string());
    }
    if let Some(irt) = c.in_reply_to.map(header_text).filter(|s| !s.is_empty()) {
        let mut refs: Vec<String> = c
            .references
            .iter()
            .map(|r| header_text(r))
            .filter(|r| !r.is_empty() && *r != irt)
            .collect();
        // keep the chain bounded: the first (thread root) and the latest
        if refs.len() > 10 {
            let tail = refs.split_off(refs.len() - 9);
            refs.truncate(1);
            refs.extend(tail);
        }
        refs.push(irt.clone());
        b = b
            .in_reply_to(MessageId::new(irt))
            .references(MessageId::new_list(refs.into_iter()));
    }
    b = b
        .header("Auto-Submitted", Raw::new(c.auto_submitted.to_string()))
        .header("X-Loop", Raw::new(c.from.to_string()));
    let text = body_part(c.body)?;
    b = match c.attachment {
        None => b.body(text),
        Some(a) => b.body(MimePart::new(
            "multipart/mixed",
            vec![
                text,
                // binary: mail-builder picks the encoding (base64 for an
                // mbox with 8-bit or long lines) and encodes it
                MimePart::new(
                    ContentType::new(header_text(&a.content_type)),
                    a.bytes.as_slice(),
                )
                .attachment(header_text(&a.filename)),
            ],
        )),
    };
    b.write_to_vec()
}

/// Word-wraps lines longer than `width` at spaces; shorter lines (and
/// words longer than `width`) are left as they are, so preformatted text
/// such as member lists keeps its shape. A long line keeps its leading
/// indent, and a two-column line (`  who LIST    the members ...`) keeps
/// its first column as written and continues under the second.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 60);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= width {
            out.push_str(line);
        } else {
            wrap_line(line, width, &mut out);
        }
    }
    out
}

/// Where the text of a line's second column starts: after the first run of
/// two or more spaces that follows some text, if that is within the left
/// half of `width` (else the line is prose, and only its indent is kept).
fn hanging_column(chars: &[char], lead: usize, width: usize) -> Option<usize> {
    let mut i = lead;
    while i + 1 < chars.len() {
        if chars[i] == ' ' && chars[i + 1] == ' ' {
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            return (j < chars.len() && j <= width / 2).then_some(j);
        }
        i += 1;
    }
    None
}

fn wrap_line(line: &str, width: usize, out: &mut String) {
    let chars: Vec<char> = line.chars().collect();
    let lead = chars.iter().take_while(|c| **c == ' ').count();
    let (prefix, hang) = match hanging_column(&chars, lead, width) {
        Some(col) => (chars[..col].iter().collect::<String>(), col),
        None => (" ".repeat(lead), lead),
    };
    let rest: String = chars[prefix.chars().count()..].iter().collect();
    out.push_str(&prefix);
    let mut col = hang;
    let mut first = true;
    for word in rest.split(' ').filter(|w| !w.is_empty()) {
        let w = word.chars().count();
        if !first && col + 1 + w > width {
            out.push('\n');
            out.push_str(&" ".repeat(hang));
            col = hang;
            first = true;
        }
        if !first {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += w;
        first = false;
    }
}

/// Splits a rendered template into (subject, body): a template may start
/// with a `Subject: ...` line followed by a blank line.
pub fn split_subject(rendered: &str) -> (Option<String>, String) {
    let text = rendered.trim_start_matches(['\n', '\r']);
    if let Some(rest) = text.strip_prefix("Subject:") {
        let (first, body) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let body = body
            .strip_prefix("\r\n")
            .or_else(|| body.strip_prefix('\n'))
            .unwrap_or(body);
        return (Some(header_text(first)), body.to_string());
    }
    (None, text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn base<'a>(body: &'a str, refs: &'a [String]) -> Compose<'a> {
        Compose {
            from: "dev-request@lists.example.org",
            from_name: Some("dev list robot"),
            to: "ann@example.org",
            reply_to: Some("dev-confirm+abc@lists.example.org"),
            subject: "confirm abc\r\nBcc: evil@x.org",
            body,
            in_reply_to: Some("orig@example.org"),
            references: refs,
            auto_submitted: "auto-replied",
            domain: "lists.example.org",
            now: 1_700_000_000,
            attachment: None,
        }
    }

    #[test]
    fn well_formed_reply_headers() {
        let refs = vec!["root@example.org".to_string()];
        let bytes = compose(&base("Hello\nsecond line\n", &refs)).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("\nBcc:"), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: 7bit"), "{text}");
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "bare LF in {text}"
        );
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.subject(), Some("confirm abc  Bcc: evil@x.org"));
        assert_eq!(m.in_reply_to().as_text(), Some("orig@example.org"));
        let r = m.references().as_text_list().unwrap();
        assert_eq!(r, vec!["root@example.org", "orig@example.org"]);
        assert_eq!(
            m.header_raw("Auto-Submitted").map(str::trim),
            Some("auto-replied")
        );
        assert!(m.message_id().unwrap().ends_with("@lists.example.org"));
        assert_eq!(m.date().unwrap().to_timestamp(), 1_700_000_000);
        assert_eq!(
            m.reply_to().unwrap().first().unwrap().address(),
            Some("dev-confirm+abc@lists.example.org")
        );
        assert_eq!(m.body_text(0).unwrap(), "Hello\r\nsecond line\r\n");
    }

    /// An attachment is really encoded (not just labelled): every line of
    /// the mail stays short, and the parsed part gives the bytes back.
    #[test]
    fn attachments_are_encoded_and_round_trip() {
        use mail_parser::MimeHeaders;
        let mut mbox =
            b"From ann@example.org Mon Nov 30 02:50:14 2026\nSubject: caf\xc3\xa9\n\n".to_vec();
        mbox.extend(std::iter::repeat_n(b'y', 1500));
        mbox.extend(b"\n>From the start\n\x00\xff binary\n\n");
        let a = Attachment {
            content_type: "application/mbox".into(),
            filename: "dev-2026-11.mbox".into(),
            bytes: mbox.clone(),
        };
        let mut c = base("Here it is.\n", &[]);
        c.attachment = Some(&a);
        let bytes = compose(&c).unwrap();
        assert!(
            bytes.split(|b| *b == b'\n').all(|l| l.len() <= 78),
            "a long line in {}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(bytes.is_ascii(), "7-bit clean");
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(m.body_text(0).unwrap(), "Here it is.\r\n");
        let att = m.attachment(0).unwrap();
        assert_eq!(att.attachment_name(), Some("dev-2026-11.mbox"));
        assert_eq!(att.contents(), &mbox[..]);
    }

    #[test]
    fn utf8_and_long_lines_go_quoted_printable() {
        let body = format!("Grüße aus Köln\n{}\n", "x".repeat(120));
        let bytes = compose(&base(&body, &[])).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(text.lines().all(|l| l.len() <= 78), "{text}");
        let m = MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(
            m.body_text(0).unwrap().replace("\r\n", "\n"),
            body.to_string()
        );
        // a UTF-8 subject is RFC 2047-encoded and the whole message is ASCII
        let mut c = base(&body, &[]);
        c.subject = "Willkommen bei der Liste für Köln";
        let raw = compose(&c).unwrap();
        assert!(raw.is_ascii());
        let m3 = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(m3.subject(), Some("Willkommen bei der Liste für Köln"));
        // no In-Reply-To given: no References either
        let mut c = base("x", &[]);
        c.in_reply_to = None;
        let m2 = compose(&c).unwrap();
        let m2 = MessageParser::default().parse(&m2).unwrap();
        assert!(m2.in_reply_to().is_empty());
    }

    #[test]
    fn wrapping_long_lines_only() {
        let long = "A confirmation request has been sent to ann@example.org. Reply to it, or send the line.";
        let w = wrap(long, 40);
        assert!(w.lines().all(|l| l.chars().count() <= 40), "{w}");
        assert_eq!(w.replace('\n', " "), long);
        assert_eq!(wrap("short\n  kept  as is\n", 40), "short\n  kept  as is\n");
        let word = "x".repeat(50);
        assert_eq!(wrap(&format!("a {word}"), 40), format!("a\n{word}"));
        assert_eq!(
            wrap("  indented words here", 10),
            "  indented\n  words\n  here"
        );
    }

    #[test]
    fn wrapping_keeps_two_column_tables_aligned() {
        let table = "  who LIST      the members of LIST, where the list allows it";
        assert_eq!(
            wrap(table, 40),
            "  who LIST      the members of LIST,\n                where the list allows it"
        );
        // a short table line keeps its spacing untouched
        assert_eq!(wrap("  a     b", 40), "  a     b");
        // a wide gap far to the right is prose, not a column
        let prose = format!("{}  {}", "word ".repeat(8).trim_end(), "tail ".repeat(6));
        let w = wrap(prose.trim_end(), 40);
        assert!(w.lines().all(|l| !l.starts_with(' ')), "{w}");
        assert!(w.lines().all(|l| l.chars().count() <= 40), "{w}");
    }

    #[test]
    fn subject_line_in_templates() {
        assert_eq!(
            split_subject("Subject: Welcome to dev\n\nHello\n"),
            (Some("Welcome to dev".into()), "Hello\n".into())
        );
        assert_eq!(split_subject("Hello\n"), (None, "Hello\n".into()));
    }
}
