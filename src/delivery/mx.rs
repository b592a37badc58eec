//! Direct delivery (`relay.mode: mx`): each recipient domain's mail
//! exchangers, found through the one resolver (`crate::dns`), instead of a
//! relay MTA.
//!
//! A domain's route is its MX records by preference; with none, the domain
//! itself (the implicit MX of RFC 5321 §5.1) when it has an address; a null
//! MX (RFC 7505, `0 .`) or no record at all fails its recipients at once.
//! Each exchanger's addresses are tried in turn until one answers; the
//! connection uses opportunistic STARTTLS ([`Relay::connect_exchanger`]).
//! Connections are kept per domain for the pass, and at most
//! `relay.mx_connections_per_domain` are open to one domain at a time. A
//! DNS failure or no exchanger answering defers the recipients (the queue's
//! retry and give-up apply as for a relay).
//!
//! Trusts the resolver's answers as routing data only; the exchangers'
//! replies are judged by `client`, as a relay's are.

use super::client::{RcptResult, Relay, RelayConn};
use crate::dns::Resolver;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Where a domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxRoute {
    /// Exchanger host names, most preferred first.
    Exchangers(Vec<String>),
    /// The domain publishes that it takes no mail (RFC 7505).
    NullMx,
    /// No MX and no address: nothing can take its mail.
    NoExchanger,
}

/// Looks up `domain`'s route.
pub async fn route(resolver: &Resolver, domain: &str) -> Result<MxRoute, String> {
    let mx = resolver
        .mx(domain)
        .await
        .map_err(|e| format!("MX lookup for {domain}: {e}"))?;
    if mx.is_empty() {
        let has_address = !addresses(resolver, domain).await?.is_empty();
        return Ok(if has_address {
            MxRoute::Exchangers(vec![domain.to_string()])
        } else {
            MxRoute::NoExchanger
        });
    }
    let mut records: Vec<_> = mx.iter().collect();
    records.sort_by_key(|m| m.preference);
    let hosts: Vec<String> = records
        .iter()
        .flat_map(|m| m.exchanges.iter())
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    if hosts.iter().all(|h| h.is_empty()) {
        return Ok(MxRoute::NullMx);
    }
    Ok(MxRoute::Exchangers(
        hosts.into_iter().filter(|h| !h.is_empty()).collect(),
    ))
}

/// `host`'s IPv4 then IPv6 addresses.
async fn addresses(resolver: &Resolver, host: &str) -> Result<Vec<IpAddr>, String> {
    let v4 = resolver
        .ipv4(host)
        .await
        .map_err(|e| format!("address lookup for {host}: {e}"))?;
    let v6 = resolver
        .ipv6(host)
        .await
        .map_err(|e| format!("address lookup for {host}: {e}"))?;
    Ok(v4
        .into_iter()
        .map(IpAddr::V4)
        .chain(v6.into_iter().map(IpAddr::V6))
        .collect())
}

/// One pass's direct delivery: the resolver, connections kept per domain,
/// and each domain's concurrency limit.
pub struct MxPass {
    resolver: Arc<Resolver>,
    relay: Relay,
    per_domain: usize,
    idle: Mutex<HashMap<String, Vec<RelayConn>>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl MxPass {
    /// `relay`: the settings every exchanger connection shares (port, HELO,
    /// timeouts, pipelining).
    pub fn new(resolver: Arc<Resolver>, relay: Relay, per_domain: usize) -> MxPass {
        MxPass {
            resolver,
            relay,
            per_domain: per_domain.max(1),
            idle: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for one of `domain`'s connection slots.
    pub async fn permit(&self, domain: &str) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
            l.entry(domain.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_domain)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }

    /// A connection to one of `domain`'s exchangers (a kept one first), or
    /// the verdict for all its recipients when there is none.
    pub async fn connect(&self, domain: &str) -> Result<RelayConn, RcptResult> {
        let kept = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(domain)
            .and_then(Vec::pop);
        if let Some(c) = kept {
            return Ok(c);
        }
        let hosts = match route(&self.resolver, domain).await {
            Err(why) => return Err(RcptResult::Deferred(why)),
            Ok(MxRoute::NullMx) => {
                return Err(RcptResult::Failed {
                    reply: format!("556 5.1.10 {domain} accepts no mail (null MX)"),
                    bounce: true,
                })
            }
            Ok(MxRoute::NoExchanger) => {
                return Err(RcptResult::Failed {
                    reply: format!("550 5.1.2 {domain} has no mail exchanger (no MX, A or AAAA)"),
                    bounce: true,
                })
            }
            Ok(MxRoute::Exchangers(hosts)) => hosts,
        };
        let mut last = format!("{domain}: no exchanger has an address");
        for host in &hosts {
            let ips = match addresses(&self.resolver, host).await {
                Ok(ips) => ips,
                Err(why) => {
                    last = why;
                    continue;
                }
            };
            let relay = self.relay.for_exchanger(host);
            for ip in ips {
                match relay.connect_exchanger(ip).await {
                    Ok(c) => return Ok(c),
                    Err(why) => last = why,
                }
            }
        }
        Err(RcptResult::Deferred(format!(
            "no mail exchanger of {domain} answered: {last}"
        )))
    }

    /// Keeps a still usable connection for `domain`'s next recipients.
    pub fn keep(&self, domain: &str, conn: RelayConn) {
        if conn.is_usable() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(domain.to_string())
                .or_default()
                .push(conn);
        }
    }

    /// Closes every kept connection.
    pub async fn close(&self) {
        let all: Vec<RelayConn> = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .flat_map(|(_, v)| v)
            .collect();
        for c in all {
            c.quit().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(zone: &str) -> Resolver {
        let zone = crate::dns::zone::parse(zone).unwrap();
        Resolver::new(&crate::dns::DnsSettings::zone_only(zone)).unwrap()
    }

    #[tokio::test]
    async fn routes_follow_mx_preference_then_the_implicit_mx_then_none() {
        let r = resolver(
            "a.example MX 20 backup.a.example\n\
             a.example MX 10 mx.a.example.\n\
             b.example A 192.0.2.1\n\
             null.example MX 0 .\n",
        );
        assert_eq!(
            route(&r, "a.example").await,
            Ok(MxRoute::Exchangers(vec![
                "mx.a.example".into(),
                "backup.a.example".into()
            ]))
        );
        assert_eq!(
            route(&r, "b.example").await,
            Ok(MxRoute::Exchangers(vec!["b.example".into()]))
        );
        assert_eq!(route(&r, "null.example").await, Ok(MxRoute::NullMx));
        assert_eq!(route(&r, "nowhere.example").await, Ok(MxRoute::NoExchanger));
    }
}
