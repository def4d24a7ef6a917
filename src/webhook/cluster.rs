//! Cluster mode (`annexa run`): the admission context from kube-runtime reflector stores, the
//! serving certificate from mounted files or from the self-managed Secret
//! ([`certs::secret`](super::certs::secret)), and the whole webhook wired together.

use super::certs::{self, CertStore, CertificateConfig};
use super::context::{AdmissionContext, labels_enforce};
use super::{Limits, Metrics, WebhookState};
pub use crate::cluster::{StoreContext, watch};
use crate::error::{Error, Result};
use crate::policy::{Lookup, Profile};
use kube::Client;
use kube::runtime::reflector::ObjectRef;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

impl AdmissionContext for StoreContext {
    fn lookup(&self) -> &dyn Lookup {
        self
    }

    /// A namespace missing from the store (created a moment ago) counts as opted in: the API
    /// server only sends workloads of namespaces its `namespaceSelector` matches.
    fn workloads_enforced(&self, namespace: &str) -> bool {
        match self.namespaces.get(&ObjectRef::new(namespace)) {
            None => true,
            Some(ns) => ns.metadata.labels.as_ref().is_some_and(labels_enforce),
        }
    }

    fn profile(&self, namespace: &str) -> Arc<Profile> {
        StoreContext::profile(self, namespace)
    }

    fn ready(&self) -> bool {
        self.synced()
    }
}

/// Where `annexa run` gets its serving certificate.
#[derive(Clone, Debug)]
pub enum CertificateSource {
    /// Mounted files (cert-manager), reloaded when they change.
    Files {
        cert_file: PathBuf,
        key_file: PathBuf,
        reload_interval: Duration,
    },
    /// Self-managed with rcgen, in a Secret shared by replicas.
    Secret(CertificateConfig),
}

/// Settings of the webhook inside `annexa run`.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub limits: Limits,
    pub certificates: CertificateSource,
}

/// Serves the webhook in the cluster until `shutdown` resolves: reflector-store context,
/// certificates from files or the Secret (rotated), metrics. `/readyz` answers 503 until the
/// stores have listed.
pub async fn run(
    client: Client,
    config: ClusterConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let (context, watches) = watch(client.clone());
    let watches = tokio::spawn(watches);
    let result = run_with(client, config, context, Arc::new(Metrics::new()), shutdown).await;
    watches.abort();
    result
}

/// Serves the webhook over a context the caller watches (`annexa run` shares it with the
/// controllers) and a metrics registry the caller may have extended.
pub async fn run_with(
    client: Client,
    config: ClusterConfig,
    context: Arc<StoreContext>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    // Listeners first: an address in use is reported before any API call.
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| Error::Listen {
            addr: config.addr,
            server: Some("webhook"),
            source,
        })?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Listen {
                    addr,
                    server: Some("metrics"),
                    source,
                })?,
        ),
        None => None,
    };
    let (store, background) = match &config.certificates {
        CertificateSource::Files {
            cert_file,
            key_file,
            reload_interval,
        } => {
            let store = CertStore::new(
                certs::load_files(cert_file, key_file)?,
                Some(metrics.clone()),
            );
            let task = certs::spawn_file_reload(
                store.clone(),
                cert_file.clone(),
                key_file.clone(),
                *reload_interval,
            );
            (store, task)
        }
        CertificateSource::Secret(certificates) => {
            let store = certs::start_certificates(&client, certificates, metrics.clone()).await?;
            let task = certs::spawn_certificate_rotation(
                client.clone(),
                certificates.clone(),
                store.clone(),
            );
            (store, task)
        }
    };
    let state = Arc::new(WebhookState {
        context,
        metrics,
        limits: config.limits,
        access: Some(Arc::new(super::access::KubeAccessReviewer::new(
            client.clone(),
        ))),
    });
    let result = super::serve(listener, metrics_listener, state, store, shutdown).await;
    background.abort();
    result
}
