//! `pop3:` and `imap:` in listd.yaml: the read-only archive servers
//! (`crate::pop3`, `crate::imap`). Both are off unless `listen` is set.

use super::error::{find_line, ConfigError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Shortest POP3 inactivity timer RFC 1939 §3 allows.
pub const POP3_MIN_IDLE_SECS: u64 = 600;
/// Shortest IMAP autologout timer RFC 3501 §5.4 allows.
pub const IMAP_MIN_IDLE_SECS: u64 = 1800;

/// `pop3:` — the list archives over POP3 (RFC 1939), read-only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Config {
    /// `host:port` to listen on; absent: no POP3 server.
    pub listen: Option<String>,
    /// Posts in a maildrop: the newest N of the list's archive.
    pub maildrop_size: usize,
    /// Seconds of silence before the server closes a session (at least 600).
    pub idle_timeout_secs: u64,
    /// Sessions open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            listen: None,
            maildrop_size: 500,
            idle_timeout_secs: POP3_MIN_IDLE_SECS,
            max_connections: 100,
        }
    }
}

/// `imap:` — the list archives over IMAP4rev1 (RFC 3501), read-only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// `host:port` to listen on (plain, with STARTTLS when a certificate
    /// is set); absent: no IMAP server.
    pub listen: Option<String>,
    /// `host:port` for implicit TLS (IMAPS, port 993); needs `tls_cert`.
    pub listen_tls: Option<String>,
    /// PEM certificate chain and private key files for TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Seconds of silence before the server logs a session out (at least 1800).
    pub idle_timeout_secs: u64,
    /// Sessions open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            listen: None,
            listen_tls: None,
            tls_cert: None,
            tls_key: None,
            idle_timeout_secs: IMAP_MIN_IDLE_SECS,
            max_connections: 100,
        }
    }
}

/// Checks both sections; errors name the key.
pub(super) fn validate(
    path: &Path,
    text: &str,
    pop3: &Pop3Config,
    imap: &ImapConfig,
    errors: &mut Vec<ConfigError>,
) {
    let mut err = |needle: &str, why: String| {
        errors.push(ConfigError::new(path, find_line(text, needle), why))
    };
    for (key, spec) in [
        ("pop3.listen", &pop3.listen),
        ("imap.listen", &imap.listen),
        ("imap.listen_tls", &imap.listen_tls),
    ] {
        if let Some(l) = spec {
            if l.parse::<std::net::SocketAddr>().is_err() {
                err(
                    l,
                    format!("{key} `{l}` is not host:port (like 127.0.0.1:1143)"),
                );
            }
        }
    }
    if pop3.idle_timeout_secs < POP3_MIN_IDLE_SECS {
        err(
            "idle_timeout_secs",
            format!("pop3.idle_timeout_secs must be at least {POP3_MIN_IDLE_SECS} (RFC 1939)"),
        );
    }
    if imap.idle_timeout_secs < IMAP_MIN_IDLE_SECS {
        err(
            "idle_timeout_secs",
            format!("imap.idle_timeout_secs must be at least {IMAP_MIN_IDLE_SECS} (RFC 3501)"),
        );
    }
    if pop3.maildrop_size == 0 {
        err(
            "maildrop_size",
            "pop3.maildrop_size must be at least 1".into(),
        );
    }
    if imap.tls_cert.is_some() != imap.tls_key.is_some() {
        err("tls_", "imap.tls_cert and imap.tls_key go together".into());
    }
    if imap.listen_tls.is_some() && imap.tls_cert.is_none() {
        err(
            "listen_tls",
            "imap.listen_tls needs imap.tls_cert and imap.tls_key".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(yaml: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lists")).unwrap();
        let path = dir.path().join("listd.yaml");
        std::fs::write(&path, format!("domain: l.example.org\n{yaml}")).unwrap();
        Config::load(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn readers_are_off_by_default_and_checked_when_set() {
        let c = load("").unwrap();
        assert_eq!(c.pop3.listen, None);
        assert_eq!(c.imap.listen, None);
        assert_eq!(c.pop3.maildrop_size, 500);
        assert_eq!(c.pop3.idle_timeout_secs, 600);
        let c = load("pop3:\n  listen: 127.0.0.1:1110\n  maildrop_size: 20\nimap:\n  listen: 127.0.0.1:1143\n  tls_cert: c.pem\n  tls_key: k.pem\n").unwrap();
        assert_eq!(c.pop3.maildrop_size, 20);
        assert!(
            c.imap.tls_cert.unwrap().is_absolute(),
            "resolved beside listd.yaml"
        );
        for (yaml, want) in [
            ("pop3:\n  listen: nowhere\n", "pop3.listen `nowhere`"),
            ("pop3:\n  idle_timeout_secs: 60\n", "at least 600"),
            ("imap:\n  idle_timeout_secs: 60\n", "at least 1800"),
            (
                "pop3:\n  maildrop_size: 0\n",
                "maildrop_size must be at least 1",
            ),
            ("imap:\n  tls_cert: c.pem\n", "go together"),
            (
                "imap:\n  listen_tls: 127.0.0.1:993\n",
                "needs imap.tls_cert",
            ),
            ("imap:\n  lisen: 127.0.0.1:1\n", "unknown field"),
        ] {
            let e = load(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
