//! The full-text index of archived posts (`archive_text`, SQLite FTS5 with
//! the trigram tokenizer), for IMAP SEARCH FROM, SUBJECT, HEADER, BODY and
//! TEXT. It is filled from the month files, list by list, up to the newest
//! post each time a search asks (`catch_up`), so it also covers posts
//! imported or archived before it existed, and nothing on the mail path
//! waits for it.
//!
//! Trusts the archive index; search strings are bound as parameters and
//! quoted as FTS5 phrases, never spliced into SQL.

use super::mailbox::{self, Post};
use crate::archive::ArchiveError;
use mail_parser::MessageParser;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Posts indexed per transaction.
const BATCH: i64 = 500;

/// Which text a search looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    From,
    Subject,
    /// All header fields.
    Head,
    Body,
    /// Header and body.
    Text,
}

impl Field {
    fn columns(self) -> &'static [&'static str] {
        match self {
            Field::From => &["from_addr"],
            Field::Subject => &["subject"],
            Field::Head => &["head"],
            Field::Body => &["body"],
            Field::Text => &["head", "body"],
        }
    }
}

/// The text of one message, as indexed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexed {
    pub from: String,
    pub subject: String,
    pub head: String,
    pub body: String,
}

/// Reads the searchable text out of a message: From names and addresses,
/// the decoded Subject, the raw header block and every text part (HTML
/// reduced to text), decoded.
pub fn extract(message: &[u8]) -> Indexed {
    let head_end = memchr::memmem::find(message, b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..head_end]).into_owned();
    let Some(m) = MessageParser::default().parse(message) else {
        return Indexed {
            head,
            ..Indexed::default()
        };
    };
    let from = m
        .from()
        .map(|a| {
            a.iter()
                .map(|a| {
                    format!(
                        "{} <{}>",
                        a.name.as_deref().unwrap_or(""),
                        a.address.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut body = String::new();
    for i in 0..m.text_body_count() {
        if let Some(t) = m.body_text(i) {
            body.push_str(&t);
            body.push('\n');
        }
    }
    Indexed {
        from,
        subject: m.subject().unwrap_or_default().to_string(),
        head,
        body,
    }
}

fn posts_after(conn: &Connection, list: &str, after: i64) -> rusqlite::Result<Vec<Post>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, date, mbox_path, offset, length FROM archive_index INDEXED BY archive_by_list
         WHERE list = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![list, after, BATCH], |r| {
        Ok(Post {
            uid: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
            date: r.get(1)?,
            mbox_path: r.get(2)?,
            offset: r.get(3)?,
            length: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Indexes `list`'s posts that are not in `archive_text` yet; returns how
/// many. A post whose bytes cannot be read is indexed empty (and logged),
/// so one damaged month does not stop every search.
pub fn catch_up(conn: &Connection, data_dir: &Path, list: &str) -> Result<usize, ArchiveError> {
    catch_up_at_most(conn, data_dir, list, usize::MAX).map(|(n, _)| n)
}

/// [`catch_up`], stopping once `max` posts or more were indexed (whole
/// batches), so one request never waits for a long backlog; returns how
/// many, and whether the index now covers every post.
pub fn catch_up_at_most(
    conn: &Connection,
    data_dir: &Path,
    list: &str,
    max: usize,
) -> Result<(usize, bool), ArchiveError> {
    let mut done = 0;
    loop {
        if done >= max {
            return Ok((done, false));
        }
        let last: i64 = conn
            .prepare_cached("SELECT last_id FROM archive_text_done WHERE list = ?1")?
            .query_row([list], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let posts = posts_after(conn, list, last)?;
        let Some(newest) = posts.last().map(|p| i64::from(p.uid)) else {
            return Ok((done, true));
        };
        let texts: Vec<(u32, Indexed)> = posts
            .iter()
            .map(|p| match mailbox::read(data_dir, p) {
                Ok(bytes) => (p.uid, extract(&bytes)),
                Err(e) => {
                    tracing::warn!(list, uid = p.uid, error = %e, "archive post cannot be read for the search index");
                    (p.uid, Indexed::default())
                }
            })
            .collect();
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        // another session may have indexed these meanwhile
        let now_last: i64 = tx
            .prepare_cached("SELECT last_id FROM archive_text_done WHERE list = ?1")?
            .query_row([list], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        if now_last == last {
            let mut ins = tx.prepare_cached(
                "INSERT INTO archive_text(rowid, list, from_addr, subject, head, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (uid, t) in &texts {
                ins.execute(params![
                    i64::from(*uid),
                    list,
                    t.from,
                    t.subject,
                    t.head,
                    t.body
                ])?;
            }
            drop(ins);
            tx.prepare_cached(
                "INSERT INTO archive_text_done(list, last_id) VALUES (?1, ?2)
                 ON CONFLICT(list) DO UPDATE SET last_id = excluded.last_id",
            )?
            .execute(params![list, newest])?;
            done += texts.len();
        }
        tx.commit()?;
    }
}

/// The UIDs of `list` whose `field` contains `needle`, case-insensitively
/// (ASCII), ascending. Three characters or more are a trigram phrase
/// query; shorter strings are a scan of the list's indexed text.
pub fn matching(
    conn: &Connection,
    list: &str,
    field: Field,
    needle: &str,
) -> Result<Vec<u32>, ArchiveError> {
    let cols = field.columns();
    let mut out = Vec::new();
    if needle.is_empty() {
        return Ok(super::mailbox::uids(conn, list)?);
    }
    let rows: Vec<i64> = if needle.chars().count() >= 3 {
        let query = phrase_query(cols, needle);
        let mut stmt = conn.prepare_cached(
            "SELECT rowid FROM archive_text WHERE archive_text MATCH ?1 AND list = ?2",
        )?;
        let r = stmt.query_map(params![query, list], |r| r.get(0))?;
        r.collect::<rusqlite::Result<_>>()?
    } else {
        let cond = cols
            .iter()
            .map(|c| format!("instr(lower({c}), lower(?2)) > 0"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT rowid FROM archive_text WHERE list = ?1 AND ({cond})"
        ))?;
        let r = stmt.query_map(params![list, needle], |r| r.get(0))?;
        r.collect::<rusqlite::Result<_>>()?
    };
    out.extend(rows.into_iter().filter_map(|id| u32::try_from(id).ok()));
    out.sort_unstable();
    Ok(out)
}

/// The FTS5 query for `needle` as one phrase in the columns `cols` (the
/// needle is data: its quotes are doubled).
fn phrase_query(cols: &[&str], needle: &str) -> String {
    let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
    format!("{{{}}} : {phrase}", cols.join(" "))
}

/// The columns the web archive's search looks in: From, Subject and body.
const POST_COLUMNS: &[&str] = &["from_addr", "subject", "body"];

/// The statement of [`newest_matching`] (public for its query-plan test).
pub const NEWEST_MATCHING: &str = "SELECT rowid, body FROM archive_text
     WHERE archive_text MATCH ?1 AND list = ?2 AND rowid < ?3 ORDER BY rowid DESC LIMIT ?4";

/// The newest posts of `list` (UIDs below `before`) whose From, Subject or
/// body contains `needle`, at most `limit`, newest first, each with its
/// indexed body text: a trigram phrase query walked in descending rowid order, so it
/// stops after `limit` hits. `needle` must have 3 characters or more
/// (shorter ones would scan); callers refuse shorter ones.
pub fn newest_matching(
    conn: &Connection,
    list: &str,
    needle: &str,
    before: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, ArchiveError> {
    if needle.chars().count() < 3 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(NEWEST_MATCHING)?;
    let rows = stmt.query_map(
        params![phrase_query(POST_COLUMNS, needle), list, before, limit],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive;

    #[test]
    fn posts_are_found_by_field_after_a_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("l.db")).unwrap();
        let posts = [
            "From: Ann Example <ann@example.org>\r\nSubject: Release plans\r\nX-Tag: alpha\r\n\r\nThe release is on Friday.\r\n",
            "From: bob@example.net\r\nSubject: =?utf-8?q?Caf=C3=A9?= talk\r\n\r\nMeet at the café \"Q\" at 10.\r\n",
            "From: carol@example.com\r\nSubject: hi\r\n\r\nnothing here\r\n",
        ];
        for (i, p) in posts.iter().enumerate() {
            let t = 1_700_000_000 + i as i64;
            archive::archive_post(dir.path(), &conn, "dev", "x", p.as_bytes(), t).unwrap();
        }
        assert_eq!(catch_up(&conn, dir.path(), "dev").unwrap(), 3);
        assert_eq!(
            catch_up(&conn, dir.path(), "dev").unwrap(),
            0,
            "nothing new"
        );
        let q = |f, s| matching(&conn, "dev", f, s).unwrap();
        assert_eq!(q(Field::Body, "FRIDAY"), vec![1]);
        assert_eq!(q(Field::Subject, "café"), vec![2]);
        assert_eq!(q(Field::From, "ann example"), vec![1]);
        assert_eq!(q(Field::From, "example"), vec![1, 2, 3]);
        assert_eq!(q(Field::Head, "x-tag: alpha"), vec![1]);
        assert_eq!(q(Field::Text, "\"Q\""), vec![2], "quotes are data");
        assert_eq!(q(Field::Body, "10"), vec![2], "short strings scan");
        assert_eq!(q(Field::Subject, "hi"), vec![3]);
        assert!(
            q(Field::Body, "release plans").is_empty(),
            "the subject is no body"
        );
        assert_eq!(q(Field::Text, "release plans"), vec![1]);
        assert!(matching(&conn, "other", Field::Text, "release")
            .unwrap()
            .is_empty());
        // a new post is indexed by the next catch-up
        archive::archive_post(
            dir.path(),
            &conn,
            "dev",
            "x",
            b"Subject: late\r\n\r\nfriday again\r\n",
            1_700_000_100,
        )
        .unwrap();
        assert_eq!(
            catch_up_at_most(&conn, dir.path(), "dev", 1).unwrap(),
            (1, false),
            "a capped catch-up stops once it reached its cap"
        );
        assert_eq!(
            catch_up_at_most(&conn, dir.path(), "dev", 1).unwrap(),
            (0, true)
        );
        assert_eq!(q(Field::Body, "friday"), vec![1, 4]);
        // newest first, bounded, paged below a UID; the subject counts
        let newest = |s, before, limit| {
            newest_matching(&conn, "dev", s, before, limit)
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        };
        assert_eq!(newest("friday", i64::MAX, 10), vec![4, 1]);
        assert_eq!(newest("friday", i64::MAX, 1), vec![4]);
        assert_eq!(newest("friday", 4, 10), vec![1]);
        assert_eq!(newest("release plans", i64::MAX, 10), vec![1]);
        assert!(newest("x-tag", i64::MAX, 10).is_empty(), "not the header");
        assert!(newest("hi", i64::MAX, 10).is_empty(), "too short");
    }
}
