//! The IMAP listeners: `imap.listen` (plain, with STARTTLS when a
//! certificate is set) and `imap.listen_tls` (TLS at once). Each accepts
//! connections (at most `imap.max_connections` at once) and for each moves
//! bytes between the socket and an [`ImapSession`], which runs on a
//! blocking thread (it reads the store and the month files). While the
//! client IDLEs, the session is polled every [`IDLE_POLL`] for new posts.
//! Silence for `imap.idle_timeout_secs` logs the session out; so does
//! shutdown.

use super::session::{ImapPeer, ImapSession};
use crate::config::Config;
use crate::plumbing::{accept_bounded, stopped, Live};
use crate::reader::ArchiveDb;
use crate::store::StoreError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How often an IDLE session looks for new posts (one indexed query).
pub const IDLE_POLL: Duration = Duration::from_secs(1);

/// How a listener starts its connections.
#[derive(Clone)]
pub enum ImapTransport {
    /// Plain; STARTTLS with this acceptor, if any.
    Plain(Option<TlsAcceptor>),
    /// TLS from the first byte (IMAPS).
    Tls(TlsAcceptor),
}

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: Arc<TcpListener>,
    live: Live,
    transport: ImapTransport,
    shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let max = live.current().config.imap.max_connections;
    let stop = shutdown.clone();
    accept_bounded(&listener, max, "imap", shutdown, |stream, peer| {
        let config = live.current().config;
        let stop = stop.clone();
        let transport = transport.clone();
        async move {
            if let Err(e) = connection(stream, peer, config, transport, stop).await {
                tracing::debug!(error = %e, "imap: connection ended");
            }
        }
    })
    .await;
    Ok(())
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

/// Why a session loop returned.
enum Exit {
    Closed,
    /// STARTTLS was accepted: start TLS, then go on.
    StartTls(ArchiveDb),
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    transport: ImapTransport,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let ip = peer.ip();
    let local = ip.is_loopback() || config.is_trusted(ip);
    let host = config.smtp.hostname.clone();
    let idle = Duration::from_secs(config.imap.idle_timeout_secs);
    let peer = ImapPeer {
        ip: Some(ip),
        login_ok: local || matches!(transport, ImapTransport::Tls(_)),
        starttls: matches!(transport, ImapTransport::Plain(Some(_))),
    };
    let db = match tokio::task::spawn_blocking(move || ArchiveDb::open(config)).await {
        Ok(Ok(db)) => db,
        _ => {
            tracing::error!("imap: the store cannot be opened");
            return Ok(());
        }
    };
    let session = ImapSession::new(&host, peer);
    match transport {
        ImapTransport::Tls(acceptor) => {
            let mut tls = acceptor.accept(tcp).await?;
            run(&mut tls, session, db, idle, &mut shutdown).await?;
        }
        ImapTransport::Plain(acceptor) => {
            let mut tcp = tcp;
            if let Exit::StartTls(db) = run(&mut tcp, session, db, idle, &mut shutdown).await? {
                let Some(acceptor) = acceptor else {
                    return Ok(());
                };
                let mut tls = acceptor.accept(tcp).await?;
                let session = ImapSession::after_starttls(&host, peer);
                run(&mut tls, session, db, idle, &mut shutdown).await?;
            }
        }
    }
    Ok(())
}

/// Moves bytes between `stream` and the session until it ends.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    session: ImapSession,
    db: ArchiveDb,
    idle: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> std::io::Result<Exit> {
    let mut session = session;
    stream.write_all(&session.take_output()).await?;
    stream.flush().await?;
    let mut state = Some((session, db));
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_input = tokio::time::Instant::now();
    loop {
        let idling = state.as_ref().is_some_and(|(s, _)| s.is_idling());
        let wait = if idling { IDLE_POLL } else { idle };
        let read = tokio::select! {
            r = tokio::time::timeout(wait, stream.read(&mut buf)) => r,
            _ = stopped(shutdown) => {
                if let Some((mut s, _)) = state.take() {
                    s.shutdown();
                    stream.write_all(&s.take_output()).await?;
                    stream.flush().await?;
                }
                return Ok(Exit::Closed);
            }
        };
        let Some((s, db)) = state.take() else {
            return Ok(Exit::Closed);
        };
        let (mut s, db) = match read {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(Exit::Closed),
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
                stream.flush().await?;
                return Ok(Exit::Closed);
            }
            Err(_) => blocking(s, db, |s, db| s.poll(db)).await?,
        };
        stream.write_all(&s.take_output()).await?;
        stream.flush().await?;
        if s.wants_tls() {
            return Ok(Exit::StartTls(db));
        }
        if s.is_closed() {
            return Ok(Exit::Closed);
        }
        state = Some((s, db));
    }
}
