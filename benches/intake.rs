//! benches/intake: 32 concurrent SMTP clients send 5 KB messages to a
//! running `listd serve` for 10 s; prints the messages per second accepted
//! durably (each counted only after its 250, which the daemon sends after
//! the commit) and the daemon's peak RSS (VmHWM of the child process).
//!
//! The daemon is the real binary (release build under `cargo bench`) on a
//! temp dir with its own SQLite file, the shipped templates and a list with
//! no members (`posting: anyone`), so the pipeline runs too, as it would.
//! The clients run in this process on their own tokio runtime; each pipelines
//! MAIL, RCPT and DATA (RFC 2920), then sends the message.
//!
//! Environment:
//! - `INTAKE_SECS` seconds of load (default 10)
//! - `INTAKE_CLIENTS` concurrent connections (default 32)
//! - `INTAKE_SIZE` message size in bytes (default 5120)
//! - `INTAKE_RCPT` the recipient (default `bench@lists.example.org`, a post)
//! - `INTAKE_DRAIN_SECS` how long to wait for the pipeline to drain the
//!   incoming queue after the load (default 600; 0 skips the wait)
//!
//! After the load it also measures the pipeline: how many incoming rows it
//! handled while the clients were sending, and how long it then needs to
//! handle the rest (read from the same SQLite file while the daemon runs).
//!
//! Run: `cargo bench --bench intake`. Without `--bench` (as `cargo test
//! --all-targets` runs it) it does a 1-second smoke run with 4 clients.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn write_config(dir: &Path, port: u16) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let yaml = format!(
        "domain: lists.example.org\n\
         data_dir: data\n\
         templates_dir: \"{}\"\n\
         smtp:\n  listen: [\"127.0.0.1:{port}\"]\n  hostname: lists.example.org\n  max_connections: 256\n\
         relay:\n  host: 127.0.0.1\n  port: 9\n",
        templates.display()
    );
    std::fs::write(dir.join("listd.yaml"), yaml).expect("write listd.yaml");
    std::fs::create_dir_all(dir.join("lists")).expect("lists dir");
    std::fs::write(
        dir.join("lists/bench.yaml"),
        "description: intake bench\nposting: anyone\narchive: false\ndigest:\n  enabled: false\n",
    )
    .expect("write list");
}

fn message(size: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: Bench <bench@example.org>\r\nTo: bench@lists.example.org\r\n\
         Subject: intake bench\r\nMessage-ID: <intake-bench@example.org>\r\n\
         Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
    );
    let line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    while m.len() + line.len() <= size {
        m.push_str(line);
    }
    m.push_str(".\r\n");
    m.into_bytes()
}

/// Reads one reply; returns its code (0 on EOF or a malformed reply).
async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, line: &mut String) -> u16 {
    loop {
        line.clear();
        match r.read_line(line).await {
            Ok(n) if n >= 4 => {
                let code = line[..3].parse().unwrap_or(0);
                if line.as_bytes()[3] == b' ' {
                    return code;
                }
            }
            _ => return 0,
        }
    }
}

async fn client(
    addr: SocketAddr,
    rcpt: Arc<String>,
    msg: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
) -> Result<(), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    if reply(&mut r, &mut line).await != 220 {
        return Err(format!("greeting: {line}"));
    }
    w.write_all(b"EHLO bench.example\r\n")
        .await
        .map_err(|e| e.to_string())?;
    if reply(&mut r, &mut line).await != 250 {
        return Err(format!("EHLO: {line}"));
    }
    let envelope = format!("MAIL FROM:<bench@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
    while !stop.load(Ordering::Relaxed) {
        w.write_all(envelope.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        for expect in [250, 250, 354] {
            let c = reply(&mut r, &mut line).await;
            if c != expect {
                return Err(format!("expected {expect}: {line}"));
            }
        }
        w.write_all(&msg).await.map_err(|e| e.to_string())?;
        let c = reply(&mut r, &mut line).await;
        if c != 250 {
            return Err(format!("end of data: {line}"));
        }
        accepted.fetch_add(1, Ordering::Relaxed);
    }
    let _ = w.write_all(b"QUIT\r\n").await;
    let _ = reply(&mut r, &mut line).await;
    Ok(())
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let real = std::env::args().any(|a| a == "--bench");
    let secs = if real { env_u64("INTAKE_SECS", 10) } else { 1 };
    let clients = if real {
        env_u64("INTAKE_CLIENTS", 32)
    } else {
        4
    };
    let size = env_u64("INTAKE_SIZE", 5120) as usize;
    let rcpt = std::env::var("INTAKE_RCPT").unwrap_or_else(|_| "bench@lists.example.org".into());

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    write_config(dir.path(), port);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_listd"))
            .arg("--config")
            .arg(dir.path().join("listd.yaml"))
            .args(["serve", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn listd serve"),
    );
    let pid = daemon.0.id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (accepted, elapsed) = rt.block_on(async {
        let t0 = Instant::now();
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "listd did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let msg = Arc::new(message(size));
        let rcpt = Arc::new(rcpt.clone());
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            tasks.push(tokio::spawn(client(
                addr,
                rcpt.clone(),
                msg.clone(),
                stop.clone(),
                accepted.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let counted = accepted.load(Ordering::Relaxed);
        let elapsed = start.elapsed();
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("client failed: {e}"),
                Err(e) => panic!("client task: {e}"),
            }
        }
        (counted, elapsed)
    });
    let drain_limit = Duration::from_secs(if real {
        env_u64("INTAKE_DRAIN_SECS", 600)
    } else {
        30
    });
    let drain = measure_drain(&dir.path().join("data/listd.db"), drain_limit);
    let hwm = vm_hwm_kb(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = daemon.0.wait().expect("wait for listd");

    let conn = listd::store::open(&dir.path().join("data/listd.db")).expect("open store");
    let stored: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE direction = 'in'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(
        stored as u64 >= accepted,
        "every 250 is in the spool ({stored} stored, {accepted} answered)"
    );
    let rate = accepted as f64 / elapsed.as_secs_f64();
    println!(
        "intake: {clients} clients, {size}-byte messages to {rcpt}, {:.1} s: {accepted} accepted durably = {rate:.0} messages/s",
        elapsed.as_secs_f64()
    );
    match hwm {
        Some(kb) => println!(
            "intake: daemon peak RSS (VmHWM) {:.1} MiB",
            kb as f64 / 1024.0
        ),
        None => println!("intake: daemon peak RSS unavailable (/proc/{pid}/status unreadable)"),
    }
    println!("intake: {stored} messages in the spool; daemon exit: {status}");
    if let Some(d) = drain {
        let during = d.handled_at_stop as f64 / elapsed.as_secs_f64();
        println!(
            "pipeline: {} incoming rows handled during the {:.1} s load ({during:.0}/s), {} still waiting when it stopped",
            d.handled_at_stop,
            elapsed.as_secs_f64(),
            d.waiting_at_stop
        );
        let left = d.waiting_at_stop - d.waiting_at_end;
        let rate = left as f64 / d.took.as_secs_f64().max(1e-3);
        println!(
            "pipeline: then {left} rows in {:.1} s ({rate:.0}/s with no intake){}",
            d.took.as_secs_f64(),
            if d.waiting_at_end > 0 {
                format!("; gave up with {} still waiting", d.waiting_at_end)
            } else {
                String::new()
            }
        );
        let total = d.handled_at_stop + left;
        println!(
            "pipeline: {total} rows in {:.1} s overall = {:.0} rows/s",
            elapsed.as_secs_f64() + d.took.as_secs_f64(),
            total as f64 / (elapsed.as_secs_f64() + d.took.as_secs_f64())
        );
    }
    if !real {
        println!("intake: smoke run (use `cargo bench --bench intake` for the real one)");
    }
}

struct Drain {
    handled_at_stop: i64,
    waiting_at_stop: i64,
    waiting_at_end: i64,
    took: Duration,
}

/// Rows the pipeline has handled (done or corrupt) and rows still waiting.
fn pipeline_counts(conn: &listd::store::rusqlite::Connection) -> Option<(i64, i64)> {
    conn.query_row(
        "SELECT COALESCE(SUM(state IN ('done', 'corrupt')), 0), COALESCE(SUM(state = 'incoming'), 0) FROM incoming",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

/// Waits (up to `limit`) until the daemon's pipeline has handled every
/// incoming row, and says how long that took from the end of the load.
fn measure_drain(db: &Path, limit: Duration) -> Option<Drain> {
    if limit.is_zero() {
        return None;
    }
    let conn = listd::store::rusqlite::Connection::open(db).ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    let start = Instant::now();
    let (handled_at_stop, waiting_at_stop) = pipeline_counts(&conn)?;
    let mut waiting = waiting_at_stop;
    while waiting > 0 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
        waiting = pipeline_counts(&conn).map(|c| c.1).unwrap_or(waiting);
    }
    Some(Drain {
        handled_at_stop,
        waiting_at_stop,
        waiting_at_end: waiting,
        took: start.elapsed(),
    })
}
