//! The one DNS resolver: SPF, DKIM and DMARC checks at intake (through
//! mail-auth) and, later, MX/A/AAAA lookups for delivery all ask it.
//!
//! Live, it is the system resolver (`/etc/resolv.conf`, or `dns.servers`)
//! with bounded timeouts, behind bounded caches (`cache`). With a static
//! zone (`zone`) it answers from the zone alone: a name not in it is
//! NXDOMAIN (TXT) or an empty set (MX, A, AAAA, PTR), and no query ever
//! leaves the process. A timeout or a server failure is an error the caller
//! turns into `temperror`; nothing here panics.
//!
//! A leaf that imports nothing of the application: callers hand it plain
//! [`DnsSettings`]. Trusts the zone it was given (parsed and checked at
//! configuration load); trusts nothing in the names it is asked about.

mod cache;
pub mod zone;

pub use cache::Cache;
pub use zone::{Zone, ZoneError};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{DnsError, Error, MessageAuthenticator, Parameters, RecordSet, Txt, MX};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the resolver is built from (the `dns:` section, as plain values).
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Answer from this zone only, never the network.
    pub zone: Option<Arc<Zone>>,
    /// Name servers to ask instead of the system's (`dns.servers`).
    pub servers: Vec<SocketAddr>,
    /// One query's timeout.
    pub timeout: Duration,
    /// Tries per query.
    pub attempts: usize,
    /// Most entries per record type in each cache.
    pub cache_entries: usize,
    /// Longest time an answer is cached, whatever its TTL.
    pub max_ttl: Duration,
}

impl DnsSettings {
    /// Settings that answer from `zone` only, never the network, with the
    /// configuration's default timeouts and cache bounds.
    pub fn zone_only(zone: Zone) -> DnsSettings {
        DnsSettings {
            zone: Some(Arc::new(zone)),
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
            cache_entries: 10_000,
            max_ttl: Duration::from_secs(3600),
        }
    }
}

impl PartialEq for DnsSettings {
    fn eq(&self, o: &Self) -> bool {
        let same_zone = match (&self.zone, &o.zone) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        };
        same_zone
            && self.servers == o.servers
            && self.timeout == o.timeout
            && self.attempts == o.attempts
            && self.cache_entries == o.cache_entries
            && self.max_ttl == o.max_ttl
    }
}

/// The caches mail-auth's `Parameters` take.
pub type AuthParameters<'x, P> = Parameters<
    'x,
    P,
    Cache<Box<str>, Txt>,
    Cache<Box<str>, RecordSet<MX>>,
    Cache<Box<str>, RecordSet<Ipv4Addr>>,
    Cache<Box<str>, RecordSet<Ipv6Addr>>,
    Cache<IpAddr, RecordSet<Box<str>>>,
>;

/// The resolver and its caches.
pub struct Resolver {
    auth: MessageAuthenticator,
    txt: Cache<Box<str>, Txt>,
    mx: Cache<Box<str>, RecordSet<MX>>,
    ipv4: Cache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Cache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: Cache<IpAddr, RecordSet<Box<str>>>,
    settings: DnsSettings,
}

/// A lookup that did not answer: the caller says `temperror` (or defers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup failed: {0}")]
pub struct DnsFailure(pub String);

fn set<T>(items: Vec<T>) -> RecordSet<T> {
    RecordSet {
        rrset: items.into(),
        dnssec_status: Default::default(),
    }
}

impl Resolver {
    /// Builds the resolver. Live: reads the system configuration unless
    /// `servers` are given. Fails only when there is no usable configuration.
    pub fn new(settings: &DnsSettings) -> Result<Resolver, DnsFailure> {
        let mut opts = ResolverOpts::default();
        opts.timeout = settings.timeout;
        opts.attempts = settings.attempts.max(1);
        // answers are cached above, in `cache`, which mail-auth fills only
        // with what it found; "no such record" (RFC 2308) is cached here,
        // bounded like the rest, so a sender whose domain publishes no SPF
        // or DMARC does not cost a query per message
        negative_cache(&mut opts, settings);
        let auth = match (&settings.zone, settings.servers.is_empty()) {
            // no name servers at all: even a query that slipped past the
            // zone would fail, never reach the network
            (Some(_), _) => {
                MessageAuthenticator::new(ResolverConfig::from_name_servers(Vec::new()), opts)
            }
            (None, false) => {
                let servers = settings
                    .servers
                    .iter()
                    .map(|s| {
                        let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                        for c in &mut ns.connections {
                            c.port = s.port();
                        }
                        ns
                    })
                    .collect();
                MessageAuthenticator::new(ResolverConfig::from_name_servers(servers), opts)
            }
            (None, true) => {
                let (config, mut sys) =
                    mail_auth::hickory_resolver::system_conf::read_system_conf()
                        .map_err(|e| DnsFailure(format!("system resolver configuration: {e}")))?;
                sys.timeout = opts
                    .timeout
                    .min(sys.timeout.max(Duration::from_millis(100)));
                sys.attempts = opts.attempts;
                negative_cache(&mut sys, settings);
                MessageAuthenticator::new(config, sys)
            }
        }
        .map_err(|e| DnsFailure(e.to_string()))?;
        let (n, ttl) = (settings.cache_entries, settings.max_ttl);
        let r = match &settings.zone {
            None => Resolver {
                auth,
                txt: Cache::live(n, ttl),
                mx: Cache::live(n, ttl),
                ipv4: Cache::live(n, ttl),
                ipv6: Cache::live(n, ttl),
                ptr: Cache::live(n, ttl),
                settings: settings.clone(),
            },
            Some(z) => Resolver {
                auth,
                txt: Cache::authoritative(
                    z.txt
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), txt_record(k, v))),
                    Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))),
                ),
                mx: Cache::authoritative(
                    z.mx.iter().map(|(k, v)| (k.as_str().into(), mx_set(v))),
                    set(Vec::new()),
                ),
                ipv4: Cache::authoritative(
                    z.a.iter().map(|(k, v)| (k.as_str().into(), set(v.clone()))),
                    set(Vec::new()),
                ),
                ipv6: Cache::authoritative(
                    z.aaaa
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), set(v.clone()))),
                    set(Vec::new()),
                ),
                ptr: Cache::authoritative(
                    z.ptr
                        .iter()
                        .map(|(k, v)| (*k, set(v.iter().map(|h| h.as_str().into()).collect()))),
                    set(Vec::new()),
                ),
                settings: settings.clone(),
            },
        };
        Ok(r)
    }

    /// The settings this resolver was built from.
    pub fn settings(&self) -> &DnsSettings {
        &self.settings
    }

    /// mail-auth's authenticator (for `verify_spf`, `verify_dkim`, ...).
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// mail-auth parameters over this resolver's caches.
    pub fn params<P>(&self, p: P) -> AuthParameters<'_, P> {
        Parameters {
            params: p,
            cache_txt: Some(&self.txt),
            cache_mx: Some(&self.mx),
            cache_ptr: Some(&self.ptr),
            cache_ipv4: Some(&self.ipv4),
            cache_ipv6: Some(&self.ipv6),
        }
    }

    /// The MX records of `domain`, by preference (empty: none published).
    pub async fn mx(&self, domain: &str) -> Result<Vec<MX>, DnsFailure> {
        match self.auth.mx_lookup(domain, Some(&self.mx)).await {
            Ok(r) => Ok(r.rrset.to_vec()),
            Err(e) => none_or_failure(e),
        }
    }

    /// The IPv4 addresses of `name` (empty: none).
    pub async fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
        match self.auth.ipv4_lookup(name, Some(&self.ipv4)).await {
            Ok(r) => Ok(r.rrset.to_vec()),
            Err(e) => none_or_failure(e),
        }
    }

    /// The IPv6 addresses of `name` (empty: none).
    pub async fn ipv6(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsFailure> {
        match self.auth.ipv6_lookup(name, Some(&self.ipv6)).await {
            Ok(r) => Ok(r.rrset.to_vec()),
            Err(e) => none_or_failure(e),
        }
    }
}

/// Resolver options that cache negative answers (NXDOMAIN, no data) for
/// their SOA's negative TTL, at least a minute and at most `max_ttl`, in at
/// most `cache_entries` entries. Positive answers expire from this cache at
/// once: [`Cache`] keeps them.
fn negative_cache(opts: &mut ResolverOpts, settings: &DnsSettings) {
    opts.cache_size = settings.cache_entries as u64;
    opts.negative_min_ttl = Some(NEGATIVE_MIN_TTL.min(settings.max_ttl));
    opts.negative_max_ttl = Some(settings.max_ttl);
    opts.positive_max_ttl = Some(Duration::ZERO);
}

/// The shortest time a negative answer is cached (RFC 2308 §5 leaves it to
/// the resolver; a minute spares a burst from one sender).
const NEGATIVE_MIN_TTL: Duration = Duration::from_secs(60);

/// "No such record" is an empty answer; anything else is a failure.
fn none_or_failure<T>(e: Error) -> Result<Vec<T>, DnsFailure> {
    match e {
        Error::Dns(DnsError::RecordNotFound(_)) => Ok(Vec::new()),
        e => Err(DnsFailure(e.to_string())),
    }
}

/// A static zone's TXT values at `name` as mail-auth caches them: the
/// record the name is for (DMARC, DKIM key, SPF), the first that parses,
/// as mail-auth's own lookup picks it.
fn txt_record(name: &str, values: &[String]) -> Txt {
    fn first<T: TxtRecordParser + Into<Txt>>(values: &[String]) -> Txt {
        let mut r = Err(Error::Dns(DnsError::InvalidRecordType));
        for v in values {
            r = T::parse(v.as_bytes());
            if r.is_ok() {
                break;
            }
        }
        r.into()
    }
    if name.starts_with("_dmarc.") {
        first::<mail_auth::dmarc::Dmarc>(values)
    } else if name.contains("._domainkey.") {
        first::<mail_auth::common::verify::DomainKey>(values)
    } else if values.iter().any(|v| zone::is_spf(v)) {
        let spf: Vec<String> = values.iter().filter(|v| zone::is_spf(v)).cloned().collect();
        first::<mail_auth::spf::Spf>(&spf)
    } else {
        // an SPF `exp=` explanation, or text nothing here reads
        first::<mail_auth::spf::Macro>(values)
    }
}

fn mx_set(v: &[(u16, String)]) -> RecordSet<MX> {
    let mut by_pref: Vec<(u16, Vec<Box<str>>)> = Vec::new();
    for (p, h) in v {
        match by_pref.iter_mut().find(|(q, _)| q == p) {
            Some((_, hs)) => hs.push(h.as_str().into()),
            None => by_pref.push((*p, vec![h.as_str().into()])),
        }
    }
    by_pref.sort_by_key(|(p, _)| *p);
    set(by_pref
        .into_iter()
        .map(|(preference, hs)| MX {
            preference,
            exchanges: hs.into_boxed_slice(),
        })
        .collect())
}

/// Keeps one resolver for the settings of the moment: built on first use,
/// rebuilt (with empty caches) when a reload changes the settings.
#[derive(Default)]
pub struct ResolverSlot(Mutex<Option<Arc<Resolver>>>);

impl ResolverSlot {
    /// The resolver for `settings`.
    pub fn get(&self, settings: &DnsSettings) -> Result<Arc<Resolver>, DnsFailure> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot.as_ref().filter(|r| r.settings() == settings) {
            return Ok(r.clone());
        }
        let r = Arc::new(Resolver::new(settings)?);
        *slot = Some(r.clone());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(zone: Option<Zone>) -> DnsSettings {
        DnsSettings {
            zone: zone.map(Arc::new),
            servers: Vec::new(),
            timeout: Duration::from_millis(300),
            attempts: 1,
            cache_entries: 100,
            max_ttl: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_static_zone_answers_without_the_network() {
        let z = zone::parse(
            "example.org MX 20 b.example.org\nexample.org MX 10 a.example.org\n\
             a.example.org A 192.0.2.1\na.example.org AAAA 2001:db8::1\n",
        )
        .unwrap();
        let r = Resolver::new(&settings(Some(z))).unwrap();
        let mx = r.mx("Example.org").await.unwrap();
        assert_eq!(mx.len(), 2);
        assert_eq!(mx[0].preference, 10);
        assert_eq!(&*mx[0].exchanges[0], "a.example.org.");
        assert_eq!(
            r.ipv4("a.example.org").await.unwrap(),
            [Ipv4Addr::new(192, 0, 2, 1)]
        );
        assert_eq!(r.ipv6("a.example.org.").await.unwrap().len(), 1);
        assert!(r.mx("nowhere.example").await.unwrap().is_empty());
        assert!(r.ipv4("nowhere.example").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unanswering_server_is_a_failure_not_a_hang() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut s = settings(None);
        s.servers = vec![silent.local_addr().unwrap()];
        let r = Resolver::new(&s).unwrap();
        let t = std::time::Instant::now();
        let e = r.mx("example.org").await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(e.0.contains("DNS"), "{e}");
    }

    #[test]
    fn the_slot_rebuilds_only_when_the_settings_change() {
        let slot = ResolverSlot::default();
        let s = settings(Some(Zone::default()));
        let a = slot.get(&s).unwrap();
        assert!(Arc::ptr_eq(&a, &slot.get(&s).unwrap()));
        let mut s2 = s.clone();
        s2.attempts = 2;
        assert!(!Arc::ptr_eq(&a, &slot.get(&s2).unwrap()));
    }
}
