//! The one multipart/report (RFC 6522) listd writes, with its
//! message/delivery-status part (RFC 3464): the report delivery queues when
//! it gives up on recipients, and the rejection notices to posters (a
//! policy rejection, a moderator's rejection). Texts in, a MIME part out;
//! the callers put it under their own header fields and send it with the
//! null reverse-path.
//!
//! Trusts the caller's human text; what came from the network (a relay's
//! reply, an address, the original's header block) is made one line of
//! printable ASCII here, so the status part is always valid 7bit.

use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::{BodyPart, MimePart};

/// Longest Diagnostic-Code text kept, in characters.
const DIAGNOSTIC_CHARS: usize = 400;
/// Longest header block quoted as text/rfc822-headers, in bytes.
const HEADERS_MAX: usize = 32 * 1024;

/// One recipient's block of a delivery-status part (`Action: failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    pub recipient: String,
    /// The enhanced status code, `5.1.1`, `4.4.7`.
    pub status: String,
    /// (diagnostic type, text): `("smtp", "550 5.1.1 no such user")`.
    pub diagnostic: Option<(&'static str, String)>,
    pub last_attempt: Option<i64>,
}

/// The fields of a message/delivery-status part.
#[derive(Debug, Clone)]
pub struct DeliveryStatus<'a> {
    /// `Reporting-MTA: dns; DOMAIN`.
    pub reporting_domain: &'a str,
    /// When the original arrived (`Arrival-Date`), if known.
    pub arrival: Option<i64>,
    pub recipients: Vec<RecipientStatus>,
}

/// `s` as one line of printable ASCII, at most `max` characters: line
/// breaks and tabs become spaces, anything else outside ASCII `?`.
fn ascii_line(s: &str, max: usize) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '\t' | '\r' | '\n' => ' ',
            ' '..='~' => c,
            _ => '?',
        })
        .take(max)
        .collect()
}

fn date(t: i64) -> String {
    mail_parser::DateTime::from_timestamp(t).to_rfc822()
}

impl DeliveryStatus<'_> {
    /// The part's body: the per-message block, then one block per
    /// recipient, each ended by an empty line; CRLF line ends.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Reporting-MTA: dns; {}\r\n",
            ascii_line(self.reporting_domain, 255)
        );
        if let Some(t) = self.arrival {
            out.push_str(&format!("Arrival-Date: {}\r\n", date(t)));
        }
        for r in &self.recipients {
            out.push_str("\r\n");
            out.push_str(&format!(
                "Final-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\n",
                ascii_line(&r.recipient, 320),
                ascii_line(&r.status, 16)
            ));
            if let Some((kind, text)) = &r.diagnostic {
                out.push_str(&format!(
                    "Diagnostic-Code: {kind}; {}\r\n",
                    ascii_line(text, DIAGNOSTIC_CHARS)
                ));
            }
            if let Some(t) = r.last_attempt {
                out.push_str(&format!("Last-Attempt-Date: {}\r\n", date(t)));
            }
        }
        out
    }
}

/// The header block of `original` (without the empty line), cut at a line
/// end to at most 32 KiB.
pub fn header_block(original: &[u8]) -> &[u8] {
    let end = crate::mime::header_block::split(original).header_end;
    let block = &original[..end.min(original.len())];
    if block.len() <= HEADERS_MAX {
        return block;
    }
    let cut = block[..HEADERS_MAX]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    &block[..cut]
}

/// `multipart/report; report-type=delivery-status`: the human `text`, the
/// delivery-status part and, when given, the original's header block as
/// text/rfc822-headers (left out when the sender may be forged).
pub fn report_part(
    text: String,
    status: &DeliveryStatus<'_>,
    original_headers: Option<&[u8]>,
) -> MimePart<'static> {
    let mut parts = vec![
        MimePart::new("text/plain", text).inline(),
        MimePart::new(
            ContentType::new("message/delivery-status"),
            BodyPart::Binary(status.to_text().into_bytes().into()),
        )
        .transfer_encoding("7bit"),
    ];
    if let Some(h) = original_headers {
        parts.push(
            MimePart::new(
                "text/rfc822-headers",
                String::from_utf8_lossy(header_block(h)).into_owned(),
            )
            .transfer_encoding("8bit"),
        );
    }
    MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        parts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn status() -> DeliveryStatus<'static> {
        DeliveryStatus {
            reporting_domain: "lists.example.org",
            arrival: Some(1_700_000_000),
            recipients: vec![RecipientStatus {
                recipient: "bad\r\nBcc: x@évil.example".into(),
                status: "4.4.7".into(),
                diagnostic: Some(("smtp", "452 4.2.2 full\r\n\tfolded é".into())),
                last_attempt: Some(1_700_432_000),
            }],
        }
    }

    #[test]
    fn network_text_stays_one_ascii_line_per_field() {
        let t = status().to_text();
        assert!(t.is_ascii(), "{t}");
        assert!(t.contains("Final-Recipient: rfc822; bad  Bcc: x@?vil.example\r\n"));
        assert!(t.contains("Diagnostic-Code: smtp; 452 4.2.2 full   folded ?\r\n"));
        assert!(!t.lines().any(|l| l.starts_with("Bcc")), "{t}");
        assert!(t.starts_with("Reporting-MTA: dns; lists.example.org\r\nArrival-Date: "));
    }

    #[test]
    fn a_long_diagnostic_is_cut_on_a_character() {
        let mut s = status();
        s.recipients[0].diagnostic = Some(("smtp", "é".repeat(5000)));
        let t = s.to_text();
        let line = t
            .lines()
            .find(|l| l.starts_with("Diagnostic-Code"))
            .unwrap();
        assert_eq!(
            line.len(),
            "Diagnostic-Code: smtp; ".len() + DIAGNOSTIC_CHARS
        );
    }

    #[test]
    fn a_huge_header_block_is_cut_at_a_line_end() {
        let mut m = Vec::new();
        for i in 0..5000 {
            m.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(20)).as_bytes());
        }
        m.extend_from_slice(b"\r\nbody\r\n");
        let h = header_block(&m);
        assert!(h.len() <= HEADERS_MAX && h.len() > HEADERS_MAX - 40);
        assert!(h.ends_with(b"\r\n"));
        assert_eq!(header_block(b"Subject: a\r\n\r\nbody"), b"Subject: a\r\n");
    }

    #[test]
    fn the_report_reads_back_as_a_dsn() {
        let part = report_part(
            "Hello.".into(),
            &status(),
            Some(b"Subject: orig\r\nMessage-ID: <o@x>\r\n\r\nbody\r\n"),
        );
        let bytes = mail_builder::MessageBuilder::new()
            .from("a@b.example")
            .to("c@d.example")
            .subject("s")
            .body(part)
            .write_to_vec()
            .unwrap();
        let m = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        let ct = m.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let types: Vec<String> = m.parts[1..]
            .iter()
            .map(|p| {
                let c = p.content_type().unwrap();
                format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            types,
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ]
        );
        let headers = String::from_utf8_lossy(m.parts[3].contents());
        assert!(headers.contains("Message-ID: <o@x>") && !headers.contains("body"));
    }
}
