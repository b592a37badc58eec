//! The checks themselves, through mail-auth: SPF for HELO and MAIL FROM,
//! DKIM, DMARC; the `Authentication-Results:` field built by mail-auth's
//! `AuthenticationResults`; the verdict read from its `DmarcOutput`.

use super::fields;
use super::verdict::{AuthVerdict, DmarcStatus, FromPolicy};
use crate::dns::Resolver;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcOutput, DmarcResult, DnsError, Error,
    SpfOutput, SpfResult,
};
use std::net::IpAddr;
use std::time::Duration;

/// The site's side of the checks.
#[derive(Debug, Clone)]
pub struct AuthSettings<'a> {
    /// Our authserv-id (`auth.authserv_id`, else `smtp.hostname`).
    pub authserv_id: &'a str,
    /// `auth.trust_upstream_authserv_id`.
    pub trust_upstream: Option<&'a str>,
    /// The whole check's limit.
    pub timeout: Duration,
}

/// One received message and its envelope.
#[derive(Debug, Clone)]
pub struct AuthInput<'a> {
    /// The message as received (our `Received:` on top).
    pub bytes: &'a [u8],
    /// `None` over a unix socket: no SPF.
    pub client_ip: Option<IpAddr>,
    /// The client is in `smtp.trusted_networks` (the MTA in front).
    pub trusted_client: bool,
    pub helo: &'a str,
    /// The reverse-path; "" for `<>`.
    pub mail_from: &'a str,
}

/// The outcome: the bytes to spool and the verdict to store.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub bytes: Vec<u8>,
    pub verdict: AuthVerdict,
}

/// Checks a message (see the module doc of `auth`).
pub async fn authenticate(
    resolver: &Resolver,
    s: &AuthSettings<'_>,
    input: &AuthInput<'_>,
) -> Authenticated {
    if let (Some(up), true) = (s.trust_upstream, input.trusted_client) {
        let verdict = fields::upstream_verdict(input.bytes, up).unwrap_or(AuthVerdict {
            dmarc: DmarcStatus::None,
            policy: FromPolicy::Unknown,
            from_domain: String::new(),
        });
        return Authenticated {
            bytes: fields::replace_ours(input.bytes, s.authserv_id, None),
            verdict,
        };
    }
    let (header, verdict) = match tokio::time::timeout(s.timeout, check(resolver, s, input)).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(timeout = ?s.timeout, "authentication checks timed out: temperror");
            let from = header_from_domain(input.bytes);
            let temp = DmarcResult::TempError(Error::Dns(DnsError::Resolver("timeout".into())));
            let out = DmarcOutput::default()
                .with_domain(&from)
                .with_spf_result(temp.clone())
                .with_dkim_result(temp);
            let header = AuthenticationResults::new(s.authserv_id)
                .with_dmarc_result(&out)
                .to_header();
            (header, verdict_of(&out))
        }
    };
    Authenticated {
        bytes: fields::replace_ours(input.bytes, s.authserv_id, Some(&header)),
        verdict,
    }
}

/// The From: domain as mail-auth reads it ("" without one), for the
/// verdict when the checks could not finish.
fn header_from_domain(bytes: &[u8]) -> String {
    AuthenticatedMessage::parse(bytes)
        .and_then(|m| {
            m.from
                .first()
                .and_then(|f| f.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()))
        })
        .unwrap_or_default()
}

async fn check(
    resolver: &Resolver,
    s: &AuthSettings<'_>,
    input: &AuthInput<'_>,
) -> (String, AuthVerdict) {
    let auth = resolver.authenticator();
    let helo = input.helo.trim();
    let helo = if helo.is_empty() { "unknown" } else { helo };
    // SPF checks `<>` as postmaster@HELO (RFC 7208 §2.4)
    let postmaster = format!("postmaster@{helo}");
    let sender = if input.mail_from.is_empty() {
        postmaster.as_str()
    } else {
        input.mail_from
    };
    let mail_domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(helo)
        .to_string();
    let mut ar = AuthenticationResults::new(s.authserv_id);
    let spf_mail = match input.client_ip {
        Some(ip) => {
            let spf_helo = auth
                .verify_spf(resolver.params(SpfParameters::verify_ehlo(ip, helo, s.authserv_id)))
                .await;
            let spf_mail = auth
                .verify_spf(resolver.params(SpfParameters::verify_mail_from(
                    ip,
                    helo,
                    s.authserv_id,
                    sender,
                )))
                .await;
            ar = ar
                .with_spf_ehlo_result(&spf_helo, ip, helo)
                .with_spf_mailfrom_result(&spf_mail, ip, input.mail_from, helo);
            spf_mail
        }
        None => SpfOutput::new(mail_domain.clone()).with_result(SpfResult::None),
    };
    let Some(message) = AuthenticatedMessage::parse(input.bytes) else {
        // no header to check: DKIM and DMARC are none
        let out = DmarcOutput::default();
        return (ar.with_dmarc_result(&out).to_header(), verdict_of(&out));
    };
    let dkim = auth.verify_dkim(resolver.params(&message)).await;
    let from = message.from.first().cloned().unwrap_or_default();
    let dmarc = auth
        .verify_dmarc(resolver.params(DmarcParameters {
            message: &message,
            dkim_output: &dkim,
            dkim2_output: None,
            rfc5321_mail_from_domain: &mail_domain,
            spf_output: &spf_mail,
        }))
        .await;
    let header = ar
        .with_dkim_results(&dkim, &from)
        .with_dmarc_result(&dmarc)
        .to_header();
    (header, verdict_of(&dmarc))
}

/// The compact verdict of a DMARC output.
fn verdict_of(out: &DmarcOutput) -> AuthVerdict {
    let dmarc = match out.result() {
        DmarcResult::Pass => DmarcStatus::Pass,
        DmarcResult::Fail(_) => DmarcStatus::Fail,
        DmarcResult::TempError(_) => DmarcStatus::TempError,
        DmarcResult::PermError(_) => DmarcStatus::PermError,
        DmarcResult::None => DmarcStatus::None,
    };
    let policy = match (out.dmarc_record(), &dmarc) {
        (None, DmarcStatus::TempError) => FromPolicy::Unknown,
        (None, _) => FromPolicy::Absent,
        (Some(_), _) => match out.policy() {
            Policy::Reject => FromPolicy::Reject,
            Policy::Quarantine => FromPolicy::Quarantine,
            Policy::None | Policy::Unspecified => FromPolicy::None,
        },
    };
    AuthVerdict {
        dmarc,
        policy,
        from_domain: out.domain().trim_end_matches('.').to_ascii_lowercase(),
    }
}
