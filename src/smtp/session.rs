//! The sans-IO ESMTP/LMTP session: bytes in, replies and requests out.
//!
//! The driver (`smtp::server`, or a unit test) feeds what it read with
//! [`Session::receive`], then calls [`Session::advance`] until it returns
//! [`Step::NeedInput`] (flush [`Session::take_output`], read more),
//! [`Step::Request`] (do the work — commit a message, expand a list — and
//! hand the answer to [`Session::complete`]) or [`Step::Close`]. `advance`
//! consumes every complete command line in the buffer before asking for
//! input, so replies to pipelined commands go out together and in order
//! (RFC 2920). No sockets, no clock, no database here: time comes in as a
//! [`Moment`] (wall-clock seconds and a monotonic instant).
//!
//! The time limits against slow clients live here too (`limits`): before it
//! asks for input, `advance` closes the session with 421 when the command
//! line, the DATA rate or the session length is over its limit, and
//! [`Session::deadline`] tells the driver when to call `advance` again if no
//! byte comes. The driver keeps only the idle timeout (silence per read).
//!
//! Trusts nothing from the client. Command lines over 512 octets, bare CR in
//! a command, an invalid UTF-8 line, too many errors in a row and too many
//! commands per minute are all answered, never panicked on. The per-command
//! logic lives in `smtp::commands`, one file per family.

mod limits;

pub use limits::Moment;

use super::commands::{self, data::DataReader, Outcome};
use super::reply::{self, Reply};
use crate::config::Config;
use crate::routing::Route;
use crate::store::spool::Envelope;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// ESMTP or LMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

/// Who is on the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address; `None` over a unix socket.
    pub ip: Option<IpAddr>,
    /// In `smtp.trusted_networks` (unix socket clients are local, so trusted).
    pub trusted: bool,
}

impl Peer {
    /// A TCP peer, trusted if its address is in `smtp.trusted_networks`.
    pub fn tcp(config: &Config, ip: IpAddr) -> Peer {
        Peer {
            ip: Some(ip),
            trusted: config.is_trusted(ip),
        }
    }

    /// A unix-socket peer (local, trusted).
    pub fn local() -> Peer {
        Peer {
            ip: None,
            trusted: true,
        }
    }
}

/// How the client greeted us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloKind {
    Helo,
    Ehlo,
    Lhlo,
}

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    /// As given in RCPT TO, brackets stripped.
    pub address: String,
    pub route: Route,
}

/// The mail transaction in progress (after MAIL FROM).
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    /// The reverse-path; empty for `<>`.
    pub mail_from: String,
    /// `SMTPUTF8` was given on MAIL.
    pub utf8: bool,
    /// `SIZE=` from MAIL, 0 when not given.
    pub declared_size: u64,
    /// Accepted recipients, in order (duplicates kept: LMTP answers each).
    pub rcpts: Vec<Rcpt>,
    /// RCPT commands tried, accepted or not.
    pub rcpt_attempts: u32,
}

/// A message ready to be committed to the spool.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The id in our `Received:` header and the 250 reply.
    pub queue_id: String,
    pub envelope: Envelope,
    /// The message with our `Received:` header on top.
    pub bytes: Vec<u8>,
    /// When DATA started (unix seconds).
    pub received_at: i64,
    /// The authentication verdict to store with it (the driver fills it
    /// in after the checks; `None`: not checked).
    pub auth: Option<Box<crate::store::spool::AuthRow>>,
}

/// Work the driver must do before the session can go on.
#[derive(Debug)]
pub enum Request {
    /// Commit this message durably, then `complete(Completion::Stored(..))`.
    Store(Submission),
    /// Look up the members of this list for EXPN, then
    /// `complete(Completion::Expanded(..))`.
    Expand { list: String },
}

/// One line of an EXPN answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpnEntry {
    pub name: Option<String>,
    pub address: String,
}

/// The driver's answer to a [`Request`].
#[derive(Debug)]
pub enum Completion {
    /// The spool's message id, or why it could not commit.
    Stored(Result<i64, String>),
    /// The list's members, or why they could not be read.
    Expanded(Result<Vec<ExpnEntry>, String>),
}

/// What the driver does next.
#[derive(Debug)]
pub enum Step {
    /// Flush the output and read more input.
    NeedInput,
    /// Flush the output, do this, and call `complete`.
    Request(Request),
    /// Flush the output and close the connection.
    Close,
}

/// What the session is waiting for after a `Request`.
#[derive(Debug)]
pub enum Waiting {
    /// A commit, and the answers owed when it is done.
    Store {
        queue_id: String,
        answers: Vec<commands::data::Answer>,
    },
    Expand,
}

#[derive(Debug)]
enum Phase {
    Command,
    Data(Box<DataReader>),
    Waiting(Waiting),
    Closed,
}

/// One ESMTP or LMTP session.
pub struct Session {
    pub(super) config: Arc<Config>,
    pub(super) proto: Protocol,
    pub(super) peer: Peer,
    /// The HELO/EHLO/LHLO name and kind, once given.
    pub(super) hello: Option<(String, HelloKind)>,
    pub(super) tx: Option<Transaction>,
    phase: Phase,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    /// Skipping the rest of an over-long command line.
    discarding: bool,
    errors: u32,
    window_start: i64,
    window_count: u32,
    draining: bool,
    /// Bytes received over the whole session.
    received: u64,
    limits: limits::TimeLimits,
}

impl Session {
    /// Starts a session; the 220 greeting is already in the output.
    pub fn new(config: Arc<Config>, proto: Protocol, peer: Peer, now: Moment) -> Session {
        let kind = match proto {
            Protocol::Smtp => "ESMTP",
            Protocol::Lmtp => "LMTP",
        };
        let greeting = Reply::new(
            220,
            None,
            format!("{} {kind} listd ready", config.smtp.hostname),
        );
        let limits = limits::TimeLimits::new(&config.smtp, now.mono);
        let mut s = Session {
            config,
            proto,
            peer,
            hello: None,
            tx: None,
            phase: Phase::Command,
            buf: Vec::new(),
            pos: 0,
            out: Vec::new(),
            discarding: false,
            errors: 0,
            window_start: now.unix,
            window_count: 0,
            draining: false,
            received: 0,
            limits,
        };
        greeting.write_to(&mut s.out);
        s
    }

    /// Adds bytes read from the client.
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.received += bytes.len() as u64;
    }

    /// Takes the replies written so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The replies written so far, to be written out before
    /// [`Session::clear_output`] (which keeps the buffer for the next ones).
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Forgets the replies written so far, keeping the buffer's memory.
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    /// Whether replies are waiting to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether the session has ended (QUIT, 421).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether a mail transaction is in progress (MAIL given, DATA reading
    /// or a commit pending).
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some() || matches!(self.phase, Phase::Data(_) | Phase::Waiting(_))
    }

    /// Bytes buffered but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// When the driver must call `advance` again if no input comes (a time
    /// limit runs out then); `None` while no limit runs.
    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Command | Phase::Data(_) => self.limits.deadline(self.received),
            Phase::Waiting(_) | Phase::Closed => None,
        }
    }

    /// The idle timeout fired: 421 and close.
    pub fn timeout(&mut self) {
        if !self.is_closed() {
            self.close_with(reply::idle_timeout(&self.config.smtp.hostname));
        }
    }

    /// The server is shutting down: a session between transactions gets 421
    /// at once (on the next `advance`); one inside a transaction finishes it
    /// first and gets 421 right after.
    pub fn shutdown(&mut self) {
        self.draining = true;
    }

    /// Processes buffered input until more input, a request or the end.
    pub fn advance(&mut self, now: Moment) -> Step {
        loop {
            match &mut self.phase {
                Phase::Closed => return Step::Close,
                Phase::Waiting(_) => {
                    // `complete` has not been called; nothing to do.
                    return Step::NeedInput;
                }
                Phase::Data(reader) => {
                    let (used, done) = reader.feed(&self.buf[self.pos..]);
                    self.pos += used;
                    if !done {
                        return self.await_input(now);
                    }
                    self.limits.end_data();
                    let finished = std::mem::replace(&mut self.phase, Phase::Command);
                    if let Phase::Data(reader) = finished {
                        let outcome = commands::data::finish(self, *reader, now.unix);
                        if let Some(step) = self.apply(outcome, now) {
                            return step;
                        }
                        if let Some(step) = self.after_transaction() {
                            return step;
                        }
                    }
                }
                Phase::Command => {
                    if self.draining && !self.in_transaction() {
                        self.close_with(reply::shutting_down(&self.config.smtp.hostname));
                        return Step::Close;
                    }
                    let Some(line) = self.next_line() else {
                        let partial = self.buffered() > 0 || self.discarding;
                        self.limits.await_command(partial, now.mono);
                        return self.await_input(now);
                    };
                    self.limits.line_done();
                    let outcome = match line {
                        Line::TooLong => Outcome::Reply(Reply::new(
                            500,
                            Some("5.5.2"),
                            "Line too long (the limit is 512 octets)",
                        )),
                        Line::Bad(why) => Outcome::Reply(Reply::new(500, Some("5.5.2"), why)),
                        Line::Text(text) => {
                            if let Some(r) = self.rate_limit(now.unix) {
                                self.close_with(r);
                                return Step::Close;
                            }
                            commands::dispatch(self, &text, now.unix)
                        }
                    };
                    if let Some(step) = self.apply(outcome, now) {
                        return step;
                    }
                }
            }
        }
    }

    /// Before waiting for input: 421 and close if a time limit is over.
    fn await_input(&mut self, now: Moment) -> Step {
        let Some(limit) = self.limits.expired(now.mono, self.received) else {
            return Step::NeedInput;
        };
        tracing::info!(client = ?self.peer.ip, ?limit, "time limit exceeded; answered 421");
        self.close_with(limit.reply(&self.config.smtp));
        Step::Close
    }

    /// Carries out what a command decided; `Some` when `advance` must return.
    fn apply(&mut self, outcome: Outcome, now: Moment) -> Option<Step> {
        match outcome {
            Outcome::Reply(r) => self.reply(r),
            Outcome::Replies(rs) => self.replies(rs),
            Outcome::StartData(r, reader) => {
                self.reply(r);
                let offset = self.received - self.buffered() as u64;
                self.limits.start_data(now.mono, offset);
                self.phase = Phase::Data(reader);
            }
            Outcome::Request(req, waiting) => {
                self.phase = Phase::Waiting(waiting);
                return Some(Step::Request(req));
            }
            Outcome::Close(r) => {
                self.close_with(r);
                return Some(Step::Close);
            }
        }
        self.is_closed().then_some(Step::Close)
    }

    /// Hands the session the answer to its last `Request`.
    pub fn complete(&mut self, completion: Completion) {
        let waiting = match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Waiting(w) => w,
            other => {
                // A completion nobody asked for: keep the phase, ignore it.
                self.phase = other;
                tracing::warn!("smtp session got a completion it did not request");
                return;
            }
        };
        match (waiting, completion) {
            (Waiting::Store { queue_id, answers }, Completion::Stored(result)) => {
                if let Err(e) = &result {
                    tracing::error!(%queue_id, error = %e, "spool commit failed; answered 451");
                }
                let rs = commands::data::stored(&queue_id, answers, result);
                self.replies(rs);
                self.after_transaction();
            }
            (Waiting::Expand, Completion::Expanded(result)) => {
                let r = commands::info::expanded(result, self.config.smtp.expn_max_members);
                self.reply(r);
            }
            (w, c) => {
                tracing::error!(?w, ?c, "smtp session got the wrong completion");
                self.reply(reply::local_error());
                self.tx = None;
            }
        }
    }

    /// After a transaction ends: a draining session says 421 now.
    fn after_transaction(&mut self) -> Option<Step> {
        if self.draining && !self.is_closed() {
            self.close_with(reply::shutting_down(&self.config.smtp.hostname));
            return Some(Step::Close);
        }
        if self.is_closed() {
            return Some(Step::Close);
        }
        None
    }

    /// Writes a reply and keeps the error count.
    pub(super) fn reply(&mut self, r: Reply) {
        let is_error = r.is_error();
        r.write_to(&mut self.out);
        self.count(is_error);
    }

    /// Writes several replies (LMTP after DATA; counted as one answer).
    fn replies(&mut self, rs: Vec<Reply>) {
        let any_ok = rs.iter().any(|r| !r.is_error());
        for r in &rs {
            r.write_to(&mut self.out);
        }
        self.count(!any_ok && !rs.is_empty());
    }

    fn count(&mut self, is_error: bool) {
        if !is_error {
            self.errors = 0;
            return;
        }
        self.errors += 1;
        if self.errors >= self.config.smtp.max_errors.max(1) {
            let r = Reply::new(
                421,
                Some("4.7.0"),
                format!(
                    "{} Too many errors in a row, closing transmission channel",
                    self.config.smtp.hostname
                ),
            );
            self.close_with(r);
        }
    }

    fn close_with(&mut self, r: Reply) {
        r.write_to(&mut self.out);
        self.phase = Phase::Closed;
        self.tx = None;
    }

    /// Counts a command against `smtp.max_commands_per_minute` (untrusted
    /// clients only, like Postfix's anvil exceptions for `mynetworks`).
    fn rate_limit(&mut self, now: i64) -> Option<Reply> {
        if self.peer.trusted {
            return None;
        }
        if now - self.window_start >= 60 || now < self.window_start {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        if self.window_count > self.config.smtp.max_commands_per_minute {
            return Some(Reply::new(
                421,
                Some("4.7.0"),
                format!(
                    "{} Too many commands, slow down and try again later",
                    self.config.smtp.hostname
                ),
            ));
        }
        None
    }

    /// The next complete command line, if the buffer holds one.
    fn next_line(&mut self) -> Option<Line> {
        let rest = &self.buf[self.pos..];
        match memchr::memchr(b'\n', rest) {
            None => {
                if rest.len() > MAX_COMMAND_LINE {
                    // Drop what we have; keep skipping until the line ends.
                    self.discarding = true;
                    self.pos = self.buf.len();
                }
                None
            }
            Some(i) => {
                let raw = &rest[..i];
                self.pos += i + 1;
                if self.discarding {
                    self.discarding = false;
                    return Some(Line::TooLong);
                }
                if raw.len() + 1 > MAX_COMMAND_LINE {
                    return Some(Line::TooLong);
                }
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                if raw.contains(&b'\r') {
                    return Some(Line::Bad("Bare CR in command line"));
                }
                if raw.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
                    return Some(Line::Bad("Control character in command line"));
                }
                match std::str::from_utf8(raw) {
                    Ok(s) => Some(Line::Text(s.to_string())),
                    Err(_) => Some(Line::Bad("Command line is not valid UTF-8")),
                }
            }
        }
    }

    /// Starts the LMTP/SMTP transaction state for tests and commands.
    pub(super) fn helo_name(&self) -> &str {
        self.hello.as_ref().map(|(h, _)| h.as_str()).unwrap_or("")
    }

    /// The `with` protocol name of the `Received:` header and the envelope.
    pub(super) fn protocol_name(&self) -> &'static str {
        match (self.proto, self.hello.as_ref().map(|h| h.1)) {
            (Protocol::Lmtp, _) => "LMTP",
            (_, Some(HelloKind::Ehlo)) => "ESMTP",
            _ => "SMTP",
        }
    }
}

enum Line {
    Text(String),
    TooLong,
    Bad(&'static str),
}

#[cfg(test)]
mod tests;
