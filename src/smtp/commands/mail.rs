//! MAIL FROM: starts a transaction. Parsed with `smtp-proto`; accepts the
//! null sender `<>`, a space after the colon, and the parameters listd
//! advertises: `SIZE=` (RFC 1870), `BODY=7BIT|8BITMIME` (RFC 6152) and
//! `SMTPUTF8` (RFC 6531). Any other parameter gets 555 5.5.4.
//!
//! Trusts nothing: the address is re-checked with `address::Address`, a
//! non-ASCII address without `SMTPUTF8` gets 553 5.6.7, and a declared size
//! over `smtp.max_message_size` gets 552 5.3.4 before any data is sent.

use super::Outcome;
use crate::address::Address;
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{HelloKind, Session, Transaction};
use smtp_proto::{Error as ProtoError, Request};

const USAGE: &str = "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]";

/// Parameters other than these are refused.
const ALLOWED_FLAGS: u64 =
    smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;

pub fn mail(s: &mut Session, line: &str) -> Outcome {
    if s.hello.is_none() {
        let first = if s.proto == crate::smtp::session::Protocol::Lmtp {
            "send LHLO first"
        } else {
            "send HELO or EHLO first"
        };
        return Outcome::Reply(reply::bad_sequence(first));
    }
    if s.tx.is_some() {
        return Outcome::Reply(reply::bad_sequence("sender already given (RSET first)"));
    }
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let from = match Request::parse(&mut bytes.iter()) {
        Ok(Request::Mail { from }) => from,
        Ok(_) => return Outcome::Reply(reply::syntax(USAGE)),
        Err(e) => return Outcome::Reply(parse_error(e, "5.1.7", "sender")),
    };
    if from.flags & !ALLOWED_FLAGS != 0
        || from.trans_id.is_some()
        || from.env_id.is_some()
        || from.solicit.is_some()
        || from.mtrk.is_some()
        || from.auth.is_some()
        || from.by != 0
        || from.hold_for != 0
        || from.hold_until != 0
        || from.mt_priority != 0
    {
        return Outcome::Reply(Reply::new(
            555,
            Some("5.5.4"),
            "MAIL parameter not supported (only SIZE, BODY=7BIT|8BITMIME and SMTPUTF8)",
        ));
    }
    let utf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
    if utf8 && s.hello.as_ref().map(|h| h.1) == Some(HelloKind::Helo) {
        return Outcome::Reply(Reply::new(
            555,
            Some("5.5.4"),
            "SMTPUTF8 needs EHLO (RFC 6531)",
        ));
    }
    let address = from.address.to_string();
    if address.is_empty() && !line.contains("<>") {
        // smtp-proto maps `<postmaster>` to the empty path; a reverse-path
        // without a domain is not a sender.
        return Outcome::Reply(Reply::new(501, Some("5.1.7"), "Bad sender address syntax"));
    }
    if !address.is_empty() {
        if !address.is_ascii() && !utf8 {
            return Outcome::Reply(Reply::new(
                553,
                Some("5.6.7"),
                "Non-ASCII address needs the SMTPUTF8 parameter",
            ));
        }
        if let Err(e) = Address::parse(&address) {
            return Outcome::Reply(Reply::new(
                501,
                Some("5.1.7"),
                format!("Bad sender address: {e}"),
            ));
        }
    }
    let max = s.config.smtp.max_message_size;
    if from.size as u64 > max {
        return Outcome::Reply(Reply::new(
            552,
            Some("5.3.4"),
            format!("Message size exceeds fixed maximum message size ({max} bytes)"),
        ));
    }
    let text = format!("Sender <{address}> OK");
    s.tx = Some(Transaction {
        mail_from: address,
        utf8,
        declared_size: from.size as u64,
        rcpts: Vec::new(),
        rcpt_attempts: 0,
    });
    Outcome::Reply(Reply::new(250, Some("2.1.0"), text))
}

/// Maps an `smtp-proto` parse error of MAIL or RCPT to a reply.
pub fn parse_error(e: ProtoError, addr_status: &'static str, what: &str) -> Reply {
    match e {
        ProtoError::InvalidSenderAddress | ProtoError::InvalidRecipientAddress => {
            Reply::new(501, Some(addr_status), format!("Bad {what} address syntax"))
        }
        ProtoError::UnsupportedParameter { param } => Reply::new(
            555,
            Some("5.5.4"),
            format!("Parameter {param} not supported"),
        ),
        ProtoError::InvalidParameter { param } => Reply::new(
            501,
            Some("5.5.4"),
            format!("Invalid value for the {param} parameter"),
        ),
        ProtoError::SyntaxError { syntax } => reply::syntax(syntax),
        _ => reply::syntax(if what == "sender" {
            USAGE
        } else {
            "RCPT TO:<address>"
        }),
    }
}
