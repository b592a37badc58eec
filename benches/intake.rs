//! benches/intake: 32 concurrent SMTP clients send 5 KB messages to a
//! running `listd serve` for 10 s; prints the messages per second accepted
//! durably (each counted only after its 250, which the daemon sends after
//! the commit) and the daemon's peak RSS (VmHWM of the child process).
//!
//! Two modes, each on a fresh daemon: persistent connections (each client
//! sends message after message on one connection) and one message per
//! connection (connect, greeting, EHLO, one transaction, QUIT: what a
//! sending MX without connection caching does). Then, where Postfix is
//! installed, the same client for both, Postfix's `smtp-source` (one
//! message per connection), against listd and against a private Postfix
//! instance with a durable queue, in alternating rounds of the same run.
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
//! - `INTAKE_PER_CONNECTION` `1`: only one message per connection; `0`:
//!   only persistent connections (default: both)
//! - `INTAKE_SOURCE_MSGS` messages smtp-source sends to each of listd and
//!   Postfix per round (default 10,000; 0 skips the comparison)
//! - `INTAKE_SOURCE_ROUNDS` alternating rounds (default 3; medians shown)
//! - `INTAKE_AUTH` `0`: the daemon checks no SPF/DKIM/DMARC, as the
//!   private Postfix checks nothing (default `1`: checked, listd's default)
//! - `INTAKE_DRAIN_SECS` how long to wait for the pipeline to drain the
//!   incoming queue after the load (default 600; 0 skips the wait)
//!
//! After the load it also measures the pipeline: how many incoming rows it
//! handled while the clients were sending, and how long it then needs to
//! handle the rest (read from the same SQLite file while the daemon runs).
//!
//! Run: `cargo bench --bench intake`. Without `--bench` (as `cargo test
//! --all-targets` runs it) it does a 1-second smoke run with 4 clients in
//! each mode, without Postfix.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{env_u64, free_port, reply, vm_hwm_kb, Daemon};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn write_config(dir: &Path, port: u16) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let yaml = format!(
        "domain: lists.example.org\n\
         data_dir: data\n\
         templates_dir: \"{}\"\n\
         smtp:\n  listen: [\"127.0.0.1:{port}\"]\n  hostname: lists.example.org\n  max_connections: 256\n\
         relay:\n  host: 127.0.0.1\n  port: 9\n\
         auth:\n  enabled: {auth}\n",
        templates.display(),
        auth = env_u64("INTAKE_AUTH", 1) != 0,
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

/// How a client uses its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One connection, message after message (connection caching).
    Persistent,
    /// Connect, greet, EHLO, one message, QUIT, again (an MX without
    /// connection caching).
    PerConnection,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Persistent => "persistent connections",
            Mode::PerConnection => "one message per connection",
        }
    }
}

type Reader = BufReader<tokio::net::tcp::OwnedReadHalf>;
type Writer = tokio::net::tcp::OwnedWriteHalf;

async fn open(addr: SocketAddr, line: &mut String) -> Result<(Reader, Writer), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    if reply(&mut r, line).await != 220 {
        return Err(format!("greeting: {line}"));
    }
    w.write_all(b"EHLO bench.example\r\n")
        .await
        .map_err(|e| e.to_string())?;
    if reply(&mut r, line).await != 250 {
        return Err(format!("EHLO: {line}"));
    }
    Ok((r, w))
}

/// One pipelined transaction; Ok once the 250 after the data came.
async fn send(
    r: &mut Reader,
    w: &mut Writer,
    envelope: &[u8],
    msg: &[u8],
    line: &mut String,
) -> Result<(), String> {
    w.write_all(envelope).await.map_err(|e| e.to_string())?;
    for expect in [250, 250, 354] {
        let c = reply(r, line).await;
        if c != expect {
            return Err(format!("expected {expect}: {line}"));
        }
    }
    w.write_all(msg).await.map_err(|e| e.to_string())?;
    let c = reply(r, line).await;
    if c != 250 {
        return Err(format!("end of data: {line}"));
    }
    Ok(())
}

async fn quit(r: &mut Reader, w: &mut Writer, line: &mut String) {
    let _ = w.write_all(b"QUIT\r\n").await;
    let _ = reply(r, line).await;
}

async fn client(
    addr: SocketAddr,
    mode: Mode,
    rcpt: Arc<String>,
    msg: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
) -> Result<(), String> {
    let mut line = String::new();
    let envelope = format!("MAIL FROM:<bench@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
    let (mut r, mut w) = open(addr, &mut line).await?;
    while !stop.load(Ordering::Relaxed) {
        send(&mut r, &mut w, envelope.as_bytes(), &msg, &mut line).await?;
        accepted.fetch_add(1, Ordering::Relaxed);
        if mode == Mode::PerConnection {
            quit(&mut r, &mut w, &mut line).await;
            (r, w) = open(addr, &mut line).await?;
        }
    }
    quit(&mut r, &mut w, &mut line).await;
    Ok(())
}

/// A daemon on a fresh temp dir.
fn fresh_daemon() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    write_config(dir.path(), port);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let daemon = Daemon::start(&dir.path().join("listd.yaml"), addr);
    (dir, daemon)
}

struct Load {
    secs: u64,
    clients: u64,
    size: usize,
    rcpt: String,
    drain_limit: Duration,
}

/// One run of the in-process clients in `mode` against a fresh daemon.
fn run(mode: Mode, load: &Load) {
    let (dir, daemon) = fresh_daemon();
    let pid = daemon.pid();
    let addr = daemon.addr;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (accepted, elapsed) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let msg = Arc::new(message(load.size));
        let rcpt = Arc::new(load.rcpt.clone());
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..load.clients {
            tasks.push(tokio::spawn(client(
                addr,
                mode,
                rcpt.clone(),
                msg.clone(),
                stop.clone(),
                accepted.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(load.secs)).await;
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
    let cpu = support::cpu_secs(pid);
    let drain = measure_drain(&dir.path().join("data/listd.db"), load.drain_limit);
    let hwm = vm_hwm_kb(pid);
    let status = daemon.stop();

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
        "intake ({}): {} clients, {}-byte messages to {}, {:.1} s: {accepted} accepted durably = {rate:.0} messages/s (load {})",
        mode.name(),
        load.clients,
        load.size,
        load.rcpt,
        elapsed.as_secs_f64(),
        support::load()
    );
    if let Some(cpu) = cpu {
        println!(
            "intake: daemon CPU {cpu:.1} s during the load = {:.0} µs per message (intake and pipeline)",
            cpu * 1e6 / accepted.max(1) as f64
        );
    }
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
}

/// The same client, Postfix's `smtp-source` (one message per connection),
/// against listd and a private Postfix with a durable queue, in `rounds`
/// alternating rounds (the machine's other load moves between rounds);
/// prints each round and the medians.
fn versus_postfix(load: &Load, count: u64, rounds: u64) {
    let sessions = load.clients;
    let size = load.size as u64;
    let postfix = support::PrivatePostfix::start(None);
    let (_dir, daemon) = fresh_daemon();
    println!(
        "smtp-source -s {sessions} -m {count} -l {size}, one message per connection, {rounds} alternating rounds:"
    );
    let (mut l, mut p) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let listd = support::smtp_source(daemon.addr, sessions, count, size, &load.rcpt);
        let pf = match &postfix {
            Ok(pf) => support::smtp_source(pf.addr, sessions, count, size, &load.rcpt),
            Err(e) => Err(e.clone()),
        };
        let show = |r: &Result<f64, String>| match r {
            Ok(v) => format!("{v:.0} msgs/s"),
            Err(e) => format!("skipped ({e})"),
        };
        println!(
            "  round {round} (load {}): listd {}, postfix {}",
            support::load(),
            show(&listd),
            show(&pf)
        );
        l.extend(listd.ok());
        p.extend(pf.ok());
    }
    daemon.stop();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    match (median(&mut l), median(&mut p)) {
        (Some(l), Some(p)) => println!(
            "  median: listd {l:.0} msgs/s, postfix {p:.0} msgs/s (private instance, durable queue, discard transport): listd / postfix = {:.2}x",
            l / p
        ),
        (Some(l), None) => println!("  median: listd {l:.0} msgs/s; postfix skipped"),
        _ => println!("  skipped"),
    }
}

fn main() {
    let real = std::env::args().any(|a| a == "--bench");
    let load = Load {
        secs: if real { env_u64("INTAKE_SECS", 10) } else { 1 },
        clients: if real {
            env_u64("INTAKE_CLIENTS", 32)
        } else {
            4
        },
        size: env_u64("INTAKE_SIZE", 5120) as usize,
        rcpt: std::env::var("INTAKE_RCPT").unwrap_or_else(|_| "bench@lists.example.org".into()),
        drain_limit: Duration::from_secs(if real {
            env_u64("INTAKE_DRAIN_SECS", 600)
        } else {
            30
        }),
    };
    let modes: &[Mode] = match std::env::var("INTAKE_PER_CONNECTION").as_deref() {
        Ok("1") => &[Mode::PerConnection],
        Ok("0") => &[Mode::Persistent],
        _ => &[Mode::Persistent, Mode::PerConnection],
    };
    for &mode in modes {
        run(mode, &load);
    }
    let count = env_u64("INTAKE_SOURCE_MSGS", if real { 10_000 } else { 0 });
    if count > 0 {
        versus_postfix(&load, count, env_u64("INTAKE_SOURCE_ROUNDS", 3).max(1));
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
