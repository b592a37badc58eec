//! The `Received:` trace header (RFC 5321 §4.4) prepended to every accepted
//! message, and the queue id it carries (also given in the 250 reply).
//!
//! The HELO name is client-supplied: characters that could confuse a reader
//! of the header (`;`, parentheses, quotes) are replaced before it is used.

use std::net::IpAddr;

/// A fresh queue id: 8 hex digits of the time, 8 random. Unique enough to
/// find one message in the logs and the spool; not a database key.
pub fn queue_id(now: i64) -> String {
    format!("{:08X}{:08X}", now as u32, rand::random::<u32>())
}

/// The RFC 5322 date-time of `now` in UTC.
pub fn date(now: i64) -> String {
    chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .to_rfc2822()
}

/// What goes into one `Received:` header.
pub struct Stamp<'a> {
    /// The HELO/EHLO/LHLO name.
    pub helo: &'a str,
    pub ip: Option<IpAddr>,
    /// Our `smtp.hostname`.
    pub by: &'a str,
    /// `ESMTP`, `SMTP`, `LMTP`, `UTF8SMTP` or `UTF8LMTP`.
    pub with: &'a str,
    pub id: &'a str,
    /// The recipient, given only when the message has exactly one.
    pub for_rcpt: Option<&'a str>,
    pub now: i64,
}

/// The header, folded, ending in CRLF.
pub fn received(s: &Stamp<'_>) -> String {
    let helo: String = s
        .helo
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_:[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let helo = if helo.is_empty() {
        "unknown".into()
    } else {
        helo
    };
    let from = match s.ip {
        Some(ip) => format!("from {helo} ([{ip}])"),
        None => format!("from {helo}"),
    };
    let date = date(s.now);
    match s.for_rcpt {
        Some(r) => format!(
            "Received: {from}\r\n\tby {} (listd) with {} id {}\r\n\tfor <{r}>; {date}\r\n",
            s.by, s.with, s.id
        ),
        None => format!(
            "Received: {from}\r\n\tby {} (listd) with {} id {};\r\n\t{date}\r\n",
            s.by, s.with, s.id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5321_form() {
        let h = received(&Stamp {
            helo: "client.example",
            ip: Some("192.0.2.7".parse().unwrap()),
            by: "lists.example.org",
            with: "ESMTP",
            id: "0000000100ABCDEF",
            for_rcpt: Some("dev@lists.example.org"),
            now: 0,
        });
        assert_eq!(
            h,
            "Received: from client.example ([192.0.2.7])\r\n\tby lists.example.org (listd) with ESMTP id 0000000100ABCDEF\r\n\tfor <dev@lists.example.org>; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
        let h = received(&Stamp {
            helo: "evil;(x)",
            ip: None,
            by: "h",
            with: "LMTP",
            id: "1",
            for_rcpt: None,
            now: 0,
        });
        assert!(h.starts_with("Received: from evil__x_\r\n\tby h (listd) with LMTP id 1;\r\n\t"));
    }

    #[test]
    fn queue_ids_differ() {
        assert_ne!(queue_id(5), queue_id(5));
        assert_eq!(queue_id(5).len(), 16);
    }
}
