//! Shared fixtures for the webhook tests: a stand-alone context, AdmissionReview builders and
//! an in-process client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use annexa::manifest;
use annexa::webhook::{Limits, Metrics, StaticContext, WebhookState, server};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
/// The release fingerprint of `llm` in [`CONTEXT`] (the `context_records_the_llm_release` test
/// checks it against the API types), as the mutating webhook recorded it for bob.
pub const LLM_RELEASE: &str =
    "sha256:7a6257e75c3b9e7b340372ceb39f4bc5e95f95d452c0221e39f01df13544e147";
/// UID of `llm` in [`CONTEXT`].
pub const LLM_UID: &str = "3f9d2c1a-llm";
pub const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Namespaces: `ml-prod` (Production, Enforce), `ml-warn` (Warn), `ml-audit` (Audit),
/// `ml-dev` (no policy: baseline), all opted in to workload checks; `legacy` is not.
pub const CONTEXT: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: ml-prod, labels: {annexa.dev/enforce: "true", env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ml-warn, labels: {annexa.dev/enforce: "true", env: warn}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ml-audit, labels: {annexa.dev/enforce: "true", env: audit}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ml-dev, labels: {annexa.dev/enforce: "true"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: production}
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  environment: Production
  enforcement: {action: Enforce}
  images: {allowedRegistries: [registry.example.com]}
  promotion: {requiredApprovals: 2}
---
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: warn}
spec:
  namespaceSelector: {matchLabels: {env: warn}}
  enforcement: {action: Warn}
  images: {allowedRegistries: [registry.example.com]}
---
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: audit}
spec:
  namespaceSelector: {matchLabels: {env: audit}}
  enforcement: {action: Audit}
  images: {allowedRegistries: [registry.example.com]}
---
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims, namespace: ml-prod}
spec:
  source: {uri: "s3://data/claims", sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
  classification: Confidential
  owner: data-team
  encryption: {kmsKey: "arn:aws:kms:eu-west-1:1:key/claims"}
  access: {allowedServiceAccounts: [trainer]}
  retention: {period: 90d, onExpiry: Delete}
---
apiVersion: annexa.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: llm
  namespace: ml-prod
  uid: 3f9d2c1a-llm
  annotations: {annexa.dev/digest-requested-by: bob, annexa.dev/requested-release: "sha256:7a6257e75c3b9e7b340372ceb39f4bc5e95f95d452c0221e39f01df13544e147"}
spec:
  model: {name: llm, version: "1.0.0", uri: "s3://models/llm", digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111", kmsKey: "arn:aws:kms:eu-west-1:1:key/llm"}
  image: "registry.example.com/serve@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  trainingDatasets: [claims]
  serving: {tlsSecret: llm-tls}
---
apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata: {name: support-bot, namespace: ml-prod}
spec:
  serviceAccountName: support-bot
  tokenTTL: 1h
  permissions:
  - {apiGroups: [""], resources: [configmaps], verbs: [get]}
  egress:
  - {cidr: 10.0.0.0/8, ports: [443], protocol: TCP}
"#;

pub fn context() -> StaticContext {
    let (documents, errors) = manifest::parse_documents("context.yaml", CONTEXT);
    assert!(errors.is_empty(), "{errors:?}");
    StaticContext::from_documents(documents)
}

pub fn state() -> Arc<WebhookState> {
    Arc::new(WebhookState {
        context: Arc::new(context()),
        metrics: Arc::new(Metrics::new()),
        limits: Limits::default(),
        access: None,
    })
}

pub fn router() -> Router {
    server::router(state())
}

/// An AdmissionReview for `object` (kind and group from the object itself).
pub fn review(operation: &str, user: &str, object: &Value, old: Option<&Value>) -> Value {
    let source = if object.is_null() {
        old.unwrap_or(object)
    } else {
        object
    };
    let api_version = source["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": source["kind"]},
            "resource": {"group": group, "version": version, "resource": "things"},
            "name": source["metadata"]["name"],
            "namespace": source["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old.cloned().unwrap_or(Value::Null),
            "dryRun": false,
        }
    })
}

/// Parses YAML into JSON (fixtures are easier to read as YAML).
pub fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("fixture YAML")
}

pub async fn post(router: &Router, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// Sends a review to `/validate` and returns its `response`.
pub async fn validate(router: &Router, review: &Value) -> Value {
    let (status, body) = post(router, "/validate", serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(body["response"]["uid"], review["request"]["uid"]);
    body["response"].clone()
}

pub async fn mutate(router: &Router, review: &Value) -> Value {
    let (status, body) = post(router, "/mutate", serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["response"].clone()
}

/// The deny message of a response (panics when it was admitted).
pub fn denial(response: &Value) -> String {
    assert_eq!(response["allowed"], false, "expected a denial: {response}");
    assert_eq!(response["status"]["code"], 403, "{response}");
    response["status"]["message"].as_str().unwrap().to_string()
}

pub fn warnings(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

pub fn admitted_clean(response: &Value) {
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("warnings").is_none(), "{response}");
    assert!(response.get("patch").is_none(), "{response}");
}
