//! The command line's small courtesies, on the real binary: one error
//! message for a busy port, listeners logged in one format, a hint when no
//! configuration is found, `--help` that describes every argument, and a
//! bulk add that welcomes only when asked.

mod common;

use common::{run_cli, TestEnv};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_busy_port_is_reported_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{port}\"]"))
        .build();
    let (code, _, err) = run_cli(&env, &["serve", "--log-level", "error"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
}

#[test]
fn smtp_and_lmtp_listeners_are_logged_alike() {
    let env = TestEnv::builder().lmtp().build();
    let mut child = Command::new(env!("CARGO_BIN_EXE_listd"))
        .arg("--config")
        .arg(&env.config_path)
        .args(["serve", "--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut smtp, mut lmtp) = (None, None);
    let t0 = Instant::now();
    while (smtp.is_none() || lmtp.is_none()) && t0.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(i) = line.find("SMTP on ") {
            smtp = Some(line[i + 8..].trim().to_string());
        }
        if let Some(i) = line.find("LMTP on ") {
            lmtp = Some(line[i + 8..].trim().to_string());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (smtp, lmtp) = (smtp.expect("SMTP logged"), lmtp.expect("LMTP logged"));
    for a in [&smtp, &lmtp] {
        assert!(
            a.parse::<std::net::SocketAddr>().is_ok(),
            "`{a}` is not host:port"
        );
    }
}

#[test]
fn without_a_configuration_the_error_says_how_to_name_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_listd"))
        .arg("lists")
        .current_dir(dir.path())
        .env_remove("LISTD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listd.yaml"), "{err}");
    assert!(err.contains("--config PATH or $LISTD_CONFIG"), "{err}");
}

#[test]
fn help_describes_every_argument() {
    let env = TestEnv::builder().build();
    let (code, out, _) = run_cli(&env, &["members", "add", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("The list's name"), "{out}");
    assert!(out.contains("Addresses to add"), "{out}");
    let (code, out, _) = run_cli(&env, &["held", "discard", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("approve and discard tell no one"), "{out}");
}

/// `members add --welcome` sends what a confirmed subscription sends; without
/// it the owner's bulk add sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_add_welcomes_only_when_asked() {
    let sink = common::sink::Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "owners: [owner@example.org]\nnotify_owners: true\n")
        .build();
    let (code, out, err) = run_cli(&env, &["members", "add", "dev", "quiet@example.org"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 added"), "{out}");
    let (code, out, err) = run_cli(
        &env,
        &[
            "members",
            "add",
            "dev",
            "Wendy <wendy@example.org>",
            "--welcome",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 welcome and notice mails queued"), "{out}");
    let d = env.start().await;
    assert!(common::wait_until(Duration::from_secs(20), || sink.delivered_count() >= 2).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let to: Vec<String> = sink
        .transactions()
        .iter()
        .flat_map(|t| t.rcpts.clone())
        .collect();
    assert!(to.contains(&"wendy@example.org".to_string()), "{to:?}");
    assert!(to.contains(&"owner@example.org".to_string()), "{to:?}");
    assert!(!to.contains(&"quiet@example.org".to_string()), "{to:?}");
    let welcome = sink
        .transactions()
        .into_iter()
        .find(|t| t.rcpts == ["wendy@example.org"])
        .unwrap();
    let m = mail_parser::MessageParser::default()
        .parse(&welcome.data)
        .unwrap();
    assert!(
        m.subject().unwrap().to_lowercase().contains("welcome"),
        "{:?}",
        m.subject()
    );
    d.shutdown().await;
}
