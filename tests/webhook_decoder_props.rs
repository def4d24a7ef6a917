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
}
