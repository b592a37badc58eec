//! Benchmark: build one digest issue of 1,000 posts of about 5 KB each, in
//! both formats (MIME multipart/digest and plain RFC 1153). Target: under
//! 200 ms for both together (release build).
//!
//! `cargo bench --bench digest` prints, over several runs, the time to
//! parse the 1,000 posts and build both bodies in memory, and the time of a
//! whole `close_issue` against a real SQLite file (assign the entries, load
//! the posts, build, store both bodies, queue them to 1,000 digest members).

use listd::config::{Config, ListConfig};
use listd::digest::{self, build_mime, build_plain, encode, item::Item, text::Digest};
use listd::handler::Ctx;
use listd::store::{self, members, members::DeliveryMode};
use listd::templates::Templates;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOW: i64 = 1_717_394_400;

fn post(i: usize) -> Vec<u8> {
    let subject = if i % 7 == 0 {
        format!("=?utf-8?q?Gr=C3=BC=C3=9Fe_number_{i}?=")
    } else {
        format!("Re: [dev] Discussion of item {i}")
    };
    let mut s = format!(
        "Received: from mx{i}.example.org (mx{i}.example.org [192.0.2.{}])\r\n\tby lists.example.org with ESMTP id {i}; Mon, 3 Jun 2024 05:00:00 +0000\r\n\
         Date: Mon, 3 Jun 2024 05:{:02}:00 +0000\r\n\
         From: Poster {i} <poster{i}@example.org>\r\n\
         To: dev@lists.example.org\r\n\
         Subject: {subject}\r\n\
         Message-ID: <post.{i}@example.org>\r\n\
         List-Id: Development <dev.lists.example.org>\r\n\
         List-Post: <mailto:dev@lists.example.org>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n",
        i % 250,
        i % 60
    );
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while s.len() < 5 * 1024 {
        s.push_str(line);
    }
    s.into_bytes()
}

fn stats(name: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{name}: min {:.1} ms, median {:.1} ms, max {:.1} ms ({} runs)",
        times[0].as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    );
    median
}

fn build_in_memory(posts: &[Vec<u8>]) -> (usize, usize) {
    let headers = vec![
        (
            "From".to_string(),
            "dev-request@lists.example.org".to_string(),
        ),
        (
            "Subject".to_string(),
            "dev Digest, Vol 1, Issue 1".to_string(),
        ),
    ];
    let d = Digest {
        list: "dev",
        volume: 1,
        issue: 1,
        now: NOW,
        headers: &headers,
        header_text: "Send dev mailing list submissions to dev@lists.example.org\n",
        footer_text: "dev mailing list\n",
    };
    let items: Vec<Item<'_>> = posts.iter().map(|p| Item::parse(p)).collect();
    let mime = build_mime::build(&d, &items, &mut encode::random_boundary).expect("mime");
    let plain = build_plain::build(&d, &items);
    (mime.len(), plain.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("digest: benchmark");
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it: then a small smoke run checks the bench still works.
    let smoke = !args.iter().any(|a| a == "--bench");
    let (posts_n, runs) = if smoke { (50, 1) } else { (1000, 7) };
    let posts: Vec<Vec<u8>> = (0..posts_n).map(post).collect();
    let total: usize = posts.iter().map(Vec::len).sum();
    println!(
        "digest of {posts_n} posts, {:.1} MB in all",
        total as f64 / 1e6
    );

    let (m, p) = build_in_memory(&posts); // warm-up
    println!("MIME digest {m} bytes, plain digest {p} bytes");
    // where the time goes
    {
        let headers = vec![];
        let d = Digest {
            list: "dev",
            volume: 1,
            issue: 1,
            now: NOW,
            headers: &headers,
            header_text: "",
            footer_text: "",
        };
        let t = Instant::now();
        let items: Vec<Item<'_>> = posts.iter().map(|p| Item::parse(p)).collect();
        let parse = t.elapsed();
        let t = Instant::now();
        std::hint::black_box(
            build_mime::build(&d, &items, &mut encode::random_boundary).expect("mime"),
        );
        let mime = t.elapsed();
        let t = Instant::now();
        std::hint::black_box(build_plain::build(&d, &items));
        let plain = t.elapsed();
        println!(
            "one run: parse {:.1} ms, MIME {:.1} ms, plain {:.1} ms",
            parse.as_secs_f64() * 1e3,
            mime.as_secs_f64() * 1e3,
            plain.as_secs_f64() * 1e3
        );
    }
    let times = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(build_in_memory(&posts));
            t.elapsed()
        })
        .collect();
    let build = stats("build both formats (parse + MIME + plain)", times);

    // the whole close, against SQLite
    let mut times = Vec::new();
    for _ in 0..runs.min(5) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests("lists.example.org", dir.path());
        let list = ListConfig::parse(
            &dir.path().join("lists/dev.yaml"),
            "dev",
            "digest:\n  max_messages: 100000\n  max_bytes: 1000000000\n  schedule: none\n",
        )
        .expect("list");
        config.lists.insert("dev".into(), list);
        let templates = Templates::for_config(&config).expect("templates");
        let ctx = Ctx {
            config: Arc::new(config),
            templates: Arc::new(templates),
        };
        let mut conn = store::open(&ctx.config.db_path()).expect("store");
        let lc = ctx.config.list("dev").expect("dev").clone();
        {
            let tx = conn.transaction().expect("tx");
            for i in 0..1000 {
                let mode = if i % 2 == 0 {
                    DeliveryMode::DigestMime
                } else {
                    DeliveryMode::DigestPlain
                };
                let a = listd::address::Address::parse(&format!("m{i}@example{}.org", i % 50))
                    .expect("addr");
                members::add(&tx, "dev", &a.to_string(), &a.key(), None, mode, NOW)
                    .expect("member");
            }
            for p in &posts {
                let id = store::spool::insert_outbound(&tx, "dev-bounces@x", p, NOW).expect("post");
                digest::accumulate(&tx, &lc, id, NOW).expect("accumulate");
            }
            tx.commit().expect("commit");
        }
        let t = Instant::now();
        let tx = conn.transaction().expect("tx");
        let c = digest::close_issue(&ctx, &tx, &lc, digest::Trigger::Forced, NOW)
            .expect("close")
            .expect("an issue");
        tx.commit().expect("commit");
        times.push(t.elapsed());
        assert_eq!(
            (c.posts, c.mime_rcpts + c.plain_rcpts),
            (posts_n as i64, 1000)
        );
    }
    let close = stats(
        "close_issue with SQLite (assign, load, build, store, queue to 1,000 members, commit)",
        times,
    );
    if smoke {
        println!("smoke run only (cargo bench --bench digest for the figures)");
        return;
    }
    let verdict = if build < Duration::from_millis(200) {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "target: build both formats of 1,000 x 5 KB in under 200 ms: {verdict} ({:.1} ms; whole close {:.1} ms)",
        build.as_secs_f64() * 1e3,
        close.as_secs_f64() * 1e3
    );
}
