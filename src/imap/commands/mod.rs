//! IMAP commands, one file per family: `any` (CAPABILITY, NOOP, LOGOUT,
//! LOGIN), `mailboxes` (SELECT, EXAMINE, LIST, LSUB, STATUS, CLOSE and the
//! refused changes), `fetch`, `search` and `store` (STORE of `\Seen`; COPY
//! and MOVE refused). `dispatch` checks the state each command needs.

mod any;
mod fetch;
mod mailboxes;
mod search;
mod store;

use super::session::{ImapPeer, ImapSession, SessionState};
use crate::reader::ArchiveDb;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::response::Capability;

/// What the server announces: IMAP4rev1, IDLE, UNSELECT, STARTTLS when a
/// plain connection may start TLS, and LOGINDISABLED where LOGIN may not
/// carry a password.
pub(super) fn capabilities(peer: ImapPeer) -> Vec1<Capability<'static>> {
    let mut caps = vec![
        Capability::Imap4Rev1,
        Capability::Idle,
        Capability::Unselect,
    ];
    if peer.starttls {
        caps.push(Capability::StartTls);
    }
    if !peer.login_ok {
        caps.push(Capability::LoginDisabled);
    }
    Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
}

pub(super) fn dispatch(s: &mut ImapSession, db: &ArchiveDb, command: Command<'_>, now: i64) {
    let tag = command.tag;
    let authenticated = !matches!(s.state, SessionState::NotAuthenticated);
    let selected = matches!(s.state, SessionState::Selected(..));
    match command.body {
        CommandBody::Capability => any::capability(s, tag),
        CommandBody::Noop => any::noop(s, db, tag),
        CommandBody::Logout => any::logout(s, tag),
        CommandBody::StartTLS => any::starttls(s, tag, authenticated),
        CommandBody::Login { username, password } => {
            if authenticated {
                s.tagged_bad(tag, "already logged in");
            } else {
                any::login(
                    s,
                    db,
                    tag,
                    username.as_ref(),
                    password.declassify().as_ref(),
                    now,
                )
            }
        }
        body if !authenticated => {
            let _ = body;
            s.tagged_bad(tag, "log in first (LOGIN)");
        }
        CommandBody::Select { mailbox, .. } => mailboxes::select(s, db, tag, &mailbox, false),
        CommandBody::Examine { mailbox, .. } => mailboxes::select(s, db, tag, &mailbox, true),
        CommandBody::List {
            reference,
            mailbox_wildcard,
        } => mailboxes::list(s, tag, &reference, &mailbox_wildcard, false),
        CommandBody::Lsub {
            reference,
            mailbox_wildcard,
        } => mailboxes::list(s, tag, &reference, &mailbox_wildcard, true),
        CommandBody::Status {
            mailbox,
            item_names,
        } => mailboxes::status(s, db, tag, &mailbox, &item_names),
        CommandBody::Subscribe { .. } => s.tagged_ok(
            tag,
            None,
            "SUBSCRIBE completed: every archive you may read is listed anyway",
        ),
        CommandBody::Unsubscribe { .. } => s.tagged_no(
            tag,
            "the archives you may read are always listed; nothing to unsubscribe",
        ),
        CommandBody::Create { .. } | CommandBody::Delete { .. } | CommandBody::Rename { .. } => s
            .tagged_no(
                tag,
                "mailboxes here are list archives: they cannot be created, deleted or renamed",
            ),
        CommandBody::Append { .. } => s.tagged_no(
            tag,
            "the list archives are read-only: post to the list by mail to add a message",
        ),
        body if !selected => {
            let _ = body;
            s.tagged_bad(tag, "select a mailbox first (SELECT or EXAMINE)");
        }
        CommandBody::Check => s.tagged_ok(tag, None, "CHECK completed"),
        CommandBody::Close | CommandBody::Unselect => mailboxes::close(s, tag),
        CommandBody::Expunge | CommandBody::ExpungeUid { .. } => s.tagged_no(
            tag,
            "the list archives are read-only: nothing is ever expunged",
        ),
        CommandBody::Search {
            charset,
            criteria,
            uid,
        } => search::search(s, db, tag, charset.as_ref(), criteria.as_ref(), uid),
        CommandBody::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            ..
        } => fetch::fetch(s, db, tag, &sequence_set, macro_or_item_names, uid),
        CommandBody::Store {
            sequence_set,
            kind,
            response,
            flags,
            uid,
            ..
        } => store::store(s, tag, &sequence_set, kind, response, &flags, uid),
        CommandBody::Copy { .. } | CommandBody::Move { .. } => s.tagged_no(
            tag,
            "the list archives are read-only: messages cannot be copied or moved out of here",
        ),
        _ => s.tagged_bad(tag, "command not supported here"),
    }
}
