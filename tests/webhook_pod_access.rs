//! Admission of pods by who they run as: dataset access through every Secret and claim
//! reference (A.8.3), classification that follows the data (A.5.12, A.8.22), and agent pods
//! whose ServiceAccount and podSelector agree (A.8.12, A.5.15). Decided the same over files
//! (`annexa webhook --context`) and over the cluster's cache (indexed lookups kept current by
//! watch events).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use annexa::decode::Object;
use annexa::manifest;
use annexa::webhook::cluster::StoreContext;
use annexa::webhook::{Limits, Metrics, StaticContext, WebhookState, server};
use axum::Router;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use std::sync::Arc;
use webhook_support::{admitted_clean, denial, review, validate, yaml};

/// `ml-prod` (Production, Enforce, opted in): the Restricted dataset `claims-raw` read through
/// the Secret `claims-raw-s3-reader` by `fraud-trainer` only, the Confidential dataset
/// `features` on the claim `features-pvc`, and the agent `support-agent`.
const CONTEXT: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: ml-prod, labels: {annexa.dev/enforce: "true", env: prod}}
---
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: production}
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  environment: Production
  enforcement: {action: Enforce}
---
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims-raw, namespace: ml-prod}
spec:
  source: {uri: "s3://data/claims-raw"}
  classification: Restricted
  access: {allowedServiceAccounts: [fraud-trainer]}
  credentialsSecret: claims-raw-s3-reader
---
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: features, namespace: ml-prod}
spec:
  source: {pvc: features-pvc}
  classification: Confidential
  access: {allowedServiceAccounts: [fraud-trainer, fraud-eval]}
---
apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata: {name: support-agent, namespace: ml-prod}
spec:
  serviceAccountName: support-agent
  tokenTTL: 30m
  podSelector: {matchLabels: {app.kubernetes.io/name: support-agent}}
  permissions:
  - {apiGroups: [""], resources: [configmaps], verbs: [get]}
  egress:
  - {cidr: 10.0.0.0/8, ports: [443], protocol: TCP}
"#;

const IMAGE: &str = "registry.example.com/ml/job@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn documents() -> Vec<manifest::Document> {
    let (documents, errors) = manifest::parse_documents("context.yaml", CONTEXT);
    assert!(errors.is_empty(), "{errors:?}");
    documents
}

fn router_over(context: Arc<dyn annexa::webhook::context::AdmissionContext>) -> Router {
    server::router(Arc::new(WebhookState {
        context,
        metrics: Arc::new(Metrics::new()),
        limits: Limits::default(),
        access: None,
    }))
}

/// Over the files, as `annexa webhook --context` reads them.
fn static_router() -> Router {
    router_over(Arc::new(StaticContext::from_documents(documents())))
}

/// Over reflector stores, filled through the feeds as the watches fill them (so the indexes
/// are kept by the same code path as in the cluster).
fn store_context() -> (
    Arc<StoreContext>,
    reflector::store::Writer<annexa::api::TrainingDataset>,
) {
    let (policies, mut pw) = reflector::store();
    let (datasets, dw) = reflector::store();
    let (models, _mw) = reflector::store();
    let (approvals, _aw) = reflector::store();
    let (agents, mut gw) = reflector::store();
    let (namespaces, mut nw) = reflector::store();
    let context = Arc::new(StoreContext::new(
        policies, datasets, models, approvals, agents, namespaces,
    ));
    let mut dw = dw;
    for document in documents() {
        match document.object {
            Object::Policy(p) => context.feeds.policies.apply(&mut pw, Event::Apply(p)),
            Object::Dataset(d) => context.feeds.datasets.apply(&mut dw, Event::Apply(d)),
            Object::Agent(a) => context.feeds.agents.apply(&mut gw, Event::Apply(a)),
            Object::Namespace { name, labels } => {
                let namespace = ObjectMeta {
                    name: Some(name),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }
                .into_response_partial::<Namespace>();
                context
                    .feeds
                    .namespaces
                    .apply(&mut nw, Event::Apply(namespace))
            }
            _ => {}
        }
    }
    context.set_synced();
    (context, dw)
}

fn pod(name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ml-prod", "labels": labels}, "spec": spec})
}

fn deployment(name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ml-prod"},
        "spec": {"selector": {"matchLabels": labels.clone()}, "template": {"metadata": {"labels": labels}, "spec": spec}}})
}

fn container(extra: Value) -> Value {
    let mut c = json!({"name": "job", "image": IMAGE});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Every reference form: the pod spec (without serviceAccountName), the path, the dataset.
fn forms() -> Vec<(Value, &'static str, &'static str)> {
    let secret_env = json!({"env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "claims-raw-s3-reader", "key": "k"}}}]});
    let secret_env_from = json!({"envFrom": [{"secretRef": {"name": "claims-raw-s3-reader"}}]});
    vec![
        (
            json!({"containers": [container(secret_env.clone())]}),
            "spec.containers[0].env[0].valueFrom.secretKeyRef.name",
            "claims-raw",
        ),
        (
            json!({"containers": [container(secret_env_from.clone())]}),
            "spec.containers[0].envFrom[0].secretRef.name",
            "claims-raw",
        ),
        (
            json!({"initContainers": [container(secret_env_from.clone())], "containers": [container(json!({}))]}),
            "spec.initContainers[0].envFrom[0].secretRef.name",
            "claims-raw",
        ),
        (
            json!({"containers": [container(json!({}))], "ephemeralContainers": [container(secret_env)]}),
            "spec.ephemeralContainers[0].env[0].valueFrom.secretKeyRef.name",
            "claims-raw",
        ),
        (
            json!({"containers": [container(json!({}))], "volumes": [{"name": "c", "secret": {"secretName": "claims-raw-s3-reader"}}]}),
            "spec.volumes[0].secret.secretName",
            "claims-raw",
        ),
        (
            json!({"containers": [container(json!({}))], "volumes": [{"name": "c", "projected": {"sources": [{"secret": {"name": "claims-raw-s3-reader"}}]}}]}),
            "spec.volumes[0].projected.sources[0].secret.name",
            "claims-raw",
        ),
        (
            json!({"containers": [container(json!({}))], "volumes": [{"name": "c", "csi": {"driver": "s3.csi.aws.com", "nodePublishSecretRef": {"name": "claims-raw-s3-reader"}}}]}),
            "spec.volumes[0].csi.nodePublishSecretRef.name",
            "claims-raw",
        ),
        (
            json!({"containers": [container(json!({}))], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "features-pvc"}}]}),
            "spec.volumes[0].persistentVolumeClaim.claimName",
            "features",
        ),
        (
            json!({"containers": [container(json!({}))], "volumes": [{"name": "d", "ephemeral": {"volumeClaimTemplate": {"spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": "features-pvc"}}}}}]}),
            "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSource.name",
            "features",
        ),
        (
            json!({"containers": [container(json!({}))], "volumes": [{"name": "d", "ephemeral": {"volumeClaimTemplate": {"spec": {"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "features-pvc"}}}}}]}),
            "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSourceRef.name",
            "features",
        ),
    ]
}

async fn every_form_is_refused_as_default_and_admitted_as_the_allowed_account(router: &Router) {
    for (spec, path, dataset) in forms() {
        let refused = pod("reader", json!({}), spec.clone());
        let message = denial(&validate(router, &review("CREATE", "alice", &refused, None)).await);
        let allowed = if dataset == "claims-raw" {
            r#"["fraud-trainer"]"#
        } else {
            r#"["fraud-trainer", "fraud-eval"]"#
        };
        assert!(
            message.starts_with("Pod \"reader\" is not compliant: A.8.3 Information access restriction: pod \"reader\" runs as service account \"default\" and "),
            "{message}"
        );
        for part in [
            format!("({path})"),
            format!("of dataset \"{dataset}\""),
            format!("which only {allowed} may read"),
        ] {
            assert!(message.contains(&part), "{part} not in: {message}");
        }
        let mut as_trainer = spec.clone();
        as_trainer["serviceAccountName"] = json!("fraud-trainer");
        admitted_clean(
            &validate(
                router,
                &review(
                    "CREATE",
                    "alice",
                    &pod("reader", json!({}), as_trainer),
                    None,
                ),
            )
            .await,
        );
    }
}

#[tokio::test]
async fn dataset_reads_over_files() {
    every_form_is_refused_as_default_and_admitted_as_the_allowed_account(&static_router()).await;
}

#[tokio::test]
async fn dataset_reads_over_the_cluster_cache() {
    let (context, _writer) = store_context();
    every_form_is_refused_as_default_and_admitted_as_the_allowed_account(&router_over(context))
        .await;
}

#[tokio::test]
async fn the_cache_index_follows_dataset_changes_and_deletions() {
    let (context, mut writer) = store_context();
    let router = router_over(context.clone());
    let reader = pod(
        "reader",
        json!({}),
        json!({"serviceAccountName": "fraud-eval", "containers": [container(json!({"envFrom": [{"secretRef": {"name": "rotated-s3-reader"}}]}))]}),
    );
    // No dataset reads through `rotated-s3-reader` yet.
    admitted_clean(&validate(&router, &review("CREATE", "alice", &reader, None)).await);
    // claims-raw moves to a new Secret: the old one is no longer its, the new one is.
    let mut moved = context
        .datasets
        .state()
        .into_iter()
        .find(|d| d.metadata.name.as_deref() == Some("claims-raw"))
        .map(|d| (*d).clone())
        .unwrap();
    moved.spec.credentials_secret = Some("rotated-s3-reader".to_string());
    context
        .feeds
        .datasets
        .apply(&mut writer, Event::Apply(moved.clone()));
    let message = denial(&validate(&router, &review("CREATE", "alice", &reader, None)).await);
    assert!(message.contains("dataset \"claims-raw\""), "{message}");
    let old = pod(
        "old",
        json!({}),
        json!({"containers": [container(json!({"envFrom": [{"secretRef": {"name": "claims-raw-s3-reader"}}]}))]}),
    );
    admitted_clean(&validate(&router, &review("CREATE", "alice", &old, None)).await);
    // Deleted: nobody's data any more.
    context
        .feeds
        .datasets
        .apply(&mut writer, Event::Delete(moved));
    admitted_clean(&validate(&router, &review("CREATE", "alice", &reader, None)).await);
}

#[tokio::test]
async fn a_pod_reading_restricted_data_is_placed_as_restricted_whatever_its_label() {
    let router = static_router();
    let spec = json!({
        "serviceAccountName": "fraud-trainer",
        "nodeSelector": {"annexa.dev/gpu-pool": "public"},
        "tolerations": [{"key": "annexa.dev/gpu-pool", "operator": "Equal", "value": "public", "effect": "NoSchedule"}],
        "containers": [container(json!({
            "envFrom": [{"secretRef": {"name": "claims-raw-s3-reader"}}],
            "resources": {"limits": {"nvidia.com/gpu": "1"}}
        }))]
    });
    let labels = json!({"annexa.dev/classification": "Public"});
    let message = denial(
        &validate(
            &router,
            &review(
                "CREATE",
                "alice",
                &deployment("trainer", labels.clone(), spec.clone()),
                None,
            ),
        )
        .await,
    );
    assert!(
        message.contains("deployment \"trainer\" requests GPUs for Restricted data (from dataset \"claims-raw\" read at spec.template.spec.containers[0].envFrom[0].secretRef.name; its label says \"Public\") but does not select the Restricted pool (annexa.dev/gpu-pool=restricted)"),
        "{message}"
    );
    let mut placed = spec;
    placed["nodeSelector"] = json!({"annexa.dev/gpu-pool": "restricted"});
    placed["tolerations"][0]["value"] = json!("restricted");
    admitted_clean(
        &validate(
            &router,
            &review(
                "CREATE",
                "alice",
                &deployment("trainer", labels, placed),
                None,
            ),
        )
        .await,
    );
}

#[tokio::test]
async fn agent_pods_run_as_the_agent_and_carry_its_labels() {
    for router in [static_router(), router_over(store_context().0)] {
        let agent_labels = json!({"app.kubernetes.io/name": "support-agent"});
        let spec = json!({"serviceAccountName": "support-agent", "automountServiceAccountToken": false, "containers": [container(json!({}))]});
        // Both agree: admitted.
        admitted_clean(
            &validate(
                &router,
                &review(
                    "CREATE",
                    "alice",
                    &deployment("support-agent", agent_labels.clone(), spec.clone()),
                    None,
                ),
            )
            .await,
        );
        // The agent's account without its labels: outside its egress policy.
        let other_labels = json!({"app.kubernetes.io/name": "helper"});
        assert_eq!(
            denial(
                &validate(
                    &router,
                    &review(
                        "CREATE",
                        "alice",
                        &deployment("helper", other_labels.clone(), spec.clone()),
                        None
                    )
                )
                .await
            ),
            "Deployment \"helper\" is not compliant: A.8.12 Data leakage prevention: deployment \"helper\" runs as service account \"support-agent\" of agent \"support-agent\" but its labels (spec.template.metadata.labels) do not match the agent's podSelector (app.kubernetes.io/name=support-agent), so the agent's egress NetworkPolicy does not select it"
        );
        // The agent's labels on another account: outside its least privilege.
        let mut as_default = spec.clone();
        as_default
            .as_object_mut()
            .unwrap()
            .remove("serviceAccountName");
        assert_eq!(
            denial(
                &validate(
                    &router,
                    &review(
                        "CREATE",
                        "alice",
                        &pod(
                            "support-agent-debug",
                            agent_labels.clone(),
                            as_default.clone()
                        ),
                        None
                    )
                )
                .await
            ),
            "Pod \"support-agent-debug\" is not compliant: A.5.15 Access control: pod \"support-agent-debug\" matches the podSelector of agent \"support-agent\" (app.kubernetes.io/name=support-agent) but runs as service account \"default\" (spec.serviceAccountName), not the agent's \"support-agent\", so it holds rights outside the agent's least-privilege policy"
        );
        // Neither the account nor the labels: not an agent pod.
        admitted_clean(
            &validate(
                &router,
                &review(
                    "CREATE",
                    "alice",
                    &pod("web", other_labels, as_default),
                    None,
                ),
            )
            .await,
        );
        // A label-only update that drops the agent's labels is decided like a creation.
        let old = pod("support-agent-0", agent_labels, spec.clone());
        let relabelled = pod(
            "support-agent-0",
            json!({"app.kubernetes.io/name": "x"}),
            spec,
        );
        let message =
            denial(&validate(&router, &review("UPDATE", "alice", &relabelled, Some(&old))).await);
        assert!(
            message.contains("A.8.12 Data leakage prevention"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn the_yaml_fixture_reads_like_the_json() {
    // The same Pod written as a manifest (what `kubectl apply -f` sends) is refused the same way.
    let router = static_router();
    let pod = yaml(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: reader, namespace: ml-prod}\nspec:\n  containers:\n  - name: job\n    image: registry.example.com/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n    envFrom:\n    - secretRef: {name: claims-raw-s3-reader}\n",
    );
    let message = denial(&validate(&router, &review("CREATE", "alice", &pod, None)).await);
    assert!(message.contains("A.8.3"), "{message}");
}
