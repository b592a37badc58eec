//! Durability: the real `listd serve` binary is killed with SIGKILL in the
//! middle of a burst of 200 pipelined messages; every message it answered
//! 250 must be in the spool (its bytes and its incoming row) afterwards.
//! Also: SIGTERM stops the binary cleanly with exit code 0.

mod common;

use common::*;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CONNECTIONS: usize = 4;
const PER_CONNECTION: usize = 50;

#[tokio::test]
async fn kill_9_mid_burst_loses_no_message_answered_250() {
    let port = free_port();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{port}\"]"))
        .list("dev", "posting: anyone\n")
        .build();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = spawn_serve(&env);
    wait_listening(addr).await;

    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for conn in 0..CONNECTIONS {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = SmtpClient::connect_ehlo(addr).await;
            let mut burst = String::new();
            for i in 0..PER_CONNECTION {
                burst +=
                    "MAIL FROM:<burst@example.org>\r\nRCPT TO:<dev@lists.example.org>\r\nDATA\r\n";
                burst += &dot_stuff(&message(
                    "burst@example.org",
                    "dev@lists.example.org",
                    &format!("burst {conn}-{i}"),
                    &"Five kilobytes of text, in lines of a sensible length....\n".repeat(85),
                ));
                burst += ".\r\n";
            }
            // the whole burst in one write, without waiting for any reply
            let writer = async { c.send_raw(burst.as_bytes()).await };
            let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
            let mut ids = Vec::new();
            'outer: for _ in 0..PER_CONNECTION {
                for expect in [250, 250, 354] {
                    match c.try_read_reply().await {
                        Some(r) => assert_eq!(r.code, expect, "{r:?}"),
                        None => break 'outer,
                    }
                }
                match c.try_read_reply().await {
                    Some(r) => {
                        assert_eq!(r.code, 250, "{r:?}");
                        ids.push(r.text().rsplit(' ').next().unwrap().to_string());
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    None => break,
                }
            }
            ids
        }));
    }
    // kill -9 once part of the burst has been answered
    let total = CONNECTIONS * PER_CONNECTION;
    assert!(
        wait_until(Duration::from_secs(60), || acked.load(Ordering::SeqCst)
            >= total / 3)
        .await,
        "the burst did not get going"
    );
    child.0.kill().expect("kill -9");
    child.0.wait().unwrap();
    let mut answered = Vec::new();
    for t in tasks {
        answered.extend(t.await.expect("client task"));
    }
    assert!(answered.len() >= total / 3);
    assert!(
        answered.len() < total,
        "the kill came mid-burst ({} of {total} answered)",
        answered.len()
    );

    // every 250 is in the spool: bytes and incoming row
    let conn = env.store();
    let mut stmt = conn
        .prepare(
            "SELECT m.bytes, (SELECT COUNT(*) FROM incoming i WHERE i.message_id = m.id AND i.rcpt = 'dev@lists.example.org')
             FROM messages m WHERE m.direction = 'in'",
        )
        .unwrap();
    let mut stored = HashSet::new();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
        .unwrap();
    for row in rows {
        let (bytes, incoming) = row.unwrap();
        assert_eq!(incoming, 1, "a stored message has its incoming row");
        let text = String::from_utf8_lossy(&bytes);
        let id = text
            .split(" id ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("Received: header with id")
            .trim_end_matches(';')
            .to_string();
        let p = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        assert!(p.subject().unwrap().starts_with("burst "));
        stored.insert(id);
    }
    eprintln!(
        "killed mid-burst: {} of {total} answered 250, {} in the spool",
        answered.len(),
        stored.len()
    );
    for id in &answered {
        assert!(
            stored.contains(id),
            "message {id} was answered 250 but is not in the spool"
        );
    }

    // the daemon starts again on the same data, and SIGTERM exits 0
    let child = spawn_serve(&env);
    wait_listening(addr).await;
    let r = send(
        addr,
        "after@example.org",
        &["dev@lists.example.org"],
        "Subject: after\r\n\r\nx\r\n",
    )
    .await;
    r.expect(250);
    let pid = child.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.0.wait()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(exit.code(), Some(0), "SIGTERM shutdown exits 0");
    assert_eq!(
        env.count("messages", "direction = 'in'") as usize,
        stored.len() + 1
    );
}
