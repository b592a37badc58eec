//! Library-level harness for the command robot's tests: a real config
//! written to a temp dir (listd.yaml + lists/*.yaml, the repository's
//! templates), a real SQLite store, the real pipeline; command mails go in
//! through the spool, and what the robot queued comes out of the outbound
//! queue, parsed with mail-parser.
#![allow(dead_code)]

use crate::common::{ctx_for, list_files, repo_templates, write_site};
use listd::config::Config;
use listd::handler::Ctx;
use listd::pipeline;
use listd::store::{self, spool::Envelope};
use mail_parser::MessageParser;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

type JobRow = (i64, String, Option<String>, String, Vec<u8>);

pub const DOMAIN: &str = "lists.example.org";
pub const T0: i64 = 1_700_000_000;

pub struct Site {
    pub dir: tempfile::TempDir,
    pub ctx: Ctx,
    pub conn: Connection,
    seen_job: i64,
}

/// One queued outbound job with its recipients.
#[derive(Debug, Clone)]
pub struct Sent {
    pub job: i64,
    pub kind: String,
    pub list: Option<String>,
    pub env_from: String,
    pub rcpts: Vec<String>,
    pub bytes: Vec<u8>,
}

impl Sent {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        MessageParser::default()
            .parse(&self.bytes)
            .expect("robot mail parses")
    }
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }
    pub fn body(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|b| b.replace("\r\n", "\n"))
            .unwrap_or_default()
    }
    /// The body with every run of white space made one space (for
    /// matching sentences that may be word-wrapped).
    pub fn flat(&self) -> String {
        self.body().split_whitespace().collect::<Vec<_>>().join(" ")
    }
    pub fn is_to(&self, a: &str) -> bool {
        self.rcpts.iter().any(|r| r == a)
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().header_raw(name).map(|s| s.trim().to_string())
    }
    pub fn to(&self) -> String {
        self.parsed()
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string()
    }
    pub fn reply_to(&self) -> Option<String> {
        self.parsed()
            .reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string)
    }
    /// The token in a `confirm TOKEN` / `approve TOKEN` subject.
    pub fn token(&self) -> String {
        self.subject()
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    }
}

/// Writes listd.yaml (with `robot_yaml` under `robot:`) and the lists.
pub fn write_config(dir: &Path, lists: &[(&str, &str)], robot_yaml: &str) -> PathBuf {
    let cfg = format!(
        "domain: {DOMAIN}\ndata_dir: data\nlists_dir: lists\ntemplates_dir: {}\nrobot:\n{robot_yaml}\n",
        repo_templates().display()
    );
    write_site(dir, &cfg, &list_files(lists))
}

impl Site {
    pub fn new(lists: &[(&str, &str)]) -> Site {
        Site::with(lists, &[], "  replies_per_hour: 1000")
    }

    /// `overrides`: (list, template name, text) written to lists/LIST/templates/.
    pub fn with(
        lists: &[(&str, &str)],
        overrides: &[(&str, &str, &str)],
        robot_yaml: &str,
    ) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), lists, robot_yaml);
        for (list, name, text) in overrides {
            let d = dir.path().join("lists").join(list).join("templates");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("{name}.hbs")), text).unwrap();
        }
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let conn = store::open(&config.db_path()).unwrap();
        Site {
            dir,
            ctx: ctx_for(config),
            conn,
            seen_job: 0,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("listd.yaml")
    }

    /// Spools a mail to `rcpt` and runs the pipeline at `now`.
    pub fn deliver_at(&mut self, env_from: &str, rcpt: &str, bytes: &[u8], now: i64) {
        let route = listd::routing::route(&self.ctx.config, rcpt)
            .unwrap_or_else(|e| panic!("{rcpt} does not route: {e:?}"));
        let env = Envelope {
            mail_from: env_from.to_string(),
            rcpts: vec![(rcpt.to_string(), route.into())],
            client_ip: Some("127.0.0.1".into()),
            helo: "client.example.org".into(),
            protocol: "ESMTP".into(),
        };
        store::spool::insert_inbound(&self.conn, &env, bytes, now).unwrap();
        let n = pipeline::drain(&self.ctx, &mut self.conn, now).unwrap();
        assert!(n >= 1);
        let (state, err): (String, Option<String>) = self
            .conn
            .query_row(
                "SELECT state, error FROM incoming ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(state, "done", "incoming row not done: {err:?}");
    }

    /// A simple command mail from `from` (From: and envelope).
    pub fn command(&mut self, from: &str, rcpt: &str, subject: &str, body: &str, now: i64) {
        let bytes = mail(from, rcpt, subject, body, &[]);
        self.deliver_at(from, rcpt, bytes.as_bytes(), now);
    }

    /// Jobs queued since the last call.
    pub fn outbox(&mut self) -> Vec<Sent> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT j.id, j.kind, j.list, j.env_from, m.bytes FROM jobs j
                 JOIN messages m ON m.id = j.message_id WHERE j.id > ?1 ORDER BY j.id",
            )
            .unwrap();
        let rows: Vec<JobRow> = stmt
            .query_map([self.seen_job], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut out = Vec::new();
        for (job, kind, list, env_from, bytes) in rows {
            let rcpts: Vec<String> = self
                .conn
                .prepare("SELECT rcpt FROM job_rcpts WHERE job_id = ?1 ORDER BY id")
                .unwrap()
                .query_map([job], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            self.seen_job = self.seen_job.max(job);
            out.push(Sent {
                job,
                kind,
                list,
                env_from,
                rcpts,
                bytes,
            });
        }
        out
    }

    pub fn is_member(&self, list: &str, addr: &str) -> bool {
        listd::store::members::get(&self.conn, list, &listd::address::address_key(addr))
            .unwrap()
            .is_some()
    }

    pub fn add_member(&self, list: &str, addr: &str) {
        let a = listd::address::Address::parse(addr).unwrap();
        listd::store::members::add(
            &self.conn,
            list,
            &a.to_string(),
            &a.key(),
            None,
            listd::store::members::DeliveryMode::Each,
            T0 - 100,
        )
        .unwrap();
    }
}

static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// A plain-text mail.
pub fn mail(from: &str, to: &str, subject: &str, body: &str, extra_headers: &[&str]) -> String {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <cmd-{}@client.example.org>\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n",
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    for h in extra_headers {
        m.push_str(h);
        m.push_str("\r\n");
    }
    m.push_str("\r\n");
    m.push_str(&body.replace('\n', "\r\n"));
    m
}

/// Picks the only job sent to `rcpt`.
pub fn to_rcpt<'a>(sent: &'a [Sent], rcpt: &str) -> Vec<&'a Sent> {
    sent.iter()
        .filter(|s| s.rcpts.iter().any(|r| r == rcpt))
        .collect()
}

pub const DEV: &str = "description: Development talk\nowners: [owner@example.org]\nsubscription: confirm\nwho: members\n";
