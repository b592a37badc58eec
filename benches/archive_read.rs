//! Benchmark: one list archive of 1,000,000 posts (`BENCH_POSTS`) read
//! over IMAP from the real `listd serve`: SELECT (the mailbox opens), SEARCH
//! (SUBJECT and BODY on the full-text index, SINCE on the date index, a
//! UID range) and FETCH (one message's BODY[], ENVELOPE and BODYSTRUCTURE
//! read from its month file by offset). Target: each under 100 ms (median,
//! release build), with the daemon's peak RSS (VmHWM) printed.
//!
//! The archive is built straight into the store and the month files in
//! the format `archive` writes (mboxrd entries, `archive_index` rows);
//! the search index is then brought up to date with `reader::text` (its
//! time is printed, not part of the target: the daemon does it once, a
//! batch at a time, as posts arrive and searches come).

#[path = "support/archive_fill.rs"]
mod archive_fill;
#[path = "support/mod.rs"]
mod support;

use archive_fill::{build, NEEDLE_EVERY, T0};
use listd::store;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

struct Client {
    r: BufReader<TcpStream>,
    n: u32,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut c = Client {
            r: BufReader::new(s),
            n: 0,
        };
        c.line();
        c
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        // a literal: read its bytes, then the rest of the line
        while let Some(n) = l
            .trim_end()
            .strip_suffix('}')
            .and_then(|s| s.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            let mut b = vec![0; n];
            self.r.read_exact(&mut b).unwrap();
            l.push_str(&String::from_utf8_lossy(&b));
            let mut rest = String::new();
            self.r.read_line(&mut rest).unwrap();
            l.push_str(&rest);
        }
        l
    }

    /// Runs a command; returns its responses and how long it took.
    fn run(&mut self, cmd: &str) -> (Vec<String>, Duration) {
        self.n += 1;
        let tag = format!("t{}", self.n);
        let t = Instant::now();
        self.r
            .get_mut()
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .unwrap();
        let mut out = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with(&format!("{tag} "));
            out.push(l);
            if done {
                assert!(
                    out.last().unwrap().starts_with(&format!("{tag} OK")),
                    "{cmd}: {out:?}"
                );
                return (out, t.elapsed());
            }
        }
    }
}

fn median(name: &str, mut times: Vec<Duration>) -> bool {
    times.sort();
    let m = times[times.len() / 2];
    let ok = m < Duration::from_millis(100);
    println!(
        "  {name:<44} median {:>7.2} ms  max {:>7.2} ms  {}",
        m.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        if ok { "ok (< 100 ms)" } else { "OVER 100 ms" }
    );
    ok
}

fn main() {
    let n = support::env_u64("BENCH_POSTS", 1_000_000);
    let runs = support::env_u64("BENCH_RUNS", 7) as usize;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    println!(
        "archive_read: {n} posts in one list (load {})",
        support::load()
    );
    let t = Instant::now();
    build(&data, n);
    println!(
        "  built the archive in {:.1} s ({:.0} MiB on disk)",
        t.elapsed().as_secs_f64(),
        support::tree_bytes(&data) as f64 / 1048576.0
    );
    let t = Instant::now();
    let conn = store::open(&data.join("listd.db")).unwrap();
    let indexed = listd::reader::text::catch_up(&conn, &data, "dev").unwrap();
    drop(conn);
    println!(
        "  full-text index of {indexed} posts built in {:.1} s (once, not part of the target)",
        t.elapsed().as_secs_f64()
    );

    let (smtp, imap) = (support::free_port(), support::free_port());
    let config = dir.path().join("listd.yaml");
    std::fs::write(
        &config,
        format!(
            "domain: lists.example.org\ntemplates_dir: {}/templates\n\
             smtp:\n  listen: [\"127.0.0.1:{smtp}\"]\nrelay: {{host: 127.0.0.1, port: 9}}\n\
             imap:\n  listen: 127.0.0.1:{imap}\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("lists/dev.yaml"),
        "archive_access: anyone\n",
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{imap}").parse().unwrap();
    let daemon = support::Daemon::start(&config, addr);
    let rss = |what: &str| {
        if let Some(kb) = support::vm_hwm_kb(daemon.pid()) {
            println!(
                "  daemon peak RSS (VmHWM) {what}: {:.1} MiB",
                kb as f64 / 1024.0
            );
        }
    };
    rss("at start");
    let mut c = Client::connect(addr);
    c.run("LOGIN anonymous bench");
    let mut all_ok = true;

    let mut times = Vec::new();
    for _ in 0..runs {
        let (r, d) = c.run("SELECT dev");
        assert!(
            r.iter().any(|l| l.starts_with(&format!("* {n} EXISTS"))),
            "{r:?}"
        );
        times.push(d);
    }
    all_ok &= median(&format!("SELECT dev ({n} messages)"), times);
    rss("after SELECT");

    let needles = n.div_ceil(NEEDLE_EVERY);
    for (name, cmd, want) in [
        (
            "SEARCH SUBJECT zebracorn",
            "SEARCH SUBJECT zebracorn",
            needles,
        ),
        (
            "UID SEARCH BODY zebracorn",
            "UID SEARCH BODY zebracorn",
            needles,
        ),
        (
            "SEARCH FROM poster996 SUBJECT zebracorn",
            "SEARCH FROM poster996 SUBJECT zebracorn",
            u64::MAX,
        ),
        ("SEARCH SINCE (the last day)", "SEARCH SINCE LAST", u64::MAX),
        (
            "UID SEARCH UID 500000:500100",
            "UID SEARCH UID 500000:500100",
            u64::MAX,
        ),
    ] {
        let cmd = if cmd.ends_with("LAST") {
            let last = chrono::DateTime::from_timestamp(T0 + (n as i64 - 1) * 60, 0).unwrap();
            cmd.replace("LAST", &last.format("%-d-%b-%Y").to_string())
        } else {
            cmd.to_string()
        };
        let mut times = Vec::new();
        for _ in 0..runs {
            let (r, d) = c.run(&cmd);
            if want != u64::MAX {
                let hits = r[0].split_whitespace().count() as u64 - 2;
                assert_eq!(hits, want, "{cmd}: {}", r[0]);
            }
            times.push(d);
        }
        all_ok &= median(name, times);
    }

    let mut times = Vec::new();
    for k in 0..runs as u64 {
        let seq = 1 + (k * 7919 * 131) % n;
        let (r, d) = c.run(&format!(
            "FETCH {seq} (BODY[] ENVELOPE BODYSTRUCTURE RFC822.SIZE)"
        ));
        assert!(r[0].contains(&format!("item {}", seq - 1)), "{}", r[0]);
        times.push(d);
    }
    all_ok &= median("FETCH n (BODY[] ENVELOPE BODYSTRUCTURE)", times);
    let mut times = Vec::new();
    for _ in 0..runs {
        let (r, d) = c.run(&format!(
            "FETCH {}:* (UID FLAGS RFC822.SIZE)",
            n.saturating_sub(49).max(1)
        ));
        assert!(r.len() >= 2);
        times.push(d);
    }
    all_ok &= median("FETCH the last 50 (UID FLAGS RFC822.SIZE)", times);
    rss("at the end");
    c.run("LOGOUT");
    daemon.stop();
    println!(
        "archive_read: {}",
        if all_ok {
            "every operation under 100 ms"
        } else {
            "SOME OPERATIONS OVER 100 ms"
        }
    );
}
