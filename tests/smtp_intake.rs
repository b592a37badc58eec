//! Intake over real TCP: messages answered 250 are in the spool with their
//! envelope, a Received: header and one incoming row per routed recipient.

mod common;

use common::*;
use mail_parser::MessageParser;

fn env() -> TestEnv {
    TestEnv::builder()
        .list("dev", "description: Dev\nposting: anyone\n")
        .list("announce", "posting: announce\nexpn: nobody\n")
        .build()
}

#[tokio::test]
async fn accepted_message_is_spooled_with_envelope_and_trace_header() {
    let env = env();
    let d = env.start().await;
    let msg = message(
        "alice@crepes.fr",
        "dev@lists.example.org",
        "Hello",
        "Do you like ketchup?",
    );
    let r = send(
        d.smtp_addr(),
        "alice@crepes.fr",
        &["dev@lists.example.org", "dev-request@lists.example.org"],
        &msg,
    )
    .await;
    r.expect(250);
    assert_eq!(r.status(), Some("2.0.0"));
    let queue_id = r.text().rsplit(' ').next().unwrap().to_string();
    d.shutdown().await;

    let conn = env.store();
    let (id, env_from, helo, protocol, client_ip, bytes): (i64, String, String, String, String, Vec<u8>) = conn
        .query_row(
            "SELECT id, env_from, helo, protocol, client_ip, bytes FROM messages WHERE direction = 'in'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(env_from, "alice@crepes.fr");
    assert_eq!(helo, "client.example");
    assert_eq!(protocol, "ESMTP");
    assert_eq!(client_ip, "127.0.0.1");
    let mut stmt = conn
        .prepare("SELECT rcpt, route, list, state FROM incoming WHERE message_id = ?1 ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String, Option<String>, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "dev@lists.example.org");
    assert_eq!(rows[0].1, "post");
    assert_eq!(rows[0].2.as_deref(), Some("dev"));
    assert_eq!(rows[1].1, "request");

    let parsed = MessageParser::default()
        .parse(&bytes)
        .expect("stored message parses");
    assert_eq!(parsed.subject(), Some("Hello"));
    let received = parsed.header_raw("Received").expect("Received header");
    assert!(
        received.contains("from client.example ([127.0.0.1])"),
        "{received}"
    );
    assert!(
        received.contains(&format!(
            "by lists.example.org (listd) with ESMTP id {queue_id}"
        )),
        "{received}"
    );
    assert!(
        bytes.starts_with(b"Received: "),
        "our trace header is on top"
    );
    assert_eq!(
        parsed.body_text(0).unwrap().trim_end(),
        "Do you like ketchup?"
    );
}

#[tokio::test]
async fn pipelined_transactions_on_one_connection() {
    let env = env();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let mut batch = String::new();
    for i in 0..5 {
        batch += "MAIL FROM:<a@example.org>\r\nRCPT TO:<nobody@lists.example.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n";
        batch += &dot_stuff(&message(
            "a@example.org",
            "dev@lists.example.org",
            &format!("n{i}"),
            ".dot line",
        ));
        batch += ".\r\n";
    }
    batch += "QUIT\r\n";
    c.send_raw(batch.as_bytes()).await;
    for _ in 0..5 {
        c.read_reply().await.expect(250);
        assert_eq!(c.read_reply().await.code, 550);
        c.read_reply().await.expect(250);
        c.read_reply().await.expect(354);
        c.read_reply().await.expect(250);
    }
    c.read_reply().await.expect(221);
    assert!(c.closed().await);
    d.shutdown().await;
    let msgs = env.inbound_messages();
    assert_eq!(msgs.len(), 5);
    for (i, (_, bytes)) in msgs.iter().enumerate() {
        let p = MessageParser::default().parse(bytes).unwrap();
        assert_eq!(p.subject(), Some(format!("n{i}").as_str()));
        assert_eq!(
            p.body_text(0).unwrap().trim_end(),
            ".dot line",
            "dot-unstuffed once"
        );
    }
    assert_eq!(env.count("incoming", ""), 5);
}

#[tokio::test]
async fn a_failed_spool_write_is_451_and_the_next_message_is_taken() {
    let env = env();
    env.store()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.env_from = 'bad@example.org'
             BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;",
        )
        .unwrap();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let body = message("x@example.org", "dev@lists.example.org", "s", "b");
    let r = c
        .send_mail("bad@example.org", &["dev@lists.example.org"], &body)
        .await;
    r.expect(451);
    assert_eq!(r.status(), Some("4.3.0"));
    c.send_mail("good@example.org", &["dev@lists.example.org"], &body)
        .await
        .expect(250);
    c.quit().await;
    d.shutdown().await;
    assert_eq!(env.count("messages", "direction = 'in'"), 1);
}

#[tokio::test]
async fn a_listen_address_in_use_is_a_clear_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"{addr}\"]"))
        .build();
    let err = match listd::daemon::start(env.config()).await {
        Ok(_) => panic!("started on an address in use"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

/// Every service address of issue 2's routing table is accepted over SMTP
/// and stored with its route, list and tag for the right handler.
#[tokio::test]
async fn every_service_address_is_accepted_and_stored_with_its_route() {
    let env = env();
    let d = env.start().await;
    let want: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        ("dev", "post", Some("dev"), None),
        ("DEV", "post", Some("dev"), None),
        ("dev-request", "request", Some("dev"), None),
        ("dev-owner", "owner", Some("dev"), None),
        ("dev-bounces", "bounces", Some("dev"), None),
        (
            "dev-bounces+ann=example.org",
            "bounces",
            Some("dev"),
            Some("ann=example.org"),
        ),
        ("dev-confirm+AbC123", "confirm", Some("dev"), Some("AbC123")),
        ("dev-moderate+Tok", "moderate", Some("dev"), Some("Tok")),
        ("dev-join", "join", Some("dev"), None),
        ("dev-subscribe", "join", Some("dev"), None),
        ("dev-leave", "leave", Some("dev"), None),
        ("dev-unsubscribe", "leave", Some("dev"), None),
        ("majordomo", "majordomo", None, None),
        ("postmaster", "postmaster", None, None),
    ];
    let rcpts: Vec<String> = want.iter().map(|w| format!("{}@{DOMAIN}", w.0)).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let msg = message("ann@example.org", "dev@lists.example.org", "routes", "x");
    send(d.smtp_addr(), "ann@example.org", &rcpts, &msg)
        .await
        .expect(250);
    // refused: not ours, unknown here, and service forms that need (or
    // must not have) a +detail
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    c.cmd("MAIL FROM:<ann@example.org>").await.expect(250);
    for (rcpt, code, status) in [
        ("dev@elsewhere.org", 550, "5.7.1"),
        ("nosuch@lists.example.org", 550, "5.1.1"),
        ("dev-confirm@lists.example.org", 550, "5.1.1"),
        ("dev-request+x@lists.example.org", 550, "5.1.1"),
        ("nosuch-owner@lists.example.org", 550, "5.1.1"),
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert_eq!((r.code, r.status()), (code, Some(status)), "{rcpt}: {r:?}");
    }
    c.quit().await;
    d.shutdown().await;

    let conn = env.store();
    let mut stmt = conn
        .prepare("SELECT rcpt, route, list, tag FROM incoming ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String, Option<String>, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), want.len(), "{rows:?}");
    for (row, w) in rows.iter().zip(want) {
        assert_eq!(row.0, format!("{}@{DOMAIN}", w.0));
        assert_eq!(
            (row.1.as_str(), row.2.as_deref(), row.3.as_deref()),
            (w.1, w.2, w.3),
            "{}",
            w.0
        );
    }
    // one message body, stored once for all its recipients
    assert_eq!(env.count("messages", "direction = 'in'"), 1);
}
