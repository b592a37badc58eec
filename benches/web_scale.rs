//! Benchmark: the web archive of one list of 1,000,000 posts
//! (`BENCH_POSTS`) over HTTP from the real `listd serve`: the months page,
//! a month as threads, by date (a page deep in the month, by its keyset
//! cursor) and by author, one message page, search for a rare and a
//! common word, the REST API's newest posts and the Atom feed. Target:
//! each under 50 ms (median, release build), with the daemon's peak RSS.
//!
//! The archive is built as `archive_read` builds it (`support/
//! archive_fill.rs`: month files and index rows written directly, threads
//! by In-Reply-To), and the search index caught up once beforehand (its
//! time printed, not part of the target).

#[path = "support/archive_fill.rs"]
mod archive_fill;
#[path = "support/mod.rs"]
mod support;

use archive_fill::{build, T0};
use listd::store;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The target per request.
const TARGET: Duration = Duration::from_millis(50);

/// GETs `path` on one new connection: (status, body, time).
fn get(addr: SocketAddr, path: &str) -> (u16, String, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let d = t.elapsed();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body, d)
}

fn median(name: &str, mut times: Vec<Duration>) -> bool {
    times.sort();
    let m = times[times.len() / 2];
    let ok = m < TARGET;
    println!(
        "  {name:<52} median {:>7.2} ms  max {:>7.2} ms  {}",
        m.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        if ok { "ok (< 50 ms)" } else { "OVER 50 ms" }
    );
    ok
}

fn main() {
    let n = support::env_u64("BENCH_POSTS", 1_000_000);
    let runs = support::env_u64("BENCH_RUNS", 9) as usize;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    println!(
        "web_scale: {n} archived posts in one list (load {})",
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

    let (smtp, web) = (support::free_port(), support::free_port());
    let config = dir.path().join("listd.yaml");
    std::fs::write(
        &config,
        format!(
            "domain: lists.example.org\ntemplates_dir: {}/templates\n\
             smtp:\n  listen: [\"127.0.0.1:{smtp}\"]\nrelay: {{host: 127.0.0.1, port: 9}}\n\
             web:\n  listen: 127.0.0.1:{web}\n  public_url: http://127.0.0.1:{web}\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("lists/dev.yaml"),
        "archive_access: anyone\n",
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{web}").parse().unwrap();
    let daemon = support::Daemon::start(&config, addr);

    // a month in the middle, a post in it, and a cursor half-way through
    let mid = T0 + (n as i64 / 2) * 60;
    let month = listd::archive::month_of(mid);
    let mid_id = n as i64 / 2 + 1;
    let mut all_ok = true;
    let pages = [
        ("months page", "/archive/dev".to_string(), month.clone()),
        (
            "month as threads (first 100)",
            format!("/archive/dev/{month}"),
            "data-depth=\"3\"".to_string(),
        ),
        (
            "month by date, a page from the middle (keyset)",
            format!("/archive/dev/{month}?by=date&after={mid_id}"),
            format!("msg/{}\"", mid_id + 1),
        ),
        (
            "month by author (first 100)",
            format!("/archive/dev/{month}?by=author"),
            "poster0@example.org".to_string(),
        ),
        (
            "one message page",
            format!("/archive/dev/msg/{mid_id}"),
            format!("item {}", mid_id - 1),
        ),
        (
            "search a rare word (zebracorn)",
            "/archive/dev/search?q=zebracorn".to_string(),
            "hit-".to_string(),
        ),
        (
            "search a word in every post (decision), newest 100",
            "/archive/dev/search?q=decision".to_string(),
            format!("hit-{n}\""),
        ),
        (
            "API: the newest 50 posts",
            "/api/lists/dev/archive".to_string(),
            "next_after".to_string(),
        ),
        (
            "API: search zebracorn",
            "/api/lists/dev/archive/search?q=zebracorn".to_string(),
            "zebracorn".to_string(),
        ),
        (
            "Atom feed (30 newest)",
            "/archive/dev/atom.xml".to_string(),
            "</feed>".to_string(),
        ),
    ];
    for (name, path, want) in pages {
        let mut times = Vec::new();
        for _ in 0..runs {
            let (status, body, d) = get(addr, &path);
            assert_eq!(status, 200, "{path}: {body}");
            assert!(body.contains(&want), "{path}: no {want} in {body}");
            times.push(d);
        }
        all_ok &= median(name, times);
    }
    if let Some(kb) = support::vm_hwm_kb(daemon.pid()) {
        println!("  daemon peak RSS (VmHWM): {:.1} MiB", kb as f64 / 1024.0);
    }
    daemon.stop();
    println!(
        "web_scale: {}",
        if all_ok {
            "every page under 50 ms"
        } else {
            "SOME PAGES OVER 50 ms"
        }
    );
}
