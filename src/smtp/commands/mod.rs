//! SMTP/LMTP commands: splitting a command line into its verb and argument,
//! and dispatching to the family that handles it (one file per family).
//!
//! Trusts nothing in the line. Verbs are case-insensitive (RFC 5321 §2.4);
//! an unknown verb gets 500, a known but unimplemented one 502, and each
//! family answers 501 for a bad argument and 503 for a bad sequence.

pub mod data;
pub mod hello;
pub mod info;
pub mod mail;
pub mod rcpt;

use super::reply::{self, Reply};
use super::session::{Protocol, Request, Session, Waiting};
use data::DataReader;

/// What a command does to the session.
#[derive(Debug)]
pub enum Outcome {
    /// Answer and go on.
    Reply(Reply),
    /// Several answers (LMTP after DATA).
    Replies(Vec<Reply>),
    /// Answer 354 and read the message.
    StartData(Reply, Box<DataReader>),
    /// Ask the driver for work; answer when it completes.
    Request(Request, Waiting),
    /// Answer and close the connection.
    Close(Reply),
}

/// Splits `VERB argument`; the verb is upper-cased, the argument trimmed.
pub fn split(line: &str) -> (String, &str) {
    let line = line.trim_end_matches([' ', '\t']);
    match line.find([' ', '\t']) {
        Some(i) => (
            line[..i].to_ascii_uppercase(),
            line[i..].trim_start_matches([' ', '\t']),
        ),
        None => (line.to_ascii_uppercase(), ""),
    }
}

/// Runs one command line.
pub fn dispatch(s: &mut Session, line: &str, now: i64) -> Outcome {
    let (verb, arg) = split(line);
    let lmtp = s.proto == Protocol::Lmtp;
    match verb.as_str() {
        "HELO" | "EHLO" if lmtp => Outcome::Reply(Reply::new(
            500,
            Some("5.5.1"),
            "This is LMTP: use LHLO (RFC 2033)",
        )),
        "LHLO" if !lmtp => Outcome::Reply(reply::unknown_command()),
        "HELO" => hello::helo(s, arg),
        "EHLO" => hello::ehlo(s, arg),
        "LHLO" => hello::lhlo(s, arg),
        "MAIL" => mail::mail(s, line),
        "RCPT" => rcpt::rcpt(s, line),
        "DATA" => data::data(s, arg, now),
        "RSET" => rset(s, arg),
        "NOOP" => Outcome::Reply(Reply::new(250, Some("2.0.0"), "OK")),
        "QUIT" => quit(s, arg),
        "HELP" => info::help(s, arg),
        "VRFY" => info::vrfy(s, arg),
        "EXPN" => info::expn(s, arg),
        // Obsolete (RFC 821) or not offered by listd.
        "SEND" | "SOML" | "SAML" | "TURN" | "BDAT" | "STARTTLS" | "AUTH" | "ETRN" | "ATRN"
        | "BURL" | "VERB" => Outcome::Reply(reply::not_implemented()),
        "" => Outcome::Reply(Reply::new(500, Some("5.5.2"), "Empty command")),
        _ => Outcome::Reply(reply::unknown_command()),
    }
}

fn rset(s: &mut Session, arg: &str) -> Outcome {
    if !arg.is_empty() {
        return Outcome::Reply(reply::syntax("RSET"));
    }
    s.tx = None;
    Outcome::Reply(Reply::new(250, Some("2.0.0"), "Reset OK"))
}

fn quit(s: &mut Session, arg: &str) -> Outcome {
    if !arg.is_empty() {
        return Outcome::Reply(reply::syntax("QUIT"));
    }
    Outcome::Close(Reply::new(
        221,
        Some("2.0.0"),
        format!("{} closing connection", s.config.smtp.hostname),
    ))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_verb_and_argument() {
        assert_eq!(split("ehlo x.org"), ("EHLO".into(), "x.org"));
        assert_eq!(split("QUIT  "), ("QUIT".into(), ""));
        assert_eq!(split("MAIL  FROM: <a@b>"), ("MAIL".into(), "FROM: <a@b>"));
        assert_eq!(split(""), ("".into(), ""));
    }
}
