//! `listd requests`: the real binary against a store the robot filled.

mod common;
mod robot_support;

use common::cli::{stderr, stdout};
use common::Listd;
use robot_support::*;

const REQ: &str = "dev-request@lists.example.org";
const APPROVE: &str = "owners: [owner@example.org]\nsubscription: approve\n";

#[test]
fn list_approve_reject_and_discard_requests() {
    let mut s = Site::new(&[("dev", APPROVE), ("ops", APPROVE)]);
    s.command("ann@example.org", REQ, "", "subscribe", T0);
    s.command("bob@example.org", REQ, "", "subscribe", T0);
    s.command(
        "carol@example.org",
        "ops-request@lists.example.org",
        "",
        "subscribe",
        T0,
    );
    let asks = s.outbox();
    let ann_token = asks
        .iter()
        .find(|m| m.rcpts == ["owner@example.org"] && m.flat().contains("ann@example.org asks"))
        .unwrap()
        .token();

    let out = Listd::at(s.config_path()).output(&["requests", "dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = stdout(&out);
    assert!(
        listing.contains("ann@example.org") && listing.contains("bob@example.org"),
        "{listing}"
    );
    assert!(!listing.contains("carol@example.org"), "{listing}");
    let all = stdout(&Listd::at(s.config_path()).output(&["requests"]));
    assert!(
        all.contains("carol@example.org") && all.contains("ops"),
        "{all}"
    );

    // approve #1 (ann): member, welcome, owner notice
    let out = Listd::at(s.config_path()).output(&["requests", "approve", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Approved request #1: ann@example.org is now subscribed to dev."));
    assert!(s.is_member("dev", "ann@example.org"));
    let sent = s.outbox();
    assert!(to_rcpt(&sent, "ann@example.org")[0]
        .subject()
        .contains("Welcome"));
    assert_eq!(to_rcpt(&sent, "owner@example.org").len(), 1);
    // deciding twice fails, and the owner's mail token is spent
    let out = Listd::at(s.config_path()).output(&["requests", "approve", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was already approved"),
        "{}",
        stderr(&out)
    );
    s.command(
        "owner@example.org",
        REQ,
        "",
        &format!("approve {ann_token}"),
        T0 + 5,
    );
    assert!(s.outbox()[0].flat().contains("already decided"));

    // reject #2 (bob) with a reason: bob is told
    let out =
        Listd::at(s.config_path()).output(&["requests", "reject", "2", "not", "on", "the", "team"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!s.is_member("dev", "bob@example.org"));
    let sent = s.outbox();
    let told = to_rcpt(&sent, "bob@example.org");
    assert_eq!(told.len(), 1);
    assert!(
        told[0].flat().contains("not on the team"),
        "{}",
        told[0].body()
    );

    // discard #3 (carol): nobody is told
    let out = Listd::at(s.config_path()).output(&["requests", "discard", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.outbox().is_empty());
    assert!(stdout(&Listd::at(s.config_path()).output(&["requests"]))
        .contains("no pending subscription requests"));
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let s = Site::new(&[("dev", APPROVE)]);
    let out = Listd::at(s.config_path()).output(&["requests", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("there is no list named `nosuch`"));
    let out = Listd::at(s.config_path()).output(&["requests", "approve", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("There is no subscription request #999."));
    let out = Listd::at(s.config_path()).output(&["requests", "approve", "x"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    let out = Listd::at("/nonexistent/listd.yaml").output(&["requests"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/listd.yaml"));
}

#[test]
fn check_warns_about_missing_robot_templates() {
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("tpl");
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::write(tdir.join("help.hbs"), "help").unwrap();
    let path = write_config(dir.path(), &[("dev", APPROVE)], "  replies_per_hour: 10");
    let text_cfg = std::fs::read_to_string(&path).unwrap();
    let text_cfg = text_cfg.replace(
        &format!("templates_dir: {}", common::repo_templates().display()),
        "templates_dir: tpl",
    );
    std::fs::write(&path, text_cfg).unwrap();
    let out = Listd::at(&path).output(&["check"]);
    let err = stderr(&out);
    assert!(
        err.contains("the command robot's templates are missing"),
        "{err}"
    );
    assert!(err.contains("welcome") && !err.contains("help"), "{err}");
    // the shipped set is complete
    let s = Site::new(&[("dev", APPROVE)]);
    let out = Listd::at(s.config_path()).output(&["check"]);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("missing"), "{}", stderr(&out));
}
