//! Delivery reports (RFC 3464) when delivery gives up, over real SMTP to
//! the capturing sink on a fake clock: one multipart/report per job to the
//! list's owners for members given up by timeout (4.4.7), none for the
//! 5xx the bounce processor scores, none about a report, the null reverse
//! path, the cap on recipients listed, and robot mail reported to the
//! command's sender within its reply budget.

mod common;

use common::sink::{Sink, Transaction};
use listd::config::Config;
use listd::delivery;
use listd::store::{self, outbound};
use mail_parser::{Message, MessageParser, MimeHeaders};
use std::sync::Arc;

const T0: i64 = 1_700_000_000;
const GIVE_UP: i64 = 120 * 3600;

fn config_for(dir: &std::path::Path, relay: std::net::SocketAddr, list_yaml: &str) -> Config {
    let mut c = Config::for_tests("lists.example.org", dir);
    c.relay.host = relay.ip().to_string();
    c.relay.port = relay.port();
    c.relay.timeout_secs = 5;
    let l = listd::config::ListConfig::parse(std::path::Path::new("dev.yaml"), "dev", list_yaml)
        .unwrap();
    c.lists.insert("dev".into(), l);
    c
}

fn add_members(config: &Config, addrs: &[String]) {
    let mut conn = store::open(&config.db_path()).unwrap();
    let tx = conn.transaction().unwrap();
    for a in addrs {
        let a = listd::address::Address::parse(a).unwrap();
        store::members::add(
            &tx,
            "dev",
            &a.to_string(),
            &a.key(),
            None,
            store::members::DeliveryMode::Each,
            1,
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn post(config: &Config, now: i64) -> i64 {
    let bytes = b"From: Poster <poster@example.org>\r\nTo: dev@lists.example.org\r\nSubject: [dev] news\r\nMessage-ID: <p1@example.org>\r\n\r\nsecret body\r\n";
    let mut conn = store::open(&config.db_path()).unwrap();
    let tx = conn.transaction().unwrap();
    let id = delivery::enqueue_post(&tx, config, "dev", bytes, now).unwrap();
    tx.commit().unwrap();
    id
}

/// Every retry made due at `now` and a delivery pass, then a second pass
/// a second later for what the first queued (a report).
async fn pass(config: &Arc<Config>, now: i64) {
    delivery::queue::retry_now(&store::open(&config.db_path()).unwrap(), now).unwrap();
    delivery::deliver_due(config.clone(), now).await.unwrap();
    delivery::deliver_due(config.clone(), now + 1)
        .await
        .unwrap();
}

fn reports(sink: &Sink) -> Vec<Transaction> {
    sink.transactions()
        .into_iter()
        .filter(|t| t.mail_from.is_empty())
        .collect()
}

fn query_i64(config: &Config, sql: &str) -> i64 {
    let conn = store::open(&config.db_path()).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The parts of a multipart/report as (type/subtype, decoded text).
fn parts(m: &Message<'_>) -> Vec<(String, String)> {
    m.parts[1..]
        .iter()
        .map(|p| {
            let c = p.content_type().unwrap();
            (
                format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")),
                String::from_utf8_lossy(p.contents()).into_owned(),
            )
        })
        .collect()
}

fn is_report(m: &Message<'_>) {
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
}

#[tokio::test]
async fn a_post_given_up_by_timeout_reports_once_to_the_owners() {
    let sink = Sink::start();
    sink.reply_to_rcpt("slow@slow.example", "452 4.2.2 mailbox full");
    sink.reply_to_rcpt("gone@example.org", "550 5.1.1 no such user");
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(
        dir.path(),
        sink.addr(),
        "owners: [owner@example.net, boss@example.net]\n",
    ));
    add_members(
        &config,
        &[
            "ok@example.org".into(),
            "gone@example.org".into(),
            "slow@slow.example".into(),
        ],
    );
    let job = post(&config, T0);
    pass(&config, T0).await;
    assert!(
        reports(&sink).is_empty(),
        "a 5xx alone is the bounce processor's"
    );
    assert_eq!(
        query_i64(
            &config,
            "SELECT COUNT(*) FROM bounce_events WHERE kind = 'failed'"
        ),
        1
    );
    // just before give_up_hours: still retried, no report
    pass(&config, T0 + GIVE_UP - 60).await;
    assert!(reports(&sink).is_empty());
    pass(&config, T0 + GIVE_UP).await;
    pass(&config, T0 + GIVE_UP + 600).await;
    let r = reports(&sink);
    assert_eq!(r.len(), 1, "one report for the job");
    let mut rcpts = r[0].rcpts.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["boss@example.net", "owner@example.net"]);
    let m = MessageParser::default().parse(&r[0].data).unwrap();
    is_report(&m);
    assert_eq!(
        m.from().unwrap().first().unwrap().address(),
        Some("postmaster@lists.example.org")
    );
    assert_eq!(
        m.to().unwrap().first().unwrap().address(),
        Some("dev-owner@lists.example.org")
    );
    assert_eq!(
        m.subject(),
        Some("Undeliverable: 1 recipient(s) of a post to dev@lists.example.org")
    );
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert_eq!(m.in_reply_to().as_text(), Some("p1@example.org"));
    let p = parts(&m);
    let types: Vec<&str> = p.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "text/plain",
            "message/delivery-status",
            "text/rfc822-headers"
        ]
    );
    assert!(
        p[0].1.contains("slow@slow.example") && p[0].1.contains("120 hours"),
        "{}",
        p[0].1
    );
    assert!(!p[0].1.contains("gone@"), "{}", p[0].1);
    let ds = &p[1].1;
    let arrival = mail_parser::DateTime::from_timestamp(T0).to_rfc822();
    for want in [
        "Reporting-MTA: dns; lists.example.org\r\n".to_string(),
        format!("Arrival-Date: {arrival}\r\n"),
        "\r\n\r\nFinal-Recipient: rfc822; slow@slow.example\r\nAction: failed\r\nStatus: 4.4.7\r\nDiagnostic-Code: smtp; 452 4.2.2 mailbox full\r\nLast-Attempt-Date: ".to_string(),
    ] {
        assert!(ds.contains(&want), "{want:?} in {ds}");
    }
    assert!(!ds.contains("gone@") && !ds.contains("ok@"), "{ds}");
    assert!(p[2].1.contains("Message-ID: <p1@example.org>") && !p[2].1.contains("secret body"));
    // our own bounce reader reads it as a report about slow@, timed out
    let read = listd::bounce::parse::read(&r[0].data);
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].status.as_deref(), Some("4.4.7"));
    // the report is a notice job with the null sender; the post is done
    assert_eq!(
        query_i64(
            &config,
            "SELECT COUNT(*) FROM jobs WHERE env_from = '' AND kind = 'notice'"
        ),
        1
    );
    assert_eq!(
        query_i64(
            &config,
            &format!("SELECT state = 'done' FROM jobs WHERE id = {job}")
        ),
        1
    );
}

#[tokio::test]
async fn a_report_that_cannot_be_delivered_causes_no_other_report() {
    let sink = Sink::start();
    sink.reply_to_rcpt("slow@slow.example", "451 4.4.1 no answer from host");
    sink.reply_to_rcpt("owner@down.example", "451 4.4.1 no answer from host");
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(
        dir.path(),
        sink.addr(),
        "owners: [owner@down.example]\n",
    ));
    add_members(&config, &["slow@slow.example".into()]);
    post(&config, T0);
    pass(&config, T0).await;
    let t1 = T0 + GIVE_UP;
    pass(&config, t1).await;
    assert_eq!(
        query_i64(&config, "SELECT COUNT(*) FROM jobs WHERE env_from = ''"),
        1,
        "the report is queued"
    );
    // the owner's address defers it until it too is given up
    pass(&config, t1 + GIVE_UP).await;
    pass(&config, t1 + 2 * GIVE_UP).await;
    assert_eq!(
        query_i64(
            &config,
            "SELECT COUNT(*) FROM job_rcpts r JOIN jobs j ON j.id = r.job_id
             WHERE j.env_from = '' AND r.state = 'failed' AND r.timed_out = 1"
        ),
        1,
        "the report was given up"
    );
    assert_eq!(
        query_i64(&config, "SELECT COUNT(*) FROM jobs WHERE env_from = ''"),
        1,
        "and no report about the report"
    );
    assert!(reports(&sink).is_empty());
}

#[tokio::test]
async fn thousands_given_up_make_one_report_that_lists_a_capped_number() {
    const N: usize = 3000;
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(
        dir.path(),
        sink.addr(),
        "owners: [owner@example.net]\n",
    ));
    let members: Vec<String> = (0..N).map(|i| format!("m{i:05}@slow.example")).collect();
    add_members(&config, &members);
    post(&config, T0);
    // every batch's DATA is deferred, at first and at the give-up try
    let batches = N.div_ceil(config.relay.max_recipients) as u32;
    sink.fail_data("451 4.3.0 queue full", batches);
    pass(&config, T0).await;
    assert_eq!(
        query_i64(
            &config,
            "SELECT COUNT(*) FROM batches WHERE state = 'deferred'"
        ),
        batches as i64
    );
    sink.fail_data("451 4.3.0 queue full", batches);
    let started = std::time::Instant::now();
    pass(&config, T0 + GIVE_UP).await;
    let took = started.elapsed();
    let r = reports(&sink);
    assert_eq!(r.len(), 1, "one report for 3000 given up");
    assert_eq!(r[0].rcpts, ["owner@example.net"]);
    let m = MessageParser::default().parse(&r[0].data).unwrap();
    is_report(&m);
    assert_eq!(
        m.subject(),
        Some("Undeliverable: 3000 recipient(s) of a post to dev@lists.example.org")
    );
    let p = parts(&m);
    let listed = p[1].1.matches("Final-Recipient: rfc822; ").count();
    assert_eq!(listed, listd::delivery::dsn::LISTED_MAX);
    assert!(p[1].1.contains("m00000@slow.example") && !p[1].1.contains("m02999@"));
    assert!(p[0].1.contains("2000 more are not listed"), "{}", p[0].1);
    eprintln!(
        "3000 given up: give-up pass + report {took:?}, report {} bytes",
        r[0].data.len()
    );
}

fn robot_job(config: &Config, to: &str, requester: Option<&str>, now: i64) -> i64 {
    let conn = store::open(&config.db_path()).unwrap();
    let bytes = b"From: dev-request@lists.example.org\r\nTo: someone\r\nSubject: Confirm your subscription\r\nMessage-ID: <c1@lists.example.org>\r\n\r\nconfirm\r\n";
    let id = outbound::enqueue(
        &conn,
        &outbound::NewJob {
            list: Some("dev"),
            kind: outbound::JobKind::Reply,
            env_from: "dev-bounces@lists.example.org",
            verp: false,
            bytes,
        },
        &[to],
        now,
    )
    .unwrap();
    if let Some(r) = requester {
        outbound::set_requester(&conn, id, r).unwrap();
    }
    id
}

#[tokio::test]
async fn robot_mail_that_fails_is_reported_to_its_requester_within_budget() {
    let sink = Sink::start();
    sink.reply_to_rcpt("third@example.org", "550 5.1.1 no such user");
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_for(dir.path(), sink.addr(), "owners: [owner@example.net]\n");
    c.robot.replies_per_hour = 1;
    let config = Arc::new(c);
    // no requester, or the requester's own address failed: no one to tell
    robot_job(&config, "third@example.org", None, T0);
    robot_job(&config, "third@example.org", Some("Third@Example.org"), T0);
    pass(&config, T0).await;
    assert!(reports(&sink).is_empty());
    // a third party's address failed: the requester hears, once per budget
    robot_job(
        &config,
        "third@example.org",
        Some("asker@example.org"),
        T0 + 10,
    );
    robot_job(
        &config,
        "third@example.org",
        Some("asker@example.org"),
        T0 + 20,
    );
    pass(&config, T0 + 20).await;
    let r = reports(&sink);
    assert_eq!(r.len(), 1, "the second is over asker's hourly budget");
    assert_eq!(r[0].rcpts, ["asker@example.org"]);
    let m = MessageParser::default().parse(&r[0].data).unwrap();
    is_report(&m);
    let p = parts(&m);
    assert!(p[1].1.contains("Final-Recipient: rfc822; third@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user"), "{}", p[1].1);
    // an hour later the budget allows another
    robot_job(
        &config,
        "third@example.org",
        Some("asker@example.org"),
        T0 + 3700,
    );
    pass(&config, T0 + 3700).await;
    assert_eq!(reports(&sink).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_to_a_third_party_that_fails_is_reported_to_the_requester() {
    use std::time::Duration;
    let sink = Sink::start();
    sink.reply_to_rcpt("third@example.org", "550 5.1.1 no such user");
    let env = common::TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "dev",
            "owners: [owner@example.org]\nsubscription: confirm\n",
        )
        .build();
    let daemon = env.start().await;
    let msg = "From: asker@example.net\r\nTo: dev-request@lists.example.org\r\nSubject: x\r\nMessage-ID: <cmd1@example.net>\r\n\r\nsubscribe dev third@example.org\r\n";
    common::send(
        daemon.smtp_addr(),
        "asker@example.net",
        &["dev-request@lists.example.org"],
        msg,
    )
    .await
    .expect(250);
    let found = common::wait_until(Duration::from_secs(20), || {
        reports(&sink)
            .iter()
            .any(|t| t.rcpts == ["asker@example.net"])
    })
    .await;
    assert!(
        found,
        "a report to the requester: {:?}",
        sink.transactions()
    );
    let r = reports(&sink);
    assert_eq!(r.len(), 1);
    let m = MessageParser::default().parse(&r[0].data).unwrap();
    is_report(&m);
    let p = parts(&m);
    assert!(
        p[1].1
            .contains("Final-Recipient: rfc822; third@example.org\r\n"),
        "{}",
        p[1].1
    );
    // the results reply to the requester went out as ever, from -bounces
    assert!(sink.transactions().iter().any(
        |t| t.rcpts == ["asker@example.net"] && t.mail_from == "dev-bounces@lists.example.org"
    ));
    daemon.shutdown().await;
}
