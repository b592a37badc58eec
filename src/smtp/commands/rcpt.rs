//! RCPT TO: one recipient per command, checked with `routing::route`.
//!
//! Only our own list and service addresses are accepted: another domain gets
//! 550 5.7.1 (listd never relays), an unknown local address 550 5.1.1, the
//! recipient past `smtp.max_recipients` 452 4.5.3, and a post whose declared
//! `SIZE=` is over the list's `max_message_size` 552 5.3.4. DSN parameters
//! are not offered and get 555. `postmaster@domain` and the bare
//! `<Postmaster>` are always accepted (RFC 5321 §4.5.1).

use super::Outcome;
use crate::routing::{self, Route};
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{Rcpt, Session, Transaction};
use smtp_proto::Request;

pub fn rcpt(s: &mut Session, line: &str) -> Outcome {
    let config = s.config.clone();
    let Some(tx) = s.tx.as_mut() else {
        return Outcome::Reply(reply::bad_sequence("need MAIL before RCPT"));
    };
    tx.rcpt_attempts += 1;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let to = match Request::parse(&mut bytes.iter()) {
        Ok(Request::Rcpt { to }) => to,
        Ok(_) => return Outcome::Reply(reply::syntax("RCPT TO:<address>")),
        Err(e) => {
            return Outcome::Reply(super::mail::parse_error(e, "5.1.3", "recipient"));
        }
    };
    if to.orcpt.is_some() || to.flags != 0 || to.rrvs != 0 {
        return Outcome::Reply(Reply::new(
            555,
            Some("5.5.4"),
            "RCPT parameters are not supported",
        ));
    }
    if tx.rcpts.len() >= config.smtp.max_recipients {
        return Outcome::Reply(Reply::new(
            452,
            Some("4.5.3"),
            format!(
                "Too many recipients (at most {} per message)",
                config.smtp.max_recipients
            ),
        ));
    }
    let address = to.address.to_string();
    if address.is_empty() {
        // smtp-proto maps `<Postmaster>` (any case) to the empty path; RFC
        // 5321 §4.5.1 requires accepting it. `<>` is no recipient.
        return match bare_postmaster(line) {
            Some(given) => accept(tx, given.to_string(), Route::Postmaster),
            None => Outcome::Reply(Reply::new(
                501,
                Some("5.1.3"),
                "Bad recipient address syntax",
            )),
        };
    }
    if !address.is_ascii() && !tx.utf8 {
        return Outcome::Reply(Reply::new(
            553,
            Some("5.6.7"),
            "Non-ASCII address needs the SMTPUTF8 parameter on MAIL",
        ));
    }
    match routing::route(&config, &address) {
        Ok(route) => {
            if let Some(r) = list_size_check(&config, &route, tx.declared_size) {
                return Outcome::Reply(r);
            }
            accept(tx, address, route)
        }
        Err(e) => {
            let (status, text) = e.refusal(&address);
            Outcome::Reply(Reply::new(550, Some(status), text))
        }
    }
}

fn accept(tx: &mut Transaction, address: String, route: Route) -> Outcome {
    let text = format!("Recipient <{address}> OK");
    tx.rcpts.push(Rcpt { address, route });
    Outcome::Reply(Reply::new(250, Some("2.1.5"), text))
}

/// The `Postmaster` of `RCPT TO:<Postmaster>` as the client wrote it, when
/// that is the path given (without a domain, any case).
fn bare_postmaster(line: &str) -> Option<&str> {
    let colon = line.find(':')?;
    let path = line[colon + 1..].trim_start_matches([' ', '\t']);
    let inner = path.strip_prefix('<')?;
    // `get`, never a byte split: the path is the client's, in any encoding
    let name = inner.get(..10)?;
    (name.eq_ignore_ascii_case("postmaster") && inner.get(10..11) == Some(">")).then_some(name)
}

/// 552 when `size` is over the size limit of the list a post goes to (a
/// list that holds oversize posts only has the global limit here).
pub fn list_size_check(config: &crate::config::Config, route: &Route, size: u64) -> Option<Reply> {
    let Route::Post { list } = route else {
        return None;
    };
    let limit = config
        .list(list)?
        .smtp_size_limit(config.smtp.max_message_size);
    (size > limit).then(|| {
        Reply::new(
            552,
            Some("5.3.4"),
            format!("Message too big for list {list} (the limit is {limit} bytes)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::bare_postmaster;

    #[test]
    fn finds_the_bare_postmaster_path() {
        assert_eq!(bare_postmaster("RCPT TO:<Postmaster>"), Some("Postmaster"));
        assert_eq!(bare_postmaster("rcpt to: <POSTMASTER>"), Some("POSTMASTER"));
        assert_eq!(bare_postmaster("RCPT TO:<>"), None);
        assert_eq!(bare_postmaster("RCPT TO:<postmasterx>"), None);
        assert_eq!(bare_postmaster("RCPT TO:<postmaste>"), None);
        assert_eq!(bare_postmaster("RCPT TO:<pöstmaster>"), None);
        // a multi-byte character across byte 10 (this panicked once)
        assert_eq!(bare_postmaster("RCPT TO:<@abcdefghé:postmaster>"), None);
        assert_eq!(bare_postmaster("RCPT TO:<postmasteré>"), None);
        assert_eq!(bare_postmaster("RCPT TO:<€€€€>"), None);
    }
}
