//! benches/sustained: posts in, posts out, for a while, end to end. The
//! real `listd serve` (release build under `cargo bench`) takes posts over
//! SMTP from 32 concurrent clients (persistent connections, MAIL/RCPT/DATA
//! pipelined) to a list with one member and archiving on; its delivery
//! worker relays each post to the capturing sink of the tests
//! (`tests/common/sink.rs`), which plays the relay MTA.
//!
//! Two runs, each on its own copy of a data dir: first a store whose
//! archive already holds 1,000,000 posts (spread over 100 months up to now,
//! loaded with `listd archive import` from a generated mbox, as an operator
//! would load an old archive; the loaded data dir is cached under
//! `target/tmp/` and copied for each run), then an empty store.
//!
//! For each it prints: posts/s accepted (250 after the commit) and relayed
//! (the sink's count) during the load, and end to end (every accepted post
//! relayed); the pipeline's rate (incoming rows handled per second); the
//! daemon's CPU time per post (steadier than rates on a shared machine);
//! its peak RSS (VmHWM); and the data dir's growth per post (SQLite
//! file, split per table and index with `dbstat`, and the mbox archive).
//! One relayed post is parsed with mail-parser to check it is the list's.
//!
//! Environment:
//! - `SUSTAINED_SECS` seconds of load per run (default 20)
//! - `SUSTAINED_CLIENTS` concurrent connections (default 32)
//! - `SUSTAINED_SIZE` post size in bytes (default 5120)
//! - `SUSTAINED_PREFILL` posts in the pre-filled archive (default 1,000,000;
//!   0 skips that run)
//! - `SUSTAINED_DRAIN_SECS` how long to wait for every post to be relayed
//!   after the load (default 600)
//!
//! Run: `cargo bench --bench sustained`. Without `--bench` (as `cargo test
//! --all-targets` runs it) it does a 1-second smoke run with 4 clients and
//! a 2,000-post archive.

#[path = "../tests/common/sink.rs"]
mod sink;
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{env_u64, free_port, reply, tree_bytes, vm_hwm_kb, Daemon};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LIST: &str = "bench";
const MEMBER: &str = "member@example.net";

/// listd.yaml and the list, relaying to `relay_port`.
fn write_config(dir: &Path, smtp_port: u16, relay_port: u16) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let yaml = format!(
        "domain: lists.example.org\n\
         data_dir: data\n\
         templates_dir: \"{}\"\n\
         smtp:\n  listen: [\"127.0.0.1:{smtp_port}\"]\n  hostname: lists.example.org\n  max_connections: 256\n\
         relay:\n  host: 127.0.0.1\n  port: {relay_port}\n",
        templates.display()
    );
    std::fs::write(dir.join("listd.yaml"), yaml).expect("write listd.yaml");
    std::fs::create_dir_all(dir.join("lists")).expect("lists dir");
    std::fs::write(
        dir.join(format!("lists/{LIST}.yaml")),
        "description: sustained bench\nposting: anyone\narchive: true\ndigest:\n  enabled: false\n",
    )
    .expect("write list");
}

/// Runs the listd CLI on the config in `dir`; panics unless it succeeds.
fn cli(dir: &Path, args: &[&str], stdin: Option<&Path>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_listd"));
    cmd.arg("--config").arg(dir.join("listd.yaml")).args(args);
    if let Some(f) = stdin {
        cmd.stdin(std::fs::File::open(f).expect("open stdin file"));
    }
    let out = cmd.output().expect("run listd");
    assert!(
        out.status.success(),
        "listd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An mbox of `n` small posts, one every few minutes up to now.
fn write_mbox(path: &Path, n: u64) {
    let f = std::fs::File::create(path).expect("create mbox");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let now = listd::store::now();
    let span = 100 * 30 * 86_400i64; // about 100 months
    let step = (span / n.max(1) as i64).max(1);
    for i in 0..n {
        let t = now - (n - i) as i64 * step;
        let d = chrono::DateTime::from_timestamp(t, 0).expect("date");
        write!(
            w,
            "From poster{p}@example.org {asctime}\n\
             From: Poster {p} <poster{p}@example.org>\n\
             To: {LIST}@lists.example.org\n\
             Subject: [{LIST}] archived post {i}\n\
             Message-ID: <prefill-{i}@example.org>\n\
             Date: {date}\n\
             \n\
             This is archived post {i}, one of many the list carried before\n\
             the benchmark. It is short, like most replies on a busy list,\n\
             and the archive keeps it in the month's mbox with one index row.\n\
             \n",
            p = i % 997,
            asctime = d.format("%a %b %e %H:%M:%S %Y"),
            date = d.to_rfc2822(),
        )
        .expect("write mbox");
    }
    w.flush().expect("flush mbox");
}

/// A data dir whose archive holds `n` posts, built once and cached under
/// target/tmp (built again when `n` changes).
fn prefilled(n: u64) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sustained-prefill-{n}"));
    let done = base.join("complete");
    if done.exists() {
        return base.join("data");
    }
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("prefill dir");
    write_config(&base, 9, 9);
    let t0 = Instant::now();
    let mbox = base.join("prefill.mbox");
    write_mbox(&mbox, n);
    let written = t0.elapsed();
    let t1 = Instant::now();
    cli(
        &base,
        &["archive", "import", LIST, &mbox.display().to_string()],
        None,
    );
    let imported = t1.elapsed();
    std::fs::remove_file(&mbox).expect("remove mbox");
    println!(
        "prefill: {n} posts written as an mbox in {:.1} s, `listd archive import` took {:.1} s ({:.0} posts/s); cached in {}",
        written.as_secs_f64(),
        imported.as_secs_f64(),
        n as f64 / imported.as_secs_f64(),
        base.display()
    );
    std::fs::write(&done, b"").expect("mark prefill complete");
    base.join("data")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// Bytes per table and index of the SQLite file (dbstat).
fn table_bytes(db: &Path) -> BTreeMap<String, i64> {
    let conn = listd::store::rusqlite::Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
        .expect("dbstat");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("dbstat rows")
        .collect::<Result<_, _>>()
        .expect("dbstat read")
}

/// The SQLite file (with WAL, if any) and the mbox archive.
fn sizes(data: &Path) -> (u64, u64) {
    let db = ["listd.db", "listd.db-wal"]
        .iter()
        .map(|f| tree_bytes(&data.join(f)))
        .sum();
    (db, tree_bytes(&data.join("archive")))
}

fn post(size: usize, id: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Bench <bench@example.org>\r\nTo: {LIST}@lists.example.org\r\n\
         Subject: sustained bench\r\nMessage-ID: <{id}@example.org>\r\n\
         Date: {}\r\n\r\n",
        chrono::Utc::now().to_rfc2822()
    );
    let line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    while m.len() + line.len() <= size {
        m.push_str(line);
    }
    m.push_str(".\r\n");
    m.into_bytes()
}

async fn client(
    addr: SocketAddr,
    tag: String,
    size: usize,
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
    let envelope =
        format!("MAIL FROM:<bench@example.org>\r\nRCPT TO:<{LIST}@lists.example.org>\r\nDATA\r\n");
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        // every post its own Message-ID: the list drops duplicates
        let msg = post(size, &format!("{tag}-{seq}"));
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
        if reply(&mut r, &mut line).await != 250 {
            return Err(format!("end of data: {line}"));
        }
        accepted.fetch_add(1, Ordering::Relaxed);
    }
    let _ = w.write_all(b"QUIT\r\n").await;
    let _ = reply(&mut r, &mut line).await;
    Ok(())
}

/// Incoming rows handled (done or corrupt) so far.
fn handled(db: &Path) -> i64 {
    let conn = listd::store::rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    conn.query_row(
        "SELECT COUNT(*) FROM incoming WHERE state IN ('done', 'corrupt')",
        [],
        |r| r.get(0),
    )
    .expect("count handled")
}

struct Params {
    secs: u64,
    clients: u64,
    size: usize,
    drain: Duration,
}

struct Figures {
    end_to_end: f64,
}

fn run(name: &str, seed: Option<&Path>, p: &Params) -> Figures {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = root.path();
    let sink = sink::Sink::start();
    let port = free_port();
    write_config(dir, port, sink.port());
    if let Some(seed) = seed {
        copy_tree(seed, &dir.join("data"));
    }
    cli(dir, &["members", "add", LIST, MEMBER], None);
    let data = dir.join("data");
    let db = data.join("listd.db");
    let before = sizes(&data);
    let tables_before = table_bytes(&db);
    let archived_before: i64 = {
        let c = listd::store::open(&db).expect("open");
        c.query_row("SELECT COUNT(*) FROM archive_index", [], |r| r.get(0))
            .expect("count archive")
    };

    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let daemon = Daemon::start(&dir.join("listd.yaml"), addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let accepted = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..p.clients)
            .map(|c| {
                tokio::spawn(client(
                    addr,
                    format!("{name}-{c}").replace(' ', "-"),
                    p.size,
                    stop.clone(),
                    accepted.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(p.secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("client failed: {e}"),
                Err(e) => panic!("client task: {e}"),
            }
        }
        accepted.load(Ordering::Relaxed)
    });
    let load_secs = start.elapsed().as_secs_f64();
    let relayed_in_load = sink.delivered_count();
    let handled_in_load = handled(&db);
    let load_avg = support::load();
    let all_relayed = sink.wait_for_delivered(accepted as usize, p.drain);
    let total_secs = start.elapsed().as_secs_f64();
    let relayed = sink.delivered_count();
    let handled_all = handled(&db);
    let hwm = vm_hwm_kb(daemon.pid());
    let cpu = support::cpu_secs(daemon.pid());
    let status = daemon.stop();
    assert!(status.success(), "listd exit: {status}");
    assert!(
        all_relayed,
        "{relayed} of {accepted} posts relayed within {:?}",
        p.drain
    );
    // one relayed post, parsed: the list's copy to its member
    let last = sink.transactions().pop().expect("a relayed post");
    assert_eq!(last.rcpts, [MEMBER]);
    let parsed = mail_parser::MessageParser::default()
        .parse(&last.data)
        .expect("parse relayed post");
    assert!(
        parsed.header("List-Id").is_some(),
        "the relayed post is the list's copy"
    );
    drop(sink);

    let after = sizes(&data);
    let tables_after = table_bytes(&db);
    let conn = listd::store::open(&db).expect("open");
    let archived: i64 = conn
        .query_row("SELECT COUNT(*) FROM archive_index", [], |r| r.get(0))
        .expect("count archive");
    assert_eq!(
        (archived - archived_before) as u64,
        accepted,
        "every accepted post archived"
    );

    let n = accepted.max(1) as f64;
    let e2e = accepted as f64 / total_secs;
    println!(
        "sustained ({name}, {archived_before} posts archived before; {} clients, {}-byte posts, load {load_avg}):",
        p.clients, p.size
    );
    println!(
        "  accepted {accepted} in {load_secs:.1} s = {:.0} posts/s; relayed during the load {relayed_in_load} = {:.0} posts/s",
        accepted as f64 / load_secs,
        relayed_in_load as f64 / load_secs
    );
    println!("  end to end: all {accepted} relayed after {total_secs:.1} s = {e2e:.0} posts/s");
    println!(
        "  pipeline: {handled_in_load} posts handled during the load = {:.0}/s; all {handled_all} after {total_secs:.1} s",
        handled_in_load as f64 / load_secs
    );
    if let Some(cpu) = cpu {
        println!(
            "  daemon CPU {cpu:.1} s = {:.0} µs per post (intake, pipeline, archive, delivery)",
            cpu * 1e6 / n
        );
    }
    match hwm {
        Some(kb) => println!("  daemon peak RSS (VmHWM) {:.1} MiB", kb as f64 / 1024.0),
        None => println!("  daemon peak RSS unavailable"),
    }
    let grew_db = after.0 as f64 - before.0 as f64;
    let grew_mbox = after.1 as f64 - before.1 as f64;
    println!(
        "  data dir: {:.0} bytes/post (SQLite file {:.0}, mbox {:.0}); now {:.1} MiB SQLite + {:.1} MiB mbox",
        (grew_db + grew_mbox) / n,
        grew_db / n,
        grew_mbox / n,
        after.0 as f64 / 1048576.0,
        after.1 as f64 / 1048576.0
    );
    let mut per_table: Vec<(String, f64)> = tables_after
        .iter()
        .map(|(t, b)| {
            let was = tables_before.get(t).copied().unwrap_or(0);
            (t.clone(), (b - was) as f64 / n)
        })
        .filter(|(_, b)| b.abs() >= 1.0)
        .collect();
    per_table.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown: Vec<String> = per_table
        .iter()
        .map(|(t, b)| format!("{t} {b:.0}"))
        .collect();
    println!(
        "  SQLite bytes/post by table and index: {}",
        shown.join(", ")
    );
    // what the daemon's hourly clean-up leaves once `retain_incoming_hours`
    // have passed: the received copies go, the decorated one stays
    let config = listd::config::Config::load(&dir.join("listd.yaml")).expect("config");
    let later = listd::store::now() + 3600 * (config.delivery.retain_incoming_hours as i64 + 1);
    let mut conn = listd::store::open(&db).expect("open");
    let purged = listd::delivery::retention::purge(&mut conn, &config, later).expect("purge");
    let live = |t: &BTreeMap<String, i64>| t.values().sum::<i64>() as f64;
    let tables_purged = table_bytes(&db);
    println!(
        "  after the clean-up {}h on ({} received bodies freed): SQLite {:.0} bytes/post in use \
         (messages {:.0}), mbox {:.0}",
        config.delivery.retain_incoming_hours + 1,
        purged.messages,
        (live(&tables_purged) - live(&tables_before)) / n,
        (tables_purged.get("messages").copied().unwrap_or(0)
            - tables_before.get("messages").copied().unwrap_or(0)) as f64
            / n,
        grew_mbox / n
    );
    Figures { end_to_end: e2e }
}

fn main() {
    let real = std::env::args().any(|a| a == "--bench");
    let p = Params {
        secs: if real {
            env_u64("SUSTAINED_SECS", 20)
        } else {
            1
        },
        clients: if real {
            env_u64("SUSTAINED_CLIENTS", 32)
        } else {
            4
        },
        size: env_u64("SUSTAINED_SIZE", 5120) as usize,
        drain: Duration::from_secs(if real {
            env_u64("SUSTAINED_DRAIN_SECS", 600)
        } else {
            60
        }),
    };
    let prefill = if real {
        env_u64("SUSTAINED_PREFILL", 1_000_000)
    } else {
        2_000
    };
    let full = (prefill > 0).then(|| {
        let seed = prefilled(prefill);
        run(&format!("{prefill}-post store"), Some(&seed), &p)
    });
    let empty = run("empty store", None, &p);
    if let Some(full) = full {
        println!(
            "sustained: end to end {:.0} posts/s with {prefill} archived vs {:.0} posts/s empty ({:+.1}%)",
            full.end_to_end,
            empty.end_to_end,
            (full.end_to_end / empty.end_to_end - 1.0) * 100.0
        );
    }
    if !real {
        println!("sustained: smoke run (use `cargo bench --bench sustained` for the real one)");
    }
}
