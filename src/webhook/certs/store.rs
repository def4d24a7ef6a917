//! The certificate the server presents: a rustls resolver whose certificate can be swapped while
//! the server runs (new connections get the new certificate; established ones keep theirs and
//! finish), loading a PEM certificate and key, and reloading them from files when they change
//! (cert-manager mode).

use super::validity_of_der;
use crate::error::{Error, Result};
use crate::webhook::metrics::Metrics;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

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
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("certificate PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(Error::Config(
            "certificate PEM holds no CERTIFICATE block".into(),
        ));
    };
    let not_after = validity_of_der(leaf)?.1;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Config(format!("private key PEM: {e}")))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| Error::Config(format!("certificate and key do not fit together: {e}")))?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        not_after,
    })
}

/// Reads and loads a certificate and key file pair; errors name the files.
pub fn load_files(cert_file: &Path, key_file: &Path) -> Result<LoadedCert> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let (cert, key) = (read(cert_file)?, read(key_file)?);
    load_pem(&cert, &key).map_err(|e| {
        Error::Config(format!(
            "{} / {}: {e}",
            cert_file.display(),
            key_file.display()
        ))
    })
}

/// The certificate the server presents, swappable at run time.
///
/// rustls asks the resolver once per handshake, so a swap affects new connections only;
/// established (keep-alive, in-flight) connections finish on the certificate they started with.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<LoadedCert>,
    not_after: AtomicI64,
    metrics: Option<Arc<Metrics>>,
}

impl CertStore {
    pub fn new(cert: LoadedCert, metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        if let Some(m) = &metrics {
            m.set_certificate_expiry(cert.not_after);
        }
        Arc::new(Self {
            not_after: AtomicI64::new(cert.not_after),
            current: RwLock::new(cert),
            metrics,
        })
    }

    /// Serves `cert` to every new connection from now on.
    pub fn replace(&self, cert: LoadedCert) {
        self.not_after.store(cert.not_after, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.set_certificate_expiry(cert.not_after);
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = cert;
    }

    pub fn current(&self) -> LoadedCert {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// notAfter of the served certificate, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after.load(Ordering::Relaxed)
    }

    /// A rustls server configuration (ring, TLS 1.2 and 1.3, h2 and http/1.1) resolving to
    /// this store.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
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
