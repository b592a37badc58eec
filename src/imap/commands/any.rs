//! CAPABILITY, NOOP (which reports new posts), LOGOUT, STARTTLS and LOGIN.

use super::super::session::{ImapSession, SessionState};
use crate::reader::{ArchiveDb, Credential, LoginError};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::Data;

pub(super) fn capability(s: &mut ImapSession, tag: Tag<'_>) {
    s.data(Data::Capability(super::capabilities(s.peer)));
    s.tagged_ok(tag, None, "CAPABILITY completed");
}

pub(super) fn noop(s: &mut ImapSession, db: &ArchiveDb, tag: Tag<'_>) {
    s.poll(db);
    s.tagged_ok(tag, None, "NOOP completed");
}

pub(super) fn logout(s: &mut ImapSession, tag: Tag<'_>) {
    let host = s.hostname.clone();
    s.bye(&format!("{host} IMAP4rev1 server terminating connection"));
    s.tagged_ok(tag, None, "LOGOUT completed");
    s.state = SessionState::Logout;
}

/// STARTTLS: only before LOGIN, and only where a certificate is set.
pub(super) fn starttls(s: &mut ImapSession, tag: Tag<'_>, authenticated: bool) {
    if authenticated {
        s.tagged_bad(tag, "STARTTLS is for before LOGIN");
    } else if !s.peer.starttls {
        s.tagged_bad(tag, "STARTTLS is not offered here");
    } else {
        s.tagged_ok(tag, None, "Begin TLS negotiation now");
        s.tls_next = true;
    }
}

pub(super) fn login(
    s: &mut ImapSession,
    db: &ArchiveDb,
    tag: Tag<'_>,
    user: &[u8],
    password: &[u8],
    now: i64,
) {
    let user = String::from_utf8_lossy(user).into_owned();
    let password = String::from_utf8_lossy(password).into_owned();
    let cred = Credential::of(&user, &password);
    if !s.peer.login_ok && matches!(cred, Credential::Password { .. }) {
        s.tagged_no(tag, "LOGIN with a password is disabled here without TLS (LOGINDISABLED); log in as anonymous for public archives");
        return;
    }
    match db.login(&cred, s.peer.ip, now) {
        Ok(grant) => {
            let n = grant.lists.len();
            s.state = SessionState::Authenticated(grant);
            s.tagged_ok(
                tag,
                None,
                &format!(
                    "LOGIN completed: {n} list archive{} to read",
                    if n == 1 { "" } else { "s" }
                ),
            );
        }
        Err(LoginError::Store(e)) => {
            tracing::error!(error = %e, "imap: login check failed");
            s.tagged_no(tag, "cannot check that just now, try later");
        }
        Err(e) => s.tagged_no(tag, &format!("LOGIN failed: {e}")),
    }
}
