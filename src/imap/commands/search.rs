//! SEARCH and UID SEARCH over the open mailbox. FROM, SUBJECT, BODY and
//! TEXT use the archive's full-text index (`reader::text`, brought up to
//! date first); HEADER, TO, CC and BCC narrow with it and then check the
//! field in each candidate; SINCE, BEFORE, ON (and the SENT forms) compare
//! the post's date in the index; UID and sequence sets, ALL, NOT, OR and
//! the flag keys (only `\Seen` is ever set, per session) need no reading.
//! INBOX's one message is searched by reading it.

use super::super::session::{ImapSession, OpenMailbox};
use super::fetch::resolve;
use super::mailboxes;
use crate::reader::text::{self, Field};
use crate::reader::ArchiveDb;
use imap_codec::imap_types::core::{AString, Charset, Tag};
use imap_codec::imap_types::datetime::NaiveDate;
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::search::SearchKey;
use rusqlite::params;
use std::num::NonZeroU32;

/// A result set: one flag per message, by sequence number - 1.
type Hits = Vec<bool>;

struct Ctx<'a> {
    s: &'a ImapSession,
    db: &'a ArchiveDb,
    sel: &'a OpenMailbox,
}

fn lossy(a: &AString<'_>) -> String {
    String::from_utf8_lossy(a.as_ref()).into_owned()
}

fn day_start(d: &NaiveDate) -> i64 {
    let d: &chrono::NaiveDate = d.as_ref();
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or(0)
}

impl Ctx<'_> {
    fn none(&self) -> Hits {
        vec![false; self.sel.uids.len()]
    }

    fn all(&self) -> Hits {
        vec![true; self.sel.uids.len()]
    }

    fn of_uids(&self, uids: &[u32]) -> Hits {
        let mut h = self.none();
        for u in uids {
            if let Ok(i) = self.sel.uids.binary_search(u) {
                h[i] = true;
            }
        }
        h
    }

    /// Messages whose bytes satisfy `pred`, reading only `among` (all when None).
    fn by_reading(
        &self,
        among: Option<Hits>,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Result<Hits, String> {
        let mut h = self.none();
        for (i, u) in self.sel.uids.iter().enumerate() {
            if among.as_ref().is_some_and(|a| !a[i]) {
                continue;
            }
            let (bytes, _) = mailboxes::message(self.s, self.db, self.sel, *u)?;
            h[i] = pred(&bytes);
        }
        Ok(h)
    }

    /// A substring search in `field`; INBOX by reading, lists by the index.
    fn text(&self, field: Field, needle: &str) -> Result<Hits, String> {
        match &self.sel.list {
            Some(list) => {
                let uids = text::matching(self.db.conn(), list, field, needle)
                    .map_err(|e| e.to_string())?;
                Ok(self.of_uids(&uids))
            }
            None => {
                let needle = needle.to_lowercase();
                self.by_reading(None, |b| {
                    let t = text::extract(b);
                    let hay = match field {
                        Field::From => t.from,
                        Field::Subject => t.subject,
                        Field::Head => t.head,
                        Field::Body => t.body,
                        Field::Text => format!("{}\n{}", t.head, t.body),
                    };
                    hay.to_lowercase().contains(&needle)
                })
            }
        }
    }

    /// Messages with a header field `name` whose value contains `value`.
    fn header(&self, name: &str, value: &str) -> Result<Hits, String> {
        let among = if value.is_empty() {
            None
        } else {
            Some(self.text(Field::Head, value)?)
        };
        let (name, value) = (name.to_ascii_lowercase(), value.to_lowercase());
        self.by_reading(among, |b| {
            let Some(m) = super::super::message::parse(b) else {
                return false;
            };
            let found = m
                .headers_raw()
                .any(|(n, v)| n.eq_ignore_ascii_case(&name) && v.to_lowercase().contains(&value));
            found
        })
    }

    /// Messages dated in `[from, to)`.
    fn dated(&self, from: i64, to: i64) -> Result<Hits, String> {
        let Some(list) = &self.sel.list else {
            let inside = (from..to).contains(&1_767_225_600);
            return Ok(vec![inside; self.sel.uids.len()]);
        };
        let mut stmt = self
            .db
            .conn()
            .prepare_cached(
                "SELECT id FROM archive_index WHERE list = ?1 AND date >= ?2 AND date < ?3",
            )
            .map_err(|e| e.to_string())?;
        let uids: Vec<u32> = stmt
            .query_map(params![list, from, to], |r| r.get::<_, i64>(0))
            .map_err(|e| e.to_string())?
            .filter_map(|r| r.ok().and_then(|id| u32::try_from(id).ok()))
            .collect();
        let mut sorted = uids;
        sorted.sort_unstable();
        Ok(self.of_uids(&sorted))
    }

    fn eval(&self, key: &SearchKey<'_>) -> Result<Hits, String> {
        const DAY: i64 = 86_400;
        Ok(match key {
            SearchKey::All
            | SearchKey::Old
            | SearchKey::Undeleted
            | SearchKey::Undraft
            | SearchKey::Unflagged
            | SearchKey::Unanswered
            | SearchKey::Unkeyword(_) => self.all(),
            SearchKey::Answered
            | SearchKey::Deleted
            | SearchKey::Draft
            | SearchKey::Flagged
            | SearchKey::Keyword(_)
            | SearchKey::New
            | SearchKey::Recent => self.none(),
            SearchKey::Seen => self
                .sel
                .uids
                .iter()
                .map(|u| self.sel.seen.contains(u))
                .collect(),
            SearchKey::Unseen => self
                .sel
                .uids
                .iter()
                .map(|u| !self.sel.seen.contains(u))
                .collect(),
            SearchKey::And(keys) => {
                let mut h = self.all();
                for k in keys.as_ref() {
                    let k = self.eval(k)?;
                    h.iter_mut().zip(k).for_each(|(a, b)| *a &= b);
                }
                h
            }
            SearchKey::Or(a, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                a.into_iter().zip(b).map(|(a, b)| a || b).collect()
            }
            SearchKey::Not(k) => self.eval(k)?.into_iter().map(|b| !b).collect(),
            SearchKey::SequenceSet(set) | SearchKey::Uid(set) => {
                let uid = matches!(key, SearchKey::Uid(_));
                let picked: Vec<u32> = resolve(self.sel, set, uid)
                    .into_iter()
                    .map(|(_, u)| u)
                    .collect();
                self.of_uids(&picked)
            }
            SearchKey::From(v) => self.text(Field::From, &lossy(v))?,
            SearchKey::Subject(v) => self.text(Field::Subject, &lossy(v))?,
            SearchKey::Body(v) => self.text(Field::Body, &lossy(v))?,
            SearchKey::Text(v) => self.text(Field::Text, &lossy(v))?,
            SearchKey::Header(name, v) => self.header(&lossy(name), &lossy(v))?,
            SearchKey::To(v) => self.header("to", &lossy(v))?,
            SearchKey::Cc(v) => self.header("cc", &lossy(v))?,
            SearchKey::Bcc(v) => self.header("bcc", &lossy(v))?,
            SearchKey::Since(d) | SearchKey::SentSince(d) => self.dated(day_start(d), i64::MAX)?,
            SearchKey::Before(d) | SearchKey::SentBefore(d) => {
                self.dated(i64::MIN, day_start(d))?
            }
            SearchKey::On(d) | SearchKey::SentOn(d) => {
                self.dated(day_start(d), day_start(d) + DAY)?
            }
            SearchKey::Larger(n) => self.by_reading(None, |b| b.len() as u64 > u64::from(*n))?,
            SearchKey::Smaller(n) => self.by_reading(None, |b| (b.len() as u64) < u64::from(*n))?,
        })
    }
}

/// Whether any key reads the full-text index.
fn uses_text(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::From(_)
        | SearchKey::Subject(_)
        | SearchKey::Body(_)
        | SearchKey::Text(_)
        | SearchKey::Header(..)
        | SearchKey::To(_)
        | SearchKey::Cc(_)
        | SearchKey::Bcc(_) => true,
        SearchKey::And(keys) => keys.as_ref().iter().any(uses_text),
        SearchKey::Or(a, b) => uses_text(a) || uses_text(b),
        SearchKey::Not(k) => uses_text(k),
        _ => false,
    }
}

pub(super) fn search(
    s: &mut ImapSession,
    db: &ArchiveDb,
    tag: Tag<'_>,
    charset: Option<&Charset<'_>>,
    criteria: &[SearchKey<'_>],
    uid: bool,
) {
    if let Some(cs) = charset {
        let name = cs.as_ref().to_ascii_uppercase();
        if name != "UTF-8" && name != "US-ASCII" {
            let code = Code::BadCharset { allowed: vec![] };
            s.status(imap_codec::imap_types::response::Status::no(
                Some(tag),
                Some(code),
                "only UTF-8 and US-ASCII are searched",
            ));
            return;
        }
    }
    let Some((grant, sel)) = s.take_selected() else {
        return;
    };
    let found = run(s, db, &sel, criteria, uid);
    s.put_back(grant, sel);
    match found {
        Ok(found) => {
            s.data(Data::Search(found));
            s.tagged_ok(tag, None, "SEARCH completed");
        }
        Err(e) => {
            tracing::error!(error = %e, "imap: search failed");
            s.tagged_no(tag, "the archive cannot be searched just now, try later");
        }
    }
}

/// The sequence numbers (or UIDs) of the messages matching every key.
fn run(
    s: &ImapSession,
    db: &ArchiveDb,
    sel: &OpenMailbox,
    criteria: &[SearchKey<'_>],
    uid: bool,
) -> Result<Vec<NonZeroU32>, String> {
    if let Some(list) = &sel.list {
        if criteria.iter().any(uses_text) {
            text::catch_up(db.conn(), &db.config().data_dir, list).map_err(|e| e.to_string())?;
        }
    }
    let ctx = Ctx { s, db, sel };
    let mut hits = ctx.all();
    for key in criteria {
        let k = ctx.eval(key)?;
        hits.iter_mut().zip(k).for_each(|(a, b)| *a &= b);
    }
    Ok(hits
        .iter()
        .enumerate()
        .filter(|(_, h)| **h)
        .filter_map(|(i, _)| NonZeroU32::new(if uid { sel.uids[i] } else { i as u32 + 1 }))
        .collect())
}
