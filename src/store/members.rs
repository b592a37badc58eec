//! The `members` table: who is on which list, and how they take their mail.

use super::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// How a member receives the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    Each,
    DigestMime,
    DigestPlain,
    NoMail,
}

impl DeliveryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Each => "each",
            DeliveryMode::DigestMime => "digest_mime",
            DeliveryMode::DigestPlain => "digest_plain",
            DeliveryMode::NoMail => "nomail",
        }
    }

    /// Parses the stored name, and the user-facing aliases of `set LIST MODE`.
    pub fn parse(s: &str) -> Option<DeliveryMode> {
        Some(match s.to_ascii_lowercase().as_str() {
            "each" | "mail" => DeliveryMode::Each,
            "digest_mime" | "digest" | "mime" => DeliveryMode::DigestMime,
            "digest_plain" | "plain" => DeliveryMode::DigestPlain,
            "nomail" => DeliveryMode::NoMail,
            _ => return None,
        })
    }

    pub fn is_digest(self) -> bool {
        matches!(self, DeliveryMode::DigestMime | DeliveryMode::DigestPlain)
    }
}

/// A member's own moderation flag (Mailman's member `moderate` bit and
/// `moderation_action`). A member without one follows the list's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderation {
    /// Skip the posting policy (the message checks still apply).
    Accept,
    /// Hold every post for the moderators.
    Hold,
    /// Refuse every post, with a notice to the poster.
    Reject,
    /// Drop every post silently.
    Discard,
}

impl Moderation {
    pub fn as_str(self) -> &'static str {
        match self {
            Moderation::Accept => "accept",
            Moderation::Hold => "hold",
            Moderation::Reject => "reject",
            Moderation::Discard => "discard",
        }
    }

    pub fn parse(s: &str) -> Option<Moderation> {
        Some(match s.to_ascii_lowercase().as_str() {
            "accept" => Moderation::Accept,
            "hold" => Moderation::Hold,
            "reject" => Moderation::Reject,
            "discard" => Moderation::Discard,
            _ => return None,
        })
    }
}

/// One membership row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: i64,
    pub list: String,
    pub address: String,
    pub name: Option<String>,
    pub mode: DeliveryMode,
    pub disabled: bool,
    pub joined_at: i64,
    /// The member's own moderation flag; None: the list's policy.
    pub moderation: Option<Moderation>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    let mode: String = r.get(4)?;
    Ok(Member {
        id: r.get(0)?,
        list: r.get(1)?,
        address: r.get(2)?,
        name: r.get(3)?,
        mode: DeliveryMode::parse(&mode).unwrap_or(DeliveryMode::Each),
        disabled: r.get::<_, i64>(5)? != 0,
        joined_at: r.get(6)?,
        moderation: r
            .get::<_, Option<String>>(7)?
            .as_deref()
            .and_then(Moderation::parse),
    })
}

const COLS: &str = "id, list, address, name, mode, disabled, joined_at, moderation";

/// Adds a member. Returns false if the address was already on the list.
pub fn add(
    conn: &Connection,
    list: &str,
    address: &str,
    key: &str,
    name: Option<&str>,
    mode: DeliveryMode,
    now: i64,
) -> Result<bool> {
    add_new(conn, list, address, key, name, mode, false, now)
}

/// [`add`] for someone joining now, by the robot or `listd members add`:
/// `held` (the list's `moderate_new_members`) starts them with their
/// moderation flag at `hold`.
#[allow(clippy::too_many_arguments)] // one row's columns, each a plain value
pub fn add_new(
    conn: &Connection,
    list: &str,
    address: &str,
    key: &str,
    name: Option<&str>,
    mode: DeliveryMode,
    held: bool,
    now: i64,
) -> Result<bool> {
    // cached: `listd members add` runs it once per address, a million times
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO members(list, address, address_key, name, mode, joined_at, moderation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            list,
            address,
            key,
            name,
            mode.as_str(),
            now,
            held.then_some(Moderation::Hold.as_str())
        ])?;
    Ok(n == 1)
}

/// Removes a member. Returns false if the address was not on the list.
pub fn remove(conn: &Connection, list: &str, key: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM members WHERE list = ?1 AND address_key = ?2")?
        .execute(params![list, key])?;
    Ok(n == 1)
}

/// The membership of `address` on `list`, if any.
pub fn get(conn: &Connection, list: &str, key: &str) -> Result<Option<Member>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLS} FROM members WHERE list = ?1 AND address_key = ?2"),
            params![list, key],
            from_row,
        )
        .optional()?)
}

/// Whether the address with this key is on any list here: the test for
/// who may have text of their own mailed back.
pub fn is_member_anywhere(conn: &Connection, key: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM members WHERE address_key = ?1)")?
        .query_row([key], |r| r.get(0))?)
}

/// Changes a member's delivery mode. Returns false if not a member.
pub fn set_mode(conn: &Connection, list: &str, key: &str, mode: DeliveryMode) -> Result<bool> {
    let n = conn.execute(
        "UPDATE members SET mode = ?3 WHERE list = ?1 AND address_key = ?2",
        params![list, key, mode.as_str()],
    )?;
    Ok(n == 1)
}

/// Sets (Some) or clears (None) a member's moderation flag. Returns false
/// if not a member.
pub fn set_moderation(
    conn: &Connection,
    list: &str,
    key: &str,
    moderation: Option<Moderation>,
) -> Result<bool> {
    let n = conn.execute(
        "UPDATE members SET moderation = ?3 WHERE list = ?1 AND address_key = ?2",
        params![list, key, moderation.map(Moderation::as_str)],
    )?;
    Ok(n == 1)
}

/// Sets or clears the disabled flag (bounce processing). Returns false if not a member.
pub fn set_disabled(conn: &Connection, list: &str, key: &str, disabled: bool) -> Result<bool> {
    let n = conn.execute(
        "UPDATE members SET disabled = ?3 WHERE list = ?1 AND address_key = ?2",
        params![list, key, disabled as i64],
    )?;
    Ok(n == 1)
}

/// Number of members of a list: one row of `member_counts`, which
/// triggers keep (migration 0077), not a count of a million rows.
pub fn count(conn: &Connection, list: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT coalesce((SELECT n FROM member_counts WHERE list = ?1), 0)",
        [list],
        |r| r.get(0),
    )?)
}

/// Streams the members of a list in address order, calling `f` for each,
/// without collecting them. `f` returns false to stop early.
pub fn for_each(conn: &Connection, list: &str, mut f: impl FnMut(Member) -> bool) -> Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM members WHERE list = ?1 ORDER BY address_key"
    ))?;
    let mut rows = stmt.query([list])?;
    while let Some(row) = rows.next()? {
        if !f(from_row(row)?) {
            break;
        }
    }
    Ok(())
}

/// One page of a list's members in `address_key` order: those whose key
/// starts with `prefix`, after the key `after`, at most `limit`. A range
/// on the `(list, address_key)` index (keyset paging, never OFFSET) that
/// starts at `after` itself, so a page costs the same at any depth.
pub fn page(
    conn: &Connection,
    list: &str,
    prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Member>> {
    // every key starting with `prefix` sorts below `prefix` + U+10FFFF
    let hi = format!("{prefix}\u{10FFFF}");
    // the lower bound: the prefix (inclusive), or `after` (exclusive) once
    // it is past the prefix
    let (sql, lo) = match after {
        Some(a) if a >= prefix => (PAGE_AFTER_WHERE, a),
        _ => (PAGE_WHERE, prefix),
    };
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLS} {sql}"))?;
    let rows = stmt.query_map(params![list, lo, hi, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<Member>>>()?)
}

/// The query of a first [`page`], after its columns.
pub const PAGE_WHERE: &str = "FROM members WHERE list = ?1 AND address_key >= ?2 \
     AND address_key < ?3 ORDER BY address_key LIMIT ?4";

/// The query of a later [`page`] (`?2` is the previous page's last key).
pub const PAGE_AFTER_WHERE: &str = "FROM members WHERE list = ?1 AND address_key > ?2 \
     AND address_key < ?3 ORDER BY address_key LIMIT ?4";

/// The lists an address is on.
pub fn lists_of(conn: &Connection, key: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT list FROM members WHERE address_key = ?1 ORDER BY list")?;
    let rows = stmt.query_map([key], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_modes_and_case_rules() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        // the caller gives the key (`address::address_key`: domain folded)
        let a = "Ann@example.org";
        let add1 = add(
            &conn,
            "dev",
            "Ann@Example.org",
            a,
            Some("Ann"),
            DeliveryMode::Each,
            1,
        );
        assert!(add1.unwrap());
        // same key, another spelling: same member
        let add2 = add(
            &conn,
            "dev",
            "Ann@EXAMPLE.ORG",
            a,
            None,
            DeliveryMode::Each,
            2,
        );
        assert!(!add2.unwrap());
        // another key: a different mailbox
        assert!(get(&conn, "dev", "ann@example.org").unwrap().is_none());
        assert!(is_member_anywhere(&conn, a).unwrap());
        assert!(!is_member_anywhere(&conn, "garbage").unwrap());
        assert!(set_mode(&conn, "dev", a, DeliveryMode::DigestPlain).unwrap());
        assert_eq!(
            get(&conn, "dev", a).unwrap().unwrap().mode,
            DeliveryMode::DigestPlain
        );
        let mut seen = vec![];
        for_each(&conn, "dev", |m| {
            seen.push(m.address);
            true
        })
        .unwrap();
        assert_eq!(seen, vec!["Ann@Example.org".to_string()]);
        assert_eq!(lists_of(&conn, a).unwrap(), vec!["dev".to_string()]);
        assert!(remove(&conn, "dev", a).unwrap());
        assert!(!remove(&conn, "dev", a).unwrap());
        assert_eq!(count(&conn, "dev").unwrap(), 0);
    }

    #[test]
    fn moderation_flag_set_read_cleared_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        let a = "ann@example.org";
        assert!(!set_moderation(&conn, "dev", a, Some(Moderation::Hold)).unwrap());
        add(&conn, "dev", a, a, None, DeliveryMode::Each, 1).unwrap();
        assert_eq!(get(&conn, "dev", a).unwrap().unwrap().moderation, None);
        for m in [
            Moderation::Accept,
            Moderation::Hold,
            Moderation::Reject,
            Moderation::Discard,
        ] {
            assert!(set_moderation(&conn, "dev", a, Some(m)).unwrap());
            assert_eq!(get(&conn, "dev", a).unwrap().unwrap().moderation, Some(m));
            assert_eq!(Moderation::parse(m.as_str()), Some(m));
        }
        assert!(set_moderation(&conn, "dev", a, None).unwrap());
        assert_eq!(get(&conn, "dev", a).unwrap().unwrap().moderation, None);
        let bad = conn.execute("UPDATE members SET moderation = 'maybe'", []);
        assert!(bad.is_err(), "the column only takes the four actions");
        assert_eq!(Moderation::parse("sometimes"), None);
    }

    #[test]
    fn the_count_follows_every_insert_ignore_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        let real = |l: &str| -> i64 {
            conn.query_row("SELECT COUNT(*) FROM members WHERE list = ?1", [l], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(count(&conn, "dev").unwrap(), 0);
        for a in ["a@x.org", "b@x.org", "c@x.org"] {
            add(&conn, "dev", a, a, None, DeliveryMode::Each, 1).unwrap();
        }
        // already a member: ignored, not counted
        assert!(!add(
            &conn,
            "dev",
            "a@x.org",
            "a@x.org",
            None,
            DeliveryMode::Each,
            1
        )
        .unwrap());
        add(
            &conn,
            "ops",
            "a@x.org",
            "a@x.org",
            None,
            DeliveryMode::Each,
            1,
        )
        .unwrap();
        assert!(remove(&conn, "dev", "b@x.org").unwrap());
        assert!(!remove(&conn, "dev", "b@x.org").unwrap());
        conn.execute(
            "UPDATE members SET list = 'ops' WHERE address_key = 'c@x.org'",
            [],
        )
        .unwrap();
        for l in ["dev", "ops", "none"] {
            assert_eq!(count(&conn, l).unwrap(), real(l), "{l}");
        }
        assert_eq!(
            (count(&conn, "dev").unwrap(), count(&conn, "ops").unwrap()),
            (1, 2)
        );
    }

    #[test]
    fn a_page_is_an_index_range_by_prefix_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        for a in [
            "ann@x.org",
            "bob@x.org",
            "bea@x.org",
            "ben@x.org",
            "cy@x.org",
        ] {
            add(&conn, "dev", a, a, None, DeliveryMode::Each, 1).unwrap();
        }
        add(
            &conn,
            "ops",
            "bill@x.org",
            "bill@x.org",
            None,
            DeliveryMode::Each,
            1,
        )
        .unwrap();
        let keys = |v: Vec<Member>| v.into_iter().map(|m| m.address).collect::<Vec<_>>();
        assert_eq!(
            keys(page(&conn, "dev", "b", None, 2).unwrap()),
            ["bea@x.org", "ben@x.org"]
        );
        assert_eq!(
            keys(page(&conn, "dev", "b", Some("ben@x.org"), 2).unwrap()),
            ["bob@x.org"]
        );
        assert_eq!(
            keys(page(&conn, "dev", "", Some("bob@x.org"), 9).unwrap()),
            ["cy@x.org"]
        );
        assert!(page(&conn, "dev", "é", None, 9).unwrap().is_empty());
        // an `after` before the prefix does not widen the range
        assert_eq!(
            keys(page(&conn, "dev", "b", Some("ann@x.org"), 9).unwrap()),
            ["bea@x.org", "ben@x.org", "bob@x.org"]
        );
        for sql in [PAGE_WHERE, PAGE_AFTER_WHERE] {
            let plan: String = conn
                .query_row(
                    &format!("EXPLAIN QUERY PLAN SELECT {COLS} {sql}"),
                    params!["dev", "b", "b\u{10FFFF}", 50],
                    |r| r.get(3),
                )
                .unwrap();
            assert!(plan.contains("SEARCH members USING INDEX sqlite_autoindex_members_1 (list=? AND address_key>? AND address_key<?)"), "{plan}");
        }
    }
}
