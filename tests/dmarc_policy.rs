//! DMARC verdicts feeding the posting policy, over real SMTP into the
//! in-process daemon (static zone, no network; the relay is the capturing
//! sink, output parsed with mail-parser): a member's post failing DMARC is
//! held when the list requires a pass; on an announce list a forged owner
//! From: is held for confirmation while a DMARC-pass one is distributed;
//! each mitigation mode, on direct posts, owner forwards, approved held
//! posts and the digest.

mod auth_support;
mod common;

use auth_support::TestKey;
use common::sink::Sink;
use common::{message, send, wait_until, TestEnv, DOMAIN};
use mail_parser::MessageParser;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn settle(env: &TestEnv) {
    let ok = wait_until(WAIT, || {
        env.count("incoming", "state = 'incoming'") == 0
            && env.count("jobs", "state <> 'done'") == 0
    })
    .await;
    assert!(ok, "the queues settle");
}

fn subjects(sink: &Sink, rcpt: &str) -> Vec<String> {
    sink.transactions()
        .into_iter()
        .filter(|t| t.rcpts.iter().any(|r| r == rcpt))
        .filter_map(|t| {
            MessageParser::default()
                .parse(&t.data)
                .and_then(|m| m.subject().map(str::to_string))
        })
        .collect()
}

fn held_reason(env: &TestEnv, subject: &str) -> Option<String> {
    env.store()
        .query_row(
            "SELECT reason FROM held WHERE subject = ?1",
            [subject],
            |r| r.get(0),
        )
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_post_failing_dmarc_is_held_when_a_pass_is_required() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .zone(
            "good.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
             _dmarc.good.example TXT \"v=DMARC1; p=none\"\n",
        )
        .list(
            "strict",
            "posting: members\nrequire_dmarc_pass_for_members: true\ndmarc_mitigation: never\nowners: [o@owner.example]\n",
        )
        .list("lax", "posting: members\ndmarc_mitigation: never\nowners: [o@owner.example]\n")
        .build();
    env.add_members("strict", &["ann@good.example", "r@reader.example"]);
    env.add_members("lax", &["ann@good.example", "r@reader.example"]);
    let d = env.start().await;
    let a = d.smtp_addr();
    for (list, mail_from, subject) in [
        ("strict", "ann@good.example", "strict-pass"),
        ("strict", "forger@evil.example", "strict-fail"),
        ("lax", "forger@evil.example", "lax-fail"),
    ] {
        let to = format!("{list}@{DOMAIN}");
        send(
            a,
            mail_from,
            &[&to],
            &message("ann@good.example", &to, subject, "b"),
        )
        .await
        .expect(250);
    }
    settle(&env).await;
    let got = subjects(&sink, "r@reader.example");
    assert!(got.iter().any(|s| s.contains("strict-pass")), "{got:?}");
    assert!(got.iter().any(|s| s.contains("lax-fail")), "{got:?}");
    assert!(!got.iter().any(|s| s.contains("strict-fail")), "{got:?}");
    assert_eq!(
        held_reason(&env, "strict-fail").as_deref(),
        Some("dmarc-fail")
    );
    assert_eq!(held_reason(&env, "strict-pass"), None);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announce_post_goes_out_on_a_dmarc_pass_and_a_forged_one_waits() {
    let sink = Sink::start();
    let key = TestKey::new("owner.example", "s1");
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .zone(&format!(
            "_dmarc.owner.example TXT \"v=DMARC1; p=reject\"\n{}",
            key.zone_line()
        ))
        .list(
            "news",
            "posting: announce\nnonmember_posts: hold\ndmarc_mitigation: never\nowners: [boss@owner.example]\n",
        )
        .build();
    env.add_members("news", &["r@reader.example"]);
    let d = env.start().await;
    let to = format!("news@{DOMAIN}");
    // signed by the owner's domain: DMARC pass, no confirmation needed
    let signed = key.sign(&message("boss@owner.example", &to, "genuine", "news"));
    send(d.smtp_addr(), "boss@owner.example", &[&to], &signed)
        .await
        .expect(250);
    // the same From:, unsigned, from elsewhere: DMARC fails
    let forged = message("boss@owner.example", &to, "forged", "buy now");
    send(d.smtp_addr(), "x@evil.example", &[&to], &forged)
        .await
        .expect(250);
    settle(&env).await;
    let got = subjects(&sink, "r@reader.example");
    assert!(got.iter().any(|s| s.contains("genuine")), "{got:?}");
    assert!(!got.iter().any(|s| s.contains("forged")), "{got:?}");
    assert_eq!(
        held_reason(&env, "forged").as_deref(),
        Some("sender-unverified")
    );
    d.shutdown().await;
}

/// The parsed copy `rcpt` got of the post with this subject.
fn copy_of(sink: &Sink, rcpt: &str, subject: &str) -> Vec<u8> {
    sink.transactions()
        .into_iter()
        .filter(|t| t.rcpts.iter().any(|r| r == rcpt))
        .map(|t| t.data)
        .find(|d| {
            MessageParser::default()
                .parse(d)
                .and_then(|m| m.subject().map(|s| s.contains(subject)))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("{rcpt} got no `{subject}`"))
}

fn from_of(data: &[u8]) -> (Option<String>, Option<String>) {
    let m = MessageParser::default().parse(data).unwrap();
    let f = m.from().unwrap().first().unwrap();
    (
        f.name.as_deref().map(str::to_string),
        f.address.as_deref().map(str::to_string),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mitigation_mode_on_a_post_from_a_reject_domain() {
    let sink = Sink::start();
    let lists = ["auto", "always", "never", "wrap"];
    let mut b = TestEnv::builder().relay_port(sink.port()).zone(
        "strict.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
         _dmarc.strict.example TXT \"v=DMARC1; p=reject\"\n\
         loose.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
         _dmarc.loose.example TXT \"v=DMARC1; p=none\"\n",
    );
    for l in lists {
        b = b.list(
            l,
            &format!("posting: anyone\nreply_to: list\ndmarc_mitigation: {l}\nowners: [o@owner.example]\n"),
        );
    }
    let env = b.build();
    for l in lists {
        env.add_members(l, &["r@reader.example"]);
    }
    let d = env.start().await;
    for l in lists {
        let to = format!("{l}@{DOMAIN}");
        for (from, subject) in [
            (
                "Alice Example <alice@strict.example>",
                format!("{l}-strict"),
            ),
            ("Lou <lou@loose.example>", format!("{l}-loose")),
        ] {
            let addr = from.split('<').nth(1).unwrap().trim_end_matches('>');
            send(
                d.smtp_addr(),
                addr,
                &[&to],
                &message(from, &to, &subject, "hello"),
            )
            .await
            .expect(250);
        }
    }
    // the owner alias of an `auto` list forwards with the same mitigation
    let owner = format!("auto-owner@{DOMAIN}");
    send(
        d.smtp_addr(),
        "alice@strict.example",
        &[&owner],
        &message(
            "Alice Example <alice@strict.example>",
            &owner,
            "to-owner",
            "hi",
        ),
    )
    .await
    .expect(250);
    settle(&env).await;
    let r = "r@reader.example";
    let munged = |list: &str, name: &str| {
        (
            Some(format!("{name} via {list}")),
            Some(format!("{list}@{DOMAIN}")),
        )
    };

    // auto: p=reject is munged, p=none is not
    let c = copy_of(&sink, r, "auto-strict");
    assert_eq!(from_of(&c), munged("auto", "Alice Example"));
    let m = MessageParser::default().parse(&c).unwrap();
    let rt: Vec<&str> = m
        .reply_to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address.as_deref())
        .collect();
    assert_eq!(
        rt,
        [format!("auto@{DOMAIN}").as_str(), "alice@strict.example"],
        "reply_to: list, then the author"
    );
    assert_eq!(
        m.header_raw("X-Original-From").map(str::trim),
        Some("Alice Example <alice@strict.example>")
    );
    assert_eq!(
        from_of(&copy_of(&sink, r, "auto-loose")).1.as_deref(),
        Some("lou@loose.example")
    );
    // always: both munged
    assert_eq!(
        from_of(&copy_of(&sink, r, "always-strict")),
        munged("always", "Alice Example")
    );
    assert_eq!(
        from_of(&copy_of(&sink, r, "always-loose")),
        munged("always", "Lou")
    );
    // never: neither
    assert_eq!(
        from_of(&copy_of(&sink, r, "never-strict")).1.as_deref(),
        Some("alice@strict.example")
    );
    // wrap: a new message from the list, the post enclosed unchanged
    let c = copy_of(&sink, r, "wrap-strict");
    assert_eq!(from_of(&c), munged("wrap", "Alice Example"));
    let m = MessageParser::default().parse(&c).unwrap();
    let inner = m
        .attachments()
        .find_map(|p| p.message())
        .expect("the post enclosed as message/rfc822");
    assert_eq!(
        inner.from().unwrap().first().unwrap().address.as_deref(),
        Some("alice@strict.example")
    );
    assert_eq!(inner.body_text(0).as_deref().map(str::trim), Some("hello"));
    assert_eq!(
        from_of(&copy_of(&sink, r, "wrap-loose")).1.as_deref(),
        Some("lou@loose.example")
    );
    // the owners' copy
    let c = copy_of(&sink, "o@owner.example", "to-owner");
    assert_eq!(from_of(&c), munged("auto", "Alice Example"));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_robot_needs_no_confirmation_from_a_dmarc_pass() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .zone(
            "good.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
             _dmarc.good.example TXT \"v=DMARC1; p=none\"\n",
        )
        .list(
            "dev",
            "subscription: confirm\nunsubscription: confirm\nowners: [o@owner.example]\n",
        )
        .build();
    env.add_members("dev", &["ann@good.example", "eve@good.example"]);
    let d = env.start().await;
    let req = format!("dev-request@{DOMAIN}");
    // proven: unsubscribed at once
    send(
        d.smtp_addr(),
        "ann@good.example",
        &[&req],
        &message("ann@good.example", &req, "x", "unsubscribe dev"),
    )
    .await
    .expect(250);
    // the same From:, forged from elsewhere: a confirmation goes to the address
    send(
        d.smtp_addr(),
        "x@evil.example",
        &[&req],
        &message("eve@good.example", &req, "x", "unsubscribe dev"),
    )
    .await
    .expect(250);
    settle(&env).await;
    assert_eq!(env.count("members", "address = 'ann@good.example'"), 0);
    assert_eq!(env.count("members", "address = 'eve@good.example'"), 1);
    assert!(
        sink.transactions()
            .iter()
            .any(|t| t.rcpts.iter().any(|r| r == "eve@good.example")
                && String::from_utf8_lossy(&t.data).contains("confirm")),
        "eve is asked to confirm"
    );
    d.shutdown().await;
}

/// Mitigation on the other paths to distribution: a held post approved by
/// a moderator, and the digest that encloses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_held_post_and_its_digest_are_mitigated_too() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .zone(
            "strict.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
             _dmarc.strict.example TXT \"v=DMARC1; p=reject\"\n",
        )
        .list(
            "dev",
            "posting: members\nnonmember_posts: hold\nmoderators: [m@mod.example]\ndigest:\n  enabled: true\n  schedule: none\n",
        )
        .build();
    env.add_members("dev", &["r@reader.example"]);
    env.add_members_mode(
        "dev",
        &["d@reader.example"],
        listd::store::members::DeliveryMode::DigestMime,
    );
    let d = env.start().await;
    let to = format!("dev@{DOMAIN}");
    send(
        d.smtp_addr(),
        "alice@strict.example",
        &[&to],
        &message(
            "Alice Example <alice@strict.example>",
            &to,
            "held-strict",
            "hello",
        ),
    )
    .await
    .expect(250);
    assert!(wait_until(WAIT, || held_reason(&env, "held-strict").is_some()).await);
    let id: i64 = env
        .store()
        .query_row(
            "SELECT id FROM held WHERE subject = 'held-strict'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (code, _, err) = common::run_cli(&env, &["held", "approve", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    settle(&env).await;
    let c = copy_of(&sink, "r@reader.example", "held-strict");
    assert_eq!(
        from_of(&c),
        (
            Some("Alice Example via dev".to_string()),
            Some(format!("dev@{DOMAIN}"))
        )
    );
    // the digest encloses the post as distributed: munged
    let (code, _, err) = common::run_cli(&env, &["digest", "send", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        wait_until(WAIT, || sink
            .transactions()
            .iter()
            .any(|t| t.rcpts.iter().any(|r| r == "d@reader.example")))
        .await
    );
    let digest = sink
        .transactions()
        .into_iter()
        .find(|t| t.rcpts.iter().any(|r| r == "d@reader.example"))
        .unwrap();
    let m = MessageParser::default().parse(&digest.data).unwrap();
    let post = m
        .parts
        .iter()
        .find_map(|p| match &p.body {
            mail_parser::PartType::Message(n)
                if n.subject() == Some("[dev] held-strict")
                    || n.subject().is_some_and(|s| s.contains("held-strict")) =>
            {
                Some(n)
            }
            _ => None,
        })
        .expect("the post in the digest");
    assert_eq!(
        post.from().unwrap().first().unwrap().address.as_deref(),
        Some(format!("dev@{DOMAIN}").as_str())
    );
    d.shutdown().await;
}

/// An owner's command by mail counts only with a DMARC pass when the
/// owner's domain publishes DMARC: a forged owner `From:` gets no roster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_command_from_a_dmarc_domain_needs_a_pass() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .zone(
            "strict.example TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
             _dmarc.strict.example TXT \"v=DMARC1; p=reject\"\n",
        )
        .list("dev", "owners: [o@strict.example]\nwho: owners\n")
        .build();
    env.add_members("dev", &["r@reader.example"]);
    let d = env.start().await;
    let req = format!("dev-request@{DOMAIN}");
    // forged: the envelope is elsewhere, no signature: DMARC fails
    send(
        d.smtp_addr(),
        "x@evil.example",
        &[&req],
        &message("o@strict.example", &req, "forged", "who dev"),
    )
    .await
    .expect(250);
    settle(&env).await;
    let replies = |sink: &Sink| -> Vec<String> {
        sink.transactions()
            .into_iter()
            .filter(|t| t.rcpts.iter().any(|r| r == "o@strict.example"))
            .map(|t| String::from_utf8_lossy(&t.data).into_owned())
            .collect()
    };
    assert_eq!(
        replies(&sink).len(),
        1,
        "the robot answers the claimed owner"
    );
    assert!(
        !replies(&sink)[0].contains("r@reader.example"),
        "a forged owner gets no roster:\n{}",
        replies(&sink)[0]
    );
    // the real owner: SPF passes for the envelope, aligned with From:
    send(
        d.smtp_addr(),
        "o@strict.example",
        &[&req],
        &message("o@strict.example", &req, "real", "who dev"),
    )
    .await
    .expect(250);
    settle(&env).await;
    assert!(wait_until(WAIT, || replies(&sink).len() == 2).await);
    assert!(
        replies(&sink)[1].contains("r@reader.example"),
        "{}",
        replies(&sink)[1]
    );
    d.shutdown().await;
}
