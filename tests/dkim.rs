//! DKIM signing of everything listd sends, end to end: keys made by
//! `listd dkim keygen`, the daemon on 127.0.0.1, the capturing sink as the
//! relay, and every captured message verified by mail-auth against the TXT
//! record keygen printed (served from a cache: no network).

mod common;

use common::sink::{Sink, Transaction};
use common::{message, run_cli, send, wait_until, Listd, TestEnv, DOMAIN};
use listd::dns::Resolver;
use listd::store::members::DeliveryMode;
use mail_auth::{AuthenticatedMessage, DkimResult};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A resolver answering from the TXT records keygen printed (a static
/// zone: no network).
fn zone(records: &[(String, String)]) -> Resolver {
    let text: String = records
        .iter()
        .map(|(name, value)| format!("{name} TXT \"{value}\"\n"))
        .collect();
    let zone = listd::dns::zone::parse(&text).unwrap();
    Resolver::new(&listd::dns::DnsSettings::zone_only(zone)).unwrap()
}

/// Each signature's verdict and signing domain.
async fn verify(zone: &Resolver, msg: &[u8]) -> Vec<(DkimResult, String)> {
    let m = AuthenticatedMessage::parse(msg).unwrap();
    zone.authenticator()
        .verify_dkim(zone.params(&m))
        .await
        .iter()
        .map(|o| (o.result().clone(), o.signature().unwrap().d.clone()))
        .collect()
}

/// Runs `listd dkim keygen` and returns the key file and the TXT value it
/// printed (its zone-file strings joined).
fn keygen(dir: &Path, domain: &str, selector: &str, algorithm: &str) -> (PathBuf, String) {
    let out = dir.join(format!("{selector}.key"));
    let (code, stdout, stderr) = Listd::at(dir.join("listd.yaml")).run(&[
        "dkim",
        "keygen",
        domain,
        selector,
        "--algorithm",
        algorithm,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.{domain}. IN TXT")))
        .unwrap_or_else(|| panic!("no TXT record in:\n{stdout}"));
    let txt: String = line
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    (out, txt)
}

/// Mails `subject`/`body` from `from` to `LOCAL@DOMAIN`; expects 250.
async fn post(smtp: std::net::SocketAddr, from: &str, local: &str, subject: &str, body: &str) {
    let to = format!("{local}@{DOMAIN}");
    send(smtp, from, &[&to], &message(from, &to, subject, body))
        .await
        .expect(250);
}

fn dkim_signatures(t: &Transaction) -> Vec<Vec<u8>> {
    let split = listd::mime::header_block::split(&t.data);
    split
        .raw_values(&t.data, "DKIM-Signature")
        .into_iter()
        .map(listd::mime::header_block::unfold)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_notices_robot_replies_and_digests_go_out_signed() {
    let keys = tempfile::tempdir().unwrap();
    let (rsa, rsa_txt) = keygen(keys.path(), DOMAIN, "rsa2026", "rsa");
    let (ed, ed_txt) = keygen(keys.path(), "example.com", "ed2026", "ed25519");
    let zone = zone(&[
        (format!("rsa2026._domainkey.{DOMAIN}"), rsa_txt),
        ("ed2026._domainkey.example.com".into(), ed_txt),
    ]);

    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set(
            "dkim",
            "keys",
            &format!(
                "[{{domain: {DOMAIN}, selector: rsa2026, key_file: {}}}, {{domain: example.com, selector: ed2026, key_file: {}}}]",
                rsa.display(),
                ed.display()
            ),
        )
        .list("dev", "posting: members\nnonmember_posts: hold\nmoderators: [mod@example.net]\nsubject_prefix: '[dev]'\nfooter: true\ndigest:\n  enabled: true\n  schedule: none\n")
        .list("verp", "posting: anyone\nverp: true\n")
        .build();
    let members = ["a@example.net", "b@example.net", "c@example.com"];
    env.add_members("dev", &members);
    env.add_members("verp", &members);
    env.add_members_mode("dev", &["digester@example.net"], DeliveryMode::DigestMime);
    let d = env.start().await;

    // a post to 3 members, batched: one signature, made once, for all
    post(
        d.smtp_addr(),
        "a@example.net",
        "dev",
        "signed post",
        "hello",
    )
    .await;
    // VERP: one transaction per member, the same signed body
    post(d.smtp_addr(), "a@example.net", "verp", "verp post", "hi").await;
    // From a domain the site has its own key for: that key signs
    post(d.smtp_addr(), "c@example.com", "dev", "ed post", "hi").await;
    // a non-member's post: held, and the moderator notified
    post(d.smtp_addr(), "z@example.org", "dev", "held post", "x").await;
    // a robot reply
    post(d.smtp_addr(), "c@example.com", "dev-request", "", "help").await;
    assert!(
        wait_until(WAIT, || sink.transactions().len() >= 9).await,
        "{} sent",
        sink.transactions().len()
    );
    let (code, _, err) = run_cli(&env, &["digest", "send", "dev"]);
    assert_eq!(code, 0, "{err}");
    let is_digest = |t: &Transaction| t.rcpts.iter().any(|r| r.starts_with("digester@"));
    assert!(wait_until(WAIT, || sink.transactions().iter().any(is_digest)).await);

    let all = sink.transactions();
    let subject = |t: &Transaction| {
        mail_parser::MessageParser::default()
            .parse(&t.data)
            .and_then(|m| m.subject().map(str::to_string))
            .unwrap_or_default()
    };
    let of = |s: &str| -> Vec<&Transaction> {
        all.iter()
            .filter(|t| subject(t).contains(s) && !is_digest(t))
            .collect()
    };
    let post = of("[dev] signed post");
    assert_eq!(post.iter().map(|t| t.rcpts.len()).sum::<usize>(), 3);
    let verp = of("verp post");
    assert_eq!(verp.len(), 3, "one VERP transaction per member");
    for group in [&post, &verp] {
        let sigs: Vec<_> = group.iter().map(|t| dkim_signatures(t)).collect();
        assert_eq!(sigs[0].len(), 1);
        assert!(sigs.iter().all(|s| *s == sigs[0]), "one signature per body");
    }
    let notice = all
        .iter()
        .find(|t| t.rcpts.iter().any(|r| r == "mod@example.net"))
        .expect("a moderator notice");
    let reply = all
        .iter()
        .find(|t| t.rcpts.iter().any(|r| r == "c@example.com") && !subject(t).contains("post"))
        .expect("a robot reply");
    let digest = all.iter().find(|t| is_digest(t)).unwrap();
    for (what, t) in [
        ("post", post[0]),
        ("verp", verp[0]),
        ("notice", notice),
        ("robot reply", reply),
        ("digest", digest),
    ] {
        let v = verify(&zone, &t.data).await;
        assert_eq!(
            v,
            vec![(DkimResult::Pass, DOMAIN.to_string())],
            "{what}:\n{}",
            String::from_utf8_lossy(&t.data)
        );
    }
    let ed_post = of("[dev] ed post");
    assert_eq!(
        verify(&zone, &ed_post[0].data).await,
        vec![(DkimResult::Pass, "example.com".to_string())]
    );
    d.shutdown().await;
}

#[test]
fn a_key_file_that_cannot_sign_is_a_config_error_with_its_line() {
    let env = TestEnv::builder()
        .set(
            "dkim",
            "keys",
            "[{domain: lists.example.org, selector: s1, key_file: missing.key}]",
        )
        .build();
    let (code, _, err) = run_cli(&env, &["check"]);
    assert_eq!(code, 1);
    assert!(err.contains("listd.yaml:"), "{err}");
    assert!(err.contains("dkim key file"), "{err}");
    assert!(err.contains("missing.key: cannot read"), "{err}");
    // keygen makes what was missing, beside listd.yaml; then the site loads
    let keygen_missing = || {
        run_cli(
            &env,
            &["dkim", "keygen", DOMAIN, "s1", "--out", "missing.key"],
        )
    };
    let (code, out, err) = keygen_missing();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("s1._domainkey.lists.example.org. IN TXT"),
        "{out}"
    );
    let (code, _, err) = run_cli(&env, &["check"]);
    assert_eq!(code, 0, "{err}");
    // never over an existing key
    let (code, _, err) = keygen_missing();
    assert_eq!(code, 1);
    assert!(err.contains("never overwritten"), "{err}");
    let (code, _, err) = run_cli(&env, &["dkim", "keygen", "not a domain", "s1"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a valid domain"), "{err}");
    let (code, _, err) = run_cli(&env, &["dkim", "keygen", "example.org", "bad_selector"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a DNS label"), "{err}");
}

/// The signed post relayed by a real Postfix (a private instance relaying
/// to the sink) still verifies: nothing on the way changes a signed byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_survives_a_real_postfix_relay() {
    let sink = Sink::start();
    let postfix = match common::postfix::PrivatePostfix::start(Some(sink.addr())) {
        Ok(p) => p,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no private Postfix ({why}); install postfix to run this test");
            return;
        }
        Err(why) => panic!("CI needs Postfix for this test: {why}"),
    };
    let keys = tempfile::tempdir().unwrap();
    let (key, txt) = keygen(keys.path(), DOMAIN, "pf", "ed25519");
    let zone = zone(&[(format!("pf._domainkey.{DOMAIN}"), txt)]);
    let env = TestEnv::builder()
        .relay_port(postfix.addr.port())
        .set(
            "dkim",
            "keys",
            &format!(
                "[{{domain: {DOMAIN}, selector: pf, key_file: {}}}]",
                key.display()
            ),
        )
        .list(
            "dev",
            "posting: members\nsubject_prefix: '[dev]'\nfooter: true\n",
        )
        .build();
    env.add_members("dev", &["a@example.net", "b@example.com"]);
    let d = env.start().await;
    post(
        d.smtp_addr(),
        "a@example.net",
        "dev",
        "through postfix",
        "a line\r\n.a dot-stuffed line\r\ntrailing space   \r\n\r\n",
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(60), || sink
            .transactions()
            .iter()
            .map(|t| t.rcpts.len())
            .sum::<usize>()
            >= 2)
        .await,
        "Postfix did not relay the post"
    );
    for t in sink.transactions() {
        assert!(
            t.data.starts_with(b"Received: "),
            "not through Postfix:\n{}",
            String::from_utf8_lossy(&t.data)
        );
        assert_eq!(
            verify(&zone, &t.data).await,
            vec![(DkimResult::Pass, DOMAIN.to_string())],
            "{}",
            String::from_utf8_lossy(&t.data)
        );
    }
    d.shutdown().await;
}

/// A personalized list: each member's copy has its own List-Unsubscribe,
/// so each is signed on its own, and each verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_personalized_copy_is_signed_for_its_member() {
    let keys = tempfile::tempdir().unwrap();
    let (key, txt) = keygen(keys.path(), DOMAIN, "p1", "ed25519");
    let zone = zone(&[(format!("p1._domainkey.{DOMAIN}"), txt)]);
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set("web", "public_url", "\"http://127.0.0.1:8080\"")
        .set(
            "dkim",
            "keys",
            &format!(
                "[{{domain: {DOMAIN}, selector: p1, key_file: {}}}]",
                key.display()
            ),
        )
        .list("dev", "posting: members\npersonalize: true\n")
        .build();
    env.add_members("dev", &["a@example.net", "b@example.net"]);
    let d = env.start().await;
    post(d.smtp_addr(), "a@example.net", "dev", "for each", "hi").await;
    assert!(wait_until(WAIT, || sink.transactions().len() >= 2).await);
    let copies = sink.transactions();
    let header = |t: &Transaction, name: &str| {
        let split = listd::mime::header_block::split(&t.data);
        split
            .raw_value(&t.data, name)
            .map(listd::mime::header_block::unfold)
    };
    assert_ne!(
        header(&copies[0], "List-Unsubscribe"),
        header(&copies[1], "List-Unsubscribe")
    );
    assert_ne!(dkim_signatures(&copies[0]), dkim_signatures(&copies[1]));
    for t in &copies {
        assert_eq!(t.rcpts.len(), 1);
        assert!(
            String::from_utf8_lossy(&header(t, "List-Unsubscribe").unwrap())
                .contains("http://127.0.0.1:8080/u/")
        );
        assert_eq!(
            verify(&zone, &t.data).await,
            vec![(DkimResult::Pass, DOMAIN.to_string())]
        );
        // a copy with another member's link spliced in fails
        let other = if t.rcpts == copies[0].rcpts {
            &copies[1]
        } else {
            &copies[0]
        };
        let forged = [
            &b"List-Unsubscribe: "[..],
            &header(other, "List-Unsubscribe").unwrap(),
            b"\r\n",
            &t.data,
        ]
        .concat();
        assert_ne!(
            verify(&zone, &forged).await,
            vec![(DkimResult::Pass, DOMAIN.to_string())]
        );
    }
    d.shutdown().await;
}

/// A relay without 8BITMIME: an 8-bit post goes out in 7 bits, converted
/// before it is signed, so every copy (batched and personalized) verifies
/// and reads as posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_to_a_7bit_relay_are_converted_then_signed() {
    let keys = tempfile::tempdir().unwrap();
    let (key, txt) = keygen(keys.path(), DOMAIN, "s7", "ed25519");
    let zone = zone(&[(format!("s7._domainkey.{DOMAIN}"), txt)]);
    let sink = Sink::start();
    sink.without_8bitmime();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set("web", "public_url", "\"http://127.0.0.1:8080\"")
        .set(
            "dkim",
            "keys",
            &format!(
                "[{{domain: {DOMAIN}, selector: s7, key_file: {}}}]",
                key.display()
            ),
        )
        .list("dev", "posting: members\n")
        .list("pers", "posting: members\npersonalize: true\n")
        .build();
    env.add_members("dev", &["a@example.net", "b@example.net"]);
    env.add_members("pers", &["a@example.net", "b@example.net"]);
    let d = env.start().await;
    let text = "Gr\u{fc}\u{df}e aus K\u{f6}ln, caf\u{e9} = 1";
    post(d.smtp_addr(), "a@example.net", "dev", "batched", text).await;
    post(d.smtp_addr(), "a@example.net", "pers", "personal", text).await;
    assert!(wait_until(WAIT, || sink.transactions().len() >= 3).await);
    let sent = sink.transactions();
    assert_eq!(sent.iter().map(|t| t.rcpts.len()).sum::<usize>(), 4);
    for t in &sent {
        let shown = String::from_utf8_lossy(&t.data);
        assert!(t.data.is_ascii(), "{shown}");
        assert_eq!(t.mail_params, "", "{shown}");
        let m = mail_parser::MessageParser::default()
            .parse(&t.data)
            .unwrap();
        assert!(m.body_text(0).unwrap().contains(text), "{shown}");
        assert_eq!(
            verify(&zone, &t.data).await,
            vec![(DkimResult::Pass, DOMAIN.to_string())],
            "{shown}"
        );
    }
    d.shutdown().await;
}

/// A real Postfix that takes only HELO (EHLO gets 502): listd falls back to
/// HELO, sends the 7-bit form of an 8-bit post (no extension, so no
/// 8BITMIME), and the signature survives the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_8bit_post_through_a_helo_only_postfix_arrives_signed_in_7bit() {
    let sink = Sink::start();
    let postfix = match common::postfix::PrivatePostfix::start_helo_only(Some(sink.addr())) {
        Ok(p) => p,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no private Postfix ({why}); install postfix to run this test");
            return;
        }
        Err(why) => panic!("CI needs Postfix for this test: {why}"),
    };
    let keys = tempfile::tempdir().unwrap();
    let (key, txt) = keygen(keys.path(), DOMAIN, "old", "ed25519");
    let zone = zone(&[(format!("old._domainkey.{DOMAIN}"), txt)]);
    let env = TestEnv::builder()
        .relay_port(postfix.addr.port())
        .set(
            "dkim",
            "keys",
            &format!(
                "[{{domain: {DOMAIN}, selector: old, key_file: {}}}]",
                key.display()
            ),
        )
        .list("dev", "posting: members\nsubject_prefix: '[dev]'\n")
        .build();
    env.add_members("dev", &["a@example.net"]);
    let d = env.start().await;
    let text = "Gr\u{fc}\u{df}e aus K\u{f6}ln";
    post(d.smtp_addr(), "a@example.net", "dev", "old relay", text).await;
    assert!(
        wait_until(Duration::from_secs(60), || !sink.transactions().is_empty()).await,
        "Postfix did not relay the post"
    );
    let t = &sink.transactions()[0];
    let shown = String::from_utf8_lossy(&t.data);
    // Postfix notes the protocol: SMTP after HELO, ESMTP after EHLO
    let received = shown.lines().next().unwrap_or_default().to_string()
        + shown.lines().nth(1).unwrap_or_default()
        + shown.lines().nth(2).unwrap_or_default();
    assert!(received.contains("with SMTP id"), "{shown}");
    assert!(t.data.is_ascii(), "{shown}");
    let m = mail_parser::MessageParser::default()
        .parse(&t.data)
        .unwrap();
    assert!(m.body_text(0).unwrap().contains(text), "{shown}");
    assert_eq!(
        verify(&zone, &t.data).await,
        vec![(DkimResult::Pass, DOMAIN.to_string())],
        "{shown}"
    );
    d.shutdown().await;
}
