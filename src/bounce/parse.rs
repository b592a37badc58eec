//! Reading a bounce: an RFC 3464 DSN (`multipart/report;
//! report-type=delivery-status`, its `message/delivery-status` part read
//! with `mime::header_block`), else the plain-text bounces of common MTAs
//! (Exim, qmail, old Sendmail, Exchange) by their markers, like Mailman's
//! bouncer modules. Tells delay warnings, auto-replies and bounces of
//! bounces apart, and classifies each failure (`classify`).
//!
//! Trusts nothing in the mail: any bytes give some reading; text is only
//! searched at ASCII positions, never sliced elsewhere; never panics.

use crate::mime::header_block;
use mail_parser::{Message, MessageParser, MimeHeaders};

/// What a bounce says about one recipient, or what the mail is instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceKind {
    /// The mailbox or address is bad (5.1.x, 5.2.1, "user unknown"): 1.0.
    Hard,
    /// Any other permanent failure, or a 4xx given up: `soft_weight`.
    Soft,
    /// Spam, policy, DMARC or content refusal (5.7.x or its phrases): the
    /// list's reputation, not the member's mailbox. Never counted.
    Policy,
    /// A delay warning (`Action: delayed`, a 4.x.x): not a bounce.
    Delayed,
    /// An out-of-office or other auto-reply: not a bounce.
    AutoReply,
    /// A bounce of a bounce (the returned mail was itself a report): dropped.
    BounceOfBounce,
    /// Nothing recognisable: recorded, never counted.
    Unrecognised,
}

impl BounceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::Hard => "hard",
            BounceKind::Soft => "soft",
            BounceKind::Policy => "policy",
            BounceKind::Delayed => "delayed",
            BounceKind::AutoReply => "autoreply",
            BounceKind::BounceOfBounce => "bounce_of_bounce",
            BounceKind::Unrecognised => "unrecognised",
        }
    }

    pub fn parse(s: &str) -> Option<BounceKind> {
        [
            BounceKind::Hard,
            BounceKind::Soft,
            BounceKind::Policy,
            BounceKind::Delayed,
            BounceKind::AutoReply,
            BounceKind::BounceOfBounce,
            BounceKind::Unrecognised,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether this is a delivery failure at all (hard, soft or policy).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            BounceKind::Hard | BounceKind::Soft | BounceKind::Policy
        )
    }
}

/// One recipient a bounce names (or the mail as a whole, recipient None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub kind: BounceKind,
    /// `Final-Recipient`, or the address a plain-text bounce names.
    pub recipient: Option<String>,
    /// `Original-Recipient`: the address listd sent to, if the MTA kept it.
    pub original: Option<String>,
    /// An enhanced status code (`5.1.1`), from the DSN or the text.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

impl Bounce {
    fn whole(kind: BounceKind, status: Option<String>, diagnostic: Option<String>) -> Bounce {
        Bounce {
            kind,
            recipient: None,
            original: None,
            status,
            diagnostic,
        }
    }
}

/// Phrases of spam, policy, DMARC and content refusals (lower case).
const POLICY_PHRASES: &[&str] = &[
    "spam",
    "dmarc",
    "blocked",
    "blacklist",
    "blocklist",
    "block list",
    "policy",
    "reputation",
    "content rejected",
    "message content",
    "listed at",
    "spamhaus",
    "unsolicited",
    "junk mail",
];

/// Phrases that say the mailbox does not exist (lower case).
const HARD_PHRASES: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "no mailbox here",
    "mailbox not found",
    "does not exist",
    "recipient address rejected",
    "invalid recipient",
    "unknown recipient",
    "account has been disabled",
    "address rejected",
];

/// Classifies one failure from its DSN `Action` (if any), its status code
/// and its text (diagnostic or reason lines).
pub fn classify(action: Option<&str>, status: Option<&str>, text: &str) -> BounceKind {
    let action = action.map(|a| a.trim().to_ascii_lowercase());
    match action.as_deref() {
        Some("delayed") => return BounceKind::Delayed,
        Some("delivered" | "relayed" | "expanded") => return BounceKind::Unrecognised,
        _ => {}
    }
    let lower = text.to_ascii_lowercase();
    let status = status.map(str::trim).unwrap_or("");
    if status.starts_with("5.7.") || status.starts_with("4.7.") {
        return BounceKind::Policy;
    }
    if status.starts_with("5.1.") || status == "5.2.1" {
        return BounceKind::Hard;
    }
    if POLICY_PHRASES.iter().any(|p| lower.contains(p)) {
        return BounceKind::Policy;
    }
    if status.starts_with("5.") {
        return BounceKind::Soft;
    }
    if status.starts_with("4.") && action.is_none() {
        // a 4xx the sender has not given up on
        return BounceKind::Delayed;
    }
    if HARD_PHRASES.iter().any(|p| lower.contains(p)) {
        return BounceKind::Hard;
    }
    if status.starts_with("4.") || action.as_deref() == Some("failed") {
        return BounceKind::Soft;
    }
    BounceKind::Unrecognised
}

pub use crate::mime::status::find_status;

/// Reads a bounce mail: one entry per recipient it names, or one entry
/// with no recipient saying what the mail is.
pub fn read(bytes: &[u8]) -> Vec<Bounce> {
    let Some(m) = MessageParser::default().parse(bytes) else {
        return vec![Bounce::whole(BounceKind::Unrecognised, None, None)];
    };
    if returns_a_report(&m) {
        return vec![Bounce::whole(BounceKind::BounceOfBounce, None, None)];
    }
    if let Some(found) = dsn(&m) {
        if !found.is_empty() {
            return found;
        }
    }
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let found = plain_text(&text);
    if !found.is_empty() {
        return found;
    }
    if is_auto_reply(&m) {
        return vec![Bounce::whole(BounceKind::AutoReply, None, None)];
    }
    // something else sent to the bounce address: judged by its text alone
    let status = find_status(&text);
    let kind = match classify(None, status.as_deref(), &text) {
        k if k.is_failure() || k == BounceKind::Delayed => k,
        _ => BounceKind::Unrecognised,
    };
    vec![Bounce::whole(kind, status, None)]
}

fn is_type(p: &mail_parser::MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    p.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case(ctype)
            && c.subtype()
                .is_some_and(|s| subtypes.iter().any(|t| s.eq_ignore_ascii_case(t)))
    })
}

/// Whether the mail a report returns (message/rfc822 or
/// text/rfc822-headers) was itself a delivery report.
fn returns_a_report(m: &Message<'_>) -> bool {
    m.parts.iter().skip(1).any(|p| {
        let returned =
            is_type(p, "message", &["rfc822", "global"]) || is_type(p, "text", &["rfc822-headers"]);
        if !returned {
            return false;
        }
        let head = p.contents();
        let split = header_block::split(head);
        split
            .raw_value(head, "Content-Type")
            .map(header_block::unfold_text)
            .is_some_and(|ct| {
                let ct = ct.to_ascii_lowercase();
                ct.contains("multipart/report") && ct.contains("delivery-status")
            })
    })
}

/// The per-recipient blocks of a message/delivery-status part, if there is one.
fn dsn(m: &Message<'_>) -> Option<Vec<Bounce>> {
    let part = m
        .parts
        .iter()
        .find(|p| is_type(p, "message", &["delivery-status", "global-delivery-status"]))?;
    let body = part.contents();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut first = true;
    while pos < body.len() {
        let rest = &body[pos..];
        let split = header_block::split(rest);
        if split.fields.is_empty() {
            // a blank or stray line: step past it
            match rest.iter().position(|&c| c == b'\n') {
                Some(i) => {
                    pos += i + 1;
                    continue;
                }
                None => break,
            }
        }
        let value = |name: &str| split.raw_value(rest, name).map(header_block::unfold_text);
        if !first {
            if let Some(b) = dsn_block(&value) {
                out.push(b);
            }
        }
        first = false;
        pos += split.body_start.max(1);
    }
    Some(out)
}

/// `rfc822; bob@example.org` → `bob@example.org` (other address types: None).
fn address_value(v: &str) -> Option<String> {
    let (kind, addr) = v.split_once(';').unwrap_or(("rfc822", v));
    let kind = kind.trim();
    if !kind.eq_ignore_ascii_case("rfc822") && !kind.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let a = addr.trim().trim_matches(['<', '>']).trim();
    (a.contains('@') && !a.chars().any(char::is_whitespace)).then(|| a.to_string())
}

fn dsn_block(value: &dyn Fn(&str) -> Option<String>) -> Option<Bounce> {
    let recipient = value("Final-Recipient").and_then(|v| address_value(&v));
    let original = value("Original-Recipient").and_then(|v| address_value(&v));
    if recipient.is_none() && original.is_none() {
        return None;
    }
    let action = value("Action");
    let diagnostic = value("Diagnostic-Code").map(|d| match d.split_once(';') {
        Some((_, after)) => after.trim().to_string(),
        None => d,
    });
    let status = value("Status")
        .and_then(|s| find_status(&s))
        .or_else(|| diagnostic.as_deref().and_then(find_status));
    let kind = classify(
        Some(action.as_deref().unwrap_or("failed")),
        status.as_deref(),
        diagnostic.as_deref().unwrap_or(""),
    );
    Some(Bounce {
        kind,
        recipient,
        original,
        status,
        diagnostic,
    })
}

/// Lines after which a plain-text bounce lists its failed recipients.
const MARKERS: &[&str] = &[
    // Exim
    "following address(es) failed",
    "following addresses failed",
    // qmail
    "this is a permanent error; i've given up",
    "i'm afraid i wasn't able to deliver your message",
    // old Sendmail
    "following addresses had permanent fatal errors",
    // Exchange
    "following recipient(s) cannot be reached",
    "following recipient(s) could not be reached",
    "delivery has failed to these recipients",
];

/// Lines that end the list of recipients.
const ENDS: &[&str] = &[
    "------ this is a copy",
    "--- below this line",
    "----- transcript of session",
    "----- original message",
    "--- original message",
    "original message headers",
];

/// An address opening a line: `bob@x.org`, `<bob@x.org>:`, `bob@x.org on ...`.
fn line_address(line: &str) -> Option<String> {
    let token = line.split_whitespace().next()?;
    let a = token
        .trim_end_matches([':', '.', ','])
        .trim_matches(['<', '>']);
    let (local, domain) = a.rsplit_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !a.contains(['<', '>', '(', ')', '[', ']', ';', '"']);
    ok.then(|| a.to_string())
}

/// The failed recipients a plain-text bounce lists after one of [`MARKERS`].
fn plain_text(text: &str) -> Vec<Bounce> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut on = false;
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if MARKERS.iter().any(|m| lower.contains(m)) {
            on = true;
            continue;
        }
        if !on {
            continue;
        }
        if ENDS.iter().any(|e| lower.trim_start().starts_with(e)) {
            break;
        }
        if let Some(a) = line_address(line) {
            out.push((a, line.to_string()));
        } else if let Some((_, reason)) = out.last_mut() {
            reason.push('\n');
            reason.push_str(line.trim());
        }
    }
    out.into_iter()
        .map(|(recipient, reason)| {
            let status = find_status(&reason);
            let kind = match classify(None, status.as_deref(), &reason) {
                // a listed failed recipient with no telling text: soft
                BounceKind::Unrecognised | BounceKind::Delayed => BounceKind::Soft,
                k => k,
            };
            let diagnostic = reason
                .lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            Bounce {
                kind,
                recipient: Some(recipient),
                original: None,
                status,
                diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
            }
        })
        .collect()
}

/// An out-of-office or other auto-reply (RFC 3834 `Auto-Submitted:
/// auto-replied`, the common X- fields, or the usual subjects).
fn is_auto_reply(m: &Message<'_>) -> bool {
    let raw = m.raw_message();
    let head = &raw[..(m.root_part().offset_body as usize).min(raw.len())];
    let split = header_block::split(head);
    let field = |n: &str| {
        split
            .raw_value(head, n)
            .map(|v| header_block::unfold_text(v).to_ascii_lowercase())
    };
    if field("Auto-Submitted").is_some_and(|v| v.starts_with("auto-replied")) {
        return true;
    }
    if field("X-Autoreply").is_some() || field("X-Autorespond").is_some() {
        return true;
    }
    if field("Precedence").is_some_and(|v| v == "auto_reply") {
        return true;
    }
    let subject = m.subject().unwrap_or("").to_lowercase();
    [
        "out of office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "abwesenheit",
        "vacation",
    ]
    .iter()
    .any(|s| subject.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(
            classify(Some("failed"), Some("5.1.1"), ""),
            BounceKind::Hard
        );
        assert_eq!(
            classify(Some("failed"), Some("5.2.2"), "full"),
            BounceKind::Soft
        );
        assert_eq!(
            classify(Some("failed"), Some("5.7.1"), ""),
            BounceKind::Policy
        );
        assert_eq!(
            classify(Some("failed"), Some("5.0.0"), "rejected as spam"),
            BounceKind::Policy
        );
        assert_eq!(
            classify(Some("delayed"), Some("4.4.7"), ""),
            BounceKind::Delayed
        );
        assert_eq!(classify(None, Some("4.2.2"), ""), BounceKind::Delayed);
        assert_eq!(
            classify(None, None, "Sorry, no mailbox here"),
            BounceKind::Hard
        );
        assert_eq!(classify(None, None, "hello"), BounceKind::Unrecognised);
    }

    #[test]
    fn a_dsn_names_each_recipient() {
        let m = "From: MAILER-DAEMON@relay.example\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; relay.example\r\n\r\n\
Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 no such\r\n user\r\n\r\n\
Final-Recipient: rfc822; <cat@example.org>\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n\
--b--\r\n";
        let r = read(m.as_bytes());
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].recipient.as_deref(), Some("bob@example.org"));
        assert_eq!(r[0].diagnostic.as_deref(), Some("550 5.1.1 no such user"));
        assert_eq!(
            (r[0].kind, r[0].status.as_deref()),
            (BounceKind::Hard, Some("5.1.1"))
        );
        assert_eq!(r[1].recipient.as_deref(), Some("cat@example.org"));
        assert_eq!(r[1].kind, BounceKind::Delayed);
        let junk = read(b"garbage");
        assert_eq!(junk.len(), 1);
        assert_eq!(
            (junk[0].kind, junk[0].recipient.as_deref()),
            (BounceKind::Unrecognised, None)
        );
        assert_eq!(read(b"")[0].kind, BounceKind::Unrecognised);
    }

    #[test]
    fn line_addresses() {
        assert_eq!(line_address("<bob@x.org>:").as_deref(), Some("bob@x.org"));
        assert_eq!(
            line_address("  bob@x.org on 1/2/2024").as_deref(),
            Some("bob@x.org")
        );
        assert_eq!(line_address("SMTP error from remote"), None);
        assert_eq!(line_address("<mx.x.org #5.1.1>"), None);
    }
}
