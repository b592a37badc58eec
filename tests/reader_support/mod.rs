//! Harness for the archive readers' tests (POP3, IMAP): the in-process
//! daemon with `pop3.listen` and `imap.listen` on 127.0.0.1:0, a capturing
//! sink as the relay, two lists (`pub`: anyone reads the archive; `dev`:
//! members only), posts sent over real SMTP and archived by the real
//! pipeline, and app passwords got by mailing the robot `password LIST`
//! and reading the mail it sends, with mail-parser.
#![allow(dead_code)]

use crate::common::sink::Sink;
use crate::common::{send, wait_until, TestEnv, TestEnvBuilder};
use listd::daemon::DaemonHandle;
use mail_parser::MessageParser;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const D: &str = "lists.example.org";
pub const ANN: &str = "ann@example.org";
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Archive {
    pub sink: Sink,
    pub env: TestEnv,
    pub daemon: Option<DaemonHandle>,
}

impl Archive {
    /// Starts the daemon; `tweak` adds settings.
    pub async fn start(tweak: impl FnOnce(TestEnvBuilder) -> TestEnvBuilder) -> Archive {
        let sink = Sink::start();
        let b = TestEnv::builder()
            .relay_port(sink.port())
            .set("robot", "replies_per_hour", "1000")
            .set("pop3", "listen", "127.0.0.1:0")
            .set("imap", "listen", "127.0.0.1:0")
            .list(
                "pub",
                "description: The public list\nowners: [owner@example.org]\narchive_access: anyone\n",
            )
            .list(
                "dev",
                "description: The dev list\nowners: [owner@example.org]\narchive_access: members\n",
            );
        let env = tweak(b).build();
        env.add_members("pub", &[ANN]);
        env.add_members("dev", &[ANN]);
        let daemon = env.start().await;
        Archive {
            sink,
            env,
            daemon: Some(daemon),
        }
    }

    pub fn daemon(&self) -> &DaemonHandle {
        self.daemon.as_ref().unwrap()
    }

    pub fn pop3_addr(&self) -> SocketAddr {
        self.daemon().pop3_addr().expect("pop3 listens")
    }

    pub fn imap_addr(&self) -> SocketAddr {
        self.daemon().imap_addr().expect("imap listens")
    }

    /// Posts archived in `list` so far.
    pub fn archived(&self, list: &str) -> i64 {
        self.env.count("archive_index", &format!("list = '{list}'"))
    }

    /// Sends a post from ANN to `list` over SMTP and waits until it is
    /// archived. `date` is its Date: field.
    pub async fn post(&self, list: &str, subject: &str, body: &str, date: &str) {
        let before = self.archived(list);
        let m = format!(
            "From: Ann Example <{ANN}>\r\nTo: {list}@{D}\r\nSubject: {subject}\r\nMessage-ID: <{}@test.example>\r\nDate: {date}\r\n\r\n{body}\r\n",
            crate::common::rand_token()
        );
        send(
            self.daemon().smtp_addr(),
            ANN,
            &[&format!("{list}@{D}")],
            &m,
        )
        .await
        .expect(250);
        assert!(
            wait_until(WAIT, || self.archived(list) > before).await,
            "the post to {list} was not archived"
        );
    }

    /// Mails the robot `password LIST` as `who` and returns the password
    /// from the mail it sends back.
    pub async fn password(&self, who: &str, list: &str) -> String {
        let seen = self.sink.transactions().len();
        let m = crate::common::message(
            who,
            &format!("majordomo@{D}"),
            "",
            &format!("password {list}"),
        );
        send(
            self.daemon().smtp_addr(),
            who,
            &[&format!("majordomo@{D}")],
            &m,
        )
        .await
        .expect(250);
        let want = format!("Your {list} archive password");
        let mut found = None;
        wait_until(WAIT, || {
            found = self.sink.transactions()[seen..].iter().find_map(|t| {
                let msg = MessageParser::default().parse(&t.data)?;
                if msg.subject() != Some(want.as_str()) {
                    return None;
                }
                let body = msg.body_text(0)?.to_string();
                body.lines()
                    .find_map(|l| l.trim().strip_prefix("Password:"))
                    .map(|p| p.trim().to_string())
            });
            found.is_some()
        })
        .await;
        found.expect("the robot mailed a password")
    }

    pub async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }
}

/// A line-oriented client over a real socket (POP3 and IMAP alike).
pub struct LineClient {
    pub r: BufReader<TcpStream>,
}

impl LineClient {
    pub async fn connect(addr: SocketAddr) -> LineClient {
        let s = TcpStream::connect(addr).await.expect("connect");
        LineClient {
            r: BufReader::new(s),
        }
    }

    /// One line without its CRLF (panics after the wait).
    pub async fn line(&mut self) -> String {
        let mut l = String::new();
        let n = tokio::time::timeout(WAIT, self.r.read_line(&mut l))
            .await
            .expect("a line in time")
            .expect("read");
        assert!(n > 0, "connection closed");
        l.trim_end_matches(['\r', '\n']).to_string()
    }

    /// Exactly `n` bytes (an IMAP literal).
    pub async fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        tokio::time::timeout(WAIT, self.r.read_exact(&mut b))
            .await
            .expect("bytes in time")
            .expect("read");
        b
    }

    pub async fn send(&mut self, line: &str) {
        self.raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn raw(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).await.expect("write");
    }

    /// Sends a POP3 command and returns its status line.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(line).await;
        self.line().await
    }

    /// The lines of a POP3 multi-line body up to `.`, dot-unstuffed, each
    /// with its CRLF.
    pub async fn multiline(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut l = Vec::new();
            tokio::time::timeout(WAIT, self.r.read_until(b'\n', &mut l))
                .await
                .expect("in time")
                .expect("read");
            assert!(!l.is_empty(), "closed inside a multi-line answer");
            if l == b".\r\n" {
                return out;
            }
            let l = if l.starts_with(b"..") {
                &l[1..]
            } else {
                &l[..]
            };
            out.extend_from_slice(l);
        }
    }

    /// Whether the server closed the connection (reads to the end).
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(WAIT, self.r.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }
}

/// Runs a Python 3 script (the stdlib's clients) with `args`; returns its
/// standard output, failing the test with its errors.
pub fn python(script: &str, args: &[String]) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

impl LineClient {
    /// One IMAP response line with any literals it carries inlined (as
    /// `{N}\r\n` followed by the N bytes, lossily decoded).
    pub async fn imap_line(&mut self) -> String {
        let mut out = self.line().await;
        while let Some(n) = out
            .strip_suffix('}')
            .and_then(|s| s.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            let bytes = self.bytes(n).await;
            out.push_str("\r\n");
            out.push_str(&String::from_utf8_lossy(&bytes));
            out.push_str(&self.line().await);
        }
        out
    }

    /// Sends `TAG LINE`; returns the responses up to and with the tagged one.
    pub async fn imap(&mut self, tag: &str, line: &str) -> Vec<String> {
        self.send(&format!("{tag} {line}")).await;
        self.imap_until(tag).await
    }

    /// Reads responses up to and with the one tagged `tag`.
    pub async fn imap_until(&mut self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.imap_line().await;
            let done = l.starts_with(&format!("{tag} "));
            out.push(l);
            if done {
                return out;
            }
        }
    }
}

pub const POP3_DATE: &str = "Mon, 16 Apr 2001 16:48:00 -0400";

/// The three posts of the POP3 dialogue (T15), in `dev`.
pub async fn pop3_posts(a: &Archive) {
    for (s, b) in [
        ("message 1", "The full text of message 1."),
        (
            "message 2",
            ".A line that starts with a dot\r\nFrom the start",
        ),
        ("message 3", "The full text of message 3."),
    ] {
        a.post("dev", s, b, POP3_DATE).await;
    }
}

pub const IMAP_DATES: [&str; 3] = [
    "Mon, 16 Apr 2001 16:48:00 -0400",
    "Tue, 17 Apr 2001 09:00:00 +0000",
    "Wed, 18 Apr 2001 12:00:00 +0000",
];

/// Three posts of a thread on three days, in `dev`.
pub async fn imap_posts(a: &Archive) {
    let posts = [
        ("Release plans", "The release is on Friday.\r\nBring cake."),
        ("Cafe talk", "Meet at the cafe at 10."),
        ("Re: Release plans", "Friday works for me."),
    ];
    for ((s, b), d) in posts.iter().zip(IMAP_DATES) {
        a.post("dev", s, b, d).await;
    }
}

/// The archive UIDs of `list`, oldest first.
pub fn uids(a: &Archive, list: &str) -> Vec<i64> {
    let conn = a.env.store();
    let mut st = conn
        .prepare("SELECT id FROM archive_index WHERE list = ?1 ORDER BY id")
        .unwrap();
    st.query_map([list], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The tagged (last) line of an IMAP response.
pub fn tagged(r: &[String]) -> &str {
    r.last().unwrap()
}
