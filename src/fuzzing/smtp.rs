//! The SMTP/LMTP session fed arbitrary bytes in arbitrary chunks.
//!
//! Invariants: the session never asks to store (and so never acknowledges)
//! a message containing a bare CR or a bare LF; every "queued as" reply
//! names a message it asked to store; every reply line is `DDD-text` or
//! `DDD text` with a 2xx..5xx code shared by its continuation lines, ending
//! in CRLF; a closed session says nothing more.

use crate::smtp::{Completion, ExpnEntry, Peer, Protocol, Request, Session, Step};

/// How one run is driven (from the first input byte in [`check`]).
#[derive(Debug, Clone, Copy)]
pub struct Drive {
    pub proto: Protocol,
    pub trusted: bool,
    /// Prepend a greeting, MAIL and RCPT and DATA, so the input starts as
    /// message content.
    pub preamble: bool,
    /// The driver reports the spool commit as failed.
    pub store_fails: bool,
    /// 0: all input at once; else chunk sizes follow from this seed.
    pub chunk_seed: u8,
}

impl Drive {
    pub fn from_flags(flags: u8) -> Drive {
        Drive {
            proto: if flags & 1 == 0 {
                Protocol::Smtp
            } else {
                Protocol::Lmtp
            },
            trusted: flags & 2 != 0,
            preamble: flags & 4 != 0,
            store_fails: flags & 8 != 0,
            chunk_seed: flags >> 4,
        }
    }
}

/// The commands that open a transaction to two lists, up to DATA.
pub fn preamble(proto: Protocol) -> Vec<u8> {
    let hello = match proto {
        Protocol::Smtp => "EHLO client.example",
        Protocol::Lmtp => "LHLO client.example",
    };
    format!(
        "{hello}\r\nMAIL FROM:<ann@example.org>\r\nRCPT TO:<dev@{d}>\r\nRCPT TO:<news@{d}>\r\nDATA\r\n",
        d = super::DOMAIN
    )
    .into_bytes()
}

/// First byte: [`Drive`] flags; the rest: what the client sends.
pub fn check(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    run(Drive::from_flags(flags), rest);
}

/// Runs one session over `input`, checks every invariant, and returns how
/// many messages the session asked to store.
pub fn run(drive: Drive, input: &[u8]) -> usize {
    let config = super::shared_config();
    let peer = Peer {
        ip: Some("192.0.2.1".parse().expect("literal ip")),
        trusted: drive.trusted,
    };
    let mut now = 1_000;
    let base = std::time::Instant::now();
    let at = |now: i64| crate::smtp::session::Moment {
        unix: now,
        mono: base + std::time::Duration::from_secs((now - 1_000) as u64),
    };
    let mut s = Session::new(config.clone(), drive.proto, peer, at(now));
    let mut out = s.take_output();
    let mut all = if drive.preamble {
        preamble(drive.proto)
    } else {
        Vec::new()
    };
    all.extend_from_slice(input);
    let mut queued: Vec<String> = Vec::new();
    let mut closed = false;
    let mut rest = &all[..];
    let mut k = drive.chunk_seed as usize;
    while !rest.is_empty() && !closed {
        let n = if drive.chunk_seed == 0 {
            rest.len()
        } else {
            k = (k * 37 + 11) % 101;
            (k % 67 + 1).min(rest.len())
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        now += (k % 3) as i64;
        s.receive(chunk);
        loop {
            let step = s.advance(at(now));
            out.extend(s.take_output());
            match step {
                Step::NeedInput => break,
                Step::Close => {
                    closed = true;
                    break;
                }
                Step::Request(Request::Store(sub)) => {
                    assert!(
                        super::crlf_only(&sub.bytes),
                        "asked to store a message with a bare CR or LF: {:?}",
                        String::from_utf8_lossy(&sub.bytes)
                    );
                    assert!(!sub.envelope.rcpts.is_empty(), "a store with no recipient");
                    queued.push(sub.queue_id.clone());
                    let result = if drive.store_fails {
                        Err("fuzz: disk full".to_string())
                    } else {
                        Ok(queued.len() as i64)
                    };
                    s.complete(Completion::Stored(result));
                }
                Step::Request(Request::Expand { list }) => {
                    assert!(config.lists.contains_key(&list), "EXPN of unknown {list}");
                    s.complete(Completion::Expanded(Ok(vec![ExpnEntry {
                        name: Some("Ann \"A\" <x>".into()),
                        address: "ann@example.org".into(),
                    }])));
                }
            }
        }
    }
    if closed {
        s.receive(b"NOOP\r\n");
        assert!(matches!(s.advance(at(now)), Step::Close));
        assert!(s.take_output().is_empty(), "a closed session answered");
    } else {
        s.timeout();
        out.extend(s.take_output());
        assert!(s.is_closed());
    }
    check_replies(&out, &queued, drive.store_fails);
    queued.len()
}

/// Checks the reply stream's syntax and that each 250 after DATA names a
/// message the session asked to store.
pub fn check_replies(out: &[u8], queued: &[String], store_failed: bool) {
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "output does not end in CRLF"
    );
    assert!(super::crlf_only(out), "bare CR or LF in the replies");
    let text = std::str::from_utf8(out).expect("replies are UTF-8");
    let mut open: Option<&str> = None;
    for line in text.split_terminator("\r\n") {
        let b = line.as_bytes();
        assert!(b.len() >= 4, "short reply line {line:?}");
        let code = &line[..3];
        assert!(
            b[..3].iter().all(u8::is_ascii_digit) && (b'2'..=b'5').contains(&b[0]),
            "bad code in {line:?}"
        );
        assert!(b[3] == b' ' || b[3] == b'-', "bad separator in {line:?}");
        if let Some(c) = open {
            assert_eq!(c, code, "continuation changes the code: {line:?}");
        }
        open = (b[3] == b'-').then_some(code);
        // the answer after DATA: `250 2.0.0 [<rcpt> ]Ok: queued as ID`
        if let Some(ack) = line.strip_prefix("250 2.0.0 ") {
            if let Some((_, id)) = ack.rsplit_once("Ok: queued as ") {
                assert!(!store_failed, "queued without a commit: {line:?}");
                assert!(
                    queued.iter().any(|q| q == id),
                    "250 for an unknown id: {line:?}"
                );
            }
        }
    }
    assert!(open.is_none(), "unfinished multi-line reply");
}
