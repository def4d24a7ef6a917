//! Self-managed certificates in the cluster: the CA and serving certificate kept in a Secret
//! shared by replicas (renewed by whichever replica finds them due, races settled by optimistic
//! concurrency), and the CA patched into `caBundle` of Annexa's webhook configurations.

use super::{CertBundle, CertError, CertStore, Lifetimes, PemPair, renew, service_dns_names};
use crate::webhook::Metrics;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

type Result<T, E = CertError> = std::result::Result<T, E>;

fn secret_call(source: kube::Error) -> CertError {
    CertError::Secret { source }
}

fn ca_bundle_call(source: kube::Error) -> CertError {
    CertError::CaBundle { source }
}

/// Where the self-managed certificates live and whom they are for.
#[derive(Clone, Debug)]
pub struct CertificateConfig {
    /// Namespace of the Service and the Secret (Annexa's own namespace).
    pub namespace: String,
    pub service_name: String,
    pub secret_name: String,
    /// ValidatingWebhookConfigurations and MutatingWebhookConfigurations whose `caBundle`
    /// Annexa keeps current.
    pub validating_configurations: Vec<String>,
    pub mutating_configurations: Vec<String>,
    pub lifetimes: Lifetimes,
    /// How often the Secret is checked (renewed by this or another replica).
    pub check_interval: Duration,
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const CA_BUNDLE: &str = "ca-bundle.crt";

/// Reads the bundle from the Secret's data; `None` when a key is missing or not UTF-8.
pub fn bundle_from_secret(secret: &Secret) -> Option<CertBundle> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Some(CertBundle {
        ca: PemPair {
            cert: text(CA_CERT)?,
            key: text(CA_KEY)?,
        },
        serving: PemPair {
            cert: text(TLS_CERT)?,
            key: text(TLS_KEY)?,
        },
        ca_bundle: text(CA_BUNDLE).unwrap_or_else(|| text(CA_CERT).unwrap_or_default()),
    })
}

/// The Secret data for a bundle.
pub fn secret_data(bundle: &CertBundle) -> BTreeMap<String, ByteString> {
    [
        (CA_CERT, &bundle.ca.cert),
        (CA_KEY, &bundle.ca.key),
        (TLS_CERT, &bundle.serving.cert),
        (TLS_KEY, &bundle.serving.key),
        (CA_BUNDLE, &bundle.ca_bundle),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

/// Attempts at settling the Secret when replicas race on it.
const SECRET_ATTEMPTS: usize = 5;

/// Reads the Secret, renews what is due (creating it when missing) and returns the bundle to
/// serve. Replicas race through optimistic concurrency: a conflict re-reads the winner's Secret.
pub async fn ensure_certificates(
    client: &Client,
    config: &CertificateConfig,
    now: i64,
) -> Result<CertBundle> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let names = service_dns_names(&config.service_name, &config.namespace);
    for _ in 0..SECRET_ATTEMPTS {
        let current = api
            .get_opt(&config.secret_name)
            .await
            .map_err(secret_call)?;
        let existing = current.as_ref().and_then(bundle_from_secret);
        let Some(renewed) = renew(existing.as_ref(), &names, now, config.lifetimes)? else {
            if let Some(bundle) = existing {
                return Ok(bundle);
            }
            continue;
        };
        let result = match current {
            Some(mut secret) => {
                secret.data = Some(secret_data(&renewed));
                api.replace(&config.secret_name, &PostParams::default(), &secret)
                    .await
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(config.secret_name.clone()),
                        namespace: Some(config.namespace.clone()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_string(),
                            "annexa".to_string(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    type_: Some("kubernetes.io/tls".to_string()),
                    data: Some(secret_data(&renewed)),
                    ..Secret::default()
                };
                api.create(&PostParams::default(), &secret).await
            }
        };
        match result {
            Ok(_) => {
                tracing::info!(secret = %config.secret_name, "stored renewed webhook certificates");
                return Ok(renewed);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!("another replica renewed the certificates first; re-reading");
            }
            Err(e) => return Err(secret_call(e)),
        }
    }
    Err(CertError::Unsettled {
        namespace: config.namespace.clone(),
        name: config.secret_name.clone(),
        attempts: SECRET_ATTEMPTS,
    })
}

/// Writes the CA bundle into Annexa's webhook configurations with a targeted JSON patch of
/// `caBundle` (`patch`, never a PUT of the whole object: replicas writing at start-up cannot
/// overwrite each other, and a 409 or failed guard is re-read and retried). Missing
/// configurations are skipped with a warning: the chart may not have created them yet. Only
/// configurations whose bundle differs are written, so calling it on every check is cheap; it also repairs configurations that were
/// deleted and recreated without a bundle (the emergency procedure).
pub async fn patch_ca_bundles(
    client: &Client,
    config: &CertificateConfig,
    bundle: &str,
) -> Result<()> {
    patch_kind::<ValidatingWebhookConfiguration>(client, &config.validating_configurations, bundle)
        .await?;
    patch_kind::<MutatingWebhookConfiguration>(client, &config.mutating_configurations, bundle)
        .await
}

/// The JSON patch writing `bundle` into `caBundle` of every webhook whose bundle differs, and
/// nothing else: each write is guarded by a `test` of that webhook's name at its index, so a
/// configuration reordered or edited in between fails the patch (re-read and retried) instead
/// of receiving the bundle in the wrong place. Empty when every bundle is current.
pub fn ca_bundle_patch(
    webhooks: &[(String, Option<&ByteString>)],
    bundle: &str,
) -> Result<json_patch::Patch> {
    let wanted = ByteString(bundle.as_bytes().to_vec());
    let mut ops = Vec::new();
    for (i, (name, current)) in webhooks.iter().enumerate() {
        if *current == Some(&wanted) {
            continue;
        }
        ops.push(
            serde_json::json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}),
        );
        ops.push(serde_json::json!({
            "op": "add",
            "path": format!("/webhooks/{i}/clientConfig/caBundle"),
            "value": wanted,
        }));
    }
    serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|source| CertError::CaBundlePatch { source })
}

/// A webhook configuration kind: its webhooks each carry a name and a `caBundle`.
trait WebhookConfiguration:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    /// Each webhook's name and current `caBundle`, in order.
    fn bundles(&self) -> Vec<(String, Option<&ByteString>)>;
}

/// The validating and mutating kinds have the same fields under different types.
macro_rules! webhook_configuration {
    ($($kind:ty),*) => {$(
        impl WebhookConfiguration for $kind {
            fn bundles(&self) -> Vec<(String, Option<&ByteString>)> {
                self.webhooks
                    .iter()
                    .flatten()
                    .map(|w| (w.name.clone(), w.client_config.ca_bundle.as_ref()))
                    .collect()
            }
        }
    )*};
}
webhook_configuration!(ValidatingWebhookConfiguration, MutatingWebhookConfiguration);

/// Attempts at patching one configuration when replicas or people race on it.
const CA_BUNDLE_ATTEMPTS: usize = 5;

async fn patch_kind<K: WebhookConfiguration>(
    client: &Client,
    names: &[String],
    bundle: &str,
) -> Result<()> {
    let api = Api::<K>::all(client.clone());
    let kind = K::kind(&());
    for name in names {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(object) = api.get_opt(name).await.map_err(ca_bundle_call)? else {
                tracing::warn!(
                    "{kind} {name:?} does not exist: the API server sends no admission requests to Annexa through it, so nothing is refused at admission; install it with the chart (helm upgrade); Annexa sets its caBundle when it appears"
                );
                break;
            };
            let patch = ca_bundle_patch(&object.bundles(), bundle)?;
            if patch.0.is_empty() {
                break;
            }
            match api
                .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(%name, %kind, "patched caBundle");
                    break;
                }
                // 409: changed under us; 422: a guard (`test`) failed. Read again and retry.
                Err(kube::Error::Api(status))
                    if (status.code == 409 || status.code == 422)
                        && attempt < CA_BUNDLE_ATTEMPTS =>
                {
                    tracing::debug!(%name, %kind, code = status.code, "caBundle patch raced; re-reading");
                }
                Err(e) => return Err(ca_bundle_call(e)),
            }
        }
    }
    Ok(())
}

/// Settles the certificates at start: Secret, caBundle, then the store to serve from.
pub async fn start_certificates(
    client: &Client,
    config: &CertificateConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<CertStore>> {
    let bundle = ensure_certificates(client, config, jiff::Timestamp::now().as_second()).await?;
    patch_ca_bundles(client, config, &bundle.ca_bundle).await?;
    Ok(CertStore::new(bundle.loaded()?, Some(metrics)))
}

/// Checks the Secret every `check_interval`: renews when due (or adopts what another replica
/// renewed), patches the caBundle first, then serves the new certificate to new connections.
pub fn spawn_certificate_rotation(
    client: Client,
    config: CertificateConfig,
    store: Arc<CertStore>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(config.check_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut served = None::<String>;
        loop {
            ticker.tick().await;
            let result = async {
                let bundle =
                    ensure_certificates(&client, &config, jiff::Timestamp::now().as_second())
                        .await?;
                // Every check: repairs configurations recreated without a bundle.
                patch_ca_bundles(&client, &config, &bundle.ca_bundle).await?;
                if served.as_deref() != Some(bundle.serving.cert.as_str()) {
                    let loaded = bundle.loaded()?;
                    if loaded.key.cert != store.current().key.cert {
                        tracing::info!(
                            not_after = loaded.not_after,
                            "serving the renewed certificate"
                        );
                        store.replace(loaded);
                    }
                    served = Some(bundle.serving.cert);
                }
                Ok::<_, CertError>(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, category = e.category(), "certificate check failed; keeping the current certificate");
            }
        }
    })
}
