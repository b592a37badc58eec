//! HELO, EHLO and LHLO: the client names itself; the server answers with
//! its name and, for EHLO/LHLO, the extensions it offers.
//!
//! The name is untrusted and only recorded (in the envelope and the
//! `Received:` header), so any printable ASCII token is accepted, including
//! a trailing dot or an address literal; whitespace, control and non-ASCII
//! characters get 501. A greeting resets any transaction (RFC 5321 §4.1.4).

use super::Outcome;
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{HelloKind, Session};

/// The extensions listd offers, after the greeting line.
pub fn extensions(max_size: u64) -> Vec<String> {
    vec![
        "PIPELINING".into(),
        format!("SIZE {max_size}"),
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        "ENHANCEDSTATUSCODES".into(),
        "HELP".into(),
    ]
}

/// Checks a HELO/EHLO/LHLO argument.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic())
}

fn greet(s: &mut Session, arg: &str, kind: HelloKind, verb: &str) -> Result<String, Reply> {
    if !valid_name(arg) {
        return Err(reply::syntax(&format!("{verb} hostname")));
    }
    s.hello = Some((arg.to_string(), kind));
    s.tx = None;
    let ip = s.peer.ip.map(|ip| format!(" [{ip}]")).unwrap_or_default();
    Ok(format!(
        "{} Hello {arg}{ip}, pleased to meet you",
        s.config.smtp.hostname
    ))
}

pub fn helo(s: &mut Session, arg: &str) -> Outcome {
    match greet(s, arg, HelloKind::Helo, "HELO") {
        Ok(line) => Outcome::Reply(Reply::new(250, None, line)),
        Err(r) => Outcome::Reply(r),
    }
}

pub fn ehlo(s: &mut Session, arg: &str) -> Outcome {
    extended(s, arg, HelloKind::Ehlo, "EHLO")
}

pub fn lhlo(s: &mut Session, arg: &str) -> Outcome {
    extended(s, arg, HelloKind::Lhlo, "LHLO")
}

fn extended(s: &mut Session, arg: &str, kind: HelloKind, verb: &str) -> Outcome {
    match greet(s, arg, kind, verb) {
        Ok(line) => {
            let mut lines = vec![line];
            lines.extend(extensions(s.config.smtp.max_message_size));
            Outcome::Reply(Reply::multi(250, None, lines))
        }
        Err(r) => Outcome::Reply(r),
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names() {
        assert!(valid_name("crepes.fr"));
        assert!(valid_name("smtp.sendersite.org."));
        assert!(valid_name("[192.0.2.1]"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("héllo"));
        assert!(!valid_name(&"a".repeat(256)));
    }
}
