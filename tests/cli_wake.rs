//! The CLI acts on a running daemon at once: after `listd held approve`,
//! the control socket wakes the daemon's workers, and the post reaches the
//! relay in well under a second (delivery would otherwise look again only
//! at its next 15-second poll); a digest issue the approved post fills is
//! closed at once too (the digest worker would otherwise tick only every
//! `digest::TICK_EVERY`).

mod common;

use common::sink::Sink;
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const D: &str = "lists.example.org";

/// A moderated list `dev` (extra list YAML appended) with one member.
fn moderated(sink: &Sink, smtp_port: u16, extra_yaml: &str) -> TestEnv {
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{smtp_port}\"]"))
        .relay_port(sink.port())
        .list(
            "dev",
            &format!("owners: [owner@example.org]\nmoderators: [mod@example.org]\nposting: moderated\n{extra_yaml}"),
        )
        .build();
    env.add_members("dev", &["member@example.org"]);
    env
}

/// Posts to `dev` through the daemon at `addr` and waits until the post is
/// held and the daemon idle again; returns the sink's delivered count at
/// that point and the held id.
async fn one_held_post(env: &TestEnv, sink: &Sink, addr: SocketAddr) -> (usize, i64) {
    assert!(
        env.path().join("data/listd.ctl").exists(),
        "no control socket"
    );
    let list = format!("dev@{D}");
    let post = message("member@example.org", &list, "held for a moderator", "hi");
    send(addr, "member@example.org", &[&list], &post)
        .await
        .expect(250);
    assert!(
        wait_until(Duration::from_secs(20), || env
            .count("held", "state = 'held'")
            == 1)
        .await,
        "the post was not held"
    );
    // let the daemon settle into its idle wait (moderator notice sent)
    assert!(sink.wait_for_delivered(1, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = sink.delivered_count();

    let id: i64 = env
        .store()
        .query_row("SELECT id FROM held WHERE state = 'held'", [], |r| r.get(0))
        .unwrap();
    (before, id)
}

#[tokio::test]
async fn a_cli_approve_on_a_running_daemon_reaches_the_relay_within_a_second() {
    let sink = Sink::start();
    let port = free_port();
    let env = moderated(&sink, port, "");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _child = spawn_serve(&env);
    wait_listening(addr).await;
    let (before, id) = one_held_post(&env, &sink, addr).await;
    let started = Instant::now();
    let (code, out, err) = run_cli(&env, &["held", "approve", &id.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        sink.wait_for_delivered(before + 1, Duration::from_secs(10)),
        "the approved post never reached the relay"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the approved post took {took:?} to reach the relay"
    );
}

/// The approved post fires the count trigger in the CLI's transaction,
/// which only marks the issue due; the control socket's wake has the
/// daemon's digest worker close it and the digest reach the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_approve_that_fills_a_digest_issue_sends_the_digest_at_once() {
    let sink = Sink::start();
    // the in-process daemon (port 0: no port to race the other test for)
    let env = moderated(&sink, 0, "digest:\n  max_messages: 1\n  schedule: none\n");
    let daemon = env.start().await;
    let (_, id) = one_held_post(&env, &sink, daemon.smtp_addr()).await;
    env.add_members_mode(
        "dev",
        &["dig@example.org"],
        listd::store::members::DeliveryMode::DigestMime,
    );
    let started = Instant::now();
    let (code, out, err) = run_cli(&env, &["held", "approve", &id.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let to_dig = || {
        sink.transactions()
            .iter()
            .any(|t| t.rcpts.iter().any(|r| r == "dig@example.org"))
    };
    assert!(
        wait_until(listd::digest::TICK_EVERY / 3, to_dig).await,
        "the digest waited for the worker's periodic tick"
    );
    assert!(started.elapsed() < listd::digest::TICK_EVERY / 3);
    daemon.shutdown().await;
}
