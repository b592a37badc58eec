//! DATA: the 354 go-ahead, reading the message (dot-unstuffing, RFC 5321
//! §4.5.2), and the answer at the end of the data.
//!
//! The reader trusts nothing. Only `CRLF . CRLF` ends the data; a bare LF or
//! a bare CR anywhere in the content marks the message as rejected (the SMTP
//! smuggling defense), as does a line over 998 octets or more bytes than the
//! size limit. A rejected message is still read to its real end, so the
//! bytes after it are never taken as commands, but it is not kept in memory
//! and nothing of it is stored. Memory per session is bounded by the size
//! limit plus one line.
//!
//! An accepted message becomes a `Request::Store`; the 250 goes out only
//! when the driver reports the commit (`stored`). Over LMTP there is one
//! answer per accepted recipient, in RCPT order (RFC 2033 §4.2).

use super::Outcome;
use crate::address::address_key;
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{Protocol, Request, Session, Submission, Waiting};
use crate::smtp::trace;
use crate::store::spool::Envelope;

/// Longest content line, CRLF excluded (RFC 5321 §4.5.3.1.6).
pub const MAX_DATA_LINE: usize = 998;

/// One answer owed after the commit.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Already decided (an LMTP recipient over its list's size limit).
    Decided(Reply),
    /// The commit's outcome; `rcpt` is named in the LMTP reply.
    OnCommit { rcpt: Option<String> },
}

/// Reads the message content after 354.
#[derive(Debug)]
pub struct DataReader {
    /// Our `Received:` header, then the unstuffed content.
    body: Vec<u8>,
    /// Unstuffed content bytes seen (the header not counted).
    size: u64,
    limit: u64,
    /// The previous line ended with CRLF (true at the start of data).
    prev_crlf: bool,
    /// Skipping the rest of an over-long line.
    in_long: bool,
    long_last_cr: bool,
    bare: bool,
    long: bool,
    oversize: bool,
    queue_id: String,
    started: i64,
}

/// Bytes reserved for a message's content when DATA starts (a typical
/// message; more grows as needed, never past the size limit's refusal).
const BODY_RESERVE: usize = 16 * 1024;

impl DataReader {
    /// A reader whose body starts with `header`, refusing more than `limit`
    /// content bytes.
    pub fn new(header: String, limit: u64, queue_id: String, started: i64) -> DataReader {
        let mut body = header.into_bytes();
        // most messages fit: one allocation instead of a doubling series
        body.reserve(BODY_RESERVE.min(limit as usize));
        DataReader {
            body,
            size: 0,
            limit,
            prev_crlf: true,
            in_long: false,
            long_last_cr: false,
            bare: false,
            long: false,
            oversize: false,
            queue_id,
            started,
        }
    }

    fn rejected(&self) -> bool {
        self.bare || self.long || self.oversize
    }

    /// Consumes complete lines of `input`; returns the bytes used and
    /// whether the end of data (`CRLF.CRLF`) was reached. A partial line is
    /// left for the next call unless it is already too long.
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        loop {
            let rest = &input[i..];
            if self.in_long {
                match memchr::memchr(b'\n', rest) {
                    None => {
                        if let Some(&last) = rest.last() {
                            self.long_last_cr = last == b'\r';
                        }
                        return (input.len(), false);
                    }
                    Some(j) => {
                        let crlf = if j > 0 {
                            rest[j - 1] == b'\r'
                        } else {
                            self.long_last_cr
                        };
                        if !crlf {
                            self.bare = true;
                        }
                        self.prev_crlf = crlf;
                        self.in_long = false;
                        i += j + 1;
                        continue;
                    }
                }
            }
            let Some(j) = memchr::memchr(b'\n', rest) else {
                if rest.len() > MAX_DATA_LINE + 1 {
                    self.long = true;
                    self.in_long = true;
                    self.long_last_cr = rest.last() == Some(&b'\r');
                    self.drop_body();
                    return (input.len(), false);
                }
                return (i, false);
            };
            let line = &rest[..=j];
            i += j + 1;
            let crlf = j > 0 && rest[j - 1] == b'\r';
            let content = &line[..if crlf { j - 1 } else { j }];
            if crlf && self.prev_crlf && content == b"." {
                return (i, true);
            }
            if !crlf || memchr::memchr(b'\r', content).is_some() {
                self.bare = true;
            }
            if content.len() > MAX_DATA_LINE {
                self.long = true;
            }
            let unstuffed = if content.first() == Some(&b'.') {
                &line[1..]
            } else {
                line
            };
            self.size += unstuffed.len() as u64;
            if self.size > self.limit {
                self.oversize = true;
            }
            if self.rejected() {
                self.drop_body();
            } else {
                self.body.extend_from_slice(unstuffed);
            }
            self.prev_crlf = crlf;
        }
    }

    fn drop_body(&mut self) {
        if !self.body.is_empty() {
            self.body = Vec::new();
        }
    }

    /// Content bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// DATA.
pub fn data(s: &mut Session, arg: &str, now: i64) -> Outcome {
    if !arg.is_empty() {
        return Outcome::Reply(reply::syntax("DATA"));
    }
    let Some(tx) = &s.tx else {
        return Outcome::Reply(reply::bad_sequence("need MAIL and RCPT before DATA"));
    };
    if tx.rcpts.is_empty() {
        return Outcome::Reply(if tx.rcpt_attempts == 0 {
            reply::bad_sequence("need RCPT before DATA")
        } else {
            Reply::new(554, Some("5.5.1"), "No valid recipients")
        });
    }
    let queue_id = trace::queue_id(now);
    let mut distinct: Vec<String> = tx.rcpts.iter().map(|r| address_key(&r.address)).collect();
    distinct.sort();
    distinct.dedup();
    let for_rcpt = (distinct.len() == 1).then(|| tx.rcpts[0].address.as_str());
    let with = match (s.protocol_name(), tx.utf8) {
        ("LMTP", true) => "UTF8LMTP",
        (_, true) => "UTF8SMTP",
        (p, false) => p,
    };
    let header = trace::received(&trace::Stamp {
        helo: s.helo_name(),
        ip: s.peer.ip,
        by: &s.config.smtp.hostname,
        with,
        id: &queue_id,
        for_rcpt,
        now,
    });
    let reader = DataReader::new(header, s.config.smtp.max_message_size, queue_id, now);
    Outcome::StartData(
        Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"),
        Box::new(reader),
    )
}

/// The end of data: reject, or ask for the commit.
pub fn finish(s: &mut Session, reader: DataReader, _now: i64) -> Outcome {
    let Some(tx) = s.tx.take() else {
        return Outcome::Reply(reply::local_error());
    };
    let lmtp = s.proto == Protocol::Lmtp;
    let all = |r: Reply| {
        if lmtp {
            Outcome::Replies(vec![r; tx.rcpts.len()])
        } else {
            Outcome::Reply(r)
        }
    };
    if reader.bare {
        tracing::info!(queue_id = %reader.queue_id, "rejected: bare CR or LF in DATA");
        return all(Reply::new(
            554,
            Some("5.6.0"),
            "Message contains a bare CR or bare LF; lines must end with CRLF (RFC 5321 §2.3.8). Not accepted",
        ));
    }
    if reader.long {
        tracing::info!(queue_id = %reader.queue_id, "rejected: DATA line over 998 octets");
        return all(Reply::new(
            554,
            Some("5.6.0"),
            "Message has a line longer than 998 octets (RFC 5321 §4.5.3.1.6). Not accepted",
        ));
    }
    if reader.oversize {
        tracing::info!(queue_id = %reader.queue_id, size = reader.size, "rejected: too big");
        return all(Reply::new(
            552,
            Some("5.3.4"),
            format!(
                "Message size exceeds fixed maximum message size ({} bytes)",
                reader.limit
            ),
        ));
    }
    let config = s.config.clone();
    let checks: Vec<Option<Reply>> = tx
        .rcpts
        .iter()
        .map(|r| super::rcpt::list_size_check(&config, &r.route, reader.size))
        .collect();
    if !lmtp {
        if let Some(r) = checks.iter().flatten().next() {
            return Outcome::Reply(r.clone());
        }
    }
    let mut rcpts = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (r, check) in tx.rcpts.iter().zip(&checks) {
        if check.is_none() && seen.insert(address_key(&r.address)) {
            rcpts.push((r.address.clone(), (&r.route).into()));
        }
    }
    if rcpts.is_empty() {
        return Outcome::Replies(checks.into_iter().flatten().collect());
    }
    let answers = if lmtp {
        tx.rcpts
            .iter()
            .zip(checks)
            .map(|(r, c)| match c {
                Some(reply) => Answer::Decided(reply),
                None => Answer::OnCommit {
                    rcpt: Some(r.address.clone()),
                },
            })
            .collect()
    } else {
        vec![Answer::OnCommit { rcpt: None }]
    };
    let envelope = Envelope {
        mail_from: tx.mail_from,
        rcpts,
        client_ip: s.peer.ip.map(|ip| ip.to_string()),
        helo: s.helo_name().to_string(),
        protocol: s.protocol_name().to_string(),
    };
    let queue_id = reader.queue_id;
    let submission = Submission {
        queue_id: queue_id.clone(),
        envelope,
        bytes: reader.body,
        received_at: reader.started,
        auth: None,
    };
    Outcome::Request(
        Request::Store(submission),
        Waiting::Store { queue_id, answers },
    )
}

/// The answers once the commit is done (or failed).
pub fn stored(queue_id: &str, answers: Vec<Answer>, result: Result<i64, String>) -> Vec<Reply> {
    answers
        .into_iter()
        .map(|a| match a {
            Answer::Decided(r) => r,
            Answer::OnCommit { rcpt } => match &result {
                Ok(_) => Reply::new(
                    250,
                    Some("2.0.0"),
                    match rcpt {
                        Some(r) => format!("<{r}> Ok: queued as {queue_id}"),
                        None => format!("Ok: queued as {queue_id}"),
                    },
                ),
                Err(_) => reply::local_error(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(limit: u64) -> DataReader {
        DataReader::new("H: x\r\n".into(), limit, "Q".into(), 0)
    }

    #[test]
    fn unstuffs_and_ends_at_crlf_dot_crlf() {
        let mut r = reader(1000);
        let input = b"a\r\n..b\r\n.\r\nMAIL";
        let (used, done) = r.feed(input);
        assert!(done);
        assert_eq!(&input[used..], b"MAIL");
        assert_eq!(r.body, b"H: x\r\na\r\n.b\r\n");
        assert!(!r.rejected());
    }

    #[test]
    fn partial_lines_wait_for_more() {
        let mut r = reader(1000);
        assert_eq!(r.feed(b"abc"), (0, false));
        assert_eq!(r.feed(b"abc\r\n."), (5, false));
        assert_eq!(r.feed(b".\r"), (0, false));
        assert_eq!(r.feed(b".\r\n"), (3, true));
        assert_eq!(r.body, b"H: x\r\nabc\r\n");
    }

    #[test]
    fn smuggling_forms_never_end_data_and_reject() {
        for evil in [
            &b"a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"[..],
            b"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n",
            b"a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n",
            b"a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n",
        ] {
            let mut r = reader(1000);
            let (used, done) = r.feed(evil);
            assert!(done, "{:?}", String::from_utf8_lossy(evil));
            assert_eq!(used, evil.len(), "ends only at the final CRLF.CRLF");
            assert!(r.bare);
            assert!(r.body.is_empty());
        }
    }

    #[test]
    fn long_lines_and_size() {
        let mut r = reader(1_000_000);
        let mut input = vec![b'x'; 999];
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(r.feed(&input).1);
        assert!(r.long);

        // an over-long line arriving in pieces is skipped, not buffered
        let mut r = reader(1_000_000);
        let chunk = vec![b'y'; 4000];
        assert_eq!(r.feed(&chunk), (4000, false));
        assert_eq!(r.feed(b"yy\r"), (3, false));
        assert_eq!(r.feed(b"\n.\r\n"), (4, true));
        assert!(r.long && !r.bare);

        let mut r = reader(10);
        assert!(r.feed(b"0123456789\r\n.\r\n").1);
        assert!(r.oversize);
        let mut r = reader(12);
        assert!(r.feed(b"0123456789\r\n.\r\n").1);
        assert!(!r.rejected());
    }
}
