//! Direct delivery (`relay.mode: mx`) with no relay: a static zone points
//! two domains' MX records at capturing sinks on 127.0.0.2 and 127.0.0.3,
//! and the daemon delivers one post to each domain's exchanger, falls back
//! to a domain's second MX and to the implicit MX, and fails the recipients
//! of a null-MX domain and of a domain with no records at all.

mod common;

use common::sink::Sink;
use common::{message, send, wait_until, TestEnv, DOMAIN};
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Two sinks on one port, at 127.0.0.2 and 127.0.0.3.
fn two_sinks() -> (Sink, Sink, u16) {
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.2:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let a = Sink::start_on(SocketAddr::from(([127, 0, 0, 2], port)));
        let b = Sink::start_on(SocketAddr::from(([127, 0, 0, 3], port)));
        if let (Ok(a), Ok(b)) = (a, b) {
            return (a, b, port);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_goes_straight_to_each_domains_exchangers() {
    let (a, b, port) = two_sinks();
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(
        &zone,
        "a.example        MX 10 mx.a.example\n\
         mx.a.example     A  127.0.0.2\n\
         # b.example's first exchanger does not answer: the second takes it\n\
         b.example        MX 10 mx1.b.example\n\
         b.example        MX 20 mx2.b.example\n\
         mx1.b.example    A  127.0.0.9\n\
         mx2.b.example    A  127.0.0.3\n\
         # no MX: the domain's own address (implicit MX)\n\
         c.example        A  127.0.0.2\n\
         null.example     MX 0 .\n",
    )
    .unwrap();
    let env = TestEnv::builder()
        .set("relay", "mode", "mx")
        .set("relay", "port", &port.to_string())
        .set("relay", "timeout_secs", "5")
        .set("dns", "static_zone", &zone.display().to_string())
        .list("dev", "posting: members\n")
        .build();
    env.add_members(
        "dev",
        &[
            "x@a.example",
            "y@A.example",
            "z@b.example",
            "w@c.example",
            "n@null.example",
            "q@nowhere.example",
        ],
    );
    let d = env.start().await;
    let list = format!("dev@{DOMAIN}");
    send(
        d.smtp_addr(),
        "x@a.example",
        &[&list],
        &message("x@a.example", &list, "direct", "straight to the MX"),
    )
    .await
    .expect(250);
    let rcpts = |s: &Sink| -> Vec<String> {
        let mut v: Vec<String> = s
            .transactions()
            .iter()
            .flat_map(|t| t.rcpts.iter().map(|r| r.to_ascii_lowercase()))
            .collect();
        v.sort();
        v
    };
    assert!(
        wait_until(WAIT, || rcpts(&a).len() >= 3 && !rcpts(&b).is_empty()).await,
        "a: {:?}, b: {:?}",
        rcpts(&a),
        rcpts(&b)
    );
    assert_eq!(rcpts(&a), ["w@c.example", "x@a.example", "y@a.example"]);
    assert_eq!(rcpts(&b), ["z@b.example"]);
    // a.example's two members went in one transaction: one connection per domain
    assert!(a.transactions().iter().any(|t| t.rcpts.len() == 2));
    for t in a.transactions().iter().chain(b.transactions().iter()) {
        let m = mail_parser::MessageParser::default()
            .parse(&t.data)
            .unwrap();
        assert_eq!(m.subject(), Some("direct"));
    }
    // the null MX and the domain with no records fail at once, with why
    let failed = |env: &TestEnv| -> Vec<(String, String)> {
        let conn = env.store();
        let mut stmt = conn
            .prepare("SELECT rcpt, last_reply FROM job_rcpts WHERE state = 'failed' ORDER BY rcpt")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(
        wait_until(WAIT, || failed(&env).len() == 2).await,
        "{:?}",
        failed(&env)
    );
    let f = failed(&env);
    assert_eq!(f[0].0, "n@null.example");
    assert!(f[0].1.starts_with("556 5.1.10"), "{}", f[0].1);
    assert_eq!(f[1].0, "q@nowhere.example");
    assert!(f[1].1.starts_with("550 5.1.2"), "{}", f[1].1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_exchanger_defers_only_its_domain() {
    let (a, _b, port) = two_sinks();
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(
        &zone,
        "a.example MX 10 mx.a.example\nmx.a.example A 127.0.0.2\n\
         down.example MX 10 mx.down.example\nmx.down.example A 127.0.0.9\n",
    )
    .unwrap();
    let env = TestEnv::builder()
        .set("relay", "mode", "mx")
        .set("relay", "port", &port.to_string())
        .set("relay", "timeout_secs", "5")
        .set("dns", "static_zone", &zone.display().to_string())
        .list("dev", "posting: members\n")
        .build();
    env.add_members("dev", &["x@a.example", "d@down.example"]);
    let d = env.start().await;
    let list = format!("dev@{DOMAIN}");
    send(
        d.smtp_addr(),
        "x@a.example",
        &[&list],
        &message("x@a.example", &list, "some go", "x"),
    )
    .await
    .expect(250);
    assert!(wait_until(WAIT, || a.delivered_count() == 1).await);
    // the domain's batch waits whole, with the reason
    let deferred = || {
        env.store()
            .query_row(
                "SELECT last_reply FROM batches WHERE state = 'deferred' AND domain = 'down.example'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
    };
    assert!(wait_until(WAIT, || deferred().is_some()).await);
    let why = deferred().unwrap();
    assert!(
        why.contains("no mail exchanger of down.example answered"),
        "{why}"
    );
    d.shutdown().await;
}

/// An exchanger that offers STARTTLS gets it (opportunistic TLS; the
/// self-signed certificate is not checked): a private Postfix as the MX,
/// relaying to the sink, notes the TLS session in its `Received:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanger_offering_starttls_gets_an_encrypted_session() {
    let sink = Sink::start();
    let postfix = match common::postfix::PrivatePostfix::start_tls(Some(sink.addr())) {
        Ok(p) => p,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: no private Postfix ({why}); install postfix to run this test");
            return;
        }
        Err(why) => panic!("CI needs Postfix for this test: {why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::write(
        &zone,
        "tls.example MX 10 mx.tls.example\nmx.tls.example A 127.0.0.1\n",
    )
    .unwrap();
    let env = TestEnv::builder()
        .set("relay", "mode", "mx")
        .set("relay", "port", &postfix.addr.port().to_string())
        .set("dns", "static_zone", &zone.display().to_string())
        .list("dev", "posting: members\n")
        .build();
    env.add_members("dev", &["u@tls.example"]);
    let d = env.start().await;
    let list = format!("dev@{DOMAIN}");
    send(
        d.smtp_addr(),
        "u@tls.example",
        &[&list],
        &message("u@tls.example", &list, "encrypted", "x"),
    )
    .await
    .expect(250);
    assert!(
        wait_until(Duration::from_secs(60), || sink.delivered_count() == 1).await,
        "Postfix did not relay the post"
    );
    let t = &sink.transactions()[0];
    let received = String::from_utf8_lossy(&t.data);
    let first = received.split("\r\n").take(4).collect::<Vec<_>>().join(" ");
    assert!(first.contains("using TLS"), "{first}");
    d.shutdown().await;
}
