//! The control socket: how the CLI tells a running daemon that it changed
//! the store, so the daemon's workers look at once instead of at their next
//! poll (a moderator's `listd held approve` reaches the relay in
//! milliseconds, not 15 seconds).
//!
//! A unix datagram socket, `data_dir/listd.ctl`, bound by the daemon. A
//! datagram `wake` wakes the pipeline and delivery workers; anything else is
//! ignored. Only a process that can write to the data directory can send
//! one, and a wake-up only makes the workers look sooner: it carries no
//! command and changes nothing by itself.

use std::path::{Path, PathBuf};

/// The socket's path in a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("listd.ctl")
}

/// Asks a daemon running on `data_dir` to look at the store now. Returns
/// whether one was there to ask.
pub fn wake(data_dir: &Path) -> bool {
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    sock.send_to(b"wake", path(data_dir)).is_ok()
}

/// Binds the daemon's side (replacing a stale socket a crash left behind)
/// and calls `on_wake` for every `wake` until the task is dropped.
pub fn listen(
    data_dir: &Path,
    on_wake: impl Fn() + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let p = path(data_dir);
    let _ = std::fs::remove_file(&p);
    let sock = tokio::net::UnixDatagram::bind(&p)?;
    Ok(tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) if &buf[..n] == b"wake" => on_wake(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "control socket failed; CLI changes wait for the workers' next poll");
                    return;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_wake_reaches_the_listener_and_other_datagrams_do_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!wake(dir.path()), "nobody listens yet");
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let task = listen(dir.path(), move || {
            n2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let other = std::os::unix::net::UnixDatagram::unbound().unwrap();
        other.send_to(b"shutdown", path(dir.path())).unwrap();
        assert!(wake(dir.path()));
        for _ in 0..100 {
            if n.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(n.load(Ordering::SeqCst), 1);
        task.abort();
    }
}
