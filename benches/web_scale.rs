//! Benchmark: the web admin, the archive pages and the REST API at scale,
//! from the real `listd serve` over HTTP on 127.0.0.1: a list of 1,000,000
//! members (`BENCH_MEMBERS`) and 1,000,000 archived posts (`BENCH_POSTS`),
//! and posts held for moderation. Times page loads (the lists, the
//! moderation queue, the owner's members pages, the archive's months,
//! threads, by date and by author, a message, the Atom feed), searches (of
//! members by prefix, of the archive for a rare and a common word) and a
//! moderation action as a browser or a script would see them (one
//! keep-alive client, request sent to body read), `BENCH_RUNS` (7) times
//! each, and prints the medians. Target: each under 50 ms (median, release
//! build).
//!
//! The archive is written straight into the month files and the index
//! (`support::archive_fill`), the members straight into the store in one
//! transaction; the held posts come in over SMTP from a non-member, as
//! they would. Pages are fetched with the owner's session (logged in by
//! the emailed link, read from the store's outbound queue) and the API
//! with an admin token from `listd api-token create`.

#[path = "support/mod.rs"]
mod support;

use listd::store;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::archive_fill::{build, T0};

const OWNER: &str = "owner@example.org";
const TARGET: Duration = Duration::from_millis(50);

/// `n` members of `dev`, in one transaction.
fn fill_members(db: &Path, n: u64) {
    let mut conn = store::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO members(list, address, address_key, mode, joined_at)
                 VALUES ('dev', ?1, ?1, 'each', 1700000000)",
            )
            .unwrap();
        for i in 0..n {
            ins.execute([format!("member{i:07}@example.net")]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Sends one message over SMTP (no pipelining; a bench's own client).
fn smtp_send(addr: SocketAddr, from: &str, to: &str, body: &str) {
    let s = TcpStream::connect(addr).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut expect = |w: &mut TcpStream, cmd: Option<&str>, code: &str| {
        if let Some(c) = cmd {
            w.write_all(c.as_bytes()).unwrap();
        }
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "{cmd:?}: {line}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    };
    expect(&mut w, None, "220");
    expect(&mut w, Some("EHLO bench.example.net\r\n"), "250");
    expect(&mut w, Some(&format!("MAIL FROM:<{from}>\r\n")), "250");
    expect(&mut w, Some(&format!("RCPT TO:<{to}>\r\n")), "250");
    expect(&mut w, Some("DATA\r\n"), "354");
    expect(&mut w, Some(&format!("{body}\r\n.\r\n")), "250");
    expect(&mut w, Some("QUIT\r\n"), "221");
}

/// Held posts of `dev`, oldest first, once `n` are there.
fn held_ids(db: &Path, n: usize) -> Vec<i64> {
    let t0 = Instant::now();
    loop {
        let conn = store::open(db).unwrap();
        let mut st = conn
            .prepare("SELECT id FROM held WHERE list = 'dev' AND state = 'held' ORDER BY id")
            .unwrap();
        let ids: Vec<i64> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if ids.len() >= n {
            return ids;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "posts not held");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The login link mailed to the owner (read from the outbound queue).
fn login_link(db: &Path, base: &str) -> String {
    let t0 = Instant::now();
    let prefix = format!("{base}/login/");
    loop {
        let conn = store::open(db).unwrap();
        let mut st = conn
            .prepare(
                "SELECT m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
                 ORDER BY j.id DESC LIMIT 10",
            )
            .unwrap();
        let bodies: Vec<Vec<u8>> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for raw in bodies {
            let Some(msg) = mail_parser::MessageParser::default().parse(&raw) else {
                continue;
            };
            let text = msg.body_text(0).unwrap_or_default();
            if let Some(at) = text.find(&prefix) {
                return text[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no login link");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Bench {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    cookie: String,
    token: String,
    all_ok: bool,
}

impl Bench {
    /// One request; its status, body and time (sent to body read).
    fn request(&self, req: reqwest::RequestBuilder) -> (u16, String, Duration) {
        self.rt.block_on(async {
            let t = Instant::now();
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (status, body, t.elapsed())
        })
    }

    fn page(&self, url: &str) -> (u16, String, Duration) {
        self.request(self.http.get(url).header("cookie", &self.cookie))
    }

    fn api(&self, url: &str) -> (u16, String, Duration) {
        self.request(self.http.get(url).bearer_auth(&self.token))
    }

    /// Times `f` `runs` times; prints the median against the target.
    fn time(&mut self, name: &str, runs: usize, mut f: impl FnMut(&Self, usize) -> Duration) {
        let mut times: Vec<Duration> = (0..runs).map(|i| f(self, i)).collect();
        times.sort();
        let m = times[times.len() / 2];
        let ok = m < TARGET;
        self.all_ok &= ok;
        println!(
            "  {name:<52} median {:>7.2} ms  max {:>7.2} ms  {}",
            m.as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            if ok { "ok (< 50 ms)" } else { "OVER 50 ms" }
        );
    }
}

fn main() {
    let members = support::env_u64("BENCH_MEMBERS", 1_000_000);
    let posts = support::env_u64("BENCH_POSTS", 1_000_000);
    let runs = support::env_u64("BENCH_RUNS", 7) as usize;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("listd.db");
    std::fs::create_dir_all(dir.path().join("lists")).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    println!(
        "web_scale: {members} members, {posts} archived posts (load {})",
        support::load()
    );
    let t = Instant::now();
    build(&data, posts);
    fill_members(&db, members);
    let conn = store::open(&db).unwrap();
    listd::reader::text::catch_up(&conn, &data, "dev").unwrap();
    drop(conn);
    println!(
        "  filled in {:.1} s ({:.0} MiB on disk; the full-text index built once, not part of the target)",
        t.elapsed().as_secs_f64(),
        support::tree_bytes(&data) as f64 / 1048576.0
    );

    let (smtp, web) = (support::free_port(), support::free_port());
    let base = format!("http://127.0.0.1:{web}");
    let config = dir.path().join("listd.yaml");
    std::fs::write(
        &config,
        format!(
            "domain: lists.example.org\ntemplates_dir: {}/templates\n\
             smtp:\n  listen: [\"127.0.0.1:{smtp}\"]\nrelay: {{host: 127.0.0.1, port: 9}}\n\
             web:\n  listen: 127.0.0.1:{web}\n  public_url: {base}\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("lists/dev.yaml"),
        format!(
            "description: the bench list\narchive_access: anyone\nowners: [{OWNER}]\nmoderators: [{OWNER}]\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_listd"))
        .arg("--config")
        .arg(&config)
        .args(["api-token", "create", "bench", "--role", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // the token alone on stdout (64 hex digits)
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let smtp_addr: SocketAddr = format!("127.0.0.1:{smtp}").parse().unwrap();
    let daemon = support::Daemon::start(&config, smtp_addr);
    let held_n = runs * 2 + 10;
    for i in 0..held_n {
        smtp_send(
            smtp_addr,
            "guest@example.com",
            "dev@lists.example.org",
            &format!(
                "From: guest@example.com\r\nTo: dev@lists.example.org\r\nSubject: held {i}\r\n\
                 Message-ID: <held.{i}@example.com>\r\n\r\nPlease approve {i}.\r\n"
            ),
        );
    }
    let held = held_ids(&db, held_n);

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut b = Bench {
        rt,
        http,
        cookie: String::new(),
        token,
        all_ok: true,
    };
    // the owner logs in by the emailed link
    let (s, _, _) = b.request(
        b.http
            .post(format!("{base}/login"))
            .form(&[("address", OWNER)]),
    );
    assert_eq!(s, 200);
    let link = login_link(&db, &base);
    let r =
        b.rt.block_on(b.http.post(&link).send())
            .expect("consume the login link");
    assert_eq!(r.status().as_u16(), 303);
    b.cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let last = format!("member{:07}@example.net", members.saturating_sub(1));
    let mid = format!("member{:07}@example.net", members / 2);
    let after_mid = format!("member{:07}@example.net", members / 2 + 1);
    let prefix = format!("member{:06}", members / 20);
    // (name, URL, a page (else the API), what the answer must contain)
    let pages: Vec<(&str, String, bool, String)> = vec![
        ("GET / (the lists)", format!("{base}/"), true, "dev".into()),
        (
            "GET /moderate (held posts)",
            format!("{base}/moderate"),
            true,
            "held 0".into(),
        ),
        (
            "owner: the list's overview (counts)",
            format!("{base}/lists/dev/admin"),
            true,
            format!("{members} members"),
        ),
        (
            "owner: members page, the first 50",
            format!("{base}/lists/dev/members"),
            true,
            "member0000049@".into(),
        ),
        (
            "owner: members page, searched by prefix",
            format!("{base}/lists/dev/members?q={prefix}"),
            true,
            format!("{prefix}9@"),
        ),
        (
            "owner: members page, the next page from the middle",
            format!("{base}/lists/dev/members?after={mid}"),
            true,
            after_mid.clone(),
        ),
        (
            "owner: settings page",
            format!("{base}/lists/dev/settings"),
            true,
            "subject_prefix".into(),
        ),
        (
            "API members, first page of 50",
            format!("{base}/api/lists/dev/members?limit=50"),
            false,
            "member0000049@".into(),
        ),
        (
            "API members, a page after the middle",
            format!("{base}/api/lists/dev/members?limit=50&after={mid}"),
            false,
            after_mid.clone(),
        ),
        (
            "API members, search by prefix",
            format!("{base}/api/lists/dev/members?q={prefix}&limit=50"),
            false,
            format!("{prefix}9@"),
        ),
        (
            "API members, the last one",
            format!("{base}/api/lists/dev/members?q={last}"),
            false,
            last.clone(),
        ),
        (
            "API held posts",
            format!("{base}/api/lists/dev/held"),
            false,
            "held 1".into(),
        ),
    ];
    // the archive: a month in the middle, a post in it, a cursor half-way
    let mid_t = T0 + (posts as i64 / 2) * 60;
    let month = listd::archive::month_of(mid_t);
    let mid_id = posts as i64 / 2 + 1;
    let a = format!("{base}/archive/dev");
    let archive: Vec<(&str, String, bool, String)> = vec![
        ("archive: the months", a.clone(), true, month.clone()),
        (
            "archive: a month as threads (first 100)",
            format!("{a}/{month}"),
            true,
            "data-depth=\"3\"".into(),
        ),
        (
            "archive: by date, a page from the middle (keyset)",
            format!("{a}/{month}?by=date&after={mid_id}"),
            true,
            format!("msg/{}\"", mid_id + 1),
        ),
        (
            "archive: by author (first 100)",
            format!("{a}/{month}?by=author"),
            true,
            "poster0@example.org".into(),
        ),
        (
            "archive: one message",
            format!("{a}/msg/{mid_id}"),
            true,
            format!("item {}", mid_id - 1),
        ),
        (
            "archive: search a rare word",
            format!("{a}/search?q=zebracorn"),
            true,
            "hit-".into(),
        ),
        (
            "archive: search a word in every post, newest 100",
            format!("{a}/search?q=decision"),
            true,
            format!("hit-{posts}\""),
        ),
        (
            "archive: Atom feed (30 newest)",
            format!("{a}/atom.xml"),
            true,
            "</feed>".into(),
        ),
        (
            "API archive: the newest 50 posts",
            format!("{base}/api/lists/dev/archive"),
            false,
            "next_after".into(),
        ),
        (
            "API archive: search a rare word",
            format!("{base}/api/lists/dev/archive/search?q=zebracorn"),
            false,
            "zebracorn".into(),
        ),
    ];
    let pages: Vec<_> = pages.into_iter().chain(archive).collect();
    println!("  {} runs each, one keep-alive client:", runs);
    for (name, url, is_page, needle) in &pages {
        b.time(name, runs, |b, _| {
            let (s, body, d) = if *is_page { b.page(url) } else { b.api(url) };
            assert_eq!(s, 200, "{url}: {body}");
            assert!(
                body.contains(needle.as_str()),
                "{url}: no {needle} in {body}"
            );
            d
        });
    }
    b.time(
        "API approve one held post (fsync included)",
        runs,
        |b, i| {
            let url = format!("{base}/api/lists/dev/held/{}", held[i]);
            let (s, body, d) = b.request(
                b.http
                    .post(&url)
                    .bearer_auth(&b.token)
                    .json(&serde_json::json!({"action": "approve"})),
            );
            assert_eq!(s, 200, "{url}: {body}");
            d
        },
    );
    if let Some(kb) = support::vm_hwm_kb(daemon.pid()) {
        println!("  daemon peak RSS (VmHWM): {:.1} MiB", kb as f64 / 1024.0);
    }
    daemon.stop();
    println!(
        "web_scale: {}",
        if b.all_ok {
            "every median under 50 ms"
        } else {
            "SOME MEDIANS OVER 50 ms"
        }
    );
}
