//! Digests through the running daemon: issues queued by the digest worker
//! and by the count trigger go out through the delivery worker to the
//! capturing sink (the relay), with the list's envelope sender, one body
//! per format, and parse back as digests.

mod common;

use common::sink::Sink;
use common::{wait_until, TestEnv, DOMAIN};
use listd::digest;
use listd::store::{self, members, members::DeliveryMode};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::time::Duration;

fn add(env: &TestEnv, list: &str, addr: &str, mode: DeliveryMode) {
    let conn = env.store();
    let a = members::parse_address(addr).unwrap();
    members::add(&conn, list, &a, None, mode, store::now()).unwrap();
}

/// Records posts the way `distribute` does (bytes stored once, then
/// `digest::accumulate` in the same transaction), with a given config.
fn record(env: &TestEnv, ctx: &listd::pipeline::Ctx, subjects: &[&str]) -> Vec<Vec<u8>> {
    let mut conn = env.store();
    let list = ctx.config.list("dev").unwrap();
    let mut out = Vec::new();
    for s in subjects {
        let bytes =
            common::message("ann@example.org", &format!("dev@{DOMAIN}"), s, "body").into_bytes();
        let tx = conn.transaction().unwrap();
        let id = store::spool::insert_outbound(&tx, "dev-bounces@x", &bytes, store::now()).unwrap();
        digest::accumulate(ctx, &tx, list, id, store::now()).unwrap();
        tx.commit().unwrap();
        out.push(bytes);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_digest_worker_queues_due_issues_and_delivery_sends_them() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "digest:\n  max_messages: 2\n  schedule: none\n")
        .build();
    add(&env, "dev", "mime@example.org", DeliveryMode::DigestMime);
    add(&env, "dev", "plain@example.net", DeliveryMode::DigestPlain);
    add(&env, "dev", "each@example.org", DeliveryMode::Each);
    // three posts recorded while the list allowed 100 per issue ...
    let mut ctx = env.ctx();
    let mut cfg = (*ctx.config).clone();
    cfg.lists.get_mut("dev").unwrap().digest.max_messages = 100;
    ctx.config = std::sync::Arc::new(cfg);
    let posts = record(&env, &ctx, &["one", "two", "three"]);
    assert_eq!(digest::pending(&env.store(), "dev").unwrap().posts, 3);
    // ... so the daemon's first tick finds the count trigger due
    let daemon = env.start().await;
    assert!(
        wait_until(Duration::from_secs(20), || sink.transactions().len() >= 2).await,
        "the digests reach the relay: {:?}",
        sink.transactions().len()
    );
    let txs = sink.transactions();
    assert_eq!(txs.len(), 2);
    for t in &txs {
        assert_eq!(t.mail_from, format!("dev-bounces@{DOMAIN}"));
        assert_eq!(t.rcpts.len(), 1);
    }
    let mime = txs
        .iter()
        .find(|t| t.rcpts[0] == "mime@example.org")
        .unwrap();
    let plain = txs
        .iter()
        .find(|t| t.rcpts[0] == "plain@example.net")
        .unwrap();
    let m = MessageParser::default().parse(&mime.data).unwrap();
    assert_eq!(m.subject(), Some("dev Digest, Vol 1, Issue 1"));
    let PartType::Multipart(ch) = &m.parts[0].body else {
        panic!("not multipart")
    };
    let PartType::Multipart(parts) = &m.parts[ch[1] as usize].body else {
        panic!("no digest part")
    };
    assert_eq!(parts.len(), 3);
    for (id, original) in parts.iter().zip(&posts) {
        let PartType::Message(inner) = &m.parts[*id as usize].body else {
            panic!("not a message")
        };
        assert_eq!(
            inner.raw_message(),
            &original[..],
            "byte-exact through SMTP"
        );
    }
    let p = MessageParser::default().parse(&plain.data).unwrap();
    assert_eq!(p.content_type().unwrap().ctype(), "text");
    let body = p.body_text(0).unwrap();
    assert!(
        body.contains("End of dev Digest, Vol 1, Issue 1\r\n*********************************"),
        "{body}"
    );
    // the jobs are done once the relay accepted them
    assert!(
        wait_until(Duration::from_secs(10), || env
            .count("jobs", "kind = 'digest' AND state = 'done'")
            == 2)
        .await
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listd_digest_send_reaches_the_relay_through_a_running_daemon() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "dev",
            "digest:\n  max_messages: 50\n  schedule: daily 06:00\n",
        )
        .build();
    add(&env, "dev", "mime@example.org", DeliveryMode::DigestMime);
    let daemon = env.start().await;
    record(&env, &env.ctx(), &["a", "b"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_listd"))
        .arg("--config")
        .arg(&env.config_path)
        .args(["digest", "send", "dev"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the CLI commits the job; the delivery worker finds it on its next pass
    daemon.wakers.delivery.notify_one();
    assert!(
        wait_until(Duration::from_secs(30), || !sink.transactions().is_empty()).await,
        "the forced digest reaches the relay"
    );
    let t = &sink.transactions()[0];
    assert_eq!(t.rcpts, ["mime@example.org"]);
    let m = MessageParser::default().parse(&t.data).unwrap();
    assert_eq!(m.subject(), Some("dev Digest, Vol 1, Issue 1"));
    assert_eq!(
        m.header_raw("List-Id").map(str::trim),
        Some(format!("<dev.{DOMAIN}>").as_str())
    );
    daemon.shutdown().await;
}
