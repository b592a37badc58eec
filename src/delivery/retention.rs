//! Retention: deletes what the queues finished with long ago, so the
//! database does not grow without end.
//!
//! Older than `delivery.retain_days` (0 keeps everything):
//! - finished (`done`) outbound jobs: their batches and recipient rows go,
//!   and the job row itself unless another table still refers to it (a
//!   digest issue's `digest_jobs` row keeps its job row, not its recipients);
//! - `done` rows of the incoming queue, sooner: `delivery.retain_incoming_hours`
//!   after they finished (`corrupt` ones are kept for the operator);
//! - held posts a moderator (or expiry) decided, with their action tokens
//!   (`mod_log` keeps the history);
//! - the entries of digest issues closed before then, and their digests'
//!   `digest_jobs` rows once those digests are delivered (the
//!   `digest_issues` row stays as the record);
//! - message bodies nothing refers to any more (received ones as soon as
//!   their incoming rows are gone).
//!
//! Bounce bodies are let go after `bounce.retain_days` (the `bounces` row
//! stays as the event, its `message_id` cleared), whatever `retain_days` says.
//!
//! The newest row of `jobs` and of `messages` is always kept, so SQLite
//! never hands out a deleted id again (a loose link such as
//! `digest_entries.job_id`, or a cached job, can never meet a new row under
//! an old id).
//!
//! What may refer to a row is not a hand-kept list: the tables and columns
//! that declare a foreign key to `messages(id)` or `jobs(id)` are read from
//! the schema (`pragma_foreign_key_list`) at each run, so a held post
//! (`held`), a pending or issued digest entry (`digest_entries`), a digest
//! body (`digest_jobs`), a recorded bounce (`bounces`) or a live queue row
//! keeps its body whatever area added the table. Each step is its own short
//! transaction of at most [`STEP`] rows, so the daemon's other connections
//! never wait long.
//!
//! Trusts the schema's foreign keys to name every reference (a unit test
//! checks that every INTEGER `message_id` column declares one); trusts `now`.

use crate::config::Config;
use crate::store::Result;
use rusqlite::{params, Connection, TransactionBehavior};

/// Rows (jobs, incoming rows, message ids looked at) per transaction.
pub const STEP: usize = 200;

/// How often the delivery worker runs the clean-up, seconds.
pub const EVERY_SECS: i64 = 3600;

/// The next finished jobs older than ?1, after (done_at, id) = (?2, ?3):
/// a range of the partial index `jobs_done_by_age` (migration 0031).
const FINISHED_JOBS: &str = "SELECT id, done_at FROM jobs INDEXED BY jobs_done_by_age
     WHERE state = 'done' AND done_at < ?1 AND (done_at, id) > (?2, ?3)
     ORDER BY done_at, id LIMIT ?4";

/// What a clean-up deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Bounces whose bodies were let go (`bounce.retain_days`).
    pub bounce_bodies: u64,
    pub held: u64,
    pub digest_entries: u64,
    pub digest_jobs: u64,
    pub jobs: u64,
    pub batches: u64,
    pub job_rcpts: u64,
    pub incoming: u64,
    pub messages: u64,
}

impl Purged {
    /// Whether anything was deleted.
    pub fn any(&self) -> bool {
        *self != Purged::default()
    }
}

/// The `(table, column)` pairs that declare a foreign key to `parent(id)`.
pub fn referrers(conn: &Connection, parent: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT m.name, f.\"from\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f
         WHERE m.type = 'table' AND f.\"table\" = ?1 ORDER BY m.name, f.\"from\"",
    )?;
    let rows = stmt
        .query_map([parent], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
    Ok(rows)
}

/// ` AND NOT EXISTS (...)` for each referrer of `parent`, against `id`
/// (the parent id: a parameter or a column); `except` tables are left out.
fn unreferenced(conn: &Connection, parent: &str, except: &[&str], id: &str) -> Result<String> {
    let mut sql = String::new();
    for (table, column) in referrers(conn, parent)? {
        if except.contains(&table.as_str()) {
            continue;
        }
        sql.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM \"{table}\" WHERE \"{column}\" = {id})"
        ));
    }
    Ok(sql)
}

/// Runs `sql`, a DELETE of at most `?2` rows older than `?1` (`before`),
/// until it deletes fewer than [`STEP`]; each run is its own short
/// transaction. Returns the rows deleted.
fn delete_in_steps(conn: &Connection, sql: &str, before: i64) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let n = conn
            .prepare_cached(sql)?
            .execute(params![before, STEP as i64])?;
        deleted += n as u64;
        if n < STEP {
            return Ok(deleted);
        }
    }
}

/// The cut-off time: rows finished before it go. None: keep everything.
pub fn cutoff(config: &Config, now: i64) -> Option<i64> {
    match config.delivery.retain_days {
        0 => None,
        d => Some(now - (d as i64).saturating_mul(86_400)),
    }
}

/// The cut-off for finished incoming rows and received bodies: the later of
/// `retain_incoming_hours` and [`cutoff`]. None: keep everything.
pub fn incoming_cutoff(config: &Config, now: i64) -> Option<i64> {
    let hours = now - (config.delivery.retain_incoming_hours as i64).saturating_mul(3600);
    cutoff(config, now).map(|days| days.max(hours))
}

/// Runs the whole clean-up at `now`, one short transaction per step.
pub fn purge(conn: &mut Connection, config: &Config, now: i64) -> Result<Purged> {
    let mut out = Purged::default();
    // bounce bodies after `bounce.retain_days` (the rows stay as events);
    // the bodies then go below with the other unreferenced ones
    if config.bounce.retain_days > 0 {
        let before = now - i64::from(config.bounce.retain_days) * 86_400;
        loop {
            let n = crate::store::bounces::release_bodies(conn, before, STEP)?;
            out.bounce_bodies += n as u64;
            if n < STEP {
                break;
            }
        }
    }
    let (Some(before), Some(before_in)) = (cutoff(config, now), incoming_cutoff(config, now))
    else {
        return Ok(out);
    };
    // decided held posts, with their tokens; then old digest issues' rows.
    // These come first: what they held on to goes in the steps below.
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM held WHERE state <> 'held' AND acted_at < ?1
                 ORDER BY acted_at, id LIMIT ?2",
            )?
            .query_map(params![before, STEP as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if ids.is_empty() {
            break;
        }
        for id in &ids {
            tx.prepare_cached("DELETE FROM mod_tokens WHERE held_id = ?1")?
                .execute([id])?;
            out.held += tx
                .prepare_cached("DELETE FROM held WHERE id = ?1")?
                .execute([id])? as u64;
        }
        tx.commit()?;
    }
    out.digest_entries = delete_in_steps(
        conn,
        "DELETE FROM digest_entries WHERE id IN (
             SELECT e.id FROM digest_issues i
             JOIN digest_entries e ON e.list = i.list AND e.issue_id = i.id
             WHERE i.closed_at < ?1 LIMIT ?2)",
        before,
    )?;
    out.digest_jobs = delete_in_steps(
        conn,
        "DELETE FROM digest_jobs WHERE id IN (
             SELECT d.id FROM digest_issues i
             JOIN digest_jobs d ON d.issue_id = i.id
             LEFT JOIN jobs j ON j.id = d.job_id
             WHERE i.closed_at < ?1 AND (j.id IS NULL OR j.state = 'done') LIMIT ?2)",
        before,
    )?;
    // finished jobs, in (done_at, id) order, resumed after the last seen
    let job_kept_by = format!(
        " AND id < (SELECT MAX(id) FROM jobs){}",
        unreferenced(conn, "jobs", &["batches", "job_rcpts"], "?1")?
    );
    let mut after = (i64::MIN, 0i64);
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let jobs: Vec<(i64, i64)> = tx
            .prepare_cached(FINISHED_JOBS)?
            .query_map(params![before, after.0, after.1, STEP as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(last_id, last_done)) = jobs.last() else {
            break;
        };
        after = (last_done, last_id);
        for (id, _) in &jobs {
            out.batches += tx
                .prepare_cached("DELETE FROM batches WHERE job_id = ?1")?
                .execute([id])? as u64;
            out.job_rcpts += tx
                .prepare_cached("DELETE FROM job_rcpts WHERE job_id = ?1")?
                .execute([id])? as u64;
            out.jobs += tx
                .prepare_cached(&format!("DELETE FROM jobs WHERE id = ?1{job_kept_by}"))?
                .execute([id])? as u64;
        }
        tx.commit()?;
    }
    // finished incoming rows, after `retain_incoming_hours`
    let incoming_kept_by = unreferenced(conn, "incoming", &[], "i.id")?;
    out.incoming = delete_in_steps(
        conn,
        &format!(
            "DELETE FROM incoming WHERE id IN (
                 SELECT i.id FROM incoming i
                 WHERE i.state = 'done' AND i.updated_at < ?1{incoming_kept_by}
                 ORDER BY i.id LIMIT ?2)"
        ),
        before_in,
    )?;
    // bodies nothing refers to any more, oldest first: received ones after
    // `retain_incoming_hours`, those listd wrote after `retain_days`
    let msg_kept_by = unreferenced(conn, "messages", &[], "?1")?;
    let mut after = 0i64;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM messages WHERE id > ?1 AND received_at < ?2
                   AND received_at < CASE direction WHEN 'in' THEN ?2 ELSE ?4 END
                   AND id < (SELECT MAX(id) FROM messages) ORDER BY id LIMIT ?3",
            )?
            .query_map(params![after, before_in, STEP as i64, before], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&last) = ids.last() else {
            break;
        };
        after = last;
        let mut del =
            tx.prepare_cached(&format!("DELETE FROM messages WHERE id = ?1{msg_kept_by}"))?;
        for id in &ids {
            out.messages += del.execute([id])? as u64;
        }
        drop(del);
        tx.commit()?;
    }
    if out.any() {
        tracing::info!(
            held = out.held,
            digest_entries = out.digest_entries,
            digest_jobs = out.digest_jobs,
            jobs = out.jobs,
            batches = out.batches,
            job_rcpts = out.job_rcpts,
            incoming = out.incoming,
            messages = out.messages,
            retain_days = config.delivery.retain_days,
            "retention: deleted finished queue rows and unreferenced bodies"
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Route;
    use crate::store::{outbound, spool};

    const T0: i64 = 1_700_000_000;
    const DAY: i64 = 86_400;

    fn setup() -> (tempfile::TempDir, Config, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests("lists.example.org", dir.path());
        let lc =
            crate::config::ListConfig::parse(std::path::Path::new("x.yaml"), "dev", "").unwrap();
        config.lists.insert("dev".into(), lc);
        let conn = crate::store::open(&config.db_path()).unwrap();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        (dir, config, conn)
    }

    fn exists(conn: &Connection, table: &str, id: i64) -> bool {
        conn.query_row(
            &format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE id = ?1)"),
            [id],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn inbound(conn: &Connection, state: &str, at: i64) -> i64 {
        let env = spool::Envelope {
            mail_from: "ann@example.org".into(),
            rcpts: vec![(
                "dev@lists.example.org".into(),
                Route::Post { list: "dev".into() }.into(),
            )],
            client_ip: None,
            helo: "client".into(),
            protocol: "ESMTP".into(),
        };
        let id = spool::insert_inbound(conn, &env, b"Subject: x\r\n\r\nx\r\n", at).unwrap();
        conn.execute(
            "UPDATE incoming SET state = ?2 WHERE message_id = ?1",
            params![id, state],
        )
        .unwrap();
        id
    }

    /// A reply job to two recipients, finished (one sent, one failed) at `at`.
    fn finished_job(conn: &Connection, at: i64) -> (i64, i64) {
        let job = outbound::NewJob {
            list: Some("dev"),
            kind: outbound::JobKind::Reply,
            env_from: "dev-bounces@lists.example.org",
            verp: false,
            bytes: b"Subject: r\r\n\r\nr\r\n",
        };
        let id = outbound::enqueue(conn, &job, &["a@x.org", "b@x.org"], at).unwrap();
        conn.execute(
            "UPDATE job_rcpts SET state = CASE rcpt WHEN 'a@x.org' THEN 'sent' ELSE 'failed' END
             WHERE job_id = ?1",
            [id],
        )
        .unwrap();
        assert!(crate::delivery::queue::finish_if_done(conn, id, at).unwrap());
        let msg = conn
            .query_row("SELECT message_id FROM jobs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        (id, msg)
    }

    /// A post's fan-out job, expanded into one batch and finished at `at`.
    fn finished_post(conn: &mut Connection, config: &Config, at: i64) -> (i64, i64) {
        crate::store::members::add(
            conn,
            "dev",
            &crate::address::Address::parse("m@x.org")
                .unwrap()
                .to_string(),
            &crate::address::Address::parse("m@x.org").unwrap().key(),
            None,
            crate::store::members::DeliveryMode::Each,
            at,
        )
        .ok();
        let tx = conn.transaction().unwrap();
        let id = crate::delivery::enqueue_post(&tx, config, "dev", b"Subject: p\r\n\r\np\r\n", at)
            .unwrap();
        crate::delivery::queue::expand_chunk(&tx, config, id, 100, at).unwrap();
        tx.execute(
            "UPDATE batches SET state = 'done', sent = n WHERE job_id = ?1",
            [id],
        )
        .unwrap();
        assert!(crate::delivery::queue::finish_if_done(&tx, id, at).unwrap());
        let msg = tx
            .query_row("SELECT message_id FROM jobs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        tx.commit().unwrap();
        (id, msg)
    }

    #[test]
    fn old_finished_rows_and_bodies_go_referenced_ones_stay() {
        let (_d, config, mut conn) = setup();
        let now = T0 + 31 * DAY; // retain_days defaults to 30
        assert_eq!(config.delivery.retain_days, 30);
        // old and finished: everything goes
        let (old_job, old_job_msg) = finished_job(&conn, T0);
        let (old_post, old_post_msg) = finished_post(&mut conn, &config, T0);
        let old_in = inbound(&conn, "done", T0);
        // young and finished: stays, but a received body goes after
        // `retain_incoming_hours` (1)
        let (young_job, young_msg) = finished_job(&conn, now - DAY);
        let young_in = inbound(&conn, "done", now - DAY);
        let fresh_in = inbound(&conn, "done", now - 1800);
        // old but unfinished: a job still retrying, a corrupt inbound row
        let job = outbound::NewJob {
            list: None,
            kind: outbound::JobKind::Notice,
            env_from: "",
            verp: false,
            bytes: b"Subject: n\r\n\r\nn\r\n",
        };
        let live = outbound::enqueue(&conn, &job, &["c@x.org"], T0).unwrap();
        conn.execute(
            "UPDATE job_rcpts SET state = 'deferred' WHERE job_id = ?1",
            [live],
        )
        .unwrap();
        let corrupt_in = inbound(&conn, "corrupt", T0);
        // old, finished, but the body is still referred to:
        // a held post (its incoming row is done)
        let held_in = inbound(&conn, "done", T0);
        conn.execute(
            "INSERT INTO held(list, message_id, reason, detail, sender, env_from, subject, size, held_at)
             VALUES ('dev', ?1, 'moderated', 'held', 'ann@example.org', 'ann@example.org', 'x', 1, ?2)",
            params![held_in, T0],
        )
        .unwrap();
        // a post whose digest entry is still pending
        let (_, digest_post_msg) = finished_post(&mut conn, &config, T0);
        conn.execute(
            "INSERT INTO digest_entries(list, message_id, bytes, added_at) VALUES ('dev', ?1, 10, ?2)",
            params![digest_post_msg, T0],
        )
        .unwrap();
        // a digest job of a young issue: its row stays for digest_jobs,
        // its recipients go
        let (digest_job, digest_body) = finished_job(&conn, T0);
        conn.execute(
            "INSERT INTO digest_issues(id, list, volume, issue, trigger, closed_at, posts, bytes)
             VALUES (1, 'dev', 1, 1, 'forced', ?1, 1, 10)",
            [now - DAY],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO digest_jobs(issue_id, format, job_id, message_id, posts, recipients)
             VALUES (1, 'mime', ?1, ?2, 1, 2)",
            params![digest_job, digest_body],
        )
        .unwrap();
        // an old recorded bounce: its body goes, its row stays
        let old_bounce_in = inbound(&conn, "done", T0);
        conn.execute(
            "INSERT INTO bounces(list, message_id, env_from, received_at) VALUES ('dev', ?1, '', ?2)",
            params![old_bounce_in, T0],
        )
        .unwrap();
        // a recorded bounce, young enough for `bounce.retain_days`
        let bounce_in = inbound(&conn, "done", T0);
        conn.execute(
            "INSERT INTO bounces(list, message_id, env_from, received_at) VALUES ('dev', ?1, '', ?2)",
            params![bounce_in, now - DAY],
        )
        .unwrap();

        let p = purge(&mut conn, &config, now).unwrap();

        for (id, gone) in [
            (old_job, true),
            (old_post, true),
            (young_job, false),
            (live, false),
            (digest_job, false),
        ] {
            assert_eq!(!exists(&conn, "jobs", id), gone, "job {id}");
        }
        for (id, gone) in [
            (old_job_msg, true),
            (old_post_msg, true),
            (old_in, true),
            (young_msg, false),
            (young_in, true),
            (fresh_in, false),
            (corrupt_in, false),
            (held_in, false),
            (digest_post_msg, false),
            (digest_body, false),
            (bounce_in, false),
            (old_bounce_in, true),
        ] {
            assert_eq!(!exists(&conn, "messages", id), gone, "message {id}");
        }
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM batches"), 0);
        assert_eq!(
            count(
                &conn,
                &format!(
                    "SELECT COUNT(*) FROM job_rcpts WHERE job_id IN ({old_job}, {digest_job})"
                )
            ),
            0
        );
        assert_eq!(
            count(
                &conn,
                &format!("SELECT COUNT(*) FROM job_rcpts WHERE job_id IN ({young_job}, {live})")
            ),
            3
        );
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM incoming WHERE state = 'done'"),
            1,
            "only the fresh done row is left"
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM incoming WHERE state = 'corrupt'"
            ),
            1
        );
        assert_eq!(
            p,
            Purged {
                bounce_bodies: 1,
                jobs: 3, // old_job, old_post, the digest post's job, not the digest job
                held: 0,
                digest_entries: 0,
                digest_jobs: 0,
                batches: 2,
                job_rcpts: 4,
                // old_in, young_in, held_in, bounce_in, old_bounce_in
                incoming: 5,
                messages: 5,
            }
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM bounces WHERE message_id IS NULL AND received_at = 1700000000"
            ),
            1,
            "the old bounce's row stays, without its body"
        );
        // a second run finds nothing more; once the hold is gone its body goes too
        assert_eq!(purge(&mut conn, &config, now).unwrap(), Purged::default());
        conn.execute("DELETE FROM held WHERE message_id = ?1", [held_in])
            .unwrap();
        assert_eq!(purge(&mut conn, &config, now).unwrap().messages, 1);
        assert!(!exists(&conn, "messages", held_in));
    }

    /// Decided held posts go with their tokens; pending ones and young
    /// decisions stay. An old issue's entries go, and its digest's record
    /// once delivered, freeing the digest job and body; pending entries and
    /// a digest still being sent stay.
    #[test]
    fn decided_holds_and_old_digest_issues_go() {
        let (_d, config, mut conn) = setup();
        let now = T0 + 40 * DAY;
        let hold = |conn: &Connection, state: &str, acted_at: Option<i64>| -> (i64, i64) {
            let m = inbound(conn, "done", T0);
            conn.execute(
                "INSERT INTO held(list, message_id, reason, detail, sender, env_from, subject, size,
                                  held_at, state, acted_at)
                 VALUES ('dev', ?1, 'moderated', 'held', 'a@x.org', 'a@x.org', 's', 1, ?2, ?3, ?4)",
                params![m, T0, state, acted_at],
            )
            .unwrap();
            let id = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO mod_tokens(hash, list, held_id, action) VALUES (randomblob(32), 'dev', ?1, 'approve')",
                [id],
            )
            .unwrap();
            (id, m)
        };
        let (old_done, old_done_msg) = hold(&conn, "rejected", Some(T0));
        let (young_done, young_done_msg) = hold(&conn, "discarded", Some(now - DAY));
        let (pending, pending_msg) = hold(&conn, "held", None);

        let issue = |conn: &Connection, id: i64, closed_at: i64| {
            conn.execute(
                "INSERT INTO digest_issues(id, list, volume, issue, trigger, closed_at, posts, bytes)
                 VALUES (?1, 'dev', 1, ?1, 'count', ?2, 1, 10)",
                params![id, closed_at],
            )
            .unwrap();
        };
        let entry = |conn: &Connection, issue_id: Option<i64>| -> i64 {
            let m = inbound(conn, "done", T0);
            conn.execute(
                "INSERT INTO digest_entries(list, message_id, bytes, added_at, issue_id)
                 VALUES ('dev', ?1, 10, ?2, ?3)",
                params![m, T0, issue_id],
            )
            .unwrap();
            m
        };
        let digest = |conn: &Connection, issue_id: i64, job: i64, body: i64| {
            conn.execute(
                "INSERT INTO digest_jobs(issue_id, format, job_id, message_id, posts, recipients)
                 VALUES (?1, 'mime', ?2, ?3, 1, 1)",
                params![issue_id, job, body],
            )
            .unwrap();
        };
        issue(&conn, 1, T0);
        issue(&conn, 2, now - DAY);
        issue(&conn, 3, T0);
        let old_entry_msg = entry(&conn, Some(1));
        let young_entry_msg = entry(&conn, Some(2));
        let pending_entry_msg = entry(&conn, None);
        let (old_digest_job, old_digest_body) = finished_job(&conn, T0);
        digest(&conn, 1, old_digest_job, old_digest_body);
        let sending = outbound::enqueue(
            &conn,
            &outbound::NewJob {
                list: Some("dev"),
                kind: outbound::JobKind::Digest,
                env_from: "dev-bounces@lists.example.org",
                verp: false,
                bytes: b"Subject: digest\r\n\r\nd\r\n",
            },
            &["c@x.org"],
            T0,
        )
        .unwrap();
        let sending_body: i64 = conn
            .query_row(
                "SELECT message_id FROM jobs WHERE id = ?1",
                [sending],
                |r| r.get(0),
            )
            .unwrap();
        digest(&conn, 3, sending, sending_body);

        let p = purge(&mut conn, &config, now).unwrap();
        assert_eq!((p.held, p.digest_entries, p.digest_jobs), (1, 1, 1));
        for (id, gone) in [(old_done, true), (young_done, false), (pending, false)] {
            assert_eq!(!exists(&conn, "held", id), gone, "held {id}");
            let tokens = count(
                &conn,
                &format!("SELECT COUNT(*) FROM mod_tokens WHERE held_id = {id}"),
            );
            assert_eq!(tokens == 0, gone, "tokens of held {id}");
        }
        for (id, gone) in [
            (old_done_msg, true),
            (young_done_msg, false),
            (pending_msg, false),
            (old_entry_msg, true),
            (young_entry_msg, false),
            (pending_entry_msg, false),
            (old_digest_body, true),
            (sending_body, false),
        ] {
            assert_eq!(!exists(&conn, "messages", id), gone, "message {id}");
        }
        assert!(!exists(&conn, "jobs", old_digest_job));
        assert!(exists(&conn, "jobs", sending));
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM digest_issues"),
            3,
            "the issues stay as the record"
        );
    }

    #[test]
    fn many_rows_go_in_several_steps() {
        let (_d, config, mut conn) = setup();
        let n = STEP * 2 + 7;
        for _ in 0..n {
            finished_job(&conn, T0);
            inbound(&conn, "done", T0);
        }
        let p = purge(&mut conn, &config, T0 + 31 * DAY).unwrap();
        // the newest job and the newest message stay, so ids are never reused
        assert_eq!(
            (p.jobs, p.incoming, p.messages),
            (n as u64 - 1, n as u64, 2 * n as u64 - 2)
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM jobs"), 1);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM job_rcpts"), 0);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM messages"), 2);
        let (job, _) = finished_job(&conn, T0);
        assert!(job > n as i64, "a new job gets a new id");
    }

    #[test]
    fn retain_days_zero_keeps_everything() {
        let (_d, mut config, mut conn) = setup();
        config.delivery.retain_days = 0;
        let (job, msg) = finished_job(&conn, T0);
        let inb = inbound(&conn, "done", T0);
        assert_eq!(
            purge(&mut conn, &config, T0 + 3650 * DAY).unwrap(),
            Purged::default()
        );
        assert!(exists(&conn, "jobs", job));
        assert!(exists(&conn, "messages", msg) && exists(&conn, "messages", inb));
    }

    /// The purge's job query is a range of the partial age index, in
    /// order, with no sort.
    #[test]
    fn finished_jobs_are_found_by_the_age_index() {
        let (_d, _config, conn) = setup();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {FINISHED_JOBS}"))
            .unwrap()
            .query_map(params![1, 0, 0, 200], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("jobs_done_by_age")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// Every INTEGER column named `message_id` or `job_id` declares its
    /// foreign key (so the clean-up sees it), and every column referring to
    /// messages or jobs is indexed (so the checks are lookups).
    #[test]
    fn every_reference_to_a_body_or_job_is_declared_and_indexed() {
        let (_d, _config, conn) = setup();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut declared = referrers(&conn, "messages").unwrap();
        declared.extend(referrers(&conn, "jobs").unwrap());
        for t in &tables {
            let cols: Vec<(String, String)> = conn
                .prepare(&format!("SELECT name, type FROM pragma_table_info('{t}')"))
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            for (c, ty) in cols {
                // loose links, no body hangs on them: digest_entries.job_id
                // (a missing job counts as fanned out, see 0061) and
                // bounce_events.job_id (the event keeps what it needs)
                let loose = c == "job_id" && (t == "digest_entries" || t == "bounce_events");
                if ["message_id", "job_id"].contains(&c.as_str())
                    && ty.eq_ignore_ascii_case("INTEGER")
                    && !loose
                {
                    assert!(
                        declared.contains(&(t.clone(), c.clone())),
                        "{t}.{c} refers to a body or job without a FOREIGN KEY: \
                         the retention clean-up would not see it"
                    );
                }
            }
        }
        for (t, c) in declared {
            let first_cols: Vec<String> = conn
                .prepare(&format!(
                    "SELECT (SELECT name FROM pragma_index_info(l.name) WHERE seqno = 0)
                     FROM pragma_index_list('{t}') l"
                ))
                .unwrap()
                .query_map([], |r| r.get::<_, Option<String>>(0))
                .unwrap()
                .filter_map(|r| r.unwrap())
                .collect();
            assert!(
                first_cols.contains(&c),
                "{t}.{c} refers to messages or jobs but has no index starting with it"
            );
        }
    }
}
