//! The CLI acts on a running daemon at once: after `listd held approve`,
//! the control socket wakes the daemon's workers, and the post reaches the
//! relay in well under a second (delivery would otherwise look again only
//! at its next 15-second poll).

mod common;

use common::sink::Sink;
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const D: &str = "lists.example.org";

#[tokio::test]
async fn a_cli_approve_on_a_running_daemon_reaches_the_relay_within_a_second() {
    let sink = Sink::start();
    let port = free_port();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{port}\"]"))
        .relay_port(sink.port())
        .list(
            "dev",
            "owners: [owner@example.org]\nmoderators: [mod@example.org]\nposting: moderated\n",
        )
        .build();
    env.add_members("dev", &["member@example.org"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _child = spawn_serve(&env);
    wait_listening(addr).await;
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
