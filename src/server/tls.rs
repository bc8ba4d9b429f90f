//! TLS for the Postgres listener (`--tls-cert`, `--tls-key`), and for the Kafka and HTTP
//! listeners with `--kafka-tls` and `--http-tls`: rustls with the ring provider, the one pgwire
//! is built with, so `sslmode=require` and `verify-full` work for every client.
//! The certificate file may hold a chain (leaf first); the key file one PKCS#8, PKCS#1 or SEC1
//! private key, all PEM.

use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls::{
    self, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// The ALPN name of the Postgres protocol (for clients that open TLS directly, Postgres 17's
/// `sslnegotiation=direct`).
const POSTGRESQL_ALPN: &[u8] = b"postgresql";

/// A loaded certificate and key.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// The same certificate without the Postgres ALPN name, for the Kafka and HTTP listeners.
    pub acceptor_without_alpn: TlsAcceptor,
    /// The certificate file as read, for SCRAM channel binding (tls-server-end-point).
    pub cert_pem: Vec<u8>,
}

/// Reads the certificate chain and key; the error says which file and what is wrong with it.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Tls, String> {
    let cert_pem =
        std::fs::read(cert_path).map_err(|e| format!("--tls-cert {}: {e}", cert_path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in the file",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("--tls-key {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert / --tls-key: {e}"))?;
    let acceptor_without_alpn = TlsAcceptor::from(Arc::new(config.clone()));
    config.alpn_protocols = vec![POSTGRESQL_ALPN.to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        acceptor_without_alpn,
        cert_pem,
    })
}
