//! benches/bounces: bounce processing under load. The real `listd serve`
//! (release build under `cargo bench`) takes RFC 3464 DSNs over SMTP at
//! `bench-bounces+USER=example.net@` from concurrent clients (persistent
//! connections, MAIL/RCPT/DATA pipelined), on a store whose list has
//! 1,000,000 members, every one with a bounce score row (so the score
//! table is at 1M rows). Each DSN names its own member with a 5.1.1, so
//! each is read, recorded and scored (a seek on the score table, an
//! upsert); none reaches the threshold, so no notice is sent.
//!
//! It prints: DSNs/s accepted (250 after the commit), DSNs/s processed end
//! to end (first DSN sent to the last one's `bounces` row), and the
//! daemon's CPU time per DSN; then checks that a member's score went up by
//! exactly one hard bounce.
//!
//! Environment:
//! - `BOUNCES_DSNS` DSNs to send (default 10,000)
//! - `BOUNCES_MEMBERS` members with a score row (default 1,000,000)
//! - `BOUNCES_CLIENTS` concurrent connections (default 8)
//!
//! Run: `cargo bench --bench bounces`. Without `--bench` (as `cargo test
//! --all-targets` runs it) it does a smoke run: 200 DSNs, 2,000 members.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{cpu_secs, env_u64, free_port, reply, Daemon};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LIST: &str = "bench";
const DAY: i64 = 86_400;

fn member(i: u64) -> String {
    format!("m{i:07}@example.net")
}

/// listd.yaml and the list; the relay is a closed port (nothing is sent),
/// and DNS an empty static zone (as in the tests).
fn write_config(dir: &Path, smtp_port: u16) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let yaml = format!(
        "domain: lists.example.org\n\
         data_dir: data\n\
         templates_dir: \"{}\"\n\
         smtp:\n  listen: [\"127.0.0.1:{smtp_port}\"]\n  hostname: lists.example.org\n  max_connections: 256\n\
         relay:\n  host: 127.0.0.1\n  port: {}\n\
         dns:\n  static_zone: static-zone\n",
        templates.display(),
        free_port()
    );
    // an empty zone: the intake checks ask no name server
    std::fs::write(dir.join("static-zone"), "").expect("write zone");
    std::fs::write(dir.join("listd.yaml"), yaml).expect("write listd.yaml");
    std::fs::create_dir_all(dir.join("lists")).expect("lists dir");
    std::fs::write(
        dir.join(format!("lists/{LIST}.yaml")),
        "description: bounce bench\nposting: members\nverp: true\n",
    )
    .expect("write list");
}

/// `members` members, each with a score row of one hard bounce yesterday.
fn prefill(dir: &Path, members: u64, now: i64) {
    let mut conn = listd::store::open(&dir.join("data/listd.db")).expect("open store");
    let tx = conn.transaction().expect("tx");
    {
        let mut m = tx
            .prepare(
                "INSERT INTO members(list, address, address_key, mode, joined_at)
                 VALUES (?1, ?2, ?2, 'each', ?3)",
            )
            .expect("prepare");
        let mut s = tx
            .prepare(
                "INSERT INTO bounce_scores(list, address_key, address, score, counted, last_day,
                                           last_bounce_at, last_status)
                 VALUES (?1, ?2, ?2, 1.0, 1, ?3, ?4, '5.1.1')",
            )
            .expect("prepare");
        let y = now - DAY;
        for i in 0..members {
            let a = member(i);
            m.execute(rusqlite::params![LIST, a, now]).expect("member");
            s.execute(rusqlite::params![LIST, a, y.div_euclid(DAY), y])
                .expect("score");
        }
    }
    tx.commit().expect("commit");
}

/// A Postfix-style DSN for `rcpt`, dot-stuffed, ending in the final dot.
fn dsn(rcpt: &str) -> Vec<u8> {
    let verp = rcpt.replace('@', "=");
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n\
To: {LIST}-bounces+{verp}@lists.example.org\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
<{rcpt}>: host mx.example.net said: 550 5.1.1 User unknown\r\n\
\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
\r\n\
Final-Recipient: rfc822; {rcpt}\r\n\
BounceAction: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n\
\r\n\
--B--\r\n.\r\n"
    )
    .into_bytes()
}

/// One client: sends the DSNs for members `ids`, one transaction each.
async fn client(addr: SocketAddr, ids: Vec<u64>) -> Result<(), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    if reply(&mut r, &mut line).await != 220 {
        return Err(format!("greeting: {line}"));
    }
    w.write_all(b"EHLO mx.example.net\r\n")
        .await
        .map_err(|e| e.to_string())?;
    if reply(&mut r, &mut line).await != 250 {
        return Err(format!("EHLO: {line}"));
    }
    for i in ids {
        let rcpt = member(i);
        let env = format!(
            "MAIL FROM:<>\r\nRCPT TO:<{LIST}-bounces+{}@lists.example.org>\r\nDATA\r\n",
            rcpt.replace('@', "=")
        );
        w.write_all(env.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        for expect in [250, 250, 354] {
            if reply(&mut r, &mut line).await != expect {
                return Err(format!("expected {expect}: {line}"));
            }
        }
        w.write_all(&dsn(&rcpt)).await.map_err(|e| e.to_string())?;
        if reply(&mut r, &mut line).await != 250 {
            return Err(format!("end of data: {line}"));
        }
    }
    let _ = w.write_all(b"QUIT\r\n").await;
    Ok(())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("bounces: benchmark");
        return;
    }
    let real = std::env::args().any(|a| a == "--bench");
    let dsns = env_u64("BOUNCES_DSNS", if real { 10_000 } else { 200 });
    let members = env_u64("BOUNCES_MEMBERS", if real { 1_000_000 } else { 2_000 }).max(dsns);
    let clients = env_u64("BOUNCES_CLIENTS", 8).max(1);
    if !real {
        println!("bounces: smoke run (use `cargo bench --bench bounces` for the real one)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    write_config(dir.path(), port);
    let now = listd::store::now();
    let t = Instant::now();
    prefill(dir.path(), members, now);
    println!(
        "bounces: {members} members with score rows loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let daemon = Daemon::start(&dir.path().join("listd.yaml"), addr);
    let cpu0 = cpu_secs(daemon.pid()).unwrap_or(0.0);
    // members spread over the whole table
    let stride = (members / dsns).max(1);
    let ids: Vec<u64> = (0..dsns).map(|k| k * stride).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    let shares: Vec<Vec<u64>> = (0..clients)
        .map(|c| {
            ids.iter()
                .copied()
                .skip(c as usize)
                .step_by(clients as usize)
                .collect()
        })
        .collect();
    rt.block_on(async {
        let tasks: Vec<_> = shares
            .into_iter()
            .map(|s| tokio::spawn(client(addr, s)))
            .collect();
        for t in tasks {
            t.await.expect("client task").expect("client");
        }
    });
    let accepted_in = t0.elapsed();
    // processed: every DSN has its `bounces` row
    let conn =
        rusqlite::Connection::open(dir.path().join("data/listd.db")).expect("open for reading");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n: i64 = conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM bounces", [], |r| r.get(0))
            .expect("count bounces");
        if n as u64 >= dsns {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {dsns} DSNs processed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let processed_in = t0.elapsed();
    let cpu = cpu_secs(daemon.pid()).unwrap_or(0.0) - cpu0;
    let status = daemon.stop();
    assert!(status.success(), "listd exited with {status}");
    // a scored member: yesterday's 1.0 plus today's hard bounce
    let score: f64 = conn
        .query_row(
            "SELECT score FROM bounce_scores WHERE list = ?1 AND address_key = ?2",
            rusqlite::params![LIST, member(ids[ids.len() / 2])],
            |r| r.get(0),
        )
        .expect("score row");
    assert_eq!(score, 2.0, "the DSN was not scored once");
    let counted: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM bounces WHERE kind = 'hard' AND recipient IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(counted as u64, dsns, "every DSN read as a hard bounce");
    println!(
        "bounces: {dsns} DSNs from {clients} clients, score table at {members} rows: \
         accepted {:.0}/s, processed end to end {:.0}/s ({:.2} s), daemon CPU {:.0} µs/DSN",
        dsns as f64 / accepted_in.as_secs_f64(),
        dsns as f64 / processed_in.as_secs_f64(),
        processed_in.as_secs_f64(),
        cpu * 1e6 / dsns as f64
    );
}
