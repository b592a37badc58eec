//! The Transaction state: STAT, LIST, RETR, TOP, UIDL, DELE, NOOP, RSET,
//! and QUIT, which enters Update. DELE only marks a message for this
//! session; Update removes nothing from the archive.

use super::super::session::{Maildrop, Pop3Session, State};
use crate::reader::{mailbox, ArchiveDb};

fn maildrop(s: &Pop3Session) -> Option<&Maildrop> {
    match &s.state {
        State::Transaction(m) => Some(m),
        _ => None,
    }
}

/// The 0-based index of message number `arg`, if it exists and is not
/// marked deleted; else the -ERR text.
fn message(s: &Pop3Session, arg: Option<&&str>) -> Result<usize, String> {
    let m = maildrop(s).ok_or("not in a maildrop")?;
    let n: usize = arg
        .and_then(|a| a.parse().ok())
        .ok_or("give a message number")?;
    if n == 0 || n > m.posts.len() {
        return Err(format!("no message {n}"));
    }
    if m.deleted[n - 1] {
        return Err(format!("message {n} is deleted"));
    }
    Ok(n - 1)
}

/// `(count, octets)` of the messages not marked deleted.
fn totals(m: &Maildrop) -> (usize, u64) {
    m.sizes
        .iter()
        .zip(&m.deleted)
        .filter(|(_, d)| !**d)
        .fold((0, 0), |(n, o), (s, _)| (n + 1, o + s))
}

pub(super) fn run(s: &mut Pop3Session, db: &ArchiveDb, verb: &str, args: &[&str]) -> bool {
    let Some(m) = maildrop(s) else {
        return false;
    };
    match verb {
        "STAT" => {
            let (n, octets) = totals(m);
            s.ok(&format!("{n} {octets}"));
            true
        }
        "LIST" | "UIDL" => listing(s, verb, args.first()),
        "RETR" | "TOP" => {
            let i = match message(s, args.first()) {
                Ok(i) => i,
                Err(e) => return fail(s, &e),
            };
            let lines = if verb == "TOP" {
                match args.get(1).and_then(|a| a.parse::<usize>().ok()) {
                    Some(l) if args.len() == 2 => Some(l),
                    _ => return fail(s, "say TOP MSG LINES"),
                }
            } else {
                None
            };
            send(s, db, i, lines)
        }
        "DELE" => match message(s, args.first()) {
            Ok(i) => {
                if let State::Transaction(m) = &mut s.state {
                    m.deleted[i] = true;
                }
                s.ok(&format!(
                    "message {} deleted (for this session only: the archive keeps it)",
                    i + 1
                ));
                true
            }
            Err(e) => fail(s, &e),
        },
        "NOOP" => {
            s.ok("");
            true
        }
        "RSET" => {
            if let State::Transaction(m) = &mut s.state {
                m.deleted.iter_mut().for_each(|d| *d = false);
            }
            let (n, octets) = maildrop(s).map(totals).unwrap_or_default();
            s.ok(&format!("maildrop has {n} messages ({octets} octets)"));
            true
        }
        "QUIT" => {
            let marked = m.deleted.iter().filter(|d| **d).count();
            let (left, _) = totals(m);
            let list = m.list.clone();
            s.ok(&format!(
                "{} POP3 server signing off ({left} {list} messages left; {marked} marked deleted, none removed from the archive)",
                s.hostname
            ));
            s.state = State::Closed;
            true
        }
        "USER" | "PASS" | "APOP" => fail(s, "already logged in"),
        _ => fail(
            s,
            "unknown command: STAT, LIST, RETR, TOP, UIDL, DELE, NOOP, RSET or QUIT",
        ),
    }
}

fn fail(s: &mut Pop3Session, why: &str) -> bool {
    s.err(why);
    false
}

/// LIST and UIDL, for one message or all.
fn listing(s: &mut Pop3Session, verb: &str, arg: Option<&&str>) -> bool {
    let Some(m) = maildrop(s) else {
        return false;
    };
    let item = |i: usize| {
        if verb == "LIST" {
            format!("{} {}", i + 1, m.sizes[i])
        } else {
            format!("{} {}", i + 1, m.posts[i].uid)
        }
    };
    if arg.is_some() {
        return match message(s, arg) {
            Ok(i) => {
                let text = item(i);
                s.ok(&text);
                true
            }
            Err(e) => fail(s, &e),
        };
    }
    let lines: Vec<String> = (0..m.posts.len())
        .filter(|i| !m.deleted[*i])
        .map(item)
        .collect();
    let (n, octets) = totals(m);
    s.ok(&format!("{n} messages ({octets} octets)"));
    for l in lines {
        s.line(&l);
    }
    s.line(".");
    true
}

/// RETR (all of message `i`) or TOP (its header and `lines` body lines).
fn send(s: &mut Pop3Session, db: &ArchiveDb, i: usize, lines: Option<usize>) -> bool {
    let Some(m) = maildrop(s) else {
        return false;
    };
    let bytes = match mailbox::read(&db.config().data_dir, &m.posts[i]) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(list = %m.list, uid = m.posts[i].uid, error = %e, "pop3: post cannot be read");
            return fail(
                s,
                &format!("[SYS/TEMP] message {} cannot be read just now", i + 1),
            );
        }
    };
    let size = bytes.len();
    let out = match lines {
        None => bytes,
        Some(n) => top(&bytes, n),
    };
    s.ok(&format!("{size} octets"));
    s.multiline(&out);
    true
}

/// The header, the empty line and the first `n` body lines of a message.
fn top(bytes: &[u8], n: usize) -> Vec<u8> {
    let head_end = memchr::memmem::find(bytes, b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(bytes.len());
    let mut out = bytes[..head_end].to_vec();
    for l in bytes[head_end..].split_inclusive(|&c| c == b'\n').take(n) {
        out.extend_from_slice(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::top;

    #[test]
    fn top_keeps_the_header_and_n_body_lines() {
        let m = b"Subject: x\r\nFrom: a@b\r\n\r\none\r\ntwo\r\nthree\r\n";
        assert_eq!(top(m, 0), b"Subject: x\r\nFrom: a@b\r\n\r\n".to_vec());
        assert_eq!(
            top(m, 2),
            b"Subject: x\r\nFrom: a@b\r\n\r\none\r\ntwo\r\n".to_vec()
        );
        assert_eq!(top(m, 99), m.to_vec());
        assert_eq!(top(b"Subject: no body", 3), b"Subject: no body".to_vec());
    }
}
