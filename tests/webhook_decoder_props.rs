//! The review decoder and the handlers never panic, whatever the bytes: arbitrary bytes,
//! mutated reviews, and reviews with arbitrary objects all end in an answer or a 400 message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use annexa::webhook::{admission, review};
use proptest::prelude::*;
use serde_json::{Value, json};
use webhook_support::*;

fn decide(bytes: &[u8], context: &annexa::webhook::StaticContext) {
    match review::decode(bytes) {
        Ok(request) => {
            for result in [
                admission::validate(&request, context, jiff::Timestamp::now()),
                admission::mutate(&request),
            ] {
                if let Err(e) = result {
                    assert!(!e.message.is_empty());
                }
            }
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
}

fn base() -> Value {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml-prod"},
        "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}});
    review("CREATE", "alice", &pod, None)
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9./:-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("kind".to_string()),
                    Just("apiVersion".to_string()),
                    Just("metadata".to_string()),
                    Just("spec".to_string()),
                    Just("name".to_string()),
                    Just("namespace".to_string()),
                    Just("containers".to_string()),
                    Just("template".to_string()),
                    Just("model".to_string()),
                    Just("digest".to_string()),
                    Just("annotations".to_string()),
                    "[a-z]{1,6}".prop_map(|s| s),
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        decide(&bytes, &context());
    }

    #[test]
    fn truncated_and_flipped_reviews_never_panic(cut in 0usize..2000, flip in 0usize..2000, byte in any::<u8>()) {
        let mut bytes = serde_json::to_vec(&base()).unwrap();
        if flip < bytes.len() { bytes[flip] = byte; }
        bytes.truncate(cut.min(bytes.len()));
        decide(&bytes, &context());
    }

    #[test]
    fn arbitrary_objects_of_every_kind_never_panic(
        object in arbitrary_json(),
        old in arbitrary_json(),
        kind in prop::sample::select(vec![
            ("", "Pod"), ("apps", "Deployment"), ("batch", "CronJob"), ("annexa.dev", "ModelDeployment"),
            ("annexa.dev", "ModelApproval"), ("annexa.dev", "TrainingDataset"), ("annexa.dev", "AgentPolicy"),
            ("annexa.dev", "CompliancePolicy"),
        ]),
        operation in prop::sample::select(vec!["CREATE", "UPDATE", "DELETE"]),
    ) {
        let mut rv = base();
        rv["request"]["kind"] = json!({"group": kind.0, "version": if kind.0 == "annexa.dev" { "v1alpha1" } else { "v1" }, "kind": kind.1});
        rv["request"]["operation"] = json!(operation);
        rv["request"]["object"] = object;
        rv["request"]["oldObject"] = old;
        decide(&serde_json::to_vec(&rv).unwrap(), &context());
    }

    /// Valid objects of every kind with one field replaced by arbitrary JSON: the decoder and
    /// the rules see nearly-right objects, the likeliest bad input from a real API server.
    #[test]
    fn valid_objects_with_one_arbitrary_field_never_panic(
        which in 0usize..8,
        field in 0usize..64,
        value in arbitrary_json(),
        replace in any::<bool>(),
        operation in prop::sample::select(vec!["CREATE", "UPDATE"]),
        user in prop::sample::select(vec!["alice", "bob", "carol", ""]),
    ) {
        let object = valid_objects().swap_remove(which);
        let mut changed = object.clone();
        if replace {
            let paths = leaf_paths(&changed);
            let path = &paths[field % paths.len()];
            if let Some(slot) = changed.pointer_mut(path) {
                *slot = value;
            }
        }
        let rv = review(operation, user, &changed, (operation == "UPDATE").then_some(&object));
        decide(&serde_json::to_vec(&rv).unwrap(), &context());
    }
}

fn valid_objects() -> Vec<Value> {
    let pod_spec = json!({"containers": [{"name": "c", "image": "registry.example.com/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "resources": {"limits": {"nvidia.com/gpu": "1"}}, "securityContext": {"privileged": false}}],
        "nodeSelector": {"annexa.dev/gpu-pool": "internal"},
        "tolerations": [{"key": "annexa.dev/gpu-pool", "operator": "Equal", "value": "internal", "effect": "NoSchedule"}],
        "serviceAccountName": "support-bot", "automountServiceAccountToken": false,
        "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 600}}]}}]});
    let template = json!({"metadata": {"labels": {"annexa.dev/classification": "Internal"}}, "spec": pod_spec});
    let meta = json!({"name": "x", "namespace": "ml-prod", "annotations": {"annexa.dev/digest-requested-by": "bob"}});
    vec![
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {"template": template}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}}),
        json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "ModelDeployment", "metadata": meta, "spec": {
            "model": {"name": "m", "version": "1.0.0", "uri": "s3://m", "digest": D1, "kmsKey": "k"},
            "image": "registry.example.com/serve:1", "trainingDatasets": ["claims"], "resources": {"gpus": 1},
            "serving": {"tlsSecret": "t"}, "network": {"allowedFrom": [{"namespaceSelector": {}}]}}}),
        json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "ModelApproval", "metadata": meta, "spec": {
            "modelDeployment": "llm", "digest": D1, "decision": "Reject", "reason": "no", "approver": {"username": "carol", "groups": ["ml"]}}}),
        json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "TrainingDataset", "metadata": meta, "spec": {
            "source": {"uri": "s3://d", "sha256": SHA}, "classification": "Restricted", "owner": "o",
            "personalData": {"contains": true, "categories": ["health"], "masking": "None", "justification": "j"},
            "residency": {"region": "eu-west-1"}, "retention": {"period": "30d", "onExpiry": "Delete"},
            "derivedFrom": ["claims", "missing"], "access": {"allowedServiceAccounts": ["t"]}}}),
        json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "AgentPolicy", "metadata": meta, "spec": {
            "serviceAccountName": "bot", "tokenTTL": "2h",
            "permissions": [{"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["get", "escalate"]}],
            "egress": [{"cidr": "0.0.0.0/0", "ports": [443], "protocol": "TCP"}]}}),
        json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "CompliancePolicy", "metadata": {"name": "p"}, "spec": {
            "namespaceSelector": {"matchLabels": {"env": "prod"}}, "environment": "Production",
            "enforcement": {"action": "Warn", "overrides": [{"control": "A.8.9", "action": "Enforce"}]},
            "promotion": {"requiredApprovals": 2, "approvalTTL": "7d"}, "agents": {"maxTokenTTL": "1h"}}}),
    ]
}

/// JSON pointers of every node of a value (objects, arrays and leaves).
fn leaf_paths(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    walk(
                        v,
                        format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}
