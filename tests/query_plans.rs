//! Cost stays flat as history grows: every statement the message path runs
//! is an index seek. The in-process daemon is driven over real SMTP through
//! every handler (a robot subscription and its confirmation, posts fanned
//! out to members and a digest, a held post approved by a moderator's reply,
//! the owners' alias, a VERP bounce that disables its member, the
//! bounce pass, EXPN) while `store::trace_statements`
//! records each statement its connections run. Each is then explained with
//! `EXPLAIN QUERY PLAN`, and the test fails on a `SCAN` of any table that
//! grows with history.

mod common;

use common::sink::Sink;
use common::*;
use listd::store::members::DeliveryMode;
use mail_parser::MessageParser;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

const D: &str = "lists.example.org";
const WAIT: Duration = Duration::from_secs(20);

/// Tables whose rows accumulate with mail, members or time.
const GROWING: &[&str] = &[
    "messages",
    "incoming",
    "jobs",
    "batches",
    "job_rcpts",
    "members",
    "archive_index",
    "held",
    "tokens",
    "requests",
    "digest_entries",
    "digest_issues",
    "digest_jobs",
    "bounces",
    "bounce_scores",
    "bounce_events",
    "mod_log",
    "rate_events",
    "robot_replies",
];

/// Statements allowed to scan, each with why: they run off the message path
/// (the hourly retention clean-up), are bounded by what they delete, or
/// are this test's own look-ups.
const ALLOWED: &[(&str, &str)] = &[
    (
        "INSERT INTO archive_months(list, month, posts)\n    SELECT",
        "migration 0076's one-time backfill, when the store is created",
    ),
    (
        "DELETE FROM digest_entries WHERE id IN (",
        "retention, hourly, in steps",
    ),
    (
        "DELETE FROM digest_jobs WHERE id IN (",
        "retention, hourly, in steps",
    ),
    (
        "DELETE FROM rate_events WHERE id < COALESCE(",
        "walks ids in time order and stops at the first recent row: each row it reads but one is deleted",
    ),
    ("SELECT COUNT(*) FROM members WHERE address = ", "this test's own check"),
    (
        "SELECT COUNT(*) FROM bounce_scores WHERE disabled_at",
        "this test's own check",
    ),
    ("SELECT COUNT(*) FROM incoming WHERE state = ", "this test's own check"),
    ("-- ", "a trigger's trace line"),
    (
        "INSERT INTO member_counts(list, n) SELECT list, COUNT(*) FROM members",
        "migration 0077's one-time count of the members a store already has",
    ),
];

static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn record(sql: &str) {
    SEEN.lock().unwrap().insert(sql.trim().to_string());
}

fn subject(data: &[u8]) -> String {
    MessageParser::default()
        .parse(data)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// The table an alias (`FROM digest_entries e`) stands for in `sql`, or
/// the name itself.
fn aliased<'a>(sql: &'a str, name: &'a str) -> &'a str {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    for w in words.windows(3) {
        let kw = w[0].to_ascii_uppercase();
        if (kw == "FROM" || kw == "JOIN") && (w[2] == name) {
            return w[1];
        }
        if w[1].eq_ignore_ascii_case("AS") && w[2] == name {
            return w[0];
        }
    }
    name
}

#[test]
fn aliases_resolve_to_their_tables() {
    let sql = "SELECT e.id FROM digest_entries e JOIN messages AS m ON m.id = e.message_id";
    assert_eq!(aliased(sql, "e"), "digest_entries");
    assert_eq!(aliased(sql, "m"), "messages");
    assert_eq!(aliased(sql, "held"), "held");
}

#[tokio::test]
async fn every_statement_on_the_message_path_is_an_index_seek() {
    listd::store::trace_statements(record);
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set("smtp", "trusted_networks", "[\"127.0.0.0/8\"]")
        // one hard bounce disables: the disable path (notices, token) runs too
        .set("bounce", "threshold", "1")
        .list(
            "dev",
            "owners: [owner@example.org]\nposting: members\nverp: true\nexpn: anyone\ndigest:\n  max_messages: 1\n",
        )
        .list(
            "mod",
            "owners: [owner@example.org]\nmoderators: [moderator@example.org]\nposting: moderated\n",
        )
        .build();
    env.add_members("dev", &["reader@example.org"]);
    env.add_members_mode("dev", &["digester@example.org"], DeliveryMode::DigestMime);
    env.add_members("mod", &["reader@example.org"]);
    let d = env.start().await;
    let addr = d.smtp_addr();
    let to = |who: &'static str| {
        let sink = &sink;
        move || {
            sink.transactions()
                .iter()
                .filter(|t| t.rcpts.iter().any(|r| r == who))
                .count()
        }
    };

    // the robot: subscribe, then confirm with the mailed token
    send(
        addr,
        "new@example.org",
        &[&format!("dev-request@{D}")],
        &message(
            "new@example.org",
            &format!("dev-request@{D}"),
            "",
            "subscribe dev",
        ),
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || to("new@example.org")() >= 1).await,
        "no confirmation request: {:?} {:?}",
        sink.transactions(),
        env.store()
            .query_row("SELECT (SELECT group_concat(kind || ':' || state || ':' || env_from, ',') FROM jobs) || ' / ' || (SELECT count(*) FROM batches) || ' / ' || (SELECT group_concat(rcpt || ':' || state || ':' || COALESCE(last_reply,''), ',') FROM job_rcpts)", [], |r| r.get::<_, Option<String>>(0))
    );
    let ask = sink.transactions().last().unwrap().data.clone();
    let token = subject(&ask).split_whitespace().last().unwrap().to_string();
    send(
        addr,
        "new@example.org",
        &[&format!("dev-request@{D}")],
        &message(
            "new@example.org",
            &format!("dev-request@{D}"),
            "",
            &format!("confirm {token}"),
        ),
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || to("new@example.org")() >= 2).await,
        "no welcome"
    );
    assert!(
        wait_until(WAIT, || env.count("members", "address = 'new@example.org'")
            == 1)
        .await,
        "the confirmation did not subscribe"
    );

    // a post: fan-out (VERP) to two members and a MIME digest of one post
    let list = format!("dev@{D}");
    send(
        addr,
        "reader@example.org",
        &[&list],
        &message("reader@example.org", &list, "a post", "hello"),
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || to("digester@example.org")() >= 1
            && to("new@example.org")() >= 3)
        .await,
        "post or digest missing"
    );

    // a held post, approved by the moderator's reply to its moderate address
    let modl = format!("mod@{D}");
    send(
        addr,
        "reader@example.org",
        &[&modl],
        &message("reader@example.org", &modl, "needs approval", "hi"),
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || to("moderator@example.org")() >= 1).await,
        "no moderator notice"
    );
    let notice = sink
        .transactions()
        .into_iter()
        .find(|t| t.rcpts.iter().any(|r| r == "moderator@example.org"))
        .expect("a notice to the moderator");
    let text = MessageParser::default()
        .parse(&notice.data)
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default();
    let approve = text
        .split(|c: char| c.is_whitespace() || "<>()".contains(c))
        .find(|w| w.starts_with("mod-moderate+") && w.contains('@'))
        .expect("a moderate address in the notice")
        .to_string();
    send(
        addr,
        "moderator@example.org",
        &[&approve],
        &message("moderator@example.org", &approve, "Re: approve", "approve"),
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || to("reader@example.org")() >= 2).await,
        "the approved post was not sent"
    );

    // the owners' alias, a bounce through VERP, EXPN
    send(
        addr,
        "someone@example.org",
        &[&format!("dev-owner@{D}")],
        &message(
            "someone@example.org",
            &format!("dev-owner@{D}"),
            "hi owner",
            "x",
        ),
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || to("owner@example.org")() >= 1).await,
        "no owner forward"
    );
    send(
        addr,
        "",
        &[&format!("dev-bounces+reader=example.org@{D}")],
        "From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail\r\n\r\n550 5.1.1 no such user\r\n",
    )
    .await
    .expect(250);
    assert!(
        wait_until(WAIT, || env
            .count("bounce_scores", "disabled_at IS NOT NULL")
            == 1)
        .await,
        "the VERP bounce did not disable the member"
    );
    let mut c = SmtpClient::connect_ehlo(addr).await;
    c.cmd(&format!("EXPN {list}")).await.expect(250);
    c.quit().await;
    assert!(wait_until(WAIT, || env.count("incoming", "state = 'incoming'") == 0).await);
    d.shutdown().await;

    // explain every statement seen
    let seen: Vec<String> = SEEN.lock().unwrap().iter().cloned().collect();
    assert!(seen.len() > 40, "too few statements traced: {}", seen.len());
    let conn = env.store();
    let mut scans = Vec::new();
    for sql in &seen {
        let upper = sql.to_ascii_uppercase();
        let first = upper.split_whitespace().next().unwrap_or("");
        if !matches!(first, "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH")
            || ALLOWED.iter().any(|(p, _)| sql.starts_with(p))
        {
            continue;
        }
        let Ok(mut stmt) = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")) else {
            continue; // a statement on a temporary object
        };
        let count = stmt.parameter_count();
        let nulls = vec![rusqlite::types::Null; count];
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(nulls.iter()), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for step in plan {
            let Some(table) = step.strip_prefix("SCAN ") else {
                continue;
            };
            let name = table.split_whitespace().next().unwrap_or("");
            if GROWING.contains(&name) || GROWING.contains(&aliased(sql, name)) {
                scans.push(format!("{step}\n    in: {sql}"));
            }
        }
    }
    assert!(
        scans.is_empty(),
        "statements on the message path scan a growing table:\n{}",
        scans.join("\n")
    );
}

/// The web archive's statements (months, a month by date or author,
/// threads, one message and its neighbours, the newest posts, search):
/// each an index seek or range on `archive_index` and `archive_months`,
/// never a scan, never a sort of a whole month or list.
#[test]
fn the_web_archive_pages_are_index_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let conn = listd::store::open(&dir.path().join("plans.db")).unwrap();
    for sql in listd::web::archive_service::STATEMENTS {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(nulls.iter()), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!plan.is_empty(), "{sql}");
        for step in &plan {
            let scan = step.starts_with("SCAN ") && !step.contains("VIRTUAL TABLE");
            assert!(
                !scan && !step.contains("TEMP B-TREE"),
                "{step}\n    in: {sql}\n    plan: {plan:?}"
            );
        }
        assert!(
            plan.iter()
                .any(|s| s.starts_with("SEARCH ") || s.contains("VIRTUAL TABLE")),
            "no index used: {plan:?}\n    in: {sql}"
        );
    }
}
