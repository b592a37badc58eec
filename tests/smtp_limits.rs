//! Bad input and limits over real TCP: SMTP smuggling, sizes, line lengths,
//! recipient and connection limits, errors in a row, the command rate, the
//! idle timeout, the slow-client limits (command line deadline, DATA rate,
//! session length), and graceful shutdown.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn builder() -> TestEnvBuilder {
    TestEnv::builder().list("dev", "posting: anyone\n")
}

async fn start_mail(c: &mut SmtpClient) {
    c.cmd("MAIL FROM:<a@example.org>").await.expect(250);
    c.cmd("RCPT TO:<dev@lists.example.org>").await.expect(250);
    c.cmd("DATA").await.expect(354);
}

#[tokio::test]
async fn smuggling_with_bare_lf_or_bare_cr_is_rejected_and_nothing_is_stored() {
    let env = builder().build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    // Each payload hides a second transaction behind an end-of-data that
    // some servers accept. Only the real CRLF.CRLF ends the data, and the
    // whole thing is refused: one 554, no 250 for the smuggled MAIL/RCPT.
    let smuggled = "MAIL FROM:<evil@example.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n";
    for end in ["\n.\r\n", "\r\n.\n", "\r.\r\n", "\n.\n", "\r\n.\r"] {
        start_mail(&mut c).await;
        let payload = format!("Subject: innocent\r\n\r\nhello{end}{smuggled}.\r\n");
        c.send_raw(payload.as_bytes()).await;
        let r = c.read_reply().await;
        r.expect(554);
        assert_eq!(r.status(), Some("5.6.0"));
        assert!(r.text().contains("bare CR or bare LF"), "{r:?}");
        // the next thing the server says answers our next command
        c.cmd("NOOP").await.expect(250);
    }
    c.quit().await;
    d.shutdown().await;
    assert_eq!(env.count("messages", "direction = 'in'"), 0);
    assert_eq!(env.count("incoming", ""), 0);
}

#[tokio::test]
async fn size_limit_552_declared_and_actual() {
    let env = builder().set("smtp", "max_message_size", "2000").build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let r = c.cmd("MAIL FROM:<a@example.org> SIZE=2001").await;
    r.expect(552);
    assert_eq!(r.status(), Some("5.3.4"));
    c.cmd("MAIL FROM:<a@example.org> SIZE=1500")
        .await
        .expect(250);
    c.cmd("RCPT TO:<dev@lists.example.org>").await.expect(250);
    c.cmd("DATA").await.expect(354);
    let big = format!("Subject: big\r\n\r\n{}", "0123456789abcdef\r\n".repeat(200));
    c.send_raw(big.as_bytes()).await;
    c.send_raw(b".\r\n").await;
    let r = c.read_reply().await;
    r.expect(552);
    assert_eq!(r.status(), Some("5.3.4"));
    // the session goes on, and a message under the limit is taken
    let r = c
        .send_mail(
            "a@example.org",
            &["dev@lists.example.org"],
            "Subject: small\r\n\r\nhi\r\n",
        )
        .await;
    r.expect(250);
    c.quit().await;
    d.shutdown().await;
    assert_eq!(env.count("messages", "direction = 'in'"), 1);
}

#[tokio::test]
async fn line_limits() {
    let env = builder().build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let r = c.cmd(&format!("NOOP {}", "x".repeat(600))).await;
    r.expect(500);
    assert!(r.text().contains("Line too long"));
    c.cmd("NOOP").await.expect(250);
    start_mail(&mut c).await;
    c.send_raw(format!("Subject: long\r\n\r\n{}\r\n.\r\n", "y".repeat(999)).as_bytes())
        .await;
    let r = c.read_reply().await;
    r.expect(554);
    assert!(r.text().contains("998"));
    start_mail(&mut c).await;
    c.send_raw(format!("Subject: ok\r\n\r\n{}\r\n.\r\n", "y".repeat(998)).as_bytes())
        .await;
    c.read_reply().await.expect(250);
    c.quit().await;
    d.shutdown().await;
    assert_eq!(env.count("messages", "direction = 'in'"), 1);
}

#[tokio::test]
async fn recipient_limit_452() {
    let env = builder().set("smtp", "max_recipients", "2").build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    c.cmd("MAIL FROM:<a@example.org>").await.expect(250);
    c.cmd("RCPT TO:<dev@lists.example.org>").await.expect(250);
    c.cmd("RCPT TO:<dev-request@lists.example.org>")
        .await
        .expect(250);
    let r = c.cmd("RCPT TO:<dev-owner@lists.example.org>").await;
    r.expect(452);
    assert_eq!(r.status(), Some("4.5.3"));
    c.quit().await;
    d.shutdown().await;
}

/// With a limit of two connections: two are served, a third gets 421 4.7.0
/// (its text containing `why`) and is closed, and once one quits a new one
/// is served again.
async fn check_third_connection_refused(d: &listd::daemon::DaemonHandle, why: &str) {
    let a = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let b = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let mut c = SmtpClient::connect(d.smtp_addr()).await;
    c.greeting.expect(421);
    assert_eq!(c.greeting.status(), Some("4.7.0"));
    assert!(c.greeting.text().contains(why), "{:?}", c.greeting);
    assert!(c.closed().await);
    a.quit().await;
    assert!(wait_until(Duration::from_secs(5), || d.sessions() < 2).await);
    let e = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    e.quit().await;
    b.quit().await;
}

#[tokio::test]
async fn connections_past_max_connections_get_421() {
    let env = builder().set("smtp", "max_connections", "2").build();
    let d = env.start().await;
    check_third_connection_refused(&d, "Too many connections").await;
    d.shutdown().await;
}

/// One untrusted client may hold `max_connections_per_client` connections;
/// one more gets 421 4.7.0 and the slot is free again once one closes.
/// Trusted networks (the MTA in front) have their own, higher cap.
#[tokio::test]
async fn connections_past_max_connections_per_client_get_421() {
    let env = builder()
        .set("smtp", "trusted_networks", "[]")
        .set("smtp", "max_connections_per_client", "2")
        .build();
    let d = env.start().await;
    check_third_connection_refused(&d, "from your address").await;
    d.shutdown().await;

    let env = builder()
        .set("smtp", "max_connections_per_client", "1")
        .build();
    let d = env.start().await;
    let a = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let b = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    a.quit().await;
    b.quit().await;
    d.shutdown().await;
}

/// A trusted client may hold `max_connections_per_trusted_client`
/// connections; one more gets the same 421 as an untrusted one.
#[tokio::test]
async fn connections_past_max_connections_per_trusted_client_get_421() {
    let env = builder()
        .set("smtp", "max_connections_per_trusted_client", "2")
        .build();
    assert!(env.config().is_trusted("127.0.0.1".parse().unwrap()));
    let d = env.start().await;
    check_third_connection_refused(&d, "from your address").await;
    d.shutdown().await;
}

#[tokio::test]
async fn ten_errors_in_a_row_get_421_and_close() {
    let env = builder().build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    for _ in 0..9 {
        c.cmd("BOGUS").await.expect(500);
    }
    c.send_line("BOGUS").await;
    c.read_reply().await.expect(500);
    let r = c.read_reply().await;
    r.expect(421);
    assert!(r.text().contains("Too many errors"));
    assert!(c.closed().await);
    d.shutdown().await;
}

#[tokio::test]
async fn command_rate_limit_for_untrusted_clients() {
    let env = builder()
        .set("smtp", "trusted_networks", "[]")
        .set("smtp", "max_commands_per_minute", "5")
        .build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await; // 1
    for _ in 0..4 {
        c.cmd("NOOP").await.expect(250);
    }
    let r = c.cmd("NOOP").await;
    r.expect(421);
    assert!(r.text().contains("Too many commands"));
    assert!(c.closed().await);
    d.shutdown().await;
}

#[tokio::test]
async fn idle_timeout_gets_421() {
    let env = builder().set("smtp", "idle_timeout_secs", "1").build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let r = c.read_reply().await; // nothing sent: the server times out
    r.expect(421);
    assert_eq!(r.status(), Some("4.4.2"));
    assert!(c.closed().await);
    d.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_transactions_in_flight_and_refuses_new_connections() {
    let env = builder().build();
    let d = env.start().await;
    let addr = d.smtp_addr();
    let mut busy = SmtpClient::connect_ehlo(addr).await;
    let mut idle = SmtpClient::connect_ehlo(addr).await;
    start_mail(&mut busy).await;
    busy.send_raw(b"Subject: in flight\r\n\r\npart one\r\n")
        .await;

    let stopping = tokio::spawn(d.shutdown_with_grace(Duration::from_secs(20)));
    check_graceful_shutdown(addr, &mut idle, &mut busy).await;
    stopping.await.unwrap();
    check_in_flight_message_stored(&env);
}

/// Slow-client limits small enough for a test: a command line must arrive
/// within 1 s of its first byte, DATA may take 1 s plus 1 s per 100 bytes,
/// and the idle timeout (3 s) is longer than both.
fn slow_limits() -> TestEnvBuilder {
    builder()
        .set("smtp", "idle_timeout_secs", "3")
        .set("smtp", "command_deadline_secs", "1")
        .set("smtp", "min_data_rate", "100")
}

/// Sends `bytes` one at a time, `gap` apart.
async fn dribble(c: &mut SmtpClient, bytes: &[u8], gap: Duration) {
    for b in bytes {
        c.send_raw(&[*b]).await;
        tokio::time::sleep(gap).await;
    }
}

#[tokio::test]
async fn a_command_line_dribbled_byte_by_byte_is_cut_off_at_the_deadline() {
    let env = slow_limits().build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let start = Instant::now();
    // every byte well within the idle timeout, the line never finished
    dribble(&mut c, b"NOOP", Duration::from_millis(250)).await;
    let r = c.read_reply().await;
    let took = start.elapsed();
    r.expect(421);
    assert_eq!(r.status(), Some("4.4.2"));
    assert!(r.text().contains("timeout exceeded (command line"), "{r:?}");
    // at the 1 s deadline, not the idle timeout 3 s after the last byte
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(c.closed().await);
    d.shutdown().await;
}

#[tokio::test]
async fn a_data_dribble_below_the_minimum_rate_gets_421_and_nothing_is_stored() {
    let env = slow_limits().build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    start_mail(&mut c).await;
    let start = Instant::now();
    // 17 bytes earn 0.17 s; then one byte (0.01 s) every 0.2 s
    c.send_raw(b"Subject: slow\r\n\r\n").await;
    dribble(&mut c, b"hello", Duration::from_millis(200)).await;
    let r = c.read_reply().await;
    let took = start.elapsed();
    r.expect(421);
    assert_eq!(r.status(), Some("4.4.2"));
    assert!(
        r.text()
            .contains("message data slower than 100 bytes per second"),
        "{r:?}"
    );
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(c.closed().await);
    d.shutdown().await;
    assert_eq!(env.count("messages", "direction = 'in'"), 0);
    assert_eq!(env.count("incoming", ""), 0);
}

/// With the slow-client limits set tight, a client at normal speed is
/// served: pauses between commands are the idle timeout's, and DATA may
/// outlast its 1 s grace when its bytes have earned the time.
#[tokio::test]
async fn a_client_at_normal_speed_is_not_affected_by_the_slow_client_limits() {
    let env = slow_limits().build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    start_mail(&mut c).await;
    // 320 bytes earn 3.2 s on top of the grace
    let head = format!(
        "Subject: paced\r\n\r\n{}",
        "0123456789abcdef\r\n".repeat(17)
    );
    c.send_raw(head.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.send_raw(b"the end\r\n.\r\n").await;
    c.read_reply().await.expect(250);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = c
        .send_mail(
            "a@example.org",
            &["dev@lists.example.org"],
            &message("a@example.org", "dev@lists.example.org", "quick", "hi"),
        )
        .await;
    r.expect(250);
    c.quit().await;
    d.shutdown().await;
    assert_eq!(env.count("messages", "direction = 'in'"), 2);
}

#[tokio::test]
async fn a_session_past_max_session_secs_gets_421_however_busy() {
    let env = builder().set("smtp", "max_session_secs", "2").build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    let start = Instant::now();
    for _ in 0..4 {
        c.cmd("NOOP").await.expect(250);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let r = c.read_reply().await;
    r.expect(421);
    assert_eq!(r.status(), Some("4.4.2"));
    assert!(r.text().contains("session longer than 2 seconds"), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(c.closed().await);
    d.shutdown().await;
}
