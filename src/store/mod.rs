//! The SQLite store: one database file in `data_dir`, WAL mode, embedded
//! numbered migrations run at open, and typed queries per table.
//!
//! Knows nothing of SMTP or MIME. Trusts its callers to pass checked values;
//! trusts nothing it reads back beyond the schema's CHECK constraints.

pub mod bounces;
pub mod members;
pub mod outbound;
pub mod rate;
pub mod spool;

use rusqlite::Connection;
use std::path::Path;

pub use rusqlite;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Migrations, applied in order; each is recorded by number in `schema_migrations`.
/// Add a new file with the next number; never edit one that has shipped.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("migrations/0001_foundation.sql"),
    ),
    (2, "delivery", include_str!("migrations/0002_delivery.sql")),
    (
        3,
        "post_archive",
        include_str!("migrations/0003_post_archive.sql"),
    ),
    (4, "commands", include_str!("migrations/0004_commands.sql")),
    (
        5,
        "moderation",
        include_str!("migrations/0005_moderation.sql"),
    ),
    (6, "digest", include_str!("migrations/0006_digest.sql")),
    (
        31,
        "post_retention",
        include_str!("migrations/0031_post_retention.sql"),
    ),
    (
        32,
        "message_refs",
        include_str!("migrations/0032_message_refs.sql"),
    ),
    (
        61,
        "digest_fanout",
        include_str!("migrations/0061_digest_fanout.sql"),
    ),
    (
        62,
        "member_moderation",
        include_str!("migrations/0062_member_moderation.sql"),
    ),
    (
        63,
        "join_mode",
        include_str!("migrations/0063_join_mode.sql"),
    ),
    (
        64,
        "incoming_inflight",
        include_str!("migrations/0064_incoming_inflight.sql"),
    ),
    (
        65,
        "rate_events",
        include_str!("migrations/0065_rate_events.sql"),
    ),
    (
        66,
        "sender_verification",
        include_str!("migrations/0066_sender_verification.sql"),
    ),
    (
        68,
        "digest_due",
        include_str!("migrations/0068_digest_due.sql"),
    ),
    (
        69,
        "inbound_auth",
        include_str!("migrations/0069_inbound_auth.sql"),
    ),
    (
        71,
        "bounce_scores",
        include_str!("migrations/0071_bounce_scores.sql"),
    ),
    (
        72,
        "archive_readers",
        include_str!("migrations/0072_archive_readers.sql"),
    ),
    (
        73,
        "delivery_reports",
        include_str!("migrations/0073_delivery_reports.sql"),
    ),
    (
        74,
        "moderation_reply_token",
        include_str!("migrations/0074_moderation_reply_token.sql"),
    ),
    (
        75,
        "web_admin",
        include_str!("migrations/0075_web_admin.sql"),
    ),
    (
        76,
        "archive_web",
        include_str!("migrations/0076_archive_web.sql"),
    ),
    (
        77,
        "member_counts",
        include_str!("migrations/0077_member_counts.sql"),
    ),
];

static STATEMENT_HOOK: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Has every connection [`open`]ed from now on in this process report each
/// statement it runs to `hook` (the SQL as written, parameters unbound).
/// The query-plan test uses it to check every statement the message path
/// runs; nothing else sets it.
pub fn trace_statements(hook: fn(&str)) {
    let _ = STATEMENT_HOOK.set(hook);
}

/// Opens (creating if needed) the database at `path`, sets the pragmas and
/// runs pending migrations.
pub fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    let mut conn = Connection::open(path)?;
    if let Some(hook) = STATEMENT_HOOK.get().copied() {
        conn.trace_v2(
            rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
            Some(move |e: rusqlite::trace::TraceEvent<'_>| {
                if let rusqlite::trace::TraceEvent::Stmt(_, sql) = e {
                    hook(sql)
                }
            }),
        )?;
    }
    configure(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// The flow between intake and the pipeline, shared by the spool writer,
/// the pipeline worker and the SMTP sessions.
///
/// - Waiting: SQLite has one writer at a time, and the spool writer's
///   commit is the one a sending server waits on for its 250; while it
///   waits for the write lock the pipeline ends its batch at the next row.
/// - Backlog: rows the spool has queued and the pipeline not yet handled
///   (counted from the daemon's start; set to 0 whenever the pipeline finds
///   nothing due). Above `smtp.in_flow_backlog`, a session pauses before
///   it commits its next message (`smtp::inflow`), as Postfix's
///   `in_flow_delay` does, so a sustained overload cannot queue without end.
#[derive(Debug, Default)]
pub struct IntakeFlow {
    waiting: std::sync::atomic::AtomicUsize,
    backlog: std::sync::atomic::AtomicI64,
}

/// Held while the spool writer waits for the write lock (see [`IntakeFlow`]).
pub struct IntakeWaiting<'a>(&'a IntakeFlow);

impl IntakeFlow {
    /// The spool writer is about to ask for the write lock.
    pub fn wait(&self) -> IntakeWaiting<'_> {
        self.waiting
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        IntakeWaiting(self)
    }

    /// Whether the spool writer is waiting now.
    pub fn waiting(&self) -> bool {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// The spool committed `n` incoming rows.
    pub fn queued(&self, n: usize) {
        self.backlog
            .fetch_add(n as i64, std::sync::atomic::Ordering::SeqCst);
    }

    /// The pipeline handled `n` rows; `0`: it found nothing due, so the
    /// backlog is empty (whatever the counts said).
    pub fn handled(&self, n: usize) {
        if n == 0 {
            self.backlog.store(0, std::sync::atomic::Ordering::SeqCst);
        } else {
            self.backlog
                .fetch_sub(n as i64, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Rows queued and not yet handled (never below 0).
    pub fn backlog(&self) -> u64 {
        self.backlog
            .load(std::sync::atomic::Ordering::SeqCst)
            .max(0) as u64
    }
}

impl Drop for IntakeWaiting<'_> {
    fn drop(&mut self) {
        self.0
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Prepared statements each connection keeps (rusqlite's default is 16).
pub const STATEMENT_CACHE: usize = 256;

/// Pragmas every connection uses: WAL, full fsync on commit, a busy timeout
/// so the daemon's connections and the CLI's wait for each other, and the
/// query planner's stability guarantee: without it SQLite (3.48 and later)
/// plans `LIMIT ?` with the bound value and re-prepares the cached
/// statement at every new binding, which was a tenth of the daemon's CPU
/// under intake (the delivery and pipeline claims bind a LIMIT each turn).
/// The statement cache holds [`STATEMENT_CACHE`] statements: the pipeline's
/// connection runs more than rusqlite's default 16 per post, and each one
/// evicted was parsed again.
pub fn configure(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// While another connection holds the write lock, a daemon worker's
/// connection polls this often instead of SQLite's default busy handler,
/// whose sleeps grow to 100 ms: with the spool writer polling fast and the
/// others sleeping long, the sleepers starved under steady intake.
pub const BUSY_POLL: std::time::Duration = std::time::Duration::from_micros(200);

/// How long a polling connection waits for the write lock before its
/// statement fails with SQLITE_BUSY (as `configure`'s busy timeout).
pub const BUSY_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Makes `conn` wait for the write lock by polling every [`BUSY_POLL`] (up
/// to [`BUSY_LIMIT`]), so the daemon's writers (spool, pipeline, delivery)
/// take turns by their own lengths rather than by growing sleeps.
pub fn poll_when_busy(conn: &mut Connection) -> Result<()> {
    conn.busy_handler(Some(|attempt: i32| {
        std::thread::sleep(BUSY_POLL);
        (attempt as u128) * BUSY_POLL.as_micros() < BUSY_LIMIT.as_micros()
    }))?;
    Ok(())
}

/// Applies every migration not yet recorded.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![version, name, now()],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// Current unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_keeps_more_statements_than_a_post_uses() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("listd.db")).unwrap();
        let first = "SELECT COUNT(*) FROM incoming";
        let run = || {
            let mut st = conn.prepare_cached(first).unwrap();
            st.query_row([], |r| r.get::<_, i64>(0)).unwrap();
            st.get_status(rusqlite::StatementStatus::Run)
        };
        assert_eq!(run(), 1);
        for i in 0..STATEMENT_CACHE - 1 {
            conn.prepare_cached(&format!("SELECT {i}")).unwrap();
        }
        assert_eq!(run(), 2, "the first statement was evicted and parsed again");
    }

    #[test]
    fn a_cached_statement_with_a_bound_limit_is_not_prepared_again() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("listd.db")).unwrap();
        for limit in [1_i64, 5, 50, 2] {
            let mut st = conn
                .prepare_cached("SELECT id FROM incoming WHERE state = ?1 ORDER BY id LIMIT ?2")
                .unwrap();
            st.query_map(rusqlite::params!["incoming", limit], |r| r.get::<_, i64>(0))
                .unwrap()
                .for_each(drop);
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "LIMIT {limit}: re-prepared on a new binding"
            );
        }
    }

    #[test]
    fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/listd.db");
        drop(open(&p).unwrap());
        let conn = open(&p).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as usize, MIGRATIONS.len());
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    /// A store made before 0063 keeps its tokens and requests when 0063
    /// rebuilds `tokens`; the new actions and `mode` then work.
    #[test]
    fn migration_0063_keeps_existing_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("old.db")).unwrap();
        configure(&conn).unwrap();
        for (_, _, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v < 63) {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
             INSERT INTO sub_requests(id, list, address, address_key, name, requested_by, created_at)
                 VALUES (7, 'dev', 'a@x.org', 'a@x.org', NULL, 'a@x.org', 1);
             INSERT INTO tokens(token_hash, list, action, address, address_key, requested_by,
                                request_id, created_at, expires_at)
                 VALUES ('h1', 'dev', 'approve', 'a@x.org', 'a@x.org', 'a@x.org', 7, 1, 2),
                        ('h2', 'dev', 'subscribe', 'b@x.org', 'b@x.org', 'b@x.org', NULL, 1, 2);",
        )
        .unwrap();
        for (v, name, _) in MIGRATIONS.iter().filter(|(v, _, _)| *v < 63) {
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                rusqlite::params![v, name],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, String, Option<i64>, Option<String>)> = conn
            .prepare("SELECT token_hash, action, request_id, mode FROM tokens ORDER BY token_hash")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("h1".into(), "approve".into(), Some(7), None),
                ("h2".into(), "subscribe".into(), None, None)
            ]
        );
        conn.execute(
            "INSERT INTO tokens(token_hash, list, action, address, address_key, requested_by,
                                created_at, expires_at, mode)
             VALUES ('h3', 'dev', 'owner_add', 'c@x.org', 'c@x.org', 'o@x.org', 1, 2, 'digest_plain')",
            [],
        )
        .unwrap();
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tokens'
                 AND name IN ('tokens_by_expiry', 'tokens_by_request')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2);
    }

    /// A store at `dir/old.db` with every migration before `version`
    /// applied and recorded, as an older listd left it.
    fn store_before(dir: &std::path::Path, version: u32) -> Connection {
        let conn = Connection::open(dir.join("old.db")).unwrap();
        configure(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for (v, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v < version) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                rusqlite::params![v, name],
            )
            .unwrap();
        }
        conn
    }

    /// 0065 renames the robot's reply log to the rate log; rows written
    /// before it still count.
    #[test]
    fn migration_0065_keeps_the_reply_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store_before(dir.path(), 65);
        conn.execute(
            "INSERT INTO robot_replies(address_key, sent_at) VALUES ('a@x.org', 100)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(rate::count(&conn, "a@x.org", rate::HOUR, 200).unwrap(), 1);
    }

    /// 0077 counts the members a store already has.
    #[test]
    fn migration_0077_counts_existing_members() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store_before(dir.path(), 77);
        conn.execute_batch(
            "INSERT INTO members(list, address, address_key, joined_at) VALUES
             ('dev', 'a@x.org', 'a@x.org', 1), ('dev', 'b@x.org', 'b@x.org', 1),
             ('ops', 'a@x.org', 'a@x.org', 1)",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(members::count(&conn, "dev").unwrap(), 2);
        assert_eq!(members::count(&conn, "ops").unwrap(), 1);
    }

    #[test]
    fn unusable_paths_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        // the data directory cannot be created under a regular file
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let e = open(&file.join("data/listd.db")).unwrap_err();
        assert!(matches!(e, StoreError::DataDir { .. }), "{e}");
        assert!(
            e.to_string().contains("cannot create data directory"),
            "{e}"
        );
        // a file that is not a database
        let bad = dir.path().join("bad.db");
        std::fs::write(&bad, vec![b'z'; 4096]).unwrap();
        let e = open(&bad).unwrap_err();
        assert!(e.to_string().contains("not a database"), "{e}");
    }

    /// A store made before 0066 keeps its robot and moderation tokens when
    /// 0066 rebuilds both tables; `set_mode` and `confirm` then work, and
    /// other actions are still refused.
    #[test]
    fn migration_0066_keeps_existing_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = store_before(dir.path(), 66);
        conn.execute_batch(
            "INSERT INTO messages(id, direction, received_at, env_from, size, bytes)
                 VALUES (1, 'in', 1, '', 1, x'00');
             INSERT INTO held(id, list, message_id, reason, detail, sender, env_from, subject,
                              size, held_at) VALUES (5, 'dev', 1, 'moderated', 'd', 'a@x.org',
                              'a@x.org', 's', 1, 1);
             INSERT INTO mod_tokens(hash, list, held_id, action) VALUES (x'01', 'dev', 5, 'approve');
             INSERT INTO tokens(token_hash, list, action, address, address_key, requested_by,
                                created_at, expires_at, mode)
                 VALUES ('h1', 'dev', 'subscribe', 'b@x.org', 'b@x.org', 'b@x.org', 1, 2,
                         'digest_mime');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let robot: (String, Option<String>) = conn
            .query_row("SELECT action, mode FROM tokens", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(robot, ("subscribe".into(), Some("digest_mime".into())));
        let held: (i64, String) = conn
            .query_row("SELECT held_id, action FROM mod_tokens", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(held, (5, "approve".into()));
        conn.execute_batch(
            "INSERT INTO mod_tokens(hash, list, held_id, action) VALUES (x'02', 'dev', 5, 'confirm');
             INSERT INTO tokens(token_hash, list, action, address, address_key, requested_by,
                                created_at, expires_at, mode)
                 VALUES ('h2', 'dev', 'set_mode', 'b@x.org', 'b@x.org', 'b@x.org', 1, 2, 'nomail');",
        )
        .unwrap();
        assert!(conn
            .execute(
                "INSERT INTO mod_tokens(hash, list, held_id, action) VALUES (x'03', 'dev', 5, 'x')",
                [],
            )
            .is_err());
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'
                 AND name IN ('tokens_by_expiry', 'tokens_by_request', 'mod_tokens_by_held')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 3);
    }
}
