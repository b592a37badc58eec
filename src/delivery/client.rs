//! The relay client: one SMTP connection to the relay MTA, driven with
//! lettre's connection-level API (`command`, `message`), never `send()`, so
//! every RCPT gets its own verdict.
//!
//! We make the TCP stream ourselves (TCP_NODELAY, else each transaction
//! stalls on Nagle + delayed ACK), then hand it to lettre; `starttls` and
//! implicit TLS (`tls`) go through lettre's rustls support, AUTH through
//! lettre's mechanisms. Every call is bounded by `relay.timeout_secs`. A
//! relay that answers EHLO with 5xx is reached again with HELO
//! (`super::hello`) and used without extensions.
//!
//! Trusts the relay's replies only as SMTP codes: 2xx/3xx go on, 4xx defers
//! the recipients it concerns, 5xx fails them; anything else (a dropped
//! connection, garbage, a timeout) breaks the connection and defers what was
//! not yet accepted.

use super::hello::{Hello, HelloStream};
use crate::config::{Config, RelayTls};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The verdict for one recipient of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    /// The relay took responsibility (250 after DATA).
    Sent,
    /// Permanent failure. `bounce` is true when the refusal was about this
    /// recipient (a 5xx to its RCPT), false when the whole message was
    /// refused (5xx to MAIL or DATA).
    Failed { reply: String, bounce: bool },
    /// Temporary failure (4xx, or the connection broke mid-transaction).
    Deferred(String),
    /// Never tried: the relay could not be reached.
    NotAttempted(String),
}

/// How to reach the relay; built once from the config.
#[derive(Clone)]
pub struct Relay {
    host: String,
    port: u16,
    tls: RelayTls,
    credentials: Option<Credentials>,
    helo: ClientId,
    timeout: Duration,
    /// Use PIPELINING when the relay offers it.
    pipelining: bool,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Relay({}:{}, {:?})", self.host, self.port, self.tls)
    }
}

/// A raw SMTP command line (lettre's `command` takes anything `Display`).
struct Line<'a>(&'a str, &'a str, &'a str);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}\r\n", self.0, self.1, self.2)
    }
}

/// What one command got back.
enum Reply {
    Ok,
    /// 4xx
    Temp(String),
    /// 5xx
    Perm(String),
    /// No usable reply: the connection is broken.
    Broken(String),
}

fn classify(
    r: Result<
        Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error>,
        tokio::time::error::Elapsed,
    >,
) -> Reply {
    match r {
        Err(_) => Reply::Broken("timed out waiting for the relay".into()),
        Ok(Ok(_)) => Reply::Ok,
        Ok(Err(e)) => match e.status() {
            Some(code) => {
                let text = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let reply = format!("{code} {text}").trim_end().to_string();
                if e.is_transient() {
                    if code.to_string() == "421" {
                        // the relay is closing the connection
                        Reply::Broken(reply)
                    } else {
                        Reply::Temp(reply)
                    }
                } else {
                    Reply::Perm(reply)
                }
            }
            None => Reply::Broken(e.to_string()),
        },
    }
}

impl Relay {
    pub fn from_config(config: &Config) -> Relay {
        let r = &config.relay;
        let helo = r
            .helo_name
            .clone()
            .unwrap_or_else(|| config.smtp.hostname.clone());
        Relay {
            host: r.host.clone(),
            port: r.port,
            tls: r.tls,
            credentials: match (&r.username, &r.password) {
                (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.clone())),
                _ => None,
            },
            helo: ClientId::Domain(helo),
            timeout: Duration::from_secs(r.timeout_secs.max(1)),
            pipelining: r.pipelining,
        }
    }

    /// `host:port`, for logs.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Opens a connection: TCP (nodelay), TLS if configured, EHLO, AUTH.
    /// An error here means the relay is unreachable or refuses us.
    pub async fn connect(&self) -> Result<RelayConn, String> {
        self.connect_to(None).await
    }

    /// The same relay settings for one mail exchanger: `host` (its name,
    /// for TLS and logs), reached at `ip`, with opportunistic STARTTLS
    /// (RFC 7435: encrypt when offered, without checking the certificate,
    /// and fall back to plain text when the handshake fails) and no AUTH.
    pub fn for_exchanger(&self, host: &str) -> Relay {
        Relay {
            host: host.trim_end_matches('.').to_string(),
            tls: RelayTls::None,
            credentials: None,
            ..self.clone()
        }
    }

    /// Connects to the exchanger at `ip` ([`Relay::for_exchanger`]); STARTTLS
    /// when offered, plain text if it fails.
    pub async fn connect_exchanger(&self, ip: std::net::IpAddr) -> Result<RelayConn, String> {
        match self.connect_to(Some((ip, true))).await {
            Err(e) if e.starts_with("STARTTLS") => {
                tracing::info!(exchanger = %self.host, %ip, error = %e, "STARTTLS failed; delivering in plain text");
                self.connect_to(Some((ip, false))).await
            }
            r => r,
        }
    }

    /// `at`: an address to reach instead of `host`, and whether to try
    /// opportunistic STARTTLS there. Opens with EHLO; a server that answers
    /// EHLO with 5xx is reached again and greeted with HELO, and the session
    /// then uses no extension ([`super::hello`]).
    async fn connect_to(&self, at: Option<(std::net::IpAddr, bool)>) -> Result<RelayConn, String> {
        match self.session(at, Hello::Ehlo).await {
            Err(Opening::EhloRefused(why)) => {
                tracing::info!(relay = %self.endpoint(), reply = %why, "EHLO refused; trying HELO");
                self.session(at, Hello::Helo)
                    .await
                    .map_err(|e| format!("{} (after EHLO was refused: {why})", e.text()))
            }
            r => r.map_err(|e| e.text().to_string()),
        }
    }

    /// One session opened with `hello`.
    async fn session(
        &self,
        at: Option<(std::net::IpAddr, bool)>,
        hello: Hello,
    ) -> Result<RelayConn, Opening> {
        let t = self.timeout;
        let endpoint = match at {
            Some((ip, _)) => format!("{} [{ip}]:{}", self.host, self.port),
            None => self.endpoint(),
        };
        let connecting = async {
            match at {
                Some((ip, _)) => tokio::net::TcpStream::connect((ip, self.port)).await,
                None => tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await,
            }
        };
        let tcp = tokio::time::timeout(t, connecting)
            .await
            .map_err(|_| format!("connecting to {endpoint} timed out"))?
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("set_nodelay: {e}"))?;
        let stream: Box<dyn lettre::transport::smtp::client::AsyncTokioStream> = match self.tls {
            RelayTls::Tls => Box::new(tls::wrap(tcp, &self.host, t).await?),
            _ => Box::new(tcp),
        };
        let (stream, wrote) = HelloStream::new(stream, hello);
        let opened = tokio::time::timeout(
            t,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.helo),
        )
        .await
        .map_err(|_| format!("{} did not greet in time", self.endpoint()))?;
        let mut conn = match opened {
            Ok(c) => c,
            // a 5xx after we wrote: the reply to EHLO, not the greeting
            Err(e) if hello == Hello::Ehlo && wrote.load(Ordering::Relaxed) && e.is_permanent() => {
                return Err(Opening::EhloRefused(e.to_string()));
            }
            Err(e) => {
                return Err(format!("{} refused the session: {e}", self.endpoint()).into());
            }
        };
        let opportunistic = matches!(at, Some((_, true))) && conn.can_starttls();
        if opportunistic {
            // opportunistic (RFC 7435): any certificate, any name
            let params = TlsParameters::builder(self.host.clone())
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true)
                .build()
                .map_err(|e| format!("TLS parameters for {}: {e}", self.host))?;
            tokio::time::timeout(t, conn.starttls(params, &self.helo))
                .await
                .map_err(|_| format!("STARTTLS with {endpoint} timed out"))?
                .map_err(|e| format!("STARTTLS with {endpoint} failed: {e}"))?;
        }
        if self.tls == RelayTls::Starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(format!(
                    "relay.tls is starttls but {} does not offer STARTTLS",
                    self.endpoint()
                )
                .into());
            }
            let params = TlsParameters::new(self.host.clone())
                .map_err(|e| format!("TLS parameters for {}: {e}", self.host))?;
            tokio::time::timeout(t, conn.starttls(params, &self.helo))
                .await
                .map_err(|_| format!("STARTTLS with {} timed out", self.endpoint()))?
                .map_err(|e| format!("STARTTLS with {} failed: {e}", self.endpoint()))?;
        }
        if let Some(creds) = &self.credentials {
            let r =
                tokio::time::timeout(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], creds))
                    .await;
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    conn.abort().await;
                    return Err(format!("AUTH with {} failed: {e}", self.endpoint()).into());
                }
                Err(_) => return Err(format!("AUTH with {} timed out", self.endpoint()).into()),
            }
        }
        let eightbit = conn.server_info().supports_feature(Extension::EightBitMime);
        let smtputf8 = conn.server_info().supports_feature(Extension::SmtpUtfEight);
        // lettre's ServerInfo does not keep PIPELINING (RFC 2920): ask again
        // (after HELO there is no extension to ask about)
        let helo = self.helo.to_string();
        let pipelining = hello == Hello::Ehlo
            && match tokio::time::timeout(t, conn.command(Line("EHLO ", &helo, ""))).await {
                Ok(Ok(resp)) => resp
                    .message()
                    .any(|l| l.split_whitespace().next() == Some("PIPELINING")),
                Ok(Err(e)) => return Err(format!("EHLO to {} failed: {e}", self.endpoint()).into()),
                Err(_) => return Err(format!("EHLO to {} timed out", self.endpoint()).into()),
            };
        Ok(RelayConn {
            conn,
            timeout: t,
            eightbit,
            smtputf8,
            pipelining: pipelining && self.pipelining,
            broken: false,
        })
    }
}

/// Why a session did not open: the server refused EHLO (try HELO), or
/// anything else (the text says what).
enum Opening {
    EhloRefused(String),
    Failed(String),
}

impl Opening {
    fn text(&self) -> &str {
        match self {
            Opening::EhloRefused(t) | Opening::Failed(t) => t,
        }
    }
}

impl From<String> for Opening {
    fn from(t: String) -> Opening {
        Opening::Failed(t)
    }
}

/// An open relay connection, reusable for many transactions.
pub struct RelayConn {
    conn: AsyncSmtpConnection,
    timeout: Duration,
    eightbit: bool,
    smtputf8: bool,
    /// Send MAIL, every RCPT and DATA in one write, then read the replies.
    pipelining: bool,
    broken: bool,
}

/// The body as handed to lettre's `message`, which adds the final CRLF.CRLF.
fn data_of(body: &[u8]) -> &[u8] {
    body.strip_suffix(b"\r\n").unwrap_or(body)
}

/// Whether an address can go into MAIL/RCPT as is.
fn sendable(addr: &str) -> bool {
    !addr.is_empty()
        && !addr
            .bytes()
            .any(|b| b == b'\r' || b == b'\n' || b == b'<' || b == b'>')
}

impl RelayConn {
    /// Whether the server offered 8BITMIME (else it gets 7-bit data only).
    pub fn takes_8bit(&self) -> bool {
        self.eightbit
    }

    /// Whether the connection can carry another transaction.
    pub fn is_usable(&self) -> bool {
        !self.broken && !self.conn.has_broken()
    }

    async fn cmd(&mut self, verb: &str, arg: &str, params: &str) -> Reply {
        let r =
            tokio::time::timeout(self.timeout, self.conn.command(Line(verb, arg, params))).await;
        let reply = classify(r);
        if matches!(reply, Reply::Broken(_)) {
            self.broken = true;
        }
        reply
    }

    async fn rset(&mut self) {
        if let Reply::Broken(_) = self.cmd("RSET", "", "").await {
            self.broken = true;
        }
    }

    /// One SMTP transaction: `from` to every recipient in `rcpts`, `body`
    /// once. Returns one verdict per recipient, in order. If every RCPT is
    /// refused, sends RSET and skips DATA.
    pub async fn transaction(
        &mut self,
        from: &str,
        rcpts: &[&str],
        body: &[u8],
    ) -> Vec<RcptResult> {
        let mut out: Vec<Option<RcptResult>> = vec![None; rcpts.len()];
        let broken =
            |why: &str| RcptResult::Deferred(format!("connection to the relay broke: {why}"));
        if !sendable(from) && !from.is_empty() {
            return vec![
                RcptResult::Failed {
                    reply: format!("invalid envelope sender `{from}`"),
                    bounce: false
                };
                rcpts.len()
            ];
        }
        let mut params = String::new();
        if self.eightbit && !body.is_ascii() {
            params.push_str(" BODY=8BITMIME");
        }
        if self.smtputf8 && (!from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii())) {
            params.push_str(" SMTPUTF8");
        }
        if self.pipelining {
            return self.pipelined(from, rcpts, body, &params).await;
        }
        let from_arg = format!("<{from}>");
        match self.cmd("MAIL FROM:", &from_arg, &params).await {
            Reply::Ok => {}
            Reply::Temp(r) => {
                self.rset().await;
                return vec![RcptResult::Deferred(r); rcpts.len()];
            }
            Reply::Perm(r) => {
                self.rset().await;
                return vec![
                    RcptResult::Failed {
                        reply: r,
                        bounce: false
                    };
                    rcpts.len()
                ];
            }
            Reply::Broken(r) => return vec![broken(&r); rcpts.len()],
        }
        let mut accepted = Vec::with_capacity(rcpts.len());
        for (i, rcpt) in rcpts.iter().enumerate() {
            if !sendable(rcpt) {
                out[i] = Some(RcptResult::Failed {
                    reply: format!("invalid recipient address `{rcpt}`"),
                    bounce: true,
                });
                continue;
            }
            let arg = format!("<{rcpt}>");
            match self.cmd("RCPT TO:", &arg, "").await {
                Reply::Ok => accepted.push(i),
                Reply::Temp(r) => out[i] = Some(RcptResult::Deferred(r)),
                Reply::Perm(r) => {
                    out[i] = Some(RcptResult::Failed {
                        reply: r,
                        bounce: true,
                    })
                }
                Reply::Broken(r) => {
                    return fill(out, broken(&r));
                }
            }
        }
        if accepted.is_empty() {
            self.rset().await;
            return fill(out, RcptResult::Deferred("no recipient accepted".into()));
        }
        let data_verdict = match self.cmd("DATA", "", "").await {
            Reply::Ok => {
                let r = tokio::time::timeout(self.timeout, self.conn.message(data_of(body))).await;
                let r = classify(r);
                if matches!(r, Reply::Broken(_)) {
                    self.broken = true;
                }
                r
            }
            other => {
                if !matches!(other, Reply::Broken(_)) {
                    self.rset().await;
                }
                other
            }
        };
        let verdict = match data_verdict {
            Reply::Ok => RcptResult::Sent,
            Reply::Temp(r) => RcptResult::Deferred(r),
            Reply::Perm(r) => RcptResult::Failed {
                reply: r,
                bounce: false,
            },
            Reply::Broken(r) => broken(&r),
        };
        for i in accepted {
            out[i] = Some(verdict.clone());
        }
        fill(out, RcptResult::Deferred("no verdict".into()))
    }

    async fn read_reply(&mut self) -> Reply {
        let r = tokio::time::timeout(self.timeout, self.conn.read_response()).await;
        let reply = classify(r);
        if matches!(reply, Reply::Broken(_)) {
            self.broken = true;
        }
        reply
    }

    /// The same transaction with RFC 2920 pipelining: MAIL, the RCPTs and
    /// DATA go in one write; the replies are read back in order.
    async fn pipelined(
        &mut self,
        from: &str,
        rcpts: &[&str],
        body: &[u8],
        params: &str,
    ) -> Vec<RcptResult> {
        let mut out: Vec<Option<RcptResult>> = vec![None; rcpts.len()];
        let broken =
            |why: &str| RcptResult::Deferred(format!("connection to the relay broke: {why}"));
        let mut group =
            String::with_capacity(32 + rcpts.iter().map(|r| r.len() + 12).sum::<usize>());
        group.push_str("MAIL FROM:<");
        group.push_str(from);
        group.push('>');
        group.push_str(params);
        group.push_str("\r\n");
        let mut sent_rcpts = Vec::with_capacity(rcpts.len());
        for (i, rcpt) in rcpts.iter().enumerate() {
            if sendable(rcpt) {
                group.push_str("RCPT TO:<");
                group.push_str(rcpt);
                group.push_str(">\r\n");
                sent_rcpts.push(i);
            } else {
                out[i] = Some(RcptResult::Failed {
                    reply: format!("invalid recipient address `{rcpt}`"),
                    bounce: true,
                });
            }
        }
        group.push_str("DATA");
        // `command` writes the whole group and reads the first reply (MAIL's)
        let mail = {
            let r =
                tokio::time::timeout(self.timeout, self.conn.command(Line(&group, "", ""))).await;
            let reply = classify(r);
            if matches!(reply, Reply::Broken(_)) {
                self.broken = true;
            }
            reply
        };
        if let Reply::Broken(r) = &mail {
            return fill(out, broken(r));
        }
        let mut accepted = Vec::with_capacity(sent_rcpts.len());
        for &i in &sent_rcpts {
            match self.read_reply().await {
                Reply::Ok => accepted.push(i),
                Reply::Temp(r) => out[i] = Some(RcptResult::Deferred(r)),
                Reply::Perm(r) => {
                    out[i] = Some(RcptResult::Failed {
                        reply: r,
                        bounce: true,
                    })
                }
                Reply::Broken(r) => return fill(out, broken(&r)),
            }
        }
        let data = self.read_reply().await;
        let mail_failed = match mail {
            Reply::Temp(r) => Some(RcptResult::Deferred(r)),
            Reply::Perm(r) => Some(RcptResult::Failed {
                reply: r,
                bounce: false,
            }),
            _ => None,
        };
        if let Some(verdict) = mail_failed {
            // the RCPT and DATA replies were read only to stay in step
            if matches!(data, Reply::Ok) {
                // a server that says 354 without a transaction: do not send
                self.broken = true;
            } else if !self.broken {
                self.rset().await;
            }
            return rcpts.iter().map(|_| verdict.clone()).collect();
        }
        if accepted.is_empty() {
            if matches!(data, Reply::Ok) {
                self.broken = true;
            } else if !self.broken {
                self.rset().await;
            }
            return fill(out, RcptResult::Deferred("no recipient accepted".into()));
        }
        let verdict = match data {
            Reply::Ok => {
                let r = tokio::time::timeout(self.timeout, self.conn.message(data_of(body))).await;
                match classify(r) {
                    Reply::Ok => RcptResult::Sent,
                    Reply::Temp(r) => RcptResult::Deferred(r),
                    Reply::Perm(r) => RcptResult::Failed {
                        reply: r,
                        bounce: false,
                    },
                    Reply::Broken(r) => {
                        self.broken = true;
                        broken(&r)
                    }
                }
            }
            Reply::Temp(r) => {
                self.rset().await;
                RcptResult::Deferred(r)
            }
            Reply::Perm(r) => {
                self.rset().await;
                RcptResult::Failed {
                    reply: r,
                    bounce: false,
                }
            }
            Reply::Broken(r) => broken(&r),
        };
        for i in accepted {
            out[i] = Some(verdict.clone());
        }
        fill(out, RcptResult::Deferred("no verdict".into()))
    }

    /// Whether `verp_stream` can carry this body (pipelining on, and a UTF-8
    /// body, since lettre's `command` writes text).
    pub fn can_stream(&self, body: &[u8]) -> bool {
        self.pipelining && std::str::from_utf8(body).is_ok()
    }

    /// VERP: one transaction per recipient, each with its own envelope
    /// sender (`sender(rcpt)`), streamed with RFC 2920 pipelining so each
    /// recipient costs one round trip: a recipient's message content (which
    /// RFC 2920 allows first in a group) goes in the same write as the next
    /// recipient's MAIL, RCPT and DATA. The caller checks `can_stream`.
    pub async fn verp_stream(
        &mut self,
        rcpts: &[&str],
        sender: impl Fn(&str) -> String,
        body: &[u8],
    ) -> Vec<RcptResult> {
        let n = rcpts.len();
        let mut out: Vec<Option<RcptResult>> = vec![None; n];
        let broken =
            |why: &str| RcptResult::Deferred(format!("connection to the relay broke: {why}"));
        let Ok(text) = std::str::from_utf8(data_of(body)) else {
            return vec![RcptResult::NotAttempted("body is not UTF-8".into()); n];
        };
        // the content as it goes on the wire, with the final dot line
        let mut content = String::with_capacity(text.len() + text.len() / 64 + 8);
        let mut at_line_start = true;
        for c in text.chars() {
            if at_line_start && c == '.' {
                content.push('.');
            }
            content.push(c);
            at_line_start = c == '\n';
        }
        content.push_str("\r\n.");
        let mut params = String::new();
        if self.eightbit && !body.is_ascii() {
            params.push_str(" BODY=8BITMIME");
        }
        let mut pending: Option<usize> = None; // whose content leads the next group
        let mut need_rset = false;
        let mut i = 0;
        let mut group = String::new();
        while pending.is_some() || i < n {
            // skip what cannot be sent
            while i < n && !sendable(rcpts[i]) {
                out[i] = Some(RcptResult::Failed {
                    reply: format!("invalid recipient address `{}`", rcpts[i]),
                    bounce: true,
                });
                i += 1;
            }
            group.clear();
            let lead = pending.take();
            if lead.is_some() {
                group.push_str(&content);
            }
            let next = (i < n).then_some(i);
            if let Some(k) = next {
                let from = sender(rcpts[k]);
                let smtputf8 = self.smtputf8 && (!from.is_ascii() || !rcpts[k].is_ascii());
                for line in [
                    if need_rset { "RSET" } else { "" },
                    &format!(
                        "MAIL FROM:<{from}>{params}{}",
                        if smtputf8 { " SMTPUTF8" } else { "" }
                    ),
                    &format!("RCPT TO:<{}>", rcpts[k]),
                    "DATA",
                ] {
                    if line.is_empty() {
                        continue;
                    }
                    if !group.is_empty() {
                        group.push_str("\r\n");
                    }
                    group.push_str(line);
                }
                i += 1;
            } else if lead.is_none() {
                break;
            }
            // `command` writes the group (adding the last CRLF) and reads the first reply
            let first = {
                let r = tokio::time::timeout(self.timeout, self.conn.command(Line(&group, "", "")))
                    .await;
                let reply = classify(r);
                if matches!(reply, Reply::Broken(_)) {
                    self.broken = true;
                }
                reply
            };
            let mut replies = vec![first];
            let expected =
                usize::from(lead.is_some()) + next.map_or(0, |_| 3 + usize::from(need_rset));
            while replies.len() < expected && !self.broken {
                let r = self.read_reply().await;
                replies.push(r);
            }
            if let Some(Reply::Broken(why)) = replies.iter().find(|r| matches!(r, Reply::Broken(_)))
            {
                let why = why.clone();
                for k in lead.into_iter().chain(next) {
                    out[k] = Some(broken(&why));
                }
                return fill(
                    out,
                    RcptResult::NotAttempted(
                        "connection to the relay broke earlier in this batch".into(),
                    ),
                );
            }
            let mut it = replies.into_iter();
            if let Some(l) = lead {
                out[l] = Some(match it.next() {
                    Some(Reply::Ok) => RcptResult::Sent,
                    Some(Reply::Temp(r)) => RcptResult::Deferred(r),
                    Some(Reply::Perm(r)) => RcptResult::Failed {
                        reply: r,
                        bounce: false,
                    },
                    _ => broken("no reply to the message content"),
                });
            }
            let Some(k) = next else { break };
            if need_rset {
                let _ = it.next();
                need_rset = false;
            }
            let (mail, rcpt, data) = (it.next(), it.next(), it.next());
            let verdict = match (mail, rcpt) {
                (Some(Reply::Temp(r)), _) | (Some(Reply::Ok), Some(Reply::Temp(r))) => {
                    Some(RcptResult::Deferred(r))
                }
                (Some(Reply::Perm(r)), _) => Some(RcptResult::Failed {
                    reply: r,
                    bounce: false,
                }),
                (Some(Reply::Ok), Some(Reply::Perm(r))) => Some(RcptResult::Failed {
                    reply: r,
                    bounce: true,
                }),
                _ => None,
            };
            match (verdict, data) {
                (None, Some(Reply::Ok)) => pending = Some(k),
                (None, Some(Reply::Temp(r))) => {
                    out[k] = Some(RcptResult::Deferred(r));
                    need_rset = true;
                }
                (None, Some(Reply::Perm(r))) => {
                    out[k] = Some(RcptResult::Failed {
                        reply: r,
                        bounce: false,
                    });
                    need_rset = true;
                }
                (Some(v), Some(Reply::Ok)) => {
                    // 354 without a transaction: never send; drop the connection
                    out[k] = Some(v);
                    self.broken = true;
                    return fill(out, RcptResult::NotAttempted("relay out of step".into()));
                }
                (Some(v), _) => {
                    out[k] = Some(v);
                    need_rset = true;
                }
                (None, _) => {
                    self.broken = true;
                    return fill(out, broken("missing reply"));
                }
            }
        }
        if need_rset && !self.broken {
            self.rset().await;
        }
        fill(out, RcptResult::Deferred("no verdict".into()))
    }

    /// Says QUIT (best effort) and closes.
    pub async fn quit(mut self) {
        if self.is_usable() {
            let _ = tokio::time::timeout(self.timeout, self.conn.quit()).await;
        }
    }
}

fn fill(out: Vec<Option<RcptResult>>, rest: RcptResult) -> Vec<RcptResult> {
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| rest.clone()))
        .collect()
}

/// Implicit TLS (`relay.tls: tls`): lettre upgrades our own nodelay stream,
/// and an adapter hands the TLS stream back to lettre as a transport.
mod tls {
    #![allow(deprecated)]
    use lettre::transport::smtp::client::{AsyncNetworkStream, AsyncTokioStream, TlsParameters};
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A TLS stream over our TCP stream, as a tokio stream.
    #[derive(Debug)]
    pub struct TlsOverTcp {
        inner: AsyncNetworkStream,
        peer: std::net::SocketAddr,
    }

    pub async fn wrap(
        tcp: tokio::net::TcpStream,
        host: &str,
        t: Duration,
    ) -> Result<TlsOverTcp, String> {
        let peer = tcp.peer_addr().map_err(|e| e.to_string())?;
        let mut inner = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        let params = TlsParameters::new(host.to_string())
            .map_err(|e| format!("TLS parameters for {host}: {e}"))?;
        tokio::time::timeout(t, inner.upgrade_tls(params))
            .await
            .map_err(|_| format!("TLS handshake with {host} timed out"))?
            .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
        Ok(TlsOverTcp { inner, peer })
    }

    impl AsyncRead for TlsOverTcp {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let dst = buf.initialize_unfilled();
            match futures_util::io::AsyncRead::poll_read(Pin::new(&mut self.inner), cx, dst) {
                Poll::Ready(Ok(n)) => {
                    buf.advance(n);
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    impl AsyncWrite for TlsOverTcp {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            futures_util::io::AsyncWrite::poll_write(Pin::new(&mut self.inner), cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            futures_util::io::AsyncWrite::poll_flush(Pin::new(&mut self.inner), cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            futures_util::io::AsyncWrite::poll_close(Pin::new(&mut self.inner), cx)
        }
    }

    impl AsyncTokioStream for TlsOverTcp {
        fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
            Ok(self.peer)
        }
    }
}
