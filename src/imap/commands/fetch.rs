//! FETCH and UID FETCH: FLAGS, UID, INTERNALDATE, RFC822.SIZE, ENVELOPE,
//! BODY, BODYSTRUCTURE, BODY[section]<partial> and BODY.PEEK, RFC822,
//! RFC822.HEADER, RFC822.TEXT. Each message is read from its month file by
//! offset and length, one at a time. A fetch that is not a PEEK marks the
//! message `\Seen` for this session and reports its FLAGS.

use super::super::message;
use super::super::session::{ImapSession, OpenMailbox};
use super::mailboxes;
use crate::reader::ArchiveDb;
use imap_codec::imap_types::core::{Tag, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_codec::imap_types::IntoStatic;
use std::num::NonZeroU32;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The (sequence number, UID) pairs a set names, ascending, each once.
/// Numbers past the end are left out.
pub(super) fn resolve(sel: &OpenMailbox, set: &SequenceSet, uid: bool) -> Vec<(u32, u32)> {
    let n = sel.uids.len();
    let mut idx: Vec<usize> = Vec::new();
    let star = if uid {
        sel.uids.last().copied().unwrap_or(0)
    } else {
        n as u32
    };
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    };
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(v) => (value(v), value(v)),
            Sequence::Range(x, y) => (value(x), value(y)),
        };
        let (lo, hi) = (a.min(b), a.max(b));
        if uid {
            let from = sel.uids.partition_point(|u| *u < lo);
            let to = sel.uids.partition_point(|u| *u <= hi);
            idx.extend(from..to);
        } else {
            let lo = lo.max(1) as usize;
            let hi = (hi as usize).min(n);
            if lo <= hi {
                idx.extend(lo - 1..hi);
            }
        }
    }
    idx.sort_unstable();
    idx.dedup();
    idx.into_iter()
        .map(|i| (i as u32 + 1, sel.uids[i]))
        .collect()
}

pub(super) fn flags(seen: bool) -> Vec<FlagFetch<'static>> {
    if seen {
        vec![FlagFetch::Flag(Flag::Seen)]
    } else {
        vec![]
    }
}

fn internal_date(t: i64) -> DateTime {
    let dt = chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .fixed_offset();
    if DateTime::validate(&dt).is_ok() {
        DateTime::unvalidated(dt)
    } else {
        DateTime::unvalidated(chrono::DateTime::UNIX_EPOCH.fixed_offset())
    }
}

/// Whether an item needs the message's bytes.
fn needs_bytes(i: &MessageDataItemName<'_>) -> bool {
    !matches!(i, MessageDataItemName::Uid | MessageDataItemName::Flags)
}

pub(super) fn fetch(
    s: &mut ImapSession,
    db: &ArchiveDb,
    tag: Tag<'_>,
    set: &SequenceSet,
    names: MacroOrMessageDataItemNames<'_>,
    uid: bool,
) {
    let mut names: Vec<MessageDataItemName<'_>> = match names {
        MacroOrMessageDataItemNames::Macro(m) => {
            m.expand().into_iter().map(|n| n.into_static()).collect()
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    if names.iter().any(|n| {
        matches!(
            n,
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
        )
    }) {
        s.tagged_bad(tag, "BINARY is not supported here");
        return;
    }
    if uid && !names.contains(&MessageDataItemName::Uid) {
        names.insert(0, MessageDataItemName::Uid);
    }
    let Some((grant, mut sel)) = s.take_selected() else {
        return;
    };
    let wanted = resolve(&sel, set, uid);
    let read_bytes = names.iter().any(needs_bytes);
    let mut failed = 0;
    for (seq, u) in wanted {
        let loaded = if read_bytes {
            match mailboxes::message(s, db, &sel, u) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(uid = u, error = %e, "imap: message cannot be read");
                    failed += 1;
                    continue;
                }
            }
        } else {
            None
        };
        let parsed = loaded.as_ref().and_then(|(b, _)| message::parse(b));
        let mut items: Vec<MessageDataItem<'static>> = Vec::new();
        let mut marks_seen = false;
        for name in &names {
            let bytes = loaded
                .as_ref()
                .map(|(b, _)| b.as_slice())
                .unwrap_or_default();
            let item = match name {
                MessageDataItemName::Uid => MessageDataItem::Uid(nz(u)),
                MessageDataItemName::Flags => continue,
                MessageDataItemName::InternalDate => MessageDataItem::InternalDate(internal_date(
                    loaded.as_ref().map(|l| l.1).unwrap_or(0),
                )),
                MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(bytes.len() as u32),
                MessageDataItemName::Envelope => match &parsed {
                    Some(m) => MessageDataItem::Envelope(message::envelope(m)),
                    None => continue,
                },
                MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                    let bs = match &parsed {
                        Some(m) => message::body_structure(m),
                        None => continue,
                    };
                    if matches!(name, MessageDataItemName::Body) {
                        MessageDataItem::Body(bs)
                    } else {
                        MessageDataItem::BodyStructure(bs)
                    }
                }
                MessageDataItemName::BodyExt {
                    section,
                    partial,
                    peek,
                } => {
                    marks_seen |= !peek;
                    let data = message::section(bytes, section.as_ref());
                    let (data, origin) = match partial {
                        Some((origin, len)) => {
                            let origin = *origin;
                            let from = (origin as usize).min(data.len());
                            let to = from.saturating_add(len.get() as usize).min(data.len());
                            (data[from..to].to_vec(), Some(origin))
                        }
                        None => (data, None),
                    };
                    MessageDataItem::BodyExt {
                        section: section.clone().map(|x| x.into_static()),
                        origin,
                        data: message::nbytes(&data),
                    }
                }
                MessageDataItemName::Rfc822 => {
                    marks_seen = true;
                    MessageDataItem::Rfc822(message::nbytes(bytes))
                }
                MessageDataItemName::Rfc822Header => {
                    MessageDataItem::Rfc822Header(message::nbytes(&message::section(
                        bytes,
                        Some(&imap_codec::imap_types::fetch::Section::Header(None)),
                    )))
                }
                MessageDataItemName::Rfc822Text => {
                    marks_seen = true;
                    MessageDataItem::Rfc822Text(message::nbytes(&message::section(
                        bytes,
                        Some(&imap_codec::imap_types::fetch::Section::Text(None)),
                    )))
                }
                _ => continue,
            };
            items.push(item);
        }
        let newly_seen = marks_seen && sel.seen.insert(u);
        if names.contains(&MessageDataItemName::Flags) || newly_seen {
            items.push(MessageDataItem::Flags(flags(sel.seen.contains(&u))));
        }
        if let Ok(items) = Vec1::try_from(items) {
            s.data(Data::Fetch {
                seq: nz(seq),
                items,
            });
        }
    }
    s.put_back(grant, sel);
    if failed > 0 {
        s.tagged_no(tag, &format!("{failed} message(s) cannot be read just now"));
    } else {
        s.tagged_ok(tag, None, "FETCH completed");
    }
}
