//! `listd check`, `listd lists` and `listd members`, run as the real binary
//! against config files in temp dirs: every config error names its file,
//! line and reason, and exit codes follow the Unix convention.

mod common;

use common::cli::{stderr, stdout};
use common::{write_site, Listd};
use std::path::Path;
use std::process::Command;

const GLOBAL: &str = "domain: lists.example.org\nsmtp:\n  listen: [\"127.0.0.1:0\"]\n";

fn setup(global: &str, lists: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path(), global, lists);
    dir
}

#[test]
fn shipped_config_checks_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Listd::at(root.join("listd.yaml")).output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("announce") && out.contains("dev"), "{out}");
}

#[test]
fn config_path_comes_from_env_when_no_flag() {
    let dir = setup(GLOBAL, &[("dev.yaml", "description: x\n")]);
    let o = Command::new(env!("CARGO_BIN_EXE_listd"))
        .env("LISTD_CONFIG", dir.path().join("listd.yaml"))
        .arg("check")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // a missing file is an error naming the path
    let o = Command::new(env!("CARGO_BIN_EXE_listd"))
        .env("LISTD_CONFIG", dir.path().join("nope.yaml"))
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope.yaml"), "{}", stderr(&o));
}

#[test]
fn unknown_key_in_list_names_file_line_and_key() {
    let dir = setup(
        GLOBAL,
        &[(
            "dev.yaml",
            "description: Dev\nposting: members\nmoderaters: [a@b.org]\n",
        )],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("dev.yaml:3:"), "{e}");
    assert!(e.contains("unknown field `moderaters`"), "{e}");
}

#[test]
fn unknown_key_in_global_file_is_an_error() {
    let dir = setup("domain: lists.example.org\nsmtp:\n  listn: []\n", &[]);
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("listd.yaml:3:"), "{e}");
    assert!(e.contains("unknown field `listn`"), "{e}");
}

#[test]
fn wrong_type_and_bad_enum_value() {
    let dir = setup(
        GLOBAL,
        &[
            ("a.yaml", "archive: sometimes\n"),
            ("b.yaml", "description: B\nposting: everyone\n"),
        ],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("a.yaml:1:"), "{e}");
    assert!(e.contains("b.yaml:2:") && e.contains("everyone"), "{e}");
}

#[test]
fn bad_address_names_its_line() {
    let dir = setup(
        GLOBAL,
        &[(
            "dev.yaml",
            "description: Dev\nowners:\n  - owner@example.org\n  - not-an-address\n",
        )],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("dev.yaml:4:"), "{e}");
    assert!(
        e.contains("not-an-address") && e.contains("not a valid address"),
        "{e}"
    );
}

#[test]
fn duplicate_list_is_an_error() {
    let dir = setup(
        GLOBAL,
        &[
            ("dev.yaml", "description: a\n"),
            ("dev.yml", "description: b\n"),
        ],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("dev.yml") && e.contains("duplicate list `dev`"),
        "{e}"
    );
}

#[test]
fn reserved_and_invalid_list_names() {
    let dir = setup(
        GLOBAL,
        &[("dev-request.yaml", "{}\n"), ("Bad Name.yaml", "{}\n")],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("dev-request.yaml") && e.contains("reserved"),
        "{e}"
    );
    assert!(e.contains("Bad Name.yaml"), "{e}");
}

#[test]
fn global_value_errors() {
    let dir = setup(
        "domain: lists.example.org\nsmtp:\n  trusted_networks: [\"10.0.0.0/33\"]\n  listen: [\"nowhere\"]\nrelay:\n  connections: 0\nweb:\n  trusted_proxies: [\"proxy.example\"]\n",
        &[],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("listd.yaml:3:") && e.contains("10.0.0.0/33"),
        "{e}"
    );
    assert!(e.contains("listd.yaml:4:") && e.contains("nowhere"), "{e}");
    assert!(
        e.contains("listd.yaml:6:") && e.contains("connections"),
        "{e}"
    );
    assert!(
        e.contains("listd.yaml:8:") && e.contains("`proxy.example` is not a CIDR"),
        "{e}"
    );
}

#[test]
fn malformed_yaml_names_line() {
    let dir = setup(
        GLOBAL,
        &[("dev.yaml", "description: [unclosed\nowners: x\n")],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("dev.yaml:"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = setup(GLOBAL, &[]);
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["members", "add", "dev"]);
    assert_eq!(o.status.code(), Some(2));
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("members"));
}

#[test]
fn members_add_list_remove() {
    let dir = setup(GLOBAL, &[("dev.yaml", "description: Dev\n")]);
    let o = Listd::at(dir.path().join("listd.yaml"))
        .stdin("# comment\n\"Bob B\" <bob@example.org>\n\nnot an address\ncid@example.org\n")
        .output(&["members", "add", "dev", "Ann@Example.ORG", "-"]);
    // one invalid line: reported with its line, exit 1, the rest added
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdin line 4"), "{}", stderr(&o));
    assert!(stdout(&o).contains("3 added"), "{}", stdout(&o));

    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "add",
        "dev",
        "--mode",
        "plain",
        "dee@example.org",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // a different local-part case is a different mailbox
    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "add",
        "dev",
        "ann@example.org",
    ]);
    assert!(stdout(&o).contains("1 added"), "{}", stdout(&o));
    // the same mailbox with the domain in another case is not
    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "add",
        "dev",
        "Ann@example.org",
    ]);
    assert!(stdout(&o).contains("1 already"), "{}", stdout(&o));

    let o = Listd::at(dir.path().join("listd.yaml")).output(&["members", "list", "dev"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.contains("Ann@example.org\teach"), "{out}");
    assert!(out.contains("bob@example.org\teach\tBob B"), "{out}");
    assert!(out.contains("dee@example.org\tdigest_plain"), "{out}");

    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "remove",
        "dev",
        "bob@EXAMPLE.org",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "remove",
        "dev",
        "bob@example.org",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a member"));

    let o =
        Listd::at(dir.path().join("listd.yaml")).output(&["members", "add", "nolist", "a@b.org"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such list"));
    let o = Listd::at(dir.path().join("listd.yaml"))
        .output(&["members", "add", "dev", "--mode", "weekly", "a@b.org"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown mode"));

    let o = Listd::at(dir.path().join("listd.yaml")).output(&["lists"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("dev@lists.example.org"));
}

#[test]
fn members_mode_changes_delivery() {
    let dir = setup(
        GLOBAL,
        &[
            (
                "dev.yaml",
                "description: Dev
",
            ),
            (
                "nodig.yaml",
                "digest:
  enabled: false
",
            ),
        ],
    );
    let add = |list: &str| {
        let o = Listd::at(dir.path().join("listd.yaml")).output(&[
            "members",
            "add",
            list,
            "ann@example.org",
            "bob@example.org",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    add("dev");
    add("nodig");
    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "mode",
        "dev",
        "digest",
        "ann@example.org",
        "zed@example.org",
    ]);
    assert_eq!(o.status.code(), Some(1), "zed is not a member");
    assert!(
        stdout(&o).contains("1 set to digest_mime, 1 not members"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("zed@example.org is not a member"),
        "{}",
        stderr(&o)
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "mode",
        "dev",
        "nomail",
        "bob@example.org",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&Listd::at(dir.path().join("listd.yaml")).output(&["members", "list", "dev"]));
    assert!(out.contains("ann@example.org\tdigest_mime"), "{out}");
    assert!(out.contains("bob@example.org\tnomail"), "{out}");
    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "mode",
        "dev",
        "weekly",
        "ann@example.org",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown mode `weekly`"),
        "{}",
        stderr(&o)
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&[
        "members",
        "mode",
        "nodig",
        "plain",
        "ann@example.org",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("digests turned off"), "{}", stderr(&o));
    let out =
        stdout(&Listd::at(dir.path().join("listd.yaml")).output(&["members", "list", "nodig"]));
    assert!(out.contains("ann@example.org\teach"), "unchanged: {out}");
}

#[test]
fn postmaster_key_errors_and_warnings() {
    // a bad address and our own postmaster address: both named with their line
    let dir = setup(
        "domain: lists.example.org\npostmaster:\n  - admin@example.net\n  - not an address\n  - PostMaster@Lists.Example.org\n",
        &[("postmaster.yaml", "{}\n")],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("listd.yaml:4:") && e.contains("`not an address` is not a valid address"),
        "{e}"
    );
    assert!(
        e.contains("listd.yaml:5:") && e.contains("would loop"),
        "{e}"
    );
    assert!(
        e.contains("postmaster.yaml") && e.contains("reserved"),
        "{e}"
    );
    // not set: check passes and says where postmaster mail goes
    let dir = setup(GLOBAL, &[("dev.yaml", "owners: [boss@example.org]\n")]);
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`postmaster:` is not set; mail to postmaster@lists.example.org goes to the owners of every list (boss@example.org)"),
        "{}",
        stderr(&o)
    );
    let dir = setup(GLOBAL, &[("dev.yaml", "{}\n")]);
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("kept as corrupt"), "{}", stderr(&o));
    // set: no warning
    let dir = setup(
        "domain: lists.example.org\npostmaster: [admin@example.net]\n",
        &[("dev.yaml", "{}\n")],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("postmaster"), "{}", stderr(&o));
}

#[test]
fn help_on_every_command_exits_0_and_bad_usage_exits_2() {
    let dir = setup(GLOBAL, &[("dev.yaml", "{}\n")]);
    for args in [
        &["serve", "--help"][..],
        &["check", "--help"],
        &["lists", "--help"],
        &["members", "--help"],
        &["members", "add", "--help"],
        &["members", "remove", "--help"],
        &["members", "list", "--help"],
        &["queue", "--help"],
        &["queue", "retry", "--help"],
        &["held", "--help"],
        &["archive", "--help"],
        &["digest", "--help"],
        &["requests", "--help"],
        &["hash-password", "--help"],
        &["help", "members"],
    ] {
        let o = Listd::at(dir.path().join("listd.yaml")).output(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(
            stdout(&o).contains("Usage: listd"),
            "{args:?}: {}",
            stdout(&o)
        );
    }
    for args in [
        &["check", "--bogus"][..],
        &["members", "add"],
        &["members", "frob", "dev"],
        &["queue", "flush"],
        &["serve", "--log-level"],
        &[],
    ] {
        let o = Listd::at(dir.path().join("listd.yaml")).output(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("error:") || e.contains("Usage: listd"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn config_defaults_to_listd_yaml_in_the_working_directory() {
    let dir = setup(GLOBAL, &[("dev.yaml", "{}\n")]);
    let o = Command::new(env!("CARGO_BIN_EXE_listd"))
        .current_dir(dir.path())
        .env_remove("LISTD_CONFIG")
        .arg("check")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("listd.yaml: ok (1 lists: dev)"),
        "{}",
        stdout(&o)
    );
    // --config wins over LISTD_CONFIG
    let missing = dir.path().join("missing.yaml");
    let o = Listd::at(dir.path().join("listd.yaml"))
        .var("LISTD_CONFIG", missing.to_str().unwrap())
        .output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // an empty directory: exit 1, naming ./listd.yaml
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_listd"))
        .current_dir(empty.path())
        .env_remove("LISTD_CONFIG")
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("listd.yaml"), "{}", stderr(&o));
}

#[test]
fn global_wrong_type_and_bad_enum_name_line_and_column() {
    let dir = setup(
        "domain: lists.example.org\nsmtp:\n  max_connections: lots\n",
        &[],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("listd.yaml:3:20: smtp.max_connections: invalid type: string \"lots\""),
        "{e}"
    );
    let dir = setup(
        "domain: lists.example.org\nrelay:\n  host: 127.0.0.1\n  tls: sometimes\n",
        &[],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("listd.yaml:4:8: relay.tls: unknown variant `sometimes`"),
        "{e}"
    );
}

#[test]
fn a_zero_command_deadline_is_refused_and_the_slow_client_keys_load() {
    let dir = setup(
        "domain: lists.example.org\nsmtp:\n  min_data_rate: 0\n  command_deadline_secs: 0\n",
        &[],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("listd.yaml:4:3: command_deadline_secs must be greater than 0"),
        "{e}"
    );
    let dir = setup(
        "domain: lists.example.org\nsmtp:\n  command_deadline_secs: 30\n  min_data_rate: 500\n  \
         max_session_secs: 0\n  max_connections_per_trusted_client: 64\n",
        &[],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bounce_keys_load_and_a_bad_threshold_is_refused() {
    let dir = setup(
        "domain: lists.example.org\nbounce:\n  threshold: 0\n  soft_weight: -1\n",
        &[],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("listd.yaml:3:3: bounce.threshold must be a number greater than 0, not 0"),
        "{e}"
    );
    assert!(
        e.contains("listd.yaml:4:3: bounce.soft_weight must be 0 or more"),
        "{e}"
    );
    let dir = setup(
        "domain: lists.example.org\nbounce:\n  threshold: 3.5\n  probes: 2\n  probe_interval_days: 5\n  \
         stale_days: 10\n  retain_days: 0\n  policy_report_after: 0\n  soft_weight: 0.25\n",
        &[],
    );
    let config = listd::config::Config::load(&dir.path().join("listd.yaml")).unwrap();
    assert_eq!(config.bounce.threshold, 3.5);
    assert_eq!(
        (config.bounce.probes, config.bounce.probe_interval_days),
        (2, 5)
    );
    assert_eq!(
        (config.bounce.stale_days, config.bounce.retain_days),
        (10, 0)
    );
    assert_eq!(config.bounce.soft_weight, 0.25);
    let dir = setup("domain: lists.example.org\nbounce:\n  treshold: 3\n", &[]);
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1), "unknown keys are refused");
}

#[test]
fn the_same_list_name_in_two_domains_is_refused_with_both_domains() {
    let dir = setup(
        GLOBAL,
        &[
            ("dev.yaml", "description: a\n"),
            ("dev.yml", "description: b\ndomain: lists.example.net\n"),
        ],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("dev.yml:2:1: duplicate list `dev` (at lists.example.net): already defined in ")
            && e.contains(
                "dev.yaml (at lists.example.org); list names are unique across all domains"
            ),
        "{e}"
    );
}

#[test]
fn a_list_domain_is_validated_and_its_postmaster_cannot_loop() {
    let dir = setup(
        GLOBAL,
        &[("dev.yaml", "description: a\ndomain: \"not a domain\"\n")],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("dev.yaml:2:1: domain: `not a domain` is not a valid domain name"),
        "{e}"
    );
    let dir = setup(
        &format!("{GLOBAL}postmaster: [postmaster@Lists.Example.NET]\n"),
        &[("dev.yaml", "domain: lists.example.net\n")],
    );
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("listd.yaml:4:") && e.contains("own postmaster address at a list domain"),
        "{e}"
    );
    // a good list domain checks clean
    let dir = setup(GLOBAL, &[("dev.yaml", "domain: Lists.Example.NET\n")]);
    let o = Listd::at(dir.path().join("listd.yaml")).output(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
