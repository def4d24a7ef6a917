//! `annexa webhook`: the admission webhook stand-alone, without an API server. The context
//! (CompliancePolicies, datasets, models, approvals, agents, Namespaces) comes from files; the
//! certificate from files (cert-manager style), reloaded when they change.

use crate::error::Result;
use crate::webhook::{self, Limits, StandaloneConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Address of the HTTPS webhook (/validate, /mutate, /healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:8443", env = "ANNEXA_WEBHOOK_ADDR")]
    pub addr: SocketAddr,
    /// PEM certificate chain (leaf first); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: PathBuf,
    /// PEM private key of the certificate; reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: PathBuf,
    /// Plain-HTTP address for /metrics (Prometheus); no metrics server when absent.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// CompliancePolicy manifests (file or folder; repeatable).
    #[arg(long = "policy", value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Related objects the rules read: TrainingDatasets, ModelDeployments, ModelApprovals,
    /// AgentPolicies and Namespaces (file or folder; repeatable). A namespace with no Namespace
    /// object here counts as opted in to workload checks.
    #[arg(long = "context", value_name = "FILE")]
    pub context: Vec<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// How often the certificate files are checked for changes, in seconds.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub cert_reload_seconds: u64,
}

impl Args {
    pub fn config(&self) -> StandaloneConfig {
        StandaloneConfig {
            addr: self.addr,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            metrics_addr: self.metrics_addr,
            policy_files: self.policy.clone(),
            context_files: self.context.clone(),
            limits: self.limits.limits(),
            cert_reload_interval: Duration::from_secs(self.cert_reload_seconds.max(1)),
        }
    }
}

/// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
pub async fn run(args: &Args) -> Result<()> {
    webhook::run_standalone(args.config(), webhook::server::shutdown_signal()).await
}

/// The webhook server's caps, shared by `annexa webhook` and `annexa run` (docs/webhook.md,
/// "Limits").
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Largest AdmissionReview body accepted; larger ones are answered 413.
    #[arg(long, default_value_t = webhook::server::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Server-side deadline for reading and deciding a review, in milliseconds (inside the
    /// webhook configuration's timeoutSeconds).
    #[arg(long, default_value_t = 4000, value_name = "MS")]
    pub deadline_ms: u64,
    /// Open connections; at the cap the connection idle the longest is closed to make room.
    #[arg(long, default_value_t = webhook::server::DEFAULT_MAX_CONNECTIONS, value_name = "N")]
    pub max_connections: usize,
    /// Open connections from one IP address; more are closed before the TLS handshake.
    #[arg(long, default_value_t = webhook::server::DEFAULT_MAX_CONNECTIONS_PER_PEER, value_name = "N")]
    pub max_connections_per_peer: usize,
    /// Reviews decided at once; more are answered 429 at once.
    #[arg(long, default_value_t = webhook::server::DEFAULT_MAX_IN_FLIGHT, value_name = "N")]
    pub max_in_flight: usize,
    /// Body bytes of the reviews in flight; more are answered 429 at once.
    #[arg(long, default_value_t = webhook::server::DEFAULT_MAX_IN_FLIGHT_BYTES, value_name = "BYTES")]
    pub max_in_flight_bytes: usize,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, default_value_t = webhook::server::DEFAULT_IDLE_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub idle_timeout_seconds: u64,
    /// Seconds for the TLS handshake, and again for the first request's headers.
    #[arg(long, default_value_t = webhook::server::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub handshake_timeout_seconds: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            deadline: Duration::from_millis(self.deadline_ms),
            max_connections: self.max_connections.max(1),
            max_connections_per_peer: self.max_connections_per_peer.max(1),
            max_in_flight: self.max_in_flight.max(1),
            max_in_flight_bytes: self.max_in_flight_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds.max(1)),
            handshake_timeout: Duration::from_secs(self.handshake_timeout_seconds.max(1)),
        }
    }
}
