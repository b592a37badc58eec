//! LMTP over TCP and over a unix socket: LHLO, and one reply per accepted
//! recipient after the data (RFC 2033), including per-recipient failures.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn builder() -> TestEnvBuilder {
    TestEnv::builder()
        .list("dev", "posting: anyone\n")
        .list(
            "small",
            "posting: anyone\nmax_message_size: 300\noversize_posts: reject\n",
        )
        .lmtp()
}

#[tokio::test]
async fn one_reply_per_recipient_over_tcp() {
    let env = builder().build();
    let d = env.start().await;
    let addr = d.lmtp_tcp_addr().expect("LMTP listener");
    let mut c = SmtpClient::connect(addr).await;
    c.greeting.expect(220);
    assert!(c.greeting.text().contains("LMTP"));
    c.cmd("EHLO client.example").await.expect(500);
    c.cmd("HELO client.example").await.expect(500);
    let r = c.cmd("LHLO mx.example.org").await;
    r.expect(250);
    assert!(r.lines.contains(&"PIPELINING".to_string()));
    assert!(r.lines.contains(&"ENHANCEDSTATUSCODES".to_string()));
    c.cmd("MAIL FROM:<a@example.org>").await.expect(250);
    c.cmd("RCPT TO:<dev@lists.example.org>").await.expect(250);
    c.cmd("RCPT TO:<nosuch@lists.example.org>")
        .await
        .expect(550);
    c.cmd("RCPT TO:<small@lists.example.org>").await.expect(250);
    c.cmd("RCPT TO:<dev-owner@lists.example.org>")
        .await
        .expect(250);
    c.cmd("DATA").await.expect(354);
    let body = format!(
        "Subject: lmtp\r\n\r\n{}",
        "line of text here\r\n".repeat(30)
    );
    c.send_raw(body.as_bytes()).await;
    c.send_raw(b".\r\n").await;
    // three accepted recipients, three replies, in RCPT order
    let r1 = c.read_reply().await;
    let r2 = c.read_reply().await;
    let r3 = c.read_reply().await;
    r1.expect(250);
    assert!(r1.text().contains("<dev@lists.example.org>"));
    r2.expect(552);
    assert_eq!(r2.status(), Some("5.3.4"));
    assert!(r2.text().contains("small"));
    r3.expect(250);
    assert!(r3.text().contains("<dev-owner@lists.example.org>"));
    c.quit().await;
    d.shutdown().await;

    let conn = env.store();
    let (protocol, n): (String, i64) = conn
        .query_row(
            "SELECT m.protocol, (SELECT COUNT(*) FROM incoming i WHERE i.message_id = m.id) FROM messages m",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(protocol, "LMTP");
    assert_eq!(n, 2, "only the recipients answered 250 are queued");
    let msgs = env.inbound_messages();
    assert!(String::from_utf8_lossy(&msgs[0].1).contains("with LMTP id"));
}

#[tokio::test]
async fn unix_socket_and_whole_message_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("lmtp.sock");
    let env = builder()
        .set(
            "lmtp",
            "listen",
            &format!("[{}]", yaml_str(&sock.display().to_string())),
        )
        .build();
    let d = env.start().await;
    let mut s = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("unix socket");
    s.write_all(
        b"LHLO local\r\nMAIL FROM:<>\r\nRCPT TO:<dev@lists.example.org>\r\nRCPT TO:<dev-request@lists.example.org>\r\nDATA\r\n",
    )
    .await
    .unwrap();
    s.write_all(b"Subject: bad\r\n\r\nbare\nLF\r\n.\r\n")
        .await
        .unwrap();
    s.write_all(b"MAIL FROM:<>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\nSubject: ok\r\n\r\nfine\r\n.\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let codes: Vec<&str> = out
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        [
            "220", "250", "250", "250", "250", "354", "554", "554", "250", "250", "354", "250",
            "221"
        ],
        "{out}"
    );
    d.shutdown().await;
    assert!(!sock.exists(), "the socket file is removed at shutdown");
    let msgs = env.inbound_messages();
    assert_eq!(msgs.len(), 1);
    let text = String::from_utf8_lossy(&msgs[0].1);
    assert!(text.starts_with("Received: from local\r\n"), "{text}");
    assert!(text.ends_with("fine\r\n"));
}

/// The slow-client limits hold for LMTP and for a local (trusted) client
/// too: DATA dribbled over the unix socket below `min_data_rate` gets 421
/// 4.4.2 once, not one reply per recipient, and nothing is queued.
#[tokio::test]
async fn a_slow_data_over_the_unix_socket_gets_421_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("lmtp.sock");
    let env = builder()
        .set(
            "lmtp",
            "listen",
            &format!("[{}]", yaml_str(&sock.display().to_string())),
        )
        .set("smtp", "idle_timeout_secs", "3")
        .set("smtp", "command_deadline_secs", "1")
        .set("smtp", "min_data_rate", "100")
        .build();
    let d = env.start().await;
    let mut s = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("unix socket");
    s.write_all(
        b"LHLO local\r\nMAIL FROM:<>\r\nRCPT TO:<dev@lists.example.org>\r\nRCPT TO:<dev-request@lists.example.org>\r\nDATA\r\nSubject: slow\r\n\r\n",
    )
    .await
    .unwrap();
    for b in b"hello" {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let codes: Vec<&str> = out
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "250", "354", "421"],
        "{out}"
    );
    assert!(out.contains("421 4.4.2 "), "{out}");
    assert!(out.contains("message data slower than 100 bytes per second"));
    d.shutdown().await;
    assert_eq!(env.count("messages", "direction = 'in'"), 0);
    assert_eq!(env.count("incoming", ""), 0);
}
