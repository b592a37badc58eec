//! Shared helpers for the integration tests: a temp-dir configuration
//! builder (listd.yaml + lists/*.yaml written as real files and loaded with
//! `Config::load`), an in-process daemon on 127.0.0.1:0, a small raw SMTP
//! client over a real TcpStream, and store/pipeline helpers.
//!
//! Each test file does `mod common;` and uses what it needs. Keep this file
//! additive: add functions, do not change the ones others use.
#![allow(dead_code)]

pub mod cli;
pub mod postfix;
pub mod sink;

pub use cli::Listd;

use listd::config::Config;
use listd::daemon::DaemonHandle;
use listd::handler::Ctx;
use listd::pipeline;
use listd::store::rusqlite::Connection;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The test domain.
pub const DOMAIN: &str = "lists.example.org";

/// How long the client waits for any one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The configuration builder
// ---------------------------------------------------------------------------

/// Builds a temp dir with `listd.yaml` and `lists/NAME.yaml`.
pub struct TestEnvBuilder {
    top: BTreeMap<String, String>,
    sections: BTreeMap<String, BTreeMap<String, String>>,
    lists: Vec<(String, String)>,
    zone: String,
}

impl Default for TestEnvBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnvBuilder {
    /// Defaults: domain `lists.example.org`, SMTP on 127.0.0.1:0, the repo's
    /// templates, data in the temp dir, relay 127.0.0.1:9 (nothing listens;
    /// set `relay_port` to a sink's port).
    pub fn new() -> Self {
        let mut b = TestEnvBuilder {
            top: BTreeMap::new(),
            sections: BTreeMap::new(),
            lists: Vec::new(),
            zone: String::new(),
        };
        let templates = repo_templates();
        b = b
            .global("domain", DOMAIN)
            .global("data_dir", "data")
            .global("lists_dir", "lists")
            .global("templates_dir", &yaml_str(&templates.display().to_string()))
            .set("smtp", "listen", "[\"127.0.0.1:0\"]")
            .set("smtp", "hostname", DOMAIN)
            .set("relay", "host", "127.0.0.1")
            .set("relay", "port", "9")
            .set("relay", "timeout_secs", "5");
        b
    }

    /// Sets a top-level key of listd.yaml (`value` is YAML).
    pub fn global(mut self, key: &str, value: &str) -> Self {
        self.top.insert(key.into(), value.into());
        self
    }

    /// Sets `section.key` of listd.yaml (`value` is YAML), e.g.
    /// `.set("smtp", "max_connections", "2")`.
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        self.sections
            .entry(section.into())
            .or_default()
            .insert(key.into(), value.into());
        self
    }

    /// Adds `lists/NAME.yaml` with this YAML text.
    pub fn list(mut self, name: &str, yaml: &str) -> Self {
        self.lists.push((name.into(), yaml.into()));
        self
    }

    /// Points the relay at 127.0.0.1:`port` (a test sink).
    pub fn relay_port(self, port: u16) -> Self {
        self.set("relay", "port", &port.to_string())
    }

    /// Also listens for LMTP on 127.0.0.1:0.
    pub fn lmtp(self) -> Self {
        self.set("lmtp", "listen", "[\"127.0.0.1:0\"]")
    }

    /// The DNS the daemon sees: this static zone file's text (see
    /// `contrib/static-zone.sample`). Without it the zone is empty: no test
    /// ever asks the network, and every name is NXDOMAIN.
    pub fn zone(mut self, text: &str) -> Self {
        self.zone = text.into();
        self
    }

    /// Writes the files.
    pub fn build(mut self) -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let dns = self.sections.entry("dns".into()).or_default();
        if !dns.contains_key("static_zone") && !dns.contains_key("servers") {
            std::fs::write(dir.path().join("static-zone"), &self.zone).expect("write zone");
            dns.insert("static_zone".into(), "static-zone".into());
        }
        let mut yaml = String::new();
        for (k, v) in &self.top {
            yaml += &format!("{k}: {v}\n");
        }
        for (section, keys) in &self.sections {
            yaml += &format!("{section}:\n");
            for (k, v) in keys {
                yaml += &format!("  {k}: {v}\n");
            }
        }
        let lists: Vec<(&str, &str)> = self
            .lists
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        let config_path = write_site(dir.path(), &yaml, &list_files(&lists));
        TestEnv { dir, config_path }
    }
}

/// Writes `dir/listd.yaml` (the text as given) and each `(file, text)` as
/// `dir/lists/FILE`; returns the path of listd.yaml. For tests that need
/// their configuration byte for byte (error lines and columns).
pub fn write_site<F: AsRef<Path>, T: AsRef<str>>(
    dir: &Path,
    global: &str,
    lists: &[(F, T)],
) -> PathBuf {
    let config_path = dir.join("listd.yaml");
    std::fs::write(&config_path, global).expect("write listd.yaml");
    std::fs::create_dir_all(dir.join("lists")).expect("lists dir");
    for (file, text) in lists {
        std::fs::write(dir.join("lists").join(file), text.as_ref()).expect("write list");
    }
    config_path
}

/// Lists given by name, as the files [`write_site`] writes: `NAME.yaml`.
pub fn list_files<'a>(lists: &[(&str, &'a str)]) -> Vec<(String, &'a str)> {
    lists
        .iter()
        .map(|(name, text)| (format!("{name}.yaml"), *text))
        .collect()
}

/// The handler context of a loaded configuration (its templates loaded).
pub fn ctx_for(config: Config) -> Ctx {
    let templates = listd::templates::Templates::for_config(&config).expect("templates load");
    Ctx {
        config: Arc::new(config),
        templates: Arc::new(templates),
    }
}

/// The repository's `templates/` directory.
pub fn repo_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

/// A YAML double-quoted string.
pub fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A daemon whose domain and hostname are `domain`, with these lists.
pub fn site_named(domain: &str, lists: &[(&str, &str)], trusted: bool) -> TestEnv {
    let mut b = TestEnv::builder()
        .global("domain", domain)
        .set("smtp", "hostname", domain);
    if !trusted {
        b = b.set("smtp", "trusted_networks", "[]");
    }
    for (name, yaml) in lists {
        b = b.list(name, yaml);
    }
    b.build()
}

/// A temp dir holding a configuration, and what tests do with it.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl TestEnv {
    /// `TestEnvBuilder::new()`.
    pub fn builder() -> TestEnvBuilder {
        TestEnvBuilder::new()
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Loads the configuration with the real loader (panics with the errors).
    pub fn config(&self) -> Config {
        match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => panic!("test config does not load:\n{e}"),
        }
    }

    /// Starts the daemon in-process.
    pub async fn start(&self) -> DaemonHandle {
        listd::daemon::start(self.config())
            .await
            .expect("daemon starts")
    }

    /// Opens the store (runs migrations).
    pub fn store(&self) -> Connection {
        listd::store::open(&self.config().db_path()).expect("open store")
    }

    /// The pipeline context for this configuration.
    pub fn ctx(&self) -> Ctx {
        ctx_for(self.config())
    }

    /// Runs `pipeline::drain` now; returns the rows handled.
    pub fn drain(&self) -> usize {
        self.drain_at(listd::store::now())
    }

    /// Runs `pipeline::drain` at a given time.
    pub fn drain_at(&self, now: i64) -> usize {
        let mut conn = self.store();
        pipeline::drain(&self.ctx(), &mut conn, now).expect("pipeline drain")
    }

    /// Adds members to a list directly in the store.
    pub fn add_members(&self, list: &str, addrs: &[&str]) {
        let conn = self.store();
        for a in addrs {
            let addr = listd::address::Address::parse(a).expect("member address");
            listd::store::members::add(
                &conn,
                list,
                &addr.to_string(),
                &addr.key(),
                None,
                listd::store::members::DeliveryMode::Each,
                listd::store::now(),
            )
            .expect("add member");
        }
    }

    /// Adds members with a delivery mode directly in the store.
    pub fn add_members_mode(
        &self,
        list: &str,
        addrs: &[&str],
        mode: listd::store::members::DeliveryMode,
    ) {
        let conn = self.store();
        for a in addrs {
            let addr = listd::address::Address::parse(a).expect("member address");
            listd::store::members::add(
                &conn,
                list,
                &addr.to_string(),
                &addr.key(),
                None,
                mode,
                listd::store::now(),
            )
            .expect("add member");
        }
    }

    /// Count of rows in a table (`where` may be empty).
    pub fn count(&self, table: &str, where_: &str) -> i64 {
        let sql = if where_.is_empty() {
            format!("SELECT COUNT(*) FROM {table}")
        } else {
            format!("SELECT COUNT(*) FROM {table} WHERE {where_}")
        };
        self.store()
            .query_row(&sql, [], |r| r.get(0))
            .expect("count query")
    }

    /// The stored inbound messages (id, bytes), oldest first.
    pub fn inbound_messages(&self) -> Vec<(i64, Vec<u8>)> {
        let conn = self.store();
        let mut stmt = conn
            .prepare("SELECT id, bytes FROM messages WHERE direction = 'in' ORDER BY id")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query");
        rows.collect::<Result<Vec<_>, _>>().expect("rows")
    }
}

// ---------------------------------------------------------------------------
// The raw SMTP client
// ---------------------------------------------------------------------------

/// One reply: the code and the text of each line (after `NNN-` / `NNN `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of all lines, joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The enhanced status code at the start of the first line, if any.
    pub fn status(&self) -> Option<&str> {
        let first = self.lines.first()?.split(' ').next()?;
        let parts: Vec<&str> = first.split('.').collect();
        (parts.len() == 3 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())))
            .then_some(first)
    }

    /// Panics unless the code is `code`.
    #[track_caller]
    pub fn expect(&self, code: u16) -> &Self {
        assert_eq!(self.code, code, "expected {code}, got {self:?}");
        self
    }
}

/// A raw SMTP/LMTP client over a real TCP connection.
pub struct SmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The 220 (or 421) the server greeted with.
    pub greeting: Reply,
}

impl SmtpClient {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> SmtpClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (r, w) = stream.into_split();
        let mut c = SmtpClient {
            reader: BufReader::new(r),
            writer: w,
            greeting: Reply {
                code: 0,
                lines: vec![],
            },
        };
        c.greeting = c.read_reply().await;
        c
    }

    /// Connects and says EHLO; panics unless both succeed.
    pub async fn connect_ehlo(addr: SocketAddr) -> SmtpClient {
        let mut c = SmtpClient::connect(addr).await;
        c.greeting.expect(220);
        c.ehlo("client.example").await.expect(250);
        c
    }

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Sends one line, adding CRLF.
    pub async fn send_line(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads one complete (possibly multi-line) reply; `None` on EOF.
    /// Panics on a malformed reply or after `REPLY_TIMEOUT`.
    pub async fn try_read_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        let mut code = None;
        loop {
            let mut line = String::new();
            let n = match tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_line(&mut line))
                .await
                .expect("reply timed out")
            {
                Ok(n) => n,
                // the server went away (a test killed it): like EOF
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => panic!("read reply: {e}"),
            };
            if n == 0 {
                assert!(lines.is_empty(), "EOF inside a multi-line reply: {lines:?}");
                return None;
            }
            let line = line
                .strip_suffix("\r\n")
                .unwrap_or_else(|| panic!("reply line without CRLF: {line:?}"));
            assert!(line.len() >= 4, "short reply line {line:?}");
            let c: u16 = line[..3].parse().expect("reply code");
            if let Some(prev) = code {
                assert_eq!(prev, c, "code changed inside a multi-line reply");
            }
            code = Some(c);
            let sep = &line[3..4];
            lines.push(line[4..].to_string());
            match sep {
                " " => return Some(Reply { code: c, lines }),
                "-" => continue,
                _ => panic!("bad separator in reply line {line:?}"),
            }
        }
    }

    /// Reads one reply; panics on EOF.
    pub async fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .await
            .expect("connection closed while waiting for a reply")
    }

    /// Sends a command line and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_line(line).await;
        self.read_reply().await
    }

    pub async fn ehlo(&mut self, name: &str) -> Reply {
        self.cmd(&format!("EHLO {name}")).await
    }

    /// MAIL, RCPT each, DATA, the message (newlines made CRLF, dot-stuffed)
    /// and the final dot, one step at a time; returns the reply to the end of
    /// data. Panics if MAIL, any RCPT or DATA is refused.
    pub async fn send_mail(&mut self, from: &str, rcpts: &[&str], message: &str) -> Reply {
        self.cmd(&format!("MAIL FROM:<{from}>")).await.expect(250);
        for r in rcpts {
            self.cmd(&format!("RCPT TO:<{r}>")).await.expect(250);
        }
        self.cmd("DATA").await.expect(354);
        self.send_raw(dot_stuff(message).as_bytes()).await;
        self.send_raw(b".\r\n").await;
        self.read_reply().await
    }

    /// QUIT and expect 221.
    pub async fn quit(mut self) {
        self.cmd("QUIT").await.expect(221);
    }

    /// Whether the server has closed the connection (reads until EOF,
    /// discarding anything else; false if still open after 2 s).
    pub async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(Duration::from_secs(2), self.reader.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Makes every line end in CRLF, dot-stuffs it and ends it with CRLF.
pub fn dot_stuff(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 16);
    let normalized = message.replace("\r\n", "\n");
    let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
    for line in body.split('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// Connects, EHLOs, sends one message and QUITs; returns the DATA reply.
pub async fn send(addr: SocketAddr, from: &str, rcpts: &[&str], message: &str) -> Reply {
    let mut c = SmtpClient::connect_ehlo(addr).await;
    let r = c.send_mail(from, rcpts, message).await;
    c.quit().await;
    r
}

/// A simple message with the given headers' values.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@test.example>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n{body}\r\n",
        rand_token()
    )
}

/// A unique token for Message-IDs and the like.
pub fn rand_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        listd::store::now()
    )
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// The real `listd serve` binary
// ---------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 for a daemon to bind later. Taken below
/// the kernel's ephemeral range (32768 and up): a port that `bind(0)`
/// handed out could be the source port of some test client's connection,
/// or another test's `bind(0)`, before the daemon binds it (`AddrInUse`).
/// A counter per test process hands each test its own, from a base that
/// differs by process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id() % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (base + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN)
}

/// A running `listd serve` child; killed (SIGKILL) if dropped while running.
pub struct ServeProcess(pub std::process::Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `listd --config ENV serve --log-level error`.
pub fn spawn_serve(env: &TestEnv) -> ServeProcess {
    ServeProcess(
        std::process::Command::new(env!("CARGO_BIN_EXE_listd"))
            .arg("--config")
            .arg(&env.config_path)
            .args(["serve", "--log-level", "error"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn listd serve"),
    )
}

/// Waits (up to 30 s) until something accepts connections on `addr`.
pub async fn wait_listening(addr: SocketAddr) {
    let up = async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("listd serve did not start listening");
}

/// The graceful-shutdown checks, once the daemon has been told to stop:
/// `idle` (between transactions) gets 421 4.3.2 and is closed, a new
/// connection to `addr` is greeted with 421, and `busy`, in the middle of
/// its DATA (`part one` sent), finishes with `part two`, gets its 250, and
/// then 421. `env` holds that one message afterwards.
pub async fn check_graceful_shutdown(
    addr: SocketAddr,
    idle: &mut SmtpClient,
    busy: &mut SmtpClient,
) {
    let r = idle.read_reply().await;
    r.expect(421);
    assert_eq!(r.status(), Some("4.3.2"));
    assert!(idle.closed().await);
    let late = SmtpClient::connect(addr).await;
    late.greeting.expect(421);
    busy.send_raw(b"part two\r\n.\r\n").await;
    busy.read_reply().await.expect(250);
    busy.send_line("NOOP").await;
    busy.read_reply().await.expect(421);
}

/// After [`check_graceful_shutdown`]: the one message is stored whole.
pub fn check_in_flight_message_stored(env: &TestEnv) {
    let msgs = env.inbound_messages();
    assert_eq!(msgs.len(), 1);
    assert!(String::from_utf8_lossy(&msgs[0].1).ends_with("part one\r\npart two\r\n"));
}

/// Starts `listd serve` like [`spawn_serve`], with extra environment
/// variables (e.g. `LISTD_FAULTS=1` for the fault-injection tests).
pub fn spawn_serve_env(env: &TestEnv, vars: &[(&str, &str)]) -> ServeProcess {
    ServeProcess(
        std::process::Command::new(env!("CARGO_BIN_EXE_listd"))
            .arg("--config")
            .arg(&env.config_path)
            .args(["serve", "--log-level", "error"])
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn listd serve"),
    )
}

/// Runs `listd --config ENV ARGS...`; returns (exit code, stdout, stderr).
pub fn run_cli(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    Listd::at(&env.config_path).run(args)
}
