//! kill -9 in the middle of a fan-out, then a restart: every recipient is
//! delivered, and the only duplicates are recipients of batches that were
//! in flight (`sending`) at the kill.
//!
//! The process killed runs the real delivery worker (`delivery::run`): it is
//! this test binary re-executed on the ignored test `crash_child`.

mod common;

use common::sink::Sink;
use listd::config::Config;
use listd::delivery;
use listd::store;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MEMBERS: usize = 3000;

fn config(dir: &Path, port: u16) -> Config {
    let mut c = Config::for_tests("lists.example.org", dir);
    c.relay.host = "127.0.0.1".into();
    c.relay.port = port;
    c.relay.max_recipients = 10;
    c.relay.connections = 4;
    c.relay.timeout_secs = 5;
    let l = listd::config::ListConfig::parse(Path::new("big.yaml"), "big", "").unwrap();
    c.lists.insert("big".into(), l);
    c
}

/// Runs the delivery worker until killed (only when re-executed by the parent).
#[test]
#[ignore = "child process of kill9_mid_fanout_then_restart_loses_no_recipient"]
fn crash_child() {
    let (Ok(dir), Ok(port)) = (std::env::var("CRASH_DIR"), std::env::var("CRASH_PORT")) else {
        return;
    };
    let c = Arc::new(config(Path::new(&dir), port.parse().unwrap()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_tx, rx) = tokio::sync::watch::channel(false);
        delivery::run(c, listd::pipeline::Wakers::default(), rx)
            .await
            .unwrap();
    });
}

#[test]
fn kill9_mid_fanout_then_restart_loses_no_recipient() {
    let sink = Sink::start();
    sink.set_data_delay(Duration::from_millis(3));
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), sink.port());
    let all: Vec<String> = (0..MEMBERS)
        .map(|i| format!("u{i:05}@d{}.example", i % 7))
        .collect();
    {
        let mut conn = store::open(&c.db_path()).unwrap();
        let tx = conn.transaction().unwrap();
        for a in &all {
            let a = listd::address::Address::parse(a).unwrap();
            store::members::add(&tx, "big", &a, None, store::members::DeliveryMode::Each, 1)
                .unwrap();
        }
        let body = b"From: a@example.org\r\nSubject: crash\r\n\r\nbody\r\n";
        delivery::enqueue_post(&tx, &c, "big", body, store::now()).unwrap();
        tx.commit().unwrap();
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--ignored", "--nocapture"])
        .env("CRASH_DIR", dir.path())
        .env("CRASH_PORT", sink.port().to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // kill it once a good part, but not all, has been delivered
    let start = Instant::now();
    while sink.delivered_count() < MEMBERS / 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "child made no progress"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = sink.delivered_count();
    assert!(
        before < MEMBERS,
        "killed too late to test anything ({before})"
    );
    // what was in flight at the kill: the only recipients that may come twice
    let conn = store::open(&c.db_path()).unwrap();
    let in_flight: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(n), 0) FROM batches WHERE state = 'sending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    // restart: the worker recovers and finishes
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stats = rt
        .block_on(delivery::deliver_due(Arc::new(c.clone()), store::now()))
        .unwrap();
    assert!(stats.relay_down.is_none());
    let delivered = sink.delivered();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in &delivered {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    for a in &all {
        assert!(counts.contains_key(a.as_str()), "{a} was never delivered");
    }
    assert_eq!(counts.len(), MEMBERS, "nothing but members was delivered");
    let dups: usize = counts.values().map(|n| n - 1).sum();
    eprintln!("delivered before the kill: {before}; in flight: {in_flight}; duplicates: {dups}");
    assert!(
        dups as i64 <= in_flight,
        "{dups} duplicates, but only {in_flight} recipients were in flight"
    );
    let conn = store::open(&c.db_path()).unwrap();
    let state: String = conn
        .query_row("SELECT state FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "done");
}
