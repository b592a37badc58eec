//! STORE and UID STORE: only `\Seen` may be set or cleared, and only for
//! this session; any other flag gets NO (the archive is read-only).

use super::super::session::{ImapSession, SessionState};
use super::fetch::{flags, resolve};
use imap_codec::imap_types::core::{Tag, Vec1};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::SequenceSet;
use std::num::NonZeroU32;

pub(super) fn store(
    s: &mut ImapSession,
    tag: Tag<'_>,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    given: &[Flag<'_>],
    uid: bool,
) {
    if given.iter().any(|f| *f != Flag::Seen) {
        s.tagged_no(
            tag,
            "the list archives are read-only: only \\Seen can be set, for this session",
        );
        return;
    }
    let SessionState::Selected(_, sel) = &mut s.state else {
        return;
    };
    let set_seen = !given.is_empty();
    let wanted = resolve(sel, set, uid);
    let mut answers = Vec::new();
    for (seq, u) in &wanted {
        let seen = match kind {
            StoreType::Add => set_seen || sel.seen.contains(u),
            StoreType::Remove => !set_seen && sel.seen.contains(u),
            StoreType::Replace => set_seen,
        };
        if seen {
            sel.seen.insert(*u);
        } else {
            sel.seen.remove(u);
        }
        let mut items = vec![MessageDataItem::Flags(flags(seen))];
        if uid {
            items.insert(
                0,
                MessageDataItem::Uid(NonZeroU32::new(*u).unwrap_or(NonZeroU32::MIN)),
            );
        }
        answers.push((*seq, items));
    }
    if response == StoreResponse::Answer {
        for (seq, items) in answers {
            if let (Some(seq), Ok(items)) = (NonZeroU32::new(seq), Vec1::try_from(items)) {
                s.data(Data::Fetch { seq, items });
            }
        }
    }
    s.tagged_ok(
        tag,
        None,
        "STORE completed (\\Seen is kept for this session only)",
    );
}
