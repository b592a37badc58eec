//! `listd serve` as the real binary: it exits 1 with a clear message when it
//! cannot run (bad config, bad log filter, address in use); on SIGTERM it
//! refuses new connections with 421, finishes the transaction in flight and
//! exits 0; SIGINT exits 0 too.

mod common;

use common::*;
use std::process::Command;

fn serve(env: &TestEnv, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_listd"))
        .arg("--config")
        .arg(&env.config_path)
        .arg("serve")
        .args(extra)
        .output()
        .expect("run listd serve");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_log_filter_exits_1() {
    let env = TestEnv::builder().build();
    let (code, err) = serve(&env, &["--log-level", "listd=[bogus"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--log-level"), "{err}");
}

#[test]
fn invalid_config_exits_1_naming_the_file() {
    let env = TestEnv::builder().set("smtp", "bogus_key", "1").build();
    let (code, err) = serve(&env, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("listd.yaml"), "{err}");
    assert!(err.contains("bogus_key"), "{err}");
}

#[test]
fn address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"{addr}\"]"))
        .build();
    let (code, err) = serve(&env, &["--log-level", "error"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

fn signal(child: &ServeProcess, sig: &str) {
    let pid = child.0.id().to_string();
    let ok = Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn exit_code(child: ServeProcess) -> Option<i32> {
    tokio::task::spawn_blocking(move || {
        let mut child = child;
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = child.0.try_wait().expect("wait") {
                return status.code();
            }
            assert!(std::time::Instant::now() < end, "listd serve did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    })
    .await
    .expect("wait task")
}

#[tokio::test]
async fn sigterm_finishes_the_transaction_in_flight_refuses_new_connections_and_exits_0() {
    let port = free_port();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{port}\"]"))
        .list("dev", "posting: anyone\n")
        .build();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = spawn_serve(&env);
    wait_listening(addr).await;
    let mut busy = SmtpClient::connect_ehlo(addr).await;
    let mut idle = SmtpClient::connect_ehlo(addr).await;
    busy.cmd("MAIL FROM:<ann@example.org>").await.expect(250);
    busy.cmd("RCPT TO:<dev@lists.example.org>")
        .await
        .expect(250);
    busy.cmd("DATA").await.expect(354);
    busy.send_raw(b"Subject: in flight\r\n\r\npart one\r\n")
        .await;

    signal(&child, "-TERM");
    check_graceful_shutdown(addr, &mut idle, &mut busy).await;
    assert_eq!(exit_code(child).await, Some(0), "SIGTERM exits 0");
    check_in_flight_message_stored(&env);
}

#[tokio::test]
async fn sigint_exits_0() {
    let port = free_port();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{port}\"]"))
        .build();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = spawn_serve(&env);
    wait_listening(addr).await;
    signal(&child, "-INT");
    assert_eq!(exit_code(child).await, Some(0), "SIGINT exits 0");
}
