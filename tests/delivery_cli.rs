//! `listd queue`, `listd queue retry` and `listd queue purge`, run as the
//! real binary on a store the delivery worker has written to (over SMTP to
//! the capturing sink), and the daemon's own retention clean-up.

mod common;

use common::sink::Sink;
use common::{write_site, Listd};
use listd::config::Config;
use listd::store::{self, outbound};
use std::sync::Arc;

fn count(out: &str, name: &str) -> i64 {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{out}"))
}

/// Writes listd.yaml (relay at the sink's `port`, then `extra` YAML) and
/// lists/dev.yaml in `dir`; returns the config path and the loaded config.
fn write_config(
    dir: &std::path::Path,
    port: u16,
    extra: &str,
) -> (std::path::PathBuf, Arc<Config>) {
    let global =
        format!("domain: lists.example.org\nrelay:\n  host: 127.0.0.1\n  port: {port}\n{extra}");
    let cfg = write_site(dir, &global, &[("dev.yaml", "description: dev\n")]);
    let config = Arc::new(Config::load(&cfg).unwrap());
    (cfg, config)
}

#[tokio::test]
async fn queue_shows_counts_and_retry_makes_deferred_due() {
    let sink = Sink::start();
    sink.reply_to_rcpt("busy@example.org", "451 4.2.1 try later");
    sink.reply_to_rcpt("gone@example.org", "550 5.1.1 no such user");
    let dir = tempfile::tempdir().unwrap();
    let (cfg, config) = write_config(dir.path(), sink.port(), "");

    // empty store: every queue at 0
    let (code, out, err) = Listd::at(&cfg).run(&["queue"]);
    assert!(code == 0, "{err}");
    for q in [
        "incoming", "active", "deferred", "hold", "corrupt", "sent", "failed",
    ] {
        assert_eq!(count(&out, q), 0, "{q}");
    }

    let now = store::now();
    queue_notice(
        &config,
        &[
            "ok@example.org",
            "busy@example.org",
            "gone@example.org",
            "later@other.org",
        ],
        now,
    );
    // queued, not yet tried
    let (code, out, _) = Listd::at(&cfg).run(&["queue"]);
    assert!(code == 0);
    assert_eq!(count(&out, "active"), 4);

    listd::delivery::deliver_due(config.clone(), now)
        .await
        .unwrap();
    let (code, out, _) = Listd::at(&cfg).run(&["queue"]);
    assert!(code == 0);
    assert_eq!(count(&out, "sent"), 2, "{out}");
    assert_eq!(count(&out, "deferred"), 1, "{out}");
    assert_eq!(count(&out, "failed"), 1, "{out}");
    assert_eq!(count(&out, "active"), 0, "{out}");
    assert!(out.contains("next try in"), "{out}");

    let (code, out, _) = Listd::at(&cfg).run(&["queue", "retry"]);
    assert!(code == 0);
    assert!(out.starts_with("1 deferred"), "{out}");
    // due now: a pass at `now` (which a fake clock would not otherwise reach) retries it
    sink.reply_to_rcpt_times("busy@example.org", "451 4.2.1 try later", 0);
    let s = listd::delivery::deliver_due(config.clone(), store::now())
        .await
        .unwrap();
    assert_eq!(s.record.sent, 1);
    let (_, out, _) = Listd::at(&cfg).run(&["queue"]);
    assert_eq!(count(&out, "deferred"), 0);
    assert_eq!(count(&out, "sent"), 3);
}

#[test]
fn queue_with_a_broken_config_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("listd.yaml");
    std::fs::write(&cfg, "domain: lists.example.org\nrelay:\n  port: nope\n").unwrap();
    let (code, _, err) = Listd::at(&cfg).run(&["queue"]);
    assert!(code != 0);
    assert!(err.contains("listd.yaml") && err.contains("port"), "{err}");
}

/// Queues a notice of list dev to `rcpts` at `at`; returns the job id.
fn queue_notice(config: &Config, rcpts: &[&str], at: i64) -> i64 {
    let conn = store::open(&config.db_path()).unwrap();
    let job = outbound::NewJob {
        list: Some("dev"),
        kind: outbound::JobKind::Notice,
        env_from: "dev-owner@lists.example.org",
        verp: false,
        bytes: b"Subject: n\r\n\r\nx\r\n",
    };
    outbound::enqueue(&conn, &job, rcpts, at).unwrap()
}

/// Queues a notice to `rcpts` at `at` and delivers it to the sink at `at`
/// (a fake clock); returns the job id.
async fn delivered_at(config: &Arc<Config>, rcpts: &[&str], at: i64) -> i64 {
    let job_id = queue_notice(config, rcpts, at);
    listd::delivery::deliver_due(config.clone(), at)
        .await
        .unwrap();
    job_id
}

fn rows(config: &Config, sql: &str) -> i64 {
    let conn = store::open(&config.db_path()).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn queue_purge_deletes_old_finished_rows_and_bodies() {
    let sink = Sink::start();
    sink.reply_to_rcpt("gone@example.org", "550 5.1.1 no such user");
    let dir = tempfile::tempdir().unwrap();
    let (cfg, config) = write_config(dir.path(), sink.port(), "delivery:\n  retain_days: 10\n");
    assert_eq!(config.delivery.retain_days, 10);
    let now = store::now();
    let old = now - 20 * 86_400;
    let old_job = delivered_at(&config, &["a@example.org", "gone@example.org"], old).await;
    let recent_job = delivered_at(&config, &["b@example.org"], now - 5 * 86_400).await;
    let newest_job = delivered_at(&config, &["c@example.org"], now).await;
    assert_eq!(sink.delivered_count(), 3);
    assert_eq!(
        rows(&config, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        3
    );

    let (code, out, err) = Listd::at(&cfg).run(&["queue", "purge"]);
    assert!(code == 0, "{err}");
    assert!(
        out.contains(
            "more than 10 days ago: 1 jobs, 0 batches, 2 recipient rows, 0 incoming rows \
             (after 1 hours), 0 held posts, 0 digest entries, 0 digest bodies' records, \
             1 message bodies"
        ),
        "{out}"
    );
    let ids = |sql: &str| {
        let conn = store::open(&config.db_path()).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let v: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v
    };
    assert_eq!(
        ids("SELECT id FROM jobs ORDER BY id"),
        vec![recent_job, newest_job]
    );
    assert_eq!(rows(&config, "SELECT COUNT(*) FROM messages"), 2);
    assert!(!ids("SELECT job_id FROM job_rcpts").contains(&old_job));
    // the give-up/5xx record for bounce processing is not queue state: it stays
    assert_eq!(rows(&config, "SELECT COUNT(*) FROM bounce_events"), 1);

    // --days overrides the config; a second run finds the 5-day-old job
    let (code, out, _) = Listd::at(&cfg).run(&["queue", "purge", "--days", "2"]);
    assert!(code == 0);
    assert!(out.contains("more than 2 days ago: 1 jobs"), "{out}");
    assert_eq!(ids("SELECT id FROM jobs"), vec![newest_job]);
    let (code, _, err) = Listd::at(&cfg).run(&["queue", "purge", "--days", "0"]);
    assert!(code != 0, "--days 0 is refused");
    assert!(err.contains("--days"), "{err}");
}

#[tokio::test]
async fn queue_purge_with_retention_off_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("listd.yaml");
    std::fs::write(
        &cfg,
        "domain: lists.example.org\ndelivery:\n  retain_days: 0\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    let (code, out, err) = Listd::at(&cfg).run(&["queue", "purge"]);
    assert!(code == 0, "{err}");
    assert!(out.contains("retention is off"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_cleans_up_old_finished_rows_at_start() {
    let sink = Sink::start();
    let env = common::TestEnv::builder()
        .relay_port(sink.port())
        .set("delivery", "retain_days", "7")
        .list("dev", "description: dev\n")
        .build();
    let config = Arc::new(env.config());
    let old = store::now() - 30 * 86_400;
    let old_job = delivered_at(&config, &["a@example.org"], old).await;
    let kept = delivered_at(&config, &["b@example.org"], store::now()).await;
    assert_eq!(rows(&config, "SELECT COUNT(*) FROM jobs"), 2);
    let daemon = env.start().await;
    let gone = common::wait_until(std::time::Duration::from_secs(20), || {
        rows(
            &config,
            &format!("SELECT COUNT(*) FROM jobs WHERE id = {old_job}"),
        ) == 0
    })
    .await;
    assert!(gone, "the delivery worker purged the old job");
    assert_eq!(
        rows(
            &config,
            &format!("SELECT COUNT(*) FROM jobs WHERE id = {kept}")
        ),
        1
    );
    assert_eq!(rows(&config, "SELECT COUNT(*) FROM messages"), 1);
    daemon.shutdown().await;
}

/// A distributed post keeps one body in the database once
/// `retain_incoming_hours` have passed: the received copy and its incoming
/// row go, the decorated copy its delivery used stays until `retain_days`;
/// a held post keeps its received copy, and the archive keeps the post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_bodies_go_after_retain_incoming_hours() {
    use common::{send, wait_until, TestEnv, DOMAIN};
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "posting: members\nowners: [owner@example.org]\n")
        .build();
    env.add_members("dev", &["ann@example.org", "bob@example.org"]);
    let daemon = env.start().await;
    let list = format!("dev@{DOMAIN}");
    for (from, subject) in [("ann@example.org", "kept"), ("eve@example.com", "held")] {
        send(
            daemon.smtp_addr(),
            from,
            &[&list],
            &common::message(from, &list, subject, "hello"),
        )
        .await
        .expect(250);
    }
    assert!(
        wait_until(std::time::Duration::from_secs(30), || {
            env.count("incoming", "state <> 'done'") == 0
                && env.count("jobs", "state <> 'done'") == 0
        })
        .await
    );
    daemon.shutdown().await;
    let config = env.config();
    let count = |sql: &str| -> i64 {
        let conn = store::open(&config.db_path()).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    let held_body = "SELECT COUNT(*) FROM messages m JOIN held h ON h.message_id = m.id";
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE direction = 'in'"),
        2
    );
    assert_eq!(count(held_body), 1);
    let out_before = count("SELECT COUNT(*) FROM messages WHERE direction = 'out'");

    let mut conn = store::open(&config.db_path()).unwrap();
    let now = store::now();
    // within the hour nothing goes
    let p = listd::delivery::retention::purge(&mut conn, &config, now + 1800).unwrap();
    assert_eq!((p.incoming, p.messages), (0, 0));
    // two hours on: the distributed post's received copy and rows are gone
    let p = listd::delivery::retention::purge(&mut conn, &config, now + 2 * 3600).unwrap();
    assert_eq!(p.messages, 1, "{p:?}");
    assert!(p.incoming >= 1, "{p:?}");
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE direction = 'in'"),
        1
    );
    assert_eq!(count(held_body), 1, "the held post keeps its body");
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE direction = 'out'"),
        out_before,
        "what listd wrote waits for retain_days"
    );
    assert_eq!(count("SELECT COUNT(*) FROM archive_index"), 1);
    // `retain_incoming_hours` is never later than `retain_days: 0` (keep all)
    let mut keep = config.clone();
    keep.delivery.retain_days = 0;
    assert_eq!(
        listd::delivery::retention::incoming_cutoff(&keep, now),
        None
    );
}
