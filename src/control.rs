//! The control socket: how the CLI tells a running daemon that it changed
//! the store, so the daemon's workers look at once instead of at their next
//! poll (a moderator's `listd held approve` reaches the relay in
//! milliseconds, not 15 seconds).
//!
//! A unix datagram socket, `data_dir/listd.ctl`, bound by the daemon. A
//! datagram `wake` wakes the pipeline and delivery workers; `reload` asks
//! `listd serve` to re-read its configuration from disk, as SIGHUP does (so
//! `listd lists create|set` take effect at once); anything else is ignored.
//! Only a process that can write to the data directory can send one. Neither
//! carries any data: a wake-up only makes the workers look sooner, and a
//! reload only reads the files already on disk, refusing them if they have
//! errors.

use std::path::{Path, PathBuf};

/// The socket's path in a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("listd.ctl")
}

/// What a datagram on the control socket asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRequest {
    /// Look at the store now.
    Wake,
    /// Re-read the configuration from disk.
    Reload,
}

impl ControlRequest {
    fn datagram(self) -> &'static [u8] {
        match self {
            ControlRequest::Wake => b"wake",
            ControlRequest::Reload => b"reload",
        }
    }

    fn read(datagram: &[u8]) -> Option<ControlRequest> {
        [ControlRequest::Wake, ControlRequest::Reload]
            .into_iter()
            .find(|r| r.datagram() == datagram)
    }
}

/// Asks a daemon running on `data_dir` to look at the store now. Returns
/// whether one was there to ask.
pub fn wake(data_dir: &Path) -> bool {
    send(data_dir, ControlRequest::Wake)
}

/// Asks a daemon running on `data_dir` to re-read its configuration.
/// Returns whether one was there to ask.
pub fn reload(data_dir: &Path) -> bool {
    send(data_dir, ControlRequest::Reload)
}

fn send(data_dir: &Path, request: ControlRequest) -> bool {
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    sock.send_to(request.datagram(), path(data_dir)).is_ok()
}

/// Binds the daemon's side (replacing a stale socket a crash left behind)
/// and calls `on_request` for every `wake` and `reload` until the task is
/// dropped.
pub fn listen(
    data_dir: &Path,
    on_request: impl Fn(ControlRequest) + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let p = path(data_dir);
    let _ = std::fs::remove_file(&p);
    let sock = tokio::net::UnixDatagram::bind(&p)?;
    Ok(tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) => {
                    if let Some(r) = ControlRequest::read(&buf[..n]) {
                        on_request(r);
                    }
                }
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
    async fn wake_and_reload_reach_the_listener_and_other_datagrams_do_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!wake(dir.path()), "nobody listens yet");
        assert!(!reload(dir.path()), "nobody listens yet");
        let wakes = Arc::new(AtomicUsize::new(0));
        let reloads = Arc::new(AtomicUsize::new(0));
        let (w, r) = (wakes.clone(), reloads.clone());
        let task = listen(dir.path(), move |req| {
            let n = match req {
                ControlRequest::Wake => &w,
                ControlRequest::Reload => &r,
            };
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let other = std::os::unix::net::UnixDatagram::unbound().unwrap();
        other.send_to(b"shutdown", path(dir.path())).unwrap();
        other.send_to(b"reloadx", path(dir.path())).unwrap();
        assert!(wake(dir.path()));
        assert!(reload(dir.path()));
        for _ in 0..100 {
            if wakes.load(Ordering::SeqCst) + reloads.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(reloads.load(Ordering::SeqCst), 1);
        task.abort();
    }
}
