//! `postmaster@domain` and `<Postmaster>` (RFC 5321 §4.5.1) over real SMTP
//! and LMTP: accepted with 250 in any case, forwarded through the relay (the
//! capturing sink) to the `postmaster:` addresses, or to every list's owners
//! when none are set; a looping message or one with nowhere to go is kept as
//! corrupt, and `listd queue` says why.

mod common;

use common::sink::Sink;
use common::{message, run_cli, SmtpClient, TestEnv, DOMAIN};
use std::time::Duration;

async fn post_to_postmaster(addr: std::net::SocketAddr, rcpt_path: &str, subject: &str) {
    let mut c = SmtpClient::connect_ehlo(addr).await;
    c.cmd("MAIL FROM:<ann@example.org>").await.expect(250);
    let r = c.cmd(&format!("RCPT TO:{rcpt_path}")).await;
    r.expect(250);
    assert_eq!(r.status(), Some("2.1.5"), "{r:?}");
    c.cmd("DATA").await.expect(354);
    let msg = message(
        "ann@example.org",
        "postmaster",
        subject,
        "Your server is on fire.",
    );
    c.send_raw(common::dot_stuff(&msg).as_bytes()).await;
    c.send_raw(b".\r\n").await;
    c.read_reply().await.expect(250);
    c.quit().await;
}

fn parsed_subject(data: &[u8]) -> String {
    let m = mail_parser::MessageParser::default()
        .parse(data)
        .expect("forwarded mail parses");
    m.subject().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postmaster_in_every_case_is_accepted_and_forwarded_to_the_configured_addresses() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .global("postmaster", "[\"admin@example.net\", \"Ops@Example.COM\"]")
        .list("dev", "owners: [owner@example.org]\n")
        .build();
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let paths = [
        format!("<postmaster@{DOMAIN}>"),
        format!("<PostMaster@{}>", DOMAIN.to_uppercase()),
        "<Postmaster>".to_string(),
        "<POSTMASTER>".to_string(),
        "<postmaster>".to_string(),
    ];
    for (i, p) in paths.iter().enumerate() {
        post_to_postmaster(a, p, &format!("report {i}")).await;
    }
    assert!(
        sink.wait_for_delivered(2 * paths.len(), Duration::from_secs(30)),
        "delivered: {:?}",
        sink.delivered()
    );
    let txs = sink.transactions();
    let mut subjects: Vec<String> = Vec::new();
    let mut rcpts: Vec<String> = Vec::new();
    for t in &txs {
        rcpts.extend(t.rcpts.iter().cloned());
        assert_eq!(t.mail_from, "", "forwarded with the null sender");
        let text = String::from_utf8_lossy(&t.data);
        assert!(
            text.starts_with(&format!("X-Loop: postmaster@{DOMAIN}\r\n")),
            "{text}"
        );
        assert!(text.contains("Your server is on fire."), "{text}");
        subjects.push(parsed_subject(&t.data));
    }
    // only the postmaster addresses, each message to both, never the owners
    rcpts.sort();
    rcpts.dedup();
    assert_eq!(rcpts, vec!["Ops@Example.COM", "admin@example.net"]);
    // one transaction per recipient domain: each message twice
    assert_eq!(subjects.len(), 2 * paths.len(), "{subjects:?}");
    subjects.sort();
    subjects.dedup();
    subjects.sort();
    let want: Vec<String> = (0..paths.len()).map(|i| format!("report {i}")).collect();
    assert_eq!(subjects, want);
    assert_eq!(env.count("incoming", "state = 'done'"), paths.len() as i64);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_postmaster_key_the_owners_of_every_list_get_it_once_each() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "owners: [owner@example.org, dev-boss@example.org]\n")
        .list("announce", "owners: [owner@EXAMPLE.org]\n")
        .list("quiet", "description: no owners\n")
        .build();
    let daemon = env.start().await;
    post_to_postmaster(daemon.smtp_addr(), "<Postmaster>", "abuse report").await;
    assert!(sink.wait_for_delivered(2, Duration::from_secs(30)));
    let txs = sink.transactions();
    assert_eq!(txs.len(), 1, "{txs:?}");
    let mut rcpts = txs[0].rcpts.clone();
    rcpts.sort();
    // announce's owner is dev's first owner (the domain's case differs)
    assert_eq!(rcpts, vec!["dev-boss@example.org", "owner@EXAMPLE.org"]);
    assert_eq!(parsed_subject(&txs[0].data), "abuse report");
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postmaster_over_lmtp_gets_its_own_reply() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .lmtp()
        .global("postmaster", "[admin@example.net]")
        .list("dev", "posting: anyone\n")
        .build();
    let daemon = env.start().await;
    let mut c = SmtpClient::connect(daemon.lmtp_tcp_addr().expect("lmtp")).await;
    c.greeting.expect(220);
    c.cmd("LHLO client.example").await.expect(250);
    c.cmd("MAIL FROM:<ann@example.org>").await.expect(250);
    c.cmd("RCPT TO:<Postmaster>").await.expect(250);
    c.cmd(&format!("RCPT TO:<dev@{DOMAIN}>")).await.expect(250);
    c.cmd("DATA").await.expect(354);
    let msg = message("ann@example.org", "postmaster", "both", "hello");
    c.send_raw(common::dot_stuff(&msg).as_bytes()).await;
    c.send_raw(b".\r\n").await;
    c.read_reply().await.expect(250);
    c.read_reply().await.expect(250);
    c.quit().await;
    // the post to dev (To: postmaster, so held for implicit destination)
    // also sends ann an "awaits moderation" notice: wait for the forward itself
    let forwarded = || {
        sink.transactions()
            .iter()
            .any(|t| t.rcpts == vec!["admin@example.net".to_string()])
    };
    assert!(common::wait_until(Duration::from_secs(30), forwarded).await);
    let t = sink
        .transactions()
        .into_iter()
        .find(|t| t.rcpts == vec!["admin@example.net".to_string()])
        .expect("forwarded to the postmaster address");
    assert_eq!(parsed_subject(&t.data), "both");
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_or_undeliverable_postmaster_mail_is_kept_and_listd_queue_says_why() {
    // no postmaster key and no owners anywhere
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "posting: anyone\n")
        .build();
    let daemon = env.start().await;
    post_to_postmaster(daemon.smtp_addr(), "<postmaster>", "lost?").await;
    let looped = format!(
        "X-Loop: postmaster@{DOMAIN}\r\n{}",
        message("ann@example.org", "postmaster", "again", "loop")
    );
    common::send(
        daemon.smtp_addr(),
        "ann@example.org",
        &[&format!("postmaster@{DOMAIN}")],
        &looped,
    )
    .await
    .expect(250);
    assert!(
        common::wait_until(Duration::from_secs(30), || env
            .count("incoming", "state = 'corrupt'")
            == 2)
        .await
    );
    daemon.shutdown().await;
    assert_eq!(sink.delivered_count(), 0);
    // both messages are still in the store, and listd queue names the reasons
    assert_eq!(env.inbound_messages().len(), 2);
    let (code, out, _) = run_cli(&env, &["queue"]);
    assert_eq!(code, 0);
    assert!(out.contains("set `postmaster:` in listd.yaml"), "{out}");
    assert!(out.contains("a mail loop"), "{out}");
    assert!(out.contains("to <postmaster>"), "{out}");
}
