//! Shared by the authentication tests: a test DKIM key (Ed25519, made per
//! run) whose public key goes into the test's static zone, signing with
//! mail-auth's own `DkimSigner`, and reading back what intake stored: the
//! verdict columns and our `Authentication-Results:` parsed with
//! mail-parser.
#![allow(dead_code)]

use base64::Engine;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_parser::MessageParser;

/// A signing key and its zone record.
pub struct TestKey {
    pkcs8: Vec<u8>,
    pub domain: String,
    pub selector: String,
}

impl TestKey {
    pub fn new(domain: &str, selector: &str) -> TestKey {
        TestKey {
            pkcs8: Ed25519Key::generate_pkcs8().expect("generate key"),
            domain: domain.into(),
            selector: selector.into(),
        }
    }

    fn key(&self) -> Ed25519Key {
        Ed25519Key::from_pkcs8_der(&self.pkcs8).expect("key")
    }

    /// The zone line publishing the public key.
    pub fn zone_line(&self) -> String {
        let p = base64::engine::general_purpose::STANDARD.encode(self.key().public_key());
        format!(
            "{}._domainkey.{} TXT \"v=DKIM1; k=ed25519; p={p}\"\n",
            self.selector, self.domain
        )
    }

    /// `message` with a DKIM-Signature by this key on top. (mail-auth 0.13
    /// hashes a relaxed body that ends in blank lines wrongly: the body's
    /// trailing blank lines are trimmed first.)
    pub fn sign(&self, message: &str) -> String {
        let mut m = message.to_string();
        let body = m.find("\r\n\r\n").map_or(m.len(), |i| i + 4);
        while m.len() > body && m.ends_with("\r\n\r\n") {
            m.truncate(m.len() - 2);
        }
        let sig = DkimSigner::from_key(self.key())
            .domain(self.domain.clone())
            .selector(self.selector.clone())
            .headers(["From", "To", "Subject", "Message-ID", "Date"])
            .sign(m.as_bytes())
            .expect("sign");
        format!("{}{m}", sig.to_header())
    }
}

/// The verdict columns and bytes of the newest inbound message.
pub fn newest(
    env: &crate::common::TestEnv,
) -> (Option<String>, Option<String>, Option<String>, Vec<u8>) {
    env.store()
        .query_row(
            "SELECT auth_dmarc, auth_policy, auth_from, bytes FROM messages
             WHERE direction = 'in' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("an inbound message")
}

/// Every `Authentication-Results:` value, unfolded, in order.
pub fn results(bytes: &[u8]) -> Vec<String> {
    let m = MessageParser::default().parse(bytes).expect("parses");
    m.headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Authentication-Results"))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}
