//! `listd lists create|get|set|unset`, run as the real binary: an owner
//! makes a list and changes its settings, and the daemon then serves them
//! over SMTP; a bad change writes nothing and says why; edits keep the
//! file's comments.

mod common;

use common::*;

const DEV: &str = "# The dev list.\ndescription: Dev\n# members only\nposting: members\nowners:\n- owner@example.org\ndigest:\n  enabled: true\n  schedule: daily 06:00\n";

fn dev_env() -> TestEnv {
    TestEnv::builder().list("dev", DEV).build()
}

fn dev_file(env: &TestEnv) -> String {
    std::fs::read_to_string(env.path().join("lists/dev.yaml")).unwrap()
}

/// Files in lists/ (so a failed command is seen to leave no temp file).
fn lists_dir(env: &TestEnv) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(env.path().join("lists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_creates_a_list_sets_it_up_and_a_post_goes_out() {
    let sink = common::sink::Sink::start();
    let env = TestEnv::builder().relay_port(sink.port()).build();
    let ok = |args: &[&str]| {
        let (code, out, err) = run_cli(&env, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    let out = ok(&[
        "lists",
        "create",
        "news",
        "--owner",
        "owner@example.org",
        "--description",
        "News: weekly, # not a comment",
    ]);
    assert!(out.contains("created news@lists.example.org"), "{out}");
    assert!(out.contains("no daemon is running on"), "{out}");
    ok(&["lists", "set", "news", "posting", "anyone"]);
    ok(&[
        "lists",
        "set",
        "news",
        "subject_prefix",
        "--string",
        "[news]",
    ]);
    ok(&["members", "add", "news", "bob@example.org"]);
    assert_eq!(
        ok(&["lists", "get", "news", "description"]),
        "News: weekly, # not a comment\n"
    );
    assert_eq!(ok(&["check"]).lines().count(), 1);

    let daemon = env.start().await;
    let m = message("ann@example.org", "news@lists.example.org", "hello", "hi");
    send(
        daemon.smtp_addr(),
        "ann@example.org",
        &["news@lists.example.org"],
        &m,
    )
    .await
    .expect(250);
    assert!(
        wait_until(std::time::Duration::from_secs(20), || !sink
            .transactions()
            .is_empty())
        .await,
        "the post reaches the relay"
    );
    let t = &sink.transactions()[0];
    assert_eq!(t.rcpts, vec!["bob@example.org".to_string()]);
    let parsed = mail_parser::MessageParser::default()
        .parse(&t.data)
        .expect("parse");
    assert_eq!(parsed.subject(), Some("[news] hello"));
    let list_id = parsed.header_raw("List-Id").expect("List-Id").to_string();
    assert!(list_id.contains("news.lists.example.org"), "{list_id}");
    daemon.shutdown().await;
}

#[test]
fn get_prints_the_settings_in_force_defaults_included() {
    let env = TestEnv::builder()
        .list(
            "dev",
            &format!("{DEV}moderator_password: \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g\"\n"),
        )
        .build();
    let get = |key: &str| run_cli(&env, &["lists", "get", "dev", key]);
    assert_eq!(get("posting").1, "members\n");
    assert_eq!(get("digest.schedule").1, "daily 06:00\n");
    assert_eq!(get("hold_days").1, "14\n", "a default");
    assert_eq!(get("owners").1, "- owner@example.org\n");
    let (code, out, _) = run_cli(&env, &["lists", "get", "DEV"]);
    assert_eq!(code, 0);
    let all: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(all["reply_to"], serde_yaml_ng::Value::from("none"));
    assert_eq!(all["expn"], serde_yaml_ng::Value::from("trusted"));
    assert_eq!(
        all["moderator_password"],
        serde_yaml_ng::Value::from("<argon2 hash>")
    );
    assert!(!out.contains("argon2id"), "the hash is not printed: {out}");

    let (code, _, err) = get("digest.nope");
    assert_eq!(code, 1);
    assert!(err.contains("no setting `digest.nope`"), "{err}");
    let (code, _, err) = run_cli(&env, &["lists", "get", "nolist"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such list `nolist`"), "{err}");
}

#[test]
fn set_and_unset_change_one_key_and_keep_the_comments() {
    let env = dev_env();
    let (code, out, err) = run_cli(&env, &["lists", "set", "dev", "posting", "announce"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dev: posting set"), "{out}");
    assert_eq!(
        dev_file(&env),
        DEV.replace("posting: members", "posting: announce")
    );
    let (code, _, err) = run_cli(&env, &["lists", "set", "dev", "digest.schedule", "none"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        run_cli(&env, &["lists", "get", "dev", "digest.schedule"]).1,
        "none\n"
    );
    assert_eq!(
        run_cli(&env, &["lists", "get", "dev", "digest.enabled"]).1,
        "true\n"
    );
    let (code, _, err) = run_cli(&env, &["lists", "unset", "dev", "posting"]);
    assert_eq!(code, 0, "{err}");
    let text = dev_file(&env);
    assert!(!text.contains("posting"), "{text}");
    assert!(
        text.starts_with("# The dev list.\ndescription: Dev\n# members only\n"),
        "{text}"
    );
    assert_eq!(
        run_cli(&env, &["lists", "get", "dev", "posting"]).1,
        "members\n",
        "the default applies again"
    );
    assert_eq!(lists_dir(&env), vec!["dev.yaml"]);
}

#[test]
fn a_bad_change_writes_nothing_and_says_why() {
    let env = dev_env();
    for (args, why) in [
        (vec!["posting", "everyone"], "unknown variant `everyone`"),
        (vec!["postng", "anyone"], "unknown field `postng`"),
        (
            vec!["owners", "[not-an-address]"],
            "owners: `not-an-address`",
        ),
        (
            vec!["moderator_password", "secret"],
            "must be an argon2 hash",
        ),
        (vec!["hold_days", "0"], "hold_days must be at least 1"),
        (vec!["digest.schedule", "sometimes"], "nothing written"),
        (vec!["posting.x", "1"], "not a map"),
        (vec!["subject_prefix", "[dev"], "use --string"),
        (
            vec!["subject_prefix", "[dev]"],
            "`--string` sets it as text",
        ),
    ] {
        let mut argv = vec!["lists", "set", "dev"];
        argv.extend(&args);
        let (code, _, err) = run_cli(&env, &argv);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert_eq!(dev_file(&env), DEV, "{args:?} changed the file");
    }
    let (code, _, err) = run_cli(&env, &["lists", "set", "nolist", "posting", "anyone"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such list"), "{err}");
    assert_eq!(lists_dir(&env), vec!["dev.yaml"]);
}

#[test]
fn create_never_replaces_a_list_and_checks_name_and_owners() {
    let env = dev_env();
    for (args, why) in [
        (vec!["dev", "--owner", "a@example.org"], "exists already"),
        (vec!["dev-request", "--owner", "a@example.org"], "reserved"),
        (vec!["Bad Name", "--owner", "a@example.org"], "must be 1-64"),
        (vec!["new", "--owner", "nobody"], "owners: `nobody`"),
    ] {
        let mut argv = vec!["lists", "create"];
        argv.extend(&args);
        let (code, _, err) = run_cli(&env, &argv);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let (code, _, err) = run_cli(&env, &["lists", "create", "new"]);
    assert_eq!(code, 2, "an owner is required: {err}");
    assert_eq!(dev_file(&env), DEV);
    assert_eq!(lists_dir(&env), vec!["dev.yaml"]);

    // a path the loaded configuration does not count as a list (here a
    // directory) is still never replaced: the link fails, nothing is left
    std::fs::create_dir(env.path().join("lists/odd.yaml")).unwrap();
    let (code, _, err) = run_cli(
        &env,
        &["lists", "create", "odd", "--owner", "a@example.org"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("odd.yaml"), "{err}");
    assert!(env.path().join("lists/odd.yaml").is_dir());
    assert_eq!(lists_dir(&env), vec!["dev.yaml", "odd.yaml"]);

    let (code, _, err) = run_cli(
        &env,
        &["lists", "create", "two", "--owner", "a@example.org"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run_cli(&env, &["lists"]);
    assert_eq!(code, 0);
    assert!(out.contains("two@lists.example.org"), "{out}");
}

/// `MAIL FROM SIZE=size` then `RCPT TO:<LIST@lists.example.org>` on a fresh
/// connection: the RCPT reply code.
async fn rcpt_code(addr: std::net::SocketAddr, list: &str, size: usize) -> u16 {
    let mut c = SmtpClient::connect_ehlo(addr).await;
    c.cmd(&format!("MAIL FROM:<ann@example.org> SIZE={size}"))
        .await
        .expect(250);
    let code = c
        .cmd(&format!("RCPT TO:<{list}@lists.example.org>"))
        .await
        .code;
    c.quit().await;
    code
}

/// Polls `rcpt_code` until it answers `want` (10 s at most).
async fn rcpt_becomes(addr: std::net::SocketAddr, list: &str, size: usize, want: u16) -> bool {
    for _ in 0..200 {
        if rcpt_code(addr, list, size).await == want {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_running_serve_takes_a_new_list_and_a_change_without_a_signal() {
    let port = free_port();
    let env = TestEnv::builder()
        .set("smtp", "listen", &format!("[\"127.0.0.1:{port}\"]"))
        .build();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _serve = spawn_serve(&env);
    wait_listening(addr).await;
    assert_eq!(rcpt_code(addr, "news", 5000).await, 550);

    let (code, out, err) = run_cli(
        &env,
        &["lists", "create", "news", "--owner", "owner@example.org"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("the running daemon was asked to reload"),
        "{out}"
    );
    assert!(
        rcpt_becomes(addr, "news", 5000, 250).await,
        "news is served"
    );

    for (key, value) in [("max_message_size", "1000"), ("oversize_posts", "reject")] {
        let (code, out, err) = run_cli(&env, &["lists", "set", "news", key, value]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("asked to reload"), "{out}");
    }
    assert!(
        rcpt_becomes(addr, "news", 5000, 552).await,
        "the new size limit refuses a declared 5000 bytes"
    );
    assert_eq!(rcpt_code(addr, "news", 500).await, 250);
}
