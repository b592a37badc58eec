//! The archive half of the service layer the pages and the REST API share:
//! a list's months with their post counts, a month's posts by date, by
//! author or as threads, one message (with its parent, replies and month
//! neighbours), one attachment's bytes, full-text search, and the newest
//! posts for the Atom feed. Who may read is decided once, by
//! `reader::may_read` on the `Reader` the caller is for that list.
//!
//! Every query is an index seek or a bounded index range (the statements
//! are public for the query-plan test), every page is at most
//! [`PAGE_MAX`] rows, keyset-paged by post id.
//!
//! Trusts the caller's identity as the handlers established it, the
//! archive index and the configuration; nothing in an archived message
//! (`archive_render` makes it safe to show).

use super::archive_atom::{AtomEntry, AtomFeed};
use super::archive_render::{self, AttachmentInfo};
use super::archive_threads::{threads, ThreadItem};
use super::service::{Caller, ServiceError, ServiceResult};
use crate::archive::ArchiveError;
use crate::config::{Config, ListConfig};
use crate::reader::{self, mailbox, text, Reader};
use crate::store::{members, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The most rows a page, a search or a feed has.
pub const PAGE_MAX: i64 = 500;
/// Months listed at most (a century).
pub const MONTHS_MAX: i64 = 1200;
/// Posts in the Atom feed.
pub const FEED_POSTS: i64 = 30;
/// Replies listed under a message.
pub const REPLIES_MAX: i64 = 100;

pub const MONTHS: &str =
    "SELECT month, posts FROM archive_months WHERE list = ?1 ORDER BY month DESC LIMIT ?2";
pub const BY_DATE: &str = "SELECT id, message_id, date, from_addr, subject, parent
     FROM archive_index INDEXED BY archive_by_month
     WHERE mbox_path = ?1 AND (date, id) > (?2, ?3) ORDER BY date, id LIMIT ?4";
pub const BY_DATE_BACK: &str = "SELECT id, message_id, date, from_addr, subject, parent
     FROM archive_index INDEXED BY archive_by_month
     WHERE mbox_path = ?1 AND (date, id) < (?2, ?3) ORDER BY date DESC, id DESC LIMIT ?4";
pub const BY_AUTHOR: &str = "SELECT id, message_id, date, from_addr, subject, parent
     FROM archive_index INDEXED BY archive_by_author
     WHERE mbox_path = ?1 AND (from_addr, date, id) > (?2, ?3, ?4)
     ORDER BY from_addr, date, id LIMIT ?5";
pub const NEWEST: &str = "SELECT id, message_id, date, from_addr, subject, parent
     FROM archive_index INDEXED BY archive_by_date
     WHERE list = ?1 AND (date, id) < (?2, ?3) ORDER BY date DESC, id DESC LIMIT ?4";
pub const BY_ID: &str = "SELECT id, message_id, date, from_addr, subject, parent, mbox_path
     FROM archive_index WHERE id = ?1 AND list = ?2";
pub const BY_MESSAGE_ID: &str = "SELECT id, message_id, date, from_addr, subject, parent
     FROM archive_index WHERE list = ?1 AND message_id = ?2";
pub const REPLIES: &str = "SELECT id, message_id, date, from_addr, subject, parent
     FROM archive_index INDEXED BY archive_by_parent
     WHERE list = ?1 AND parent = ?2 ORDER BY id LIMIT ?3";

/// Every statement of this module, for the query-plan test.
pub const STATEMENTS: &[&str] = &[
    MONTHS,
    BY_DATE,
    BY_DATE_BACK,
    BY_AUTHOR,
    NEWEST,
    BY_ID,
    BY_MESSAGE_ID,
    REPLIES,
    text::NEWEST_MATCHING,
];

/// A month of a list's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthView {
    /// `YYYY-MM`.
    pub month: String,
    pub posts: i64,
}

/// An archived post as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostView {
    pub id: i64,
    pub message_id: String,
    pub date: i64,
    pub date_text: String,
    pub from: String,
    pub subject: String,
    /// The Message-ID it answers (In-Reply-To, else the last References).
    pub parent: Option<String>,
}

fn post_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PostView> {
    let date: i64 = r.get(2)?;
    Ok(PostView {
        id: r.get(0)?,
        message_id: r.get(1)?,
        date,
        date_text: crate::moderation::notice::fmt_time(date),
        from: r.get(3)?,
        subject: r.get(4)?,
        parent: r.get(5)?,
    })
}

/// One message as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub post: PostView,
    pub month: String,
    pub from_full: String,
    pub to: String,
    pub cc: String,
    pub text: String,
    /// The sanitized HTML body, if the message has one.
    pub html: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    pub parent_post: Option<PostView>,
    pub replies: Vec<PostView>,
    pub prev: Option<PostView>,
    pub next: Option<PostView>,
}

/// Posts a search adds to the search index at most before it searches
/// (a backlog is indexed over several searches, or by
/// `listd archive import`).
pub const SEARCH_CATCH_UP: usize = 1000;

/// What a search found.
#[derive(Debug, Clone, Serialize)]
pub struct SearchView {
    pub hits: Vec<HitView>,
    /// Whether the search index covered every archived post.
    pub index_complete: bool,
}

/// A search hit.
#[derive(Debug, Clone, Serialize)]
pub struct HitView {
    #[serde(flatten)]
    pub post: PostView,
    /// Plain text around the first match.
    pub snippet: String,
}

fn archive_err(e: ArchiveError) -> ServiceError {
    match e {
        ArchiveError::Store(s) => s.into(),
        other => StoreError::Invalid(other.to_string()).into(),
    }
}

/// The reader `caller` is for `list`: an owner when it may administer the
/// list (admins, owners, the list's API tokens), a member when its
/// address is on the list.
pub fn reader_of(
    conn: &Connection,
    config: &Config,
    list: &ListConfig,
    caller: Option<&Caller>,
) -> ServiceResult<Reader> {
    let Some(c) = caller else {
        return Ok(Reader::Anonymous);
    };
    let owner = c.may_administer(config, list);
    let (address_key, member) = match c {
        Caller::Person(a) => {
            let key = crate::address::address_key(a);
            let member = members::get(conn, &list.name, &key)?.is_some();
            (key, member)
        }
        Caller::Token(t) => (format!("api:{}", t.name), false),
    };
    Ok(Reader::Proven {
        address_key,
        member,
        owner,
    })
}

/// The list `name` if the caller may read its archive. NotFound when no
/// one may (no such list, no archive, `archive_access: nobody`);
/// Forbidden when others may (the handlers answer 401 to a caller
/// without credentials).
pub fn readable<'a>(
    conn: &Connection,
    config: &'a Config,
    caller: Option<&Caller>,
    name: &str,
) -> ServiceResult<&'a ListConfig> {
    let anyone = Reader::Proven {
        address_key: String::new(),
        member: true,
        owner: true,
    };
    let list = config
        .list(name)
        .filter(|l| reader::may_read(l, &anyone))
        .ok_or_else(|| ServiceError::NotFound(format!("no archive for `{name}`")))?;
    if reader::may_read(list, &reader_of(conn, config, list, caller)?) {
        Ok(list)
    } else {
        Err(ServiceError::Forbidden(format!(
            "the archive of `{}` is for its {}",
            list.name,
            if reader::may_read(
                list,
                &Reader::Proven {
                    address_key: String::new(),
                    member: true,
                    owner: false
                }
            ) {
                "members"
            } else {
                "owners"
            }
        )))
    }
}

/// Whether the caller may read `list`'s archive (store errors pass).
pub fn may_read(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
) -> ServiceResult<bool> {
    match readable(conn, config, caller, list) {
        Ok(_) => Ok(true),
        Err(ServiceError::NotFound(_) | ServiceError::Forbidden(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `LIST/YYYY-MM.mbox` for a `YYYY-MM` month, else a 400.
fn month_file(list: &str, month: &str) -> ServiceResult<String> {
    let b = month.as_bytes();
    let ok = b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
        && (b"01".as_slice()..=b"12".as_slice()).contains(&&b[5..]);
    if !ok {
        return Err(ServiceError::BadRequest(format!(
            "`{month}` is not a month: use YYYY-MM"
        )));
    }
    Ok(format!("{list}/{month}.mbox"))
}

fn rows(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> ServiceResult<Vec<PostView>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let out = stmt.query_map(p, post_row)?.collect::<Result<_, _>>()?;
    Ok(out)
}

/// Post `id` of `list` and its month file.
fn post_and_file(
    conn: &Connection,
    list: &str,
    id: i64,
) -> ServiceResult<Option<(PostView, String)>> {
    Ok(conn
        .prepare_cached(BY_ID)?
        .query_row(params![id, list], |r| Ok((post_row(r)?, r.get(6)?)))
        .optional()?)
}

/// The keyset cursor `after` (a post id of `list`) as the post.
fn cursor(conn: &Connection, list: &str, after: Option<i64>) -> ServiceResult<Option<PostView>> {
    let Some(after) = after else { return Ok(None) };
    match post_and_file(conn, list, after)? {
        Some((p, _)) => Ok(Some(p)),
        None => Err(ServiceError::BadRequest(format!(
            "`after` names no post of `{list}`: {after}"
        ))),
    }
}

/// The months of `list`'s archive, newest first, with their post counts.
pub fn months(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
) -> ServiceResult<Vec<MonthView>> {
    let l = readable(conn, config, caller, list)?;
    let mut stmt = conn.prepare_cached(MONTHS)?;
    let out = stmt
        .query_map(params![l.name, MONTHS_MAX], |r| {
            Ok(MonthView {
                month: r.get(0)?,
                posts: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(out)
}

/// How a month's posts are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonthOrder {
    Date,
    Author,
}

/// A page of `month`'s posts in `order`, after the post `after`: at most
/// `limit` (up to [`PAGE_MAX`]).
#[allow(clippy::too_many_arguments)]
pub fn month_posts(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
    month: &str,
    order: MonthOrder,
    after: Option<i64>,
    limit: i64,
) -> ServiceResult<Vec<PostView>> {
    let l = readable(conn, config, caller, list)?;
    let file = month_file(&l.name, month)?;
    let limit = limit.clamp(1, PAGE_MAX);
    let c = cursor(conn, &l.name, after)?;
    match order {
        MonthOrder::Date => {
            let (d, i) = c.map_or((i64::MIN, i64::MIN), |p| (p.date, p.id));
            rows(conn, BY_DATE, params![file, d, i, limit])
        }
        MonthOrder::Author => {
            let (f, d, i) = c.map_or((String::new(), i64::MIN, i64::MIN), |p| {
                (p.from, p.date, p.id)
            });
            rows(conn, BY_AUTHOR, params![file, f, d, i, limit])
        }
    }
}

/// `list`'s newest posts (all months), below the post `after`.
pub fn newest_posts(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
    after: Option<i64>,
    limit: i64,
) -> ServiceResult<Vec<PostView>> {
    let l = readable(conn, config, caller, list)?;
    let (d, i) = cursor(conn, &l.name, after)?.map_or((i64::MAX, i64::MAX), |p| (p.date, p.id));
    rows(
        conn,
        NEWEST,
        params![l.name, d, i, limit.clamp(1, PAGE_MAX)],
    )
}

/// A page of `month` as threads (built from one date-ordered page of at
/// most `limit` posts after `after`), and the cursor of the next page.
pub fn month_threads(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
    month: &str,
    after: Option<i64>,
    limit: i64,
) -> ServiceResult<(Vec<ThreadItem>, Option<i64>)> {
    let limit = limit.clamp(1, PAGE_MAX);
    let posts = month_posts(
        conn,
        config,
        caller,
        list,
        month,
        MonthOrder::Date,
        after,
        limit,
    )?;
    let next = (posts.len() as i64 == limit)
        .then(|| posts.last().map(|p| p.id))
        .flatten();
    let items = threads(posts, |m| {
        Ok(rows(conn, BY_MESSAGE_ID, params![list, m])?
            .first()
            .map(|p| p.id))
    })?;
    Ok((items, next))
}

/// The bytes of post `id` of `list`, or NotFound.
fn message_bytes(
    conn: &Connection,
    config: &Config,
    list: &str,
    id: i64,
) -> ServiceResult<Vec<u8>> {
    let post = u32::try_from(id)
        .ok()
        .map(|uid| mailbox::post(conn, list, uid))
        .transpose()?
        .flatten()
        .ok_or_else(|| ServiceError::NotFound(format!("no post {id} in `{list}`")))?;
    mailbox::read(&config.data_dir, &post).map_err(archive_err)
}

/// Post `id` of `list` with its text, sanitized HTML, attachments, the
/// post it answers, its replies and its month neighbours.
pub fn message(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
    id: i64,
) -> ServiceResult<MessageView> {
    let l = readable(conn, config, caller, list)?;
    let (post, file) = post_and_file(conn, &l.name, id)?
        .ok_or_else(|| ServiceError::NotFound(format!("no post {id} in `{}`", l.name)))?;
    let shown = archive_render::show(&message_bytes(conn, config, &l.name, id)?);
    let parent_post = match &post.parent {
        Some(m) => rows(conn, BY_MESSAGE_ID, params![l.name, m])?.pop(),
        None => None,
    };
    let replies = rows(conn, REPLIES, params![l.name, post.message_id, REPLIES_MAX])?;
    let prev = rows(conn, BY_DATE_BACK, params![file, post.date, post.id, 1])?.pop();
    let next = rows(conn, BY_DATE, params![file, post.date, post.id, 1])?.pop();
    let month = file
        .strip_prefix(&format!("{}/", l.name))
        .and_then(|m| m.strip_suffix(".mbox"))
        .unwrap_or_default()
        .to_string();
    Ok(MessageView {
        post,
        month,
        from_full: shown.from,
        to: shown.to,
        cc: shown.cc,
        text: shown.text,
        html: shown.html,
        attachments: shown.attachments,
        parent_post,
        replies,
        prev,
        next,
    })
}

/// Attachment `n` of post `id`: its listing and bytes.
pub fn attachment(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
    id: i64,
    n: u32,
) -> ServiceResult<(AttachmentInfo, Vec<u8>)> {
    let l = readable(conn, config, caller, list)?;
    archive_render::part(&message_bytes(conn, config, &l.name, id)?, n)
        .ok_or_else(|| ServiceError::NotFound(format!("post {id} has no attachment {n}")))
}

/// The newest posts of `list` (ids below `before`) whose From, Subject or
/// text contains `q` (3 to 200 characters), at most `limit`, each with a
/// snippet. The search index catches up with the archive first, by at
/// most [`SEARCH_CATCH_UP`] posts.
pub fn search(
    conn: &Connection,
    config: &Config,
    caller: Option<&Caller>,
    list: &str,
    q: &str,
    before: Option<i64>,
    limit: i64,
) -> ServiceResult<SearchView> {
    let l = readable(conn, config, caller, list)?;
    let q = q.trim();
    if !(3..=200).contains(&q.chars().count()) {
        return Err(ServiceError::BadRequest(
            "search for 3 to 200 characters".into(),
        ));
    }
    let (_, index_complete) =
        text::catch_up_at_most(conn, &config.data_dir, &l.name, SEARCH_CATCH_UP)
            .map_err(archive_err)?;
    let limit = limit.clamp(1, PAGE_MAX);
    let found = text::newest_matching(conn, &l.name, q, before.unwrap_or(i64::MAX), limit)
        .map_err(archive_err)?;
    let mut out = Vec::with_capacity(found.len());
    for (id, body) in found {
        if let Some((post, _)) = post_and_file(conn, &l.name, id)? {
            out.push(HitView {
                snippet: archive_render::snippet(&body, q, 160),
                post,
            });
        }
    }
    Ok(SearchView {
        hits: out,
        index_complete,
    })
}

/// The Atom feed of a public archive: its newest [`FEED_POSTS`] posts.
/// Links and ids use `public_url` when it is set, `tag:` URIs otherwise.
pub fn feed(
    conn: &Connection,
    config: &Config,
    list: &str,
    public_url: Option<&str>,
    now: i64,
) -> ServiceResult<AtomFeed> {
    let l = readable(conn, config, None, list)?;
    let base = public_url.map(|u| format!("{}/archive/{}", u.trim_end_matches('/'), l.name));
    let tag = format!("tag:{},2026:{}", config.domain, l.name);
    let posts = rows(
        conn,
        NEWEST,
        params![l.name, i64::MAX, i64::MAX, FEED_POSTS],
    )?;
    let mut entries = Vec::with_capacity(posts.len());
    for p in posts {
        let text = match message_bytes(conn, config, &l.name, p.id) {
            Ok(b) => archive_render::show(&b).text,
            Err(ServiceError::Store(e)) => {
                tracing::warn!(list = %l.name, id = p.id, error = %e, "feed: a post cannot be read");
                String::new()
            }
            Err(e) => return Err(e),
        };
        let link = base.as_ref().map(|b| format!("{b}/msg/{}", p.id));
        entries.push(AtomEntry {
            id: link.clone().unwrap_or_else(|| format!("{tag}/{}", p.id)),
            title: p.subject,
            link,
            updated: p.date,
            author: p.from,
            summary: archive_render::snippet(&text, "", 300),
        });
    }
    Ok(AtomFeed {
        id: base.clone().unwrap_or(tag),
        title: format!("{} archive", config.list_address(&l.name)),
        self_link: base.as_ref().map(|b| format!("{b}/atom.xml")),
        link: base,
        updated: entries.first().map_or(now, |e| e.updated),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_counts_follow_inserts_deletes_and_the_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("m.db")).unwrap();
        let (nov, dec) = (1_793_000_000, 1_796_000_000); // two months, 35 days apart
        for (i, (list, t)) in [("dev", nov), ("dev", nov), ("dev", dec), ("ops", dec)]
            .into_iter()
            .enumerate()
        {
            let m = format!("Message-ID: <{i}@x>\r\nSubject: {i}\r\n\r\nbody\r\n");
            crate::archive::archive_post(dir.path(), &conn, list, "x", m.as_bytes(), t).unwrap();
        }
        let counts = |conn: &Connection| {
            conn.prepare("SELECT list, month, posts FROM archive_months ORDER BY list, month")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<Vec<(String, String, i64)>, _>>()
                .unwrap()
        };
        let (m1, m2) = (crate::archive::month_of(nov), crate::archive::month_of(dec));
        let want = vec![
            ("dev".to_string(), m1.clone(), 2),
            ("dev".to_string(), m2.clone(), 1),
            ("ops".to_string(), m2.clone(), 1),
        ];
        assert_eq!(counts(&conn), want);
        // the migration's backfill gives the same counts from the index
        let sql = include_str!("../store/migrations/0076_archive_web.sql");
        let backfill = sql
            .split(';')
            .find(|s| s.contains("INSERT INTO archive_months") && s.contains("GROUP BY"))
            .unwrap();
        conn.execute("DELETE FROM archive_months", []).unwrap();
        conn.execute(backfill, []).unwrap();
        assert_eq!(counts(&conn), want);
        // a delete counts down, and an emptied month goes
        conn.execute(
            "DELETE FROM archive_index WHERE list = 'dev' AND mbox_path LIKE ?1",
            [format!("%{m2}%")],
        )
        .unwrap();
        conn.execute("DELETE FROM archive_index WHERE id = 1", [])
            .unwrap();
        assert_eq!(
            counts(&conn),
            vec![("dev".to_string(), m1, 1), ("ops".to_string(), m2, 1)]
        );
    }

    #[test]
    fn months_are_checked() {
        assert_eq!(month_file("dev", "2026-11").unwrap(), "dev/2026-11.mbox");
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-11", "../x", "2026-1é", "2026_11",
        ] {
            assert!(month_file("dev", bad).is_err(), "{bad}");
        }
    }
}
