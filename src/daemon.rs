//! The daemon: everything `listd serve` runs, startable in-process.
//!
//! `start` opens the store (running migrations), loads the templates, starts
//! the spool writer, binds the SMTP and LMTP listeners (`127.0.0.1:0` binds
//! a free port; the bound addresses are exposed), and spawns the accept
//! loops, the pipeline worker, the delivery worker, the digest worker and the
//! moderation worker (held-post expiry and reminders), and the HTTP server
//! (`web.listen`, supervised like a worker). `DaemonHandle::shutdown` stops in order:
//! sessions finish their transactions (new connections get 421), the spool
//! writer commits what it was given, then the workers stop.
//!
//! `DaemonHandle::reload` swaps in a new configuration and templates
//! (`plumbing::Live`) without stopping anything.
//!
//! Trusts its `Config` (already validated by `Config::load`).

use crate::config::Config;
use crate::handler::Ctx;
use crate::health::{self, Health, WorkerState};
use crate::pipeline;
use crate::plumbing::{Live, ReloadRefused, Reloader, Wakers};
use crate::smtp::server::{self, Active, Bound, Shared};
use crate::smtp::session::Protocol;
use crate::smtp::writer::{self, WriterHandle};
use crate::store::{self, StoreError};
use crate::templates::{TemplateError, Templates};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// How long `shutdown` waits for open sessions to finish their transaction.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// (`why` is not an error `source`: the message says it once, and
    /// `{:#}` would say it twice.)
    #[error("cannot listen on {addr}: {why}")]
    Bind { addr: String, why: std::io::Error },
    #[error("{}: {source}", path.display())]
    Store { path: PathBuf, source: StoreError },
    #[error(transparent)]
    Templates(#[from] TemplateError),
    #[error("reload refused: {0}")]
    Reload(String),
}

/// A worker's body: its context, wake-ups and shutdown signal in, a future
/// that runs until shutdown (or fails) out.
type WorkerFn =
    fn(
        Live,
        Wakers,
        watch::Receiver<bool>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>;

/// First and longest wait before a stopped worker is started again.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// Runs a worker until shutdown, starting it again (after 1 s, 2 s, 4 s ...
/// up to a minute) whenever it returns an error or panics, and records its
/// state in `health` (intake refuses mail while the pipeline is down).
async fn supervise<F>(
    name: &'static str,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) where
    F: Fn(
        watch::Receiver<bool>,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>>,
{
    let mut backoff = RESTART_BACKOFF.0;
    let mut restarts = 0u32;
    loop {
        health.set(name, WorkerState::Running);
        let started = tokio::time::Instant::now();
        let error = match tokio::spawn(start(shutdown.clone())).await {
            Ok(Ok(())) if *shutdown.borrow() => {
                health.set(name, WorkerState::Stopped);
                return;
            }
            Ok(Ok(())) => "stopped".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) if e.is_panic() => {
                format!(
                    "panicked: {}",
                    health::panic_message(e.into_panic().as_ref())
                )
            }
            Err(e) => e.to_string(),
        };
        if *shutdown.borrow() {
            health.set(name, WorkerState::Stopped);
            return;
        }
        // a worker that ran a good while before failing starts over quickly
        if started.elapsed() > RESTART_BACKOFF.1 * 2 {
            backoff = RESTART_BACKOFF.0;
        }
        restarts += 1;
        let now = crate::store::now();
        tracing::error!(worker = name, %error, restarts, retry_in = ?backoff, "worker stopped; restarting it");
        health.set(
            name,
            WorkerState::Restarting {
                error,
                restarts,
                since: now,
                retry_at: now + backoff.as_secs() as i64,
            },
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            health.set(name, WorkerState::Stopped);
            return;
        }
        backoff = (backoff * 2).min(RESTART_BACKOFF.1);
    }
}

/// A running daemon.
pub struct DaemonHandle {
    /// Replaces the configuration the workers and new sessions see.
    live: Reloader,
    smtp: Vec<SocketAddr>,
    lmtp: Vec<Bound>,
    web: Option<SocketAddr>,
    pop3: Option<SocketAddr>,
    imap: Option<SocketAddr>,
    imaps: Option<SocketAddr>,
    /// The workers' wake-up signals (tests may poke them).
    pub wakers: Wakers,
    stop_sessions: watch::Sender<bool>,
    stop_workers: watch::Sender<bool>,
    active: Arc<Active>,
    /// The workers' states, as their supervisors record them.
    pub health: Arc<Health>,
    listeners: Vec<JoinHandle<()>>,
    writer: WriterHandle,
    workers: Vec<JoinHandle<()>>,
    /// `reload` datagrams on the control socket (`listd lists set`).
    reload_requests: Arc<tokio::sync::Notify>,
}

/// Starts the daemon on `config`.
pub async fn start(config: Config) -> Result<DaemonHandle, DaemonError> {
    let config = Arc::new(config);
    let db = config.db_path();
    let store_err = |source| DaemonError::Store {
        path: db.clone(),
        source,
    };
    drop(store::open(&db).map_err(store_err)?);
    let templates = Arc::new(Templates::for_config(&config)?);
    let wakers = Wakers::default();

    let mut bound = Vec::new();
    for (specs, proto) in [
        (&config.smtp.listen, Protocol::Smtp),
        (&config.lmtp.listen, Protocol::Lmtp),
    ] {
        for spec in specs {
            let b = server::bind(spec, proto)
                .await
                .map_err(|why| DaemonError::Bind {
                    addr: spec.clone(),
                    why,
                })?;
            bound.push((b, proto));
        }
    }

    let web_listener = match &config.web.listen {
        Some(spec) => Some(Arc::new(crate::web::bind(spec).await.map_err(|why| {
            DaemonError::Bind {
                addr: spec.clone(),
                why,
            }
        })?)),
        None => None,
    };
    let imap_tls = crate::imap::tls::acceptor(&config.imap).map_err(|why| DaemonError::Bind {
        addr: config
            .imap
            .listen_tls
            .clone()
            .or(config.imap.listen.clone())
            .unwrap_or_default(),
        why: std::io::Error::other(why),
    })?;
    let mut reader_listeners = Vec::new();
    for (name, spec) in [
        ("pop3", &config.pop3.listen),
        ("imap", &config.imap.listen),
        ("imaps", &config.imap.listen_tls),
    ] {
        if let Some(spec) = spec {
            let l = tokio::net::TcpListener::bind(spec)
                .await
                .map_err(|why| DaemonError::Bind {
                    addr: spec.clone(),
                    why,
                })?;
            reader_listeners.push((name, Arc::new(l)));
        }
    }
    if let Some(w) = config.web.public_url_warning() {
        tracing::warn!("{w}");
    }

    let health = Arc::new(Health::default());
    let (writer, writer_handle) =
        writer::spawn(&db, wakers.clone(), health.clone()).map_err(store_err)?;
    let (stop_sessions, sessions_rx) = watch::channel(false);
    let (stop_workers, workers_rx) = watch::channel(false);
    let active = Arc::new(Active::default());
    let (live_tx, live) = Live::channel(Ctx {
        config: config.clone(),
        templates,
    });
    let reloader = Reloader::new(live_tx, wakers.clone());
    let shared = Arc::new(Shared {
        live: live.clone(),
        writer,
        slots: Arc::new(Semaphore::new(config.smtp.max_connections.max(1))),
        shutdown: sessions_rx,
        active: active.clone(),
        per_client: Arc::default(),
        resolver: Arc::default(),
        flow: wakers.intake.clone(),
    });

    let mut smtp = Vec::new();
    let mut lmtp = Vec::new();
    let mut listeners = Vec::new();
    for ((listener, at), proto) in bound {
        tracing::info!(?proto, at = ?at, "listening");
        match (proto, &at) {
            (Protocol::Smtp, Bound::Tcp(a)) => smtp.push(*a),
            _ => lmtp.push(at),
        }
        listeners.push(tokio::spawn(server::accept_loop(listener, shared.clone())));
    }
    drop(shared);

    let w = wakers.clone();
    let reload_requests = Arc::new(tokio::sync::Notify::new());
    let asked = reload_requests.clone();
    let control = crate::control::listen(&config.data_dir, move |req| match req {
        crate::control::ControlRequest::Wake => {
            w.pipeline.notify_one();
            w.delivery.notify_one();
            w.digest.notify_one();
        }
        crate::control::ControlRequest::Reload => asked.notify_one(),
    })
    .map_err(|why| DaemonError::Bind {
        addr: crate::control::path(&config.data_dir).display().to_string(),
        why,
    })?;
    listeners.push(control);

    let mut workers = Vec::new();
    let spawn_worker = |name: &'static str, run: WorkerFn| {
        let (l, w, rx) = (live.clone(), wakers.clone(), workers_rx.clone());
        tokio::spawn(supervise(name, health.clone(), rx, move |rx| {
            run(l.clone(), w.clone(), rx)
        }))
    };
    workers.push(spawn_worker("moderation", |l, w, rx| {
        Box::pin(crate::moderation::expiry::run(l, w, rx))
    }));
    workers.push(spawn_worker("digest", |l, w, rx| {
        Box::pin(crate::digest::run(l, w, rx))
    }));
    workers.push(spawn_worker(health::PIPELINE, |l, w, rx| {
        Box::pin(pipeline::run(l, w, rx))
    }));
    workers.push(spawn_worker("delivery", |l, w, rx| {
        Box::pin(crate::delivery::run(l, w, rx))
    }));
    let mut web = None;
    if let Some(listener) = web_listener {
        web = listener.local_addr().ok();
        tracing::info!(at = ?web, "web: listening");
        let state = crate::web::WebState::new(live.clone(), health.clone(), wakers.clone())
            .with_reloader(reloader.clone());
        workers.push(tokio::spawn(supervise(
            "web",
            health.clone(),
            workers_rx.clone(),
            move |rx| Box::pin(crate::web::serve(listener.clone(), state.clone(), rx)),
        )));
    }

    let (mut pop3, mut imap, mut imaps) = (None, None, None);
    for (name, listener) in reader_listeners {
        let at = listener.local_addr().ok();
        tracing::info!(at = ?at, "{name}: listening");
        let l = live.clone();
        let worker = if name == "pop3" {
            pop3 = at;
            tokio::spawn(supervise(
                name,
                health.clone(),
                workers_rx.clone(),
                move |rx| Box::pin(crate::pop3::server::serve(listener.clone(), l.clone(), rx)),
            ))
        } else {
            let transport = match (name, imap_tls.clone()) {
                ("imaps", Some(acceptor)) => crate::imap::server::ImapTransport::Tls(acceptor),
                (_, acceptor) => crate::imap::server::ImapTransport::Plain(acceptor),
            };
            if name == "imap" {
                imap = at;
            } else {
                imaps = at;
            }
            tokio::spawn(supervise(
                name,
                health.clone(),
                workers_rx.clone(),
                move |rx| {
                    Box::pin(crate::imap::server::serve(
                        listener.clone(),
                        l.clone(),
                        transport.clone(),
                        rx,
                    ))
                },
            ))
        };
        workers.push(worker);
    }

    Ok(DaemonHandle {
        live: reloader,
        pop3,
        imap,
        imaps,
        smtp,
        lmtp,
        web,
        wakers,
        stop_sessions,
        stop_workers,
        active,
        health,
        listeners,
        writer: writer_handle,
        workers,
        reload_requests,
    })
}

impl DaemonHandle {
    /// Returns when the control socket asks for a reload (`listd lists
    /// create|set|unset`); `listd serve` then reloads as on SIGHUP.
    pub async fn reload_requested(&self) {
        self.reload_requests.notified().await
    }

    /// The first SMTP address (panics if the config has no `smtp.listen`).
    pub fn smtp_addr(&self) -> SocketAddr {
        *self
            .smtp
            .first()
            .expect("the daemon has no SMTP listener (smtp.listen is empty)")
    }

    /// Every bound SMTP address.
    pub fn smtp_addrs(&self) -> &[SocketAddr] {
        &self.smtp
    }

    /// Every bound LMTP listener.
    pub fn lmtp_addrs(&self) -> &[Bound] {
        &self.lmtp
    }

    /// The bound HTTP address (`web.listen`), if any.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web
    }

    /// The first LMTP TCP address, if any.
    /// Where the POP3 server listens (`pop3.listen`), if it does.
    pub fn pop3_addr(&self) -> Option<SocketAddr> {
        self.pop3
    }

    /// Where the IMAP server listens (`imap.listen`), if it does.
    pub fn imap_addr(&self) -> Option<SocketAddr> {
        self.imap
    }

    /// Where the IMAP server takes TLS at once (`imap.listen_tls`), if it does.
    pub fn imaps_addr(&self) -> Option<SocketAddr> {
        self.imaps
    }

    pub fn lmtp_tcp_addr(&self) -> Option<SocketAddr> {
        self.lmtp.iter().find_map(|b| match b {
            Bound::Tcp(a) => Some(*a),
            Bound::Unix(_) => None,
        })
    }

    /// The configuration the daemon runs now.
    pub fn config(&self) -> Arc<Config> {
        self.live.current().config
    }

    /// Replaces the configuration and templates (SIGHUP): new SMTP/LMTP
    /// sessions and the workers' next passes use them; sessions and passes
    /// under way finish on the old ones. Lists, policies, the relay, limits
    /// and templates all change this way. What was bound or opened at start
    /// (`smtp.listen`, `lmtp.listen`, `smtp.max_connections`, `data_dir`)
    /// keeps its old value: each such change is returned as a warning, to
    /// apply with a restart. Templates that do not load refuse the reload.
    pub fn reload(&self, config: Config) -> Result<Vec<String>, DaemonError> {
        self.live.reload(config).map_err(|e| match e {
            ReloadRefused::Templates(t) => DaemonError::Templates(t),
            ReloadRefused::Restart(m) => DaemonError::Reload(m),
        })
    }

    /// Open SMTP/LMTP sessions.
    pub fn sessions(&self) -> usize {
        self.active.count()
    }

    /// Graceful stop with the default grace period.
    pub async fn shutdown(self) {
        self.shutdown_with_grace(SHUTDOWN_GRACE).await
    }

    /// Graceful stop: new connections get 421; sessions finish their
    /// transaction (at most `grace`), then get 421; the spool writer commits
    /// everything it was handed; the workers stop.
    pub async fn shutdown_with_grace(self, grace: Duration) {
        tracing::info!("shutting down");
        let control = crate::control::path(&self.config().data_dir);
        let _ = self.stop_sessions.send(true);
        if tokio::time::timeout(grace, self.active.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = self.active.count(),
                "sessions still open after the grace period; closing them"
            );
        }
        for l in &self.listeners {
            l.abort();
        }
        for l in self.listeners {
            let _ = l.await;
        }
        self.writer.stop().await;
        let _ = self.stop_workers.send(true);
        for w in self.workers {
            let _ = w.await;
        }
        for b in &self.lmtp {
            if let Bound::Unix(p) = b {
                let _ = std::fs::remove_file(p);
            }
        }
        let _ = std::fs::remove_file(control);
        tracing::info!("stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_failing_or_panicking_worker_is_restarted_and_its_state_recorded() {
        let health = Arc::new(Health::default());
        let starts = Arc::new(AtomicU32::new(0));
        let (stop, rx) = watch::channel(false);
        let s = starts.clone();
        let sup = tokio::spawn(supervise(
            health::PIPELINE,
            health.clone(),
            rx,
            move |mut rx| {
                let n = s.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    match n {
                        0 => Err(StoreError::Invalid("disk on fire".into())),
                        1 => panic!("worker bug"),
                        _ => {
                            let _ = rx.wait_for(|v| *v).await;
                            Ok(())
                        }
                    }
                })
            },
        ));
        // after the first failure: down, intake refused, waiting 1 s
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        let why = health.intake_refusal().expect("refused while down");
        assert!(why.contains("disk on fire"), "{why}");
        // then the panic, recorded as such, and a 2 s wait
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        let report = health.report();
        assert!(
            matches!(&report[0].1, WorkerState::Restarting { error, restarts: 2, .. } if error.contains("panicked: worker bug")),
            "{report:?}"
        );
        // third start runs; intake is open again
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert_eq!(health.intake_refusal(), None);
        assert_eq!(health.report()[0].1, WorkerState::Running);
        stop.send(true).unwrap();
        sup.await.unwrap();
        assert_eq!(health.report()[0].1, WorkerState::Stopped);
    }
}
