//! A capturing SMTP sink: the test double that plays the relay MTA.
//!
//! It listens on 127.0.0.1 (port 0 unless told otherwise), speaks enough
//! ESMTP for listd's relay client (EHLO with PIPELINING, 8BITMIME, SMTPUTF8,
//! ENHANCEDSTATUSCODES and optionally AUTH PLAIN; MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT), and records every completed transaction: its MAIL FROM, its
//! accepted RCPTs and its DATA bytes (dot-unstuffed, without the final dot).
//!
//! It can also play an older server: one that answers EHLO (or HELO too)
//! with 502, or one that does not offer 8BITMIME (it then refuses
//! `BODY=8BITMIME` with 555, as it does any MAIL parameter after HELO).
//!
//! It can be told to answer chosen recipients with a 4xx/5xx reply (always,
//! or N times then accept), to fail the next N DATA commands, to refuse
//! connections with a greeting like `421`, or to be down (not listening:
//! `stop()`, then `start_on(addr)` to bring it back on the same port).
//!
//! It runs on its own thread with its own tokio runtime, so sync tests,
//! async tests and tests that spawn the real binary can all use it. It trusts
//! its client no more than a test needs: lines are bounded, bad commands get
//! 500/503 rather than a panic.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One completed (250 after DATA) transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The reverse-path without brackets ("" for the null sender).
    pub mail_from: String,
    /// The accepted recipients, in RCPT order, without brackets.
    pub rcpts: Vec<String>,
    /// The message as received: dot-unstuffed, CRLF line ends, no final dot.
    pub data: Vec<u8>,
    /// What followed the reverse-path on the MAIL line (e.g. " BODY=8BITMIME").
    pub mail_params: String,
}

#[derive(Debug, Clone)]
struct Scripted {
    reply: String,
    /// How many more times to answer this way; None: always.
    remaining: Option<u32>,
}

#[derive(Default)]
struct State {
    transactions: Vec<Transaction>,
    rcpt_replies: HashMap<String, Scripted>,
    data_failures: Vec<String>,
    greeting: Option<String>,
    auth: Option<(String, String)>,
    connections: usize,
    /// Every RCPT the sink answered with an error: (rcpt, reply).
    refused: Vec<(String, String)>,
    /// Pause before answering the end of DATA (to slow a fan-out down).
    data_delay: Duration,
    /// Close the connection instead of answering the next N ends of DATA.
    drop_at_data: u32,
    /// DATA bytes received in transactions that got an error at the end.
    failed_data: usize,
    /// Answer EHLO / HELO with 502.
    refuse_ehlo: bool,
    refuse_helo: bool,
    /// Leave 8BITMIME (and SMTPUTF8) out of the EHLO reply.
    seven_bit: bool,
    /// The hello verb of each EHLO/HELO received, in order.
    hellos: Vec<String>,
    /// EHLO answered with these bytes as they are (a malformed server).
    ehlo_raw: Option<String>,
}

/// A running sink. Dropping it stops it.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sink {
    /// Starts a sink on 127.0.0.1 on a free port.
    pub fn start() -> Sink {
        Sink::start_on("127.0.0.1:0".parse().unwrap()).expect("bind sink")
    }

    /// Starts a sink on a given address (to bring a "down" relay back).
    pub fn start_on(addr: SocketAddr) -> std::io::Result<Sink> {
        Sink::start_with_state(addr, Arc::new(Mutex::new(State::default())))
    }

    /// A free port on 127.0.0.1 with nothing listening: a relay that is down.
    pub fn reserve_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn start_with_state(addr: SocketAddr, state: Arc<Mutex<State>>) -> std::io::Result<Sink> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("sink runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let accept = async {
                    loop {
                        let Ok((sock, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = sock.set_nodelay(true);
                        let st = st.clone();
                        tokio::spawn(async move {
                            let _ = session(sock, st).await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = rx => {}
                }
            });
            // dropping the runtime closes every open session
        });
        Ok(Sink {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops listening and closes every session (the relay goes down).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Answers RCPT TO:<rcpt> with `reply` (e.g. "550 5.1.1 no such user") every time.
    pub fn reply_to_rcpt(&self, rcpt: &str, reply: &str) {
        lock(&self.state).rcpt_replies.insert(
            rcpt.to_string(),
            Scripted {
                reply: reply.to_string(),
                remaining: None,
            },
        );
    }

    /// Answers RCPT TO:<rcpt> with `reply` the next `times` times, then accepts it.
    pub fn reply_to_rcpt_times(&self, rcpt: &str, reply: &str, times: u32) {
        lock(&self.state).rcpt_replies.insert(
            rcpt.to_string(),
            Scripted {
                reply: reply.to_string(),
                remaining: Some(times),
            },
        );
    }

    /// Answers the end of the next `times` DATA with `reply` (e.g. "451 4.3.0 try later").
    pub fn fail_data(&self, reply: &str, times: u32) {
        let mut s = lock(&self.state);
        for _ in 0..times {
            s.data_failures.push(reply.to_string());
        }
    }

    /// Greets new connections with this reply (e.g. "421 4.3.2 not now") and
    /// closes them; None to accept connections again.
    pub fn refuse_connections(&self, greeting: Option<&str>) {
        lock(&self.state).greeting = greeting.map(str::to_string);
    }

    /// Closes the connection, without a reply, at the end of the next
    /// `times` DATA (the message was received; the verdict never comes).
    pub fn drop_at_data(&self, times: u32) {
        lock(&self.state).drop_at_data = times;
    }

    /// Waits this long before answering each end of DATA.
    pub fn set_data_delay(&self, d: Duration) {
        lock(&self.state).data_delay = d;
    }

    /// Requires AUTH PLAIN with these credentials before MAIL.
    pub fn require_auth(&self, user: &str, pass: &str) {
        lock(&self.state).auth = Some((user.to_string(), pass.to_string()));
    }

    /// Answers EHLO with 502 (an RFC 821 server); `helo_too`: HELO as well.
    pub fn refuse_ehlo(&self, helo_too: bool) {
        let mut s = lock(&self.state);
        s.refuse_ehlo = true;
        s.refuse_helo = helo_too;
    }

    /// Stops offering 8BITMIME and SMTPUTF8 (a 7-bit relay).
    pub fn without_8bitmime(&self) {
        lock(&self.state).seven_bit = true;
    }

    /// Answers EHLO with `raw` as it is, however malformed: the seeds' T6
    /// server, whose `250 HELP` final line comes before more `250-` lines.
    pub fn answer_ehlo_raw(&self, raw: &str) {
        lock(&self.state).ehlo_raw = Some(raw.to_string());
    }

    /// Each EHLO or HELO verb received so far, in order.
    pub fn hellos(&self) -> Vec<String> {
        lock(&self.state).hellos.clone()
    }

    /// Completed transactions so far.
    pub fn transactions(&self) -> Vec<Transaction> {
        lock(&self.state).transactions.clone()
    }

    /// Every recipient of every completed transaction, in order.
    pub fn delivered(&self) -> Vec<String> {
        lock(&self.state)
            .transactions
            .iter()
            .flat_map(|t| t.rcpts.iter().cloned())
            .collect()
    }

    /// Number of recipients delivered so far.
    pub fn delivered_count(&self) -> usize {
        lock(&self.state)
            .transactions
            .iter()
            .map(|t| t.rcpts.len())
            .sum()
    }

    /// Every (rcpt, reply) the sink refused.
    pub fn refused(&self) -> Vec<(String, String)> {
        lock(&self.state).refused.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.state).connections
    }

    /// Waits until at least `n` recipients were delivered; false on timeout.
    pub fn wait_for_delivered(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.delivered_count() >= n {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

const MAX_LINE: usize = 4096;

fn angle(arg: &str) -> Option<String> {
    let a = arg.trim();
    let start = a.find('<')?;
    let end = a[start..].find('>')? + start;
    Some(a[start + 1..end].to_string())
}

async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Option<()> {
    buf.clear();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', buf)
        .await
        .ok()?;
    if n == 0 {
        return None;
    }
    Some(())
}

async fn session(sock: tokio::net::TcpStream, st: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let greeting = {
        let mut s = lock(&st);
        s.connections += 1;
        s.greeting.clone()
    };
    if let Some(g) = greeting {
        w.write_all(format!("{g}\r\n").as_bytes()).await?;
        return Ok(());
    }
    w.write_all(b"220 sink.test ESMTP capturing sink\r\n")
        .await?;
    let mut line = Vec::new();
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut authed = false;
    let mut esmtp = false;
    let mut mail_params = String::new();
    let mut out = Vec::<u8>::new();
    loop {
        // flush replies when no more pipelined input is buffered
        if r.buffer().is_empty() && !out.is_empty() {
            w.write_all(&out).await?;
            out.clear();
        }
        if read_line(&mut r, &mut line).await.is_none() {
            if !out.is_empty() {
                w.write_all(&out).await?;
            }
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.split_once([' ', ':']) {
            Some((v, _)) => (v.to_ascii_uppercase(), &text[v.len()..]),
            None => (text.to_ascii_uppercase(), ""),
        };
        let need_auth = lock(&st).auth.is_some() && !authed;
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let (refused, seven_bit, auth, raw) = {
                    let mut s = lock(&st);
                    s.hellos.push(verb.clone());
                    let refused = if verb == "EHLO" {
                        s.refuse_ehlo
                    } else {
                        s.refuse_helo
                    };
                    let raw = s.ehlo_raw.clone().filter(|_| verb == "EHLO");
                    (refused, s.seven_bit, s.auth.is_some(), raw)
                };
                if let Some(raw) = raw {
                    esmtp = true;
                    out.extend_from_slice(raw.as_bytes());
                } else if refused {
                    out.extend_from_slice(b"502 5.5.1 command not implemented\r\n");
                } else if verb == "HELO" {
                    esmtp = false;
                    out.extend_from_slice(b"250 sink.test\r\n");
                } else {
                    esmtp = true;
                    let auth = if auth { "250-AUTH PLAIN\r\n" } else { "" };
                    let eight = if seven_bit {
                        ""
                    } else {
                        "250-8BITMIME\r\n250-SMTPUTF8\r\n"
                    };
                    out.extend_from_slice(
                        format!("250-sink.test\r\n250-PIPELINING\r\n{eight}{auth}250-SIZE 0\r\n250 ENHANCEDSTATUSCODES\r\n").as_bytes(),
                    );
                }
            }
            "AUTH" => {
                let mut parts = arg.split_whitespace();
                let mech = parts.next().unwrap_or("").to_ascii_uppercase();
                let creds = parts.next().unwrap_or("");
                let want = lock(&st).auth.clone();
                use base64::Engine;
                let ok = mech == "PLAIN"
                    && match (
                        want,
                        base64::engine::general_purpose::STANDARD.decode(creds),
                    ) {
                        (Some((u, p)), Ok(d)) => d == format!("\0{u}\0{p}").into_bytes(),
                        _ => false,
                    };
                if ok {
                    authed = true;
                    out.extend_from_slice(b"235 2.7.0 authenticated\r\n");
                } else {
                    out.extend_from_slice(b"535 5.7.8 bad credentials\r\n");
                }
            }
            "MAIL" if need_auth => out.extend_from_slice(b"530 5.7.0 authentication required\r\n"),
            "MAIL" => {
                let params = arg.rsplit_once('>').map_or("", |(_, p)| p).to_string();
                let eight_ok = esmtp && !lock(&st).seven_bit;
                let refused_param = params
                    .split_whitespace()
                    .any(|p| !esmtp || (!eight_ok && p.to_ascii_uppercase().starts_with("BODY=8")));
                if from.is_some() {
                    out.extend_from_slice(b"503 5.5.1 nested MAIL\r\n");
                } else if refused_param {
                    out.extend_from_slice(b"555 5.5.4 MAIL parameter not supported\r\n");
                } else if let Some(a) = angle(arg) {
                    from = Some(a);
                    mail_params = params;
                    out.extend_from_slice(b"250 2.1.0 ok\r\n");
                } else {
                    out.extend_from_slice(b"501 5.5.4 syntax: MAIL FROM:<address>\r\n");
                }
            }
            "RCPT" => {
                if from.is_none() {
                    out.extend_from_slice(b"503 5.5.1 need MAIL first\r\n");
                } else if let Some(a) = angle(arg) {
                    let scripted = {
                        let mut s = lock(&st);
                        let hit = match s.rcpt_replies.get_mut(&a) {
                            Some(sc) => match sc.remaining {
                                None => Some(sc.reply.clone()),
                                Some(0) => None,
                                Some(ref mut n) => {
                                    *n -= 1;
                                    Some(sc.reply.clone())
                                }
                            },
                            None => None,
                        };
                        if let Some(reply) = &hit {
                            s.refused.push((a.clone(), reply.clone()));
                        }
                        hit
                    };
                    match scripted {
                        Some(reply) => out.extend_from_slice(format!("{reply}\r\n").as_bytes()),
                        None => {
                            rcpts.push(a);
                            out.extend_from_slice(b"250 2.1.5 ok\r\n");
                        }
                    }
                } else {
                    out.extend_from_slice(b"501 5.5.4 syntax: RCPT TO:<address>\r\n");
                }
            }
            "DATA" => {
                if from.is_none() || rcpts.is_empty() {
                    out.extend_from_slice(b"554 5.5.1 no valid recipients\r\n");
                    continue;
                }
                out.extend_from_slice(b"354 go ahead\r\n");
                w.write_all(&out).await?;
                out.clear();
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    let l: &[u8] = if line.starts_with(b".") {
                        &line[1..]
                    } else {
                        &line
                    };
                    data.extend_from_slice(l);
                }
                let delay = lock(&st).data_delay;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                {
                    let mut s = lock(&st);
                    if s.drop_at_data > 0 {
                        s.drop_at_data -= 1;
                        return Ok(());
                    }
                }
                let failure = {
                    let mut s = lock(&st);
                    if s.data_failures.is_empty() {
                        None
                    } else {
                        s.failed_data += data.len();
                        Some(s.data_failures.remove(0))
                    }
                };
                match failure {
                    Some(reply) => out.extend_from_slice(format!("{reply}\r\n").as_bytes()),
                    None => {
                        lock(&st).transactions.push(Transaction {
                            mail_from: from.take().unwrap_or_default(),
                            rcpts: std::mem::take(&mut rcpts),
                            data,
                            mail_params: std::mem::take(&mut mail_params),
                        });
                        out.extend_from_slice(b"250 2.0.0 queued\r\n");
                    }
                }
                from = None;
                rcpts.clear();
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                out.extend_from_slice(b"250 2.0.0 reset\r\n");
            }
            "NOOP" => out.extend_from_slice(b"250 2.0.0 ok\r\n"),
            "QUIT" => {
                out.extend_from_slice(b"221 2.0.0 bye\r\n");
                w.write_all(&out).await?;
                return Ok(());
            }
            _ => out.extend_from_slice(b"500 5.5.2 unknown command\r\n"),
        }
    }
}
