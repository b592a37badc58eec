//! The first command of a relay session: EHLO, or HELO for a server that
//! refuses EHLO (RFC 5321 §3.2: a client must be able to fall back to HELO
//! when EHLO gets a 5xx reply).
//!
//! lettre always opens a session with EHLO, so listd wraps the stream it
//! hands to lettre: [`HelloStream`] notes whether anything was written (an
//! error after a write is the reply to EHLO, one before it is the greeting),
//! and in [`Hello::Helo`] mode turns the first command on the wire from
//! `EHLO` into `HELO` (same length, so lettre's byte counts stay true).
//! lettre then reads the HELO reply as an EHLO reply that offers no
//! extension. Trusts nothing from the server: only the bytes we write are
//! rewritten.

use lettre::transport::smtp::client::AsyncTokioStream;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which hello the session opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    Ehlo,
    Helo,
}

/// A stream that records whether we wrote to it and, in HELO mode, sends
/// the session's first command as HELO.
#[derive(Debug)]
pub struct HelloStream {
    inner: Box<dyn AsyncTokioStream>,
    hello: Hello,
    /// Bytes written so far (counted only up to the hello verb's length).
    written: usize,
    wrote: Arc<AtomicBool>,
}

impl HelloStream {
    /// Wraps `inner`; the flag turns true at the first byte written.
    pub fn new(inner: Box<dyn AsyncTokioStream>, hello: Hello) -> (HelloStream, Arc<AtomicBool>) {
        let wrote = Arc::new(AtomicBool::new(false));
        let s = HelloStream {
            inner,
            hello,
            written: 0,
            wrote: wrote.clone(),
        };
        (s, wrote)
    }
}

/// `buf`, the bytes at stream offset `at`, with the part of them inside the
/// first four bytes of the stream changed from `EHLO` to `HELO`; `None`
/// when nothing needs changing.
fn as_helo(buf: &[u8], at: usize) -> Option<Vec<u8>> {
    const FROM: &[u8; 4] = b"EHLO";
    const TO: &[u8; 4] = b"HELO";
    if at >= FROM.len() || buf.is_empty() {
        return None;
    }
    let n = (FROM.len() - at).min(buf.len());
    if !buf[..n].eq_ignore_ascii_case(&FROM[at..at + n]) {
        return None;
    }
    let mut out = buf.to_vec();
    out[..n].copy_from_slice(&TO[at..at + n]);
    Some(out)
}

impl AsyncRead for HelloStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for HelloStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let rewritten = match self.hello {
            Hello::Helo => as_helo(buf, self.written),
            Hello::Ehlo => None,
        };
        let bytes = rewritten.as_deref().unwrap_or(buf);
        let r = Pin::new(&mut self.inner).poll_write(cx, bytes);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                self.wrote.store(true, Ordering::Relaxed);
                self.written = self.written.saturating_add(*n);
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for HelloStream {
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::as_helo;

    #[test]
    fn only_the_first_verb_is_rewritten() {
        assert_eq!(as_helo(b"EHLO a.test\r\n", 0).unwrap(), b"HELO a.test\r\n");
        assert_eq!(as_helo(b"ehlo a\r\n", 0).unwrap(), b"HELO a\r\n");
        // a partial write: the rest of the verb
        assert_eq!(as_helo(b"LO a\r\n", 2).unwrap(), b"LO a\r\n");
        assert_eq!(as_helo(b"HLO a\r\n", 1).unwrap(), b"ELO a\r\n");
        assert_eq!(as_helo(b"E", 0).unwrap(), b"H");
        // past the verb, or another command: untouched
        assert!(as_helo(b"EHLO again\r\n", 13).is_none());
        assert!(as_helo(b"QUIT\r\n", 0).is_none());
        assert!(as_helo(b"", 0).is_none());
    }
}
