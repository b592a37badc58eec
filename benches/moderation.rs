//! Moderation cost with a large hold queue: approve one post among 100,000
//! held (and, for comparison, among 1,000), by a moderator's reply to its
//! per-action address; plus hold, discard by id, and the posting rules'
//! accept/ban look-ups. Prints the time per action.
//!
//! Real parts: a SQLite file in a temp dir (WAL, synchronous=FULL, as the
//! daemon runs it), the real templates, the real handlers. The queue is
//! filled by direct inserts (a held row, its message and its five token
//! hashes per post) so that filling does not dominate the run.
//!
//! Run: `cargo bench --bench moderation` (set LISTD_BENCH_HELD to change the
//! large size, LISTD_BENCH_ACTIONS the number of timed actions).

use listd::config::{Config, ListConfig};
use listd::handler::{Ctx, Inbound};
use listd::moderation::{self, held, HoldReason};
use listd::store::spool::{self, Envelope};
use listd::templates::Templates;
use mail_parser::MessageParser;
use rusqlite::{Connection, TransactionBehavior};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DOMAIN: &str = "lists.example.org";

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn post(i: usize) -> Vec<u8> {
    format!(
        "Received: from client.example.net by {DOMAIN}\r\nFrom: Poster {i} <poster{i}@example.net>\r\n\
         To: dev@{DOMAIN}\r\nSubject: held post number {i}\r\nMessage-ID: <held.{i}@example.net>\r\n\r\n\
         This is held post {i}.\r\nIt has a few lines of text.\r\n"
    )
    .into_bytes()
}

fn store_inbound(
    conn: &Connection,
    env_from: &str,
    rcpt: Option<(&str, listd::routing::Route)>,
    bytes: &[u8],
    now: i64,
) -> i64 {
    let env = Envelope {
        mail_from: env_from.into(),
        rcpts: rcpt
            .map(|(r, route)| vec![(r.to_string(), route.into())])
            .unwrap_or_default(),
        client_ip: Some("127.0.0.1".into()),
        helo: "client.example.net".into(),
        protocol: "ESMTP".into(),
    };
    spool::insert_inbound(conn, &env, bytes, now).expect("insert inbound")
}

/// Fills the hold queue up to `target` held posts with direct inserts.
fn fill(conn: &mut Connection, from: usize, target: usize) {
    let mut i = from;
    while i < target {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        let end = (i + 10_000).min(target);
        for n in i..end {
            let bytes = post(n);
            let mid = store_inbound(&tx, "poster@example.net", None, &bytes, 1_000);
            let id = held::insert_held(
                &tx,
                &held::NewHeld {
                    list: "dev",
                    message_id: mid,
                    reason: "non-member",
                    detail: "post from a non-member",
                    sender: &format!("poster{n}@example.net"),
                    env_from: "poster@example.net",
                    notify: Some("poster@example.net"),
                    subject: &format!("held post number {n}"),
                    size: bytes.len() as i64,
                    held_at: 1_000 + n as i64,
                },
            )
            .expect("insert held");
            for a in moderation::ModAction::ALL {
                let t = moderation::token::generate().expect("token");
                held::insert_token(&tx, &moderation::token::hash(&t), "dev", id, a.as_str())
                    .expect("insert token");
            }
        }
        tx.commit().expect("commit");
        i = end;
    }
}

fn approve_token(notice: &[u8]) -> String {
    let text = MessageParser::default()
        .parse(notice)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .expect("notice text");
    let at = text.find("dev-moderate+").expect("the Reply-To address") + "dev-moderate+".len();
    text[at..at + 32].to_string()
}

fn per_op(total: Duration, n: usize) -> String {
    let us = total.as_secs_f64() * 1e6 / n as f64;
    if us >= 1000.0 {
        format!("{:8.2} ms", us / 1000.0)
    } else {
        format!("{us:8.1} µs")
    }
}

struct Round {
    held: usize,
    hold: Duration,
    approve: Duration,
    /// The approve handler alone, before the commit's fsync.
    approve_work: Duration,
    discard: Duration,
    lookup: Duration,
}

fn round(ctx: &Ctx, conn: &mut Connection, held: usize, actions: usize, now: i64) -> Round {
    // hold: `actions` new posts, each with its notices
    let mut tokens = Vec::new();
    let mut hold = Duration::ZERO;
    let mut ids = Vec::new();
    for k in 0..actions {
        let bytes = post(10_000_000 + held + k);
        let route = listd::routing::route(&ctx.config, &format!("dev@{DOMAIN}")).expect("route");
        let mid = store_inbound(conn, "poster@example.net", None, &bytes, now);
        let msg = Inbound {
            incoming_id: 0,
            message_id: mid,
            rcpt: format!("dev@{DOMAIN}"),
            route,
            env_from: "poster@example.net".into(),
            client_ip: None,
            received_at: now,
            bytes,
            now,
        };
        let t = Instant::now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        let id = moderation::hold(ctx, &tx, "dev", &msg, HoldReason::NonMember, now).expect("hold");
        tx.commit().expect("commit");
        hold += t.elapsed();
        ids.push(id);
        let notice: Vec<u8> = conn
            .query_row(
                "SELECT m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
                 WHERE j.kind = 'notice' ORDER BY j.id DESC LIMIT 1 OFFSET 1",
                [],
                |r| r.get(0),
            )
            .expect("the moderator notice");
        tokens.push(approve_token(&notice));
    }

    // approve: a moderator's reply to the per-action address, end to end
    // through the handler (token look-up, authorisation, state change,
    // distribution, answer), one transaction each.
    let mut approve = Duration::ZERO;
    let mut approve_work = Duration::ZERO;
    for tok in &tokens {
        let rcpt = format!("dev-moderate+{tok}@{DOMAIN}");
        let route = listd::routing::route(&ctx.config, &rcpt).expect("route");
        let bytes = b"From: mod@example.org\r\nSubject: Re: held\r\n\r\napprove\r\n".to_vec();
        let mid = store_inbound(conn, "mod@example.org", None, &bytes, now);
        let msg = Inbound {
            incoming_id: 0,
            message_id: mid,
            rcpt,
            route,
            env_from: "mod@example.org".into(),
            client_ip: None,
            received_at: now,
            bytes,
            now,
        };
        let t = Instant::now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        moderation::handle_reply(ctx, &tx, &msg).expect("approve by reply");
        approve_work += t.elapsed();
        tx.commit().expect("commit");
        approve += t.elapsed();
    }
    for id in &ids {
        let h = held::get(conn, *id).expect("get").expect("held row");
        assert_eq!(h.state, "approved", "held post {id} was not approved");
    }

    // discard by id (the CLI path), on posts from the filled queue
    let victims: Vec<i64> = held::pending(conn, Some("dev"), actions as i64)
        .expect("pending")
        .iter()
        .map(|h| h.id)
        .collect();
    let t = Instant::now();
    for id in &victims {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        let o = moderation::act(
            ctx,
            &tx,
            *id,
            moderation::ModAction::Discard,
            "cli:bench",
            None,
            now,
        )
        .expect("discard");
        assert!(matches!(o, moderation::ActOutcome::Done(_)), "{o:?}");
        tx.commit().expect("commit");
    }
    let discard = t.elapsed();

    // the posting rules' look-ups
    let t = Instant::now();
    for k in 0..actions {
        let a = format!("poster{k}@example.net");
        let _ = moderation::is_accepted_sender(conn, "dev", &a).expect("lookup");
        let _ = moderation::is_banned(conn, "dev", &a).expect("lookup");
    }
    let lookup = t.elapsed();
    Round {
        held,
        hold,
        approve,
        approve_work,
        discard,
        lookup,
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary without it: then only a quick smoke run at small sizes.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let big = var("LISTD_BENCH_HELD", if smoke { 300 } else { 100_000 });
    let actions = var("LISTD_BENCH_ACTIONS", if smoke { 5 } else { 200 });
    let small = 1_000.min(big / 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::for_tests(DOMAIN, dir.path());
    let list = ListConfig::parse(
        &dir.path().join("lists/dev.yaml"),
        "dev",
        // every hold sends its moderator notice, whatever the hourly cap
        "owners: [owner@example.org]\nmoderators: [mod@example.org]\nmoderation_notices_per_hour: 0\n",
    )
    .expect("list config");
    config.lists.insert("dev".into(), list);
    // and its poster notice (one poster here), whatever the daily limit
    config.robot.poster_notices_per_day = u32::MAX;
    let templates = Templates::for_config(&config).expect("templates");
    let ctx = Ctx {
        config: Arc::new(config),
        templates: Arc::new(templates),
    };
    let mut conn = listd::store::open(&ctx.config.db_path()).expect("store");
    for i in 0..3 {
        let a = listd::address::Address::parse(&format!("member{i}@example.com")).expect("addr");
        listd::store::members::add(
            &conn,
            "dev",
            &a.to_string(),
            &a.key(),
            None,
            listd::store::members::DeliveryMode::Each,
            0,
        )
        .expect("member");
    }

    println!("moderation bench: {actions} timed actions per size; SQLite WAL, synchronous=FULL");
    let mut rounds = Vec::new();
    let mut filled = 0;
    for size in [small, big] {
        let t = Instant::now();
        let have = held::pending_count(&conn, "dev").expect("count") as usize;
        let add = size.saturating_sub(have);
        fill(&mut conn, filled, filled + add);
        filled += add;
        let pending = held::pending_count(&conn, "dev").expect("count");
        println!(
            "filled to {pending} held posts in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        rounds.push(round(&ctx, &mut conn, pending as usize, actions, 2_000_000));
    }
    println!();
    println!(
        "{:>9}  {:>11}  {:>11}  {:>15}  {:>11}  {:>11}",
        "held", "hold", "approve", "(before commit)", "discard", "accept+ban?"
    );
    for r in &rounds {
        println!(
            "{:>9}  {}  {}  {:>15}  {}  {}",
            r.held,
            per_op(r.hold, actions),
            per_op(r.approve, actions),
            per_op(r.approve_work, actions),
            per_op(r.discard, actions),
            per_op(r.lookup, actions)
        );
    }
    let (small, large) = (&rounds[0], &rounds[rounds.len() - 1]);
    if smoke {
        println!("(smoke run: `cargo bench --bench moderation` for the real sizes)");
    }
    println!();
    println!(
        "approve one post among {} held: {} per action, commit included ({:.2}x the time among {} held); \
         {} before the commit's fsync ({:.2}x)",
        large.held,
        per_op(large.approve, actions).trim(),
        large.approve.as_secs_f64() / small.approve.as_secs_f64(),
        small.held,
        per_op(large.approve_work, actions).trim(),
        large.approve_work.as_secs_f64() / small.approve_work.as_secs_f64(),
    );
}
