//! The daemon's plumbing: the live configuration that a reload replaces
//! (`Reloader`, shared by SIGHUP, the control socket and the web settings
//! page), and the wake-up signals between its workers.
//!
//! A leaf that intake, the pipeline and the workers share; it decides
//! nothing and trusts its callers.

use crate::handler::Ctx;
use std::sync::Arc;

/// The daemon's current [`Ctx`], replaced as a whole by a reload
/// (`listd serve` on SIGHUP, `DaemonHandle::reload`). Workers read it at the
/// start of each pass and SMTP sessions when they connect, so a pass or a
/// session runs on one configuration from start to end.
#[derive(Clone)]
pub struct Live(tokio::sync::watch::Receiver<Ctx>);

impl Live {
    /// A live context and the sender that replaces it.
    pub fn channel(ctx: Ctx) -> (tokio::sync::watch::Sender<Ctx>, Live) {
        let (tx, rx) = tokio::sync::watch::channel(ctx);
        (tx, Live(rx))
    }

    /// The context now.
    pub fn current(&self) -> Ctx {
        self.0.borrow().clone()
    }

    /// The new context if it was replaced since this handle last looked.
    pub fn changed(&mut self) -> Option<Ctx> {
        match self.0.has_changed() {
            Ok(true) => Some(self.0.borrow_and_update().clone()),
            _ => None,
        }
    }
}

/// A context that never changes (tests, one-off runs).
impl From<Ctx> for Live {
    fn from(ctx: Ctx) -> Live {
        Live::channel(ctx).1
    }
}

/// Why a reload was refused; the daemon keeps its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRefused {
    #[error(transparent)]
    Templates(#[from] crate::templates::TemplateError),
    #[error("{0}")]
    Restart(String),
}

/// Replaces the daemon's live [`Ctx`] with a new configuration and its
/// templates: the one reload `DaemonHandle::reload` (SIGHUP, the control
/// socket) and the web settings page share.
#[derive(Clone)]
pub struct Reloader {
    tx: Arc<tokio::sync::watch::Sender<Ctx>>,
    wakers: Wakers,
}

impl Reloader {
    pub fn new(tx: tokio::sync::watch::Sender<Ctx>, wakers: Wakers) -> Reloader {
        Reloader {
            tx: Arc::new(tx),
            wakers,
        }
    }

    /// The context now.
    pub fn current(&self) -> Ctx {
        self.tx.borrow().clone()
    }

    /// Swaps in `config`: new SMTP/LMTP sessions and the workers' next
    /// passes use it. What was bound or opened at start keeps its old
    /// value: each such change is returned as a warning, to apply with a
    /// restart. Templates that do not load, or another store, refuse it.
    pub fn reload(&self, config: crate::config::Config) -> Result<Vec<String>, ReloadRefused> {
        let templates = Arc::new(crate::templates::Templates::for_config(&config)?);
        let old = self.current().config;
        let mut warnings = Vec::new();
        if config.smtp.listen != old.smtp.listen {
            warnings.push("smtp.listen changed: restart to listen there".to_string());
        }
        if config.lmtp.listen != old.lmtp.listen {
            warnings.push("lmtp.listen changed: restart to listen there".to_string());
        }
        if config.web.listen != old.web.listen {
            warnings.push("web.listen changed: restart to listen there".to_string());
        }
        if config.pop3.listen != old.pop3.listen
            || config.imap.listen != old.imap.listen
            || config.imap.listen_tls != old.imap.listen_tls
        {
            warnings.push(
                "pop3.listen, imap.listen or imap.listen_tls changed: restart to listen there"
                    .to_string(),
            );
        }
        if config.smtp.max_connections != old.smtp.max_connections {
            warnings.push("smtp.max_connections changed: restart to apply it".to_string());
        }
        if config.db_path() != old.db_path() {
            return Err(ReloadRefused::Restart(format!(
                "data_dir changed ({} -> {}): restart to use another store",
                old.data_dir.display(),
                config.data_dir.display()
            )));
        }
        let lists = config.lists.len();
        self.tx.send_replace(Ctx {
            config: Arc::new(config),
            templates,
        });
        self.wakers.pipeline.notify_one();
        self.wakers.delivery.notify_one();
        tracing::info!(lists, "configuration reloaded");
        Ok(warnings)
    }
}

/// Wake-up signals between the daemon's workers.
#[derive(Clone, Default)]
pub struct Wakers {
    /// The spool committed new incoming rows.
    pub pipeline: Arc<tokio::sync::Notify>,
    /// New outbound jobs or due retries.
    pub delivery: Arc<tokio::sync::Notify>,
    /// A pipeline batch committed: a post may have marked a digest issue due.
    pub digest: Arc<tokio::sync::Notify>,
    /// The spool writer waits for the write lock: the pipeline yields it.
    pub intake: Arc<crate::store::IntakeFlow>,
}

/// Returns once a shutdown signal turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

/// Accepts connections on `listener` until `shutdown` turns true, at most
/// `max` open at once: each runs what `start` returns in a task of its
/// own, which holds its slot until it ends. A failed accept is logged
/// (`what` names the listener) and retried after 100 ms.
pub async fn accept_bounded<F, Fut>(
    listener: &tokio::net::TcpListener,
    max: usize,
    what: &'static str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut start: F,
) where
    F: FnMut(tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(max.max(1)));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return, // never closed
            },
            _ = stopped(&mut shutdown) => return,
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let run = start(stream, peer);
        tokio::spawn(async move {
            let _permit = permit;
            run.await;
        });
    }
}
