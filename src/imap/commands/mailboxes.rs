//! SELECT / EXAMINE (both read-only), LIST / LSUB, STATUS, CLOSE /
//! UNSELECT; and the messages of the open mailbox: archived posts read by
//! UID, or INBOX's one message on how this server works.

use super::super::session::{ImapSession, OpenMailbox, SessionState, INBOX_UIDVALIDITY};
use crate::reader::login::Grant;
use crate::reader::{mailbox, ArchiveDb};
use imap_codec::imap_types::core::{QuotedChar, Tag};
use imap_codec::imap_types::flag::{Flag, FlagNameAttribute};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};
use std::collections::HashSet;
use std::num::NonZeroU32;

/// INBOX's message date (it never changes): 2026-01-01.
const INBOX_DATE: i64 = 1_767_225_600;

/// The list a mailbox name opens for this grant: `Some(None)` for INBOX,
/// `Some(Some(list))` for a readable list, `None` for no such mailbox.
fn resolve(grant: &Grant, mailbox: &Mailbox<'_>) -> Option<Option<String>> {
    match mailbox {
        Mailbox::Inbox => Some(None),
        Mailbox::Other(o) => {
            let name = String::from_utf8_lossy(o.as_ref()).to_ascii_lowercase();
            grant.lists.contains(&name).then_some(Some(name))
        }
    }
}

fn grant(s: &ImapSession) -> Option<Grant> {
    match &s.state {
        SessionState::Authenticated(g) | SessionState::Selected(g, _) => Some(g.clone()),
        _ => None,
    }
}

/// INBOX's one message: how this server works, for the lists `grant` opens.
pub(super) fn inbox_message(s: &ImapSession, db: &ArchiveDb) -> Vec<u8> {
    let lists = grant(s).map(|g| g.lists).unwrap_or_default();
    let domain = &db.config().domain;
    let mut body = format!(
        "This server shows mailing list archives. Each mailbox is the archive of one list\r\n\
         you may read; the messages are its posts, oldest first.\r\n\r\n\
         Your mailboxes: {}.\r\n\r\n\
         Everything here is read-only: messages cannot be deleted, moved or added, and\r\n\
         \"read\" marks last until you log out. New posts appear as they are archived.\r\n\r\n\
         Public archives need no password: log in as \"anonymous\". For a members-only\r\n\
         archive, send the command \"password LIST\" to LIST-request@{domain}: the password\r\n\
         comes to your subscribed address; log in with that address and the password.\r\n",
        if lists.is_empty() {
            "none".to_string()
        } else {
            lists.join(", ")
        }
    );
    body.insert_str(
        0,
        &format!(
            "From: {domain} archive <majordomo@{domain}>\r\nSubject: How this archive server works\r\n\
             Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <imap-inbox@{domain}>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        ),
    );
    body.into_bytes()
}

/// The bytes and internal date of message `uid` of the open mailbox.
pub(super) fn message(
    s: &ImapSession,
    db: &ArchiveDb,
    sel: &OpenMailbox,
    uid: u32,
) -> Result<(Vec<u8>, i64), String> {
    let Some(list) = &sel.list else {
        return Ok((inbox_message(s, db), INBOX_DATE));
    };
    let post = mailbox::post(db.conn(), list, uid)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("message {uid} is gone"))?;
    let bytes = mailbox::read(&db.config().data_dir, &post).map_err(|e| e.to_string())?;
    Ok((bytes, post.date))
}

/// (UIDs, UIDVALIDITY, UIDNEXT) of a mailbox.
fn contents(db: &ArchiveDb, list: Option<&str>) -> Result<(Vec<u32>, u32, u32), String> {
    match list {
        None => Ok((vec![1], INBOX_UIDVALIDITY, 2)),
        Some(l) => {
            let uids = mailbox::uids(db.conn(), l).map_err(|e| e.to_string())?;
            let next = mailbox::uid_next(db.conn()).map_err(|e| e.to_string())?;
            Ok((uids, mailbox::uid_validity(l), next))
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

pub(super) fn select(
    s: &mut ImapSession,
    db: &ArchiveDb,
    tag: Tag<'_>,
    mb: &Mailbox<'_>,
    examine: bool,
) {
    let Some(g) = grant(s) else { return };
    // a failed SELECT leaves no mailbox open
    s.state = SessionState::Authenticated(g.clone());
    let Some(list) = resolve(&g, mb) else {
        s.tagged_no(tag, "no such mailbox (or not one you may read)");
        return;
    };
    let (uids, validity, next) = match contents(db, list.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "imap: mailbox cannot be opened");
            s.tagged_no(tag, "the archive cannot be read just now, try later");
            return;
        }
    };
    let n = uids.len() as u32;
    s.data(Data::Flags(vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ]));
    s.data(Data::Exists(n));
    s.data(Data::Recent(0));
    if n > 0 {
        s.untagged_ok(Some(Code::Unseen(nz(1))), "first unseen message");
    }
    s.untagged_ok(Some(Code::UidValidity(nz(validity))), "UIDs valid");
    s.untagged_ok(Some(Code::UidNext(nz(next))), "predicted next UID");
    s.untagged_ok(
        Some(Code::PermanentFlags(vec![])),
        "no permanent flags: the archive is read-only",
    );
    let name = match mb {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(_) => list.clone().unwrap_or_default(),
    };
    s.state = SessionState::Selected(
        g,
        OpenMailbox {
            name,
            list,
            uids,
            seen: HashSet::new(),
        },
    );
    let verb = if examine { "EXAMINE" } else { "SELECT" };
    s.tagged_ok(
        tag,
        Some(Code::ReadOnly),
        &format!("{verb} completed (list archives are read-only)"),
    );
}

pub(super) fn close(s: &mut ImapSession, tag: Tag<'_>) {
    if let SessionState::Selected(g, _) = &s.state {
        s.state = SessionState::Authenticated(g.clone());
    }
    s.tagged_ok(
        tag,
        None,
        "CLOSE completed (nothing expunged: the archive is read-only)",
    );
}

/// `*` and `%` (no hierarchy here, so both match anything).
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*' | b'%', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some((c, rest)) => name
            .split_first()
            .is_some_and(|(n, nrest)| n == c && wildcard_match(rest, nrest)),
    }
}

pub(super) fn list(
    s: &mut ImapSession,
    tag: Tag<'_>,
    reference: &Mailbox<'_>,
    pattern: &ListMailbox<'_>,
    lsub: bool,
) {
    let Some(g) = grant(s) else { return };
    let pattern: Vec<u8> = match pattern {
        ListMailbox::Token(t) => t.as_ref().to_vec(),
        ListMailbox::String(st) => st.as_ref().to_vec(),
    };
    let reference: Vec<u8> = match reference {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(o) => o.as_ref().to_vec(),
    };
    let delimiter = QuotedChar::try_from('/').ok();
    let verb = if lsub { "LSUB" } else { "LIST" };
    if pattern.is_empty() && !lsub {
        // the hierarchy delimiter and root
        s.data(Data::List {
            items: vec![FlagNameAttribute::Noselect],
            delimiter,
            mailbox: Mailbox::try_from("").unwrap_or(Mailbox::Inbox),
        });
        s.tagged_ok(tag, None, &format!("{verb} completed"));
        return;
    }
    let mut full = reference;
    full.extend_from_slice(&pattern);
    let mut names = vec!["INBOX".to_string()];
    names.extend(g.lists.iter().cloned());
    for name in names {
        let matches = if name == "INBOX" {
            wildcard_match(&full.to_ascii_uppercase(), b"INBOX")
        } else {
            wildcard_match(&full, name.as_bytes())
        };
        if !matches {
            continue;
        }
        let mailbox = if name == "INBOX" {
            Mailbox::Inbox
        } else {
            match Mailbox::try_from(name.clone()) {
                Ok(m) => m,
                Err(_) => continue,
            }
        };
        let items = vec![FlagNameAttribute::Noinferiors];
        let d = if lsub {
            Data::Lsub {
                items,
                delimiter,
                mailbox,
            }
        } else {
            Data::List {
                items,
                delimiter,
                mailbox,
            }
        };
        s.data(d);
    }
    s.tagged_ok(tag, None, &format!("{verb} completed"));
}

pub(super) fn status(
    s: &mut ImapSession,
    db: &ArchiveDb,
    tag: Tag<'_>,
    mb: &Mailbox<'_>,
    names: &[StatusDataItemName],
) {
    let Some(g) = grant(s) else { return };
    let Some(list) = resolve(&g, mb) else {
        s.tagged_no(tag, "no such mailbox (or not one you may read)");
        return;
    };
    let (uids, validity, next) = match contents(db, list.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "imap: mailbox cannot be read for STATUS");
            s.tagged_no(tag, "the archive cannot be read just now, try later");
            return;
        }
    };
    let seen = match &s.state {
        SessionState::Selected(_, sel) if sel.list == list => sel.seen.len(),
        _ => 0,
    };
    let n = uids.len() as u32;
    let items: Vec<StatusDataItem> = names
        .iter()
        .filter_map(|i| match i {
            StatusDataItemName::Messages => Some(StatusDataItem::Messages(n)),
            StatusDataItemName::Recent => Some(StatusDataItem::Recent(0)),
            StatusDataItemName::UidNext => Some(StatusDataItem::UidNext(nz(next))),
            StatusDataItemName::UidValidity => Some(StatusDataItem::UidValidity(nz(validity))),
            StatusDataItemName::Unseen => {
                Some(StatusDataItem::Unseen(n.saturating_sub(seen as u32)))
            }
            _ => None,
        })
        .collect();
    s.data(Data::Status {
        mailbox: mb.clone(),
        items: items.into(),
    });
    s.tagged_ok(tag, None, "STATUS completed");
}
