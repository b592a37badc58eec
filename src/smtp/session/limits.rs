//! The time limits of one session against slow clients (slowloris), like
//! Postfix's `smtpd_per_record_deadline` and `smtpd_min_data_rate`:
//!
//! - a command line must arrive whole within `smtp.command_deadline_secs` of
//!   its first byte (the silence before that byte is the idle timeout's);
//! - DATA may take `command_deadline_secs` plus one second per
//!   `smtp.min_data_rate` bytes received since the 354 (0: no rate);
//! - the whole session ends after `smtp.max_session_secs` (0: no cap).
//!
//! Pure: no clock is read here. The driver reports the time in a [`Moment`];
//! the session asks [`TimeLimits::expired`] before it waits for input and
//! tells the driver [`TimeLimits::deadline`], when to wake it if no byte
//! comes. Trusts nothing from the client: the limits count our own clock and
//! the bytes we received.

use crate::config::SmtpConfig;
use crate::smtp::reply::Reply;
use std::time::{Duration, Instant};

/// A moment as the driver reads its clocks.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    /// Wall-clock unix seconds: `Received:`, queue ids, the command rate.
    pub unix: i64,
    /// Monotonic time: the time limits.
    pub mono: Instant,
}

/// Which time limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    CommandLine,
    DataRate,
    Session,
}

impl Limit {
    /// The 421 that closes the session.
    pub fn reply(self, smtp: &SmtpConfig) -> Reply {
        let why = match self {
            Limit::CommandLine => format!(
                "command line not received within {} seconds",
                smtp.command_deadline_secs
            ),
            Limit::DataRate => format!(
                "message data slower than {} bytes per second",
                smtp.min_data_rate
            ),
            Limit::Session => format!("session longer than {} seconds", smtp.max_session_secs),
        };
        Reply::new(
            421,
            Some("4.4.2"),
            format!(
                "{} Error: timeout exceeded ({why}), closing transmission channel",
                smtp.hostname
            ),
        )
    }
}

/// The limits' state: when the current command line or DATA began.
#[derive(Debug)]
pub struct TimeLimits {
    command: Duration,
    min_rate: u64,
    session_end: Option<Instant>,
    /// When the first byte of the partial command line now buffered came.
    line_started: Option<Instant>,
    /// DATA in progress: when the 354 went out, and how many bytes of the
    /// stream had been received before its first byte.
    data: Option<(Instant, u64)>,
}

impl TimeLimits {
    /// The limits of a session that starts `at`.
    pub fn new(smtp: &SmtpConfig, at: Instant) -> TimeLimits {
        let session = Duration::from_secs(smtp.max_session_secs);
        TimeLimits {
            command: Duration::from_secs(smtp.command_deadline_secs),
            min_rate: smtp.min_data_rate,
            session_end: (smtp.max_session_secs > 0)
                .then(|| at.checked_add(session))
                .flatten(),
            line_started: None,
            data: None,
        }
    }

    /// The session waits for a command line; `partial`: part of it is
    /// already buffered.
    pub fn await_command(&mut self, partial: bool, now: Instant) {
        if !partial {
            self.line_started = None;
        } else if self.line_started.is_none() {
            self.line_started = Some(now);
        }
    }

    /// A whole command line arrived.
    pub fn line_done(&mut self) {
        self.line_started = None;
    }

    /// DATA starts at `now`; `offset` bytes of the stream came before it.
    pub fn start_data(&mut self, now: Instant, offset: u64) {
        self.line_started = None;
        self.data = Some((now, offset));
    }

    /// The end of data was read.
    pub fn end_data(&mut self) {
        self.data = None;
    }

    /// When waiting for input must end, `received` bytes of the stream
    /// having come so far; `None`: never.
    pub fn deadline(&self, received: u64) -> Option<Instant> {
        self.deadlines(received)
            .into_iter()
            .flatten()
            .map(|(at, _)| at)
            .min()
    }

    /// The limit that has run out at `now`, if any (the earliest one).
    pub fn expired(&self, now: Instant, received: u64) -> Option<Limit> {
        self.deadlines(received)
            .into_iter()
            .flatten()
            .filter(|(at, _)| now >= *at)
            .min_by_key(|(at, _)| *at)
            .map(|(_, limit)| limit)
    }

    fn deadlines(&self, received: u64) -> [Option<(Instant, Limit)>; 2] {
        let record = if let Some((started, offset)) = self.data {
            (self.min_rate > 0)
                .then(|| {
                    let bytes = received.saturating_sub(offset);
                    let earned = Duration::from_millis(bytes.saturating_mul(1000) / self.min_rate);
                    started.checked_add(self.command.saturating_add(earned))
                })
                .flatten()
                .map(|at| (at, Limit::DataRate))
        } else {
            self.line_started
                .and_then(|t| t.checked_add(self.command))
                .map(|at| (at, Limit::CommandLine))
        };
        [record, self.session_end.map(|at| (at, Limit::Session))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(line: u64, rate: u64, session: u64) -> SmtpConfig {
        SmtpConfig {
            command_deadline_secs: line,
            min_data_rate: rate,
            max_session_secs: session,
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn a_command_line_counts_from_its_first_byte() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut l = TimeLimits::new(&smtp(10, 0, 0), t0);
        // idle: no deadline at all
        l.await_command(false, s(5));
        assert_eq!(l.deadline(0), None);
        assert_eq!(l.expired(s(1000), 0), None);
        // the first byte at 20 s: the line is due at 30 s, however it dribbles
        l.await_command(true, s(20));
        l.await_command(true, s(25));
        assert_eq!(l.deadline(0), Some(s(30)));
        assert_eq!(l.expired(s(29), 0), None);
        assert_eq!(l.expired(s(30), 0), Some(Limit::CommandLine));
        // a whole line resets it
        l.line_done();
        l.await_command(true, s(40));
        assert_eq!(l.deadline(0), Some(s(50)));
    }

    #[test]
    fn data_earns_time_per_byte_after_the_grace() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut l = TimeLimits::new(&smtp(10, 100, 0), t0);
        l.await_command(true, s(1));
        // 500 bytes of the stream came before DATA's first byte
        l.start_data(s(2), 500);
        assert_eq!(l.deadline(500), Some(s(12)));
        // 1000 bytes of data earn 10 s more
        assert_eq!(l.deadline(1500), Some(s(22)));
        assert_eq!(l.expired(s(21), 1500), None);
        assert_eq!(l.expired(s(22), 1500), Some(Limit::DataRate));
        l.end_data();
        assert_eq!(l.deadline(1500), None);
        // no rate: no DATA deadline
        let mut l = TimeLimits::new(&smtp(10, 0, 0), t0);
        l.start_data(s(2), 0);
        assert_eq!(l.expired(s(100_000), 0), None);
    }

    #[test]
    fn the_session_cap_applies_in_every_wait_and_the_earliest_limit_wins() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut l = TimeLimits::new(&smtp(10, 100, 60), t0);
        assert_eq!(l.deadline(0), Some(s(60)));
        assert_eq!(l.expired(s(60), 0), Some(Limit::Session));
        l.await_command(true, s(55));
        assert_eq!(l.deadline(0), Some(s(60)));
        l.await_command(true, s(45));
        l.line_done();
        l.await_command(true, s(45));
        assert_eq!(l.deadline(0), Some(s(55)));
        assert_eq!(l.expired(s(61), 0), Some(Limit::CommandLine));
        // huge numbers do not overflow
        let l = TimeLimits::new(&smtp(u64::MAX, 1, u64::MAX), t0);
        assert_eq!(l.deadline(u64::MAX), None);
    }

    #[test]
    fn replies_are_421_4_4_2_and_name_the_limit() {
        let c = smtp(10, 100, 60);
        for (limit, text) in [
            (Limit::CommandLine, "within 10 seconds"),
            (Limit::DataRate, "slower than 100 bytes per second"),
            (Limit::Session, "longer than 60 seconds"),
        ] {
            let r = limit.reply(&c);
            assert_eq!((r.code, r.status), (421, Some("4.4.2")));
            assert!(r.lines[0].contains(text), "{r:?}");
        }
    }
}
