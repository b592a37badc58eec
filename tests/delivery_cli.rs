//! `listd queue` and `listd queue retry`, run as the real binary on a store
//! the delivery worker has written to (over SMTP to the capturing sink).

mod common;

use common::sink::Sink;
use listd::config::Config;
use listd::store::{self, outbound};
use std::process::Command;
use std::sync::Arc;

fn listd(cfg: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_listd"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn count(out: &str, name: &str) -> i64 {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{out}"))
}

#[tokio::test]
async fn queue_shows_counts_and_retry_makes_deferred_due() {
    let sink = Sink::start();
    sink.reply_to_rcpt("busy@example.org", "451 4.2.1 try later");
    sink.reply_to_rcpt("gone@example.org", "550 5.1.1 no such user");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("listd.yaml");
    std::fs::write(
        &cfg,
        format!(
            "domain: lists.example.org\nrelay:\n  host: 127.0.0.1\n  port: {}\n",
            sink.port()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/dev.yaml"), "description: dev\n").unwrap();
    let config = Arc::new(Config::load(&cfg).unwrap());

    // empty store: every queue at 0
    let (ok, out, err) = listd(&cfg, &["queue"]);
    assert!(ok, "{err}");
    for q in [
        "incoming", "active", "deferred", "corrupt", "sent", "failed",
    ] {
        assert_eq!(count(&out, q), 0, "{q}");
    }

    let now = store::now();
    {
        let conn = store::open(&config.db_path()).unwrap();
        let job = outbound::NewJob {
            list: Some("dev"),
            kind: outbound::JobKind::Notice,
            env_from: "dev-owner@lists.example.org",
            verp: false,
            bytes: b"Subject: n\r\n\r\nx\r\n",
        };
        outbound::enqueue(
            &conn,
            &job,
            &[
                "ok@example.org",
                "busy@example.org",
                "gone@example.org",
                "later@other.org",
            ],
            now,
        )
        .unwrap();
    }
    // queued, not yet tried
    let (ok, out, _) = listd(&cfg, &["queue"]);
    assert!(ok);
    assert_eq!(count(&out, "active"), 4);

    listd::delivery::deliver_due(config.clone(), now)
        .await
        .unwrap();
    let (ok, out, _) = listd(&cfg, &["queue"]);
    assert!(ok);
    assert_eq!(count(&out, "sent"), 2, "{out}");
    assert_eq!(count(&out, "deferred"), 1, "{out}");
    assert_eq!(count(&out, "failed"), 1, "{out}");
    assert_eq!(count(&out, "active"), 0, "{out}");
    assert!(out.contains("next try in"), "{out}");

    let (ok, out, _) = listd(&cfg, &["queue", "retry"]);
    assert!(ok);
    assert!(out.starts_with("1 deferred"), "{out}");
    // due now: a pass at `now` (which a fake clock would not otherwise reach) retries it
    sink.reply_to_rcpt_times("busy@example.org", "451 4.2.1 try later", 0);
    let s = listd::delivery::deliver_due(config.clone(), store::now())
        .await
        .unwrap();
    assert_eq!(s.record.sent, 1);
    let (_, out, _) = listd(&cfg, &["queue"]);
    assert_eq!(count(&out, "deferred"), 0);
    assert_eq!(count(&out, "sent"), 3);
}

#[test]
fn queue_with_a_broken_config_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("listd.yaml");
    std::fs::write(&cfg, "domain: lists.example.org\nrelay:\n  port: nope\n").unwrap();
    let (ok, _, err) = listd(&cfg, &["queue"]);
    assert!(!ok);
    assert!(err.contains("listd.yaml") && err.contains("port"), "{err}");
}
