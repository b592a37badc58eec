//! Several list domains on one daemon, over real SMTP to the in-process
//! daemon and out to the capturing sink: each list's addresses, List-*
//! fields, envelopes and robot mail at its own domain; RCPT refused with a
//! precise text at a domain that is not the list's.

mod common;

use common::sink::{Sink, Transaction};
use common::{send, wait_until, SmtpClient, TestEnv, DOMAIN};
use mail_parser::MessageParser;
use std::time::Duration;

const NET: &str = "lists.example.net";
const WAIT: Duration = Duration::from_secs(20);

fn env(sink: &Sink) -> TestEnv {
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "dev",
            &format!(
                "owners: [owner@example.com]\nposting: members\nnonmember_posts: reject\ndomain: {NET}\n"
            ),
        )
        .list("ops", "owners: [owner@example.com]\nposting: members\n")
        .build();
    env.add_members("dev", &["ann@example.com", "carl@example.com"]);
    env.add_members("ops", &["bob@example.com", "dora@example.com"]);
    env
}

async fn delivered(sink: &Sink, rcpt: &str, subject: &str) -> Transaction {
    let found = |s: &Sink| {
        s.transactions().into_iter().find(|t| {
            t.rcpts.iter().any(|r| r == rcpt)
                && MessageParser::default()
                    .parse(&t.data)
                    .and_then(|m| m.subject().map(|x| x.contains(subject)))
                    .unwrap_or(false)
        })
    };
    assert!(
        wait_until(WAIT, || found(sink).is_some()).await,
        "no mail to {rcpt} about {subject}: {:?}",
        sink.transactions()
    );
    found(sink).unwrap()
}

fn header(t: &Transaction, name: &str) -> String {
    let m = MessageParser::default().parse(&t.data).unwrap();
    m.header_raw(name).unwrap_or_default().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_list_is_served_at_its_own_domain_only() {
    let sink = Sink::start();
    let env = env(&sink);
    let daemon = env.start().await;
    let mut c = SmtpClient::connect_ehlo(daemon.smtp_addr()).await;
    c.cmd("MAIL FROM:<someone@example.com>").await.expect(250);
    for (rcpt, code, status, text) in [
        (format!("dev@{NET}"), 250, "2.1.5", String::new()),
        (format!("dev-request@{NET}"), 250, "2.1.5", String::new()),
        (
            format!("dev-confirm+abc@{NET}"),
            250,
            "2.1.5",
            String::new(),
        ),
        (format!("ops@{DOMAIN}"), 250, "2.1.5", String::new()),
        (
            format!("dev@{DOMAIN}"),
            550,
            "5.1.1",
            format!("<dev@{DOMAIN}>: no list `dev` at {DOMAIN}"),
        ),
        (
            format!("dev-owner@{DOMAIN}"),
            550,
            "5.1.1",
            format!("<dev-owner@{DOMAIN}>: no list `dev` at {DOMAIN}"),
        ),
        (
            format!("ops@{NET}"),
            550,
            "5.1.1",
            format!("<ops@{NET}>: no list `ops` at {NET}"),
        ),
        (
            format!("nosuch@{NET}"),
            550,
            "5.1.1",
            format!("<nosuch@{NET}>: no such list or address"),
        ),
        (format!("majordomo@{NET}"), 550, "5.1.1", String::new()),
        (format!("majordomo@{DOMAIN}"), 250, "2.1.5", String::new()),
        (format!("postmaster@{NET}"), 250, "2.1.5", String::new()),
        (
            "dev@lists.example.com".to_string(),
            550,
            "5.7.1",
            "Relaying denied".to_string(),
        ),
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert_eq!((r.code, r.status()), (code, Some(status)), "{rcpt}: {r:?}");
        assert!(r.text().contains(&text), "{rcpt}: {r:?}");
    }
    c.cmd("RSET").await.expect(250);
    // VRFY (127.0.0.1 is trusted): a bare name is taken at its list's domain
    for (arg, code, text) in [
        ("dev", 250, format!("<dev@{NET}>")),
        ("dev-request", 250, format!("<dev-request@{NET}>")),
        ("ops", 250, format!("<ops@{DOMAIN}>")),
        (
            &format!("dev@{DOMAIN}")[..],
            550,
            format!("no list `dev` at {DOMAIN}"),
        ),
    ] {
        let r = c.cmd(&format!("VRFY {arg}")).await;
        assert_eq!(r.code, code, "{arg}: {r:?}");
        assert!(r.text().contains(&text), "{arg}: {r:?}");
    }
    c.quit().await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_to_two_domains_go_out_each_with_its_own_fields() {
    let sink = Sink::start();
    let env = env(&sink);
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    for (from, list, domain) in [
        ("ann@example.com", "dev", NET),
        ("bob@example.com", "ops", DOMAIN),
    ] {
        let to = format!("{list}@{domain}");
        let msg = format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {list}-post\r\nMessage-ID: <{list}-1@example.com>\r\n\r\nhello\r\n"
        );
        send(a, from, &[&to], &msg).await.expect(250);
    }
    let t = delivered(&sink, "carl@example.com", "dev-post").await;
    assert_eq!(t.mail_from, format!("dev-bounces@{NET}"));
    assert!(
        header(&t, "List-Id").ends_with(&format!("<dev.{NET}>")),
        "{}",
        header(&t, "List-Id")
    );
    assert_eq!(header(&t, "List-Post"), format!("<mailto:dev@{NET}>"));
    assert!(header(&t, "List-Unsubscribe").contains(&format!("mailto:dev-leave@{NET}")));
    assert_eq!(
        header(&t, "List-Help"),
        format!("<mailto:dev-request@{NET}?subject=help>")
    );
    assert_eq!(header(&t, "X-Loop"), format!("dev@{NET}"));
    let t = delivered(&sink, "dora@example.com", "ops-post").await;
    assert_eq!(t.mail_from, format!("ops-bounces@{DOMAIN}"));
    assert!(header(&t, "List-Id").ends_with(&format!("<ops.{DOMAIN}>")));
    assert_eq!(header(&t, "List-Post"), format!("<mailto:ops@{DOMAIN}>"));
    // a non-member's post is refused with a report from the list's domain
    let to = format!("dev@{NET}");
    let msg = format!("From: eve@example.com\r\nTo: {to}\r\nSubject: eve-post\r\n\r\nhi\r\n");
    send(a, "eve@example.com", &[&to], &msg).await.expect(250);
    let t = delivered(&sink, "eve@example.com", &format!("dev@{NET}")).await;
    assert_eq!(t.mail_from, "");
    let m = MessageParser::default().parse(&t.data).unwrap();
    assert_eq!(
        m.from().unwrap().first().unwrap().address(),
        Some(format!("dev-owner@{NET}").as_str())
    );
    let status = String::from_utf8_lossy(m.parts[2].contents()).into_owned();
    assert!(
        status.starts_with(&format!("Reporting-MTA: dns; {NET}\r\n"))
            && status.contains(&format!("Final-Recipient: rfc822; dev@{NET}\r\n")),
        "{status}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_robot_answers_from_the_lists_domain() {
    let sink = Sink::start();
    let env = env(&sink);
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let req = format!("dev-request@{NET}");
    send(
        a,
        "new@example.com",
        &[&req],
        &format!("From: new@example.com\r\nTo: {req}\r\nSubject: x\r\n\r\nsubscribe dev\r\n"),
    )
    .await
    .expect(250);
    let t = delivered(&sink, "new@example.com", "confirm").await;
    assert_eq!(t.mail_from, format!("dev-bounces@{NET}"));
    let m = MessageParser::default().parse(&t.data).unwrap();
    assert_eq!(
        m.from().unwrap().first().unwrap().address(),
        Some(req.as_str())
    );
    assert!(
        m.message_id().unwrap().ends_with(&format!("@{NET}")),
        "{:?}",
        m.message_id()
    );
    let confirm = m
        .reply_to()
        .unwrap()
        .first()
        .unwrap()
        .address()
        .unwrap()
        .to_string();
    assert!(
        confirm.starts_with("dev-confirm+") && confirm.ends_with(&format!("@{NET}")),
        "{confirm}"
    );
    // the confirmation address routes at the list's domain and subscribes
    send(
        a,
        "new@example.com",
        &[&confirm],
        &format!("From: new@example.com\r\nTo: {confirm}\r\nSubject: Re: confirm\r\n\r\n"),
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || env.count(
            "members",
            "list = 'dev' AND address_key = 'new@example.com'"
        ) == 1)
        .await
    );
    daemon.shutdown().await;
}

/// `listd dkim keygen DOMAIN SELECTOR` into `dir`: (key file, TXT value).
fn keygen(dir: &std::path::Path, domain: &str, selector: &str) -> (std::path::PathBuf, String) {
    let out = dir.join(format!("{selector}.key"));
    let (code, stdout, stderr) = common::Listd::at(dir.join("listd.yaml")).run(&[
        "dkim",
        "keygen",
        domain,
        selector,
        "--algorithm",
        "ed25519",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.{domain}. IN TXT")))
        .unwrap();
    let txt = line
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    (out, txt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_from_a_foreign_domain_is_signed_with_its_lists_domain_key() {
    let keys = tempfile::tempdir().unwrap();
    let (org, org_txt) = keygen(keys.path(), DOMAIN, "s1");
    let (net, net_txt) = keygen(keys.path(), NET, "s2");
    let zone_text = format!(
        "s1._domainkey.{DOMAIN} TXT \"{org_txt}\"\ns2._domainkey.{NET} TXT \"{net_txt}\"\n"
    );
    let zone = listd::dns::zone::parse(&zone_text).unwrap();
    let resolver = listd::dns::Resolver::new(&listd::dns::DnsSettings::zone_only(zone)).unwrap();
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set(
            "dkim",
            "keys",
            &format!(
                "[{{domain: {DOMAIN}, selector: s1, key_file: {}}}, {{domain: {NET}, selector: s2, key_file: {}}}]",
                org.display(),
                net.display()
            ),
        )
        .list("dev", &format!("posting: members\ndomain: {NET}\n"))
        .list("ops", "posting: members\n")
        .build();
    env.add_members("dev", &["ann@example.com", "carl@example.com"]);
    env.add_members("ops", &["bob@example.com", "dora@example.com"]);
    let daemon = env.start().await;
    for (from, list, domain) in [
        ("ann@example.com", "dev", NET),
        ("bob@example.com", "ops", DOMAIN),
    ] {
        let to = format!("{list}@{domain}");
        let msg = format!("From: {from}\r\nTo: {to}\r\nSubject: {list}-signed\r\n\r\nhi\r\n");
        send(daemon.smtp_addr(), from, &[&to], &msg)
            .await
            .expect(250);
    }
    for (rcpt, subject, d) in [
        ("carl@example.com", "dev-signed", NET),
        ("dora@example.com", "ops-signed", DOMAIN),
    ] {
        let t = delivered(&sink, rcpt, subject).await;
        let m = mail_auth::AuthenticatedMessage::parse(&t.data).unwrap();
        let v: Vec<(mail_auth::DkimResult, String)> = resolver
            .authenticator()
            .verify_dkim(resolver.params(&m))
            .await
            .iter()
            .map(|o| (o.result().clone(), o.signature().unwrap().d.clone()))
            .collect();
        assert_eq!(
            v,
            vec![(mail_auth::DkimResult::Pass, d.to_string())],
            "{subject}"
        );
    }
    daemon.shutdown().await;
}
