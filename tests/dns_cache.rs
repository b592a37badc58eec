//! The resolver caches "no such record" answers (RFC 2308): a sender whose
//! domain publishes no SPF or DMARC record costs DNS queries on its first
//! message only. A name server on 127.0.0.1 (a test double, as the capturing
//! sink plays the relay) answers every query NXDOMAIN and counts them; the
//! daemon asks it through `dns.servers`, over real UDP.

mod common;

use common::{send, wait_until, TestEnv, DOMAIN};
use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Queries seen, by question name and type.
type Seen = Arc<Mutex<HashMap<(String, u16), u32>>>;

/// A name server that answers NXDOMAIN to every question, with no SOA.
fn nxdomain_server() -> (std::net::SocketAddr, Seen) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            // the question: labels to the root, then type and class
            let mut i = 12;
            let mut name = Vec::new();
            while i < n && q[i] != 0 {
                let len = q[i] as usize;
                if i + 1 + len > n {
                    break;
                }
                name.push(String::from_utf8_lossy(&q[i + 1..i + 1 + len]).to_ascii_lowercase());
                i += 1 + len;
            }
            if i + 5 > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            *s.lock()
                .unwrap()
                .entry((name.join("."), qtype))
                .or_default() += 1;
            let mut r = Vec::with_capacity(i + 5);
            r.extend_from_slice(&q[..2]); // id
            r.extend_from_slice(&[0x81, 0x83]); // response, RD, RA, NXDOMAIN
            r.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..i + 5]);
            let _ = sock.send_to(&r, from);
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_such_record_is_asked_once_per_sender_domain() {
    let (ns, seen) = nxdomain_server();
    let env = TestEnv::builder()
        .set("dns", "servers", &format!("[\"{ns}\"]"))
        .list("dev", "posting: anyone\n")
        .build();
    let daemon = env.start().await;
    let list = format!("dev@{DOMAIN}");
    let post = |i: u32| common::message("ann@nospf.example", &list, &format!("post {i}"), "hello");
    send(daemon.smtp_addr(), "ann@nospf.example", &[&list], &post(1))
        .await
        .expect(250);
    let asked = |name: &str| -> u32 {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, c)| c)
            .sum()
    };
    assert!(
        asked("nospf.example") >= 1,
        "SPF asked: {:?}",
        seen.lock().unwrap()
    );
    assert!(
        asked("_dmarc.nospf.example") >= 1,
        "{:?}",
        seen.lock().unwrap()
    );
    let after_first: HashMap<_, _> = seen.lock().unwrap().clone();
    for i in 2..=5 {
        send(daemon.smtp_addr(), "ann@nospf.example", &[&list], &post(i))
            .await
            .expect(250);
    }
    assert_eq!(
        *seen.lock().unwrap(),
        after_first,
        "four more posts from the same domain asked nothing again"
    );
    // each post was still checked, and found no policy
    assert!(
        wait_until(Duration::from_secs(10), || {
            env.count("messages", "direction = 'in' AND auth_dmarc = 'none'") == 5
        })
        .await,
        "five verdicts stored: {}",
        env.count("messages", "auth_dmarc IS NOT NULL")
    );
    // another domain is asked about
    send(
        daemon.smtp_addr(),
        "bob@other.example",
        &[&list],
        &common::message("bob@other.example", &list, "x", "y"),
    )
    .await
    .expect(250);
    assert!(asked("other.example") >= 1);
    daemon.shutdown().await;
}
