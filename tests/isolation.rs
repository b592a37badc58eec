//! No input stops the daemon: a row whose handler panics, or that kills the
//! whole process, ends in `corrupt` and every other mail keeps flowing; the
//! poison subject that once stopped every list is answered like any other.
//!
//! The panic and abort cases use the debug build's fault injection
//! (`LISTD_FAULTS=1` and an `X-Listd-Fault: SITE-KIND` header, see `src/fault.rs`) on
//! the real `listd serve` binary; the rest runs the in-process daemon.

mod common;

use common::sink::Sink;
use common::*;
use listd::health::{WorkerState, PIPELINE};
use mail_parser::MessageParser;
use std::net::SocketAddr;
use std::time::Duration;

const D: &str = "lists.example.org";
const MEMBER: &str = "member@example.org";
const WAIT: Duration = Duration::from_secs(20);

fn env_with(sink: &Sink, smtp_port: u16) -> TestEnv {
    TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{smtp_port}\"]"))
        .relay_port(sink.port())
        .list(
            "dev",
            "owners: [owner@example.org]\nposting: members\nsubscription: open\n",
        )
        .build()
}

/// The environment that arms the debug build's fault injection.
const FAULTS: &[(&str, &str)] = &[("LISTD_FAULTS", "1")];

/// A sink, a site whose list `dev` has [`MEMBER`], and the SMTP address the
/// real binary will listen on there.
fn site_for_the_binary() -> (Sink, TestEnv, SocketAddr) {
    let sink = Sink::start();
    let port = free_port();
    let env = env_with(&sink, port);
    env.add_members("dev", &[MEMBER]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    (sink, env, addr)
}

fn subjects(sink: &Sink) -> Vec<String> {
    sink.transactions()
        .iter()
        .map(|t| {
            MessageParser::default()
                .parse(&t.data)
                .and_then(|m| m.subject().map(str::to_string))
                .unwrap_or_default()
        })
        .collect()
}

async fn wait_subject(sink: &Sink, needle: &str) -> bool {
    wait_until(WAIT, || subjects(sink).iter().any(|s| s.contains(needle))).await
}

fn faulty(from: &str, to: &str, subject: &str, fault: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nX-Listd-Fault: {fault}\r\nMessage-ID: <{}@example.org>\r\n\r\nbody\r\n",
        rand_token()
    )
}

#[tokio::test]
async fn the_poison_subject_is_answered_and_posts_keep_flowing() {
    let sink = Sink::start();
    let env = env_with(&sink, 0);
    env.add_members("dev", &[MEMBER]);
    let d = env.start().await;
    let addr = d.smtp_addr();
    // "Kosten (€: 5)": the subject prefix stripper once sliced inside the €
    // and stopped the pipeline for every list
    let poison = format!(
        "From: {MEMBER}\r\nTo: majordomo@{D}\r\nSubject: =?utf-8?B?S29zdGVuICjigqw6IDUp?=\r\n\r\nhelp\r\n"
    );
    send(addr, MEMBER, &[&format!("majordomo@{D}")], &poison)
        .await
        .expect(250);
    let post = message(MEMBER, &format!("dev@{D}"), "after the poison", "hello");
    send(addr, MEMBER, &[&format!("dev@{D}")], &post)
        .await
        .expect(250);
    assert!(
        wait_subject(&sink, "after the poison").await,
        "the post after the poison message was not delivered: {:?}",
        subjects(&sink)
    );
    // the robot answered the poison message too, to its sender
    assert!(
        wait_until(WAIT, || sink.transactions().iter().any(|t| t.rcpts
            == [MEMBER]
            && t.data.windows(4).any(|w| w == b"help")))
        .await
    );
    assert_eq!(env.count("incoming", "state = 'corrupt'"), 0);
    d.shutdown().await;
}

#[tokio::test]
async fn a_multibyte_character_across_byte_ten_of_rcpt_does_not_end_the_session() {
    let env = TestEnv::builder().list("dev", "posting: anyone\n").build();
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    c.cmd("MAIL FROM:<a@example.org>").await.expect(250);
    // `split_at(10)` once panicked inside the é and killed the session
    let r = c.cmd("RCPT TO:<@abcdefghé:postmaster>").await;
    assert!(r.code >= 500, "{r:?}");
    c.cmd(&format!("RCPT TO:<dev@{D}>")).await.expect(250);
    c.cmd("NOOP").await.expect(250);
    c.quit().await;
    d.shutdown().await;
}

#[tokio::test]
async fn intake_answers_451_while_the_pipeline_is_down() {
    let env = TestEnv::builder().list("dev", "posting: anyone\n").build();
    let d = env.start().await;
    let addr = d.smtp_addr();
    let msg = message("a@example.org", &format!("dev@{D}"), "s", "b");
    // the supervisor has started the pipeline (and says so)
    assert!(
        wait_until(WAIT, || d
            .health
            .report()
            .contains(&(PIPELINE, WorkerState::Running)))
        .await
    );
    d.health.set(
        PIPELINE,
        WorkerState::Restarting {
            error: "panicked: test".into(),
            restarts: 1,
            since: 0,
            retry_at: 1,
        },
    );
    let r = send(addr, "a@example.org", &[&format!("dev@{D}")], &msg).await;
    assert_eq!(r.code, 451, "{r:?}");
    assert_eq!(env.count("messages", "direction = 'in'"), 0);
    d.health.set(PIPELINE, WorkerState::Running);
    send(addr, "a@example.org", &[&format!("dev@{D}")], &msg)
        .await
        .expect(250);
    assert_eq!(env.count("messages", "direction = 'in'"), 1);
    d.shutdown().await;
}

#[tokio::test]
async fn a_panicking_row_goes_to_corrupt_and_the_cli_shows_retries_and_deletes_it() {
    let (sink, env, addr) = site_for_the_binary();
    let _child = spawn_serve_env(&env, FAULTS);
    wait_listening(addr).await;

    let list = format!("dev@{D}");
    let poison = faulty(MEMBER, &list, "poison post", "pipeline-panic");
    send(addr, MEMBER, &[&list], &poison).await.expect(250);
    send(
        addr,
        MEMBER,
        &[&list],
        &message(MEMBER, &list, "good post", "hi"),
    )
    .await
    .expect(250);
    assert!(
        wait_subject(&sink, "good post").await,
        "mail stopped flowing after a panic: {:?}",
        subjects(&sink)
    );
    assert!(
        wait_until(WAIT, || env.count("incoming", "state = 'corrupt'") == 1).await,
        "the panicking row did not reach corrupt"
    );
    assert!(!subjects(&sink).iter().any(|s| s.contains("poison")));

    let (code, out, _) = run_cli(&env, &["queue", "corrupt"]);
    assert_eq!(code, 0);
    assert!(out.contains("handler panicked"), "{out}");
    assert!(out.contains(&format!("<{list}>")), "{out}");
    let id: String = out
        .split_once('#')
        .unwrap()
        .1
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let (code, out, _) = run_cli(&env, &["queue", "corrupt", "show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("reason: handler panicked"), "{out}");
    assert!(out.contains("Subject: poison post"), "{out}");
    // `listd queue` shows it too
    let (_, out, _) = run_cli(&env, &["queue"]);
    assert!(out.contains("handler panicked"), "{out}");

    // unknown ids are errors, not silence
    let (code, _, err) = run_cli(&env, &["queue", "corrupt", "show", "999999"]);
    assert_eq!(code, 1);
    assert!(err.contains("no corrupt incoming row #999999"), "{err}");
    let (code, _, err) = run_cli(&env, &["queue", "corrupt", "retry", "999999"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = run_cli(&env, &["queue", "corrupt", "delete"]);
    assert_eq!(code, 2, "an id or --all is required");

    // retried, it panics again and comes back to corrupt; nothing else stops
    let (code, out, _) = run_cli(&env, &["queue", "corrupt", "retry", &id]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 corrupt rows back"), "{out}");
    assert!(
        wait_until(WAIT, || env.count("incoming", "state = 'corrupt'") == 1).await,
        "the retried row did not come back to corrupt"
    );
    send(
        addr,
        MEMBER,
        &[&list],
        &message(MEMBER, &list, "third post", "hi"),
    )
    .await
    .expect(250);
    assert!(wait_subject(&sink, "third post").await);

    let (code, out, _) = run_cli(&env, &["queue", "corrupt", "delete", &id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.count("incoming", "state = 'corrupt'"), 0);
    let (_, out, _) = run_cli(&env, &["queue", "corrupt"]);
    assert!(out.contains("no corrupt inbound mail"), "{out}");
}

#[tokio::test]
async fn a_row_that_kills_the_daemon_goes_to_corrupt_after_three_crashes() {
    let (sink, env, addr) = site_for_the_binary();
    let list = format!("dev@{D}");

    let mut child = spawn_serve_env(&env, FAULTS);
    wait_listening(addr).await;
    let poison = faulty(MEMBER, &list, "deadly post", "pipeline-abort");
    // the commit comes before the pipeline takes the row; the process may
    // die before its 250 reaches us, but never before the commit
    let mut c = SmtpClient::connect_ehlo(addr).await;
    c.cmd(&format!("MAIL FROM:<{MEMBER}>")).await.expect(250);
    c.cmd(&format!("RCPT TO:<{list}>")).await.expect(250);
    c.cmd("DATA").await.expect(354);
    c.send_raw(dot_stuff(&poison).as_bytes()).await;
    c.send_raw(b".\r\n").await;
    if let Some(r) = c.try_read_reply().await {
        r.expect(250);
    }
    drop(c);
    let mut crashes = 0;
    loop {
        let died = wait_until(Duration::from_secs(10), || {
            matches!(child.0.try_wait(), Ok(Some(_)))
        })
        .await;
        if !died {
            break;
        }
        crashes += 1;
        assert!(crashes <= 3, "the daemon kept dying on the same row");
        // what systemd's Restart=on-failure does (it may die again before
        // it is seen listening)
        child = spawn_serve_env(&env, FAULTS);
    }
    wait_listening(addr).await;
    assert_eq!(crashes, 3, "the row should kill the daemon exactly 3 times");
    assert_eq!(env.count("messages", "direction = 'in'"), 1, "committed");
    let (_, out, _) = run_cli(&env, &["queue", "corrupt"]);
    assert!(out.contains("failed hard"), "{out}");
    send(
        addr,
        MEMBER,
        &[&list],
        &message(MEMBER, &list, "alive again", "hi"),
    )
    .await
    .expect(250);
    assert!(
        wait_subject(&sink, "alive again").await,
        "mail does not flow after the crashes: {:?}",
        subjects(&sink)
    );
    assert!(!subjects(&sink).iter().any(|s| s.contains("deadly")));
}

#[tokio::test]
async fn a_panic_while_sending_defers_that_post_and_delivery_goes_on() {
    let (sink, env, addr) = site_for_the_binary();
    let _child = spawn_serve_env(&env, FAULTS);
    wait_listening(addr).await;
    let list = format!("dev@{D}");
    let poison = faulty(MEMBER, &list, "unsendable post", "delivery-panic");
    send(addr, MEMBER, &[&list], &poison).await.expect(250);
    assert!(
        wait_until(WAIT, || {
            let deferred = "state = 'deferred' AND last_reply LIKE '%panic%'";
            env.count("batches", deferred) + env.count("job_rcpts", deferred) == 1
        })
        .await,
        "the recipient of the post whose sending panicked was not deferred"
    );
    send(
        addr,
        MEMBER,
        &[&list],
        &message(MEMBER, &list, "sendable post", "hi"),
    )
    .await
    .expect(250);
    assert!(
        wait_subject(&sink, "sendable post").await,
        "delivery stopped after a panic while sending: {:?}",
        subjects(&sink)
    );
    assert!(!subjects(&sink).iter().any(|s| s.contains("unsendable")));
}
