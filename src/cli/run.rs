//! `annexa run`: the operator in the cluster. For now the admission webhook (served on every
//! replica); the controllers and leader election join it with the controllers issue.

use crate::error::Result;
use crate::webhook::cluster::{self, CertificateConfig, CertificateSource, ClusterConfig};
use crate::webhook::{Limits, certs, server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Address of the HTTPS admission webhook.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub webhook_addr: SocketAddr,
    /// Plain-HTTP address for /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Serving certificate from a file (cert-manager); without it Annexa manages its own CA and
    /// certificate in the Secret --cert-secret.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Annexa's own namespace (the webhook Service and the certificate Secret live there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "annexa-system")]
    pub namespace: String,
    /// Name of the webhook Service (the certificate is issued for SERVICE.NAMESPACE.svc).
    #[arg(long, default_value = "annexa-webhook")]
    pub service_name: String,
    /// Secret holding the self-managed CA and serving certificate, shared by replicas.
    #[arg(long, default_value = "annexa-webhook-certs")]
    pub cert_secret: String,
    /// ValidatingWebhookConfigurations whose caBundle Annexa keeps current (repeatable).
    #[arg(long = "validating-webhook-configuration", default_value = "annexa")]
    pub validating_webhook_configurations: Vec<String>,
    /// MutatingWebhookConfigurations whose caBundle Annexa keeps current (repeatable).
    #[arg(long = "mutating-webhook-configuration", default_value = "annexa")]
    pub mutating_webhook_configurations: Vec<String>,
    /// Largest AdmissionReview body accepted; larger ones are answered 413.
    #[arg(long, default_value_t = server::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Server-side deadline for one review, in milliseconds.
    #[arg(long, default_value_t = 4000, value_name = "MS")]
    pub deadline_ms: u64,
}

impl Args {
    pub fn webhook_config(&self) -> ClusterConfig {
        let certificates = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert_file), Some(key_file)) => CertificateSource::Files {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                reload_interval: Duration::from_secs(5),
            },
            _ => CertificateSource::Secret(CertificateConfig {
                namespace: self.namespace.clone(),
                service_name: self.service_name.clone(),
                secret_name: self.cert_secret.clone(),
                validating_configurations: self.validating_webhook_configurations.clone(),
                mutating_configurations: self.mutating_webhook_configurations.clone(),
                lifetimes: certs::Lifetimes::default(),
                check_interval: Duration::from_secs(600),
            }),
        };
        ClusterConfig {
            addr: self.webhook_addr,
            metrics_addr: Some(self.metrics_addr),
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                deadline: Duration::from_millis(self.deadline_ms),
            },
            certificates,
        }
    }
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(args: &Args) -> Result<()> {
    let client = kube::Client::try_default().await?;
    cluster::run(client, args.webhook_config(), server::shutdown_signal()).await
}
