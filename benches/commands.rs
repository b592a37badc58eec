//! The command robot's cost: command mails per second through the real
//! pipeline (spool row in, loop rules, parsing, the command, templates,
//! composing, the outbound queue, one transaction each), for
//! - `help` (one reply),
//! - `subscribe` on a `confirm` list (a token and two mails),
//! - the `confirm` that follows (membership, welcome, owner notice),
//!
//! and the time of one `who` on a large list (the reply holds at most
//! `WHO_MAX` addresses, streamed from the store).
//!
//! Real parts: a SQLite file in a temp dir (WAL, synchronous=FULL, as the
//! daemon runs it), the real configuration loader and templates.
//!
//! Run: `cargo bench --bench commands` (LISTD_BENCH_MAILS: mails per kind,
//! default 2000; LISTD_BENCH_MEMBERS: size of the `who` list, default
//! 100000). Under `cargo test --all-targets` it does a small smoke run.

use listd::config::Config;
use listd::handler::Ctx;
use listd::pipeline;
use listd::store::{self, spool::Envelope};
use listd::templates::Templates;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const DOMAIN: &str = "lists.example.org";
const T0: i64 = 1_700_000_000;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn setup(dir: &Path) -> (Ctx, Connection) {
    std::fs::create_dir_all(dir.join("lists")).expect("lists dir");
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    std::fs::write(
        dir.join("listd.yaml"),
        format!(
            "domain: {DOMAIN}\ntemplates_dir: \"{}\"\nrobot:\n  replies_per_hour: 0\n",
            templates.display()
        ),
    )
    .expect("listd.yaml");
    std::fs::write(
        dir.join("lists/dev.yaml"),
        "description: Bench list\nowners: [owner@example.org]\nsubscription: confirm\nwho: anyone\n",
    )
    .expect("dev.yaml");
    let config = Config::load(&dir.join("listd.yaml")).expect("config");
    let templates = Templates::for_config(&config).expect("templates");
    let conn = store::open(&config.db_path()).expect("store");
    (
        Ctx {
            config: Arc::new(config),
            templates: Arc::new(templates),
        },
        conn,
    )
}

fn spool(ctx: &Ctx, conn: &Connection, from: &str, rcpt: &str, body: &str, now: i64) {
    let route = listd::routing::route(&ctx.config, rcpt).expect("route");
    let m = format!(
        "From: {from}\r\nTo: {rcpt}\r\nSubject: commands\r\nMessage-ID: <{now}.{from}>\r\n\r\n{body}\r\n"
    );
    let env = Envelope {
        mail_from: from.to_string(),
        rcpts: vec![(rcpt.to_string(), route.into())],
        client_ip: Some("127.0.0.1".into()),
        helo: "bench".into(),
        protocol: "ESMTP".into(),
    };
    store::spool::insert_inbound(conn, &env, m.as_bytes(), now).expect("spool");
}

/// Spools `bodies` (one mail each), then times the pipeline draining them.
fn run(
    ctx: &Ctx,
    conn: &mut Connection,
    label: &str,
    mails: &[(String, String, String)],
    now: i64,
) {
    let tx = conn.transaction().expect("tx");
    for (from, rcpt, body) in mails {
        spool(ctx, &tx, from, rcpt, body, now);
    }
    tx.commit().expect("commit");
    let start = Instant::now();
    let n = pipeline::drain(ctx, conn, now).expect("drain");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(n, mails.len());
    let bad: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM incoming WHERE state != 'done'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(bad, 0, "every command mail handled");
    println!(
        "{label:<28} {n:>7} mails  {secs:>8.3} s  {:>8.0} mails/s  {:>7.3} ms/mail",
        n as f64 / secs,
        secs * 1000.0 / n as f64
    );
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n = var("LISTD_BENCH_MAILS", if smoke { 20 } else { 2000 });
    let members = var("LISTD_BENCH_MEMBERS", if smoke { 200 } else { 100_000 });
    let dir = tempfile::tempdir().expect("tempdir");
    let (ctx, mut conn) = setup(dir.path());
    let req = format!("dev-request@{DOMAIN}");

    let help: Vec<_> = (0..n)
        .map(|i| (format!("h{i}@example.org"), req.clone(), "help".to_string()))
        .collect();
    run(&ctx, &mut conn, "help", &help, T0);

    let subs: Vec<_> = (0..n)
        .map(|i| {
            (
                format!("s{i}@example.org"),
                req.clone(),
                "subscribe".to_string(),
            )
        })
        .collect();
    run(&ctx, &mut conn, "subscribe (confirm list)", &subs, T0 + 1);

    // the tokens went out in the confirmation mails: read them back
    let mut confirms = Vec::with_capacity(n);
    {
        let mut stmt = conn
            .prepare(
                "SELECT m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
                 WHERE j.kind = 'reply' ORDER BY j.id",
            )
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .expect("query");
        for bytes in rows {
            let bytes = bytes.expect("row");
            let m = mail_parser::MessageParser::default()
                .parse(&bytes)
                .expect("parse");
            let subject = m.subject().unwrap_or_default();
            if let Some(token) = subject.strip_prefix("confirm ") {
                let to = m
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .unwrap_or_default()
                    .to_string();
                confirms.push((to, format!("dev-confirm+{token}@{DOMAIN}"), String::new()));
            }
        }
    }
    assert_eq!(confirms.len(), n);
    run(
        &ctx,
        &mut conn,
        "confirm (reply to token)",
        &confirms,
        T0 + 2,
    );
    let joined = store::members::count(&conn, "dev").expect("count");
    assert_eq!(joined as usize, n);

    // `who` on a big list
    {
        let tx = conn.transaction().expect("tx");
        for i in 0..members {
            let a = listd::address::Address::parse(&format!("m{i:07}@example.net")).expect("addr");
            store::members::add(
                &tx,
                "dev",
                &a.to_string(),
                &a.key(),
                None,
                store::members::DeliveryMode::Each,
                T0,
            )
            .expect("add");
        }
        tx.commit().expect("commit");
    }
    let who = vec![("w@example.org".to_string(), req.clone(), "who".to_string())];
    run(
        &ctx,
        &mut conn,
        &format!("who ({} members)", members + n),
        &who,
        T0 + 3,
    );
    if smoke {
        println!("(smoke run: `cargo bench --bench commands` for the real sizes)");
    }
}
