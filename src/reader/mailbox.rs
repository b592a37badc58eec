//! A list's archive as a mailbox: its posts in UID order, where a UID is
//! the post's `archive_index` row id (it never changes), and the bytes of
//! one post read from its month file by offset and length.
//!
//! Trusts the archive index (written by `archive`).

use crate::archive::{self, ArchiveError};
use crate::store::Result;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// One archived post, as the index places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub uid: u32,
    /// Unix seconds, from its Date: (else when it was archived): the
    /// INTERNALDATE, and what SINCE / BEFORE / ON compare.
    pub date: i64,
    pub mbox_path: String,
    pub offset: i64,
    pub length: i64,
}

const COLS: &str = "id, date, mbox_path, offset, length";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        uid: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
        date: r.get(1)?,
        mbox_path: r.get(2)?,
        offset: r.get(3)?,
        length: r.get(4)?,
    })
}

/// Every UID of `list`'s archive, ascending (one scan of `archive_by_list`).
pub fn uids(conn: &Connection, list: &str) -> Result<Vec<u32>> {
    uids_after(conn, list, 0)
}

/// The UIDs of `list` above `after`, ascending (new posts since a look).
pub fn uids_after(conn: &Connection, list: &str, after: u32) -> Result<Vec<u32>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM archive_index INDEXED BY archive_by_list
         WHERE list = ?1 AND id > ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![list, i64::from(after)], |r| r.get::<_, i64>(0))?;
    let mut out = Vec::new();
    for id in rows {
        if let Ok(uid) = u32::try_from(id?) {
            out.push(uid);
        }
    }
    Ok(out)
}

/// The last `n` posts of `list`, oldest first (the POP3 maildrop).
pub fn recent(conn: &Connection, list: &str, n: usize) -> Result<Vec<Post>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM archive_index INDEXED BY archive_by_list
         WHERE list = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![list, n as i64], from_row)?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// The post with this UID in `list`, if there is one.
pub fn post(conn: &Connection, list: &str, uid: u32) -> Result<Option<Post>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM archive_index WHERE id = ?1 AND list = ?2"
        ))?
        .query_row(params![i64::from(uid), list], from_row)
        .optional()?)
}

/// The UID the next archived post will get (above every UID there is).
pub fn uid_next(conn: &Connection) -> Result<u32> {
    let max: Option<i64> = conn
        .prepare_cached("SELECT MAX(id) FROM archive_index")?
        .query_row([], |r| r.get(0))?;
    Ok(u32::try_from(max.unwrap_or(0) + 1).unwrap_or(u32::MAX))
}

/// The post's message: CRLF line ends, `>From ` quoting undone.
pub fn read(data_dir: &Path, post: &Post) -> std::result::Result<Vec<u8>, ArchiveError> {
    archive::read_message(data_dir, &post.mbox_path, post.offset, post.length)
}

/// A mailbox's UIDVALIDITY: a hash of the list name, stable across
/// restarts and reloads (UIDs are row ids, so they never get reused for
/// another post while the database lives), never 0.
pub fn uid_validity(list: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(list.as_bytes());
    let v = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff;
    v.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> Vec<u8> {
        format!(
            "From: a@example.org\r\nSubject: post {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn posts_are_listed_by_uid_and_read_back_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("l.db")).unwrap();
        for n in 1..=5 {
            let list = if n == 3 { "other" } else { "dev" };
            archive::archive_post(dir.path(), &conn, list, "x", &msg(n), 1_700_000_000).unwrap();
        }
        let all = uids(&conn, "dev").unwrap();
        assert_eq!(all, vec![1, 2, 4, 5]);
        assert_eq!(uids_after(&conn, "dev", 2).unwrap(), vec![4, 5]);
        let last = recent(&conn, "dev", 2).unwrap();
        assert_eq!(last.iter().map(|p| p.uid).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(read(dir.path(), &last[0]).unwrap(), msg(4));
        assert!(
            post(&conn, "dev", 3).unwrap().is_none(),
            "UID 3 is another list's"
        );
        assert_eq!(post(&conn, "other", 3).unwrap().unwrap().uid, 3);
        assert_eq!(uid_next(&conn).unwrap(), 6);
        assert_eq!(uid_validity("dev"), uid_validity("dev"));
        assert_ne!(uid_validity("dev"), uid_validity("other"));
        assert!(uid_validity("") > 0);
    }
}
