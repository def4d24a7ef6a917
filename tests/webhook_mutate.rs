//! The mutating webhook: `annexa.dev/digest-requested-by` is set from the request's user when
//! the digest is new or changed and restored from the old object otherwise, so nobody can
//! forge it; nothing else is ever patched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use base64::Engine as _;
use serde_json::{Value, json};
use webhook_support::*;

const KEY: &str = "annexa.dev/digest-requested-by";

fn model(digest: &str, requested_by: Option<&str>) -> Value {
    let mut m = json!({
        "apiVersion": "annexa.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "llm", "namespace": "ml-prod", "labels": {"app": "llm"}},
        "spec": {"model": {"name": "llm", "version": "1.0.0", "digest": digest}, "image": "registry.example.com/serve:1"}
    });
    if let Some(user) = requested_by {
        m["metadata"]["annotations"] = json!({KEY: user, "other": "kept"});
    }
    m
}

/// Runs the mutating webhook and returns the patched object (and the raw patch).
async fn mutated(
    operation: &str,
    user: &str,
    object: &Value,
    old: Option<&Value>,
) -> (Value, Option<Value>) {
    let response = mutate(&router(), &review(operation, user, object, old)).await;
    assert_eq!(response["allowed"], true, "{response}");
    let Some(patch) = response["patch"].as_str() else {
        assert!(response.get("patchType").is_none());
        return (object.clone(), None);
    };
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .unwrap();
    let patch: Value = serde_json::from_slice(&bytes).unwrap();
    let ops: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
    let mut result = object.clone();
    json_patch::patch(&mut result, &ops).unwrap();
    (result, Some(patch))
}

fn requested_by(object: &Value) -> Option<&str> {
    object["metadata"]["annotations"][KEY].as_str()
}

#[tokio::test]
async fn create_records_the_requester_even_without_annotations() {
    let (object, patch) = mutated("CREATE", "alice", &model(D1, None), None).await;
    assert_eq!(
        patch.unwrap(),
        json!([{"op": "add", "path": "/metadata/annotations", "value": {KEY: "alice"}}])
    );
    assert_eq!(requested_by(&object), Some("alice"));
}

#[tokio::test]
async fn create_overwrites_a_forged_requester() {
    let (object, patch) = mutated("CREATE", "alice", &model(D1, Some("bob")), None).await;
    assert_eq!(
        patch.unwrap(),
        json!([{"op": "add", "path": "/metadata/annotations/annexa.dev~1digest-requested-by", "value": "alice"}])
    );
    assert_eq!(requested_by(&object), Some("alice"));
    // Only the annotation changed.
    let mut expected = model(D1, Some("alice"));
    expected["metadata"]["annotations"]["other"] = json!("kept");
    assert_eq!(object, expected);
}

#[tokio::test]
async fn a_changed_digest_is_recorded_for_the_new_requester() {
    let old = model(D1, Some("bob"));
    let (object, _) = mutated("UPDATE", "alice", &model(D2, Some("bob")), Some(&old)).await;
    assert_eq!(requested_by(&object), Some("alice"));
}

#[tokio::test]
async fn an_unchanged_digest_keeps_its_requester() {
    let old = model(D1, Some("bob"));
    // Nothing to do: no patch at all.
    let (_, patch) = mutated("UPDATE", "alice", &model(D1, Some("bob")), Some(&old)).await;
    assert!(patch.is_none());
    // Forged: put back.
    let (object, _) = mutated("UPDATE", "carol", &model(D1, Some("carol")), Some(&old)).await;
    assert_eq!(requested_by(&object), Some("bob"));
    // Removed (with the whole annotations map): put back.
    let (object, _) = mutated("UPDATE", "carol", &model(D1, None), Some(&old)).await;
    assert_eq!(requested_by(&object), Some("bob"));
}

#[tokio::test]
async fn an_unrecorded_requester_cannot_be_invented() {
    // Objects admitted before the webhook existed have no requester; an update that keeps the
    // digest cannot claim one.
    let old = model(D1, None);
    let (object, patch) = mutated("UPDATE", "carol", &model(D1, Some("carol")), Some(&old)).await;
    assert_eq!(
        patch.unwrap(),
        json!([{"op": "remove", "path": "/metadata/annotations/annexa.dev~1digest-requested-by"}])
    );
    assert_eq!(requested_by(&object), None);
    assert_eq!(object["metadata"]["annotations"]["other"], "kept");
}

#[tokio::test]
async fn other_kinds_and_operations_are_never_patched() {
    let dataset = json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "TrainingDataset", "metadata": {"name": "d", "namespace": "ml-prod", "annotations": {KEY: "x"}}, "spec": {}});
    assert!(mutated("CREATE", "alice", &dataset, None).await.1.is_none());
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml-prod"}, "spec": {"containers": []}});
    assert!(mutated("CREATE", "alice", &pod, None).await.1.is_none());
    let response = mutate(
        &router(),
        &review(
            "DELETE",
            "alice",
            &Value::Null,
            Some(&model(D1, Some("bob"))),
        ),
    )
    .await;
    admitted_clean(&response);
}
