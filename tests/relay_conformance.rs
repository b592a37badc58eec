//! The relay client against older servers, over real SMTP to the capturing
//! sink through the real outbound queue: a server that refuses EHLO gets
//! HELO (RFC 5321 §3.2), and a server without 8BITMIME gets the 7-bit form
//! of an 8-bit message (RFC 6152 §3), parts decoded to what was queued.

mod common;

use common::sink::{Sink, Transaction};
use listd::config::Config;
use listd::delivery;
use listd::store::{self, outbound};
use mail_parser::MessageParser;
use std::sync::Arc;

const T0: i64 = 1_700_000_000;

fn config_for(dir: &std::path::Path, relay: std::net::SocketAddr, pipelining: bool) -> Config {
    let mut c = Config::for_tests("lists.example.org", dir);
    c.relay.host = relay.ip().to_string();
    c.relay.port = relay.port();
    c.relay.timeout_secs = 5;
    c.relay.pipelining = pipelining;
    c
}

fn ascii_message() -> Vec<u8> {
    b"From: listd <majordomo@lists.example.org>\r\nTo: someone\r\nSubject: plain\r\nMessage-ID: <plain@lists.example.org>\r\n\r\nHello.\r\n.leading dot\r\n".to_vec()
}

/// A multipart message with a UTF-8 Subject, a UTF-8 text part and an
/// 8-bit binary part.
fn eight_bit_message() -> Vec<u8> {
    let mut m = "From: listd <majordomo@lists.example.org>\r\nTo: someone\r\nSubject: eight \u{fc}ber caf\u{e9}\r\nMessage-ID: <eight@lists.example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\u{fc}\u{df}e aus K\u{f6}ln = 1\r\n.leading dot\r\n--zz\r\nContent-Type: application/octet-stream\r\n\r\n".as_bytes().to_vec();
    m.extend((0u8..=255).filter(|b| *b != b'\r' && *b != b'\n'));
    m.extend_from_slice(b"\r\n--zz--\r\n");
    m
}

fn enqueue(config: &Config, rcpts: &[&str], bytes: &[u8], verp: bool) {
    let conn = store::open(&config.db_path()).unwrap();
    let job = outbound::NewJob {
        list: None,
        kind: outbound::JobKind::Reply,
        env_from: "majordomo-owner@lists.example.org",
        verp,
        bytes,
    };
    outbound::enqueue(&conn, &job, rcpts, T0).unwrap();
}

fn states(config: &Config) -> Vec<String> {
    let conn = store::open(&config.db_path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT state FROM job_rcpts ORDER BY rcpt")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// The decoded leaf parts and the Subject, as a reader sees them.
fn reader_view(raw: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    let m = MessageParser::default().parse(raw).unwrap();
    (
        listd::mime::leaves::leaves(&m),
        m.subject().map(str::to_string),
    )
}

fn assert_seven_bit_copy_of(t: &Transaction, original: &[u8]) {
    assert!(
        t.data.is_ascii(),
        "8-bit data to a 7-bit relay:\n{}",
        String::from_utf8_lossy(&t.data)
    );
    assert_eq!(t.mail_params, "", "no BODY=8BITMIME to a 7-bit relay");
    assert_eq!(reader_view(&t.data), reader_view(original));
}

#[tokio::test]
async fn a_relay_that_refuses_ehlo_is_greeted_with_helo() {
    let sink = Sink::start();
    sink.refuse_ehlo(false);
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr(), true));
    enqueue(
        &config,
        &["a@example.org", "b@example.org"],
        &ascii_message(),
        false,
    );
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert!(stats.relay_down.is_none(), "{:?}", stats.relay_down);
    assert_eq!(sink.hellos(), ["EHLO", "HELO"]);
    assert_eq!(sink.connections(), 2, "HELO on a new connection");
    let t = sink.transactions();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].rcpts, ["a@example.org", "b@example.org"]);
    assert_eq!(t[0].data, ascii_message());
    assert_eq!(t[0].mail_params, "");
    assert_eq!(states(&config), ["sent", "sent"]);
}

#[tokio::test]
async fn after_helo_an_8bit_message_goes_in_7bit() {
    let sink = Sink::start();
    sink.refuse_ehlo(false);
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr(), true));
    enqueue(&config, &["a@example.org"], &eight_bit_message(), false);
    delivery::deliver_due(config.clone(), T0).await.unwrap();
    let t = sink.transactions();
    assert_eq!(t.len(), 1);
    assert_seven_bit_copy_of(&t[0], &eight_bit_message());
}

#[tokio::test]
async fn a_refused_greeting_is_not_retried_with_helo() {
    let sink = Sink::start();
    sink.refuse_connections(Some("554 5.3.2 no service here"));
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr(), true));
    enqueue(&config, &["a@example.org"], &ascii_message(), false);
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    let why = stats.relay_down.expect("relay reported down");
    assert!(why.contains("554"), "{why}");
    assert!(!why.contains("EHLO"), "{why}");
    assert_eq!(sink.connections(), 1);
    assert!(sink.hellos().is_empty());
    assert_eq!(states(&config), ["active"]);
}

#[tokio::test]
async fn a_relay_refusing_ehlo_and_helo_keeps_the_mail_queued() {
    let sink = Sink::start();
    sink.refuse_ehlo(true);
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr(), true));
    enqueue(&config, &["a@example.org"], &ascii_message(), false);
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    let why = stats.relay_down.expect("relay reported down");
    assert!(why.contains("after EHLO was refused"), "{why}");
    assert_eq!(sink.hellos(), ["EHLO", "HELO"]);
    assert!(sink.transactions().is_empty());
    assert_eq!(states(&config), ["active"]);
}

async fn seven_bit_relay_case(pipelining: bool, verp: bool) {
    let sink = Sink::start();
    sink.without_8bitmime();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr(), pipelining));
    enqueue(
        &config,
        &["a@example.org", "b@example.org"],
        &eight_bit_message(),
        verp,
    );
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert!(stats.relay_down.is_none(), "{:?}", stats.relay_down);
    assert_eq!(sink.hellos()[0], "EHLO");
    let t = sink.transactions();
    assert_eq!(t.len(), if verp { 2 } else { 1 });
    for t in &t {
        assert_seven_bit_copy_of(t, &eight_bit_message());
    }
    assert_eq!(states(&config), ["sent", "sent"]);
}

#[tokio::test]
async fn an_8bit_message_to_a_7bit_relay_is_converted() {
    seven_bit_relay_case(true, false).await;
    seven_bit_relay_case(false, false).await;
}

#[tokio::test]
async fn verp_copies_to_a_7bit_relay_are_converted() {
    // streamed (pipelining) and one by one
    seven_bit_relay_case(true, true).await;
    seven_bit_relay_case(false, true).await;
}

#[tokio::test]
async fn an_8bitmime_relay_gets_the_message_as_queued() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr(), true));
    enqueue(&config, &["a@example.org"], &eight_bit_message(), false);
    delivery::deliver_due(config.clone(), T0).await.unwrap();
    let t = sink.transactions();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].data, eight_bit_message());
    assert_eq!(t[0].mail_params, " BODY=8BITMIME");
}

#[tokio::test]
async fn an_8bit_address_field_to_a_7bit_relay_goes_as_it_is_with_bodies_converted() {
    let sink = Sink::start();
    sink.without_8bitmime();
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_for(dir.path(), sink.addr(), true));
    let m =
        "From: Jos\u{e9} <jose@example.org>\r\nTo: someone\r\nSubject: s\r\n\r\nd\u{e9}j\u{e0}\r\n";
    enqueue(&config, &["a@example.org"], m.as_bytes(), false);
    let stats = delivery::deliver_due(config.clone(), T0).await.unwrap();
    assert!(stats.relay_down.is_none(), "{:?}", stats.relay_down);
    let t = sink.transactions();
    assert_eq!(t.len(), 1, "not held back");
    assert_eq!(t[0].mail_params, "");
    let (first, rest) = t[0]
        .data
        .split_at(t[0].data.iter().position(|&c| c == b'\n').unwrap());
    assert_eq!(first, "From: Jos\u{e9} <jose@example.org>\r".as_bytes());
    assert!(rest.is_ascii(), "{}", String::from_utf8_lossy(rest));
    assert_eq!(reader_view(&t[0].data), reader_view(m.as_bytes()));
    assert_eq!(states(&config), ["sent"]);
}
