//! Who the client is, behind a reverse proxy: from a peer in
//! `web.trusted_proxies`, the client is the last address in
//! `X-Forwarded-For:` that is not itself a trusted proxy (proxies append
//! the address they heard from, so everything left of that was written by
//! the client and proves nothing). From any other peer the header is
//! ignored. The per-IP rate limits count the result.
//!
//! Trusts the header only as far as the configured proxies wrote it.

use super::{ClientIp, WebState};
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The client of a request that came from `peer`.
pub fn client(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !trusted(&client) {
                    break;
                }
            }
            // garbage where an address should be: stop at the last proxy
            Err(_) => break,
        }
    }
    client
}

/// The middleware: replaces the connection's [`ClientIp`] with the client
/// the trusted proxy names.
pub async fn resolve(
    axum::extract::State(s): axum::extract::State<WebState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let config = s.live.current().config;
    if !config.web.trusted_proxies.is_empty() {
        if let Some(peer) = req.extensions().get::<ClientIp>().map(|c| c.0) {
            let proxies: Vec<IpNet> = config
                .web
                .trusted_proxies
                .iter()
                .filter_map(|n| crate::config::parse_cidr(n).ok())
                .collect();
            let ip = client(peer, req.headers(), &proxies);
            req.extensions_mut().insert(ClientIp(ip));
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let proxies = vec![crate::config::parse_cidr("10.0.0.0/8").unwrap()];
        let h = xff(&["198.51.100.7"]);
        assert_eq!(client(ip("10.1.2.3"), &h, &proxies), ip("198.51.100.7"));
        // anyone else's header is their own claim
        assert_eq!(client(ip("203.0.113.9"), &h, &proxies), ip("203.0.113.9"));
        assert_eq!(client(ip("10.1.2.3"), &h, &[]), ip("10.1.2.3"));
    }

    proptest::proptest! {
        /// Whatever the header holds: from a trusted proxy the answer is
        /// the proxy or an address written in the header; from anyone else
        /// always the peer.
        #[test]
        fn the_answer_is_the_peer_or_a_written_address(
            hops in proptest::collection::vec(
                proptest::prop_oneof![
                    "(10|198)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
                    "[ -~]{0,20}",
                ],
                0..6,
            )
        ) {
            let joined = hops.join(", ");
            let Ok(value) = joined.parse::<axum::http::HeaderValue>() else {
                return Ok(());
            };
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", value);
            let proxies = vec![crate::config::parse_cidr("10.0.0.0/8").unwrap()];
            let from_proxy = client(ip("10.1.2.3"), &h, &proxies);
            proptest::prop_assert!(
                from_proxy == ip("10.1.2.3")
                    || hops.iter().flat_map(|h| h.split(','))
                        .any(|w| w.trim().parse::<IpAddr>().is_ok_and(|a| a.to_canonical() == from_proxy))
            );
            proptest::prop_assert_eq!(client(ip("203.0.113.9"), &h, &proxies), ip("203.0.113.9"));
        }
    }

    #[test]
    fn the_client_is_the_last_hop_no_proxy_wrote_itself() {
        let proxies = vec![crate::config::parse_cidr("10.0.0.0/8").unwrap()];
        // the client forged the first entry; our proxies added the rest
        let h = xff(&["1.2.3.4, 198.51.100.7", "10.9.9.9"]);
        assert_eq!(client(ip("10.1.2.3"), &h, &proxies), ip("198.51.100.7"));
        // no header, or garbage: the proxy itself
        assert_eq!(client(ip("10.1.2.3"), &xff(&[]), &proxies), ip("10.1.2.3"));
        let junk = xff(&["198.51.100.7, not-an-ip"]);
        assert_eq!(client(ip("10.1.2.3"), &junk, &proxies), ip("10.1.2.3"));
        // IPv4-mapped IPv6 counts as IPv4
        let mapped = xff(&["::ffff:198.51.100.7"]);
        assert_eq!(
            client(ip("10.1.2.3"), &mapped, &proxies),
            ip("198.51.100.7")
        );
    }
}
