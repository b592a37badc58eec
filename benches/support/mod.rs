//! What the end-to-end benches share: the real `listd serve` binary as a
//! child process, a pipelining SMTP client's reply reader, the daemon's
//! peak RSS, sizes on disk, and Postfix run as the peer (a private instance
//! with its own durable queue on a loopback port, and `smtp-source` as the
//! load generator that drives both the same way).
//!
//! Trusts the machine: Postfix is used only if its programs are installed
//! and it starts (as root); otherwise the caller prints that it skipped it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A number from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Peak resident set (VmHWM) of a process, in KiB.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system) a process has used so far, in seconds: a
/// cost per message that holds still on a shared machine, where rates
/// swing with the other load.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command name, which is in parentheses
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Bytes of every file under `path` (0 if it does not exist).
pub fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| tree_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// The machine's load averages, as `uptime` prints them.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A running `listd serve` (the binary cargo built for this bench).
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
}

impl Daemon {
    /// Starts `listd --config CONFIG serve` and waits until `addr` accepts.
    pub fn start(config: &Path, addr: SocketAddr) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_listd"))
            .arg("--config")
            .arg(config)
            .args(["serve", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn listd serve");
        let d = Daemon { child, addr };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "listd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for listd")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads one (possibly multi-line) reply; returns its code (0 on EOF or a
/// malformed reply).
pub async fn reply<R: tokio::io::AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    line: &mut String,
) -> u16 {
    loop {
        line.clear();
        match r.read_line(line).await {
            Ok(n) if n >= 4 => {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                if line.as_bytes()[3] == b' ' {
                    return code;
                }
            }
            _ => return 0,
        }
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Postfix's `smtp-source`, if installed.
pub fn smtp_source_path() -> Option<PathBuf> {
    find(&["/usr/sbin/smtp-source", "/usr/bin/smtp-source"])
}

/// Runs `smtp-source -s SESSIONS -m COUNT -l SIZE` (one message per
/// connection, as a sending MX without connection caching) against `addr`;
/// returns the messages per second, or why it failed.
pub fn smtp_source(
    addr: SocketAddr,
    sessions: u64,
    count: u64,
    size: u64,
    rcpt: &str,
) -> Result<f64, String> {
    let prog = smtp_source_path().ok_or("smtp-source is not installed")?;
    let t0 = Instant::now();
    let out = Command::new(prog)
        .args(["-s", &sessions.to_string(), "-m", &count.to_string()])
        .args([
            "-l",
            &size.to_string(),
            "-f",
            "bench@example.org",
            "-t",
            rcpt,
        ])
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let took = t0.elapsed();
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!(
            "smtp-source: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(count as f64 / took.as_secs_f64())
}

pub mod archive_fill;

#[path = "../../tests/common/postfix.rs"]
mod postfix;
#[allow(unused_imports)]
pub use postfix::PrivatePostfix;
