//! Digests end to end at the library level: real SQLite files in temp dirs,
//! posts recorded the way `posts::distribute` records them, issues
//! closed by the count, size and schedule triggers with a faked clock, and
//! the queued digests parsed back with mail-parser.

mod common;

use common::{Listd, DOMAIN};
use listd::config::{Config, ListConfig};
use listd::digest::{self, build_plain, Closed, Trigger};
use listd::handler::Ctx;
use listd::store::{self, members, members::DeliveryMode, rusqlite::Connection};
use listd::templates::Templates;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::sync::Arc;

/// Monday 2024-06-03 00:00:00 UTC.
const MON: i64 = 1_717_372_800;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

struct Env {
    _dir: tempfile::TempDir,
    ctx: Ctx,
    conn: Connection,
    seq: usize,
}

/// A site with the given lists (name, YAML) and small test templates.
fn env(lists: &[(&str, &str)]) -> Env {
    env_cfg(lists, |_| {})
}

fn env_cfg(lists: &[(&str, &str)], tweak: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(DOMAIN, dir.path());
    tweak(&mut config);
    config.templates_dir = dir.path().join("templates");
    std::fs::create_dir_all(&config.templates_dir).unwrap();
    std::fs::write(
        config.templates_dir.join("digest-header.hbs"),
        "Header for {{list}}, issue {{issue}}\n",
    )
    .unwrap();
    std::fs::write(
        config.templates_dir.join("digest-footer.hbs"),
        "Footer of {{list}}\n",
    )
    .unwrap();
    for (name, yaml) in lists {
        let path = dir.path().join(format!("lists/{name}.yaml"));
        let l = ListConfig::parse(&path, name, yaml).unwrap();
        config.lists.insert(name.to_string(), l);
    }
    let conn = store::open(&config.db_path()).unwrap();
    Env {
        _dir: dir,
        ctx: common::ctx_for(config),
        conn,
        seq: 0,
    }
}

fn post_bytes(n: usize, from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Received: from mx.example.org by lists.example.org; Sun, 2 Jun 2024 10:00:00 +0000\r\n\
         Date: Sun, 2 Jun 2024 10:00:{:02} +0000\r\n\
         From: {from}\r\n\
         To: dev@lists.example.org\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{n}@example.org>\r\n\
         List-Id: <dev.lists.example.org>\r\n\
         \r\n\
         {body}\r\n",
        n % 60
    )
    .into_bytes()
}

impl Env {
    fn list(&self, name: &str) -> &ListConfig {
        self.ctx.config.list(name).unwrap()
    }

    fn member(&self, list: &str, addr: &str, mode: DeliveryMode) {
        let a = listd::address::Address::parse(addr).unwrap();
        assert!(members::add(&self.conn, list, &a.to_string(), &a.key(), None, mode, MON).unwrap());
    }

    fn set_mode(&self, list: &str, addr: &str, mode: DeliveryMode) {
        let a = listd::address::Address::parse(addr).unwrap();
        assert!(members::set_mode(&self.conn, list, &a.key(), mode).unwrap());
    }

    /// Records a post as distribute does: the as-distributed bytes stored
    /// once, then `digest::accumulate` in the same transaction. Returns the
    /// trigger that marked the issue due, if one fired.
    fn distribute_raw(&mut self, list: &str, bytes: &[u8], now: i64) -> Option<Trigger> {
        let ctx = self.ctx.clone();
        let cfg = ctx.config.list(list).unwrap();
        let tx = self.conn.transaction().unwrap();
        let env_from = format!("{list}-bounces@{DOMAIN}");
        let id = store::spool::insert_outbound(&tx, &env_from, bytes, now).unwrap();
        let due = digest::accumulate(&tx, cfg, id, now).unwrap();
        tx.commit().unwrap();
        due
    }

    /// [`Env::distribute_raw`] for a post that fires a trigger: the post's
    /// transaction only marks the issue due (no issue, no digest job), then
    /// the digest worker's `close_due` closes it in its own transaction.
    fn distribute_raw_closing(&mut self, list: &str, bytes: &[u8], now: i64) -> Closed {
        let issues = self.count("SELECT COUNT(*) FROM digest_issues");
        let jobs = self.count("SELECT COUNT(*) FROM jobs WHERE kind = 'digest'");
        let trigger = self
            .distribute_raw(list, bytes, now)
            .expect("the post fires a trigger");
        assert_eq!(self.due(list), Some(trigger.as_str().to_string()));
        assert_eq!(self.count("SELECT COUNT(*) FROM digest_issues"), issues);
        assert_eq!(
            self.count("SELECT COUNT(*) FROM jobs WHERE kind = 'digest'"),
            jobs,
            "the post's transaction built no digest"
        );
        let ctx = self.ctx.clone();
        let mut closed = digest::close_due(&ctx, &mut self.conn, now);
        assert_eq!(closed.len(), 1, "the worker closes the due issue");
        assert_eq!(self.due(list), None, "closing clears the mark");
        let c = closed.pop().unwrap();
        assert_eq!((c.list.as_str(), c.trigger), (list, trigger));
        c
    }

    fn next_post(&mut self, subject: &str) -> Vec<u8> {
        self.seq += 1;
        post_bytes(
            self.seq,
            "Ann Example <ann@example.org>",
            subject,
            "Hello list.",
        )
    }

    fn distribute(&mut self, list: &str, subject: &str, now: i64) -> Option<Trigger> {
        let b = self.next_post(subject);
        self.distribute_raw(list, &b, now)
    }

    fn distribute_closing(&mut self, list: &str, subject: &str, now: i64) -> Closed {
        let b = self.next_post(subject);
        self.distribute_raw_closing(list, &b, now)
    }

    /// The list's due mark (`digest_state.due`).
    fn due(&self, list: &str) -> Option<String> {
        self.conn
            .query_row(
                "SELECT due FROM digest_state WHERE list = ?1",
                [list],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn tick(&mut self, now: i64) -> Vec<Closed> {
        let ctx = self.ctx.clone();
        digest::tick(&ctx, &mut self.conn, now)
    }

    /// The bodies queued for an issue: (format, bytes, recipients).
    fn sent(&self, issue_id: i64) -> Vec<(String, Vec<u8>, Vec<String>)> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.format, m.bytes, d.job_id FROM digest_jobs d JOIN messages m ON m.id = d.message_id
                 WHERE d.issue_id = ?1 ORDER BY d.id",
            )
            .unwrap();
        let rows: Vec<(String, Vec<u8>, i64)> = stmt
            .query_map([issue_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.into_iter()
            .map(|(f, b, job)| {
                let mut s = self
                    .conn
                    .prepare("SELECT rcpts FROM batches WHERE job_id = ?1")
                    .unwrap();
                let mut rcpts: Vec<String> = s
                    .query_map([job], |r| r.get::<_, String>(0))
                    .unwrap()
                    .map(|r| r.unwrap())
                    .flat_map(|b| b.split('\n').map(str::to_string).collect::<Vec<_>>())
                    .collect();
                rcpts.sort();
                (f, b, rcpts)
            })
            .collect()
    }

    fn pending(&self, list: &str) -> i64 {
        digest::pending(&self.conn, list).unwrap().posts
    }

    fn count(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Every recorded entry is either pending or in exactly one issue that
    /// exists and has its bodies queued (when it has recipients).
    fn check_invariant(&self) {
        assert_eq!(
            self.count(
                "SELECT COUNT(*) FROM digest_entries e
                 WHERE e.issue_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM digest_issues i WHERE i.id = e.issue_id)"
            ),
            0,
            "entries assigned to a missing issue"
        );
        assert_eq!(
            self.count(
                "SELECT COUNT(*) FROM digest_issues i
                 WHERE i.posts <> (SELECT COUNT(*) FROM digest_entries e WHERE e.issue_id = i.id)"
            ),
            0,
            "an issue's post count differs from its entries"
        );
        assert_eq!(
            self.count(
                "SELECT COUNT(*) FROM digest_jobs d
                 WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.job_id)
                    OR d.recipients <> (SELECT SUM(n) FROM batches b WHERE b.job_id = d.job_id)"
            ),
            0,
            "a digest body without its job or recipients"
        );
        assert_eq!(
            self.count(
                "SELECT COUNT(*) FROM jobs j WHERE kind = 'digest'
                 AND NOT EXISTS (SELECT 1 FROM digest_jobs d WHERE d.job_id = j.id)"
            ),
            0,
            "a digest job not tied to an issue"
        );
    }
}

const DEV: &str = "description: Development\nsubject_prefix: \"[dev]\"\ndigest:\n  max_messages: 3\n  max_bytes: 1000000\n  schedule: none\n";

fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(bytes)
        .expect("digest parses")
}

fn boundary_of(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type()
        .and_then(|c| c.attribute("boundary"))
        .expect("boundary")
        .to_string()
}

// ---------------------------------------------------------------- triggers

#[test]
fn count_trigger_closes_at_max_messages() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    e.member("dev", "plain@example.org", DeliveryMode::DigestPlain);
    e.member("dev", "each@example.org", DeliveryMode::Each);
    e.member("dev", "off@example.org", DeliveryMode::NoMail);
    assert!(e.distribute("dev", "one", MON).is_none());
    assert!(e.distribute("dev", "two", MON + 1).is_none());
    assert_eq!(e.pending("dev"), 2);
    let c = e.distribute_closing("dev", "three", MON + 2);
    assert_eq!(c.trigger, Trigger::Count);
    assert_eq!((c.volume, c.issue, c.posts), (1, 1, 3));
    assert_eq!((c.mime_rcpts, c.plain_rcpts), (1, 1));
    assert_eq!(e.pending("dev"), 0);
    let sent = e.sent(c.issue_id);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].0, "mime");
    assert_eq!(sent[0].2, vec!["mime@example.org".to_string()]);
    assert_eq!(sent[1].0, "plain");
    assert_eq!(sent[1].2, vec!["plain@example.org".to_string()]);
    // the job is the list's: envelope from NAME-bounces, kind digest
    let (kind, env_from): (String, String) = e
        .conn
        .query_row(
            "SELECT kind, env_from FROM jobs WHERE id = ?1",
            [c.jobs[0]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "digest");
    assert_eq!(env_from, "dev-bounces@lists.example.org");
    // the next posts start issue 2
    e.distribute("dev", "four", MON + 3);
    e.distribute("dev", "five", MON + 4);
    let c2 = e.distribute_closing("dev", "six", MON + 5);
    assert_eq!((c2.volume, c2.issue), (1, 2));
    e.check_invariant();
}

#[test]
fn size_trigger_closes_at_max_bytes() {
    let mut e = env(&[(
        "dev",
        "digest:\n  max_messages: 100\n  max_bytes: 10000\n  schedule: none\n",
    )]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    let big = "x".repeat(3900);
    let p = |n| post_bytes(n, "ann@example.org", "big", &big);
    assert!(e.distribute_raw("dev", &p(1), MON).is_none());
    assert!(e.distribute_raw("dev", &p(2), MON).is_none());
    let s = digest::pending(&e.conn, "dev").unwrap();
    assert!(s.bytes > 8000 && s.bytes < 10000, "{s:?}");
    let c = e.distribute_raw_closing("dev", &p(3), MON);
    assert_eq!(c.trigger, Trigger::Size);
    assert_eq!(c.posts, 3);
    assert!(c.bytes >= 10000);
    e.check_invariant();
}

#[test]
fn daily_schedule_with_a_faked_clock() {
    let mut e = env(&[(
        "dev",
        "digest:\n  max_messages: 100\n  schedule: daily 06:00\n",
    )]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    // the list's state starts at 05:00: 06:00 today is the first due time
    e.distribute("dev", "early", MON + 5 * HOUR);
    e.distribute("dev", "earlier", MON + 5 * HOUR + 60);
    assert!(e.tick(MON + 6 * HOUR - 1).is_empty(), "05:59:59 is not due");
    let c = e.tick(MON + 6 * HOUR);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].trigger, Trigger::Schedule);
    assert_eq!(c[0].posts, 2);
    assert!(
        e.tick(MON + 6 * HOUR + 30).is_empty(),
        "once per scheduled time"
    );
    e.distribute("dev", "later", MON + 7 * HOUR);
    assert!(e.tick(MON + 23 * HOUR).is_empty());
    // the daemon was down at 06:00 next day: the tick after catches up once
    let c = e.tick(MON + DAY + 9 * HOUR);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].issue, c[0].posts), (2, 1));
    assert!(e.tick(MON + DAY + 10 * HOUR).is_empty());
    // nothing pending and send_empty off: the schedule passes without an issue
    assert!(e.tick(MON + 2 * DAY + 6 * HOUR).is_empty());
    e.check_invariant();
}

#[test]
fn weekly_schedule_and_send_empty() {
    let mut e = env(&[
        (
            "ann",
            "digest:\n  schedule: weekly Mon 08:00\n  send_empty: true\n",
        ),
        ("quiet", "digest:\n  schedule: weekly mon 08:00\n"),
    ]);
    e.member("ann", "mime@example.org", DeliveryMode::DigestMime);
    e.member("quiet", "mime@example.org", DeliveryMode::DigestMime);
    // state created Sunday; Monday 08:00 is the first due time
    assert!(e.tick(MON - DAY).is_empty());
    assert!(e.tick(MON + 7 * HOUR).is_empty());
    let c = e.tick(MON + 8 * HOUR);
    assert_eq!(c.len(), 1, "only the send_empty list sends an empty issue");
    assert_eq!(
        (c[0].list.as_str(), c[0].posts, c[0].mime_rcpts),
        ("ann", 0, 1)
    );
    let sent = e.sent(c[0].issue_id);
    let msg = parse(&sent[0].1);
    let front = msg.body_text(0).unwrap();
    assert!(front.contains("(no posts in this issue)"), "{front}");
    // a week later, with a post on the quiet list
    e.distribute("quiet", "news", MON + 2 * DAY);
    assert!(e.tick(MON + 6 * DAY).is_empty());
    let c = e.tick(MON + 7 * DAY + 8 * HOUR + 5);
    let lists: Vec<&str> = c.iter().map(|c| c.list.as_str()).collect();
    assert_eq!(lists, ["ann", "quiet"]);
    e.check_invariant();
}

#[test]
fn volume_rolls_over_with_the_period() {
    let dec = 1_735_603_200; // 2024-12-31 00:00 UTC
    let jan = dec + DAY; // 2025-01-01
    let feb = 1_738_368_000; // 2025-02-01
    let mut e = env(&[
        (
            "y",
            "digest:\n  max_messages: 1\n  volume_period: yearly\n  schedule: none\n",
        ),
        (
            "m",
            "digest:\n  max_messages: 1\n  volume_period: monthly\n  schedule: none\n",
        ),
        (
            "n",
            "digest:\n  max_messages: 1\n  volume_period: never\n  schedule: none\n",
        ),
    ]);
    let mut got = |list: &str, now: i64| {
        let c = e.distribute_closing(list, "p", now);
        (c.volume, c.issue)
    };
    assert_eq!(got("y", dec), (1, 1));
    assert_eq!(got("y", dec + 60), (1, 2));
    assert_eq!(got("y", jan), (2, 1));
    assert_eq!(got("y", feb), (2, 2));
    assert_eq!(got("m", dec), (1, 1));
    assert_eq!(got("m", jan), (2, 1));
    assert_eq!(got("m", jan + 60), (2, 2));
    assert_eq!(got("m", feb), (3, 1));
    assert_eq!(got("n", dec), (1, 1));
    assert_eq!(got("n", jan), (1, 2));
    assert_eq!(got("n", feb), (1, 3));
    // both persist: a fresh connection continues the numbering
    let path = e.ctx.config.db_path();
    e.conn = store::open(&path).unwrap();
    let c = e.distribute_closing("y", "p", feb + 60);
    assert_eq!((c.volume, c.issue), (2, 3));
    e.check_invariant();
}

#[test]
fn disabled_digests_record_nothing() {
    let mut e = env(&[("dev", "digest:\n  enabled: false\n")]);
    assert!(e.distribute("dev", "p", MON).is_none());
    assert_eq!(e.pending("dev"), 0);
    let ctx = e.ctx.clone();
    let err = digest::send_now(&ctx, &mut e.conn, "dev", MON).unwrap_err();
    assert!(err.to_string().contains("disabled"), "{err}");
    let err = digest::send_now(&ctx, &mut e.conn, "nope", MON).unwrap_err();
    assert!(err.to_string().contains("no list named `nope`"), "{err}");
    assert!(e.tick(MON + 7 * DAY).is_empty());
}

/// Posts pending when digests are turned off were never sent to digest
/// members (they were skipped at fan-out): the next tick sends them in a
/// last issue instead of keeping them until digests are turned back on.
#[test]
fn turning_digests_off_sends_what_is_pending() {
    let mut e = env(&[("dev", "digest:\n  max_messages: 50\n  schedule: none\n")]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    e.distribute("dev", "kept", MON);
    e.distribute("dev", "also kept", MON + 1);
    assert!(e.tick(MON + 2).is_empty(), "no trigger fired yet");
    assert_eq!(e.pending("dev"), 2);
    let mut off = (*e.ctx.config).clone();
    off.lists.get_mut("dev").unwrap().digest.enabled = false;
    let ctx_off = Ctx {
        config: Arc::new(off),
        templates: e.ctx.templates.clone(),
    };
    let closed = digest::tick(&ctx_off, &mut e.conn, MON + 3);
    assert_eq!(closed.len(), 1, "one last issue");
    let c = &closed[0];
    assert_eq!((c.posts, c.mime_rcpts, c.issue), (2, 1, 1));
    assert_eq!(e.pending("dev"), 0);
    let sent = e.sent(c.issue_id);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].2, ["mime@example.org"]);
    let m = parse(&sent[0].1);
    let toc = m.body_text(0).unwrap();
    assert!(toc.contains("kept") && toc.contains("also kept"), "{toc}");
    assert!(
        digest::tick(&ctx_off, &mut e.conn, MON + 4).is_empty(),
        "nothing more while disabled"
    );
    e.check_invariant();
}

#[test]
fn forced_send_and_status() {
    let mut e = env(&[(
        "dev",
        "digest:\n  max_messages: 50\n  schedule: daily 06:00\n",
    )]);
    e.member("dev", "plain@example.org", DeliveryMode::DigestPlain);
    let ctx = e.ctx.clone();
    assert!(
        digest::send_now(&ctx, &mut e.conn, "dev", MON)
            .unwrap()
            .is_none(),
        "nothing pending"
    );
    e.distribute("dev", "a", MON);
    e.distribute("dev", "b", MON + 1);
    let st = digest::status(&e.conn, e.list("dev"), MON + 2).unwrap();
    assert_eq!(st.pending.posts, 2);
    assert!(st.pending.bytes > 0);
    assert_eq!((st.volume, st.last_issue), (1, 0));
    assert_eq!(st.next_scheduled, Some(MON + 6 * HOUR));
    assert_eq!((st.mime_members, st.plain_members), (0, 1));
    let c = digest::send_now(&ctx, &mut e.conn, "dev", MON + 3)
        .unwrap()
        .unwrap();
    assert_eq!((c.trigger, c.posts, c.plain_rcpts), (Trigger::Forced, 2, 1));
    let st = digest::status(&e.conn, e.list("dev"), MON + 4).unwrap();
    assert_eq!(
        (st.pending.posts, st.last_issue, st.last_sent_at),
        (0, 1, Some(MON + 3))
    );
    e.check_invariant();
}

// ---------------------------------------------------------------- formats

#[test]
fn mime_digest_parses_back() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    let posts = vec![
        post_bytes(
            1,
            "Ann Example <ann@example.org>",
            "First post",
            "Hello list.",
        ),
        // a post that is itself MIME, with its own boundary
        "From: bob@example.org\r\nTo: dev@lists.example.org\r\nSubject: With parts\r\n\
             Message-ID: <2@example.org>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"inner-b\"\r\n\r\n\
             --inner-b\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
             --inner-b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--inner-b--\r\n"
            .to_string()
            .into_bytes(),
        // a post without a final line break
        b"From: carol@example.org\r\nSubject: Last\r\n\r\nno newline at end".to_vec(),
    ];
    let (last, first) = posts.split_last().unwrap();
    for p in first {
        assert_eq!(e.distribute_raw("dev", p, MON), None);
    }
    let c = e.distribute_raw_closing("dev", last, MON);
    let sent = e.sent(c.issue_id);
    assert_eq!(sent.len(), 1);
    let raw = &sent[0].1;
    let msg = parse(raw);
    assert_eq!(msg.subject(), Some("dev Digest, Vol 1, Issue 1"));
    assert_eq!(
        msg.from().unwrap().first().unwrap().address(),
        Some("dev-request@lists.example.org")
    );
    assert_eq!(
        msg.header_raw("List-Id").map(str::trim),
        Some("Development <dev.lists.example.org>")
    );
    assert!(msg.header_raw("List-Unsubscribe").is_some());

    let root = &msg.parts[0];
    let ct = root.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("mixed")));
    let PartType::Multipart(children) = &root.body else {
        panic!("root is not multipart")
    };
    assert_eq!(children.len(), 3, "front, digest, footer");
    let front = &msg.parts[children[0] as usize];
    assert_eq!(front.content_type().unwrap().subtype(), Some("plain"));
    let front_text = front.text_contents().unwrap();
    // the table of contents matches the posts
    assert!(
        front_text.starts_with("dev Digest    Mon, 03 Jun 2024    Volume 1 : Issue 1\r\n"),
        "{front_text}"
    );
    assert!(
        front_text.contains("Header for dev, issue 1"),
        "{front_text}"
    );
    let toc: Vec<&str> = front_text
        .lines()
        .filter(|l| l.starts_with("   "))
        .collect();
    assert_eq!(
        toc,
        [
            "   1. First post (Ann Example)",
            "   2. With parts (bob@example.org)",
            "   3. Last (carol@example.org)"
        ]
    );
    let dig = &msg.parts[children[1] as usize];
    let dct = dig.content_type().unwrap();
    assert_eq!((dct.ctype(), dct.subtype()), ("multipart", Some("digest")));
    let PartType::Multipart(posts_ids) = &dig.body else {
        panic!("digest part is not multipart")
    };
    assert_eq!(posts_ids.len(), 3);
    for (id, original) in posts_ids.iter().zip(&posts) {
        let part = &msg.parts[*id as usize];
        // no Content-Type on the part: message/rfc822 by default
        assert!(part.content_type().is_none(), "a part has a Content-Type");
        assert!(part.headers.is_empty(), "a part has headers");
        let PartType::Message(inner) = &part.body else {
            panic!("part is not message/rfc822")
        };
        assert_eq!(inner.raw_message(), &original[..], "post bytes changed");
    }
    let footer = &msg.parts[children[2] as usize];
    assert_eq!(footer.text_contents().unwrap().trim_end(), "Footer of dev");

    // boundaries: unique, in no post, closing delimiters present
    let outer = boundary_of(root);
    let inner = boundary_of(dig);
    assert_ne!(outer, inner);
    assert!(!outer.contains(&inner) && !inner.contains(&outer));
    for p in &posts {
        let s = String::from_utf8_lossy(p);
        assert!(!s.contains(&outer) && !s.contains(&inner));
    }
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains(&format!("\r\n--{inner}--\r\n")));
    assert!(text.ends_with(&format!("\r\n--{outer}--\r\n")));
    assert_eq!(
        text.matches(&format!("--{inner}\r\n\r\n")).count(),
        3,
        "each post right after an empty header section"
    );
    assert!(
        !text.contains("\n--inner-b--\r\n--"),
        "the enclosed multipart keeps its own boundary"
    );
}

/// The RFC 1153 layout, line by line: masthead, header text, "Today's
/// Topics:", 70 hyphens, per message only Date/From/To/Cc/Subject/
/// Message-ID/Keywords/Summary in that order, body with leading and
/// trailing blank lines removed and a 30-hyphen body line escaped, a blank
/// line before and after each 30-hyphen separator, the footer, and the
/// trailer `End of NAME Digest, Vol N, Issue M` with a line of asterisks as
/// long as it.
#[test]
fn plain_digest_follows_rfc1153_line_by_line() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "plain@example.org", DeliveryMode::DigestPlain);
    let p1 = post_bytes(
        1,
        "Ann Example <ann@example.org>",
        "First post",
        "\r\n\r\nHello list.\r\n\r\n",
    );
    let p2 = b"Received: from x\r\nX-Mailer: y\r\nKeywords: a, b\r\nSubject: Second\r\nCc: carol@example.org\r\n\
Message-ID: <2@example.org>\r\nTo: dev@lists.example.org\r\nFrom: bob@example.org\r\nSummary: two\r\n\
Date: Sun, 2 Jun 2024 11:00:00 +0000\r\n\r\nBody two\r\n------------------------------\r\nmore\r\n"
        .to_vec();
    let p3 = post_bytes(3, "dave@example.org", "Third", "3");
    e.distribute_raw("dev", &p1, MON);
    e.distribute_raw("dev", &p2, MON);
    let c = e.distribute_raw_closing("dev", &p3, MON);
    let sent = e.sent(c.issue_id);
    assert_eq!(sent[0].0, "plain");
    let msg = parse(&sent[0].1);
    assert_eq!(msg.subject(), Some("dev Digest, Vol 1, Issue 1"));
    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    let body = msg.body_text(0).unwrap().replace("\r\n", "\n");
    let sep70 = "-".repeat(70);
    let sep30 = "-".repeat(30);
    let expected = format!(
        "dev Digest    Mon, 03 Jun 2024    Volume 1 : Issue 1\n\
         \n\
         Header for dev, issue 1\n\
         \n\
         Today's Topics:\n\
         \n\
         \x20  1. First post (Ann Example)\n\
         \x20  2. Second (bob@example.org)\n\
         \x20  3. Third (dave@example.org)\n\
         \n\
         {sep70}\n\
         \n\
         Date: Sun, 2 Jun 2024 10:00:01 +0000\n\
         From: Ann Example <ann@example.org>\n\
         To: dev@lists.example.org\n\
         Subject: First post\n\
         Message-ID: <1@example.org>\n\
         \n\
         Hello list.\n\
         \n\
         {sep30}\n\
         \n\
         Date: Sun, 2 Jun 2024 11:00:00 +0000\n\
         From: bob@example.org\n\
         To: dev@lists.example.org\n\
         Cc: carol@example.org\n\
         Subject: Second\n\
         Message-ID: <2@example.org>\n\
         Keywords: a, b\n\
         Summary: two\n\
         \n\
         Body two\n\
         \x20{}\n\
         more\n\
         \n\
         {sep30}\n\
         \n\
         Date: Sun, 2 Jun 2024 10:00:03 +0000\n\
         From: dave@example.org\n\
         To: dev@lists.example.org\n\
         Subject: Third\n\
         Message-ID: <3@example.org>\n\
         \n\
         3\n\
         \n\
         {sep30}\n\
         \n\
         Footer of dev\n\
         \n\
         {sep30}\n\
         \n\
         End of dev Digest, Vol 1, Issue 1\n\
         *********************************\n",
        &sep30[1..]
    );
    let got: Vec<&str> = body.split('\n').collect();
    let want: Vec<&str> = expected.split('\n').collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "{body}");
    assert_eq!(build_plain::SEP70, sep70);
    assert_eq!(build_plain::SEP30, sep30);
    // the trailer's asterisks underline it exactly
    let end = got[got.len() - 3];
    assert_eq!(got[got.len() - 2].len(), end.len());
}

#[test]
fn non_ascii_subjects_and_authors() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    e.member("dev", "plain@example.org", DeliveryMode::DigestPlain);
    let p1 = post_bytes(
        1,
        "=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.org>",
        "=?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=",
        "Hallo",
    );
    let p2 = post_bytes(
        2,
        "=?iso-8859-1?q?Fran=E7ois?= <fr@example.org>",
        "=?utf-8?b?5pel5pys6Kqe44Gu5Lu25ZCN?=",
        "こんにちは",
    );
    let p3 = post_bytes(3, "ann@example.org", "plain ascii", "x");
    e.distribute_raw("dev", &p1, MON);
    e.distribute_raw("dev", &p2, MON);
    let c = e.distribute_raw_closing("dev", &p3, MON);
    let sent = e.sent(c.issue_id);
    let (mime, plain) = (&sent[0].1, &sent[1].1);

    let m = parse(mime);
    let PartType::Multipart(children) = &m.parts[0].body else {
        panic!()
    };
    let front = m.parts[children[0] as usize]
        .text_contents()
        .unwrap()
        .to_string();
    assert!(
        front.contains("   1. Grüße aus Köln (Jürgen Müller)"),
        "{front}"
    );
    assert!(front.contains("   2. 日本語の件名 (François)"), "{front}");
    // the enclosed posts keep their encoded headers, byte for byte
    let mime_text = String::from_utf8_lossy(mime);
    assert!(mime_text.contains("Subject: =?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"));
    assert!(mime_text.contains("From: =?iso-8859-1?q?Fran=E7ois?= <fr@example.org>\r\n"));
    let PartType::Multipart(posts) = &m.parts[children[1] as usize].body else {
        panic!()
    };
    let PartType::Message(first) = &m.parts[posts[0] as usize].body else {
        panic!()
    };
    assert_eq!(first.subject(), Some("Grüße aus Köln"));

    let p = parse(plain);
    let body = p.body_text(0).unwrap().to_string();
    assert!(
        body.contains("   1. Grüße aus Köln (Jürgen Müller)\r\n"),
        "{body}"
    );
    assert!(body.contains("   2. 日本語の件名 (François)\r\n"), "{body}");
    assert!(
        body.contains("\r\nFrom: Jürgen Müller <jm@example.org>\r\n"),
        "{body}"
    );
    assert!(body.contains("\r\nSubject: Grüße aus Köln\r\n"), "{body}");
    assert!(
        body.contains("\r\nFrom: François <fr@example.org>\r\n"),
        "{body}"
    );
    assert!(body.contains("\r\nこんにちは\r\n"), "{body}");
    assert!(!body.contains("=?utf-8?"), "{body}");
    assert_eq!(
        p.content_type().unwrap().attribute("charset"),
        Some("utf-8")
    );
}

#[test]
fn plain_digest_reduces_html_and_notes_attachments() {
    let mut e = env(&[("dev", "digest:\n  max_messages: 1\n  schedule: none\n")]);
    e.member("dev", "plain@example.org", DeliveryMode::DigestPlain);
    let post = "From: ann@example.org\r\nSubject: html\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><h1>Title</h1><p>Some <i>text</i> &amp; more</p></body></html>\r\n\
--b1\r\nContent-Type: image/png; name=\"pic.png\"\r\nContent-Disposition: attachment; filename=\"pic.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
--b1--\r\n";
    let c = e.distribute_raw_closing("dev", post.as_bytes(), MON);
    let sent = e.sent(c.issue_id);
    let p = parse(&sent[0].1);
    let body = p.body_text(0).unwrap().to_string();
    assert!(body.contains("Some text & more"), "{body}");
    assert!(!body.contains("<p>"), "{body}");
    assert!(
        body.contains("[Attachment: pic.png (image/png, 8 bytes) not included]"),
        "{body}"
    );
    assert!(!body.contains("iVBORw0KGgo"), "{body}");
}

// ---------------------------------------------------------------- members

#[test]
fn posts_from_before_a_switch_to_digest_are_not_sent_again() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "old@example.org", DeliveryMode::DigestMime);
    e.member("dev", "switcher@example.org", DeliveryMode::Each);
    e.member("dev", "leaver@example.org", DeliveryMode::DigestPlain);
    e.distribute("dev", "one", MON); // switcher got this one by itself
                                     // switcher goes to digests, leaver back to one mail per post
    e.set_mode("dev", "switcher@example.org", DeliveryMode::DigestMime);
    e.set_mode("dev", "leaver@example.org", DeliveryMode::Each);
    e.distribute("dev", "two", MON + 1);
    let c = e.distribute_closing("dev", "three", MON + 2);
    let sent = e.sent(c.issue_id);
    let subjects = |bytes: &[u8]| -> Vec<String> {
        let m = parse(bytes);
        if m.content_type().is_some_and(|c| c.ctype() == "text") {
            let body = m.body_text(0).unwrap().to_string();
            return body
                .lines()
                .filter(|l| l.starts_with("Subject: "))
                .map(|l| l[9..].to_string())
                .collect();
        }
        let PartType::Multipart(ch) = &m.parts[0].body else {
            panic!()
        };
        let PartType::Multipart(posts) = &m.parts[ch[1] as usize].body else {
            panic!()
        };
        posts
            .iter()
            .map(|i| match &m.parts[*i as usize].body {
                PartType::Message(inner) => inner.subject().unwrap().to_string(),
                _ => panic!(),
            })
            .collect()
    };
    let mut got: Vec<(String, Vec<String>, Vec<String>)> = sent
        .iter()
        .map(|(f, b, r)| (f.clone(), r.clone(), subjects(b)))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "mime".into(),
                vec!["old@example.org".into()],
                vec!["one".into(), "two".into(), "three".into()]
            ),
            (
                "mime".into(),
                vec!["switcher@example.org".into()],
                vec!["two".into(), "three".into()]
            ),
            // one last digest with what was pending when the leaver left
            (
                "plain".into(),
                vec!["leaver@example.org".into()],
                vec!["one".into()]
            ),
        ]
    );
    assert_eq!((c.mime_rcpts, c.plain_rcpts), (2, 1));
    // the leaver owes nothing more
    assert_eq!(e.count("SELECT COUNT(*) FROM digest_leavers"), 0);
    e.distribute("dev", "four", MON + 3);
    e.distribute("dev", "five", MON + 4);
    let c = e.distribute_closing("dev", "six", MON + 5);
    let rcpts: Vec<String> = e.sent(c.issue_id).into_iter().flat_map(|s| s.2).collect();
    assert_eq!(rcpts, ["old@example.org", "switcher@example.org"]);
    e.check_invariant();
}

#[test]
fn recipients_are_batched_by_domain_like_a_fan_out() {
    let mut e = env_cfg(&[("dev", DEV)], |c| c.relay.max_recipients = 2);
    for a in [
        "a@one.example",
        "b@one.example",
        "c@ONE.example",
        "d@two.example",
        "e@one.example",
    ] {
        e.member("dev", a, DeliveryMode::DigestMime);
    }
    for s in ["a", "b"] {
        e.distribute("dev", s, MON);
    }
    let c = e.distribute_closing("dev", "c", MON);
    assert_eq!(c.mime_rcpts, 5);
    let mut stmt = e
        .conn
        .prepare(
            "SELECT domain, n, rcpts, state FROM batches WHERE job_id = ?1 ORDER BY domain, id",
        )
        .unwrap();
    let rows: Vec<(String, i64, String, String)> = stmt
        .query_map([c.jobs[0]], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "one.example".into(),
                2,
                "a@one.example\nb@one.example".into(),
                "active".into()
            ),
            (
                "one.example".into(),
                2,
                "c@one.example\ne@one.example".into(),
                "active".into()
            ),
            (
                "two.example".into(),
                1,
                "d@two.example".into(),
                "active".into()
            ),
        ]
    );
    e.check_invariant();
}

#[test]
fn disabled_and_nomail_members_get_no_digest() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "ok@example.org", DeliveryMode::DigestMime);
    e.member("dev", "bouncing@example.org", DeliveryMode::DigestMime);
    let a = listd::address::Address::parse("bouncing@example.org").unwrap();
    members::set_disabled(&e.conn, "dev", &a.key(), true).unwrap();
    e.member("dev", "nomail@example.org", DeliveryMode::NoMail);
    for s in ["a", "b"] {
        e.distribute("dev", s, MON);
    }
    let c = e.distribute_closing("dev", "c", MON);
    let rcpts: Vec<String> = e.sent(c.issue_id).into_iter().flat_map(|s| s.2).collect();
    assert_eq!(rcpts, ["ok@example.org"]);
}

#[test]
fn no_digest_members_means_no_bodies() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "each@example.org", DeliveryMode::Each);
    for s in ["a", "b"] {
        e.distribute("dev", s, MON);
    }
    let c = e.distribute_closing("dev", "c", MON);
    assert_eq!(c.issue, 1, "the issue is numbered all the same");
    assert!(c.jobs.is_empty());
    assert_eq!(e.count("SELECT COUNT(*) FROM jobs"), 0);
    e.check_invariant();
}

#[test]
fn a_post_enters_a_digest_once() {
    let mut e = env(&[("dev", DEV)]);
    let tx = e.conn.transaction().unwrap();
    let id = store::spool::insert_outbound(&tx, "x", b"Subject: a\r\n\r\nb\r\n", MON).unwrap();
    let cfg = e.ctx.config.list("dev").unwrap();
    digest::accumulate(&tx, cfg, id, MON).unwrap();
    digest::accumulate(&tx, cfg, id, MON).unwrap();
    let err = digest::accumulate(&tx, cfg, id + 1000, MON).unwrap_err();
    assert!(err.to_string().contains("is not stored"), "{err}");
    tx.commit().unwrap();
    assert_eq!(e.pending("dev"), 1);
}

// ---------------------------------------------------------------- crashes

/// Fails the transaction at each write a closing issue makes (a crash at
/// that point loses the transaction the same way), and checks that either
/// the whole issue exists or none of it, every post pending or in exactly
/// one issue; then the issue closes whole once the fault is gone.
#[test]
fn a_failure_at_any_step_of_closing_leaves_no_partial_issue() {
    let steps = [
        "BEFORE UPDATE ON digest_state",
        "BEFORE INSERT ON digest_issues",
        "BEFORE UPDATE ON digest_entries",
        "BEFORE INSERT ON messages",
        "BEFORE INSERT ON jobs",
        "BEFORE INSERT ON batches",
        "BEFORE INSERT ON digest_jobs",
        "BEFORE DELETE ON digest_leavers",
    ];
    for (n, step) in steps.iter().enumerate() {
        let mut e = env(&[("dev", "digest:\n  max_messages: 100\n  schedule: none\n")]);
        e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
        e.member("dev", "plain@example.org", DeliveryMode::DigestPlain);
        e.member("dev", "leaver@example.org", DeliveryMode::DigestMime);
        for s in ["a", "b", "c"] {
            e.distribute("dev", s, MON);
        }
        // owed one last digest: exercises the leavers step too
        e.set_mode("dev", "leaver@example.org", DeliveryMode::Each);
        e.conn
            .execute_batch(&format!(
                "CREATE TEMP TRIGGER fault {step} BEGIN SELECT RAISE(ABORT, 'injected fault {n}'); END;"
            ))
            .unwrap();
        let ctx = e.ctx.clone();
        let err = digest::send_now(&ctx, &mut e.conn, "dev", MON + 10).unwrap_err();
        assert!(err.to_string().contains("injected fault"), "{step}: {err}");
        assert_eq!(e.pending("dev"), 3, "{step}");
        assert_eq!(e.count("SELECT COUNT(*) FROM digest_issues"), 0, "{step}");
        assert_eq!(e.count("SELECT COUNT(*) FROM jobs"), 0, "{step}");
        assert_eq!(e.count("SELECT last_issue FROM digest_state"), 0, "{step}");
        e.check_invariant();
        e.conn.execute_batch("DROP TRIGGER fault").unwrap();
        let c = digest::send_now(&ctx, &mut e.conn, "dev", MON + 20)
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.issue, c.posts, c.mime_rcpts, c.plain_rcpts),
            (1, 3, 2, 1),
            "{step}"
        );
        assert_eq!(e.count("SELECT COUNT(*) FROM digest_leavers"), 0, "{step}");
        e.check_invariant();
    }
}

/// A failure while the worker closes an issue a post marked due does not
/// lose the post: the post committed (its transaction never closes an
/// issue), the issue stays pending and due, and the next wake closes it.
#[test]
fn a_failed_close_of_a_due_issue_keeps_it_due() {
    let mut e = env(&[("dev", DEV)]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    e.distribute("dev", "a", MON);
    e.distribute("dev", "b", MON);
    e.conn
        .execute_batch("CREATE TEMP TRIGGER fault BEFORE INSERT ON digest_jobs BEGIN SELECT RAISE(ABORT, 'injected'); END;")
        .unwrap();
    assert_eq!(e.distribute("dev", "c", MON), Some(Trigger::Count));
    let ctx = e.ctx.clone();
    assert!(digest::close_due(&ctx, &mut e.conn, MON + 1).is_empty());
    assert_eq!(e.pending("dev"), 3);
    assert_eq!(e.due("dev").as_deref(), Some("count"));
    assert_eq!(e.count("SELECT COUNT(*) FROM digest_issues"), 0);
    assert_eq!(e.count("SELECT COUNT(*) FROM jobs"), 0);
    e.conn.execute_batch("DROP TRIGGER fault").unwrap();
    let c = digest::close_due(&ctx, &mut e.conn, MON + 60);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].trigger, c[0].posts), (Trigger::Count, 3));
    assert_eq!(e.due("dev"), None);
    e.check_invariant();
}

/// The periodic tick closes a due issue too (a worker that died after the
/// post committed), with the trigger the post found, even if the setting
/// changed since; and `close_due` leaves lists that are not due alone.
#[test]
fn the_tick_closes_what_a_post_marked_due() {
    let mut e = env(&[("dev", DEV), ("other", DEV)]);
    e.member("dev", "mime@example.org", DeliveryMode::DigestMime);
    e.member("other", "mime@example.org", DeliveryMode::DigestMime);
    e.distribute("other", "o", MON);
    for s in ["a", "b"] {
        assert_eq!(e.distribute("dev", s, MON), None);
    }
    assert_eq!(e.distribute("dev", "c", MON), Some(Trigger::Count));
    assert_eq!(e.distribute("dev", "d", MON), Some(Trigger::Count));
    let mut ctx = e.ctx.clone();
    let mut cfg = (*ctx.config).clone();
    cfg.lists.get_mut("dev").unwrap().digest.max_messages = 100;
    ctx.config = Arc::new(cfg);
    let c = digest::tick(&ctx, &mut e.conn, MON + 5);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        (c[0].list.as_str(), c[0].trigger, c[0].posts),
        ("dev", Trigger::Count, 4)
    );
    assert_eq!(e.pending("other"), 1, "a list not due keeps its posts");
    assert!(digest::close_due(&ctx, &mut e.conn, MON + 6).is_empty());
    e.check_invariant();
}

// ---------------------------------------------------------------- config

#[test]
fn a_bad_schedule_names_file_and_line() {
    let path = std::path::Path::new("/srv/lists/dev.yaml");
    let text = "description: x\ndigest:\n  enabled: true\n  schedule: weekly funday 08:00\n";
    let errs = ListConfig::parse(path, "dev", text).unwrap_err();
    let msg = errs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        msg.starts_with("/srv/lists/dev.yaml:4:3: digest.schedule must be"),
        "{msg}"
    );
    assert!(msg.contains("`funday` is not a day of the week"), "{msg}");
    let ok = ListConfig::parse(path, "dev", "digest:\n  schedule: WEEKLY Monday 8:00\n").unwrap();
    assert_eq!(ok.digest.schedule().to_string(), "weekly mon 08:00 UTC");
    let errs = ListConfig::parse(path, "dev", "digest:\n  max_bytes: 0\n").unwrap_err();
    assert!(
        errs[0]
            .to_string()
            .contains("dev.yaml:2:3: digest.max_bytes must be greater than 0"),
        "{}",
        errs[0]
    );
}

#[test]
fn the_shipped_lists_and_templates_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(&root.join("listd.yaml")).unwrap();
    assert_eq!(
        config
            .list("announce")
            .unwrap()
            .digest
            .schedule()
            .to_string(),
        "weekly mon 08:00 UTC"
    );
    let t = Templates::for_config(&config).unwrap();
    let data = serde_json::json!({"list": "dev", "list_address": "dev@x", "request_address": "dev-request@x", "owner_address": "dev-owner@x"});
    assert!(t
        .render(Some("dev"), "digest-header", &data)
        .unwrap()
        .contains("dev-request@x"));
    assert!(t
        .render(Some("dev"), "digest-footer", &data)
        .unwrap()
        .contains("dev@x"));
}

// ---------------------------------------------------------------- the CLI and kill -9

/// A site on disk (listd.yaml + lists/dev.yaml) for the real binary.
fn site(dev_yaml: &str) -> (tempfile::TempDir, std::path::PathBuf, Ctx) {
    let dir = tempfile::tempdir().unwrap();
    let global = format!(
        "domain: {DOMAIN}\ndata_dir: data\nlists_dir: lists\ntemplates_dir: {}\n",
        common::repo_templates().display()
    );
    let path = common::write_site(dir.path(), &global, &[("dev.yaml", dev_yaml)]);
    let ctx = common::ctx_for(Config::load(&path).unwrap());
    (dir, path, ctx)
}

fn record_posts(ctx: &Ctx, conn: &mut Connection, n: usize, body: &str, now: i64) {
    let cfg = ctx.config.list("dev").unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..n {
        let b = post_bytes(i, "ann@example.org", &format!("post {i}"), body);
        let id = store::spool::insert_outbound(&tx, "dev-bounces@x", &b, now).unwrap();
        digest::accumulate(&tx, cfg, id, now).unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn cli_digest_status_and_send() {
    let (_dir, path, ctx) = site("digest:\n  max_messages: 50\n  schedule: daily 06:00\n");
    let mut conn = store::open(&ctx.config.db_path()).unwrap();
    for (a, m) in [
        ("m@example.org", DeliveryMode::DigestMime),
        ("p@example.org", DeliveryMode::DigestPlain),
    ] {
        members::add(
            &conn,
            "dev",
            &listd::address::Address::parse(a).unwrap().to_string(),
            &listd::address::Address::parse(a).unwrap().key(),
            None,
            m,
            MON,
        )
        .unwrap();
    }
    record_posts(&ctx, &mut conn, 2, "hello", store::now());
    let (code, out, err) = Listd::at(&path).run(&["digest", "status", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dev: digests enabled"), "{out}");
    assert!(out.contains("pending: 2 posts, "), "{out}");
    assert!(
        out.contains("an issue closes at 50 posts or 102400 bytes"),
        "{out}"
    );
    assert!(out.contains("schedule: daily 06:00 UTC, next "), "{out}");
    assert!(out.contains("last issue: none yet"), "{out}");
    assert!(out.contains("digest members: 1 MIME, 1 plain"), "{out}");

    let (code, out, err) = Listd::at(&path).run(&["digest", "send", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dev: queued dev Digest, Vol 1, Issue 1: 2 posts, ")
            && out.contains("to 1 MIME and 1 plain recipients"),
        "{out}"
    );
    let (_, out, _) = Listd::at(&path).run(&["digest", "status", "dev"]);
    assert!(out.contains("pending: 0 posts, 0 bytes"), "{out}");
    assert!(out.contains("last issue: Vol 1, Issue 1, "), "{out}");
    let (code, out, _) = Listd::at(&path).run(&["digest", "send", "dev"]);
    assert_eq!(code, 0);
    assert!(out.contains("no posts pending; nothing sent"), "{out}");

    let (code, _, err) = Listd::at(&path).run(&["digest", "send", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("no list named `nosuch`"), "{err}");
    let (code, _, err) = Listd::at(&path).run(&["digest", "frobnicate", "dev"]);
    assert_eq!(code, 2, "{err}");

    // digests turned off with a post pending: said plainly, no schedule
    record_posts(&ctx, &mut conn, 1, "late", store::now());
    std::fs::write(
        path.with_file_name("lists").join("dev.yaml"),
        "digest:\n  enabled: false\n",
    )
    .unwrap();
    let (code, out, err) = Listd::at(&path).run(&["digest", "status", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dev: digests disabled (digest.enabled: false); digest members get each post")
            && out.contains("pending from before: 1 posts")
            && !out.contains("schedule:"),
        "{out}"
    );
    let (code, _, err) = Listd::at(&path).run(&["digest", "send", "dev"]);
    assert_eq!(code, 1);
    assert!(err.contains("digests are disabled for list `dev`"), "{err}");
}

/// kill -9 of `listd digest send` at several points while it builds and
/// queues a large issue: afterwards every post is pending or in exactly one
/// whole issue, and the next send picks up whatever is left.
#[test]
fn kill_9_while_sending_a_digest_loses_nothing() {
    let (_dir, path, ctx) =
        site("digest:\n  max_messages: 100000\n  max_bytes: 1000000000\n  schedule: none\n");
    let mut conn = store::open(&ctx.config.db_path()).unwrap();
    {
        let tx = conn.transaction().unwrap();
        for i in 0..3000 {
            let mode = if i % 2 == 0 {
                DeliveryMode::DigestMime
            } else {
                DeliveryMode::DigestPlain
            };
            let a = listd::address::Address::parse(&format!("m{i}@example.org")).unwrap();
            members::add(&tx, "dev", &a.to_string(), &a.key(), None, mode, MON).unwrap();
        }
        tx.commit().unwrap();
    }
    let body = "lorem ipsum dolor sit amet ".repeat(150);
    // how long one uninterrupted send of 300 posts takes here
    record_posts(&ctx, &mut conn, 300, &body, MON);
    let mut total = 300;
    let t0 = std::time::Instant::now();
    let (code, _, err) = Listd::at(&path).run(&["digest", "send", "dev"]);
    assert_eq!(code, 0, "{err}");
    let full = t0.elapsed().as_millis() as u64;
    let mut killed_before_commit = 0;
    for percent in [2u64, 15, 30, 45, 60, 75, 90, 105, 150, 400] {
        record_posts(&ctx, &mut conn, 300, &body, MON);
        total += 300;
        let delay_ms = full * percent / 100;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_listd"))
            .arg("--config")
            .arg(&path)
            .args(["digest", "send", "dev"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // a fresh connection sees what survived (WAL recovery)
        let c = store::open(&ctx.config.db_path()).unwrap();
        let e = Env {
            _dir: tempfile::tempdir().unwrap(),
            ctx: ctx.clone(),
            conn: c,
            seq: 0,
        };
        e.check_invariant();
        let assigned = e.count("SELECT COUNT(*) FROM digest_entries WHERE issue_id IS NOT NULL");
        let pending = e.pending("dev");
        assert_eq!(
            assigned + pending,
            total,
            "every post is pending or in an issue"
        );
        if pending > 0 {
            killed_before_commit += 1;
            // start the next run from an empty queue, so the timing holds
            let (code, _, err) = Listd::at(&path).run(&["digest", "send", "dev"]);
            assert_eq!(code, 0, "{err}");
        }
        // every committed issue reached all 3000 digest members
        assert_eq!(
            e.count("SELECT COUNT(*) FROM digest_issues i WHERE (SELECT SUM(recipients) FROM digest_jobs d WHERE d.issue_id = i.id) <> 3000"),
            0
        );
    }
    // whatever is left goes out whole
    let (code, _, err) = Listd::at(&path).run(&["digest", "send", "dev"]);
    assert_eq!(code, 0, "{err}");
    let c = store::open(&ctx.config.db_path()).unwrap();
    let left: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM digest_entries WHERE issue_id IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    eprintln!("one send took {full} ms; kill -9 landed before the commit in {killed_before_commit} of 10 runs");
}

#[test]
fn listd_check_names_a_missing_digest_template() {
    let (_dir, path, _ctx) =
        site("description: x\ndigest:\n  enabled: true\n  footer: no-such-footer\n");
    let (code, _, err) = Listd::at(&path).run(&["check"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("lists/dev.yaml:4:3: digest.footer: template `no-such-footer` is neither"),
        "{err}"
    );
    let (_dir, path, _ctx) = site("digest:\n  header: \"\"\n");
    let (code, out, err) = Listd::at(&path).run(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
}
