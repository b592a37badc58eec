//! `dns:` and `auth:` in listd.yaml: the resolver's settings (with the
//! static zone, parsed and checked here so a bad zone is a configuration
//! error naming its file and line) and inbound authentication.

use super::error::{find_line, ConfigError};
use crate::dns::{self, DnsSettings, Zone};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `dns:` — the one resolver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// A zone file to answer from instead of the network (tests,
    /// air-gapped sites); see `contrib/static-zone.sample`.
    pub static_zone: Option<PathBuf>,
    /// `ip:port` name servers to ask instead of /etc/resolv.conf's.
    pub servers: Vec<String>,
    /// One query's timeout, milliseconds.
    pub timeout_ms: u64,
    /// Tries per query.
    pub attempts: usize,
    /// Most cached answers per record type.
    pub cache_entries: usize,
    /// Longest an answer is cached, seconds, whatever its TTL.
    pub max_ttl_secs: u64,
    /// The parsed static zone (filled in at load).
    #[serde(skip)]
    pub zone: Option<Arc<Zone>>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            static_zone: None,
            servers: Vec::new(),
            timeout_ms: 2000,
            attempts: 2,
            cache_entries: 10_000,
            max_ttl_secs: 3600,
            zone: None,
        }
    }
}

impl DnsConfig {
    /// The resolver's settings.
    pub fn settings(&self) -> DnsSettings {
        DnsSettings {
            zone: self.zone.clone(),
            servers: self.servers.iter().filter_map(|s| s.parse().ok()).collect(),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            attempts: self.attempts.max(1),
            cache_entries: self.cache_entries.max(1),
            max_ttl: Duration::from_secs(self.max_ttl_secs),
        }
    }

    /// Reads and parses `static_zone` (relative to listd.yaml); every bad
    /// line is an error naming the zone file and the line.
    pub(super) fn load_zone(
        &mut self,
        path: &Path,
        text: &str,
        resolve: &dyn Fn(&Path) -> PathBuf,
        errors: &mut Vec<ConfigError>,
    ) {
        for s in &self.servers {
            if s.parse::<std::net::SocketAddr>().is_err() {
                errors.push(ConfigError::new(
                    path,
                    find_line(text, s),
                    format!("dns.servers `{s}` is not ip:port (like 127.0.0.1:53)"),
                ));
            }
        }
        let Some(p) = &self.static_zone else { return };
        let file = resolve(p);
        match std::fs::read_to_string(&file) {
            Err(e) => errors.push(ConfigError::new(
                path,
                find_line(text, "static_zone"),
                format!("dns.static_zone `{}`: cannot read: {e}", file.display()),
            )),
            Ok(zone) => match dns::zone::parse(&zone) {
                Ok(z) => self.zone = Some(Arc::new(z)),
                Err(es) => errors.extend(
                    es.into_iter()
                        .map(|e| ConfigError::new(&file, Some((e.line, 1)), e.reason)),
                ),
            },
        }
    }
}

/// `auth:` — SPF, DKIM and DMARC checks at intake.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Check mail to the list addresses; off: no verdict is recorded and
    /// nothing is believed on its strength.
    pub enabled: bool,
    /// The authserv-id of our `Authentication-Results:` fields (default
    /// `smtp.hostname`); fields claiming it from outside are removed.
    pub authserv_id: Option<String>,
    /// Take the verdict of the MTA in front (a client in
    /// `smtp.trusted_networks`) from its `Authentication-Results:` with
    /// this authserv-id, instead of checking.
    pub trust_upstream_authserv_id: Option<String>,
    /// The whole check's time limit, seconds; past it the verdict is
    /// `temperror` and the mail is still accepted.
    pub timeout_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            authserv_id: None,
            trust_upstream_authserv_id: None,
            timeout_secs: 20,
        }
    }
}

pub(super) fn validate(path: &Path, text: &str, a: &AuthConfig, errors: &mut Vec<ConfigError>) {
    for (key, v) in [
        ("authserv_id", &a.authserv_id),
        ("trust_upstream_authserv_id", &a.trust_upstream_authserv_id),
    ] {
        let Some(v) = v else { continue };
        if dns::zone::fqdn(v).is_err() {
            errors.push(ConfigError::new(
                path,
                find_line(text, key),
                format!("auth.{key} `{v}` is not a host name"),
            ));
        }
    }
    if a.timeout_secs == 0 {
        errors.push(ConfigError::new(
            path,
            find_line(text, "timeout_secs"),
            "auth.timeout_secs must be greater than 0".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_bad_zone_is_reported_with_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("zone"),
            "ok.example A 192.0.2.1\nbad.example A nope\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("listd.yaml"),
            "domain: lists.example.org\ndns:\n  static_zone: zone\n  servers: [\"x\"]\n",
        )
        .unwrap();
        let e = Config::load(&dir.path().join("listd.yaml"))
            .unwrap_err()
            .to_string();
        let zone = dir.path().join("zone").display().to_string();
        assert!(
            e.contains(&format!("{zone}:2:1: `nope` is not an IPv4 address")),
            "{e}"
        );
        assert!(e.contains("dns.servers `x` is not ip:port"), "{e}");
        std::fs::write(
            dir.path().join("listd.yaml"),
            "domain: lists.example.org\ndns:\n  static_zone: missing\n",
        )
        .unwrap();
        let e = Config::load(&dir.path().join("listd.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("listd.yaml:3:3: dns.static_zone") && e.contains("cannot read"),
            "{e}"
        );
    }
}
