//! The Authorization state: USER / PASS (the user name is `LIST`, or
//! `ADDRESS+LIST` with an app password), APOP (anonymous only: listd keeps
//! no clear-text secret to digest), QUIT; and CAPA (RFC 2449).

use super::super::session::{Maildrop, Pop3Session, State};
use crate::reader::{mailbox, ArchiveDb, Credential, LoginError};

/// Splits a user name into (address, list): `LIST` has no address;
/// `ADDRESS+LIST` splits at the last `+` after the `@`.
pub(crate) fn parse_user(user: &str) -> (Option<&str>, &str) {
    if let Some(at) = user.rfind('@') {
        if let Some(plus) = user[at..].rfind('+') {
            let i = at + plus;
            return (Some(&user[..i]), &user[i + 1..]);
        }
    }
    (None, user)
}

pub(super) fn capa(s: &mut Pop3Session) {
    s.ok("Capability list follows");
    for c in [
        "USER",
        "TOP",
        "UIDL",
        "RESP-CODES",
        "PIPELINING",
        "EXPIRE NEVER",
        "IMPLEMENTATION listd",
    ] {
        s.line(c);
    }
    s.line(".");
}

pub(super) fn run(
    s: &mut Pop3Session,
    db: &ArchiveDb,
    verb: &str,
    args: &[&str],
    line: &str,
    now: i64,
) -> bool {
    match verb {
        "USER" => {
            let Some(user) = args.first().filter(|_| args.len() == 1) else {
                s.err("say USER LIST, or USER ADDRESS+LIST");
                return false;
            };
            s.state = State::Authorization {
                user: Some(user.to_string()),
            };
            s.ok(&format!("{user}: now PASS (any word for a public archive)"));
            true
        }
        "PASS" => {
            let State::Authorization { user: Some(user) } = &s.state else {
                s.err("USER first");
                return false;
            };
            let user = user.clone();
            // the password is the rest of the line: it may hold spaces
            let password = line
                .trim_start()
                .get(4..)
                .map(|p| p.strip_prefix(' ').unwrap_or(p))
                .unwrap_or("");
            s.state = State::Authorization { user: None };
            login(s, db, &user, Some(password), now)
        }
        "APOP" => {
            let [user, _digest] = args else {
                s.err("say APOP NAME DIGEST");
                return false;
            };
            if parse_user(user).0.is_some() {
                s.err("[AUTH] APOP needs a clear-text secret, and listd keeps only password hashes: use USER and PASS");
                return false;
            }
            login(s, db, user, None, now)
        }
        "QUIT" => {
            s.ok(&format!("{} POP3 server signing off", s.hostname));
            s.state = State::Closed;
            true
        }
        _ => {
            s.err("unknown command here: USER, PASS, APOP, CAPA or QUIT");
            false
        }
    }
}

/// Checks the login and opens the maildrop. `password` is `None` for an
/// anonymous APOP.
fn login(
    s: &mut Pop3Session,
    db: &ArchiveDb,
    user: &str,
    password: Option<&str>,
    now: i64,
) -> bool {
    let (address, list) = parse_user(user);
    let list = list.to_ascii_lowercase();
    let cred = match (address, password) {
        (Some(address), Some(password)) => {
            if !s.peer.trusted && !password.is_empty() {
                s.err("[AUTH] passwords are taken only on loopback or from trusted networks here; a public archive needs none (USER LIST)");
                return false;
            }
            Credential::of(address, password)
        }
        _ => Credential::Anonymous,
    };
    let grant = match db.login(&cred, s.peer.ip, now) {
        Ok(g) => g,
        Err(LoginError::Store(e)) => {
            tracing::error!(error = %e, "pop3: login check failed");
            s.err("[SYS/TEMP] cannot check that just now, try later");
            return false;
        }
        Err(e) => {
            s.err(&format!("[AUTH] {e}"));
            return false;
        }
    };
    if !grant.lists.contains(&list) {
        s.err(&format!("[AUTH] no archive named {list} that you may read"));
        return false;
    }
    match open(db, &list, s.maildrop_size) {
        Ok(m) => {
            let total: u64 = m.sizes.iter().sum();
            s.ok(&format!(
                "{list} has {} messages ({total} octets): the newest of its archive, read-only",
                m.posts.len()
            ));
            s.state = State::Transaction(m);
            true
        }
        Err(e) => {
            tracing::error!(list, error = %e, "pop3: maildrop cannot be opened");
            s.err("[SYS/TEMP] the archive cannot be read just now, try later");
            false
        }
    }
}

/// The newest `n` posts of `list`, with the size of each as served.
fn open(db: &ArchiveDb, list: &str, n: usize) -> Result<Maildrop, crate::archive::ArchiveError> {
    let posts = mailbox::recent(db.conn(), list, n)?;
    let mut sizes = Vec::with_capacity(posts.len());
    for p in &posts {
        sizes.push(mailbox::read(&db.config().data_dir, p)?.len() as u64);
    }
    Ok(Maildrop {
        list: list.to_string(),
        deleted: vec![false; posts.len()],
        posts,
        sizes,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_user;

    #[test]
    fn user_names_split_at_the_last_plus_after_the_at() {
        assert_eq!(parse_user("dev"), (None, "dev"));
        assert_eq!(
            parse_user("ann@example.org+dev"),
            (Some("ann@example.org"), "dev")
        );
        assert_eq!(
            parse_user("ann+x@example.org+dev"),
            (Some("ann+x@example.org"), "dev")
        );
        assert_eq!(parse_user("ann+x@example.org"), (None, "ann+x@example.org"));
        assert_eq!(parse_user("é@ü+ß"), (Some("é@ü"), "ß"));
        assert_eq!(parse_user(""), (None, ""));
    }
}
