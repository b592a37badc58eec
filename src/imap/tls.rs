//! TLS for the IMAP server: the acceptor built from `imap.tls_cert` and
//! `imap.tls_key` (PEM), used after STARTTLS on `imap.listen` and at once
//! on `imap.listen_tls`.
//!
//! Trusts the files the configuration names; a file that does not parse
//! is an error at start.

use crate::config::ImapConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The acceptor, if a certificate is configured.
pub fn acceptor(config: &ImapConfig) -> Result<Option<TlsAcceptor>, String> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("imap.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "imap.tls_cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("imap.tls_key {}: {e}", key.display()))?;
    let server = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("imap TLS: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certificate_no_tls_and_bad_files_are_named() {
        let mut c = ImapConfig::default();
        assert!(acceptor(&c).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        c.tls_cert = Some(dir.path().join("missing.pem"));
        c.tls_key = Some(dir.path().join("key.pem"));
        let e = acceptor(&c).err().unwrap();
        assert!(
            e.starts_with("imap.tls_cert") && e.contains("missing.pem"),
            "{e}"
        );
        std::fs::write(dir.path().join("missing.pem"), "not pem").unwrap();
        let e = acceptor(&c).err().unwrap();
        assert!(e.contains("no certificate"), "{e}");
    }
}
