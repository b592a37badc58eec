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

fn config_p(dir: &std::path::Path, relay: std::net::SocketAddr, pipelining: bool) -> Config {
    let mut c = config_for(dir, relay);
    c.relay.pipelining = pipelining;
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

// ---- fan-out helpers ----

fn with_list(mut c: Config, name: &str, yaml: &str) -> Config {
    let l = listd::config::ListConfig::parse(std::path::Path::new("x.yaml"), name, yaml).unwrap();
    c.lists.insert(name.to_string(), l);
    c
}

fn add_members(config: &Config, list: &str, addrs: &[String]) {
    let mut conn = store::open(&config.db_path()).unwrap();
    let tx = conn.transaction().unwrap();
    for a in addrs {
        let a = listd::address::Address::parse(a).unwrap();
        store::members::add(
            &tx,
            list,
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

fn post_bytes(list: &str) -> Vec<u8> {
    format!(
        "From: Poster <poster@example.org>\r\nTo: {list}@lists.example.org\r\nCc: m001@example.org\r\nSubject: [{list}] news\r\nMessage-ID: <p1@example.org>\r\n\r\nbody\r\n.dot line\r\n"
    )
    .into_bytes()
}

fn enqueue_post(config: &Config, list: &str, now: i64) -> i64 {
    let mut conn = store::open(&config.db_path()).unwrap();
    let tx = conn.transaction().unwrap();
    let id = delivery::enqueue_post(&tx, config, list, &post_bytes(list), now).unwrap();
    tx.commit().unwrap();
    id
}

fn query_i64(config: &Config, sql: &str) -> i64 {
    let conn = store::open(&config.db_path()).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn members_at(domain: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i:03}@{domain}")).collect()
}

async fn one_bad_rcpt_in_a_batch_of_100_fails_alone_case(pipelining: bool) {
    let sink = Sink::start();
    sink.reply_to_rcpt(
        "m042@example.org",
        "550 5.1.1 <m042@example.org>: no such user",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(
        config_p(dir.path(), sink.addr(), pipelining),
        "dev",
        "",
    ));
    add_members(&config, "dev", &members_at("example.org", 100));
    enqueue_post(&config, "dev", T0);
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!((stats.record.sent, stats.record.failed), (99, 1));
    let txs = sink.transactions();
    assert_eq!(txs.len(), 1, "one transaction of 100 RCPTs, 99 accepted");
    assert_eq!(txs[0].rcpts.len(), 99);
    assert!(!txs[0].rcpts.contains(&"m042@example.org".to_string()));
    assert_eq!(txs[0].mail_from, "dev-bounces@lists.example.org");
    let parsed = mail_parser::MessageParser::default()
        .parse(&txs[0].data)
        .unwrap();
    assert_eq!(parsed.subject(), Some("[dev] news"));
    let conn = store::open(&config.db_path()).unwrap();
    let (rcpt, state, reply): (String, String, String) = conn
        .query_row("SELECT rcpt, state, last_reply FROM job_rcpts", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (rcpt.as_str(), state.as_str()),
        ("m042@example.org", "failed")
    );
    assert!(reply.starts_with("550"), "{reply}");
    let (addr, kind): (String, String) = conn
        .query_row("SELECT address, kind FROM bounce_events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (addr.as_str(), kind.as_str()),
        ("m042@example.org", "failed")
    );
    assert_eq!(
        query_i64(&config, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        1
    );
}

async fn all_rcpts_refused_skips_data_case(pipelining: bool) {
    let sink = Sink::start();
    for r in ["a@example.org", "b@example.org"] {
        sink.reply_to_rcpt(r, "550 5.1.1 unknown");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_p(dir.path(), sink.addr(), pipelining));
    enqueue(&config, &["a@example.org", "b@example.org"], "x", T0);
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(stats.record.failed, 2);
    assert!(
        sink.transactions().is_empty(),
        "no DATA after every RCPT was refused"
    );
    assert_eq!(sink.refused().len(), 2);
    // the connection stayed usable (RSET, not a broken session): a second job goes through
    enqueue(&config, &["c@example.org"], "y", T0);
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(stats.record.sent, 1);
}

async fn rcpt_4xx_defers_only_that_recipient_then_succeeds_with_backoff_case(pipelining: bool) {
    let sink = Sink::start();
    sink.reply_to_rcpt_times("m001@example.org", "451 4.2.1 mailbox busy", 2);
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(
        config_p(dir.path(), sink.addr(), pipelining),
        "dev",
        "",
    ));
    add_members(&config, "dev", &members_at("example.org", 3));
    enqueue_post(&config, "dev", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!((s.record.sent, s.record.deferred), (2, 1));
    let next = query_i64(
        &config,
        "SELECT next_attempt FROM job_rcpts WHERE state = 'deferred'",
    );
    assert_eq!(next, T0 + 300, "first retry after retry_initial_secs");
    // not due yet
    let s = delivery::deliver_due(config.clone(), T0 + 299)
        .await
        .unwrap();
    assert_eq!(s.units, 0);
    // second try: deferred again, backoff doubles
    let s = delivery::deliver_due(config.clone(), T0 + 300)
        .await
        .unwrap();
    assert_eq!(s.record.deferred, 1);
    let next = query_i64(
        &config,
        "SELECT next_attempt FROM job_rcpts WHERE state = 'deferred'",
    );
    assert_eq!(next, T0 + 300 + 600);
    let s = delivery::deliver_due(config.clone(), T0 + 900)
        .await
        .unwrap();
    assert_eq!(s.record.sent, 1);
    let mut got = sink.delivered();
    got.sort();
    assert_eq!(got, members_at("example.org", 3));
    assert_eq!(
        query_i64(&config, "SELECT COUNT(*) FROM jobs WHERE state = 'done'"),
        1
    );
}

#[test]
fn backoff_doubles_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config::for_tests("lists.example.org", dir.path());
    let b: Vec<i64> = (1..=6).map(|a| delivery::queue::backoff(&c, a)).collect();
    assert_eq!(b, vec![300, 600, 1200, 1800, 1800, 1800]);
}

async fn data_4xx_defers_the_whole_batch_case(pipelining: bool) {
    let sink = Sink::start();
    sink.fail_data("451 4.3.0 queue full, try later", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(
        config_p(dir.path(), sink.addr(), pipelining),
        "dev",
        "",
    ));
    add_members(&config, "dev", &members_at("example.org", 5));
    enqueue_post(&config, "dev", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(s.record.deferred, 5);
    assert_eq!(
        query_i64(&config, "SELECT COUNT(*) FROM job_rcpts"),
        0,
        "the batch waits whole"
    );
    assert_eq!(
        query_i64(
            &config,
            "SELECT next_attempt FROM batches WHERE state = 'deferred'"
        ),
        T0 + 300
    );
    let s = delivery::deliver_due(config.clone(), T0 + 300)
        .await
        .unwrap();
    assert_eq!(s.record.sent, 5);
    assert_eq!(sink.transactions().len(), 1);
}

#[tokio::test]
async fn gives_up_after_give_up_hours_with_a_bounce_event() {
    let sink = Sink::start();
    sink.reply_to_rcpt("slow@example.org", "452 4.2.2 mailbox full");
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr()));
    enqueue(&config, &["slow@example.org"], "x", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(s.record.deferred, 1);
    // just before the default 5 days (give_up_hours: 120) it is still retried
    assert_eq!(config.delivery.give_up_hours, 120);
    let before = T0 + 120 * 3600 - 60;
    listd::delivery::queue::retry_now(&store::open(&config.db_path()).unwrap(), before).unwrap();
    let s = delivery::deliver_due(config.clone(), before).await.unwrap();
    assert_eq!((s.record.deferred, s.record.failed), (1, 0));
    assert_eq!(query_i64(&config, "SELECT COUNT(*) FROM bounce_events"), 0);
    assert_eq!(
        query_i64(&config, "SELECT next_attempt FROM job_rcpts"),
        before + 600,
        "second retry: the backoff doubled"
    );
    let later = T0 + 120 * 3600;
    listd::delivery::queue::retry_now(&store::open(&config.db_path()).unwrap(), later).unwrap();
    let s = delivery::deliver_due(config.clone(), later).await.unwrap();
    assert_eq!(s.record.failed, 1);
    let conn = store::open(&config.db_path()).unwrap();
    let (kind, reason): (String, String) = conn
        .query_row("SELECT kind, reason FROM bounce_events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(kind, "expired");
    assert!(
        reason.contains("gave up after 120 hours") && reason.contains("452"),
        "{reason}"
    );
}

#[tokio::test]
async fn relay_down_keeps_everything_queued_until_it_is_back() {
    let addr = Sink::reserve_addr();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(config_for(dir.path(), addr), "dev", ""));
    add_members(&config, "dev", &members_at("example.org", 250));
    enqueue(&config, &["owner@example.org"], "notice", T0);
    enqueue_post(&config, "dev", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    let why = s.relay_down.expect("relay reported down");
    assert!(why.contains("cannot connect"), "{why}");
    assert_eq!(s.record.sent + s.record.failed + s.record.deferred, 0);
    // nothing counted as an attempt, nothing failed
    assert_eq!(
        query_i64(
            &config,
            "SELECT COUNT(*) FROM job_rcpts WHERE state <> 'active'"
        ),
        0
    );
    assert_eq!(
        query_i64(&config, "SELECT COALESCE(SUM(attempts), 0) FROM batches"),
        0
    );
    // a relay that answers but refuses us is down too
    let sink = Sink::start_on(addr).unwrap();
    sink.refuse_connections(Some("421 4.3.2 service not available"));
    let s = delivery::deliver_due(config.clone(), T0 + 1).await.unwrap();
    assert!(s.relay_down.is_some());
    assert_eq!(sink.delivered_count(), 0);
    // back
    sink.refuse_connections(None);
    let s = delivery::deliver_due(config.clone(), T0 + 2).await.unwrap();
    assert!(s.relay_down.is_none());
    assert_eq!(s.record.sent, 251);
    assert_eq!(sink.delivered_count(), 251);
}

#[tokio::test]
async fn the_worker_delivers_once_a_down_relay_comes_back() {
    let addr = Sink::reserve_addr();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), addr));
    enqueue(
        &config,
        &["a@example.org", "b@example.org"],
        "hi",
        store::now(),
    );
    let wakers = listd::plumbing::Wakers::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // delivery renders nothing: no templates
    let ctx = listd::handler::Ctx {
        config: config.clone(),
        templates: Arc::new(
            listd::templates::Templates::load(dir.path(), dir.path(), &[]).unwrap(),
        ),
    };
    let worker = tokio::spawn(delivery::run(ctx, wakers.clone(), stop_rx));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sink = Sink::start_on(addr).unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let ok = sink.wait_for_delivered(2, std::time::Duration::from_secs(10));
        (ok, sink)
    })
    .await
    .unwrap();
    assert!(got.0, "delivered after the relay came back");
    // a new job wakes the worker at once
    enqueue(&config, &["c@example.org"], "again", store::now());
    wakers.delivery.notify_one();
    let sink = got.1;
    let ok = tokio::task::spawn_blocking(move || {
        sink.wait_for_delivered(3, std::time::Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(ok);
    stop_tx.send(true).unwrap();
    worker.await.unwrap().unwrap();
}

async fn verp_gives_each_recipient_its_own_envelope_case(pipelining: bool) {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(
        config_p(dir.path(), sink.addr(), pipelining),
        "dev",
        "verp: true\n",
    ));
    add_members(
        &config,
        "dev",
        &["Ann@Example.ORG".to_string(), "bob@other.org".to_string()],
    );
    enqueue_post(&config, "dev", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(s.record.sent, 2);
    let mut envs: Vec<(String, Vec<String>)> = sink
        .transactions()
        .into_iter()
        .map(|t| (t.mail_from, t.rcpts))
        .collect();
    envs.sort();
    assert_eq!(
        envs,
        vec![
            (
                "dev-bounces+Ann=example.org@lists.example.org".to_string(),
                vec!["Ann@example.org".to_string()]
            ),
            (
                "dev-bounces+bob=other.org@lists.example.org".to_string(),
                vec!["bob@other.org".to_string()]
            ),
        ]
    );
    // the VERP address routes back to the list's bounce handler with the tag
    let route =
        listd::routing::route(&config, "dev-bounces+bob=other.org@lists.example.org").unwrap();
    assert_eq!(
        route,
        listd::routing::Route::Bounces {
            list: "dev".into(),
            tag: Some("bob=other.org".into())
        }
    );
}

#[tokio::test]
async fn nested_lists_with_a_cycle_deliver_each_address_once() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_for(dir.path(), sink.addr());
    for l in ["all", "eu", "us"] {
        c = with_list(c, l, "");
    }
    let config = Arc::new(c);
    add_members(
        &config,
        "all",
        &[
            "boss@example.org".into(),
            "eu@lists.example.org".into(),
            "us@lists.example.org".into(),
        ],
    );
    add_members(
        &config,
        "eu",
        &[
            "anna@example.de".into(),
            "boss@example.org".into(),
            "us@lists.example.org".into(),
        ],
    );
    // us contains all: a cycle
    add_members(
        &config,
        "us",
        &[
            "joe@example.com".into(),
            "anna@example.de".into(),
            "all@lists.example.org".into(),
        ],
    );
    enqueue_post(&config, "all", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(s.record.sent, 3);
    let mut got = sink.delivered();
    got.sort();
    assert_eq!(
        got,
        vec!["anna@example.de", "boss@example.org", "joe@example.com"]
    );
    assert!(
        got.iter().all(|a| !a.ends_with("@lists.example.org")),
        "list addresses are expanded, never mailed"
    );
}

#[tokio::test]
async fn fanout_groups_by_domain_in_batches_of_max_recipients() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_for(dir.path(), sink.addr());
    assert_eq!(c.relay.max_recipients, 100);
    c.relay.connections = 2;
    let config = Arc::new(with_list(c, "dev", ""));
    // in address_key order the domains interleave (m000@example.com,
    // m000@example.org, m000@other.net, m001@...), yet batches are per domain
    let mut members = members_at("example.org", 250);
    members.extend(members_at("Other.NET", 3));
    members.extend(members_at("example.com", 100));
    add_members(&config, "dev", &members);
    enqueue_post(&config, "dev", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(s.record.sent, 353);
    let txs = sink.transactions();
    let mut shape: Vec<(String, usize)> = txs
        .iter()
        .map(|t| {
            let domains: std::collections::BTreeSet<String> = t
                .rcpts
                .iter()
                .map(|r| r.rsplit_once('@').unwrap().1.to_ascii_lowercase())
                .collect();
            assert_eq!(
                domains.len(),
                1,
                "one domain per transaction: {:?}",
                t.rcpts
            );
            (domains.into_iter().next().unwrap(), t.rcpts.len())
        })
        .collect();
    shape.sort();
    assert_eq!(
        shape,
        vec![
            ("example.com".to_string(), 100),
            ("example.org".to_string(), 50),
            ("example.org".to_string(), 100),
            ("example.org".to_string(), 100),
            ("other.net".to_string(), 3),
        ]
    );
    let mut got = sink.delivered();
    got.sort();
    let mut want: Vec<String> = members
        .iter()
        .map(|m| listd::address::address_key(m))
        .collect();
    want.sort();
    assert_eq!(got, want, "every member once");
    assert!(
        sink.connections() <= 2,
        "connections are reused: {}",
        sink.connections()
    );
}

#[tokio::test]
async fn skip_explicit_recipients_leaves_out_to_and_cc() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(
        config_for(dir.path(), sink.addr()),
        "dev",
        "skip_explicit_recipients: true\n",
    ));
    add_members(&config, "dev", &members_at("example.org", 3));
    enqueue_post(&config, "dev", T0); // Cc: m001@example.org
    delivery::deliver_due(config.clone(), T0).await.unwrap();
    let mut got = sink.delivered();
    got.sort();
    assert_eq!(got, vec!["m000@example.org", "m002@example.org"]);
}

#[tokio::test]
async fn auth_plain_at_the_relay() {
    let sink = Sink::start();
    sink.require_auth("listd", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_for(dir.path(), sink.addr());
    c.relay.username = Some("listd".into());
    c.relay.password = Some("wrong".into());
    let config = Arc::new(c);
    enqueue(&config, &["a@example.org"], "x", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    let why = s.relay_down.expect("bad credentials keep mail queued");
    assert!(why.contains("AUTH"), "{why}");
    let mut c = (*config).clone();
    c.relay.password = Some("s3cret".into());
    let s = delivery::deliver_due(Arc::new(c), T0).await.unwrap();
    assert_eq!(s.record.sent, 1);
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_a_clear_error() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_for(dir.path(), sink.addr());
    c.relay.tls = listd::config::RelayTls::Starttls;
    let config = Arc::new(c);
    enqueue(&config, &["a@example.org"], "x", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    let why = s.relay_down.expect("queued");
    assert!(why.contains("does not offer STARTTLS"), "{why}");
    assert_eq!(sink.delivered_count(), 0);
}

#[tokio::test]
async fn one_bad_rcpt_in_a_batch_of_100_fails_alone() {
    one_bad_rcpt_in_a_batch_of_100_fails_alone_case(true).await;
}

#[tokio::test]
async fn one_bad_rcpt_in_a_batch_of_100_fails_alone_without_pipelining() {
    one_bad_rcpt_in_a_batch_of_100_fails_alone_case(false).await;
}

#[tokio::test]
async fn all_rcpts_refused_skips_data() {
    all_rcpts_refused_skips_data_case(true).await;
}

#[tokio::test]
async fn all_rcpts_refused_skips_data_without_pipelining() {
    all_rcpts_refused_skips_data_case(false).await;
}

#[tokio::test]
async fn rcpt_4xx_defers_only_that_recipient_then_succeeds_with_backoff() {
    rcpt_4xx_defers_only_that_recipient_then_succeeds_with_backoff_case(true).await;
}

#[tokio::test]
async fn rcpt_4xx_defers_only_that_recipient_then_succeeds_with_backoff_without_pipelining() {
    rcpt_4xx_defers_only_that_recipient_then_succeeds_with_backoff_case(false).await;
}

#[tokio::test]
async fn data_4xx_defers_the_whole_batch() {
    data_4xx_defers_the_whole_batch_case(true).await;
}

#[tokio::test]
async fn data_4xx_defers_the_whole_batch_without_pipelining() {
    data_4xx_defers_the_whole_batch_case(false).await;
}

#[tokio::test]
async fn verp_gives_each_recipient_its_own_envelope() {
    verp_gives_each_recipient_its_own_envelope_case(true).await;
}

#[tokio::test]
async fn verp_gives_each_recipient_its_own_envelope_without_pipelining() {
    verp_gives_each_recipient_its_own_envelope_case(false).await;
}

#[tokio::test]
async fn verp_stream_keeps_per_recipient_verdicts() {
    let sink = Sink::start();
    sink.reply_to_rcpt("m001@example.org", "550 5.1.1 no such user");
    sink.reply_to_rcpt_times("m003@example.org", "451 4.2.1 busy", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(
        config_for(dir.path(), sink.addr()),
        "dev",
        "verp: true\n",
    ));
    add_members(&config, "dev", &members_at("example.org", 6));
    enqueue_post(&config, "dev", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(
        (s.record.sent, s.record.failed, s.record.deferred),
        (4, 1, 1)
    );
    let txs = sink.transactions();
    assert_eq!(txs.len(), 4, "one transaction per delivered recipient");
    for t in &txs {
        assert_eq!(t.rcpts.len(), 1);
        let (local, domain) = t.rcpts[0].split_once('@').unwrap();
        assert_eq!(
            t.mail_from,
            format!("dev-bounces+{local}={domain}@lists.example.org")
        );
        assert_eq!(
            t.data,
            post_bytes("dev"),
            "content intact, dot-stuffing undone"
        );
    }
    let s = delivery::deliver_due(config.clone(), T0 + 300)
        .await
        .unwrap();
    assert_eq!(s.record.sent, 1);
    let mut got = sink.delivered();
    got.sort();
    let mut want = members_at("example.org", 6);
    want.retain(|a| a != "m001@example.org");
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_connection_dropped_before_the_verdict_defers_and_resends() {
    let sink = Sink::start();
    sink.drop_at_data(1);
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(with_list(config_for(dir.path(), sink.addr()), "dev", ""));
    add_members(&config, "dev", &members_at("example.org", 4));
    enqueue_post(&config, "dev", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert_eq!(s.record.deferred, 4);
    let reply: String = store::open(&config.db_path())
        .unwrap()
        .query_row("SELECT last_reply FROM batches", [], |r| r.get(0))
        .unwrap();
    assert!(reply.contains("connection to the relay broke"), "{reply}");
    let s = delivery::deliver_due(config.clone(), T0 + 300)
        .await
        .unwrap();
    assert_eq!(s.record.sent, 4);
    assert_eq!(sink.delivered_count(), 4);
}

#[tokio::test]
async fn a_silent_relay_times_out_and_mail_stays_queued() {
    // accepts connections, never says a word
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let conns: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(conns);
    });
    let dir = tempfile::tempdir().unwrap();
    let mut c = config_for(dir.path(), addr);
    c.relay.timeout_secs = 1;
    c.relay.connections = 1;
    let config = Arc::new(c);
    enqueue(&config, &["a@example.org"], "x", T0);
    let s = delivery::deliver_due(config.clone(), T0).await.unwrap();
    let why = s.relay_down.expect("a silent relay counts as down");
    assert!(why.contains("did not greet in time"), "{why}");
    assert_eq!(
        query_i64(
            &config,
            "SELECT COUNT(*) FROM job_rcpts WHERE state = 'active' AND attempts = 0"
        ),
        1
    );
    hold.join().unwrap();
}

#[test]
fn one_claim_expands_many_small_fanouts() {
    // a busy list with few members: each post is its own fan-out job; one
    // claim must take many of them, not one post per transaction
    let dir = tempfile::tempdir().unwrap();
    let c = config_for(dir.path(), Sink::reserve_addr());
    let config = with_list(c, "dev", "");
    add_members(&config, "dev", &["solo@example.net".to_string()]);
    for _ in 0..20 {
        enqueue_post(&config, "dev", T0);
    }
    let mut conn = delivery::open_db(&config).unwrap();
    let mut cache = delivery::queue::JobCache::default();
    let (_, works) = delivery::queue::sync(&mut conn, &config, &mut cache, vec![], 16, T0).unwrap();
    assert_eq!(works.len(), 16, "16 posts claimed in one transaction");
    let jobs: std::collections::BTreeSet<i64> = works.iter().map(|w| w.job.id).collect();
    assert_eq!(jobs.len(), 16, "each a different post");
    assert!(works.iter().all(|w| w.rcpts == ["solo@example.net"]));
    assert_eq!(
        query_i64(&config, "SELECT COUNT(*) FROM jobs WHERE expanded = 0"),
        4,
        "the rest wait for the next claim"
    );
}
