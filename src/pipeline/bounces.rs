//! `NAME-bounces@` and `NAME-bounces+TAG@`: records each bounce in the
//! `bounces` table for the bounce processor (a later issue) and logs it.
//! Nothing is dropped and the route never waits: every message is recorded.
//!
//! The bouncing address comes from the VERP tag (`user=example.org`) when
//! there is one, else from a DSN's `Final-Recipient` (RFC 3464). Trusts
//! nothing in the bounce: unparsable parts just leave fields empty.

use crate::handler::{Ctx, HandlerError, Inbound};
use crate::routing::Route;
use mail_parser::{MessageParser, MimeHeaders};
use rusqlite::{params, Transaction};

/// What one bounce says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BounceInfo {
    pub recipient: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

/// Decodes a VERP tag `user=example.org` into `user@example.org`.
pub fn verp_address(tag: &str) -> Option<String> {
    let (local, domain) = tag.rsplit_once('=')?;
    if local.is_empty() || domain.is_empty() || !domain.contains('.') {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// Reads the first per-recipient block of a DSN (message/delivery-status).
pub fn dsn_info(bytes: &[u8]) -> BounceInfo {
    let Some(m) = MessageParser::default().parse(bytes) else {
        return BounceInfo::default();
    };
    let Some(part) = m.parts.iter().find(|p| {
        p.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case("message")
                && c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
        })
    }) else {
        return BounceInfo::default();
    };
    let start = (part.offset_body as usize).min(bytes.len());
    let end = (part.offset_end as usize).clamp(start, bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..end]);
    let mut info = BounceInfo::default();
    // unfold, then read `Field: value` lines
    let unfolded = text
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    for line in unfolded.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let after_type = |v: &str| {
            v.split_once(';')
                .map(|(_, a)| a.trim().to_string())
                .unwrap_or_else(|| v.to_string())
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "final-recipient" if info.recipient.is_none() => {
                info.recipient = Some(after_type(value).trim_matches(['<', '>']).to_string())
            }
            "status" if info.status.is_none() && info.recipient.is_some() => {
                info.status = Some(value.to_string())
            }
            "diagnostic-code" if info.diagnostic.is_none() && info.recipient.is_some() => {
                info.diagnostic = Some(after_type(value))
            }
            _ => {}
        }
    }
    info
}

/// Records one bounce.
pub fn record(_ctx: &Ctx, tx: &Transaction<'_>, msg: &Inbound) -> Result<(), HandlerError> {
    let Route::Bounces { list, tag } = &msg.route else {
        return Err(HandlerError::Corrupt(format!(
            "bounce handler got a `{}` route",
            msg.route.kind()
        )));
    };
    let mut info = dsn_info(&msg.bytes);
    if let Some(a) = tag.as_deref().and_then(verp_address) {
        info.recipient = Some(a);
    }
    tx.prepare_cached(
        "INSERT INTO bounces(list, message_id, tag, recipient, status, diagnostic, env_from, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        list,
        msg.message_id,
        tag,
        info.recipient,
        info.status,
        info.diagnostic,
        msg.env_from,
        msg.received_at
    ])?;
    tracing::info!(%list, tag = tag.as_deref().unwrap_or(""),
        recipient = info.recipient.as_deref().unwrap_or("?"),
        status = info.status.as_deref().unwrap_or("?"),
        "bounce recorded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verp_tags() {
        assert_eq!(
            verp_address("ann=example.org").as_deref(),
            Some("ann@example.org")
        );
        assert_eq!(
            verp_address("a=b=example.org").as_deref(),
            Some("a=b@example.org")
        );
        assert_eq!(verp_address("nodomain"), None);
        assert_eq!(verp_address("x=localhost"), None);
    }

    #[test]
    fn reads_a_dsn() {
        let m = "From: MAILER-DAEMON@relay.example\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; relay.example\r\n\r\n\
Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 no such\r\n user\r\n\r\n\
--b--\r\n";
        let i = dsn_info(m.as_bytes());
        assert_eq!(i.recipient.as_deref(), Some("bob@example.org"));
        assert_eq!(i.status.as_deref(), Some("5.1.1"));
        assert_eq!(i.diagnostic.as_deref(), Some("550 5.1.1 no such user"));
        assert_eq!(dsn_info(b"garbage"), BounceInfo::default());
    }
}
