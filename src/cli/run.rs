//! `annexa run`: the operator in the cluster. The admission webhook serves on every replica;
//! the controllers run on the replica holding the leader Lease (or always, without
//! `--leader-election`). Both read one shared cache of the cluster.

use crate::error::Result;
use crate::webhook::certs::CertificateConfig;
use crate::webhook::cluster::{self, CertificateSource, ClusterConfig};
use crate::webhook::{certs, server};
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
    /// Secret holding the self-managed CA and serving certificate, shared by replicas (the
    /// chart's name for release `annexa`).
    #[arg(long, default_value = "annexa-webhook-tls")]
    pub cert_secret: String,
    /// ValidatingWebhookConfigurations whose caBundle Annexa keeps current (repeatable).
    #[arg(
        long = "validating-webhook-configuration",
        visible_alias = "validating-webhook",
        default_value = "annexa"
    )]
    pub validating_webhook_configurations: Vec<String>,
    /// MutatingWebhookConfigurations whose caBundle Annexa keeps current (repeatable).
    #[arg(
        long = "mutating-webhook-configuration",
        visible_alias = "mutating-webhook",
        default_value = "annexa"
    )]
    pub mutating_webhook_configurations: Vec<String>,
    /// Elect a leader through a coordination.k8s.io Lease so that only one replica reconciles
    /// (required with more than one replica). Without it the controllers always run.
    #[arg(long)]
    pub leader_election: bool,
    /// Name of the Lease (in --namespace) used for leader election.
    #[arg(long, default_value = "annexa-leader")]
    pub lease_name: String,
    /// Identity in the Lease (default: the pod name from HOSTNAME).
    #[arg(long, env = "HOSTNAME")]
    pub identity: Option<String>,
    /// How often the self-managed certificate Secret is checked (renewed when due, adopted when
    /// another replica renewed it) and the webhook configurations' caBundle repaired: `60s`,
    /// `5m`.
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    pub certificate_check_interval: Duration,
    /// Lifetime of the self-managed serving certificate, renewed at two thirds of it: `365d`,
    /// `90d` (short lifetimes exercise rotation).
    #[arg(long, default_value = "365d", value_parser = positive_duration)]
    pub serving_certificate_lifetime: Duration,
    /// Serve the webhook only; run no controllers.
    #[arg(long)]
    pub no_controllers: bool,
    /// The report CRDs the controllers keep one compliance report per namespace in:
    /// `openreports` (openreports.io/v1alpha1 Report, ClusterReport) or `wgpolicy`
    /// (wgpolicyk8s.io/v1alpha2 PolicyReport, ClusterPolicyReport). Skipped while the CRD is absent.
    #[arg(long, value_enum, default_value = "openreports")]
    pub report_api: crate::evidence::openreports::ReportApi,
    /// Write no compliance reports.
    #[arg(long)]
    pub no_reports: bool,
    #[command(flatten)]
    pub limits: super::webhook::LimitArgs,
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
                lifetimes: certs::Lifetimes {
                    serving: self.serving_certificate_lifetime,
                    ..certs::Lifetimes::default()
                },
                // Also how soon a webhook configuration recreated without caBundle is repaired.
                check_interval: self.certificate_check_interval,
            }),
        };
        ClusterConfig {
            addr: self.webhook_addr,
            metrics_addr: Some(self.metrics_addr),
            limits: self.limits.limits(),
            certificates,
        }
    }
}

/// A duration of at least one second, written as in Annexa objects (`90s`, `5m`, `365d`).
fn positive_duration(text: &str) -> std::result::Result<Duration, String> {
    let parsed = crate::policy::duration::parse_duration(text)?;
    match u64::try_from(parsed.as_secs()) {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!("duration {text:?} must be at least 1s")),
    }
}

/// Lists (one object) what the cache watches, as `annexa run` will, and turns what makes that
/// fail into one line saying what is missing: the CRDs, a permission, the release namespace.
async fn preflight(client: &kube::Client, args: &Args) -> Result<()> {
    use crate::api::{
        AgentPolicy, CompliancePolicy, ModelApproval, ModelDeployment, TrainingDataset,
    };
    use k8s_openapi::api::core::v1::{Namespace, Node};

    async fn list_one<K>(client: &kube::Client, crd: bool) -> Result<()>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let api = kube::Api::<K>::all(client.clone());
        let params = kube::api::ListParams::default().limit(1);
        let Err(error) = api.list_metadata(&params).await else {
            return Ok(());
        };
        let group = K::group(&());
        let resource = if group.is_empty() {
            K::plural(&()).into_owned()
        } else {
            format!("{}.{group}", K::plural(&()))
        };
        let message = match &error {
            kube::Error::Api(status) if status.code == 404 && crd => format!(
                "the Annexa CRDs are not installed: the API server does not serve {resource}; \
                 install them with `kubectl apply -f crds/` (the Helm chart installs them too)"
            ),
            kube::Error::Api(status) if status.code == 403 => format!(
                "RBAC forbids Annexa to list {resource} cluster-wide ({}): it needs list and \
                 watch on {resource}; bind the chart's ClusterRole to its identity \
                 (`annexa permissions` prints every permission it uses)",
                status.message
            ),
            kube::Error::Api(status) if status.code == 401 => format!(
                "the API server does not accept Annexa's credentials ({}): check its \
                 ServiceAccount token or KUBECONFIG",
                status.message
            ),
            // Anything else may pass (the API server restarting, a timeout): the watches
            // retry with backoff, as they would later.
            _ => {
                tracing::warn!(
                    "cannot list {resource} yet: {}; retrying with backoff",
                    crate::error::kube_message(&error)
                );
                return Ok(());
            }
        };
        Err(crate::error::Error::Cluster {
            message,
            source: error,
        })
    }

    list_one::<CompliancePolicy>(client, true).await?;
    list_one::<TrainingDataset>(client, true).await?;
    list_one::<ModelDeployment>(client, true).await?;
    list_one::<ModelApproval>(client, true).await?;
    list_one::<AgentPolicy>(client, true).await?;
    list_one::<Node>(client, false).await?;
    list_one::<Namespace>(client, false).await?;
    // The release namespace holds the certificate Secret and the leader Lease.
    let self_managed = args.tls_cert_file.is_none();
    if self_managed || args.leader_election {
        let namespaces = kube::Api::<Namespace>::all(client.clone());
        let params =
            kube::api::ListParams::default().fields(&format!("metadata.name={}", args.namespace));
        let found = namespaces.list_metadata(&params).await;
        if found.is_ok_and(|list| list.items.is_empty()) {
            return Err(crate::error::Error::Config(format!(
                "the namespace {0:?} does not exist: Annexa keeps its {1} there; create it \
                 (`kubectl create namespace {0}`, or install the chart with --create-namespace) \
                 or pass --namespace (POD_NAMESPACE) naming the namespace Annexa is installed in",
                args.namespace,
                match (self_managed, args.leader_election) {
                    (true, true) => "webhook certificate Secret and leader Lease",
                    (true, false) => "webhook certificate Secret",
                    _ => "leader Lease",
                }
            )));
        }
    }
    Ok(())
}

/// Runs until SIGTERM or Ctrl-C: webhook on every replica, controllers on the leader.
pub async fn run(args: &Args) -> Result<()> {
    use crate::controller::{self, leader, metrics::ControllerMetrics};
    use std::sync::Arc;

    let client =
        kube::Client::try_default()
            .await
            .map_err(|source| crate::error::Error::Cluster {
                message: format!(
                    "cannot configure a Kubernetes client (in-cluster or KUBECONFIG): {}",
                    crate::error::kube_message(&source)
                ),
                source,
            })?;
    preflight(&client, args).await?;
    let (context, watches) = crate::cluster::watch(client.clone());
    let watches = tokio::spawn(watches);
    let controller_metrics = Arc::new(ControllerMetrics::default());
    let metrics = Arc::new(crate::webhook::Metrics::with(|registry| {
        controller_metrics.register(registry)
    }));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        server::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = on_signal.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // The webhook (and its metrics and health) must be up for the operator to be of use: when
    // it cannot start or stops on its own, everything stops and `annexa run` exits non-zero.
    let webhook = async {
        let result = cluster::run_with(
            client.clone(),
            args.webhook_config(),
            context.clone(),
            metrics,
            stopped(stop_rx.clone()),
        )
        .await;
        if !*stop_rx.borrow() {
            let result = result.and(Err(crate::error::Error::Config(
                "the admission webhook stopped serving".to_string(),
            )));
            if let Err(e) = &result {
                tracing::error!(error = %e, "the admission webhook is not serving; stopping");
            }
            let _ = stop_tx.send(true);
            return result;
        }
        result
    };
    let controllers = async {
        if args.no_controllers {
            return Ok(());
        }
        // Reconciling against half-listed caches would hold rollouts and report phantom
        // failures: wait until every store has listed once.
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        while !context.synced() {
            if *stop_rx.borrow() {
                return Ok(());
            }
            ticker.tick().await;
        }
        let work = |stop: tokio::sync::watch::Receiver<bool>| {
            let reports = (!args.no_reports).then(|| {
                let ctx = Arc::new(controller::Context::new(
                    client.clone(),
                    context.clone(),
                    controller_metrics.clone(),
                ));
                controller::reports::run(ctx, args.report_api, stop.clone())
            });
            let controllers = controller::run(
                client.clone(),
                context.clone(),
                controller_metrics.clone(),
                stop,
            );
            async move {
                match reports {
                    Some(reports) => {
                        futures::join!(controllers, reports);
                    }
                    None => controllers.await,
                }
            }
        };
        if args.leader_election {
            let identity = args
                .identity
                .clone()
                .unwrap_or_else(|| format!("annexa-{}", std::process::id()));
            leader::run_while_leader(
                client.clone(),
                &args.namespace,
                &args.lease_name,
                identity,
                stop_rx.clone(),
                work,
            )
            .await
        } else {
            work(stop_rx.clone()).await;
            Ok(())
        }
    };
    let (served, reconciled) = tokio::join!(webhook, controllers);
    watches.abort();
    served.and(reconciled)
}
