//! The tokio side of intake: accept loops for SMTP (TCP) and LMTP (TCP or a
//! unix socket), and the per-connection driver that moves bytes between the
//! socket and a sans-IO `Session`.
//!
//! It decides nothing about the protocol. It enforces what needs a clock or
//! a socket: `smtp.max_connections` and the per-client caps (one more gets
//! 421), the idle timeout (the session says 421), and shutdown (new
//! connections get 421; open sessions finish their transaction, then get
//! 421). It reports the time to the session on every `advance` and wakes it
//! at [`Session::deadline`]; the session itself decides the other time
//! limits (command line, DATA rate, session length). Replies are flushed
//! when the session has consumed all buffered input, before any wait.

use super::expn;
use super::reply::{self, Reply};
use super::session::{Completion, Moment, Peer, Protocol, Request, Session, Step};
use super::writer::SpoolWriter;
use crate::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify, Semaphore};

/// Most bytes read from a socket at once.
const READ_BUF: usize = 64 * 1024;

/// What every connection task shares.
pub struct Shared {
    /// The daemon's current configuration; a session reads it once, when
    /// it connects.
    pub live: crate::plumbing::Live,
    pub writer: SpoolWriter,
    /// One permit per allowed connection.
    pub slots: Arc<Semaphore>,
    /// Turns true when the daemon shuts down.
    pub shutdown: watch::Receiver<bool>,
    pub active: Arc<Active>,
    /// Open connections per client IP.
    pub per_client: Arc<PerClient>,
    /// The one DNS resolver, for the authentication checks.
    pub resolver: Arc<crate::dns::ResolverSlot>,
    /// The pipeline's backlog, for in-flow control (`inflow`).
    pub flow: Arc<crate::store::IntakeFlow>,
}

/// Counts open connections per client IP, for `max_connections_per_client`
/// and `max_connections_per_trusted_client`.
#[derive(Default)]
pub struct PerClient(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One counted connection; uncounted when dropped.
pub struct ClientSlot(Arc<PerClient>, std::net::IpAddr);

impl PerClient {
    /// Counts a connection from `ip` unless it already has `max` (0: no limit).
    pub fn enter(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<ClientSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot(self.clone(), ip))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Counts live sessions so shutdown can wait for them.
#[derive(Default)]
pub struct Active {
    count: AtomicUsize,
    zero: Notify,
}

struct ActiveGuard(Arc<Active>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

impl Active {
    fn enter(self: &Arc<Self>) -> ActiveGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        ActiveGuard(self.clone())
    }

    /// Live sessions.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no session is live.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.zero.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener, Protocol),
    Unix(UnixListener, PathBuf),
}

/// Where a listener is bound (the real port when the config said `:0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Bound {
    /// `127.0.0.1:2424`, or `unix:/path/to/socket`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Tcp(a) => write!(f, "{a}"),
            Bound::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Binds `host:port` or, for LMTP, an absolute unix socket path (a stale
/// socket file is replaced).
pub async fn bind(spec: &str, proto: Protocol) -> std::io::Result<(Listener, Bound)> {
    if spec.starts_with('/') {
        let path = PathBuf::from(spec);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                std::fs::remove_file(&path)?;
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let l = UnixListener::bind(&path)?;
        return Ok((Listener::Unix(l, path.clone()), Bound::Unix(path)));
    }
    let addr: SocketAddr = spec.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{spec}` is not host:port"),
        )
    })?;
    let l = TcpListener::bind(addr).await?;
    let local = l.local_addr()?;
    Ok((Listener::Tcp(l, proto), Bound::Tcp(local)))
}

/// Accepts connections until the task is dropped. During shutdown new
/// connections are still accepted, to be told 421.
pub async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    loop {
        match &listener {
            Listener::Tcp(l, proto) => match l.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let ip = addr.ip().to_canonical();
                    // one configuration for the whole session, trust included
                    let config = shared.live.current().config;
                    let peer = Peer::tcp(&config, ip);
                    tokio::spawn(connection(stream, peer, config, *proto, shared.clone()));
                }
                Err(e) => accept_error(e).await,
            },
            Listener::Unix(l, _) => match l.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(
                        stream,
                        Peer::local(),
                        shared.live.current().config,
                        Protocol::Lmtp,
                        shared.clone(),
                    ));
                }
                Err(e) => accept_error(e).await,
            },
        }
    }
}

async fn accept_error(e: std::io::Error) {
    // Out of file descriptors and the like: wait a little, keep serving.
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Writes one reply and closes (connection limit, shutdown).
async fn refuse<S: AsyncWrite + Unpin>(mut stream: S, r: Reply) {
    let mut out = Vec::new();
    r.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves one connection on `config` (the daemon's configuration when it
/// connected).
pub async fn connection<S>(
    stream: S,
    peer: Peer,
    config: Arc<Config>,
    proto: Protocol,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = config.smtp.hostname.clone();
    if *shared.shutdown.borrow() {
        return refuse(stream, reply::shutting_down(&host)).await;
    }
    let Ok(_permit) = shared.slots.clone().try_acquire_owned() else {
        tracing::warn!(client = ?peer.ip, "connection refused: max_connections reached");
        return refuse(stream, reply::too_many_connections(&host)).await;
    };
    // trusted networks (the MTA in front of us) have their own, higher cap
    let mut _client_slot = None;
    if let Some(ip) = peer.ip {
        let (max, key) = if peer.trusted {
            (
                config.smtp.max_connections_per_trusted_client,
                "max_connections_per_trusted_client",
            )
        } else {
            (
                config.smtp.max_connections_per_client,
                "max_connections_per_client",
            )
        };
        let Some(slot) = shared.per_client.enter(ip, max) else {
            tracing::warn!(client = %ip, "connection refused: {key} reached");
            return refuse(stream, reply::too_many_from_client(&host)).await;
        };
        _client_slot = Some(slot);
    }
    let _live = shared.active.enter();
    tracing::debug!(client = ?peer.ip, ?proto, "connected");
    let session = Session::new(config.clone(), proto, peer.clone(), moment());
    match drive(stream, session, &shared).await {
        Ok(()) => tracing::debug!(client = ?peer.ip, "disconnected"),
        Err(e) => tracing::debug!(client = ?peer.ip, error = %e, "connection ended"),
    }
}

async fn drive<S>(mut stream: S, mut session: Session, shared: &Shared) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = session.config.clone();
    let idle = Duration::from_secs(config.smtp.idle_timeout_secs.max(1));
    let mut shutdown = shared.shutdown.clone();
    let mut draining = false;
    // read into spare capacity: a zeroed 64 KiB buffer per connection
    // (memset, and malloc_consolidate when it is freed) was the costliest
    // user-space step of a one-message connection
    let mut buf = Vec::with_capacity(READ_BUF);
    loop {
        let step = session.advance(moment());
        if session.has_output() {
            tokio::time::timeout(idle, stream.write_all(session.output()))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "write timeout")
                })??;
            session.clear_output();
        }
        match step {
            Step::Close => {
                let _ = stream.shutdown().await;
                return Ok(());
            }
            Step::Request(Request::Store(mut sub)) => {
                authenticate(&config, &session.peer, &shared.resolver, &mut sub).await;
                let limit = config.smtp.in_flow_backlog;
                let max = Duration::from_millis(config.smtp.in_flow_delay_ms);
                let paused = super::inflow::pause(&shared.flow, limit, max).await;
                if !paused.is_zero() {
                    tracing::debug!(queue_id = %sub.queue_id, ?paused, "in-flow delay");
                }
                let r = shared.writer.submit(sub).await;
                session.complete(Completion::Stored(r));
            }
            Step::Request(Request::Expand { list }) => {
                let config = config.clone();
                let r = tokio::task::spawn_blocking(move || expn::lookup(&config, &list))
                    .await
                    .unwrap_or_else(|e| Err(format!("lookup task: {e}")));
                session.complete(Completion::Expanded(r));
            }
            Step::NeedInput => {
                if !draining && *shutdown.borrow() {
                    draining = true;
                    session.shutdown();
                    continue;
                }
                let limit = session.deadline();
                let wake = async {
                    match limit {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => match r {
                        Err(_) => session.timeout(),
                        Ok(Ok(0)) => return Ok(()),
                        Ok(Ok(_)) => {
                            session.receive(&buf);
                            buf.clear();
                        }
                        Ok(Err(e)) => return Err(e),
                    },
                    // the next `advance` finds the limit over and says 421
                    _ = wake => {}
                    _ = shutdown.changed(), if !draining => {
                        draining = true;
                        session.shutdown();
                    }
                }
            }
        }
    }
}

/// Checks SPF, DKIM and DMARC before the commit (like a milter): the
/// message gets our `Authentication-Results:` (forged ones claiming our
/// authserv-id removed) and the submission the verdict to store. Never
/// refuses mail: a resolver that cannot even be built is logged and the
/// message is spooled unchecked.
async fn authenticate(
    config: &Config,
    peer: &Peer,
    slot: &crate::dns::ResolverSlot,
    sub: &mut super::session::Submission,
) {
    if !config.auth.enabled {
        return;
    }
    let resolver = match slot.get(&config.dns.settings()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, queue_id = %sub.queue_id, "no DNS resolver: message not authenticated");
            return;
        }
    };
    let settings = crate::auth::AuthSettings {
        authserv_id: config.authserv_id(),
        trust_upstream: config.auth.trust_upstream_authserv_id.as_deref(),
        timeout: Duration::from_secs(config.auth.timeout_secs.max(1)),
    };
    let input = crate::auth::AuthInput {
        bytes: &sub.bytes,
        client_ip: peer.ip,
        trusted_client: peer.trusted,
        helo: &sub.envelope.helo,
        mail_from: &sub.envelope.mail_from,
    };
    let done = crate::auth::authenticate(&resolver, &settings, &input).await;
    let row = done.verdict.row();
    tracing::info!(queue_id = %sub.queue_id, dmarc = %row.dmarc, policy = %row.policy,
        from_domain = %row.from_domain, "authenticated");
    sub.bytes = done.bytes;
    sub.auth = Some(Box::new(row));
}

/// The time now, as the session takes it.
fn moment() -> Moment {
    Moment {
        unix: crate::store::now(),
        mono: std::time::Instant::now(),
    }
}
