//! A private Postfix instance for tests and benches: the real MTA as a
//! peer, on a loopback port, with its own configuration and queue in a temp
//! dir (shared by `tests/` as `common::postfix` and by `benches/support`).
//!
//! Trusts the machine: it needs Postfix installed and root (its daemons run
//! as the `postfix` user); otherwise `start` says why, for the caller to
//! skip with that message.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn find(names: &[&str]) -> Option<std::path::PathBuf> {
    names
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// A private Postfix instance: its own main.cf/master.cf, queue and data
/// directories in a temp dir, `smtpd` on a loopback port writing a durable
/// queue (cleanup fsyncs each queue file before the 250), accepting mail
/// from 127.0.0.0/8 for any domain and handing it to the `discard`
/// transport, or relaying it to `relay` over SMTP. Stopped when dropped.
pub struct PrivatePostfix {
    dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl PrivatePostfix {
    /// Starts it, or says why it could not (not installed, not root).
    pub fn start(relay: Option<SocketAddr>) -> Result<PrivatePostfix, String> {
        Self::start_with(relay, false, false)
    }

    /// The same, playing an RFC 821 server: a command filter turns EHLO
    /// into an unknown verb (502), so only HELO opens a session, and then
    /// with no extension (no 8BITMIME).
    pub fn start_helo_only(relay: Option<SocketAddr>) -> Result<PrivatePostfix, String> {
        Self::start_with(relay, false, true)
    }

    /// The same, with `smtpd` offering STARTTLS (a self-signed certificate
    /// made with `openssl`) and noting the TLS session in its `Received:`.
    pub fn start_tls(relay: Option<SocketAddr>) -> Result<PrivatePostfix, String> {
        Self::start_with(relay, true, false)
    }

    fn start_with(
        relay: Option<SocketAddr>,
        tls: bool,
        helo_only: bool,
    ) -> Result<PrivatePostfix, String> {
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
        let tls_cf = if tls {
            let (key, cert) = (p.join("etc/key.pem"), p.join("etc/cert.pem"));
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=postfix.test.example", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("openssl: {e}"))?;
            if !made.success() {
                return Err("openssl could not make a certificate".into());
            }
            format!(
                "smtpd_tls_security_level = may\n\
                 smtpd_tls_cert_file = {}\n\
                 smtpd_tls_key_file = {}\n\
                 smtpd_tls_received_header = yes\n",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        let helo_cf = if helo_only {
            let filter = p.join("etc/command_filter");
            std::fs::write(&filter, "/^EHLO(.*)$/ XEHLO$1\n").map_err(|e| e.to_string())?;
            format!("smtpd_command_filter = regexp:{}\n", filter.display())
        } else {
            String::new()
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
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
             {transport}\
             smtpd_recipient_restrictions = permit_mynetworks, reject\n\
             smtp_tls_security_level = none\n\
             {tls_cf}{helo_cf}",
            q = p.join("queue").display(),
            d = p.join("data").display(),
            transport = match relay {
                None => "default_transport = discard\nrelay_transport = discard\n".to_string(),
                Some(r) => format!(
                    "default_transport = smtp\nrelay_transport = smtp\nrelayhost = [{}]:{}\n",
                    r.ip(),
                    r.port()
                ),
            },
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
             smtp unix - - n - - smtp\n\
             tlsmgr unix - - n 1000? 1 tlsmgr\n\
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
        let q = PrivatePostfix {
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

impl Drop for PrivatePostfix {
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
