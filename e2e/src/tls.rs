//! Certificates (rcgen) and rustls configurations shared by the stand-in, its webhook client and
//! the test harness. Only the `ring` provider is used.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("reading PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("no certificate found in the CA bundle")]
    EmptyBundle,
}

/// A CA and a serving certificate signed by it, all PEM encoded.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a fresh CA and a serving certificate for `names` (DNS names or IP addresses).
pub fn generate_pki(common_name: &str, names: &[&str]) -> Result<Pki, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{common_name} CA"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<String>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name.to_string());
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration offering HTTP/2 and HTTP/1.1.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration trusting only the certificates in `ca_pem`.
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    if roots.is_empty() {
        return Err(TlsError::EmptyBundle);
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Why an HTTPS call failed, worded like Go's net/http errors where it matters.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("dial tcp {addr}: connect: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("{0}")]
    Http(String),
    #[error("context deadline exceeded")]
    Timeout,
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

/// A plain HTTP/1.1 response.
pub struct HttpsResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// One HTTPS request over a fresh connection to `addr`, verifying the server as `server_name`.
pub async fn https_request(
    config: Arc<rustls::ClientConfig>,
    addr: &str,
    server_name: &str,
    request: http::Request<Bytes>,
    timeout: Duration,
) -> Result<HttpsResponse, CallError> {
    let call = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| CallError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| CallError::ServerName(server_name.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(CallError::Tls)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| CallError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (parts, body) = request.into_parts();
        let response = sender
            .send_request(http::Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| CallError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Http(e.to_string()))?
            .to_bytes();
        Ok(HttpsResponse {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| CallError::Timeout)?
}
