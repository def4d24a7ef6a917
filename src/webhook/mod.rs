//! The admission webhook: HTTPS server (axum + rustls), certificates (rcgen), and
//! AdmissionReview <-> policy engine.
//!
//! - [`review`]: decoding `admission.k8s.io/v1` AdmissionReview requests, encoding answers;
//! - [`admission`]: the decisions (pure: they call the same `policy` functions as
//!   `annexa check` and the controllers);
//! - [`context`]: the cross-object context ([`context::AdmissionContext`]), from files in
//!   stand-alone mode;
//! - [`cluster`]: the webhook in `annexa run`: the context over reflector stores, the serving
//!   certificate from files or the self-managed Secret, everything wired together;
//! - [`server`]: routes, limits, TLS accept loop, graceful shutdown;
//! - [`certs`]: serving certificates: rcgen CA and rotation, the hot-swapped store and file
//!   reload, the self-managed Secret and `caBundle` in a cluster;
//! - [`metrics`]: Prometheus metrics.
//!
//! `docs/webhook.md` describes endpoints, flags, certificate modes and failure behaviour.

pub mod access;
pub mod admission;
pub mod certs;
pub mod cluster;
pub mod context;
pub mod metrics;
pub mod review;
pub mod server;

pub use context::{AdmissionContext, StaticContext};
pub use metrics::Metrics;
pub use server::{Limits, WebhookState};

use crate::error::{Error, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Settings of `annexa webhook` (stand-alone mode).
#[derive(Clone, Debug)]
pub struct StandaloneConfig {
    pub addr: SocketAddr,
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    pub metrics_addr: Option<SocketAddr>,
    pub policy_files: Vec<PathBuf>,
    pub context_files: Vec<PathBuf>,
    pub limits: Limits,
    /// How often the certificate files are checked for changes.
    pub cert_reload_interval: Duration,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            addr,
            server: None,
            source,
        })
}

/// Runs the stand-alone webhook until `shutdown` resolves: context from the files, certificate
/// from the files (reloaded when they change), metrics on their own plain-HTTP address.
pub async fn run_standalone(
    config: StandaloneConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let context = StaticContext::load(&config.policy_files, &config.context_files)?;
    tracing::info!(
        policies = context.policies().len(),
        "loaded the stand-alone admission context"
    );
    let cert = certs::load_files(&config.tls_cert_file, &config.tls_key_file)?;
    let store = certs::CertStore::new(cert, Some(metrics.clone()));
    let reload = certs::spawn_file_reload(
        store.clone(),
        config.tls_cert_file.clone(),
        config.tls_key_file.clone(),
        config.cert_reload_interval,
    );
    let state = Arc::new(WebhookState {
        context: Arc::new(context),
        metrics: metrics.clone(),
        limits: config.limits,
        // No client: nothing is done on anyone's behalf, so there is nothing to verify.
        access: None,
    });
    let listener = bind(config.addr).await?;
    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let result = serve(listener, metrics_listener, state, store, shutdown).await;
    reload.abort();
    result
}

/// Serves the webhook (TLS) and, when given a listener, the metrics until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: Arc<WebhookState>,
    certs: Arc<certs::CertStore>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let tls = Arc::new(certs.server_config()?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the admission webhook over HTTPS");
    }
    let mut metrics_task = metrics_listener.map(|l| {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(%addr, "serving metrics over HTTP");
        }
        let app = server::metrics_router(state.metrics.clone());
        tokio::spawn(server::serve_plain(l, app, wait(stopped.clone())))
    });
    let limits = state.limits;
    let metrics = state.metrics.clone();
    let app = server::router(state);
    let webhook = server::serve_tls(listener, app, tls, limits, metrics, wait(stopped.clone()));
    tokio::pin!(webhook);
    let mut failed = None;
    let metrics_ended = async {
        match metrics_task.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = &mut webhook => {}
        _ = shutdown => {
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop.send(true);
            webhook.await;
        }
        // The metrics server never ends before shutdown unless it failed; the webhook then
        // stops too, so that a half-served process does not look healthy.
        ended = metrics_ended => {
            let why = match ended {
                Ok(Ok(())) => "it stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::error!(error = %why, "the metrics server failed; stopping the webhook");
            failed = Some(Error::Config(format!("the metrics server failed: {why}")));
            let _ = stop.send(true);
            webhook.await;
            metrics_task = None;
        }
    }
    let _ = stop.send(true);
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    failed.map_or(Ok(()), Err)
}
