//! The IMAP listener: accepts connections (at most `imap.max_connections`
//! at once) and for each moves bytes between the socket and an
//! [`ImapSession`], which runs on a blocking thread (it reads the store
//! and the month files). While the client IDLEs, the session is polled
//! every [`IDLE_POLL`] for new posts. Silence for `imap.idle_timeout_secs`
//! logs the session out; so does shutdown.

use super::session::{ImapPeer, ImapSession};
use crate::config::Config;
use crate::plumbing::{stopped, Live};
use crate::reader::ArchiveDb;
use crate::store::StoreError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// How often an IDLE session looks for new posts (one indexed query).
pub const IDLE_POLL: Duration = Duration::from_secs(1);

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: Arc<TcpListener>,
    live: Live,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let slots = Arc::new(Semaphore::new(
        live.current().config.imap.max_connections.max(1),
    ));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(|e| StoreError::Invalid(e.to_string()))?,
            _ = stopped(&mut shutdown) => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "imap: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return Ok(()),
        };
        let config = live.current().config;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, peer, config, stop).await {
                tracing::debug!(error = %e, "imap: connection ended");
            }
        });
    }
}

/// Runs `f` on the session and store on a blocking thread.
async fn blocking(
    s: ImapSession,
    db: ArchiveDb,
    f: impl FnOnce(&mut ImapSession, &ArchiveDb) + Send + 'static,
) -> std::io::Result<(ImapSession, ArchiveDb)> {
    tokio::task::spawn_blocking(move || {
        let mut s = s;
        f(&mut s, &db);
        (s, db)
    })
    .await
    .map_err(std::io::Error::other)
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let ip = peer.ip();
    let peer = ImapPeer {
        ip: Some(ip),
        login_ok: ip.is_loopback() || config.is_trusted(ip),
    };
    let idle = Duration::from_secs(config.imap.idle_timeout_secs);
    let mut session = ImapSession::new(&config.smtp.hostname, peer);
    let db = match tokio::task::spawn_blocking(move || ArchiveDb::open(config)).await {
        Ok(Ok(db)) => db,
        _ => {
            tracing::error!("imap: the store cannot be opened");
            stream
                .write_all(b"* BYE the archive is not available just now\r\n")
                .await?;
            return Ok(());
        }
    };
    stream.write_all(&session.take_output()).await?;
    let mut state = Some((session, db));
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_input = tokio::time::Instant::now();
    loop {
        let idling = state.as_ref().is_some_and(|(s, _)| s.is_idling());
        let wait = if idling { IDLE_POLL } else { idle };
        let read = tokio::select! {
            r = tokio::time::timeout(wait, stream.read(&mut buf)) => r,
            _ = stopped(&mut shutdown) => {
                if let Some((mut s, _)) = state.take() {
                    s.shutdown();
                    stream.write_all(&s.take_output()).await?;
                }
                return Ok(());
            }
        };
        let Some((s, db)) = state.take() else {
            return Ok(());
        };
        let (mut s, db) = match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(n)) => {
                last_input = tokio::time::Instant::now();
                let bytes = buf[..n].to_vec();
                blocking(s, db, move |s, db| {
                    s.receive(&bytes);
                    s.advance(db, crate::store::now());
                })
                .await?
            }
            Err(_) if last_input.elapsed() >= idle => {
                let mut s = s;
                s.timeout();
                stream.write_all(&s.take_output()).await?;
                return Ok(());
            }
            Err(_) => blocking(s, db, |s, db| s.poll(db)).await?,
        };
        stream.write_all(&s.take_output()).await?;
        if s.is_closed() {
            return Ok(());
        }
        state = Some((s, db));
    }
}
