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

/// A private Postfix instance: its own main.cf/master.cf, queue and data
/// directories in a temp dir, `smtpd` on a loopback port writing a durable
/// queue (cleanup fsyncs each queue file before the 250), relaying
/// `lists.example.org` to the `discard` transport. Stopped when dropped.
pub struct PostfixQueue {
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl PostfixQueue {
    /// Starts it, or says why it could not.
    pub fn start() -> Result<PostfixQueue, String> {
        use std::os::unix::fs::PermissionsExt;
        let postfix = find(&["/usr/sbin/postfix"]).ok_or("postfix is not installed")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let p = dir.path().to_path_buf();
        let p = p.as_path();
        // postfix's own processes run as its mail_owner and must reach the queue
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        for d in ["etc", "queue", "data"] {
            std::fs::create_dir_all(p.join(d)).map_err(|e| e.to_string())?;
        }
        let chown = Command::new("chown")
            .args(["postfix:postfix"])
            .arg(p.join("data"))
            .status()
            .map_err(|e| e.to_string())?;
        if !chown.success() {
            return Err("cannot chown the data directory to postfix (not root?)".into());
        }
        let port = free_port();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {q}\n\
             data_directory = {d}\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             myhostname = postfix.bench.example\n\
             mydestination =\n\
             mynetworks = 127.0.0.0/8\n\
             relay_domains = lists.example.org\n\
             default_transport = discard\n\
             relay_transport = discard\n\
             smtpd_recipient_restrictions = permit_mynetworks, reject\n",
            q = p.join("queue").display(),
            d = p.join("data").display(),
        );
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             pickup unix n - n 60 1 pickup\n\
             cleanup unix n - n - 0 cleanup\n\
             qmgr unix n - n 300 1 qmgr\n\
             rewrite unix - - n - - trivial-rewrite\n\
             bounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\n\
             trace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\n\
             flush unix n - n 1000? 0 flush\n\
             proxymap unix - - n - - proxymap\n\
             showq unix n - n - - showq\n\
             error unix - - n - - error\n\
             retry unix - - n - - error\n\
             discard unix - - n - - discard\n\
             anvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\n"
        );
        std::fs::write(p.join("etc/main.cf"), main_cf).map_err(|e| e.to_string())?;
        std::fs::write(p.join("etc/master.cf"), master_cf).map_err(|e| e.to_string())?;
        let status = Command::new(postfix)
            .arg("-c")
            .arg(p.join("etc"))
            .arg("start")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        let q = PostfixQueue {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        if !status.success() {
            return Err(format!(
                "postfix -c {} start: {status}",
                p.join("etc").display()
            ));
        }
        let t0 = Instant::now();
        while std::net::TcpStream::connect(q.addr).is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                return Err("postfix did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(q)
    }
}

impl Drop for PostfixQueue {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
