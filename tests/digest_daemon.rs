//! Digests through the running daemon: issues queued by the digest worker
//! and by the count trigger go out through the delivery worker to the
//! capturing sink (the relay), with the list's envelope sender, one body
//! per format, and parse back as digests.

mod common;

use common::sink::Sink;
use common::{run_cli, wait_until, TestEnv, DOMAIN};
use listd::digest;
use listd::store::{self, members, members::DeliveryMode};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::time::Duration;

fn add(env: &TestEnv, list: &str, addr: &str, mode: DeliveryMode) {
    let conn = env.store();
    let a = listd::address::Address::parse(addr).unwrap();
    members::add(
        &conn,
        list,
        &a.to_string(),
        &a.key(),
        None,
        mode,
        store::now(),
    )
    .unwrap();
}

/// Records posts the way `distribute` does (bytes stored once, then
/// `digest::accumulate` in the same transaction), with a given config.
fn record(env: &TestEnv, ctx: &listd::handler::Ctx, subjects: &[&str]) -> Vec<Vec<u8>> {
    let mut conn = env.store();
    let list = ctx.config.list("dev").unwrap();
    let mut out = Vec::new();
    for s in subjects {
        let bytes =
            common::message("ann@example.org", &format!("dev@{DOMAIN}"), s, "body").into_bytes();
        let tx = conn.transaction().unwrap();
        let id = store::spool::insert_outbound(&tx, "dev-bounces@x", &bytes, store::now()).unwrap();
        digest::accumulate(&tx, list, id, store::now()).unwrap();
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
    let (code, _, err) = run_cli(&env, &["digest", "send", "dev"]);
    assert_eq!(code, 0, "{err}");
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

/// Posts over SMTP: members in `each` mode get every post by itself, digest
/// members get none of them individually, and the digest that the count
/// trigger closes holds the posts byte for byte as the others received them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_members_get_the_digest_instead_of_each_post() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "dev",
            "subject_prefix: \"[dev]\"\nfooter: true\ndigest:\n  max_messages: 2\n  schedule: none\n",
        )
        .build();
    add(&env, "dev", "ann@example.org", DeliveryMode::Each);
    add(&env, "dev", "dig@example.org", DeliveryMode::DigestMime);
    add(&env, "dev", "pl@example.org", DeliveryMode::DigestPlain);
    let daemon = env.start().await;
    let list = format!("dev@{DOMAIN}");
    for s in ["first", "second"] {
        let r = common::send(
            daemon.smtp_addr(),
            "ann@example.org",
            &[&list],
            &common::message("ann@example.org", &list, s, "hello"),
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    daemon.wakers.pipeline.notify_one();
    assert!(
        wait_until(Duration::from_secs(30), || sink.transactions().len() >= 4).await,
        "two posts to ann, one digest each to dig and pl: got {}",
        sink.transactions().len()
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            env.count("jobs", "state <> 'done'") == 0
                && env.count("incoming", "state <> 'done'") == 0
        })
        .await,
        "every job finished"
    );
    let txs = sink.transactions();
    let to = |a: &str| -> Vec<&common::sink::Transaction> {
        txs.iter()
            .filter(|t| t.rcpts.iter().any(|r| r == a))
            .collect()
    };
    let ann = to("ann@example.org");
    assert_eq!(ann.len(), 2, "each member gets each post");
    let dig = to("dig@example.org");
    let pl = to("pl@example.org");
    assert_eq!(
        dig.len(),
        1,
        "the digest member gets one digest and no single post"
    );
    assert_eq!(pl.len(), 1);
    let m = MessageParser::default().parse(&dig[0].data).unwrap();
    assert_eq!(m.subject(), Some("dev Digest, Vol 1, Issue 1"));
    let PartType::Multipart(ch) = &m.parts[0].body else {
        panic!()
    };
    let PartType::Multipart(parts) = &m.parts[ch[1] as usize].body else {
        panic!()
    };
    assert_eq!(parts.len(), 2);
    // The two posts may reach the sink in either order (parallel relay
    // connections); pair each digest part with the post of its subject.
    let subject_of = |data: &[u8]| {
        MessageParser::default()
            .parse(data)
            .and_then(|m| m.subject().map(str::to_string))
    };
    let mut seen = Vec::new();
    for id in parts {
        let PartType::Message(inner) = &m.parts[*id as usize].body else {
            panic!("digest part {id} is not message/rfc822")
        };
        let subject = inner.subject().map(str::to_string);
        let post = ann
            .iter()
            .find(|t| subject_of(&t.data) == subject)
            .unwrap_or_else(|| panic!("no post to ann with subject {subject:?}"));
        // the post as distributed, without the list's footer: ann's copy is
        // the digest's part with the footer appended to its one text body
        let raw = inner.raw_message();
        let kept = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        assert!(
            post.data.starts_with(kept),
            "the digest holds the post as distributed, up to the footer"
        );
        assert!(
            contains(&post.data, LIST_FOOTER),
            "ann's copy has the footer"
        );
        assert!(
            !contains(raw, LIST_FOOTER),
            "no footer inside the digest's copy"
        );
        seen.push(subject);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            Some("[dev] first".to_string()),
            Some("[dev] second".to_string())
        ],
        "both posts, once each"
    );
    // each digest ends with its one footer; the list footer is in neither
    for d in [&dig[0].data, &pl[0].data] {
        assert!(!contains(d, LIST_FOOTER), "{}", String::from_utf8_lossy(d));
        assert_eq!(
            String::from_utf8_lossy(d)
                .matches("To leave the list or change how you get it")
                .count(),
            1
        );
    }
    let p = MessageParser::default().parse(&pl[0].data).unwrap();
    let body = p.body_text(0).unwrap();
    assert!(body.contains("1. [dev] first (ann@example.org)"), "{body}");
    assert!(body.contains("2. [dev] second (ann@example.org)"), "{body}");
    // the archive keeps the posts without the footer too
    let mbox = std::fs::read_dir(env.config().data_dir.join("archive/dev"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(
        String::from_utf8_lossy(&mbox)
            .matches("[dev] first")
            .count(),
        1
    );
    assert!(!contains(&mbox, LIST_FOOTER));
    daemon.shutdown().await;
}

/// The site `footer` template's own line.
const LIST_FOOTER: &[u8] = b"To unsubscribe, send a message to";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A post held for moderation is not in the digest; approving it
/// distributes it, and only then does it enter the digest.
#[test]
fn held_posts_enter_the_digest_once_approved() {
    let env = TestEnv::builder()
        .list("dev", "digest:\n  max_messages: 10\n  schedule: none\n")
        .build();
    add(&env, "dev", "ann@example.org", DeliveryMode::Each);
    add(&env, "dev", "dig@example.org", DeliveryMode::DigestMime);
    let now = store::now();
    let list = format!("dev@{DOMAIN}");
    {
        let conn = env.store();
        let envelope = store::spool::Envelope {
            mail_from: "stranger@example.net".into(),
            rcpts: vec![(
                list.clone(),
                listd::routing::Route::Post { list: "dev".into() }.into(),
            )],
            client_ip: Some("127.0.0.1".into()),
            helo: "test".into(),
            protocol: "ESMTP".into(),
        };
        let bytes = common::message("stranger@example.net", &list, "from outside", "hi");
        store::spool::insert_inbound(&conn, &envelope, bytes.as_bytes(), now).unwrap();
    }
    assert_eq!(env.drain_at(now), 1);
    assert_eq!(
        env.count("held", "state = 'held'"),
        1,
        "a non-member's post is held"
    );
    assert_eq!(
        digest::pending(&env.store(), "dev").unwrap().posts,
        0,
        "held posts are not in the digest"
    );
    let held_id: i64 = env
        .store()
        .query_row("SELECT id FROM held", [], |r| r.get(0))
        .unwrap();
    let ctx = env.ctx();
    let mut conn = env.store();
    let tx = conn.transaction().unwrap();
    let out = listd::moderation::act(
        &ctx,
        &tx,
        held_id,
        listd::moderation::ModAction::Approve,
        "owner@example.org",
        None,
        now + 60,
    )
    .unwrap();
    assert!(
        matches!(out, listd::moderation::ActOutcome::Done(_)),
        "{out:?}"
    );
    tx.commit().unwrap();
    assert_eq!(
        digest::pending(&env.store(), "dev").unwrap().posts,
        1,
        "approved: now in the digest"
    );
    let c = digest::send_now(&ctx, &mut conn, "dev", now + 120)
        .unwrap()
        .unwrap();
    assert_eq!((c.posts, c.mime_rcpts), (1, 1));
}

/// A post whose count trigger fires commits without building the digest:
/// its pipeline transaction leaves the issue due, not closed. The digest
/// worker closes it in its own transaction and the digest reaches the
/// relay; once running, the worker is woken by the pipeline (well before
/// its periodic tick) for the next issue that falls due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_marks_the_digest_due_and_the_worker_closes_it() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "digest:\n  max_messages: 2\n  schedule: none\n")
        .build();
    add(&env, "dev", "ann@example.org", DeliveryMode::Each);
    add(&env, "dev", "dig@example.org", DeliveryMode::DigestMime);
    let r = Robot {
        env: &env,
        t0: store::now(),
    };
    r.post("one");
    r.post("two"); // the count trigger fires in this post's transaction
    let due: Option<String> = env
        .store()
        .query_row("SELECT due FROM digest_state WHERE list = 'dev'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        due.as_deref(),
        Some("count"),
        "the post marked the issue due"
    );
    assert_eq!(env.count("digest_issues", ""), 0, "and closed nothing");
    assert_eq!(env.count("jobs", "kind = 'digest'"), 0, "no digest built");
    assert_eq!(
        env.count("jobs", "kind = 'post'"),
        2,
        "both posts committed"
    );
    assert_eq!(digest::pending(&env.store(), "dev").unwrap().posts, 2);

    let daemon = env.start().await;
    let digests_to_dig = || {
        sink.transactions()
            .into_iter()
            .filter(|t| t.rcpts == ["dig@example.org"])
            .map(|t| {
                let m = MessageParser::default().parse(&t.data).unwrap();
                m.subject().unwrap_or_default().to_string()
            })
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(20), || !digests_to_dig().is_empty()).await,
        "the worker closes the due issue and the digest reaches the relay"
    );
    assert_eq!(digests_to_dig(), ["dev Digest, Vol 1, Issue 1"]);
    assert_eq!(
        env.count("digest_issues", "trigger = 'count' AND posts = 2"),
        1
    );

    // The worker has ticked; the next tick is TICK_EVERY away. Two posts
    // over SMTP: the pipeline's wake closes issue 2 long before that.
    let started = std::time::Instant::now();
    let list = format!("dev@{DOMAIN}");
    for s in ["three", "four"] {
        let msg = common::message("ann@example.org", &list, s, "hello");
        let reply = common::send(daemon.smtp_addr(), "ann@example.org", &[&list], &msg).await;
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    assert!(
        wait_until(digest::TICK_EVERY / 2, || digests_to_dig().len() == 2).await,
        "woken by the pipeline, not by the periodic tick"
    );
    assert!(started.elapsed() < digest::TICK_EVERY);
    assert_eq!(
        digests_to_dig(),
        ["dev Digest, Vol 1, Issue 1", "dev Digest, Vol 1, Issue 2"]
    );
    daemon.shutdown().await;
}

struct Robot<'a> {
    env: &'a TestEnv,
    t0: i64,
}

impl Robot<'_> {
    fn inbound(&self, from: &str, rcpt: &str, route: listd::routing::Route, msg: String) {
        let conn = self.env.store();
        let envelope = store::spool::Envelope {
            mail_from: from.into(),
            rcpts: vec![(rcpt.to_string(), route.into())],
            client_ip: Some("127.0.0.1".into()),
            helo: "test".into(),
            protocol: "ESMTP".into(),
        };
        store::spool::insert_inbound(&conn, &envelope, msg.as_bytes(), self.t0).unwrap();
        assert_eq!(self.env.drain_at(self.t0), 1);
    }

    fn post(&self, subject: &str) {
        let list = format!("dev@{DOMAIN}");
        let msg = common::message("ann@example.org", &list, subject, "text");
        self.inbound(
            "ann@example.org",
            &list,
            listd::routing::Route::Post { list: "dev".into() },
            msg,
        );
    }

    /// `set dev MODE` by mail from `who`, through the robot, and the
    /// member's confirmation (a reply to the token address it was mailed).
    fn set(&self, who: &str, mode: &str) {
        let request = format!("dev-request@{DOMAIN}");
        let msg = common::message(who, &request, "commands", &format!("set dev {mode}\r\nend"));
        self.inbound(
            who,
            &request,
            listd::routing::Route::Request { list: "dev".into() },
            msg,
        );
        let asked: Vec<u8> = self
            .env
            .store()
            .query_row(
                "SELECT m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
                 JOIN job_rcpts r ON r.job_id = j.id WHERE r.rcpt = ?1 ORDER BY j.id DESC LIMIT 1",
                [who],
                |r| r.get(0),
            )
            .unwrap();
        let asked = mail_parser::MessageParser::default().parse(&asked).unwrap();
        let token = asked.subject().unwrap().strip_prefix("confirm ").unwrap();
        let confirm = format!("dev-confirm+{token}@{DOMAIN}");
        let reply = common::message(who, &confirm, "Re: confirm", "");
        self.inbound(
            who,
            &confirm,
            listd::routing::Route::Confirm {
                list: "dev".into(),
                token: token.into(),
            },
            reply,
        );
    }

    /// Expands every pending fan-out, as the delivery worker does.
    fn expand_fanouts(&self) {
        let config = self.env.config();
        let mut conn = self.env.store();
        let jobs: Vec<i64> = conn
            .prepare("SELECT id FROM jobs WHERE expanded = 0")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let tx = conn.transaction().unwrap();
        for j in jobs {
            listd::delivery::queue::expand_chunk(&tx, &config, j, 100_000, self.t0).unwrap();
        }
        tx.commit().unwrap();
    }

    /// Who the post fan-outs went to, in post order.
    fn singles(&self) -> Vec<String> {
        self.env
            .store()
            .prepare("SELECT b.rcpts FROM batches b JOIN jobs j ON j.id = b.job_id WHERE j.kind = 'post' ORDER BY j.id, b.id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn mode(&self, who: &str) -> DeliveryMode {
        let a = listd::address::Address::parse(who).unwrap();
        members::get(&self.env.store(), "dev", &a.key())
            .unwrap()
            .unwrap()
            .mode
    }

    /// Sends the digest now; the subjects each recipient's body holds.
    fn digest(&self) -> Vec<(String, Vec<String>)> {
        let ctx = self.env.ctx();
        let mut conn = self.env.store();
        let c = digest::send_now(&ctx, &mut conn, "dev", self.t0 + 10)
            .unwrap()
            .unwrap();
        let rows: Vec<(String, Vec<u8>)> = conn
            .prepare(
                "SELECT b.rcpts, m.bytes FROM digest_jobs d JOIN messages m ON m.id = d.message_id
                 JOIN batches b ON b.job_id = d.job_id WHERE d.issue_id = ?1 ORDER BY b.rcpts",
            )
            .unwrap()
            .query_map([c.issue_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.into_iter()
            .map(|(who, body)| {
                let m = MessageParser::default().parse(&body).unwrap();
                let PartType::Multipart(ch) = &m.parts[0].body else {
                    panic!()
                };
                let PartType::Multipart(parts) = &m.parts[ch[1] as usize].body else {
                    panic!()
                };
                let subjects = parts
                    .iter()
                    .map(|i| match &m.parts[*i as usize].body {
                        PartType::Message(inner) => inner.subject().unwrap_or_default().to_string(),
                        _ => panic!(),
                    })
                    .collect();
                (who, subjects)
            })
            .collect()
    }
}

fn robot_env() -> TestEnv {
    let env = TestEnv::builder()
        .list("dev", "digest:\n  max_messages: 10\n  schedule: none\n")
        .build();
    add(&env, "dev", "ann@example.org", DeliveryMode::Each);
    add(&env, "dev", "old@example.org", DeliveryMode::DigestMime);
    env
}

/// `set dev digest` by mail after the post went out to the member by
/// itself: the digest does not send it to them again.
#[test]
fn set_digest_by_mail_after_the_fan_out_does_not_resend() {
    let env = robot_env();
    let r = Robot {
        env: &env,
        t0: store::now(),
    };
    r.post("before");
    r.expand_fanouts();
    assert_eq!(r.singles(), ["ann@example.org"]);
    r.set("ann@example.org", "digest");
    assert_eq!(
        r.mode("ann@example.org"),
        DeliveryMode::DigestMime,
        "the robot switched the mode"
    );
    r.post("after");
    r.expand_fanouts();
    assert_eq!(
        r.singles(),
        ["ann@example.org"],
        "no single post after the switch"
    );
    let got = r.digest();
    let want: Vec<(String, Vec<String>)> = vec![
        ("ann@example.org".into(), vec!["after".into()]),
        (
            "old@example.org".into(),
            vec!["before".into(), "after".into()],
        ),
    ];
    assert_eq!(got, want);
}

/// A switch that comes before the delivery worker expanded a post's
/// fan-out: that fan-out skips the new digest member, so the post is in
/// their digest (not lost); a member leaving digests before the fan-out
/// reached them gets the post by itself, not in a last digest.
#[test]
fn a_switch_before_the_fan_out_reached_the_member_loses_nothing() {
    let env = robot_env();
    let r = Robot {
        env: &env,
        t0: store::now(),
    };
    r.post("queued");
    // the fan-out of "queued" is not expanded yet
    r.set("ann@example.org", "digest");
    r.set("old@example.org", "each");
    assert_eq!(r.mode("old@example.org"), DeliveryMode::Each);
    r.expand_fanouts();
    assert_eq!(
        r.singles(),
        ["old@example.org"],
        "old gets it by itself, ann does not"
    );
    assert_eq!(env.count("digest_leavers", ""), 0, "old is owed nothing");
    let got = r.digest();
    let want: Vec<(String, Vec<String>)> = vec![("ann@example.org".into(), vec!["queued".into()])];
    assert_eq!(got, want);
}

/// A digest carries the same List-* fields as the list's posts, and
/// `X-Loop`; every header line listd writes in it fits in 78 characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_carry_the_posts_list_fields_folded() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set("web", "archive_url", "https://lists.example.org/archive")
        .list(
            "dev",
            "description: A rather long description of the development list, to fold\nposting: members\ndigest:\n  enabled: true\n  schedule: none\n",
        )
        .build();
    add(&env, "dev", "each@example.org", DeliveryMode::Each);
    add(&env, "dev", "mime@example.org", DeliveryMode::DigestMime);
    add(&env, "dev", "plain@example.org", DeliveryMode::DigestPlain);
    let d = env.start().await;
    let to = format!("dev@{DOMAIN}");
    common::send(
        d.smtp_addr(),
        "each@example.org",
        &[&to],
        &common::message("each@example.org", &to, "a post", "text"),
    )
    .await
    .expect(250);
    assert!(wait_until(Duration::from_secs(20), || sink.delivered_count() >= 1).await);
    let (code, _, err) = run_cli(&env, &["digest", "send", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(Duration::from_secs(20), || sink.delivered_count() >= 3).await);
    let txs = sink.transactions();
    let to_ = |r: &str| txs.iter().find(|t| t.rcpts[0] == r).unwrap().data.clone();
    let post = to_("each@example.org");
    let field = |m: &[u8], name: &str| -> Option<String> {
        let split = listd::mime::header_block::split(m);
        split.raw_value(m, name).map(|v| {
            String::from_utf8_lossy(&listd::mime::header_block::unfold(v))
                .trim()
                .to_string()
        })
    };
    for digest in [to_("mime@example.org"), to_("plain@example.org")] {
        for name in [
            "List-Id",
            "List-Help",
            "List-Subscribe",
            "List-Unsubscribe",
            "List-Post",
            "List-Owner",
            "List-Archive",
        ] {
            assert!(field(&post, name).is_some(), "{name} on the post");
            assert_eq!(field(&digest, name), field(&post, name), "{name}");
        }
        assert_eq!(field(&digest, "X-Loop"), Some(to.clone()));
        // the header block, and the digest's own MIME part headers
        let text = String::from_utf8_lossy(&digest).into_owned();
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        for line in head.split("\r\n").chain(
            text.split("\r\n")
                .filter(|l| l.starts_with("Content-Type: multipart/")),
        ) {
            assert!(line.len() <= 78, "{} chars: {line}", line.len());
        }
    }
    d.shutdown().await;
}
