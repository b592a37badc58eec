//! benches/fanout: one 10 KB post to a big list, delivered over SMTP to
//! Postfix's `smtp-sink` (or, if it is not installed, to a minimal
//! in-process sink, which the output says).
//!
//! The parent process builds the list (a real SQLite store in a temp dir),
//! then runs the fan-out in a child process (this same binary) so the peak
//! RSS printed (VmHWM) is that of the process doing the fan-out, not of the
//! set-up. The child queues the post with `delivery::enqueue_post` (in a
//! transaction, as the post handler does) and runs delivery passes until
//! every recipient has a verdict; the clock runs from the enqueue to the
//! last verdict recorded.
//!
//! Environment:
//! - `FANOUT_MEMBERS` (default 100000)
//! - `FANOUT_DOMAINS` recipient domains, members spread evenly (default 100)
//! - `FANOUT_VERP` `0`, `1` or `both` (default both)
//! - `FANOUT_CONNECTIONS` relay connections (default 4, the config default)
//! - `FANOUT_MAX_RCPTS` RCPTs per transaction (default 100)
//! - `FANOUT_SINK` `smtp-sink` (default) or `internal`
//! - `FANOUT_VERP_MEMBERS` members for the VERP run (default: FANOUT_MEMBERS)
//! - `FANOUT_DKIM` signing, a comma-separated list of `none`, `ed25519`,
//!   `rsa` (RSA-2048), each run in turn (default `none,ed25519,rsa`): the
//!   key is made with `listd::dkim::generate` and set in `dkim.keys`, and
//!   delivery signs the post once per body, as in production
//! - `FANOUT_PERSONALIZE` `1`: the list has `personalize: true` (each
//!   member's own List-Unsubscribe link, one transaction per member)
//!
//! Run: `cargo bench --bench fanout` (add `FANOUT_MEMBERS=1000000` for the
//! RSS target).

use listd::address::Address;
use listd::config::{Config, ListConfig};
use listd::delivery;
use listd::dkim::KeyAlgorithm;
use listd::store::{self, members, members::DeliveryMode};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &Path, port: u16, verp: bool) -> Config {
    let mut c = Config::for_tests("lists.example.org", dir);
    let key = dir.join("dkim.key");
    if key.exists() {
        c.dkim.keys.push(listd::config::DkimKeyConfig {
            domain: "lists.example.org".into(),
            selector: "bench".into(),
            key_file: key,
        });
    }
    c.relay.host = "127.0.0.1".into();
    c.relay.port = port;
    c.relay.connections = env_usize("FANOUT_CONNECTIONS", 4);
    c.relay.max_recipients = env_usize("FANOUT_MAX_RCPTS", 100);
    c.relay.timeout_secs = 30;
    let mut l = ListConfig::parse(Path::new("bench.yaml"), "bench", "").expect("list config");
    l.verp = verp;
    if std::env::var("FANOUT_PERSONALIZE").as_deref() == Ok("1") {
        l.personalize = true;
        c.web.public_url = Some("https://lists.example.org".into());
    }
    c.lists.insert("bench".into(), l);
    c
}

fn post() -> Vec<u8> {
    let mut m = String::from(
        "From: Poster <poster@example.org>\r\nTo: bench@lists.example.org\r\n\
         Subject: [bench] a 10 KB post\r\nMessage-ID: <bench@example.org>\r\n\
         List-Id: <bench.lists.example.org>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
    );
    let mut i = 0;
    while m.len() < 10 * 1024 {
        m.push_str(&format!(
            "line {i:05} of the benchmark post, plain text padding to ten kilobytes.\r\n"
        ));
        i += 1;
    }
    m.into_bytes()
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn smtp_sink_path() -> Option<PathBuf> {
    ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

struct Relay {
    port: u16,
    kind: &'static str,
    child: Option<Child>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_relay() -> Relay {
    let want = std::env::var("FANOUT_SINK").unwrap_or_else(|_| "smtp-sink".into());
    if want != "internal" {
        if let Some(p) = smtp_sink_path() {
            let port = free_port();
            let child = Command::new(p)
                .args(["-u", "root", &format!("127.0.0.1:{port}"), "1000"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn smtp-sink");
            // wait for it to listen
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            return Relay {
                port,
                kind: "postfix smtp-sink",
                child: Some(child),
            };
        }
        eprintln!(
            "smtp-sink not found (apt-get install postfix); falling back to the internal sink"
        );
    }
    let port = internal_sink::start();
    Relay {
        port,
        kind: "internal sink (smtp-sink not installed)",
        child: None,
    }
}

fn setup(dir: &Path, n: usize, domains: usize) {
    let c = config(dir, 25, false);
    let mut conn = store::open(&c.db_path()).expect("open store");
    let tx = conn.transaction().expect("tx");
    for i in 0..n {
        let a = Address::parse(&format!("member{i:07}@d{:04}.example", i % domains.max(1)))
            .expect("address");
        members::add(
            &tx,
            "bench",
            &a.to_string(),
            &a.key(),
            None,
            DeliveryMode::Each,
            1,
        )
        .expect("add member");
    }
    tx.commit().expect("commit");
}

/// The child: queue the post and deliver it; print the figures.
fn child(dir: &Path, port: u16, verp: bool) {
    let c = Arc::new(config(dir, port, verp));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = post();
    let start = Instant::now();
    let now = store::now();
    {
        let mut conn = store::open(&c.db_path()).expect("open");
        let tx = conn.transaction().expect("tx");
        delivery::enqueue_post(&tx, &c, "bench", &body, now).expect("enqueue");
        tx.commit().expect("commit");
    }
    let engine = delivery::Engine::new(c.clone()).expect("engine");
    let mut total = delivery::RecordStats::default();
    rt.block_on(async {
        loop {
            let s = engine.pass(now, || false).await.expect("pass");
            total.add(s.record);
            if let Some(why) = s.relay_down {
                panic!("relay down: {why}");
            }
            if s.units == 0 {
                break;
            }
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = total.sent + total.failed + total.deferred;
    let conn = store::open(&c.db_path()).expect("open");
    let expected = members::count(&conn, "bench").expect("count") as u64;
    if total.sent != expected {
        eprintln!(
            "fanout: only {} of {expected} recipients were sent",
            total.sent
        );
        std::process::exit(1);
    }
    println!(
        "RESULT sent={} failed={} deferred={} secs={:.3} rcpt_per_s={:.0} vmhwm_kb={}",
        total.sent,
        total.failed,
        total.deferred,
        secs,
        n as f64 / secs,
        vm_hwm_kb()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--fanout-child") {
        let dir = PathBuf::from(&args[i + 1]);
        let port: u16 = args[i + 2].parse().expect("port");
        let verp = args[i + 3] == "1";
        child(&dir, port, verp);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("fanout: benchmark");
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it: then a small smoke run checks the bench still works.
    let smoke = !args.iter().any(|a| a == "--bench");
    let n = env_usize("FANOUT_MEMBERS", if smoke { 300 } else { 100_000 });
    let domains = env_usize("FANOUT_DOMAINS", 100);
    let verps: Vec<bool> = match std::env::var("FANOUT_VERP").as_deref() {
        Ok("0") => vec![false],
        Ok("1") => vec![true],
        _ => vec![false, true],
    };
    let dkims: Vec<Option<KeyAlgorithm>> = std::env::var("FANOUT_DKIM")
        .unwrap_or_else(|_| if smoke { "ed25519" } else { "none,ed25519,rsa" }.into())
        .split(',')
        .map(|m| match m.trim() {
            "none" => None,
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            "rsa" => Some(KeyAlgorithm::Rsa),
            other => panic!("FANOUT_DKIM: unknown mode `{other}` (none, ed25519, rsa)"),
        })
        .collect();
    let relay = start_relay();
    let modes = verps
        .iter()
        .flat_map(|&v| dkims.iter().map(move |&d| (v, d)));
    for (verp, dkim) in modes {
        let members = if verp {
            env_usize("FANOUT_VERP_MEMBERS", n).min(if smoke { 300 } else { usize::MAX })
        } else {
            n
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        setup(dir.path(), members, domains);
        if let Some(a) = dkim {
            let (pem, _) = listd::dkim::generate(a).expect("key");
            std::fs::write(dir.path().join("dkim.key"), pem).expect("key file");
        }
        let setup_secs = t.elapsed().as_secs_f64();
        let exe = std::env::current_exe().expect("current exe");
        let out = Command::new(exe)
            .arg("--fanout-child")
            .arg(dir.path())
            .arg(relay.port.to_string())
            .arg(if verp { "1" } else { "0" })
            .stderr(Stdio::inherit())
            .output()
            .expect("run child");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("RESULT"))
            .unwrap_or("RESULT missing (child failed)");
        println!(
            "fanout members={members} domains={domains} verp={verp} dkim={} personalize={} relay=\"{}\" connections={} max_rcpts={} setup_secs={setup_secs:.1}\n  {line}",
            dkim.map_or("none", KeyAlgorithm::dns_tag),
            std::env::var("FANOUT_PERSONALIZE").as_deref() == Ok("1"),
            relay.kind,
            env_usize("FANOUT_CONNECTIONS", 4),
            env_usize("FANOUT_MAX_RCPTS", 100),
        );
        if !out.status.success() {
            std::process::exit(1);
        }
    }
}

/// A minimal counting sink, used only when Postfix's smtp-sink is missing.
mod internal_sink {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    pub fn start() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).expect("listener");
                while let Ok((s, _)) = l.accept().await {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(async move {
                        let (r, mut w) = s.into_split();
                        let mut r = BufReader::new(r);
                        let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                        let mut line = Vec::new();
                        let mut data = false;
                        loop {
                            line.clear();
                            if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if data {
                                if line == b".\r\n" {
                                    data = false;
                                    let _ = w.write_all(b"250 ok\r\n").await;
                                }
                                continue;
                            }
                            let up = line.to_ascii_uppercase();
                            let reply: &[u8] = if up.starts_with(b"EHLO") {
                                b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                            } else if up.starts_with(b"DATA") {
                                data = true;
                                b"354 go\r\n"
                            } else if up.starts_with(b"QUIT") {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                return;
                            } else {
                                b"250 ok\r\n"
                            };
                            let _ = w.write_all(reply).await;
                        }
                    });
                }
            });
        });
        port
    }
}
