//! The daemon: everything `listd serve` runs, startable in-process.
//!
//! `start` opens the store (running migrations), loads the templates, starts
//! the spool writer, binds the SMTP and LMTP listeners (`127.0.0.1:0` binds
//! a free port; the bound addresses are exposed), and spawns the accept
//! loops, the pipeline worker, the delivery worker, the digest worker and the
//! moderation worker (held-post expiry and reminders). `DaemonHandle::shutdown` stops in order:
//! sessions finish their transactions (new connections get 421), the spool
//! writer commits what it was given, then the workers stop.
//!
//! Trusts its `Config` (already validated by `Config::load`).

use crate::config::Config;
use crate::pipeline::{self, Ctx, Wakers};
use crate::smtp::server::{self, Active, Bound, Shared};
use crate::smtp::session::Protocol;
use crate::smtp::spool::{self, WriterHandle};
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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Store { path: PathBuf, source: StoreError },
    #[error(transparent)]
    Templates(#[from] TemplateError),
}

/// A running daemon.
pub struct DaemonHandle {
    config: Arc<Config>,
    smtp: Vec<SocketAddr>,
    lmtp: Vec<Bound>,
    /// The workers' wake-up signals (tests may poke them).
    pub wakers: Wakers,
    stop_sessions: watch::Sender<bool>,
    stop_workers: watch::Sender<bool>,
    active: Arc<Active>,
    listeners: Vec<JoinHandle<()>>,
    writer: WriterHandle,
    workers: Vec<JoinHandle<()>>,
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
                .map_err(|source| DaemonError::Bind {
                    addr: spec.clone(),
                    source,
                })?;
            bound.push((b, proto));
        }
    }

    let (writer, writer_handle) = spool::spawn(&db, wakers.clone()).map_err(store_err)?;
    let (stop_sessions, sessions_rx) = watch::channel(false);
    let (stop_workers, workers_rx) = watch::channel(false);
    let active = Arc::new(Active::default());
    let shared = Arc::new(Shared {
        config: config.clone(),
        writer,
        slots: Arc::new(Semaphore::new(config.smtp.max_connections.max(1))),
        shutdown: sessions_rx,
        active: active.clone(),
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

    let ctx = Ctx {
        config: config.clone(),
        templates,
    };
    let mut workers = Vec::new();
    let (mctx, w, rx) = (ctx.clone(), wakers.clone(), workers_rx.clone());
    workers.push(tokio::spawn(async move {
        if let Err(e) = crate::moderation::expiry::run(mctx, w, rx).await {
            tracing::error!(error = %e, "moderation worker stopped");
        }
    }));
    let (dctx, w, rx) = (ctx.clone(), wakers.clone(), workers_rx.clone());
    workers.push(tokio::spawn(async move {
        if let Err(e) = crate::digest::run(dctx, w, rx).await {
            tracing::error!(error = %e, "digest worker stopped");
        }
    }));
    let (w, rx) = (wakers.clone(), workers_rx.clone());
    workers.push(tokio::spawn(async move {
        if let Err(e) = pipeline::run(ctx, w, rx).await {
            tracing::error!(error = %e, "pipeline worker stopped");
        }
    }));

    let (cfg, w, rx) = (config.clone(), wakers.clone(), workers_rx.clone());
    workers.push(tokio::spawn(async move {
        if let Err(e) = crate::delivery::run(cfg, w, rx).await {
            tracing::error!(error = %e, "delivery worker stopped");
        }
    }));

    Ok(DaemonHandle {
        config,
        smtp,
        lmtp,
        wakers,
        stop_sessions,
        stop_workers,
        active,
        listeners,
        writer: writer_handle,
        workers,
    })
}

impl DaemonHandle {
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

    /// The first LMTP TCP address, if any.
    pub fn lmtp_tcp_addr(&self) -> Option<SocketAddr> {
        self.lmtp.iter().find_map(|b| match b {
            Bound::Tcp(a) => Some(*a),
            Bound::Unix(_) => None,
        })
    }

    /// The configuration the daemon runs.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
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
        tracing::info!("stopped");
    }
}
