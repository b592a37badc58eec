//! kill -9 of `listd serve` in the middle of a fan-out, then a restart of
//! the real binary: every recipient is delivered, and the only duplicates
//! are recipients of batches that were in flight (`sending`) at the kill.

mod common;

use common::sink::Sink;
use listd::config::Config;
use listd::delivery;
use listd::store;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MEMBERS: usize = 3000;

fn write_config(dir: &Path, relay_port: u16) -> std::path::PathBuf {
    let global = format!(
        "domain: lists.example.org\nsmtp:\n  listen: [\"127.0.0.1:0\"]\n\
         relay:\n  host: 127.0.0.1\n  port: {relay_port}\n  max_recipients: 10\n  connections: 4\n  timeout_secs: 5\n"
    );
    let big = "description: big\ndigest:\n  enabled: false\n";
    common::write_site(dir, &global, &[("big.yaml", big)])
}

fn serve(cfg: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_listd"))
        .arg("--config")
        .arg(cfg)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill9_mid_fanout_then_restart_loses_no_recipient() {
    let sink = Sink::start();
    sink.set_data_delay(Duration::from_millis(3));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), sink.port());
    let c = Config::load(&cfg).unwrap();
    let all: Vec<String> = (0..MEMBERS)
        .map(|i| format!("u{i:05}@d{}.example", i % 7))
        .collect();
    {
        let mut conn = store::open(&c.db_path()).unwrap();
        let tx = conn.transaction().unwrap();
        for a in &all {
            let a = listd::address::Address::parse(a).unwrap();
            store::members::add(
                &tx,
                "big",
                &a.to_string(),
                &a.key(),
                None,
                store::members::DeliveryMode::Each,
                1,
            )
            .unwrap();
        }
        let body = b"From: a@example.org\r\nSubject: crash\r\n\r\nbody\r\n";
        delivery::enqueue_post(&tx, &c, "big", body, store::now()).unwrap();
        tx.commit().unwrap();
    }
    let mut child = serve(&cfg);
    // kill it once a good part, but not all, has been delivered
    let start = Instant::now();
    while sink.delivered_count() < MEMBERS / 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the daemon made no progress"
        );
        assert!(child.try_wait().unwrap().is_none(), "the daemon died");
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
    // restart the real daemon: it recovers and finishes
    let mut child = serve(&cfg);
    let finished = {
        let start = Instant::now();
        loop {
            let conn = store::open(&c.db_path()).unwrap();
            let state: String = conn
                .query_row("SELECT state FROM jobs", [], |r| r.get(0))
                .unwrap();
            if state == "done" {
                break true;
            }
            if start.elapsed() > Duration::from_secs(60) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // SIGTERM: a clean stop
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(finished, "the restarted daemon did not finish the job");
    assert!(
        status.success(),
        "listd serve exited with {status} after SIGTERM"
    );
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
}
