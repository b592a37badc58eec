//! The pipeline handles incoming rows in batches (one transaction, one
//! SAVEPOINT per row) on a real SQLite file: a row whose handler fails has
//! its own work rolled back and its failure recorded while the rest of the
//! batch commits; a batch whose transaction is lost falls back to one
//! transaction per row; and a batch stops at `BATCH_ROWS`. The worker
//! (`pipeline::run`) goes from batch to batch without waiting while rows are
//! due, wakes delivery, and on shutdown finishes what is due.

mod common;

use common::{TestEnv, DOMAIN};
use listd::pipeline;
use listd::routing::Route;
use listd::store::rusqlite::Connection;
use listd::store::spool::{insert_inbound, Envelope};
use listd::store::IntakeFlow;

fn env() -> TestEnv {
    TestEnv::builder()
        .list("dev", "owners: [owner@example.org]\n")
        .list("dev2", "owners: [other@example.org]\n")
        .list("solo", "description: no owners\n")
        .build()
}

/// Spools one message to `LIST-owner@`; returns its incoming row id.
fn spool_owner_mail(conn: &Connection, list: &str) -> i64 {
    let env = Envelope {
        mail_from: "ann@example.org".into(),
        rcpts: vec![(
            format!("{list}-owner@{DOMAIN}"),
            Route::Owner { list: list.into() }.into(),
        )],
        client_ip: Some("192.0.2.1".into()),
        helo: "client.example".into(),
        protocol: "ESMTP".into(),
    };
    let bytes = format!("From: ann@example.org\r\nSubject: to {list}\r\n\r\nhi\r\n");
    let mid = insert_inbound(conn, &env, bytes.as_bytes(), 1_000).expect("spool");
    conn.query_row(
        "SELECT id FROM incoming WHERE message_id = ?1",
        [mid],
        |r| r.get(0),
    )
    .expect("incoming row")
}

fn state(conn: &Connection, id: i64) -> (String, i64, Option<String>) {
    conn.query_row(
        "SELECT state, attempts, error FROM incoming WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("row")
}

#[test]
fn a_failing_row_is_rolled_back_alone_and_the_batch_commits() {
    let e = env();
    let mut conn = e.store();
    // dev2's forward fails after its outbound body was written
    conn.execute_batch(
        "CREATE TRIGGER refuse_dev2 BEFORE INSERT ON jobs WHEN NEW.list = 'dev2'
         BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;",
    )
    .unwrap();
    let a = spool_owner_mail(&conn, "dev");
    let b = spool_owner_mail(&conn, "solo");
    let c = spool_owner_mail(&conn, "dev2");
    let d = spool_owner_mail(&conn, "dev");
    let handled =
        pipeline::process_batch(&e.ctx(), &mut conn, &IntakeFlow::default(), 2_000, 10).unwrap();
    assert_eq!(handled, 4, "all four in one batch");
    assert_eq!(state(&conn, a).0, "done");
    assert_eq!(state(&conn, d).0, "done");
    let (st, _, why) = state(&conn, b);
    assert_eq!(st, "corrupt");
    assert!(why.unwrap_or_default().contains("no owners"));
    let (st, attempts, why) = state(&conn, c);
    assert_eq!(
        (st.as_str(), attempts),
        ("incoming", 1),
        "deferred for a retry"
    );
    assert!(why.unwrap_or_default().contains("refused by test trigger"));
    // the failed row's own writes are gone: two forwards, two bodies
    assert_eq!(e.count("jobs", "kind = 'forward'"), 2);
    assert_eq!(e.count("messages", "direction = 'out'"), 2);
    // the deferred row is not due yet; later it is, and succeeds alone
    assert_eq!(
        pipeline::process_batch(&e.ctx(), &mut conn, &IntakeFlow::default(), 2_001, 10).unwrap(),
        0
    );
    conn.execute_batch("DROP TRIGGER refuse_dev2").unwrap();
    assert_eq!(pipeline::drain(&e.ctx(), &mut conn, 3_000).unwrap(), 1);
    assert_eq!(state(&conn, c).0, "done");
    assert_eq!(e.count("jobs", "kind = 'forward'"), 3);
}

#[test]
fn a_lost_batch_transaction_falls_back_to_one_transaction_per_row() {
    let e = env();
    let mut conn = e.store();
    let a = spool_owner_mail(&conn, "dev");
    let b = spool_owner_mail(&conn, "dev");
    let c = spool_owner_mail(&conn, "dev");
    // marking b done rolls back the whole transaction it is in
    conn.execute_batch(&format!(
        "CREATE TRIGGER lose_tx BEFORE UPDATE OF state ON incoming
         WHEN NEW.id = {b} AND NEW.state = 'done'
         BEGIN SELECT RAISE(ROLLBACK, 'transaction lost in test'); END;"
    ))
    .unwrap();
    let handled =
        pipeline::process_batch(&e.ctx(), &mut conn, &IntakeFlow::default(), 2_000, 10).unwrap();
    assert_eq!(handled, 3);
    assert_eq!(state(&conn, a).0, "done");
    assert_eq!(state(&conn, c).0, "done");
    let (st, attempts, why) = state(&conn, b);
    assert_eq!((st.as_str(), attempts), ("incoming", 1));
    assert!(why.unwrap_or_default().contains("transaction lost in test"));
    // b's forward was rolled back with it; a's and c's committed once each
    assert_eq!(e.count("jobs", "kind = 'forward'"), 2);
    assert_eq!(e.count("messages", "direction = 'out'"), 2);
}

#[test]
fn a_batch_takes_at_most_max_rows_and_drain_takes_them_all() {
    let e = env();
    let mut conn = e.store();
    let n = pipeline::BATCH_ROWS + 7;
    let ids: Vec<i64> = (0..n).map(|_| spool_owner_mail(&conn, "dev")).collect();
    assert_eq!(
        pipeline::process_batch(&e.ctx(), &mut conn, &IntakeFlow::default(), 2_000, 5).unwrap(),
        5
    );
    assert_eq!(e.count("incoming", "state = 'done'"), 5);
    // the oldest go first
    assert!(ids[..5].iter().all(|&id| state(&conn, id).0 == "done"));
    // one row in a transaction of its own
    assert_eq!(
        pipeline::process_one(&e.ctx(), &mut conn, 2_000).unwrap(),
        pipeline::PipelineStep::Worked
    );
    assert_eq!(state(&conn, ids[5]).0, "done");
    assert_eq!(pipeline::drain(&e.ctx(), &mut conn, 2_000).unwrap(), n - 6);
    assert_eq!(
        pipeline::process_one(&e.ctx(), &mut conn, 2_000).unwrap(),
        pipeline::PipelineStep::Idle
    );
    assert_eq!(e.count("incoming", "state = 'done'"), n as i64);
    assert_eq!(e.count("jobs", "kind = 'forward'"), n as i64);
}

#[test]
fn a_batch_ends_at_the_next_row_while_the_spool_writer_waits() {
    let e = env();
    let mut conn = e.store();
    let ids: Vec<i64> = (0..10).map(|_| spool_owner_mail(&conn, "dev")).collect();
    let flow = IntakeFlow::default();
    let waiting = flow.wait();
    assert_eq!(
        pipeline::process_batch(&e.ctx(), &mut conn, &flow, 2_000, 10).unwrap(),
        1,
        "one row, then the lock goes to the spool writer"
    );
    // the rest keep their claims clean and are handled once it has gone
    assert!(ids[1..]
        .iter()
        .all(|&id| state(&conn, id) == ("incoming".into(), 0, None)));
    assert_eq!(e.count("incoming", "inflight > 0"), 0);
    drop(waiting);
    assert_eq!(
        pipeline::process_batch(&e.ctx(), &mut conn, &flow, 2_000, 10).unwrap(),
        9
    );
    assert_eq!(e.count("incoming", "state = 'done'"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_batch_after_batch_and_wakes_delivery() {
    let e = env();
    let n = 2 * pipeline::BATCH_ROWS + 3;
    {
        let conn = e.store();
        for _ in 0..n {
            spool_owner_mail(&conn, "dev");
        }
    }
    let wakers = listd::plumbing::Wakers::default();
    let delivery = wakers.delivery.clone();
    let woken = tokio::spawn(async move { delivery.notified().await });
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(pipeline::run(e.ctx(), wakers, rx));
    // well before the worker's 5 s idle timer: no wake-up is sent, so only
    // going on from batch to batch gets every row done in time
    assert!(
        common::wait_until(std::time::Duration::from_secs(4), || e
            .count("incoming", "state = 'done'")
            == n as i64)
        .await,
        "{} of {n} done",
        e.count("incoming", "state = 'done'")
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), woken)
        .await
        .expect("delivery woken")
        .unwrap();
    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_the_worker_finishes_what_is_due_then_stops() {
    let e = env();
    let n = pipeline::BATCH_ROWS + 5;
    {
        let conn = e.store();
        for _ in 0..n {
            spool_owner_mail(&conn, "dev");
        }
    }
    let (_stop, rx) = tokio::sync::watch::channel(true);
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        pipeline::run(e.ctx(), listd::plumbing::Wakers::default(), rx),
    )
    .await
    .expect("the worker stops")
    .unwrap();
    assert_eq!(e.count("incoming", "state = 'done'"), n as i64);
}
