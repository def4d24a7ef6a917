//! The mutating webhook: `annexa.dev/digest-requested-by` is set from the request's user when
//! the release is new or changed and restored from the old object otherwise, so nobody can
//! forge it; `annexa.dev/requested-release` records which release (its fingerprint). Nothing
//! else is ever patched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use base64::Engine as _;
use serde_json::{Value, json};
use webhook_support::*;

const KEY: &str = "annexa.dev/digest-requested-by";
const RELEASE: &str = "annexa.dev/requested-release";

/// The release fingerprint of `model(digest, ..)`, computed by the API types.
fn fingerprint(digest: &str) -> String {
    let m: annexa::api::ModelDeployment = serde_json::from_value(model(digest, None)).unwrap();
    m.spec.release().fingerprint()
}

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

/// A model whose requester the webhook recorded for its current release.
fn recorded(digest: &str, user: &str) -> Value {
    let mut m = model(digest, Some(user));
    m["metadata"]["annotations"][RELEASE] = json!(fingerprint(digest));
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
        json!([{"op": "add", "path": "/metadata/annotations", "value": {KEY: "alice", RELEASE: fingerprint(D1)}}])
    );
    assert_eq!(requested_by(&object), Some("alice"));
}

#[tokio::test]
async fn create_overwrites_a_forged_requester() {
    let (object, patch) = mutated("CREATE", "alice", &model(D1, Some("bob")), None).await;
    assert_eq!(
        patch.unwrap(),
        json!([
            {"op": "add", "path": "/metadata/annotations/annexa.dev~1digest-requested-by", "value": "alice"},
            {"op": "add", "path": "/metadata/annotations/annexa.dev~1requested-release", "value": fingerprint(D1)}
        ])
    );
    assert_eq!(requested_by(&object), Some("alice"));
    // Only the annotations changed.
    assert_eq!(object, recorded(D1, "alice"));
}

#[tokio::test]
async fn a_changed_digest_is_recorded_for_the_new_requester() {
    let old = recorded(D1, "bob");
    let (object, _) = mutated(
        "UPDATE",
        "alice",
        &recorded(D1, "bob").tap_digest(D2),
        Some(&old),
    )
    .await;
    assert_eq!(requested_by(&object), Some("alice"));
    assert_eq!(
        object["metadata"]["annotations"][RELEASE],
        json!(fingerprint(D2))
    );
}

/// Any field that reaches the pod template is part of the release: changing only the image
/// records a new requester, changing only the scale does not.
#[tokio::test]
async fn a_changed_image_is_a_new_release_and_the_scale_is_not() {
    let old = recorded(D1, "bob");
    let mut image = old.clone();
    image["spec"]["image"] = json!("registry.example.com/serve:2");
    let (object, _) = mutated("UPDATE", "alice", &image, Some(&old)).await;
    assert_eq!(requested_by(&object), Some("alice"));
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    let (_, patch) = mutated("UPDATE", "alice", &scaled, Some(&old)).await;
    assert!(patch.is_none(), "{patch:?}");
}

trait TapDigest {
    fn tap_digest(self, digest: &str) -> Value;
}

impl TapDigest for Value {
    fn tap_digest(mut self, digest: &str) -> Value {
        self["spec"]["model"]["digest"] = json!(digest);
        self
    }
}

#[tokio::test]
async fn an_unchanged_digest_keeps_its_requester() {
    let old = recorded(D1, "bob");
    // Nothing to do: no patch at all.
    let (_, patch) = mutated("UPDATE", "alice", &recorded(D1, "bob"), Some(&old)).await;
    assert!(patch.is_none());
    // Forged: put back.
    let (object, _) = mutated("UPDATE", "carol", &recorded(D1, "carol"), Some(&old)).await;
    assert_eq!(requested_by(&object), Some("bob"));
    // Removed (with the whole annotations map): put back.
    let (object, _) = mutated("UPDATE", "carol", &model(D1, None), Some(&old)).await;
    assert_eq!(requested_by(&object), Some("bob"));
    assert_eq!(
        object["metadata"]["annotations"][RELEASE],
        json!(fingerprint(D1))
    );
}

#[tokio::test]
async fn an_unrecorded_requester_cannot_be_invented() {
    // Objects admitted before the webhook existed (or while it was down) have no requester for
    // their release; an update that keeps the release cannot name someone else as requester.
    for old in [model(D1, None), model(D1, Some("bob"))] {
        let (object, patch) =
            mutated("UPDATE", "carol", &model(D1, Some("dave")), Some(&old)).await;
        assert_eq!(
            patch.unwrap(),
            json!([{"op": "remove", "path": "/metadata/annotations/annexa.dev~1digest-requested-by"}])
        );
        assert_eq!(requested_by(&object), None);
        assert_eq!(object["metadata"]["annotations"]["other"], "kept");
    }
}

#[tokio::test]
async fn an_unrecorded_release_can_be_claimed_only_by_oneself() {
    // The documented procedure: whoever requested the release sets the annotation to their own
    // name; that only ever excludes them from approving it.
    let old = model(D1, None);
    let (object, _) = mutated("UPDATE", "carol", &model(D1, Some("carol")), Some(&old)).await;
    assert_eq!(requested_by(&object), Some("carol"));
    assert_eq!(
        object["metadata"]["annotations"][RELEASE],
        json!(fingerprint(D1))
    );
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
