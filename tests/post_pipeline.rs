//! Library-level tests of the post path: a real SQLite store in a temp dir,
//! messages put in the spool as the SMTP layer does, then `pipeline::drain`.
//! What comes out (outbound jobs, archive, holds, bounces) is read back from
//! the store and parsed with mail-parser.

use listd::config::{Config, ListConfig};
use listd::handler::Ctx;
use listd::pipeline;
use listd::routing;
use listd::store::{self, members, spool};
use listd::templates::Templates;
use mail_parser::{MessageParser, MimeHeaders};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;

const DOMAIN: &str = "lists.example.org";
const NOW: i64 = 1_763_780_000;

/// (id, kind, env_from, bytes, expand_list)
type JobRow = (i64, String, String, Vec<u8>, Option<String>);

struct Env {
    _dir: tempfile::TempDir,
    ctx: Ctx,
    conn: Connection,
}

fn env(lists: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(DOMAIN, dir.path());
    for (name, yaml) in lists {
        let l = ListConfig::parse(Path::new(&format!("{name}.yaml")), name, yaml).unwrap();
        config.lists.insert(name.to_string(), l);
    }
    let templates = Templates::for_config(&config).unwrap();
    let conn = store::open(&config.db_path()).unwrap();
    Env {
        ctx: Ctx {
            config: Arc::new(config),
            templates: Arc::new(templates),
        },
        conn,
        _dir: dir,
    }
}

impl Env {
    fn add_member(&self, list: &str, addr: &str, mode: members::DeliveryMode) {
        let a = listd::address::Address::parse(addr).unwrap();
        members::add(&self.conn, list, &a.to_string(), &a.key(), None, mode, NOW).unwrap();
    }

    /// Spools `bytes` from `mail_from` to `rcpt` and drains the pipeline.
    fn deliver(&mut self, mail_from: &str, rcpt: &str, bytes: &[u8]) {
        self.deliver_at(mail_from, rcpt, bytes, NOW);
    }

    fn deliver_at(&mut self, mail_from: &str, rcpt: &str, bytes: &[u8], now: i64) {
        let route = routing::route(&self.ctx.config, rcpt).unwrap();
        self.spool_route(mail_from, rcpt, route, bytes, now);
        pipeline::drain(&self.ctx, &mut self.conn, now).unwrap();
    }

    fn spool_route(
        &self,
        mail_from: &str,
        rcpt: &str,
        route: routing::Route,
        bytes: &[u8],
        now: i64,
    ) {
        let env = spool::Envelope {
            mail_from: mail_from.to_string(),
            rcpts: vec![(rcpt.to_string(), route.into())],
            client_ip: Some("127.0.0.1".into()),
            helo: "client.example".into(),
            protocol: "ESMTP".into(),
        };
        spool::insert_inbound(&self.conn, &env, bytes, now).unwrap();
    }

    /// Outbound jobs: (kind, env_from, bytes, recipients). A post job's
    /// recipients are what the delivery worker will expand its list into.
    fn jobs(&self) -> Vec<(String, String, Vec<u8>, Vec<String>)> {
        let mut stmt = self
            .conn
            .prepare("SELECT j.id, j.kind, j.env_from, m.bytes, j.expand_list FROM jobs j JOIN messages m ON m.id = j.message_id ORDER BY j.id")
            .unwrap();
        let rows: Vec<JobRow> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.into_iter()
            .map(|(id, kind, from, bytes, expand_list)| {
                let mut rcpts: Vec<String> = match expand_list {
                    Some(list) => {
                        let mut v = Vec::new();
                        listd::membership::expand(
                            &self.conn,
                            &self.ctx.config,
                            &list,
                            &listd::membership::ExpandOptions::default(),
                            |r| {
                                v.push(r.address.clone());
                                true
                            },
                        )
                        .unwrap();
                        v
                    }
                    None => Vec::new(),
                };
                let mut s = self
                    .conn
                    .prepare("SELECT rcpt FROM job_rcpts WHERE job_id = ?1 ORDER BY rcpt")
                    .unwrap();
                rcpts.extend(
                    s.query_map([id], |r| r.get::<_, String>(0))
                        .unwrap()
                        .collect::<Result<Vec<String>, _>>()
                        .unwrap(),
                );
                (kind, from, bytes, rcpts)
            })
            .collect()
    }

    fn incoming_states(&self) -> Vec<(String, Option<String>)> {
        let mut s = self
            .conn
            .prepare("SELECT state, error FROM incoming ORDER BY id")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

fn post(from: &str, id: &str, subject: &str) -> Vec<u8> {
    format!(
        "Received: from client.example by {DOMAIN}; Sat, 22 Nov 2025 03:00:00 +0000\r\n\
From: {from}\r\nTo: dev@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
Date: Sat, 22 Nov 2025 03:00:00 +0000\r\nX-Custom:  kept   as is\r\n\r\nHello list.\r\n"
    )
    .into_bytes()
}

const DEV: &str = "description: Dev\nposting: members\nnonmember_posts: reject\nsubject_prefix: \"[dev]\"\nfooter: true\nowners: [owner@example.org]\n";

#[test]
fn an_accepted_post_is_decorated_archived_and_queued_to_each_member() {
    let mut e = env(&[("dev", DEV)]);
    e.add_member("dev", "ann@example.org", members::DeliveryMode::Each);
    e.add_member("dev", "bob@example.org", members::DeliveryMode::Each);
    e.add_member("dev", "dig@example.org", members::DeliveryMode::DigestMime);
    e.add_member("dev", "quiet@example.org", members::DeliveryMode::NoMail);
    e.deliver(
        "ann@example.org",
        &format!("dev@{DOMAIN}"),
        &post("Ann <ann@example.org>", "p1@x", "Re: [dev] Re: [dev] hi"),
    );
    assert_eq!(e.incoming_states(), vec![("done".to_string(), None)]);
    let jobs = e.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let (kind, env_from, bytes, rcpts) = &jobs[0];
    assert_eq!(kind, "post");
    assert_eq!(env_from, &format!("dev-bounces@{DOMAIN}"));
    assert_eq!(
        rcpts,
        &vec!["ann@example.org".to_string(), "bob@example.org".to_string()]
    );
    let m = MessageParser::default().parse(bytes).unwrap();
    assert_eq!(m.subject(), Some("Re: [dev] hi"));
    assert_eq!(
        m.header_raw("X-Loop").map(str::trim),
        Some("dev@lists.example.org")
    );
    assert_eq!(m.header_raw("Precedence").map(str::trim), Some("list"));
    assert!(
        m.header_raw("X-Custom") == Some("  kept   as is\r\n")
            || m.header_raw("X-Custom") == Some("  kept   as is")
    );
    let body = m.body_text(0).unwrap();
    assert!(body.starts_with("Hello list.\r\n-- \r\n"), "{body}");
    assert!(body.contains(&format!("dev-leave@{DOMAIN}")), "{body}");
    // fed once to the digest (digests are on by default)
    assert_eq!(
        e.count("SELECT COUNT(*) FROM digest_entries WHERE list = 'dev'"),
        1
    );
    // archived once
    assert_eq!(
        e.count("SELECT COUNT(*) FROM archive_index WHERE list = 'dev' AND message_id = 'p1@x'"),
        1
    );
    let mbox = e
        .ctx
        .config
        .data_dir
        .join("archive/dev")
        .join(format!("{}.mbox", listd::archive::month_of(NOW)));
    let text = String::from_utf8(std::fs::read(&mbox).unwrap()).unwrap();
    assert!(text.starts_with("From ann@example.org "), "{text}");
    assert!(text.contains("Subject: Re: [dev] hi\n"), "{text}");
}

#[test]
fn a_duplicate_message_id_is_discarded() {
    let mut e = env(&[("dev", DEV)]);
    e.add_member("dev", "ann@example.org", members::DeliveryMode::Each);
    let p = post("ann@example.org", "dup@x", "once");
    e.deliver("ann@example.org", &format!("dev@{DOMAIN}"), &p);
    e.deliver("ann@example.org", &format!("dev@{DOMAIN}"), &p);
    assert_eq!(e.jobs().len(), 1);
    assert_eq!(e.count("SELECT COUNT(*) FROM archive_index"), 1);
    assert_eq!(
        e.incoming_states()
            .iter()
            .filter(|(s, _)| s == "done")
            .count(),
        2
    );
}

#[test]
fn a_rejected_post_gets_a_notice_and_a_null_sender_gets_none() {
    let mut e = env(&[("dev", DEV)]);
    e.deliver(
        "eve@example.net",
        &format!("dev@{DOMAIN}"),
        &post("eve@example.net", "r1@x", "spam"),
    );
    let jobs = e.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let (kind, env_from, bytes, rcpts) = &jobs[0];
    assert_eq!(kind, "notice");
    assert_eq!(env_from, "");
    assert_eq!(rcpts, &vec!["eve@example.net".to_string()]);
    let m = MessageParser::default().parse(bytes).unwrap();
    assert!(m.subject().unwrap().contains("not accepted"));
    let text = m.body_text(0).unwrap();
    assert!(text.contains("Only members may post"), "{text}");
    // eve is no member: nothing of her post is quoted to her address (it
    // may be forged): no Subject, no header part, no In-Reply-To
    assert!(!text.contains("spam"), "{text}");
    assert!(!String::from_utf8_lossy(bytes).contains("r1@x"));
    // a delivery report: its status part, and no part with her header block
    let kinds: Vec<String> = m
        .attachments()
        .map(|a| {
            let ct = a.content_type().unwrap();
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(kinds, ["message/delivery-status"]);
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    // the same from <>: nothing is sent
    e.deliver(
        "",
        &format!("dev@{DOMAIN}"),
        &post("eve@example.net", "r2@x", "bounce"),
    );
    assert_eq!(e.jobs().len(), 1);
    assert_eq!(e.count("SELECT COUNT(*) FROM archive_index"), 0);
}

#[test]
fn a_held_post_is_stored_with_its_reason() {
    let mut e = env(&[("mod", "posting: moderated\n")]);
    e.deliver(
        "ann@example.org",
        &format!("mod@{DOMAIN}"),
        &post("ann@example.org", "h1@x", "please"),
    );
    // moderation's notices go out, but no post
    assert!(e.jobs().iter().all(|j| j.0 != "post"));
    let (reason, subject): (String, String) = e
        .conn
        .query_row("SELECT reason, subject FROM held", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(reason, "moderated");
    assert_eq!(subject, "please");
}

#[test]
fn an_approved_held_post_is_distributed_decorated() {
    let mut e = env(&[(
        "mod",
        "posting: moderated\nsubject_prefix: \"[mod]\"\nowners: [owner@example.org]\n",
    )]);
    e.add_member("mod", "bob@example.org", members::DeliveryMode::Each);
    e.deliver(
        "ann@example.org",
        &format!("mod@{DOMAIN}"),
        &post("ann@example.org", "h2@x", "held then approved"),
    );
    assert!(e.jobs().iter().all(|j| j.0 != "post"));
    let id: i64 = e
        .conn
        .query_row("SELECT id FROM held", [], |r| r.get(0))
        .unwrap();
    let tx = e.conn.transaction().unwrap();
    listd::moderation::act(
        &e.ctx,
        &tx,
        id,
        listd::moderation::ModAction::Approve,
        "owner@example.org",
        None,
        NOW + 60,
    )
    .unwrap();
    tx.commit().unwrap();
    let posts: Vec<_> = e.jobs().into_iter().filter(|j| j.0 == "post").collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].3, vec!["bob@example.org".to_string()]);
    let m = MessageParser::default().parse(&posts[0].2).unwrap();
    assert_eq!(m.subject(), Some("[mod] held then approved"));
    assert_eq!(
        e.count("SELECT COUNT(*) FROM archive_index WHERE message_id = 'h2@x'"),
        1
    );
}

#[test]
fn a_wrong_approved_password_is_held_and_never_distributed() {
    let mut e = env(&[("dev", "posting: anyone\nowners: [owner@example.org]\n")]);
    e.add_member("dev", "bob@example.org", members::DeliveryMode::Each);
    let mut p = b"Approved: guess\r\n".to_vec();
    p.extend(post("ann@example.org", "ap@x", "sneaky"));
    e.deliver("ann@example.org", &format!("dev@{DOMAIN}"), &p);
    assert!(e.jobs().iter().all(|j| j.0 != "post"));
    let reason: String = e
        .conn
        .query_row("SELECT reason FROM held", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reason, "bad-approved-password");
}

#[test]
fn loops_are_discarded() {
    let mut e = env(&[("dev", "posting: anyone\n")]);
    e.add_member("dev", "ann@example.org", members::DeliveryMode::Each);
    let mut p = format!("X-Loop: dev@{DOMAIN}\r\n").into_bytes();
    p.extend(post("ann@example.org", "l1@x", "loop"));
    e.deliver("ann@example.org", &format!("dev@{DOMAIN}"), &p);
    let mut p = format!("List-Id: Dev <dev.{DOMAIN}>\r\n").into_bytes();
    p.extend(post("ann@example.org", "l2@x", "loop"));
    e.deliver("ann@example.org", &format!("dev@{DOMAIN}"), &p);
    assert_eq!(e.jobs().len(), 0);
    assert_eq!(
        e.incoming_states()
            .iter()
            .filter(|(s, _)| s == "done")
            .count(),
        2
    );
}

#[test]
fn distribute_is_callable_for_an_approved_post() {
    let mut e = env(&[("dev", DEV)]);
    e.add_member("dev", "bob@example.org", members::DeliveryMode::Each);
    let tx = e.conn.transaction().unwrap();
    let d = listd::posts::distribute::distribute(
        &e.ctx,
        &tx,
        "dev",
        &post("x@y.org", "a1@x", "approved"),
        None,
        NOW,
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(d.message_id, "a1@x");
    assert!(d.archived);
    let tx = e.conn.transaction().unwrap();
    let err =
        listd::posts::distribute::distribute(&e.ctx, &tx, "gone", b"Subject: x\r\n\r\n", None, NOW)
            .unwrap_err();
    assert!(err.to_string().contains("gone"), "{err}");
}

#[test]
fn owner_mail_is_forwarded_once_and_loops_are_dropped() {
    let mut e = env(&[("dev", DEV)]);
    e.deliver(
        "ann@example.org",
        &format!("dev-owner@{DOMAIN}"),
        b"From: ann@example.org\r\nSubject: help\r\n\r\nhi\r\n",
    );
    let jobs = e.jobs();
    assert_eq!(jobs.len(), 1);
    let (kind, env_from, bytes, rcpts) = &jobs[0];
    assert_eq!(kind, "forward");
    assert_eq!(env_from, &format!("dev-bounces@{DOMAIN}"));
    assert_eq!(rcpts, &vec!["owner@example.org".to_string()]);
    assert_eq!(
        bytes,
        &format!(
            "X-Loop: dev-owner@{DOMAIN}\r\nFrom: ann@example.org\r\nSubject: help\r\n\r\nhi\r\n"
        )
        .into_bytes()
    );
    // what comes back with our X-Loop is dropped
    e.deliver("", &format!("dev-owner@{DOMAIN}"), bytes);
    assert_eq!(e.jobs().len(), 1);
    // a list without owners: the mail stays (corrupt, with the reason)
    let mut e = env(&[("solo", "posting: anyone\n")]);
    e.deliver(
        "ann@example.org",
        &format!("solo-owner@{DOMAIN}"),
        b"Subject: x\r\n\r\n",
    );
    let st = e.incoming_states();
    assert_eq!(st[0].0, "corrupt");
    assert!(st[0].1.as_deref().unwrap().contains("no owners"), "{st:?}");
}

#[test]
fn bounces_are_recorded() {
    let mut e = env(&[("dev", DEV)]);
    e.deliver(
        "",
        &format!("dev-bounces+bob=example.org@{DOMAIN}"),
        b"From: MAILER-DAEMON@relay\r\nSubject: failure\r\n\r\nno\r\n",
    );
    e.deliver(
        "",
        &format!("dev-bounces@{DOMAIN}"),
        b"Subject: not a dsn\r\n\r\n?\r\n",
    );
    assert_eq!(
        e.incoming_states(),
        vec![("done".to_string(), None), ("done".to_string(), None)]
    );
    let r: (Option<String>, Option<String>) = e
        .conn
        .query_row(
            "SELECT tag, recipient FROM bounces ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        r,
        (
            Some("bob=example.org".into()),
            Some("bob@example.org".into())
        )
    );
    assert_eq!(
        e.count("SELECT COUNT(*) FROM bounces WHERE recipient IS NULL"),
        1
    );
}

#[test]
fn a_message_id_counts_as_duplicate_for_30_days_only() {
    let mut e = env(&[("dev", DEV)]);
    e.add_member("dev", "ann@example.org", members::DeliveryMode::Each);
    let p = post("ann@example.org", "again@x", "again");
    let to = format!("dev@{DOMAIN}");
    e.deliver_at("ann@example.org", &to, &p, NOW);
    e.deliver_at("ann@example.org", &to, &p, NOW + 29 * 86_400);
    assert_eq!(e.jobs().len(), 1);
    e.deliver_at("ann@example.org", &to, &p, NOW + 31 * 86_400);
    assert_eq!(e.jobs().len(), 2);
    // the archive still holds it once
    assert_eq!(e.count("SELECT COUNT(*) FROM archive_index"), 1);
}

#[test]
fn a_post_for_a_list_no_longer_configured_is_kept_as_corrupt() {
    let mut e = env(&[("dev", DEV)]);
    let route = routing::Route::Post {
        list: "gone".into(),
    };
    e.spool_route(
        "ann@example.org",
        &format!("gone@{DOMAIN}"),
        route,
        &post("ann@example.org", "g@x", "g"),
        NOW,
    );
    let route = routing::Route::Owner {
        list: "gone".into(),
    };
    e.spool_route(
        "ann@example.org",
        &format!("gone-owner@{DOMAIN}"),
        route,
        b"Subject: x\r\n\r\n",
        NOW,
    );
    pipeline::drain(&e.ctx, &mut e.conn, NOW).unwrap();
    let st = e.incoming_states();
    assert_eq!(st.len(), 2);
    for (state, err) in st {
        assert_eq!(state, "corrupt");
        assert!(err.unwrap().contains("`gone` is no longer configured"));
    }
    assert_eq!(e.jobs().len(), 0);
}

#[test]
fn an_archive_that_cannot_be_written_makes_the_post_wait_then_it_goes_once() {
    let mut e = env(&[("dev", DEV)]);
    e.add_member("dev", "ann@example.org", members::DeliveryMode::Each);
    // a file where the archive folder should be
    let blocker = e.ctx.config.data_dir.join("archive");
    std::fs::write(&blocker, b"in the way").unwrap();
    e.deliver(
        "ann@example.org",
        &format!("dev@{DOMAIN}"),
        &post("ann@example.org", "w@x", "waits"),
    );
    let st = e.incoming_states();
    assert_eq!(st[0].0, "incoming");
    assert!(st[0].1.as_deref().unwrap().contains("archive"), "{st:?}");
    assert_eq!(
        e.jobs().len(),
        0,
        "nothing is queued when the transaction rolls back"
    );
    std::fs::remove_file(&blocker).unwrap();
    pipeline::drain(&e.ctx, &mut e.conn, NOW + 3600).unwrap();
    assert_eq!(e.incoming_states()[0].0, "done");
    assert_eq!(e.jobs().len(), 1);
    assert_eq!(e.count("SELECT COUNT(*) FROM archive_index"), 1);
}

#[test]
fn a_missing_footer_template_makes_the_post_wait_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(DOMAIN, dir.path());
    config.templates_dir = dir.path().join("no-templates");
    let l = ListConfig::parse(Path::new("dev.yaml"), "dev", DEV).unwrap();
    config.lists.insert("dev".into(), l);
    let templates = Templates::for_config(&config).unwrap();
    let conn = store::open(&config.db_path()).unwrap();
    let mut e = Env {
        ctx: Ctx {
            config: Arc::new(config),
            templates: Arc::new(templates),
        },
        conn,
        _dir: dir,
    };
    e.add_member("dev", "ann@example.org", members::DeliveryMode::Each);
    e.deliver(
        "ann@example.org",
        &format!("dev@{DOMAIN}"),
        &post("ann@example.org", "t@x", "t"),
    );
    let st = e.incoming_states();
    assert_eq!(st[0].0, "incoming");
    assert!(
        st[0]
            .1
            .as_deref()
            .unwrap()
            .contains("template `footer` not found"),
        "{st:?}"
    );
    assert_eq!(e.jobs().len(), 0);
}
