//! The certificate the server presents: a rustls resolver whose certificate can be swapped while
//! the server runs (new connections get the new certificate; established ones keep theirs and
//! finish), loading a PEM certificate and key, and reloading them from files when they change
//! (cert-manager mode).

use super::{CertError, pem, validity_of_der};
use crate::webhook::metrics::Metrics;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type Result<T, E = CertError> = std::result::Result<T, E>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and key ready to serve, with its expiry.
#[derive(Clone, Debug)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// notAfter of the leaf, unix seconds.
    pub not_after: i64,
}

/// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1),
/// refusing a key that does not belong to the certificate.
pub fn load_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<LoadedCert> {
    let chain = pem::certificates(cert_pem)?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::NoCertificate);
    };
    let not_after = validity_of_der(leaf)?.1;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| CertError::Key { source })?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|source| CertError::Mismatch { source })?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        not_after,
    })
}

/// Reads and loads a certificate and key file pair; errors name the files.
pub fn load_files(cert_file: &Path, key_file: &Path) -> Result<LoadedCert> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let (cert, key) = (read(cert_file)?, read(key_file)?);
    load_pem(&cert, &key).map_err(|source| CertError::Files {
        cert_file: cert_file.to_path_buf(),
        key_file: key_file.to_path_buf(),
        source: Box::new(source),
    })
}

/// The certificate the server presents, swappable at run time.
///
/// rustls asks the resolver once per handshake, so a swap affects new connections only;
/// established (keep-alive, in-flight) connections finish on the certificate they started with.
/// Handshakes read it without a lock ([`ArcSwap`]); a swap never waits for them.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<LoadedCert>,
    metrics: Option<Arc<Metrics>>,
}

impl CertStore {
    pub fn new(cert: LoadedCert, metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        if let Some(m) = &metrics {
            m.set_certificate_expiry(cert.not_after);
        }
        Arc::new(Self {
            current: ArcSwap::from_pointee(cert),
            metrics,
        })
    }

    /// Serves `cert` to every new connection from now on.
    pub fn replace(&self, cert: LoadedCert) {
        if let Some(m) = &self.metrics {
            m.set_certificate_expiry(cert.not_after);
        }
        self.current.store(Arc::new(cert));
    }

    pub fn current(&self) -> LoadedCert {
        LoadedCert::clone(&self.current.load())
    }

    /// notAfter of the served certificate, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.current.load().not_after
    }

    /// A rustls server configuration (ring, TLS 1.2 and 1.3, h2 and http/1.1) resolving to
    /// this store.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| CertError::Tls { source })?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}

fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.modified().ok()?, m.len())))
}

/// Reloads the certificate when either file changes (polled every `interval`; cert-manager
/// and kubelet replace Secret volumes atomically). A pair that does not load (half-written,
/// mismatched) is skipped with a warning and retried on the next change; the old certificate
/// keeps serving meanwhile.
pub fn spawn_file_reload(
    store: Arc<CertStore>,
    cert_file: PathBuf,
    key_file: PathBuf,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = (modified(&cert_file), modified(&key_file));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = (modified(&cert_file), modified(&key_file));
            if now == seen {
                continue;
            }
            match load_files(&cert_file, &key_file) {
                Ok(cert) => {
                    tracing::info!(
                        cert = %cert_file.display(),
                        not_after = cert.not_after,
                        "reloaded the serving certificate"
                    );
                    store.replace(cert);
                    seen = now;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "certificate files changed but do not load; keeping the current certificate");
                    seen = now;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::certs::{Lifetimes, renew, service_dns_names};
    use std::error::Error as _;

    fn serving() -> LoadedCert {
        let names = service_dns_names("annexa-webhook", "annexa-system");
        renew(None, &names, 1_760_000_000, Lifetimes::default())
            .unwrap()
            .unwrap()
            .loaded()
            .unwrap()
    }

    #[test]
    fn a_replaced_certificate_is_served_from_then_on() {
        let (first, second) = (serving(), serving());
        let store = CertStore::new(first.clone(), None);
        assert_eq!(store.current().key.cert, first.key.cert);
        store.replace(second.clone());
        assert_eq!(store.current().key.cert, second.key.cert);
        assert_eq!(store.not_after(), second.not_after);
    }

    #[test]
    fn file_errors_name_the_files_and_keep_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let err = load_files(&cert, &key).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}: ", cert.display())),
            "{err}"
        );
        assert_eq!(err.category(), "io");
        assert!(err.source().is_some());

        std::fs::write(&cert, "junk").unwrap();
        std::fs::write(&key, "junk").unwrap();
        let err = load_files(&cert, &key).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} / {}: certificate PEM holds no CERTIFICATE block",
                cert.display(),
                key.display()
            )
        );
        assert_eq!(err.category(), "parse");
        let crate_error = crate::error::Error::from(err);
        assert_eq!(crate_error.category(), "parse");
        assert!(
            crate_error
                .to_string()
                .ends_with("holds no CERTIFICATE block")
        );
    }
}
