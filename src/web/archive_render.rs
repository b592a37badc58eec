//! One archived message as the web archive shows it, made safe to show:
//! its headers and text body (escaped later by the page template), its
//! HTML body cleaned by `ammonia` (no script, no style sheet, no remote
//! image or frame, links `rel="nofollow noopener noreferrer"`), its
//! attachments listed by number, name, type and size, and one
//! attachment's bytes with a Content-Type and file name fit for a header.
//! Also the search result's snippet.
//!
//! Trusts nothing in the message: every header, name and type may be
//! hostile; a message mail-parser cannot parse shows as empty, never a
//! panic.

use mail_parser::{Address, Message, MessageParser, MimeHeaders};
use serde::Serialize;

/// An attachment, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentInfo {
    /// Its number among the message's attachments (the `part/{n}` URL).
    pub n: u32,
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

/// What the message page shows of a message.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    pub from: String,
    pub to: String,
    pub cc: String,
    /// The text body (HTML-only mail: its text as mail-parser reads it).
    pub text: String,
    /// The HTML body, sanitized; None when the message has no text/html part.
    pub html: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
}

fn addresses(a: Option<&Address<'_>>) -> String {
    a.map(|a| {
        a.iter()
            .map(|a| match (a.name.as_deref(), a.address.as_deref()) {
                (Some(n), Some(e)) => format!("{n} <{e}>"),
                (Some(n), None) => n.to_string(),
                (None, Some(e)) => e.to_string(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
    .unwrap_or_default()
}

/// A MIME type fit for a Content-Type header: `type/subtype` of token
/// characters, else `application/octet-stream`.
fn safe_type<'x>(m: &impl MimeHeaders<'x>) -> String {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match m.content_type() {
        Some(ct) if token(ct.ctype()) && ct.subtype().is_some_and(token) => format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase()
        ),
        _ => "application/octet-stream".into(),
    }
}

fn attachments(m: &Message<'_>) -> Vec<AttachmentInfo> {
    m.attachments()
        .enumerate()
        .map(|(n, p)| AttachmentInfo {
            n: n as u32,
            name: p
                .attachment_name()
                .map(str::to_string)
                .unwrap_or_else(|| format!("part-{n}")),
            content_type: safe_type(p),
            size: p.contents().len() as u64,
        })
        .collect()
}

/// Reads `bytes` for the message page.
pub fn show(bytes: &[u8]) -> Shown {
    let Some(m) = MessageParser::default().parse(bytes) else {
        return Shown::default();
    };
    let html = m
        .html_part(0)
        .filter(|p| p.is_text_html())
        .and_then(|p| p.text_contents())
        .map(sanitize_html);
    Shown {
        from: addresses(m.from()),
        to: addresses(m.to()),
        cc: addresses(m.cc()),
        text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html,
        attachments: attachments(&m),
    }
}

/// Attachment `n` of `bytes`: its listing and its decoded bytes.
pub fn part(bytes: &[u8], n: u32) -> Option<(AttachmentInfo, Vec<u8>)> {
    let m = MessageParser::default().parse(bytes)?;
    let info = attachments(&m).into_iter().nth(n as usize)?;
    let body = m.attachment(n)?;
    Some((info, body.contents().to_vec()))
}

/// `html` with everything that could run, restyle the page or load from
/// elsewhere removed: ammonia's allow-list of tags and attributes, no
/// relative URLs, images only from `data:image/` URLs, links marked
/// `nofollow noopener noreferrer`.
pub fn sanitize_html(html: &str) -> String {
    let mut schemes = ammonia::Builder::default().clone_url_schemes();
    schemes.insert("data");
    ammonia::Builder::default()
        .url_schemes(schemes)
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("nofollow noopener noreferrer"))
        .attribute_filter(|element, attribute, value| {
            let data = value
                .trim_start()
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("data:"));
            let image = value
                .trim_start()
                .get(..11)
                .is_some_and(|p| p.eq_ignore_ascii_case("data:image/"));
            match (element, attribute) {
                ("img", "src") => image.then(|| value.into()),
                (_, "src") => None,
                _ if data => None,
                _ => Some(value.into()),
            }
        })
        .clean(html)
        .to_string()
}

/// About `width` characters of `body` around the first (ASCII
/// case-insensitive) `needle`, else from its start; whitespace folded.
pub fn snippet(body: &str, needle: &str, width: usize) -> String {
    // ASCII lowercasing keeps every byte where it was, so `at` is a char
    // boundary of `body` too
    let at = body
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())
        .unwrap_or(0);
    let start = body[..at]
        .char_indices()
        .rev()
        .nth(width / 3)
        .map_or(0, |(i, _)| i);
    let rest = &body[start..];
    let end = rest
        .char_indices()
        .nth(width)
        .map_or(rest.len(), |(i, _)| i);
    let mut out = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    if start > 0 {
        out.insert(0, '…');
    }
    if end < rest.len() {
        out.push('…');
    }
    out
}

/// A `Content-Disposition: attachment` value naming `name`: an ASCII
/// `filename` (other characters as `_`) and the exact one as RFC 5987
/// `filename*`.
pub fn disposition(name: &str) -> String {
    let name: String = name.chars().take(200).collect();
    let ascii: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | ' ' => c,
            _ => '_',
        })
        .collect();
    let mut exact = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            exact.push(b as char);
        } else {
            exact.push_str(&format!("%{b:02X}"));
        }
    }
    let ascii = if ascii.trim().is_empty() {
        "attachment".to_string()
    } else {
        ascii
    };
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_loses_scripts_styles_remote_images_and_relative_links() {
        let dirty = r#"<p onclick="x()">Hi <b>there</b></p><script>alert(1)</script>
<style>body{display:none}</style><link rel="stylesheet" href="http://evil.example/s.css">
<img src="http://evil.example/track.gif"><img src="//evil.example/t.gif">
<img src="data:image/png;base64,AAAA" alt="ok"><img src="/archive/dev/msg/1">
<a href="https://example.org/">out</a><a href="/logout">in</a><a href="data:text/html,x">d</a>
<iframe src="https://evil.example/"></iframe><p style="background:url(http://evil.example/)">s</p>"#;
        let clean = sanitize_html(dirty);
        for gone in [
            "<script",
            "alert",
            "<style",
            "<link",
            "evil.example",
            "onclick",
            "<iframe",
            "style=",
            "/logout",
            "/archive/",
            "data:text",
        ] {
            assert!(!clean.contains(gone), "{gone} in {clean}");
        }
        for kept in [
            "<b>there</b>",
            "src=\"data:image/png;base64,AAAA\"",
            "href=\"https://example.org/\"",
            "rel=\"nofollow noopener noreferrer\"",
        ] {
            assert!(clean.contains(kept), "{kept} not in {clean}");
        }
    }

    #[test]
    fn snippets_cut_on_char_boundaries() {
        let body = "ééé ".repeat(50) + "the Needle is here " + &"ü".repeat(100);
        let s = snippet(&body, "needle", 40);
        assert!(s.contains("the Needle is here"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert_eq!(snippet("short text", "absent", 40), "short text");
        assert_eq!(snippet("", "x", 40), "");
        // a needle whose lowercase changes byte length is simply not found
        assert_eq!(snippet("ÀB", "àb", 10), "ÀB");
    }

    #[test]
    fn attachments_are_listed_and_read_back_with_safe_headers() {
        let msg = b"From: Ann <ann@example.org>\r\nTo: dev@example.org\r\nSubject: files\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n\
Content-Type: application/pdf; name=\"r\xc3\xa9port \\\"1\\\".pdf\"\r\n\
Content-Disposition: attachment; filename=\"r\xc3\xa9port \\\"1\\\".pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b\r\n\
Content-Type: bad type\r\nContent-Disposition: attachment\r\n\r\nxyz\r\n--b--\r\n";
        let s = show(msg);
        assert_eq!(s.from, "Ann <ann@example.org>");
        assert!(s.text.contains("see attached"));
        assert!(s.html.is_none());
        assert_eq!(s.attachments.len(), 2, "{:?}", s.attachments);
        assert_eq!(s.attachments[0].name, "réport \"1\".pdf");
        assert_eq!(s.attachments[0].content_type, "application/pdf");
        assert_eq!(s.attachments[1].name, "part-1");
        let (info, bytes) = part(msg, 0).unwrap();
        assert_eq!(bytes, b"%PDF-1.4\n");
        assert_eq!(info.size, 9);
        assert!(part(msg, 2).is_none());
        let d = disposition(&info.name);
        assert_eq!(
            d,
            "attachment; filename=\"r_port _1_.pdf\"; filename*=UTF-8''r%C3%A9port%20%221%22.pdf"
        );
        assert_eq!(show(b"").text, "");
    }
}
