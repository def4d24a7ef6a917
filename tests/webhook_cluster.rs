//! Cluster mode without an API server: the reflector-store context (filled through the
//! stores' writers as watch events would), the Secret layout and caBundle patching.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use annexa::api::{CompliancePolicy, ModelApproval};
use annexa::decode::Object;
use annexa::manifest;
use annexa::policy::Lookup;
use annexa::webhook::cluster::StoreContext;
use annexa::webhook::context::AdmissionContext;
use annexa::webhook::{Limits, Metrics, WebhookState, certs, server};
use axum::http::StatusCode;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ObjectMeta, PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use std::sync::Arc;
use webhook_support::*;

/// Writers of the stores a test changes after the initial fill.
struct Writers {
    policies: Writer<CompliancePolicy>,
    namespaces: Writer<PartialObjectMeta<Namespace>>,
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ObjectMeta::default()
    }
    .into_response_partial()
}

/// The stores filled from the shared test context, as the watches would fill them.
fn stores() -> (Arc<StoreContext>, Writers) {
    let (policies, mut pw) = reflector::store();
    let (datasets, mut dw) = reflector::store();
    let (models, mut mw) = reflector::store();
    let (approvals, aw) = reflector::store::<ModelApproval>();
    let (agents, mut gw) = reflector::store();
    let (namespaces, mut nw) = reflector::store();
    let (documents, errors) = manifest::parse_documents("context.yaml", CONTEXT);
    assert!(errors.is_empty());
    for document in documents {
        match document.object {
            Object::Policy(p) => pw.apply_watcher_event(&Event::Apply(p)),
            Object::Dataset(d) => dw.apply_watcher_event(&Event::Apply(d)),
            Object::Model(m) => mw.apply_watcher_event(&Event::Apply(m)),
            Object::Agent(a) => gw.apply_watcher_event(&Event::Apply(a)),
            Object::Namespace { name, labels } => {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                nw.apply_watcher_event(&Event::Apply(namespace(&name, &labels)))
            }
            _ => {}
        }
    }
    let context = Arc::new(StoreContext::new(
        policies, datasets, models, approvals, agents, namespaces,
    ));
    drop((dw, mw, aw, gw));
    (
        context,
        Writers {
            policies: pw,
            namespaces: nw,
        },
    )
}

fn router_over(context: Arc<StoreContext>) -> axum::Router {
    server::router(Arc::new(WebhookState {
        context,
        metrics: Arc::new(Metrics::new()),
        limits: Limits::default(),
        access: None,
    }))
}

#[tokio::test]
async fn decisions_read_the_stores() {
    let (context, _writers) = stores();
    context.set_synced();
    let router = router_over(context.clone());
    // Cross-object: bob requested llm's release (model in the store) and cannot approve it.
    let approval = yaml(&format!(
        "apiVersion: annexa.dev/v1alpha1\nkind: ModelApproval\nmetadata: {{name: a, namespace: ml-prod}}\nspec: {{modelDeployment: llm, modelUID: {LLM_UID}, release: {{fingerprint: \"{LLM_RELEASE}\", digest: \"{D1}\"}}, decision: Approve, approver: {{username: bob}}}}"
    ));
    let message = denial(&validate(&router, &review("CREATE", "bob", &approval, None)).await);
    assert!(
        message.contains("A.5.3 Segregation of duties: \"bob\" requested release"),
        "{message}"
    );
    // The namespace profile comes from the policy store and the namespace's labels.
    assert_eq!(context.profile("ml-prod").policies, ["production"]);
    assert!(context.profile("ml-dev").policies.is_empty());
    assert!(context.dataset("ml-prod", "claims").is_some());
    assert!(
        context
            .agent_for_service_account("ml-prod", "support-bot")
            .is_some()
    );
    assert!(
        context
            .agent_for_service_account("ml-dev", "support-bot")
            .is_none()
    );
}

#[tokio::test]
async fn workload_opt_in_follows_namespace_labels() {
    let (context, mut writers) = stores();
    assert!(context.workloads_enforced("ml-dev"));
    assert!(!context.workloads_enforced("legacy"));
    assert!(
        context.workloads_enforced("created-a-moment-ago"),
        "unknown namespaces are left to the API server's selector"
    );
    writers
        .namespaces
        .apply_watcher_event(&Event::Apply(namespace(
            "legacy",
            &[("annexa.dev/enforce", "true")],
        )));
    assert!(context.workloads_enforced("legacy"));
}

#[tokio::test]
async fn profiles_follow_policy_changes() {
    let (context, mut writers) = stores();
    assert_eq!(
        context.profile("ml-warn").default_action,
        annexa::api::Action::Warn
    );
    let (documents, _) = manifest::parse_documents(
        "p.yaml",
        "apiVersion: annexa.dev/v1alpha1\nkind: CompliancePolicy\nmetadata: {name: warn, resourceVersion: \"2\"}\nspec: {namespaceSelector: {matchLabels: {env: warn}}, enforcement: {action: Audit}}",
    );
    let Object::Policy(updated) = documents.into_iter().next().unwrap().object else {
        panic!()
    };
    writers.policies.apply_watcher_event(&Event::Apply(updated));
    assert_eq!(
        context.profile("ml-warn").default_action,
        annexa::api::Action::Audit
    );
}

#[tokio::test]
async fn readyz_waits_for_the_stores() {
    let (context, _writers) = stores();
    let router = router_over(context.clone());
    let get = |router: axum::Router| async move {
        let request = axum::http::Request::get("/readyz")
            .body(axum::body::Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(router, request)
            .await
            .unwrap()
            .status()
    };
    assert_eq!(get(router.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    context.set_synced();
    assert_eq!(get(router).await, StatusCode::OK);
}

#[test]
fn secret_round_trip() {
    let names = certs::service_dns_names("annexa-webhook", "annexa-system");
    let bundle = certs::renew(None, &names, 1_760_000_000, certs::Lifetimes::default())
        .unwrap()
        .unwrap();
    let secret = Secret {
        data: Some(certs::secret::secret_data(&bundle)),
        ..Secret::default()
    };
    assert_eq!(
        certs::secret::bundle_from_secret(&secret),
        Some(bundle.clone())
    );
    let keys: Vec<_> = secret.data.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["ca-bundle.crt", "ca.crt", "ca.key", "tls.crt", "tls.key"]
    );
    // A Secret missing a key is treated as absent (renewed from scratch).
    let mut partial = secret.clone();
    partial.data.as_mut().unwrap().remove("tls.key");
    assert_eq!(certs::secret::bundle_from_secret(&partial), None);
}

#[test]
fn ca_bundle_patch_targets_only_the_bundles_that_differ() {
    use k8s_openapi::ByteString;
    let bundle = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let current = ByteString(bundle.as_bytes().to_vec());
    let stale = ByteString(b"old".to_vec());
    let patch = certs::secret::ca_bundle_patch(
        &[
            ("kinds.annexa.dev".to_string(), Some(&stale)),
            ("workloads.annexa.dev".to_string(), Some(&current)),
            ("digest.annexa.dev".to_string(), None),
        ],
        bundle,
    )
    .unwrap();
    let ops = serde_json::to_value(&patch).unwrap();
    assert_eq!(
        ops,
        serde_json::json!([
            {"op": "test", "path": "/webhooks/0/name", "value": "kinds.annexa.dev"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": current},
            {"op": "test", "path": "/webhooks/2/name", "value": "digest.annexa.dev"},
            {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": current},
        ])
    );
    let unchanged =
        certs::secret::ca_bundle_patch(&[("kinds.annexa.dev".to_string(), Some(&current))], bundle)
            .unwrap();
    assert!(unchanged.0.is_empty(), "unchanged: no write");
}

/// An AgentPolicy for service account "shared" of namespace "team", with a creationTimestamp
/// when given (objects exported from a cluster carry one, hand-written ones do not).
fn shared_agent(name: &str, created: Option<&str>) -> String {
    let created = created
        .map(|t| format!(", creationTimestamp: \"{t}\""))
        .unwrap_or_default();
    format!(
        "apiVersion: annexa.dev/v1alpha1\nkind: AgentPolicy\nmetadata: {{name: {name}, namespace: team{created}}}\nspec:\n  serviceAccountName: shared\n"
    )
}

const SHARED_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: runner, namespace: team}\nspec:\n  serviceAccountName: shared\n  automountServiceAccountToken: false\n  containers:\n    - name: c\n      image: registry.example.com/runner@sha256:d4f0bc5a29de06b510f9aa428f1eedba926012b591fef7a518e776a7c9bd1824\n";

/// Two files list two AgentPolicies for one ServiceAccount in the order opposite to their
/// seniority: `annexa check` and the cluster's lookup (the webhook's and the audit's) name the
/// same one as governing it, the oldest, or by name when neither carries a timestamp.
#[test]
fn check_and_the_cluster_pick_the_same_agent_for_a_shared_service_account() {
    for (first, second, governing) in [
        (
            shared_agent("zeta", None),
            shared_agent("alpha", None),
            "alpha",
        ),
        (
            shared_agent("alpha", Some("2026-06-01T00:00:00Z")),
            shared_agent("zeta", Some("2026-01-01T00:00:00Z")),
            "zeta",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        std::fs::write(&a, format!("{first}---\n{SHARED_POD}")).unwrap();
        std::fs::write(&b, second).unwrap();

        let check = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
            .arg("check")
            .args([&a, &b])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&check.stdout);
        assert!(
            out.contains(&format!(
                "pod \"runner\" runs as service account \"shared\" of agent \"{governing}\""
            )),
            "{out}"
        );

        let (documents, errors) = manifest::load(&[a, b]);
        assert!(errors.is_empty(), "{errors:?}");
        let (agents, mut writer) = reflector::store();
        for document in documents {
            if let Object::Agent(agent) = document.object {
                writer.apply_watcher_event(&Event::Apply(agent));
            }
        }
        let (policies, _pw) = reflector::store::<CompliancePolicy>();
        let (datasets, _dw) = reflector::store();
        let (models, _mw) = reflector::store();
        let (approvals, _aw) = reflector::store::<ModelApproval>();
        let (namespaces, _nw) = reflector::store();
        let context = StoreContext::new(policies, datasets, models, approvals, agents, namespaces);
        let picked = context.agent_for_service_account("team", "shared").unwrap();
        assert_eq!(picked.metadata.name.as_deref(), Some(governing));
    }
}
