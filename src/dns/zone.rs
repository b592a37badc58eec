//! The static zone file (`dns.static_zone`): the records a test site or an
//! air-gapped site answers from, with no network.
//!
//! One record per line, `NAME TYPE VALUE`, fields separated by blanks; `#`
//! starts a comment line; blank lines are skipped. Names are case-blind and
//! may end in a dot. Types:
//!
//! - `TXT` — the rest of the line, either one or more `"quoted strings"`
//!   (joined, as DNS joins a record's strings; `\"` and `\\` escape) or the
//!   bare text. Records at `_dmarc.` names must parse as DMARC, at
//!   `._domainkey.` names as DKIM keys, and `v=spf1` records as SPF; an SPF
//!   record may not use `exists:` (a static zone cannot say which names
//!   exist beyond its own).
//! - `MX` — `PREFERENCE HOST` (`0 .` is a null MX, RFC 7505).
//! - `A`, `AAAA` — an address.
//! - `PTR` — NAME is an IP address, VALUE a host name.
//!
//! Trusts nothing in the file: every error names its line and the reason,
//! and the parser never panics.

use mail_auth::common::parse::TxtRecordParser;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The records of a static zone, names as FQDNs in lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub txt: BTreeMap<String, Vec<String>>,
    pub mx: BTreeMap<String, Vec<(u16, String)>>,
    pub a: BTreeMap<String, Vec<Ipv4Addr>>,
    pub aaaa: BTreeMap<String, Vec<Ipv6Addr>>,
    pub ptr: BTreeMap<IpAddr, Vec<String>>,
}

/// One bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// Parses a zone file's text; every bad line is reported.
pub fn parse(text: &str) -> Result<Zone, Vec<ZoneError>> {
    let mut zone = Zone::default();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Err(reason) = parse_line(line, &mut zone) {
            errors.push(ZoneError {
                line: i + 1,
                reason,
            });
        }
    }
    if errors.is_empty() {
        Ok(zone)
    } else {
        Err(errors)
    }
}

/// `NAME` as the resolver's cache keys it: lower case, one trailing dot.
pub fn fqdn(name: &str) -> Result<String, String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        return Err(format!("`{name}` is not a domain name"));
    }
    Ok(format!("{}.", bare.to_ascii_lowercase()))
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn parse_line(line: &str, zone: &mut Zone) -> Result<(), String> {
    let (name, rest) = split_word(line);
    let (kind, value) = split_word(rest);
    if kind.is_empty() {
        return Err("expected `NAME TYPE VALUE`".into());
    }
    if value.is_empty() {
        return Err(format!("`{kind}` record without a value"));
    }
    match kind.to_ascii_uppercase().as_str() {
        "TXT" => {
            let name = fqdn(name)?;
            let text = txt_value(value)?;
            check_txt(&name, &text)?;
            zone.txt.entry(name).or_default().push(text);
        }
        "MX" => {
            let name = fqdn(name)?;
            let (pref, host) = split_word(value);
            let pref: u16 = pref
                .parse()
                .map_err(|_| format!("MX preference `{pref}` is not a number from 0 to 65535"))?;
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err("MX needs `PREFERENCE HOST`".into());
            }
            // `.`: the null MX of RFC 7505 (the domain takes no mail)
            let host = if host == "." {
                ".".to_string()
            } else {
                fqdn(host)?
            };
            zone.mx.entry(name).or_default().push((pref, host));
        }
        "A" => {
            let ip: Ipv4Addr = value
                .parse()
                .map_err(|_| format!("`{value}` is not an IPv4 address"))?;
            zone.a.entry(fqdn(name)?).or_default().push(ip);
        }
        "AAAA" => {
            let ip: Ipv6Addr = value
                .parse()
                .map_err(|_| format!("`{value}` is not an IPv6 address"))?;
            zone.aaaa.entry(fqdn(name)?).or_default().push(ip);
        }
        "PTR" => {
            let ip: IpAddr = name
                .parse()
                .map_err(|_| format!("a PTR record's name must be an IP address, not `{name}`"))?;
            zone.ptr.entry(ip).or_default().push(fqdn(value)?);
        }
        other => {
            return Err(format!(
                "unknown record type `{other}` (TXT, MX, A, AAAA or PTR)"
            ))
        }
    }
    Ok(())
}

/// The text of a TXT value: quoted strings joined, or the bare text.
fn txt_value(value: &str) -> Result<String, String> {
    if !value.starts_with('"') {
        return Ok(value.to_string());
    }
    let mut out = String::new();
    let mut chars = value.chars();
    loop {
        match chars.next() {
            None => return Ok(out),
            Some(c) if c.is_whitespace() => continue,
            Some('"') => {}
            Some(_) => return Err("text after a quoted string; quote every part".into()),
        }
        loop {
            match chars.next() {
                None => return Err("unterminated quoted string".into()),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(c) => out.push(c),
                    None => return Err("unterminated quoted string".into()),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

/// The record a TXT value at `name` must be, checked with mail-auth's own
/// parsers (so the zone fails at load, not at the first message).
fn check_txt(name: &str, text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    if name.starts_with("_dmarc.") {
        mail_auth::dmarc::Dmarc::parse(b)
            .map_err(|e| format!("not a DMARC record ({e}): `{text}`"))?;
    } else if name.contains("._domainkey.") {
        mail_auth::common::verify::DomainKey::parse(b)
            .map_err(|e| format!("not a DKIM key record ({e}): `{text}`"))?;
    } else if is_spf(text) {
        mail_auth::spf::Spf::parse(b).map_err(|e| format!("not an SPF record ({e}): `{text}`"))?;
        let exists = text.split_whitespace().any(|t| {
            t.trim_start_matches(['+', '-', '~', '?'])
                .to_ascii_lowercase()
                .starts_with("exists:")
        });
        if exists {
            return Err(
                "`exists:` cannot be answered from a static zone; use `a:` or `ip4:`".into(),
            );
        }
    }
    Ok(())
}

/// Whether a TXT value is an SPF record (`v=spf1`, any case).
pub fn is_spf(text: &str) -> bool {
    let t = text.trim_start();
    t.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("v=spf1"))
        && t[6..].chars().next().is_none_or(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<(usize, String)> {
        parse(text)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.line, e.reason))
            .collect()
    }

    #[test]
    fn every_record_type_parses() {
        let z = parse(
            "# a comment\n\nExample.ORG. TXT \"v=spf1 \" \"ip4:192.0.2.1 -all\"\n\
             _dmarc.example.org TXT v=DMARC1; p=reject\n\
             example.org MX 10 mx.example.org.\n\
             mx.example.org A 192.0.2.1\nmx.example.org AAAA 2001:db8::1\n\
             192.0.2.1 PTR mx.example.org\n",
        )
        .unwrap();
        assert_eq!(z.txt["example.org."], ["v=spf1 ip4:192.0.2.1 -all"]);
        assert_eq!(z.txt["_dmarc.example.org."], ["v=DMARC1; p=reject"]);
        assert_eq!(z.mx["example.org."], [(10, "mx.example.org.".to_string())]);
        assert_eq!(z.a["mx.example.org."], [Ipv4Addr::new(192, 0, 2, 1)]);
        assert_eq!(z.aaaa["mx.example.org."].len(), 1);
        assert_eq!(
            z.ptr[&"192.0.2.1".parse::<IpAddr>().unwrap()],
            ["mx.example.org."]
        );
    }

    #[test]
    fn each_bad_line_is_reported_with_its_number_and_reason() {
        let e = errors(
            "ok.example TXT hello\n\
             lonely\n\
             x.example MX\n\
             x.example MX ten mx.example\n\
             x.example A 300.1.1.1\n\
             x.example AAAA 192.0.2.1\n\
             not-an-ip PTR x.example\n\
             x.example SRV 0 0 25 mx\n\
             bad..name A 192.0.2.1\n\
             x.example TXT \"open\n\
             x.example TXT \"a\" b\n\
             _dmarc.x.example TXT v=spf1 -all\n\
             s._domainkey.x.example TXT v=DKIM1; p=%%%\n\
             x.example TXT v=spf1 exists:%{i}.x.example -all\n\
             x.example TXT v=spf1 ip4:not-an-ip -all\n\
             é.example A 192.0.2.1\n",
        );
        let lines: Vec<usize> = e.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, (2..=16).collect::<Vec<_>>(), "{e:#?}");
        let has = |line: usize, needle: &str| {
            let (_, r) = e.iter().find(|(l, _)| *l == line).unwrap();
            assert!(r.contains(needle), "line {line}: {r}");
        };
        has(2, "NAME TYPE VALUE");
        has(3, "without a value");
        has(4, "preference");
        has(5, "IPv4");
        has(6, "IPv6");
        has(7, "PTR");
        has(8, "unknown record type `SRV`");
        has(9, "not a domain name");
        has(10, "unterminated");
        has(11, "quote every part");
        has(12, "DMARC");
        has(13, "DKIM");
        has(14, "exists:");
        has(15, "SPF");
        has(16, "not a domain name");
    }

    #[test]
    fn spf_is_recognised_by_its_version_tag() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("google-site-verification=x"));
        assert!(!is_spf("v=sp"));
    }
}
