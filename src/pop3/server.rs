//! The POP3 listener: accepts connections (at most `pop3.max_connections`
//! at once), and for each moves bytes between the socket and a
//! [`Pop3Session`], which runs on a blocking thread (it reads the store and
//! the month files, and checks argon2 hashes). Silence for
//! `pop3.idle_timeout_secs` closes a session; so does shutdown. A dropped
//! connection changes nothing.

use super::session::{Pop3Peer, Pop3Session};
use crate::config::Config;
use crate::plumbing::{accept_bounded, stopped, Live};
use crate::reader::ArchiveDb;
use crate::store::StoreError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Binds `pop3.listen`.
pub async fn bind(spec: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(spec).await
}

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: Arc<TcpListener>,
    live: Live,
    shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let max = live.current().config.pop3.max_connections;
    let stop = shutdown.clone();
    accept_bounded(&listener, max, "pop3", shutdown, |stream, peer| {
        let config = live.current().config;
        let stop = stop.clone();
        async move {
            if let Err(e) = connection(stream, peer, config, stop).await {
                tracing::debug!(error = %e, "pop3: connection ended");
            }
        }
    })
    .await;
    Ok(())
}

/// A unique APOP timestamp for a greeting.
fn stamp(host: &str) -> String {
    format!("<{}.{}@{host}>", std::process::id(), rand::random::<u64>())
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let ip = peer.ip();
    let peer = Pop3Peer {
        ip: Some(ip),
        trusted: ip.is_loopback() || config.is_trusted(ip),
    };
    let host = config.smtp.hostname.clone();
    let idle = Duration::from_secs(config.pop3.idle_timeout_secs);
    let mut session = Pop3Session::new(&host, &stamp(&host), config.pop3.maildrop_size, peer);
    let db = match tokio::task::spawn_blocking(move || ArchiveDb::open(config)).await {
        Ok(Ok(db)) => db,
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => String::new(),
            };
            tracing::error!(error = %why, "pop3: the store cannot be opened");
            stream
                .write_all(b"-ERR [SYS/TEMP] the archive is not available just now\r\n")
                .await?;
            return Ok(());
        }
    };
    stream.write_all(&session.take_output()).await?;
    let mut state = Some((session, db));
    let mut buf = vec![0u8; 8192];
    loop {
        let n = tokio::select! {
            r = tokio::time::timeout(idle, stream.read(&mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => {
                    if let Some((s, _)) = state.as_mut() {
                        s.timeout();
                        stream.write_all(&s.take_output()).await?;
                    }
                    return Ok(());
                }
            },
            _ = stopped(&mut shutdown) => {
                stream.write_all(b"-ERR server shutting down (nothing was changed)\r\n").await?;
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        let bytes = buf[..n].to_vec();
        let Some((mut s, db)) = state.take() else {
            return Ok(());
        };
        let (mut s, db) = tokio::task::spawn_blocking(move || {
            s.receive(&bytes);
            s.advance(&db, crate::store::now());
            (s, db)
        })
        .await
        .map_err(std::io::Error::other)?;
        stream.write_all(&s.take_output()).await?;
        if s.is_closed() {
            return Ok(());
        }
        state = Some((s, db));
    }
}
