//! Bounce reading (`bounce::parse`) on arbitrary bytes: as a whole mail,
//! and as the `message/delivery-status` part of a report.
//!
//! Invariants: nothing panics; there is always a reading; every recipient
//! read is one token with an `@`; every status is a whole enhanced code
//! that reads back to itself; a kind round-trips through its name.

use crate::bounce::parse::{self, BounceKind};

/// `data` as a mail, and wrapped as a DSN's delivery-status part.
pub fn check(data: &[u8]) {
    check_mail(data);
    let mut dsn = b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: message/delivery-status\r\n\r\n".to_vec();
    dsn.extend_from_slice(data);
    dsn.extend_from_slice(b"\r\n--f--\r\n");
    check_mail(&dsn);
    let _ = parse::find_status(&String::from_utf8_lossy(data));
}

fn check_mail(data: &[u8]) {
    let read = parse::read(data);
    assert!(!read.is_empty(), "no reading");
    for b in read {
        assert_eq!(BounceKind::parse(b.kind.as_str()), Some(b.kind));
        for a in [&b.recipient, &b.original].into_iter().flatten() {
            assert!(a.contains('@'), "recipient without @: {a:?}");
            assert!(!a.chars().any(char::is_whitespace), "recipient {a:?}");
        }
        if let Some(s) = &b.status {
            assert_eq!(
                parse::find_status(s).as_deref(),
                Some(s.as_str()),
                "status {s:?}"
            );
        }
    }
}
