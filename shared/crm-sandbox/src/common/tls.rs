//! A throw-away local certificate authority and the rustls configuration to serve with it.
//!
//! Real clients (simple-salesforce forces `https://`) need TLS they can verify: the sandbox
//! generates a CA, signs a server certificate for `localhost`, `127.0.0.1` and `::1` (plus any
//! extra names), and exposes the CA in PEM so a client can trust it (`REQUESTS_CA_BUNDLE`,
//! `reqwest::Certificate::from_pem`). Crypto is aws-lc-rs; `ring` is never used.

use super::error::SandboxError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// A local certificate authority that can issue server certificates.
pub struct LocalCa {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

/// Everything needed to serve TLS and to trust it.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The CA certificate clients must trust, PEM.
    pub ca_pem: String,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// The rustls configuration (ALPN `h2` and `http/1.1`).
    pub server_config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Generates a new CA key and self-signed certificate.
    pub fn generate(common_name: &str) -> Result<Self, SandboxError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Syncline CRM sandbox");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues a server certificate for `localhost`, `127.0.0.1`, `::1` and `extra_names`,
    /// and builds a rustls [`ServerConfig`] for it.
    pub fn server_material(&self, extra_names: &[String]) -> Result<TlsMaterial, SandboxError> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        names.extend(extra_names.iter().cloned());
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsMaterial {
            ca_pem: self.ca_pem.clone(),
            cert_pem: cert.pem(),
            server_config: Arc::new(config),
        })
    }
}

/// Generates a fresh CA and a server certificate for the loopback names in one call.
pub fn generate_local_tls() -> Result<TlsMaterial, SandboxError> {
    LocalCa::generate("Syncline Sandbox Local CA")?.server_material(&[])
}
