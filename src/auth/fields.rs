//! `Authentication-Results:` fields in a received message: removing every
//! one that claims our authserv-id (only we may write those), and reading
//! the verdict of the MTA in front when the site trusts it.
//!
//! What is trusted of an upstream field: only one carrying the configured
//! upstream authserv-id, in the topmost trace block the upstream MTA wrote
//! — below our own `Received:` and above the second `Received:` under it
//! (the upstream MTA's own is the first). A field further down was there
//! before the message reached the upstream MTA, so anyone could have
//! written it. The first such field counts. The caller decides whether
//! the client is the upstream MTA at all (`smtp.trusted_networks`).
//! Trusts nothing else in the bytes; never panics.

use super::verdict::{AuthVerdict, DmarcStatus, FromPolicy};
use crate::mime::header_block::{self, Rewrite, Split};

const AR: &str = "Authentication-Results";

/// The authserv-id an A-R value names (lower case), comments skipped.
pub fn authserv_id(value: &[u8]) -> String {
    let v = header_block::unfold_text(value);
    let mut rest = v.trim_start();
    while let Some(r) = rest.strip_prefix('(') {
        rest = r.split_once(')').map(|(_, r)| r).unwrap_or("").trim_start();
    }
    rest.split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The message without the A-R fields claiming `ours`, with `add` (a
/// complete field, line end included) just below our own `Received:`
/// (the first field), or on top when there is none.
pub fn replace_ours(bytes: &[u8], ours: &str, add: Option<&str>) -> Vec<u8> {
    let split = header_block::split(bytes);
    let mut rw = Rewrite::new();
    let ours = ours.to_ascii_lowercase();
    for i in split.find(bytes, AR).collect::<Vec<_>>() {
        if authserv_id(&bytes[split.fields[i].value.clone()]) == ours {
            rw.remove(i);
        }
    }
    let Some(add) = add else {
        return if rw.is_empty() {
            bytes.to_vec()
        } else {
            rw.apply(&split, bytes)
        };
    };
    let out = rw.apply(&split, bytes);
    // the rewrite keeps field 0 first when it is ours (a Received: is never
    // removed), so it can be found again in the output
    let at = match split.fields.first() {
        Some(f) if bytes[f.name.clone()].eq_ignore_ascii_case(b"Received") => f.end - f.start,
        _ => 0,
    };
    let mut v = Vec::with_capacity(out.len() + add.len() + 2);
    v.extend_from_slice(&out[..at.min(out.len())]);
    // a first field without a line end (the message stops there) would
    // take ours into its value
    if !v.is_empty() && !v.ends_with(b"\n") {
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(add.as_bytes());
    v.extend_from_slice(&out[at.min(out.len())..]);
    v
}

/// The upstream MTA's verdict, from the first A-R field with `upstream` as
/// its authserv-id in the trusted block (see the module doc). `None`: no
/// such field there.
pub fn upstream_verdict(bytes: &[u8], upstream: &str) -> Option<AuthVerdict> {
    let split: Split = header_block::split(bytes);
    let upstream = upstream.to_ascii_lowercase();
    let mut received = 0;
    for f in &split.fields {
        let name = &bytes[f.name.clone()];
        if name.eq_ignore_ascii_case(b"Received") {
            received += 1;
            // ours, then the upstream MTA's; a third starts what came before
            if received > 2 {
                return None;
            }
            continue;
        }
        if received == 0 || !name.eq_ignore_ascii_case(AR.as_bytes()) {
            continue;
        }
        let value = &bytes[f.value.clone()];
        if authserv_id(value) == upstream {
            return Some(parse_dmarc(&header_block::unfold_text(value)));
        }
    }
    None
}

/// The DMARC part of an A-R value: `dmarc=RESULT`, `header.from=DOMAIN`,
/// and the policy as `policy.dmarc=P` or OpenDMARC's `(p=P ...)`.
fn parse_dmarc(v: &str) -> AuthVerdict {
    let mut verdict = AuthVerdict {
        dmarc: DmarcStatus::None,
        policy: FromPolicy::Unknown,
        from_domain: String::new(),
    };
    let Some(res) = v
        .split(';')
        .map(|r| r.trim().to_ascii_lowercase())
        .find(|r| r.starts_with("dmarc="))
    else {
        return verdict;
    };
    let word: String = res["dmarc=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    verdict.dmarc = match word.as_str() {
        "pass" => DmarcStatus::Pass,
        "fail" => DmarcStatus::Fail,
        "none" => DmarcStatus::None,
        "permerror" => DmarcStatus::PermError,
        _ => DmarcStatus::TempError,
    };
    let words = res.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
    for w in words {
        if let Some(d) = w.strip_prefix("header.from=") {
            verdict.from_domain = d.trim_end_matches('.').to_string();
        } else if let Some(p) = w.strip_prefix("policy.dmarc=").or(w.strip_prefix("p=")) {
            verdict.policy = match p {
                "none" => FromPolicy::None,
                "quarantine" => FromPolicy::Quarantine,
                "reject" => FromPolicy::Reject,
                _ => verdict.policy,
            };
        }
    }
    if verdict.dmarc == DmarcStatus::None && verdict.policy == FromPolicy::Unknown {
        verdict.policy = FromPolicy::Absent;
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer (fuzz/seeds/auth_fields/regress_unended_*): a
    /// message that stops inside its first field took our field into it.
    #[test]
    fn our_field_after_an_unended_first_field_is_a_field_of_its_own() {
        let ours = "Authentication-Results: lists.example.org; spf=pass\r\n";
        let out = replace_ours(b"Received: x", "lists.example.org", Some(ours));
        // the rewrite then ends the header block with its empty line
        assert!(out.starts_with(format!("Received: x\r\n{ours}").as_bytes()));
        let split = header_block::split(&out);
        assert_eq!(split.find(&out, AR).count(), 1);
    }

    const OURS: &str = "Received: from x by lists.example.org\r\n";

    #[test]
    fn the_authserv_id_is_read_past_comments_and_case() {
        assert_eq!(
            authserv_id(b" (c) MX.Example.org; spf=pass"),
            "mx.example.org"
        );
        assert_eq!(authserv_id(b" mx.example.org 1; none"), "mx.example.org");
        assert_eq!(authserv_id(b"\r\n\tmx.example.org;"), "mx.example.org");
        assert_eq!(authserv_id(b" (unclosed"), "");
    }

    #[test]
    fn ours_goes_below_our_received() {
        let m = format!("{OURS}From: a@b.example\r\n\r\nbody\r\n");
        let out = replace_ours(m.as_bytes(), "lists.example.org", Some("X: y\r\n"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{OURS}X: y\r\nFrom: a@b.example\r\n\r\nbody\r\n")
        );
    }

    #[test]
    fn only_fields_claiming_our_id_are_removed() {
        let m = b"Authentication-Results: LISTS.example.org; dmarc=pass\r\n\
                  From: a@b.example\r\n\
                  Authentication-Results: mx.other.example; dmarc=fail\r\n\
                  Authentication-Results: lists.example.org;\r\n dkim=pass\r\n\r\nbody\r\n";
        let out = replace_ours(
            m,
            "lists.example.org",
            Some("Authentication-Results: lists.example.org; none\r\n"),
        );
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "Authentication-Results: lists.example.org; none\r\n\
             From: a@b.example\r\n\
             Authentication-Results: mx.other.example; dmarc=fail\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn an_upstream_verdict_counts_only_in_the_top_block() {
        let top = format!(
            "{OURS}Authentication-Results: mx.example.org; spf=pass;\r\n\
             \tdmarc=pass (p=reject dis=none) header.from=example.com\r\n\
             Received: from outside by mx.example.org\r\nFrom: a@example.com\r\n\r\n"
        );
        let v = upstream_verdict(top.as_bytes(), "MX.example.org").unwrap();
        assert_eq!(v.dmarc, DmarcStatus::Pass);
        assert_eq!(v.policy, FromPolicy::Reject);
        assert_eq!(v.from_domain, "example.com");
        // below the upstream MTA's Received, before a second one: still its block
        let below = format!(
            "{OURS}Received: from outside by mx.example.org\r\n\
             Authentication-Results: mx.example.org; dmarc=fail policy.dmarc=quarantine header.from=x.example\r\n\r\n"
        );
        let v = upstream_verdict(below.as_bytes(), "mx.example.org").unwrap();
        assert_eq!(
            (v.dmarc, v.policy),
            (DmarcStatus::Fail, FromPolicy::Quarantine)
        );
        // written before the message reached the upstream MTA: not trusted
        let forged = format!(
            "{OURS}Received: from outside by mx.example.org\r\n\
             Received: from evil by evil.example\r\n\
             Authentication-Results: mx.example.org; dmarc=pass header.from=example.com\r\n\r\n"
        );
        assert_eq!(upstream_verdict(forged.as_bytes(), "mx.example.org"), None);
        // above our own Received: impossible for the upstream MTA, ignored
        let above = "Authentication-Results: mx.example.org; dmarc=pass\r\nReceived: x\r\n\r\n";
        assert_eq!(upstream_verdict(above.as_bytes(), "mx.example.org"), None);
        let other_id = format!("{OURS}Authentication-Results: other.example; dmarc=pass\r\n\r\n");
        assert_eq!(
            upstream_verdict(other_id.as_bytes(), "mx.example.org"),
            None
        );
        let none = format!("{OURS}Authentication-Results: mx.example.org; dmarc=none header.from=y.example\r\n\r\n");
        let v = upstream_verdict(none.as_bytes(), "mx.example.org").unwrap();
        assert_eq!((v.dmarc, v.policy), (DmarcStatus::None, FromPolicy::Absent));
    }
}
