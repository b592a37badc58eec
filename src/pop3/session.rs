//! The sans-IO POP3 session: the driver feeds bytes with
//! [`Pop3Session::receive`], runs [`Pop3Session::advance`] (which answers
//! every complete command line, using the store handle it is given), and
//! writes [`Pop3Session::take_output`]. States: Authorization, then
//! Transaction after a good PASS, then Update on QUIT (which ends it).
//!
//! Command lines are at most [`MAX_LINE`] octets; a longer one, or too many
//! errors in a row, closes the session with `-ERR`.

use crate::reader::{ArchiveDb, Post};
use std::net::IpAddr;

/// Longest command line kept, CRLF included (RFC 2449 allows 255).
pub const MAX_LINE: usize = 512;
/// Errors in a row before the server hangs up.
pub const MAX_ERRORS: u32 = 10;

/// Who is on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pop3Peer {
    pub ip: Option<IpAddr>,
    /// On loopback or in `smtp.trusted_networks`: a password may cross in
    /// clear. Elsewhere only anonymous logins are taken.
    pub trusted: bool,
}

/// The open maildrop of the Transaction state.
#[derive(Debug, Clone)]
pub struct Maildrop {
    pub list: String,
    pub posts: Vec<Post>,
    /// Octets of each message as RETR sends it (CRLF line ends).
    pub sizes: Vec<u64>,
    /// Marked by DELE, for this session only.
    pub deleted: Vec<bool>,
}

#[derive(Debug, Clone)]
pub(super) enum State {
    /// Before USER, or after a USER waiting for PASS.
    Authorization {
        user: Option<String>,
    },
    Transaction(Maildrop),
    Closed,
}

/// One POP3 session.
pub struct Pop3Session {
    pub(super) state: State,
    pub(super) peer: Pop3Peer,
    pub(super) hostname: String,
    pub(super) maildrop_size: usize,
    input: Vec<u8>,
    output: Vec<u8>,
    errors: u32,
}

impl Pop3Session {
    /// A session; the greeting is already in the output. `stamp` is a
    /// unique `<process.random@host>` string for APOP.
    pub fn new(hostname: &str, stamp: &str, maildrop_size: usize, peer: Pop3Peer) -> Pop3Session {
        let mut s = Pop3Session {
            state: State::Authorization { user: None },
            peer,
            hostname: hostname.to_string(),
            maildrop_size,
            input: Vec::new(),
            output: Vec::new(),
            errors: 0,
        };
        s.ok(&format!(
            "{hostname} POP3 server ready: list archives, read-only, the newest {maildrop_size} posts of a list {stamp}"
        ));
        s
    }

    pub fn receive(&mut self, bytes: &[u8]) {
        if !self.is_closed() {
            self.input.extend_from_slice(bytes);
        }
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The maildrop, in the Transaction state.
    pub fn maildrop(&self) -> Option<&Maildrop> {
        match &self.state {
            State::Transaction(m) => Some(m),
            _ => None,
        }
    }

    /// The inactivity timer ran out: close without touching anything.
    pub fn timeout(&mut self) {
        if !self.is_closed() {
            self.err("inactivity timeout, closing (nothing was changed)");
            self.state = State::Closed;
        }
    }

    /// Answers every complete command line in the input.
    pub fn advance(&mut self, db: &ArchiveDb, now: i64) {
        while !self.is_closed() {
            let Some(end) = memchr::memchr(b'\n', &self.input) else {
                if self.input.len() > MAX_LINE {
                    self.close_with("command line too long");
                }
                return;
            };
            let line: Vec<u8> = self.input.drain(..=end).collect();
            if line.len() > MAX_LINE {
                self.close_with("command line too long");
                return;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let ok = super::commands::dispatch(self, db, text, now);
            self.errors = if ok { 0 } else { self.errors + 1 };
            if self.errors >= MAX_ERRORS {
                self.close_with("too many errors, closing");
            }
        }
    }

    fn close_with(&mut self, why: &str) {
        self.err(why);
        self.state = State::Closed;
        self.input.clear();
    }

    pub(super) fn ok(&mut self, text: &str) {
        self.line(&format!("+OK {text}"));
    }

    pub(super) fn err(&mut self, text: &str) {
        self.line(&format!("-ERR {text}"));
    }

    pub(super) fn line(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// A multi-line body: dot-stuffed, ended by `.` (RFC 1939 §3).
    pub(super) fn multiline(&mut self, bytes: &[u8]) {
        for l in bytes.split_inclusive(|&c| c == b'\n') {
            if l.starts_with(b".") {
                self.output.push(b'.');
            }
            self.output.extend_from_slice(l);
        }
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            self.output.extend_from_slice(b"\r\n");
        }
        self.output.extend_from_slice(b".\r\n");
    }
}
