//! The archive readers' sessions (POP3 and IMAP) fed arbitrary
//! bytes in arbitrary chunks, against a real store and archive built once
//! per thread in the temp dir (`reader::sample`).
//!
//! Invariants: every LF the server writes ends a CRLF line; a closed
//! session writes nothing more; nothing is ever removed from the archive.

use crate::imap::{ImapPeer, ImapSession};
use crate::pop3::{Pop3Peer, Pop3Session};
use crate::reader::ArchiveDb;

pub use crate::reader::sample::{fixture, PASSWORD, POSTS};

thread_local! {
    static DB: ArchiveDb = fixture(&std::env::temp_dir().join(format!(
        "listd-fuzz-reader-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )));
}

/// Calls `f` with this thread's fixture.
pub fn with_fixture<R>(f: impl FnOnce(&ArchiveDb) -> R) -> R {
    DB.with(f)
}

/// Chunk sizes from a seed byte (0: all at once).
pub(crate) fn chunks(input: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    let mut k = usize::from(seed);
    while !rest.is_empty() {
        let n = if seed == 0 {
            rest.len()
        } else {
            k = (k * 37 + 11) % 101;
            (k % 67 + 1).min(rest.len())
        };
        let (c, tail) = rest.split_at(n);
        out.push(c);
        rest = tail;
    }
    out
}

/// Every LF is preceded by CR.
pub(crate) fn lf_in_crlf(b: &[u8]) -> bool {
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'\n' || (i > 0 && b[i - 1] == b'\r'))
}

/// POP3. First byte: bit 0 a trusted peer, the rest a chunk seed; then
/// what the client sends.
pub fn check_pop3(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    with_fixture(|db| {
        let before = crate::reader::mailbox::uids(db.conn(), "dev").expect("uids");
        let peer = Pop3Peer {
            ip: Some("192.0.2.1".parse().expect("literal ip")),
            trusted: flags & 1 != 0,
        };
        let mut s = Pop3Session::new(super::DOMAIN, "<1.2@x>", 2, peer);
        let mut out = s.take_output();
        for c in chunks(input, flags >> 1) {
            let was_closed = s.is_closed();
            s.receive(c);
            s.advance(db, 1_763_780_000);
            let o = s.take_output();
            assert!(!was_closed || o.is_empty(), "a closed session answered");
            out.extend(o);
        }
        assert!(
            lf_in_crlf(&out),
            "a bare LF: {:?}",
            String::from_utf8_lossy(&out)
        );
        s.timeout();
        assert!(s.is_closed());
        let after = crate::reader::mailbox::uids(db.conn(), "dev").expect("uids");
        assert_eq!(before, after, "the archive changed");
    })
}

/// IMAP. First byte: bit 0 LOGIN allowed (loopback), bit 1 the session
/// also polls for new posts after each chunk, bit 2 STARTTLS offered (the
/// next chunk then goes to the session after TLS), the rest a chunk seed;
/// then what the client sends.
pub fn check_imap(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    with_fixture(|db| {
        let before = crate::reader::mailbox::uids(db.conn(), "dev").expect("uids");
        let peer = ImapPeer {
            ip: Some("192.0.2.1".parse().expect("literal ip")),
            login_ok: flags & 1 != 0,
            starttls: flags & 4 != 0,
        };
        let mut s = ImapSession::new(super::DOMAIN, peer);
        let mut out = s.take_output();
        for c in chunks(input, flags >> 3) {
            if s.wants_tls() {
                // what a driver does once TLS is up
                s = ImapSession::after_starttls(super::DOMAIN, peer);
            }
            let was_closed = s.is_closed();
            s.receive(c);
            s.advance(db, 1_763_780_000);
            if flags & 2 != 0 {
                s.poll(db);
            }
            let o = s.take_output();
            assert!(!was_closed || o.is_empty(), "a closed session answered");
            out.extend(o);
        }
        assert!(
            lf_in_crlf(&out),
            "a bare LF: {:?}",
            String::from_utf8_lossy(&out)
        );
        s.timeout();
        assert!(s.is_closed());
        let after = crate::reader::mailbox::uids(db.conn(), "dev").expect("uids");
        assert_eq!(before, after, "the archive changed");
    })
}
