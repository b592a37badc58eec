//! Bounce processing end to end: the corpus in `tests/bounces/` fed over
//! real SMTP to the in-process daemon at `dev-bounces+TAG@` (recipient,
//! status and kind read from each sample; spam/policy refusals, delay
//! warnings, auto-replies and bounces of bounces leave the score alone); a
//! forged flood counted once a day; unknown VERP tags dropped; the relay's
//! own 5xx scored like a DSN; and, on a fake clock through the real spool
//! and pipeline, threshold, disable with its re-enable token, probes,
//! removal and decay.

mod common;

use common::sink::Sink;
use common::*;
use listd::address::address_key;
use listd::store::{self, bounces};
use mail_parser::MessageParser;
use std::path::Path;
use std::time::Duration;

const D: &str = "lists.example.org";
const WAIT: Duration = Duration::from_secs(20);
/// A fake "now": noon UTC, so a few hours never cross a day.
const T0: i64 = 1_700_049_600;
const DAY: i64 = 86_400;

fn env_with(sink: Option<&Sink>, extra: &[(&str, &str)]) -> TestEnv {
    let mut b = TestEnv::builder()
        .list(
            "dev",
            "owners: [owner@example.org]\nposting: members\nverp: true\n",
        )
        .set("robot", "replies_per_hour", "1000");
    if let Some(s) = sink {
        b = b.relay_port(s.port());
    }
    for (k, v) in extra {
        b = b.set("bounce", k, v);
    }
    b.build()
}

fn verp_rcpt(member: &str) -> String {
    format!("dev-bounces+{}@{D}", member.replace('@', "="))
}

fn score_of(env: &TestEnv, member: &str) -> Option<bounces::Score> {
    bounces::score(&env.store(), "dev", &address_key(member)).unwrap()
}

fn is_disabled(env: &TestEnv, member: &str) -> Option<bool> {
    store::members::get(&env.store(), "dev", &address_key(member))
        .unwrap()
        .map(|m| m.disabled)
}

/// One line of `tests/bounces/manifest.txt`.
struct Sample {
    file: String,
    member: String,
    verp: bool,
    recipient: Option<String>,
    status: Option<String>,
    kind: String,
    score: f64,
}

fn corpus() -> Vec<Sample> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bounces");
    let text = std::fs::read_to_string(dir.join("manifest.txt")).unwrap();
    let opt = |s: &str| (s != "-").then(|| s.to_string());
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 7, "manifest line: {l}");
            Sample {
                file: f[0].into(),
                member: f[1].into(),
                verp: f[2] == "verp",
                recipient: opt(f[3]),
                status: opt(f[4]),
                kind: f[5].into(),
                score: f[6].parse().unwrap(),
            }
        })
        .collect()
}

fn sample_text(file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bounces")
        .join(file);
    std::fs::read_to_string(p).unwrap()
}

#[tokio::test]
async fn the_corpus_over_smtp_is_read_and_scored() {
    let samples = corpus();
    assert!(samples.len() >= 12);
    let env = env_with(None, &[]);
    let members: Vec<&str> = samples.iter().map(|s| s.member.as_str()).collect();
    env.add_members("dev", &members);
    let d = env.start().await;
    let mut n = 0;
    for s in &samples {
        // to the plain address the row holds what the sample itself says;
        // through VERP, the member the tag names (the same bounce twice in
        // a day counts once)
        let mut rcpts = vec![format!("dev-bounces@{D}")];
        if s.verp {
            rcpts.push(verp_rcpt(&s.member));
        }
        for rcpt in &rcpts {
            send(d.smtp_addr(), "", &[rcpt], &sample_text(&s.file))
                .await
                .expect(250);
            n += 1;
            assert!(
                wait_until(WAIT, || env.count("bounces", "1") == n).await,
                "{}: not recorded",
                s.file
            );
            let row: (Option<String>, Option<String>, String, Option<String>) = env
                .store()
                .query_row(
                    "SELECT recipient, status, kind, tag FROM bounces ORDER BY id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
            let tagged = row.3.is_some();
            assert_eq!(tagged, rcpt.contains('+'), "{}: tag", s.file);
            let expected = if tagged {
                Some(s.member.clone())
            } else {
                s.recipient.clone()
            };
            assert_eq!(row.0, expected, "{}: recipient", s.file);
            assert_eq!(row.1, s.status, "{}: status", s.file);
            assert_eq!(row.2, s.kind, "{}: kind", s.file);
        }
        let score = score_of(&env, &s.member).map_or(0.0, |x| x.score);
        assert_eq!(score, s.score, "{}: score of {}", s.file, s.member);
        assert_eq!(is_disabled(&env, &s.member), Some(false), "{}", s.file);
    }
    d.shutdown().await;
}

#[tokio::test]
async fn a_forged_flood_counts_once_and_unknown_tags_are_dropped() {
    let env = env_with(None, &[]);
    env.add_members("dev", &["ann@example.org"]);
    let d = env.start().await;
    let sample = sample_text("postfix-user-unknown.eml");
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    for _ in 0..30 {
        c.send_mail("", &[&verp_rcpt("ann@example.org")], &sample)
            .await
            .expect(250);
    }
    // a tag for no member, and one that is no address
    c.send_mail("", &[&verp_rcpt("nobody@example.org")], &sample)
        .await
        .expect(250);
    c.send_mail("", &[&format!("dev-bounces+garbage@{D}")], &sample)
        .await
        .expect(250);
    c.quit().await;
    assert!(wait_until(WAIT, || env.count("bounces", "1") == 32).await);
    d.shutdown().await;
    let s = score_of(&env, "ann@example.org").unwrap();
    assert_eq!(
        (s.score, s.counted),
        (1.0, 1),
        "30 bounces, one day: one count"
    );
    assert_eq!(is_disabled(&env, "ann@example.org"), Some(false));
    assert_eq!(env.count("bounce_scores", "1"), 1, "no score for strangers");
    assert_eq!(env.count("members", "1"), 1);
    // nothing was ever sent back to a bounce
    assert_eq!(env.count("jobs", "1"), 0);
}

/// The real spool and pipeline at a fake time (the daemon's worker would
/// use the clock): stores the bounce as intake does, then drains at `now`.
fn feed_at(env: &TestEnv, rcpt: &str, text: &str, now: i64) {
    let config = env.config();
    let route = listd::routing::route(&config, rcpt).unwrap();
    let envelope = store::spool::Envelope {
        mail_from: String::new(),
        rcpts: vec![(rcpt.to_string(), route.into())],
        client_ip: Some("127.0.0.1".into()),
        helo: "mx.example.org".into(),
        protocol: "ESMTP".into(),
    };
    let conn = env.store();
    store::spool::insert_inbound(&conn, &envelope, dot_stuff(text).as_bytes(), now).unwrap();
    assert_eq!(env.drain_at(now), 1);
}

/// Jobs queued after job `after`: (id, recipients, parsed subject, body, Reply-To).
fn jobs_after(env: &TestEnv, after: i64) -> Vec<(i64, Vec<String>, String, String, String)> {
    let conn = env.store();
    let mut stmt = conn
        .prepare(
            "SELECT j.id, m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
             WHERE j.id > ?1 ORDER BY j.id",
        )
        .unwrap();
    let rows: Vec<(i64, Vec<u8>)> = stmt
        .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.into_iter()
        .map(|(id, bytes)| {
            let rcpts: Vec<String> = conn
                .prepare("SELECT rcpt FROM job_rcpts WHERE job_id = ?1")
                .unwrap()
                .query_map([id], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let m = MessageParser::default().parse(&bytes).unwrap();
            let reply_to = m
                .reply_to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or("")
                .to_string();
            (
                id,
                rcpts,
                m.subject().unwrap_or("").to_string(),
                m.body_text(0).unwrap_or_default().to_string(),
                reply_to,
            )
        })
        .collect()
}

fn last_job(env: &TestEnv) -> i64 {
    env.store()
        .query_row("SELECT COALESCE(MAX(id), 0) FROM jobs", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn threshold_disables_then_probes_and_removal_on_a_fake_clock() {
    let env = env_with(None, &[]);
    let ann = "ann@example.org";
    env.add_members("dev", &[ann]);
    let hard = sample_text("postfix-user-unknown.eml");
    let soft = sample_text("gmail-mailbox-full.eml");
    env.add_members("dev", &["dora@gmail.example"]);
    // four days of hard bounces: 4.0, still on
    for day in 0..4 {
        feed_at(&env, &verp_rcpt(ann), &hard, T0 + day * DAY);
        // a second one the same day counts nothing
        feed_at(&env, &verp_rcpt(ann), &hard, T0 + day * DAY + 3600);
    }
    let s = score_of(&env, ann).unwrap();
    assert_eq!((s.score, s.counted), (4.0, 4));
    assert_eq!(is_disabled(&env, ann), Some(false));
    // soft bounces count half
    feed_at(&env, &verp_rcpt("dora@gmail.example"), &soft, T0);
    assert_eq!(score_of(&env, "dora@gmail.example").unwrap().score, 0.5);

    let before = last_job(&env);
    let t_disable = T0 + 4 * DAY;
    feed_at(&env, &verp_rcpt(ann), &hard, t_disable);
    assert_eq!(is_disabled(&env, ann), Some(true));
    let s = score_of(&env, ann).unwrap();
    assert_eq!(
        (s.score, s.disabled_at, s.probes),
        (5.0, Some(t_disable), 1)
    );
    let mails = jobs_after(&env, before);
    assert_eq!(mails.len(), 2, "the member's notice and the owners'");
    let member_notice = mails.iter().find(|m| m.1 == vec![ann.to_string()]).unwrap();
    assert!(
        member_notice.3.contains("notice 1 of 3"),
        "{}",
        member_notice.3
    );
    assert!(member_notice.4.starts_with("dev-confirm+"));
    let owners = mails
        .iter()
        .find(|m| m.1 == vec!["owner@example.org".to_string()])
        .unwrap();
    assert!(owners.2.contains("disabled"), "{}", owners.2);
    assert!(owners
        .3
        .contains(&format!("listd members enable dev {ann}")));

    // a bounce while disabled changes nothing
    feed_at(&env, &verp_rcpt(ann), &hard, t_disable + DAY);
    assert_eq!(score_of(&env, ann).unwrap().counted, 5);

    // probes every 7 days: nothing before, probe 2 and 3, then removal
    let probe_at = |n: i64| t_disable + n * 7 * DAY;
    let before = last_job(&env);
    env.drain_at(probe_at(1) - 60);
    assert!(jobs_after(&env, before).is_empty());
    env.drain_at(probe_at(1));
    let p2 = jobs_after(&env, before);
    assert_eq!(p2.len(), 1);
    assert_eq!(p2[0].1, vec![ann.to_string()]);
    assert!(p2[0].3.contains("notice 2 of 3"), "{}", p2[0].3);
    env.drain_at(probe_at(2));
    let p3 = jobs_after(&env, p2[0].0);
    assert!(p3[0].3.contains("notice 3 of 3"));
    assert_eq!(is_disabled(&env, ann), Some(true));
    env.drain_at(probe_at(3));
    assert_eq!(is_disabled(&env, ann), None, "removed");
    assert!(score_of(&env, ann).is_none());
    let told = jobs_after(&env, p3[0].0);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].1, vec!["owner@example.org".to_string()]);
    assert!(told[0].2.contains("removed"), "{}", told[0].2);
    // the rows stay as the record
    assert_eq!(env.count("bounces", "recipient = 'ann@example.org'"), 10);
}

#[test]
fn the_notice_token_re_enables_and_ends_the_probes() {
    let env = env_with(None, &[("threshold", "1")]);
    let ann = "ann@example.org";
    env.add_members("dev", &[ann]);
    let before = last_job(&env);
    feed_at(
        &env,
        &verp_rcpt(ann),
        &sample_text("postfix-user-unknown.eml"),
        T0,
    );
    assert_eq!(is_disabled(&env, ann), Some(true));
    let notice = jobs_after(&env, before)
        .into_iter()
        .find(|m| m.1 == vec![ann.to_string()])
        .unwrap();
    // the member replies to the notice: its Reply-To is the confirm address
    let reply = message(ann, &notice.4, &format!("Re: {}", notice.2), "yes");
    let config = env.config();
    let route = listd::routing::route(&config, &notice.4).unwrap();
    let envelope = store::spool::Envelope {
        mail_from: ann.into(),
        rcpts: vec![(notice.4.clone(), route.into())],
        client_ip: Some("127.0.0.1".into()),
        helo: "client".into(),
        protocol: "ESMTP".into(),
    };
    store::spool::insert_inbound(&env.store(), &envelope, reply.as_bytes(), T0 + 3600).unwrap();
    env.drain_at(T0 + 3600);
    assert_eq!(is_disabled(&env, ann), Some(false));
    assert!(score_of(&env, ann).is_none(), "score forgotten");
    // no probe comes any more
    let before = last_job(&env);
    env.drain_at(T0 + 30 * DAY);
    assert!(jobs_after(&env, before).is_empty());
    assert_eq!(is_disabled(&env, ann), Some(false));
}

#[test]
fn a_score_decays_after_stale_days_without_bounces() {
    let env = env_with(None, &[]);
    let ann = "ann@example.org";
    env.add_members("dev", &[ann]);
    let hard = sample_text("exim-user-unknown.eml");
    env.add_members("dev", &["hank@exim.example.net"]);
    let hank = "hank@exim.example.net";
    for day in 0..3 {
        feed_at(&env, &verp_rcpt(hank), &hard, T0 + day * DAY);
    }
    assert_eq!(score_of(&env, hank).unwrap().score, 3.0);
    // six days after the last: still counts on
    feed_at(&env, &verp_rcpt(hank), &hard, T0 + 8 * DAY);
    assert_eq!(score_of(&env, hank).unwrap().score, 4.0);
    // seven clear days: from 0 again
    feed_at(&env, &verp_rcpt(hank), &hard, T0 + 15 * DAY);
    assert_eq!(score_of(&env, hank).unwrap().score, 1.0);
    assert_eq!(is_disabled(&env, hank), Some(false));
    assert!(score_of(&env, ann).is_none());
}

#[test]
fn repeated_policy_refusals_are_reported_to_the_owners_once_a_day() {
    let env = env_with(None, &[]);
    let who = [
        "erin@gmail.example",
        "e2@gmail.example",
        "e3@gmail.example",
        "e4@gmail.example",
    ];
    env.add_members("dev", &who);
    let spam = sample_text("gmail-spam-5.7.1.eml");
    let before = last_job(&env);
    for (i, w) in who.iter().enumerate() {
        feed_at(&env, &verp_rcpt(w), &spam, T0 + i as i64 * 60);
        if i < 2 {
            assert!(jobs_after(&env, before).is_empty(), "reported too early");
        }
    }
    for w in who {
        assert!(score_of(&env, w).is_none(), "{w} was scored");
    }
    let told = jobs_after(&env, before);
    assert_eq!(told.len(), 1, "one report a day");
    assert_eq!(told[0].1, vec!["owner@example.org".to_string()]);
    assert!(told[0].3.contains("spam or by policy"), "{}", told[0].3);
    assert_eq!(env.count("bounces", "kind = 'policy'"), 4);
}

#[tokio::test]
async fn the_relays_own_5xx_scores_like_a_dsn() {
    let sink = Sink::start();
    sink.reply_to_rcpt(
        "ann@example.org",
        "550 5.1.1 <ann@example.org>: no such user",
    );
    sink.reply_to_rcpt("erin@example.org", "550 5.7.1 rejected as spam");
    let env = env_with(Some(&sink), &[("threshold", "1")]);
    env.add_members(
        "dev",
        &["ann@example.org", "erin@example.org", "bob@example.org"],
    );
    let config = std::sync::Arc::new(env.config());
    let conn = env.store();
    let bytes = b"From: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n";
    store::outbound::enqueue(
        &conn,
        &store::outbound::NewJob {
            list: Some("dev"),
            kind: store::outbound::JobKind::Notice,
            env_from: "dev-bounces@lists.example.org",
            verp: false,
            bytes,
        },
        &["ann@example.org", "erin@example.org", "bob@example.org"],
        T0,
    )
    .unwrap();
    listd::delivery::deliver_due(config, T0).await.unwrap();
    assert_eq!(env.count("bounce_events", "processed = 0"), 2);
    env.drain_at(T0);
    assert_eq!(env.count("bounce_events", "processed = 0"), 0);
    assert_eq!(is_disabled(&env, "ann@example.org"), Some(true));
    let s = score_of(&env, "ann@example.org").unwrap();
    assert_eq!((s.score, s.last_status.as_deref()), (1.0, Some("5.1.1")));
    assert!(
        score_of(&env, "erin@example.org").is_none(),
        "policy: not counted"
    );
    assert_eq!(is_disabled(&env, "erin@example.org"), Some(false));
    assert!(score_of(&env, "bob@example.org").is_none());
}

#[test]
fn the_cli_shows_bounces_lists_disabled_members_and_enables_them() {
    let env = env_with(None, &[("threshold", "1")]);
    let (ann, bob) = ("ann@example.org", "bob@example.org");
    env.add_members("dev", &[ann, bob]);
    feed_at(
        &env,
        &verp_rcpt(ann),
        &sample_text("postfix-user-unknown.eml"),
        T0,
    );
    let (code, out, err) = run_cli(&env, &["bounces", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 member(s) with bounces"), "{out}");
    assert!(
        out.contains(ann) && out.contains("disabled") && out.contains("probes 1/3"),
        "{out}"
    );
    assert!(out.contains("hard\t5.1.1\tann@example.org"), "{out}");

    let (code, out, _) = run_cli(&env, &["members", "list", "dev", "--disabled"]);
    assert_eq!(code, 0);
    assert!(out.contains(ann) && out.contains("score=1 "), "{out}");
    assert!(!out.contains(bob), "only the disabled: {out}");
    let (_, all, _) = run_cli(&env, &["members", "list", "dev"]);
    assert!(all.contains(bob));

    let (code, out, _) = run_cli(&env, &["members", "enable", "dev", ann, "carl@example.org"]);
    assert_eq!(code, 1, "carl is no member");
    assert!(out.contains("1 enabled, 1 not members"), "{out}");
    assert_eq!(is_disabled(&env, ann), Some(false));
    assert!(score_of(&env, ann).is_none());
    let (_, out, _) = run_cli(&env, &["members", "list", "dev", "--disabled"]);
    assert!(out.trim().is_empty(), "{out}");
    let (code, _, err) = run_cli(&env, &["bounces", "nolist"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such list"), "{err}");
}

#[test]
fn a_dsn_without_verp_scores_each_member_it_names_up_to_a_cap() {
    let env = env_with(None, &[]);
    let who: Vec<String> = (0..101).map(|i| format!("u{i:03}@example.org")).collect();
    let refs: Vec<&str> = who.iter().map(String::as_str).collect();
    env.add_members("dev", &refs);
    let mut dsn = String::from(
        "From: MAILER-DAEMON@relay.example.org\nSubject: Undelivered Mail\nMIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"X\"\n\n\
         --X\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.org\n",
    );
    for w in &who {
        dsn += &format!("\nFinal-Recipient: rfc822; {w}\nAction: failed\nStatus: 5.1.1\n");
    }
    dsn += "\n--X--\n";
    feed_at(&env, &format!("dev-bounces@{D}"), &dsn, T0);
    assert_eq!(env.count("bounce_scores", "score = 1.0"), 100);
    assert!(score_of(&env, &who[0]).is_some());
    assert!(score_of(&env, &who[100]).is_none(), "past the cap");
}
