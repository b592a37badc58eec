//! `listd serve` error paths: it exits 1 with a clear message when it
//! cannot run (bad config, bad log filter, address in use).

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
