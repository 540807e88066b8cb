//! An endpoint's TLS client certificate (mTLS): the PEM chain and key checked once (they
//! parse, the key is one rustls can sign with, and it belongs to the leaf certificate), and
//! a fingerprint that names this certificate and key, so the sender builds one client per
//! endpoint and certificate, and a rotation (another fingerprint) builds a new one.
//!
//! Errors never quote the PEM text.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// Why a client certificate is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("client_certificate.certificate_pem: is not PEM certificates ({0})")]
    BadCertificate(String),
    #[error("client_certificate.certificate_pem: holds no CERTIFICATE block")]
    NoCertificate,
    #[error("client_certificate.private_key_pem: is not a PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    BadKey,
    #[error("client_certificate.private_key_pem: is a key rustls cannot sign with ({0})")]
    UnusableKey(String),
    #[error("client_certificate.private_key_pem: does not match the certificate (the first certificate must be the leaf of this key)")]
    KeyMismatch,
}

/// A checked certificate chain and key, ready for a TLS client config.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 over the chain and key: another certificate or key, another fingerprint.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").field("certificates", &self.chain.len()).finish_non_exhaustive()
    }
}

/// Parses and checks `certificate_pem` (leaf first) and `private_key_pem`.
pub fn parse(certificate_pem: &str, private_key_pem: &str) -> Result<ClientIdentity, CertError> {
    let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(private_key_pem.as_bytes()).map_err(|_| CertError::BadKey)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider) {
        Ok(_) => {}
        Err(rustls::Error::InconsistentKeys(_)) => return Err(CertError::KeyMismatch),
        Err(e) => return Err(CertError::UnusableKey(e.to_string())),
    }
    let mut hash = Sha256::new();
    for cert in &chain {
        hash.update((cert.len() as u64).to_be_bytes());
        hash.update(cert.as_ref());
    }
    hash.update(key.secret_der());
    Ok(ClientIdentity { chain, key, fingerprint: hash.finalize().into() })
}

/// The SHA-256 of the leaf (first) certificate of `certificate_pem`, as lowercase hex
/// with colons: how people compare certificates (not secret).
pub fn leaf_sha256(certificate_pem: &str) -> Option<String> {
    let leaf = CertificateDer::pem_slice_iter(certificate_pem.as_bytes()).next()?.ok()?;
    let digest = Sha256::digest(leaf.as_ref());
    Some(digest.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_the_field() {
        assert_eq!(parse("", "").map(|_| ()), Err(CertError::NoCertificate));
        let error =
            parse("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", "").expect_err("bad");
        assert!(matches!(error, CertError::BadCertificate(_)), "{error:?}");
        assert!(error.to_string().starts_with("client_certificate.certificate_pem: "));
        assert_eq!(parse(A_PEM, "not a key").map(|_| ()), Err(CertError::BadKey));
    }

    // Throw-away self-signed P-256 certificates made for these tests only.
    const A_PEM: &str = include_str!("testdata/client-a.pem");
    const A_KEY: &str = include_str!("testdata/client-a.key");
    const B_PEM: &str = include_str!("testdata/client-b.pem");
    const B_KEY: &str = include_str!("testdata/client-b.key");

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        assert_eq!(parse(A_PEM, B_KEY).map(|_| ()), Err(CertError::KeyMismatch));
        let error = parse(B_PEM, A_KEY).expect_err("mismatch").to_string();
        assert!(
            !error.contains("PRIVATE KEY") && error.starts_with("client_certificate.private_key_pem: does not match"),
            "{error}"
        );
    }

    #[test]
    fn the_fingerprint_changes_with_the_certificate_and_not_otherwise() {
        let a = parse(A_PEM, A_KEY).expect("a");
        assert_eq!(a.chain.len(), 1);
        assert_eq!(parse(A_PEM, A_KEY).expect("a again").fingerprint, a.fingerprint);
        assert_ne!(parse(B_PEM, B_KEY).expect("b").fingerprint, a.fingerprint, "a rotation is another client");
        assert!(!format!("{a:?}").contains("PRIVATE"));
        let shown = leaf_sha256(A_PEM).expect("a certificate");
        assert_eq!(shown.len(), 32 * 3 - 1);
        assert_ne!(leaf_sha256(B_PEM), Some(shown));
    }
}
