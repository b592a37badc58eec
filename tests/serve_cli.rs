//! `listd serve` as the real binary: it exits 1 with a clear message when it
//! cannot run (bad config, bad log filter, address in use); on SIGTERM it
//! refuses new connections with 421, finishes the transaction in flight and
//! exits 0; SIGINT exits 0 too.

mod common;

use common::*;
use std::process::Command;

fn serve(env: &TestEnv, extra: &[&str]) -> (Option<i32>, String) {
    let out = Listd::at(&env.config_path).output(&[&["serve"], extra].concat());
    (out.status.code(), cli::stderr(&out))
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

/// A site with the list `dev` (anyone may post), SMTP on a free port.
fn dev_on_a_free_port() -> (TestEnv, std::net::SocketAddr) {
    let port = free_port();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{port}\"]"))
        .list("dev", "posting: anyone\n")
        .build();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    (env, addr)
}

#[tokio::test]
async fn sigterm_finishes_the_transaction_in_flight_refuses_new_connections_and_exits_0() {
    let (env, addr) = dev_on_a_free_port();
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

/// RCPT TO:<LIST@lists.example.org> on a fresh connection: the reply code.
async fn rcpt_code(addr: std::net::SocketAddr, list: &str) -> u16 {
    let mut c = SmtpClient::connect_ehlo(addr).await;
    c.cmd("MAIL FROM:<ann@example.org>").await.expect(250);
    let code = c
        .cmd(&format!("RCPT TO:<{list}@lists.example.org>"))
        .await
        .code;
    c.quit().await;
    code
}

/// SIGHUP on the real binary: a list added on disk is served without a
/// restart; a configuration with an error is refused (logged with its
/// file) and the daemon goes on with the one it had; SIGTERM still exits 0.
#[tokio::test]
async fn sighup_reloads_and_refuses_a_broken_configuration() {
    let (env, addr) = dev_on_a_free_port();
    let log = env.path().join("serve.log");
    let child = ServeProcess(
        Command::new(env!("CARGO_BIN_EXE_listd"))
            .arg("--config")
            .arg(&env.config_path)
            .args(["serve", "--log-level", "info"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn listd serve"),
    );
    wait_listening(addr).await;
    assert_eq!(rcpt_code(addr, "new").await, 550);

    std::fs::write(env.path().join("lists/new.yaml"), "posting: anyone\n").unwrap();
    signal(&child, "-HUP");
    let mut served = false;
    for _ in 0..300 {
        if rcpt_code(addr, "new").await == 250 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served, "the new list is served after SIGHUP");

    std::fs::write(env.path().join("lists/broken.yaml"), "posting: sometimes\n").unwrap();
    signal(&child, "-HUP");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(std::time::Duration::from_secs(30), || read_log()
            .contains("reload refused"))
        .await,
        "{}",
        read_log()
    );
    let text = read_log();
    assert!(
        text.contains("broken.yaml:1:10"),
        "the error names file, line and column: {text}"
    );
    assert_eq!(
        rcpt_code(addr, "new").await,
        250,
        "still the previous configuration"
    );
    assert_eq!(rcpt_code(addr, "broken").await, 550);

    signal(&child, "-TERM");
    assert_eq!(exit_code(child).await, Some(0));
}

/// `DaemonHandle::reload` in-process: new sessions and the pipeline see the
/// new lists and settings (a changed subject prefix decorates the next
/// post); settings bound at start are reported as needing a restart; a new
/// data_dir is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_lists_and_settings_in_process() {
    let sink = common::sink::Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "posting: anyone\nsubject_prefix: \"[old]\"\n")
        .build();
    env.add_members("dev", &["bob@example.org"]);
    let daemon = env.start().await;
    let addr = daemon.smtp_addr();
    // posts SUBJECT to dev and waits until the sink has N transactions
    let post_and_wait = |subject: &'static str, n: usize| {
        let sink = &sink;
        async move {
            let m = common::message("ann@example.org", "dev@lists.example.org", subject, "hi");
            send(addr, "ann@example.org", &["dev@lists.example.org"], &m)
                .await
                .expect(250);
            assert!(
                wait_until(std::time::Duration::from_secs(20), || sink
                    .transactions()
                    .len()
                    == n)
                .await
            );
        }
    };
    post_and_wait("one", 1).await;

    std::fs::write(
        env.path().join("lists/dev.yaml"),
        "posting: anyone\nsubject_prefix: \"[new]\"\n",
    )
    .unwrap();
    std::fs::write(env.path().join("lists/more.yaml"), "posting: anyone\n").unwrap();
    let warnings = daemon.reload(env.config()).expect("reload");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(daemon.config().lists.contains_key("more"));
    assert_eq!(rcpt_code(addr, "more").await, 250);
    post_and_wait("two", 2).await;
    let subjects: Vec<String> = sink
        .transactions()
        .iter()
        .map(|t| {
            mail_parser::MessageParser::default()
                .parse(&t.data)
                .and_then(|m| m.subject().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    assert!(subjects.contains(&"[old] one".to_string()), "{subjects:?}");
    assert!(subjects.contains(&"[new] two".to_string()), "{subjects:?}");

    let mut moved = env.config();
    moved.smtp.listen = vec!["127.0.0.1:1".into()];
    moved.smtp.max_connections += 1;
    let warnings = daemon.reload(moved).expect("reload with warnings");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("smtp.listen changed: restart"),
        "{warnings:?}"
    );
    let mut elsewhere = env.config();
    elsewhere.data_dir = env.path().join("other-data");
    let err = daemon.reload(elsewhere).unwrap_err().to_string();
    assert!(err.contains("data_dir changed"), "{err}");
    daemon.shutdown().await;
}
