//! Property tests: no input makes the decoder or the engine panic. Arbitrary bytes and
//! arbitrary JSON go through `manifest::parse_documents` / `decode::decode`; valid objects
//! with arbitrary values spliced in at arbitrary places exercise the rules, and whatever
//! decodes is evaluated.

use super::parse_documents;
use crate::api::CompliancePolicy;
use crate::decode::{Object, decode};
use crate::policy::tests::agent_policy::SUPPORT_AGENT;
use crate::policy::tests::fixtures::{self, PRODUCTION, World, now};
use crate::policy::tests::model_deployment::{FRAUD, approve, dataset};
use crate::policy::{Context, Governed, Profile, evaluate, validate_policy};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Strings that mean something to the decoder and the rules.
const WORDS: &[&str] = &[
    "",
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "name",
    "namespace",
    "labels",
    "annotations",
    "annexa.dev/v1alpha1",
    "annexa.dev/v2",
    "v1",
    "apps/v1",
    "batch/v1",
    "TrainingDataset",
    "ModelDeployment",
    "ModelApproval",
    "AgentPolicy",
    "CompliancePolicy",
    "Namespace",
    "Pod",
    "Deployment",
    "CronJob",
    "Job",
    "template",
    "jobTemplate",
    "containers",
    "resources",
    "limits",
    "nvidia.com/gpu",
    "tolerations",
    "Exists",
    "Restricted",
    "Public",
    "Production",
    "Reject",
    "Approve",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.0/8",
    "*",
    "secrets",
    "1h",
    "0s",
    "9999999999999w",
    "99999999999999999999d",
    "sha256:",
    "@sha256:",
    "latest",
    "annexa.dev/classification",
    "annexa.dev/digest-requested-by",
    "creationTimestamp",
    "2025-06-01T12:00:00Z",
    "1969-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "é",
    "\u{0}",
    "日本",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_string),
        "\\PC{0,12}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(word(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Valid documents of every governed kind, to mutate.
fn seeds() -> Vec<Value> {
    let pod = r#"
apiVersion: v1
kind: Pod
metadata:
  name: trainer
  namespace: fraud
  labels:
    annexa.dev/classification: Confidential
spec:
  serviceAccountName: support-agent
  automountServiceAccountToken: true
  nodeSelector:
    annexa.dev/gpu-pool: confidential
  tolerations:
    - key: annexa.dev/gpu-pool
      operator: Equal
      value: confidential
      effect: NoSchedule
  volumes:
    - name: token
      projected:
        sources:
          - serviceAccountToken:
              expirationSeconds: 7200
    - name: host
      hostPath:
        path: /dev
  containers:
    - name: trainer
      image: registry.example.com/ml/trainer:2.1.0
      securityContext:
        privileged: true
      resources:
        limits:
          nvidia.com/gpu: 1
"#;
    let cronjob = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: fraud
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: retrain
              image: docker.io/library/python:3.12
              resources:
                requests:
                  amd.com/gpu: "2"
"#;
    let claims = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata:
  name: claims
  namespace: fraud
  creationTimestamp: "2025-05-01T00:00:00Z"
spec:
  source:
    pvc: claims-data
    sha256: sha256:0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f
  classification: Confidential
  owner: claims-data-team
  personalData:
    contains: true
    categories: [contact]
    masking: None
    justification: needed
  encryption:
    kmsKey: arn:aws:kms:eu-west-1:111122223333:key/claims
    inTransitTLS: false
    storageClass: gp2
  residency:
    region: eu-west-1
  retention:
    until: "2030-01-01T00:00:00Z"
  access:
    allowedServiceAccounts: [fraud-trainer]
  derivedFrom: [claims, raw]
"#;
    let policy = format!(
        "{PRODUCTION}  exceptions:\n    - control: A.8.22\n      kind: Pod\n      reason: test\n      expires: \"2026-01-01T00:00:00Z\"\n"
    );
    [
        pod.to_string(),
        cronjob.to_string(),
        claims.to_string(),
        FRAUD.to_string(),
        approve("alice"),
        SUPPORT_AGENT.to_string(),
        policy,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fraud\n  labels:\n    annexa.dev/enforce: \"true\"\n".to_string(),
    ]
    .iter()
    .map(|y| serde_yaml_ng::from_str(y).unwrap())
    .collect()
}

/// Every JSON pointer inside a value (including the root, "").
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[derive(Clone, Debug)]
enum Mutation {
    Replace(Index, Value),
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<Index>().prop_map(Mutation::Remove),
    ]
}

fn apply(value: &mut Value, mutation: &Mutation) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    match mutation {
        Mutation::Replace(i, new) => {
            if let Some(slot) = value.pointer_mut(i.get(&all).as_str()) {
                *slot = new.clone();
            }
        }
        Mutation::Remove(i) => {
            let pointer: &str = i.get(&all).as_str();
            if let Some((parent, key)) = pointer.rsplit_once('/') {
                let key = key.replace("~1", "/").replace("~0", "~");
                match value.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&key);
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < items.len()
                        {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Evaluates a decoded object under several profiles, with the object itself among the
/// related objects (so cross-object rules see it).
fn evaluate_everywhere(object: &Object, extra_policy: Option<&CompliancePolicy>) {
    let mut inventory = World::production()
        .with(&dataset("claims", "Restricted"))
        .with(FRAUD)
        .with(&approve("bob"))
        .with(SUPPORT_AGENT)
        .inventory;
    let mut profiles = vec![Profile::baseline(), World::production().profile];
    match object {
        Object::Dataset(d) => inventory.add_dataset(d.clone()),
        Object::Model(m) => inventory.add_model(m.clone()),
        Object::Approval(a) => inventory.add_approval(a.clone()),
        Object::Agent(a) => inventory.add_agent(a.clone()),
        Object::Policy(p) => {
            let _ = validate_policy(p);
            let labels: BTreeMap<String, String> = [(
                "annexa.dev/environment".to_string(),
                "production".to_string(),
            )]
            .into();
            profiles.push(Profile::for_namespace(&labels, [p]));
            let spec = profiles[2].to_spec();
            let _ = serde_json::to_string(&spec);
        }
        _ => {}
    }
    if let Some(p) = extra_policy {
        profiles.push(Profile::merge(&[p]));
    }
    let seeds: Vec<Object> = seeds().iter().filter_map(|s| decode(s).ok()).collect();
    for profile in &profiles {
        let ctx = Context {
            profile,
            lookup: &inventory as &dyn crate::policy::Lookup,
            now: now(),
            detail: crate::policy::Detail::Outcomes,
        };
        let mut targets: Vec<&Object> = vec![object];
        if matches!(object, Object::Policy(_)) {
            targets.extend(seeds.iter());
        }
        for target in targets {
            let governed = match target {
                Object::Dataset(d) => Governed::Dataset(d),
                Object::Model(m) => Governed::Model(m),
                Object::Approval(a) => Governed::Approval(a),
                Object::Agent(a) => Governed::Agent(a),
                Object::Workload(w) => Governed::Workload(w),
                _ => continue,
            };
            let evaluation = evaluate(governed, &ctx);
            fixtures::assert_same_findings(&evaluation, governed, &ctx);
            // Every finding names its control at the start of its message.
            for f in &evaluation.findings {
                assert!(f.message.starts_with(f.control), "{}", f.message);
            }
            let _ = evaluation.control_results();
        }
    }
}

fn check_text(text: &str) {
    let (docs, errors) = parse_documents("fuzz.yaml", text);
    for e in &errors {
        assert!(
            e.starts_with("fuzz.yaml"),
            "error does not name the file: {e}"
        );
    }
    for doc in docs.iter().take(8) {
        evaluate_everywhere(&doc.object, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_text(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_yaml_like_text_never_panics(
        parts in prop::collection::vec(
            prop_oneof![
                prop::sample::select(&["---\n", "\n", ": ", "- ", "  ", "{", "}", "[", "]", "&a ", "*a", "!!binary ", "? ", "|\n", "'", "\"", "#"][..]).prop_map(str::to_string),
                word(),
            ],
            0..64,
        )
    ) {
        check_text(&parts.concat());
    }

    #[test]
    fn arbitrary_json_never_panics(value in json()) {
        if let Ok(object) = decode(&value) {
            evaluate_everywhere(&object, None);
        }
        check_text(&value.to_string());
    }

    #[test]
    fn mutated_objects_never_panic(
        seed in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let seeds = seeds();
        let mut value = seed.get(&seeds).clone();
        for m in &mutations {
            apply(&mut value, m);
        }
        let policy = match decode(&value) {
            Ok(Object::Policy(p)) => Some(p),
            _ => None,
        };
        match decode(&value) {
            Ok(object) => evaluate_everywhere(&object, policy.as_ref()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        // The same document as YAML text through the file path.
        if let Ok(text) = serde_yaml_ng::to_string(&value) {
            check_text(&text);
        }
    }
}
