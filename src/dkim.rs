//! DKIM signing of the mail listd sends (RFC 6376, with mail-auth), and the
//! key pairs `listd dkim keygen` makes.
//!
//! A key is Ed25519 or RSA (2048 bits when listd makes it), read from a
//! PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM file. A message
//! is signed with the key for the domain of its `From:` when there is one
//! (a notice from the list, a munged post), else with the key for the list's
//! domain: relaxed/relaxed, and every header in [`SIGNED`] listed once more
//! than it occurs, so none can be added after signing (oversigning).
//!
//! Trusts the key files it is given (the site's own); trusts nothing in the
//! messages: any bytes, a signature or none, never a panic.

use crate::mime::{header_block, lines};
use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use std::path::Path;

/// The header fields every signature covers, oversigned.
pub const SIGNED: [&str; 9] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// The key types listd signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Ed25519,
    Rsa,
}

impl KeyAlgorithm {
    /// The DNS record's `k=` tag.
    pub fn dns_tag(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa => "rsa",
        }
    }
}

enum PrivateKey {
    Ed25519(Ed25519Key),
    Rsa(RsaKey<Sha256>),
}

/// One domain's signer: its key, `d=`, `s=` and the signed header list.
enum KeySigner {
    Ed25519(DkimSigner<Ed25519Key, Done>),
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
}

/// One signing key and the domain it signs for.
struct DomainKey {
    domain: String,
    selector: String,
    signer: KeySigner,
}

impl DomainKey {
    fn new(domain: &str, selector: &str, key: PrivateKey) -> DomainKey {
        let signer = match key {
            PrivateKey::Ed25519(k) => KeySigner::Ed25519(signer_for(k, domain, selector)),
            PrivateKey::Rsa(k) => KeySigner::Rsa(signer_for(k, domain, selector)),
        };
        DomainKey {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_string(),
            signer,
        }
    }
}

/// `key`'s signer for `d=domain`, `s=selector`: relaxed/relaxed, every
/// header in [`SIGNED`] listed twice (oversigned).
fn signer_for<T: SigningKey>(key: T, domain: &str, selector: &str) -> DkimSigner<T, Done> {
    let headers: Vec<&str> = SIGNED.iter().flat_map(|h| [*h, *h]).collect();
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(headers)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// Reads a private key file; the error says why it is not a usable key.
fn read_key(path: &Path) -> Result<PrivateKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    if let Some(der) = pem_body(&pem, "RSA PRIVATE KEY") {
        return RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(der.into()))
            .map(PrivateKey::Rsa)
            .map_err(|e| format!("not an RSA private key: {e}"));
    }
    let der = pem_body(&pem, "PRIVATE KEY")
        .ok_or("no `BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY` PEM block")?;
    if let Ok(k) = Ed25519Key::from_pkcs8_maybe_unchecked_der(&der) {
        return Ok(PrivateKey::Ed25519(k));
    }
    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(der.into()))
        .map(PrivateKey::Rsa)
        .map_err(|_| "a PKCS#8 key that is neither Ed25519 nor RSA".to_string())
}

/// The DER bytes of the first `-----BEGIN LABEL-----` block.
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Checks that `path` holds a private key listd can sign with.
pub fn check_key_file(path: &Path) -> Result<KeyAlgorithm, String> {
    Ok(match read_key(path)? {
        PrivateKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        PrivateKey::Rsa(_) => KeyAlgorithm::Rsa,
    })
}

/// The site's signing keys.
#[derive(Default)]
pub struct Signer {
    keys: Vec<DomainKey>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{}._domainkey.{}", k.selector, k.domain))
            .collect();
        f.debug_struct("Signer").field("keys", &names).finish()
    }
}

impl Signer {
    /// Loads `(domain, selector, key file)` entries; the error names the
    /// file and why it cannot be used.
    pub fn load<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str, &'a Path)>,
    ) -> Result<Signer, String> {
        let mut keys = Vec::new();
        for (domain, selector, path) in entries {
            let key = read_key(path).map_err(|e| format!("{}: {e}", path.display()))?;
            keys.push(DomainKey::new(domain, selector, key));
        }
        Ok(Signer { keys })
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn key_for(&self, domain: &str) -> Option<&DomainKey> {
        self.keys
            .iter()
            .find(|k| k.domain.eq_ignore_ascii_case(domain))
    }

    /// `msg` with a `DKIM-Signature:` field on top, its line ends as CRLF
    /// (as it travels) and whitespace-only lines at its end dropped (which
    /// relaxed body canonicalization ignores anyway); `None` when no key
    /// fits (the From domain's, else `fallback_domain`'s) or signing fails.
    pub fn sign(&self, msg: &[u8], fallback_domain: &str) -> Option<Vec<u8>> {
        if self.keys.is_empty() {
            return None;
        }
        let split = header_block::split(msg);
        let from_domain = split
            .raw_value(msg, "From")
            .map(header_block::unfold_text)
            .and_then(|v| domain_of_from(&v));
        let key = from_domain
            .as_deref()
            .and_then(|d| self.key_for(d))
            .or_else(|| self.key_for(fallback_domain))?;
        let wire = trim_blank_tail(lines::with_eol_bytes(msg, b"\r\n"));
        let signature = match &key.signer {
            KeySigner::Ed25519(s) => s.sign(&wire),
            KeySigner::Rsa(s) => s.sign(&wire),
        };
        match signature {
            Ok(s) => {
                let mut out = s.to_header().into_bytes();
                out.extend_from_slice(&wire);
                Some(out)
            }
            Err(e) => {
                tracing::warn!(error = %e, domain = %key.domain, "DKIM signing failed; sent unsigned");
                None
            }
        }
    }
}

/// The domain of the (first) address in a `From:` value.
fn domain_of_from(value: &str) -> Option<String> {
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.trim(),
    };
    let (_, domain) = addr.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// Empties the whitespace-only lines at the end of the body (mail-auth
/// 0.13 hashes a relaxed body that ends in them wrongly; relaxed
/// canonicalization reads them as empty lines anyway), keeping their line
/// ends. `wire` has CRLF line ends.
fn trim_blank_tail(mut wire: Vec<u8>) -> Vec<u8> {
    let body_start = header_block::split(&wire).body_start.min(wire.len());
    let mut end = wire.len();
    while end > body_start {
        let content_end = if wire[..end].ends_with(b"\r\n") {
            end - 2
        } else {
            end
        };
        let line_start = wire[body_start..content_end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(body_start, |i| body_start + i + 1);
        if !wire[line_start..content_end]
            .iter()
            .all(|b| *b == b' ' || *b == b'\t')
        {
            break;
        }
        end = line_start;
    }
    let blank_lines = memchr::memmem::find_iter(&wire[end..], b"\r\n").count();
    wire.truncate(end);
    for _ in 0..blank_lines {
        wire.extend_from_slice(b"\r\n");
    }
    wire
}

/// A new key pair: the private key as PKCS#8 PEM, and the DNS TXT record
/// value to publish at `SELECTOR._domainkey.DOMAIN`.
pub fn generate(algorithm: KeyAlgorithm) -> Result<(String, String), String> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match algorithm {
        KeyAlgorithm::Ed25519 => {
            let der = Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())?;
            let key = Ed25519Key::from_pkcs8_der(&der).map_err(|e| e.to_string())?;
            Ok((
                pem("PRIVATE KEY", &der),
                format!("v=DKIM1; k=ed25519; p={}", b64(&key.public_key())),
            ))
        }
        KeyAlgorithm::Rsa => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let mut rng = rsa::rand_core::OsRng;
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            let public = rsa::RsaPublicKey::from(&key)
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            Ok((
                pem("PRIVATE KEY", der.as_bytes()),
                format!("v=DKIM1; k=rsa; p={}", b64(public.as_bytes())),
            ))
        }
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::{AuthenticatedMessage, DkimResult};

    /// A resolver answering from `records` (a static zone: no network).
    fn zone(records: &[(&str, &str)]) -> crate::dns::Resolver {
        let text: String = records
            .iter()
            .map(|(name, value)| format!("{name} TXT \"{value}\"\n"))
            .collect();
        let zone = crate::dns::zone::parse(&text).unwrap();
        crate::dns::Resolver::new(&crate::dns::DnsSettings::zone_only(zone)).unwrap()
    }

    async fn verify(
        zone: &crate::dns::Resolver,
        msg: &[u8],
    ) -> Vec<(DkimResult, String, Vec<String>)> {
        let m = AuthenticatedMessage::parse(msg).unwrap();
        zone.authenticator()
            .verify_dkim(zone.params(&m))
            .await
            .iter()
            .map(|o| {
                let s = o.signature().unwrap();
                (o.result().clone(), s.d.clone(), s.h.clone())
            })
            .collect()
    }

    fn key_file(dir: &Path, algorithm: KeyAlgorithm) -> (std::path::PathBuf, String) {
        let (pem, txt) = generate(algorithm).unwrap();
        let path = dir.join(format!("{}.key", algorithm.dns_tag()));
        std::fs::write(&path, pem).unwrap();
        (path, txt)
    }

    const POST: &[u8] = b"From: Ann <ann@example.org>\r\nTo: dev@lists.example.org\r\nSubject: hi\r\nDate: Mon, 03 Jun 2024 06:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nList-Id: <dev.lists.example.org>\r\n\r\nhello\r\n";

    #[tokio::test]
    async fn both_key_types_sign_what_mail_auth_verifies_and_oversign_the_list_headers() {
        let dir = tempfile::tempdir().unwrap();
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::Rsa] {
            let (path, txt) = key_file(dir.path(), algorithm);
            assert_eq!(check_key_file(&path), Ok(algorithm));
            let signer = Signer::load([("lists.example.org", "s1", path.as_path())]).unwrap();
            let zone = zone(&[("s1._domainkey.lists.example.org", &txt)]);
            // From ann@example.org: no key for it, so the list domain's key signs
            let signed = signer.sign(POST, "lists.example.org").unwrap();
            assert!(signed.starts_with(b"DKIM-Signature: "));
            let v = verify(&zone, &signed).await;
            assert_eq!(v.len(), 1);
            assert_eq!(v[0].0, DkimResult::Pass, "{algorithm:?}");
            assert_eq!(v[0].1, "lists.example.org");
            let h: Vec<String> = v[0].2.iter().map(|h| h.to_ascii_lowercase()).collect();
            for name in SIGNED {
                let n = name.to_ascii_lowercase();
                let present = header_block::split(POST).find(POST, name).count();
                // each present field and one more (an absent one may be
                // listed twice: the signer's list is fixed per key)
                let listed = h.iter().filter(|x| **x == n).count();
                assert!(listed > present, "{name} oversigned in {h:?}");
                assert!(present == 0 || listed == present + 1, "{name} in {h:?}");
            }
            // a header added after signing, or a changed body, breaks it
            let added = {
                // below the signature, where a forger would put it
                let at = memchr::memmem::find(&signed, b"\r\nFrom:").unwrap() + 2;
                let mut m = signed[..at].to_vec();
                m.extend_from_slice(b"Cc: more@example.net\r\n");
                m.extend_from_slice(&signed[at..]);
                m
            };
            assert_ne!(verify(&zone, &added).await[0].0, DkimResult::Pass);
            let mut changed = signed.clone();
            let n = changed.len();
            changed[n - 3] = b'X';
            assert_ne!(verify(&zone, &changed).await[0].0, DkimResult::Pass);
        }
    }

    #[tokio::test]
    async fn the_from_domain_key_wins_and_lf_bodies_with_blank_tails_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (a, txt_a) = key_file(dir.path(), KeyAlgorithm::Ed25519);
        let (b, txt_b) = key_file(dir.path(), KeyAlgorithm::Rsa);
        let signer = Signer::load([
            ("lists.example.org", "a", a.as_path()),
            ("example.org", "b", b.as_path()),
        ])
        .unwrap();
        let zone = zone(&[
            ("a._domainkey.lists.example.org", &txt_a),
            ("b._domainkey.example.org", &txt_b),
        ]);
        let lf = b"From: ann@EXAMPLE.org\nSubject: x\n\nbody  \n \t\n   \n\n";
        let signed = signer.sign(lf, "lists.example.org").unwrap();
        assert!(!signed.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
        assert!(signed.ends_with(b"\r\n\r\nbody  \r\n\r\n\r\n\r\n"));
        let v = verify(&zone, &signed).await;
        assert_eq!(
            (v[0].0.clone(), v[0].1.as_str()),
            (DkimResult::Pass, "example.org")
        );
        // no key for the From domain nor the fallback: unsigned
        assert!(signer
            .sign(b"From: x@elsewhere.net\r\n\r\nx\r\n", "other.example")
            .is_none());
        assert!(Signer::default().sign(POST, "lists.example.org").is_none());
    }

    #[test]
    fn key_files_that_cannot_sign_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        assert!(check_key_file(&p).unwrap_err().starts_with("cannot read"));
        std::fs::write(&p, "not a key").unwrap();
        assert!(check_key_file(&p).unwrap_err().contains("PEM block"));
        std::fs::write(
            &p,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(check_key_file(&p)
            .unwrap_err()
            .contains("neither Ed25519 nor RSA"));
        std::fs::write(
            &p,
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(check_key_file(&p)
            .unwrap_err()
            .contains("not an RSA private key"));
        let e = Signer::load([("x.org", "s", p.as_path())]).unwrap_err();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
    }

    #[test]
    fn the_from_domain_is_read_from_any_form() {
        assert_eq!(
            domain_of_from("Ann <ann@Example.ORG>").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            domain_of_from(" ann@example.org. ").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            domain_of_from("\"a@b\" <c@d.org>").as_deref(),
            Some("d.org")
        );
        assert_eq!(domain_of_from("no address"), None);
        assert_eq!(domain_of_from("x@"), None);
        assert_eq!(domain_of_from("<é@>"), None);
    }
}
