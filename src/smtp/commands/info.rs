//! HELP, VRFY and EXPN: the informational commands.
//!
//! They leak as little as policy allows. VRFY answers 252 (RFC 5321 §3.5.3)
//! to anyone outside `smtp.trusted_networks`; trusted clients get the real
//! routing answer. EXPN follows the list's `expn` policy: `trusted` means
//! the client address is trusted, and since an SMTP client has no proven
//! identity `members` and `owners` count as `trusted` here. A refusal is
//! 550 5.7.1 and says nothing about the members; an unknown list is 550
//! 5.1.1. The member lookup itself is a `Request::Expand` for the driver.

use super::Outcome;
use crate::address::Address;
use crate::config::Access;
use crate::routing::{self, RouteError};
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{ExpnEntry, Protocol, Request, Session, Waiting};

const TOPICS: &[(&str, &[&str])] = &[
    (
        "HELO",
        &["HELO <hostname>", "    Introduce yourself (plain SMTP)."],
    ),
    (
        "EHLO",
        &[
            "EHLO <hostname>",
            "    Introduce yourself and list the extensions.",
        ],
    ),
    (
        "LHLO",
        &[
            "LHLO <hostname>",
            "    Introduce yourself (LMTP, RFC 2033).",
        ],
    ),
    (
        "MAIL",
        &[
            "MAIL FROM:<sender> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]",
            "    Start a message; <> is the null sender.",
        ],
    ),
    (
        "RCPT",
        &[
            "RCPT TO:<recipient>",
            "    Name one recipient: a list or one of its service addresses.",
        ],
    ),
    (
        "DATA",
        &[
            "DATA",
            "    Send the message; end it with a line holding only \".\".",
        ],
    ),
    (
        "RSET",
        &["RSET", "    Abort the current message and start over."],
    ),
    ("NOOP", &["NOOP", "    Do nothing."]),
    ("QUIT", &["QUIT", "    Close the connection."]),
    ("HELP", &["HELP [command]", "    This text."]),
    (
        "VRFY",
        &[
            "VRFY <address>",
            "    Check an address (trusted clients only; others get 252).",
        ],
    ),
    (
        "EXPN",
        &[
            "EXPN <list>",
            "    List the members of a list, if the list's expn policy allows it.",
        ],
    ),
];

/// HELP [topic]: 214.
pub fn help(s: &mut Session, arg: &str) -> Outcome {
    if arg.is_empty() {
        let hello = match s.proto {
            Protocol::Smtp => "HELO    EHLO",
            Protocol::Lmtp => "LHLO",
        };
        return Outcome::Reply(Reply::multi(
            214,
            Some("2.0.0"),
            vec![
                "This is listd, a mailing list manager".into(),
                "Topics:".into(),
                format!("    {hello}    MAIL    RCPT    DATA"),
                "    RSET    NOOP    QUIT    HELP    VRFY    EXPN".into(),
                "For more info use \"HELP <topic>\".".into(),
                "End of HELP info".into(),
            ],
        ));
    }
    let topic = arg.to_ascii_uppercase();
    match TOPICS.iter().find(|(t, _)| *t == topic) {
        Some((_, text)) => {
            let mut lines: Vec<String> = text.iter().map(|l| l.to_string()).collect();
            lines.push("End of HELP info".into());
            Outcome::Reply(Reply::multi(214, Some("2.0.0"), lines))
        }
        None => Outcome::Reply(Reply::new(504, Some("5.5.1"), "HELP topic unknown")),
    }
}

fn strip_brackets(arg: &str) -> &str {
    arg.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(arg)
        .trim()
}

/// VRFY: 252 for untrusted clients; the routing answer for trusted ones.
pub fn vrfy(s: &mut Session, arg: &str) -> Outcome {
    let addr = strip_brackets(arg);
    if addr.is_empty() {
        return Outcome::Reply(reply::syntax("VRFY <address>"));
    }
    if !s.peer.trusted {
        return Outcome::Reply(Reply::new(
            252,
            Some("2.5.0"),
            "Cannot VRFY user, but will accept message and attempt delivery",
        ));
    }
    let full = if addr.contains('@') {
        addr.to_string()
    } else {
        // a bare local part is taken at its list's domain
        let list = routing::route_local(addr, |n| s.config.lists.contains_key(n))
            .and_then(|r| r.list().map(str::to_string));
        let domain = list.map_or(s.config.domain.as_str(), |l| s.config.list_domain(&l));
        format!("{addr}@{domain}")
    };
    Outcome::Reply(match routing::route(&s.config, &full) {
        Ok(_) => Reply::new(250, Some("2.1.5"), format!("<{full}>")),
        Err(RouteError::Unknown) => Reply::new(
            550,
            Some("5.1.1"),
            format!("<{full}>: no such list or address"),
        ),
        Err(RouteError::Relay) => {
            Reply::new(550, Some("5.7.1"), format!("<{full}> is not served here"))
        }
        Err(e @ RouteError::OtherDomain { .. }) => {
            let (status, text) = e.refusal(&full);
            Reply::new(550, Some(status), text)
        }
    })
}

/// Whether a client may EXPN a list with this policy.
pub fn expn_allowed(policy: Access, trusted: bool) -> bool {
    match policy {
        Access::Nobody => false,
        Access::Trusted | Access::Members | Access::Owners => trusted,
        Access::Anyone => true,
    }
}

/// EXPN NAME or EXPN NAME@domain.
pub fn expn(s: &mut Session, arg: &str) -> Outcome {
    let arg = strip_brackets(arg);
    if arg.is_empty() {
        return Outcome::Reply(reply::syntax("EXPN <list>"));
    }
    let unknown = || Outcome::Reply(Reply::new(550, Some("5.1.1"), "No such list"));
    let name = if arg.contains('@') {
        match Address::parse(arg) {
            Ok(a)
                if a.domain().eq_ignore_ascii_case(
                    s.config.list_domain(&a.local().to_ascii_lowercase()),
                ) =>
            {
                a.local().to_ascii_lowercase()
            }
            _ => return unknown(),
        }
    } else {
        arg.to_ascii_lowercase()
    };
    let Some(list) = s.config.list(&name) else {
        return unknown();
    };
    if !expn_allowed(list.expn, s.peer.trusted) {
        return Outcome::Reply(Reply::new(
            550,
            Some("5.7.1"),
            "EXPN refused: access denied",
        ));
    }
    Outcome::Request(Request::Expand { list: name }, Waiting::Expand)
}

/// A stored display name as it may stand before `<address>` in a reply
/// line: control characters become spaces, and a name with RFC 5322
/// specials is quoted (`"Smith, Ann"`). None for an empty or non-ASCII
/// name.
fn display_name(name: &str) -> Option<String> {
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    // replies stay ASCII: a name that is not is left out
    if clean.is_empty() || !clean.is_ascii() {
        return None;
    }
    if clean.chars().any(|c| "()<>[]:;@\\,.\"".contains(c)) {
        let escaped = clean.replace('\\', "\\\\").replace('"', "\\\"");
        Some(format!("\"{escaped}\""))
    } else {
        Some(clean)
    }
}

/// The EXPN answer: one `250-` line per member, the last `250 `; 550 5.3.4
/// when the lookup found more than `max` (it stops at `max` + 1).
pub fn expanded(result: Result<Vec<ExpnEntry>, String>, max: usize) -> Reply {
    match result {
        Ok(entries) if entries.is_empty() => {
            Reply::new(250, Some("2.1.5"), "The list has no members")
        }
        Ok(entries) if entries.len() > max => Reply::new(
            550,
            Some("5.3.4"),
            format!(
                "The list has more than {max} members, too many to expand (smtp.expn_max_members)"
            ),
        ),
        Ok(entries) => Reply::multi(
            250,
            Some("2.1.5"),
            entries
                .into_iter()
                .map(|e| match e.name.as_deref().and_then(display_name) {
                    Some(n) => format!("{n} <{}>", e.address),
                    None => format!("<{}>", e.address),
                })
                .collect(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "EXPN lookup failed");
            reply::local_error()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_cleaned_and_quoted() {
        assert_eq!(display_name("Ann Example").as_deref(), Some("Ann Example"));
        assert_eq!(
            display_name("  Ann\r\nBcc: x ").as_deref(),
            Some("\"Ann Bcc: x\"")
        );
        assert_eq!(
            display_name("Smith, Ann").as_deref(),
            Some("\"Smith, Ann\"")
        );
        assert_eq!(
            display_name("Ann \"the\" B\\").as_deref(),
            Some("\"Ann \\\"the\\\" B\\\\\"")
        );
        assert_eq!(display_name("Zoë"), None);
        assert_eq!(display_name(" \t "), None);
    }

    #[test]
    fn expn_policy_matrix() {
        for (policy, untrusted, trusted) in [
            (Access::Nobody, false, false),
            (Access::Trusted, false, true),
            (Access::Members, false, true),
            (Access::Owners, false, true),
            (Access::Anyone, true, true),
        ] {
            assert_eq!(expn_allowed(policy, false), untrusted, "{policy:?}");
            assert_eq!(expn_allowed(policy, true), trusted, "{policy:?}");
        }
    }
}
