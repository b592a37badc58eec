//! The outbound queue over real SMTP to the capturing sink: explicit
//! recipients, per-RCPT verdicts in a batch, 4xx deferral with backoff on a
//! fake clock, give-up, a relay that is down and comes back.

mod common;

use common::sink::Sink;
use listd::config::Config;
use listd::delivery;
use listd::store::{self, outbound};
use std::sync::Arc;

const T0: i64 = 1_700_000_000;

fn config_for(dir: &std::path::Path, relay: std::net::SocketAddr) -> Config {
    let mut c = Config::for_tests("lists.example.org", dir);
    c.relay.host = relay.ip().to_string();
    c.relay.port = relay.port();
    c.relay.timeout_secs = 5;
    c
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: listd <majordomo@lists.example.org>\r\nTo: someone\r\nSubject: {subject}\r\nMessage-ID: <{subject}@lists.example.org>\r\n\r\nHello.\r\n.leading dot\r\n"
    )
    .into_bytes()
}

fn enqueue(config: &Config, rcpts: &[&str], subject: &str, now: i64) -> i64 {
    let conn = store::open(&config.db_path()).unwrap();
    let bytes = message(subject);
    let job = outbound::NewJob {
        list: None,
        kind: outbound::JobKind::Reply,
        env_from: "majordomo-owner@lists.example.org",
        verp: false,
        bytes: &bytes,
    };
    outbound::enqueue(&conn, &job, rcpts, now).unwrap()
}

fn states(config: &Config) -> Vec<(String, String)> {
    let conn = store::open(&config.db_path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT rcpt, state FROM job_rcpts ORDER BY rcpt")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[tokio::test]
async fn explicit_recipients_are_delivered_byte_exact() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr()));
    enqueue(
        &config,
        &["a@example.org", "b@example.org", "c@other.org"],
        "hello",
        T0,
    );
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(stats.record.sent, 3);
    let txs = sink.transactions();
    // grouped by domain: one transaction per domain
    assert_eq!(txs.len(), 2);
    assert!(txs
        .iter()
        .all(|t| t.mail_from == "majordomo-owner@lists.example.org"));
    let mut all = sink.delivered();
    all.sort();
    assert_eq!(all, vec!["a@example.org", "b@example.org", "c@other.org"]);
    assert_eq!(
        txs[0].data,
        message("hello"),
        "body arrives byte-exact (dot-stuffing undone)"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&txs[0].data)
        .unwrap();
    assert_eq!(parsed.subject(), Some("hello"));
    assert!(states(&config).iter().all(|(_, s)| s == "sent"));
    // the job is done and nothing is due any more
    let again = delivery::deliver_due(config.clone(), T0 + 10)
        .await
        .unwrap();
    assert_eq!(again.units, 0);
    let conn = store::open(&config.db_path()).unwrap();
    let st: String = conn
        .query_row("SELECT state FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(st, "done");
}
