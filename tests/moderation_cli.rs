//! `listd held ...` and `listd hash-password`, run as the real binary
//! against a config and a SQLite store in a temp dir. Posts are held through
//! the library (the same `moderation::hold` the pipeline calls); what the
//! CLI queues is parsed back with mail-parser.

mod common;

use common::cli::{stderr, stdout};
use common::{Listd, DOMAIN};
use listd::config::Config;
use listd::handler::{Ctx, Inbound};
use listd::moderation::{self, HoldReason};
use listd::store::spool::{self, Envelope};
use mail_parser::MessageParser;
use rusqlite::Connection;
use std::path::Path;

fn setup() -> (tempfile::TempDir, Ctx) {
    let dir = tempfile::tempdir().unwrap();
    let global = format!(
        "domain: {DOMAIN}\ntemplates_dir: {}\nsmtp:\n  listen: [\"127.0.0.1:0\"]\n",
        common::repo_templates().display()
    );
    let lists = [
        (
            "dev.yaml",
            "owners: [owner@example.org]\nmoderators: [mod@example.org]\n",
        ),
        ("ops.yaml", "owners: [owner@example.org]\n"),
    ];
    let path = common::write_site(dir.path(), &global, &lists);
    let ctx = common::ctx_for(Config::load(&path).unwrap());
    (dir, ctx)
}

/// `listd` against the site in `dir`, run by the user `tester` (the actor
/// `listd held` records).
fn tester(dir: &Path) -> Listd {
    Listd::at(dir.join("listd.yaml")).var("USER", "tester")
}

fn post(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: dev@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.net>\r\n\
         X-Kept:  odd   spacing \r\n\r\nBody of {subject}\r\n"
    )
    .into_bytes()
}

/// Holds a post through the library, as the pipeline would.
fn hold(ctx: &Ctx, list: &str, from: &str, subject: &str, now: i64) -> (i64, Vec<u8>) {
    let mut conn = listd::store::open(&ctx.config.db_path()).unwrap();
    let rcpt = format!("{list}@{DOMAIN}");
    let route = listd::routing::route(&ctx.config, &rcpt).unwrap();
    let bytes = post(from, subject);
    let tx = conn.transaction().unwrap();
    let env = Envelope {
        mail_from: from.into(),
        rcpts: vec![],
        client_ip: None,
        helo: "x".into(),
        protocol: "ESMTP".into(),
    };
    let mid = spool::insert_inbound(&tx, &env, &bytes, now).unwrap();
    let msg = Inbound {
        incoming_id: 0,
        message_id: mid,
        rcpt,
        route,
        env_from: from.into(),
        client_ip: None,
        received_at: now,
        bytes: bytes.clone(),
        now,
    };
    let id = moderation::hold(ctx, &tx, list, &msg, HoldReason::NonMember, now).unwrap();
    tx.commit().unwrap();
    (id, bytes)
}

fn state(conn: &Connection, id: i64) -> (String, Option<String>, Option<String>) {
    conn.query_row(
        "SELECT state, acted_by, note FROM held WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// The queued messages an SQL query (one parameter) selects, parsed, each
/// mapped by `f`.
fn queued(
    conn: &Connection,
    sql: &str,
    param: &str,
    f: impl Fn(&mail_parser::Message<'_>) -> String,
) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([param], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| f(&MessageParser::default().parse(&b.unwrap()).unwrap()))
        .collect()
}

/// Texts of notices queued to `rcpt`.
fn mail_to(conn: &Connection, rcpt: &str) -> Vec<String> {
    queued(
        conn,
        "SELECT m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
         JOIN job_rcpts r ON r.job_id = j.id WHERE r.rcpt = ?1 ORDER BY j.id",
        rcpt,
        |m| m.body_text(0).unwrap().into_owned(),
    )
}

#[test]
fn list_show_reject_discard_all() {
    let (dir, ctx) = setup();
    let now = listd::store::now();
    let (a, a_bytes) = hold(&ctx, "dev", "alice@example.net", "first", now - 3 * 3600);
    let (b, _) = hold(&ctx, "dev", "bob@example.net", "second", now - 60);
    let (c, _) = hold(&ctx, "ops", "carol@example.net", "third", now - 2 * 86400);

    let o = tester(dir.path()).output(&["held"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for needle in [
        "ID",
        "REASON",
        "non-member",
        "alice@example.net",
        "first",
        "3h 0m",
        "bob@example.net",
        "carol@example.net",
        "2d 0h",
    ] {
        assert!(s.contains(needle), "{needle} missing:\n{s}");
    }
    let o = tester(dir.path()).output(&["held", "dev"]);
    assert!(
        stdout(&o).contains("first") && !stdout(&o).contains("third"),
        "{}",
        stdout(&o)
    );
    let o = tester(dir.path()).output(&["held", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no list `nosuch`"), "{}", stderr(&o));

    // show: the raw message, byte for byte
    let o = tester(dir.path()).output(&["held", "show", &a.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, a_bytes);
    let o = tester(dir.path()).output(&["held", "show", "999999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no held post 999999"), "{}", stderr(&o));

    // reject with a reason: the poster is told
    let o = tester(dir.path()).output(&[
        "held",
        "reject",
        &a.to_string(),
        "--reason",
        "Off topic, sorry.",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("rejected: held message"),
        "{}",
        stdout(&o)
    );
    let conn = listd::store::open(&ctx.config.db_path()).unwrap();
    assert_eq!(
        state(&conn, a),
        (
            "rejected".into(),
            Some("cli:tester".into()),
            Some("Off topic, sorry.".into())
        )
    );
    let to_alice = mail_to(&conn, "alice@example.net");
    assert!(
        to_alice
            .iter()
            .any(|t| t.contains("rejected by a moderator") && t.contains("Off topic, sorry.")),
        "{to_alice:?}"
    );

    // acting again: exit 1 with who did it
    let o = tester(dir.path()).output(&["held", "discard", &a.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already rejected by cli:tester"),
        "{}",
        stderr(&o)
    );

    // --all on one list leaves the other list alone
    let o = tester(dir.path()).output(&["held", "discard", "--all", "dev"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(state(&conn, b).0, "discarded");
    assert_eq!(state(&conn, c).0, "held");
    assert!(mail_to(&conn, "bob@example.net")
        .iter()
        .all(|t| !t.contains("rejected")));
    let o = tester(dir.path()).output(&["held", "dev"]);
    assert!(stdout(&o).contains("no held posts"), "{}", stdout(&o));

    // usage errors
    let o = tester(dir.path()).output(&["held", "approve"]);
    assert_eq!(o.status.code(), Some(2));
    let o = tester(dir.path()).output(&["held", "approve", "1", "--all", "dev"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The subjects of the posts queued for distribution on `list`.
fn distributed(conn: &Connection, list: &str) -> Vec<String> {
    queued(
        conn,
        "SELECT m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
         WHERE j.kind = 'post' AND j.list = ?1 ORDER BY j.id",
        list,
        |m| m.subject().unwrap_or_default().to_string(),
    )
}

#[test]
fn approve_several_ids_and_a_whole_list() {
    let (dir, ctx) = setup();
    let now = listd::store::now();
    let (a, _) = hold(&ctx, "dev", "alice@example.net", "p-one", now - 60);
    let (b, _) = hold(&ctx, "dev", "bob@example.net", "p-two", now - 50);
    let (c, _) = hold(&ctx, "dev", "carol@example.net", "p-three", now - 40);
    let (d, _) = hold(&ctx, "ops", "dave@example.net", "p-four", now - 30);
    let (e, _) = hold(&ctx, "ops", "erin@example.net", "p-five", now - 20);
    let conn = listd::store::open(&ctx.config.db_path()).unwrap();

    // two ids at once: both distributed, each once
    let o = tester(dir.path()).output(&["held", "approve", &a.to_string(), &b.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("approved: held message").count(),
        2,
        "{}",
        stdout(&o)
    );
    assert_eq!(distributed(&conn, "dev"), ["p-one", "p-two"]);
    assert_eq!(state(&conn, a).1.as_deref(), Some("cli:tester"));

    // one already done, one not: the other is still approved, exit 1 names the first
    let o = tester(dir.path()).output(&["held", "approve", &a.to_string(), &c.to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already approved by cli:tester"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("1 held post(s) were not approved"),
        "{}",
        stderr(&o)
    );
    assert_eq!(state(&conn, c).0, "approved");
    assert_eq!(distributed(&conn, "dev"), ["p-one", "p-two", "p-three"]);

    // --all LIST approves everything held there, and only there
    let (f, _) = hold(&ctx, "dev", "frank@example.net", "p-six", now - 10);
    let o = tester(dir.path()).output(&["held", "approve", "--all", "ops"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        (state(&conn, d).0.as_str(), state(&conn, e).0.as_str()),
        ("approved", "approved")
    );
    assert_eq!(distributed(&conn, "ops"), ["p-four", "p-five"]);
    assert_eq!(state(&conn, f).0, "held");
    let o = tester(dir.path()).output(&["held", "approve", "--all", "ops"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("no held posts for ops"),
        "{}",
        stdout(&o)
    );
    let o = tester(dir.path()).output(&["held", "approve", "--all", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no list `nosuch`"), "{}", stderr(&o));
    // an id that does not exist
    let o = tester(dir.path()).output(&["held", "approve", "999999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no held message 999999"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn accept_sender_and_ban_with_undo() {
    let (dir, ctx) = setup();
    let conn = listd::store::open(&ctx.config.db_path()).unwrap();
    let o = tester(dir.path()).output(&["held", "accept-sender", "dev", "Alice@Example.NET"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("added to the accept list of dev"),
        "{}",
        stdout(&o)
    );
    assert!(moderation::is_accepted_sender(&conn, "dev", "Alice@example.net").unwrap());
    let o = tester(dir.path()).output(&["held", "accept-sender", "dev", "Alice@example.net"]);
    assert!(stdout(&o).contains("already"), "{}", stdout(&o));
    let o = tester(dir.path()).output(&[
        "held",
        "accept-sender",
        "dev",
        "Alice@example.net",
        "--remove",
    ]);
    assert!(stdout(&o).contains("removed"), "{}", stdout(&o));
    assert!(!moderation::is_accepted_sender(&conn, "dev", "Alice@example.net").unwrap());

    let o = tester(dir.path()).output(&["held", "ban", "dev", "spam@example.net"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(moderation::is_banned(&conn, "dev", "spam@example.net").unwrap());
    assert!(!moderation::is_banned(&conn, "ops", "spam@example.net").unwrap());
    let o = tester(dir.path()).output(&["held", "ban", "dev", "spam@example.net", "--remove"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!moderation::is_banned(&conn, "dev", "spam@example.net").unwrap());

    let o = tester(dir.path()).output(&["held", "ban", "dev", "not an address"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not an address"), "{}", stderr(&o));
    let o = tester(dir.path()).output(&["held", "ban", "nosuch", "a@example.net"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn hash_password_prints_a_verifiable_argon2_hash() {
    let (dir, _ctx) = setup();
    let o = tester(dir.path())
        .stdin("correct horse\n")
        .output(&["hash-password"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let h = stdout(&o).trim().to_string();
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(moderation::approved::verify_password(&h, "correct horse"));
    assert!(!moderation::approved::verify_password(
        &h,
        "correct horse\n"
    ));
    // the hash passes `listd check` as a moderator_password
    std::fs::write(
        dir.path().join("lists/dev.yaml"),
        format!("owners: [owner@example.org]\nmoderator_password: '{h}'\n"),
    )
    .unwrap();
    let o = tester(dir.path()).output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = tester(dir.path()).stdin("\n").output(&["hash-password"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
}

#[test]
fn check_warns_about_missing_moderation_templates() {
    let (dir, _ctx) = setup();
    let o = tester(dir.path()).output(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("moderation templates missing"),
        "{}",
        stderr(&o)
    );
    // a templates dir without the moderation templates
    let empty = dir.path().join("empty-templates");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        dir.path().join("listd.yaml"),
        format!("domain: {DOMAIN}\ntemplates_dir: {}\n", empty.display()),
    )
    .unwrap();
    let o = tester(dir.path()).output(&["check"]);
    let e = stderr(&o);
    assert!(
        e.contains(
            "moderation templates for `dev` are missing (moderation-notice, moderation-held"
        ),
        "{e}"
    );
}
