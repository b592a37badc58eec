//! Inbound authentication over real SMTP: the in-process daemon on
//! 127.0.0.1 answers DNS from a static zone written per test (no network),
//! messages are DKIM-signed with mail-auth's signer and a per-run Ed25519
//! key published in that zone, and what intake stored is read back: the
//! verdict columns of `messages` and our `Authentication-Results:` parsed
//! with mail-parser. Covers SPF (pass, fail, softfail; MAIL FROM and HELO),
//! DKIM (pass, an altered body, an unpublished key, none), DMARC (reject, quarantine,
//! none, no record; aligned and not), forged fields claiming our
//! authserv-id, the upstream MTA's verdict (trusted only when configured),
//! and a DNS failure (temperror, the mail still delivered).

mod auth_support;
mod common;

use auth_support::{newest, results, TestKey};
use common::sink::Sink;
use common::{message, send, wait_until, SmtpClient, TestEnv, DOMAIN};
use std::time::Duration;

const LIST: &str = "posting: anyone\nowners: [owner@example.org]\n";

fn zone(key: &TestKey) -> String {
    format!(
        "pass.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
         fail.example TXT \"v=spf1 -all\"\n\
         soft.example TXT \"v=spf1 ~all\"\n\
         helo.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
         _dmarc.pass.example TXT \"v=DMARC1; p=reject\"\n\
         _dmarc.fail.example TXT \"v=DMARC1; p=reject\"\n\
         _dmarc.signed.example TXT \"v=DMARC1; p=reject\"\n\
         _dmarc.quar.example TXT \"v=DMARC1; p=quarantine\"\n\
         _dmarc.relaxed.example TXT \"v=DMARC1; p=none\"\n\
         {}",
        key.zone_line()
    )
}

/// Sends `msg` from `mail_from` after `EHLO helo`; panics unless 250.
async fn deliver(addr: std::net::SocketAddr, helo: &str, mail_from: &str, msg: &str) {
    let mut c = SmtpClient::connect(addr).await;
    c.greeting.expect(220);
    c.ehlo(helo).await.expect(250);
    c.send_mail(mail_from, &[&format!("dev@{DOMAIN}")], msg)
        .await
        .expect(250);
    c.quit().await;
}

fn ours(bytes: &[u8]) -> String {
    let r = results(bytes);
    let mine: Vec<&String> = r.iter().filter(|v| v.starts_with(DOMAIN)).collect();
    assert_eq!(mine.len(), 1, "exactly one field of ours: {r:?}");
    mine[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spf_for_mail_from_and_helo() {
    let key = TestKey::new("signed.example", "sel");
    let env = TestEnv::builder()
        .zone(&zone(&key))
        .list("dev", LIST)
        .build();
    let d = env.start().await;
    let a = d.smtp_addr();
    for (helo, from, mail, helo_result) in [
        ("helo.example", "a@pass.example", "spf=pass", "spf=pass"),
        ("helo.example", "a@fail.example", "spf=fail", "spf=pass"),
        (
            "client.example",
            "a@soft.example",
            "spf=softfail",
            "spf=none",
        ),
    ] {
        deliver(
            a,
            helo,
            from,
            &message(from, &format!("dev@{DOMAIN}"), "s", "hi"),
        )
        .await;
        let (_, _, _, bytes) = newest(&env);
        let ar = ours(&bytes);
        assert!(
            ar.contains(&format!("{mail} ")) && ar.contains(&format!("smtp.mailfrom={from}")),
            "{from}: {ar}"
        );
        assert!(
            ar.contains(&format!("{helo_result} ")) && ar.contains(&format!("smtp.helo={helo}")),
            "{helo}: {ar}"
        );
    }
    // aligned SPF pass under p=reject: DMARC passes
    deliver(
        a,
        "helo.example",
        "a@pass.example",
        &message("a@pass.example", "x@y", "s", "b"),
    )
    .await;
    let (dmarc, policy, from, _) = newest(&env);
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref(), from.as_deref()),
        (Some("pass"), Some("reject"), Some("pass.example"))
    );
    // SPF fail under p=reject, nothing signed: DMARC fails
    deliver(
        a,
        "helo.example",
        "a@fail.example",
        &message("a@fail.example", "x@y", "s", "b"),
    )
    .await;
    let (dmarc, policy, _, bytes) = newest(&env);
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref()),
        (Some("fail"), Some("reject"))
    );
    assert!(ours(&bytes).contains("dmarc=fail"), "{}", ours(&bytes));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_and_dmarc_policies_and_alignment() {
    let key = TestKey::new("signed.example", "sel");
    let other = TestKey::new("relaxed.example", "sel"); // published under no name
    let env = TestEnv::builder()
        .zone(&zone(&key))
        .list("dev", LIST)
        .build();
    let d = env.start().await;
    let a = d.smtp_addr();
    let to = format!("dev@{DOMAIN}");
    let m = |from: &str| message(from, &to, "signed", "hello");

    // DKIM pass, aligned: DMARC pass although SPF is none
    deliver(
        a,
        "c.example",
        "bounce@unknown.example",
        &key.sign(&m("alice@signed.example")),
    )
    .await;
    let (dmarc, policy, from, bytes) = newest(&env);
    let ar = ours(&bytes);
    assert!(
        ar.contains("dkim=pass") && ar.contains("header.d=signed.example"),
        "{ar}"
    );
    assert!(ar.contains("dmarc=pass"), "{ar}");
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref(), from.as_deref()),
        (Some("pass"), Some("reject"), Some("signed.example"))
    );

    // the body altered after signing: DKIM fails, so does DMARC
    let altered = key
        .sign(&m("alice@signed.example"))
        .replace("hello", "HELLO");
    deliver(a, "c.example", "bounce@unknown.example", &altered).await;
    let (dmarc, _, _, bytes) = newest(&env);
    let ar = ours(&bytes);
    // mail-auth reports a body hash mismatch as `neutral` (not a pass)
    assert!(
        !ar.contains("dkim=pass") && ar.contains("body hash did not verify"),
        "{ar}"
    );
    assert_eq!(dmarc.as_deref(), Some("fail"));

    // a valid signature of another domain: DKIM passes, not aligned
    let by_signed = key.sign(&m("alice@quar.example"));
    deliver(a, "c.example", "bounce@unknown.example", &by_signed).await;
    let (dmarc, policy, from, bytes) = newest(&env);
    assert!(ours(&bytes).contains("dkim=pass"), "{}", ours(&bytes));
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref(), from.as_deref()),
        (Some("fail"), Some("quarantine"), Some("quar.example"))
    );

    // no signature, p=none
    deliver(
        a,
        "c.example",
        "x@unknown.example",
        &m("bob@relaxed.example"),
    )
    .await;
    let (dmarc, policy, _, bytes) = newest(&env);
    assert!(
        ours(&bytes).contains("dkim=none") || !ours(&bytes).contains("dkim="),
        "{}",
        ours(&bytes)
    );
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref()),
        (Some("fail"), Some("none"))
    );

    // a signature whose key is not published: DKIM fails, no DMARC record
    deliver(
        a,
        "c.example",
        "x@unknown.example",
        &other.sign(&m("carol@nodmarc.example")),
    )
    .await;
    let (dmarc, policy, from, bytes) = newest(&env);
    assert!(!ours(&bytes).contains("dkim=pass"), "{}", ours(&bytes));
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref(), from.as_deref()),
        (Some("none"), Some("absent"), Some("nodmarc.example"))
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_results_claiming_our_id_are_removed() {
    let key = TestKey::new("signed.example", "sel");
    let env = TestEnv::builder()
        .zone(&zone(&key))
        .list("dev", LIST)
        .build();
    let d = env.start().await;
    let forged = format!(
        "Authentication-Results: {DOMAIN}; dmarc=pass header.from=fail.example\r\n\
         Authentication-Results: mx.elsewhere.example; dkim=pass\r\n\
         Authentication-Results: {}; spf=pass\r\n{}",
        DOMAIN.to_uppercase(),
        message("a@fail.example", "x@y", "forged", "b")
    );
    deliver(d.smtp_addr(), "helo.example", "a@fail.example", &forged).await;
    let (dmarc, _, _, bytes) = newest(&env);
    assert_eq!(
        dmarc.as_deref(),
        Some("fail"),
        "our own check, not the claim"
    );
    let all = results(&bytes);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all[0].starts_with(DOMAIN) && all[0].contains("dmarc=fail"),
        "ours first: {all:?}"
    );
    assert!(all[1].starts_with("mx.elsewhere.example"), "{all:?}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_verdict_is_taken_only_when_configured() {
    let upstream = |from: &str| {
        format!(
            "Authentication-Results: mx.example.org; spf=pass;\r\n\
             \tdmarc=pass (p=reject) header.from=fail.example\r\n\
             Received: from outside by mx.example.org; Thu, 1 Jan 2026 00:00:00 +0000\r\n{}",
            message(from, "x@y", "via mx", "b")
        )
    };
    // trusted: 127.0.0.1 is in smtp.trusted_networks by default
    let env = TestEnv::builder()
        .set("auth", "trust_upstream_authserv_id", "mx.example.org")
        .list("dev", LIST)
        .build();
    let d = env.start().await;
    deliver(
        d.smtp_addr(),
        "mx.example.org",
        "a@fail.example",
        &upstream("a@fail.example"),
    )
    .await;
    let (dmarc, policy, from, bytes) = newest(&env);
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref(), from.as_deref()),
        (Some("pass"), Some("reject"), Some("fail.example"))
    );
    assert_eq!(
        results(&bytes).len(),
        1,
        "the upstream field stays, none of ours"
    );
    // one written before the upstream MTA (below a second Received): ignored
    let older = format!(
        "Received: from outside by mx.example.org; Thu, 1 Jan 2026 00:00:00 +0000\r\n\
         Received: from evil by evil.example; Thu, 1 Jan 2026 00:00:00 +0000\r\n\
         Authentication-Results: mx.example.org; dmarc=pass header.from=fail.example\r\n{}",
        message("a@fail.example", "x@y", "older", "b")
    );
    deliver(d.smtp_addr(), "mx.example.org", "a@fail.example", &older).await;
    let (dmarc, policy, _, _) = newest(&env);
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref()),
        (Some("none"), Some("unknown"))
    );
    d.shutdown().await;

    // not configured: the same field is a claim; we check ourselves
    let key = TestKey::new("signed.example", "sel");
    let env = TestEnv::builder()
        .zone(&zone(&key))
        .list("dev", LIST)
        .build();
    let d = env.start().await;
    deliver(
        d.smtp_addr(),
        "mx.example.org",
        "a@fail.example",
        &upstream("a@fail.example"),
    )
    .await;
    let (dmarc, policy, _, _) = newest(&env);
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref()),
        (Some("fail"), Some("reject"))
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_failure_is_temperror_and_the_mail_is_still_delivered() {
    let sink = Sink::start();
    // a name server that never answers
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set(
            "dns",
            "servers",
            &format!("[\"{}\"]", silent.local_addr().unwrap()),
        )
        .set("dns", "timeout_ms", "200")
        .set("dns", "attempts", "1")
        .list(
            "dev",
            "posting: anyone\nowners: [owner@example.org]\ndmarc_mitigation: never\n",
        )
        .build();
    env.add_members("dev", &["m1@example.net"]);
    let d = env.start().await;
    let r = send(
        d.smtp_addr(),
        "a@some.example",
        &[&format!("dev@{DOMAIN}")],
        &message("a@some.example", &format!("dev@{DOMAIN}"), "dns down", "b"),
    )
    .await;
    r.expect(250);
    let (dmarc, policy, from, bytes) = newest(&env);
    assert_eq!(
        (dmarc.as_deref(), policy.as_deref(), from.as_deref()),
        (Some("temperror"), Some("unknown"), Some("some.example"))
    );
    assert!(ours(&bytes).contains("dmarc=temperror"), "{}", ours(&bytes));
    assert!(
        wait_until(Duration::from_secs(30), || sink.delivered_count() >= 1).await,
        "the post is still distributed"
    );
    d.shutdown().await;
}
