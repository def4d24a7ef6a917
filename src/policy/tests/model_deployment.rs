//! ModelDeployment: A.5.9, A.5.12 (classification inherited from datasets), A.8.9, A.8.19,
//! A.8.22, A.8.24, A.8.31, and the promotion gate (A.8.32, A.5.3) over ModelApprovals.

use super::fixtures::*;
use crate::api::Action::{Audit, Enforce, Warn};
use crate::api::ControlOutcome::{Fail, NotApplicable, Pass};
use crate::api::{Classification, ModelDeployment};
use crate::policy::model_deployment::{Ignored, classification, promotion};
use std::sync::Arc;

const CONTROLS: &[&str] = &[
    "A.5.3", "A.5.9", "A.5.12", "A.8.3", "A.8.9", "A.8.19", "A.8.22", "A.8.24", "A.8.31", "A.8.32",
];

/// A production model requested by alice, trained on the Confidential `claims` dataset.
pub const FRAUD: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: fraud-detection
  namespace: fraud
  uid: 6f1c2a4e-fraud-detection
  annotations:
    annexa.dev/digest-requested-by: alice
    annexa.dev/requested-release: CURRENT
spec:
  model:
    name: fraud-detection
    version: 3.2.0
    uri: s3://models-eu/fraud-detection/3.2.0/
    digest: sha256:a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4
    kmsKey: arn:aws:kms:eu-west-1:111122223333:key/models
  image: registry.example.com/ml/triton-serving@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c
  trainingDatasets: [claims]
  replicas: 2
  resources:
    gpus: 1
    cpu: "4"
    memory: 16Gi
  serving:
    port: 8443
    tlsSecret: fraud-detection-tls
  network:
    allowedFrom:
      - namespaceSelector:
          matchLabels:
            kubernetes.io/metadata.name: claims-api
        podSelector:
          matchLabels:
            app: claims-api
"#;

pub fn dataset(name: &str, classification: &str) -> String {
    format!(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata:
  name: {name}
  namespace: fraud
spec:
  source:
    uri: s3://datasets-eu/{name}/
  classification: {classification}
"#
    )
}

/// A ModelApproval of `fraud-detection`; `created` is hours relative to now (None: not set).
pub fn approval(
    name: &str,
    approver: &str,
    groups: &[&str],
    digest: &str,
    decision: &str,
    created_hours_ago: Option<i64>,
    reason: Option<&str>,
) -> String {
    let created = created_hours_ago
        .map(|h| format!("  creationTimestamp: \"{}\"\n", hours_from_now(-h)))
        .unwrap_or_default();
    let reason = reason
        .map(|r| format!("  reason: {r}\n"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: ModelApproval
metadata:
  name: {name}
  namespace: fraud
{created}spec:
  modelDeployment: fraud-detection
  modelUID: 6f1c2a4e-fraud-detection
  release:
    fingerprint: {digest}
    digest: {digest}
  decision: {decision}
{reason}  approver:
    username: {approver}
    groups: {groups:?}
"#
    )
}

/// A fresh approval of the current digest by a reviewer.
pub fn approve(approver: &str) -> String {
    approval(
        &format!("fraud-detection-{approver}"),
        approver,
        &["ml-reviewers"],
        DIGEST,
        "Approve",
        Some(24),
        None,
    )
}

/// The release fingerprint of a model fixture.
pub fn release_of(yaml: &str) -> String {
    match object(yaml) {
        Object::Model(m) => m.spec.release().fingerprint(),
        other => panic!("not a model: {other:?}"),
    }
}

/// A fresh approval of one release by a reviewer.
pub fn approve_release(approver: &str, release: &str) -> String {
    approval(
        &format!("fraud-detection-{approver}"),
        approver,
        &["ml-reviewers"],
        release,
        "Approve",
        Some(24),
        None,
    )
}

pub fn production_with(related: &[String]) -> World {
    related.iter().fold(
        World::production().with(&dataset("claims", "Confidential")),
        |w, y| w.with(y),
    )
}

#[test]
fn approved_production_model_passes_every_control() {
    let world = production_with(&[approve("bob"), approve("carol")]);
    let e = world.eval(FRAUD);
    assert_clean(&e, CONTROLS);
    for control in CONTROLS {
        assert_outcome(&e, control, Pass);
    }
    assert_outcome_message(
        &e,
        "A.5.12",
        Pass,
        "classified Confidential from its training datasets",
    );
    assert_outcome_message(
        &e,
        "A.8.32",
        Pass,
        &format!(
            "2 of 2 approvals for release {}",
            &fraud_release(DIGEST)[..19]
        ),
    );
    assert_outcome_message(
        &e,
        "A.5.3",
        Pass,
        &format!(
            "release {} requested by alice",
            &fraud_release(DIGEST)[..19]
        ),
    );
}

#[test]
fn each_rule_fails_on_the_field_that_breaks_it() {
    let cases: &[Case<'_>] = &[
        (
            "a training dataset that does not exist",
            &[(
                "trainingDatasets: [claims]",
                "trainingDatasets: [claims, claims-2024]",
            )],
            &[
                (
                    "A.5.9",
                    "spec.trainingDatasets[1]",
                    Warn,
                    r#"A.5.9 Inventory of information and other associated assets: model "fraud-detection" trains on dataset "claims-2024", which does not exist in namespace "fraud""#,
                ),
                (
                    "A.5.12",
                    "spec.trainingDatasets",
                    Warn,
                    r#"A.5.12 Classification of information: model "fraud-detection" cannot be classified: datasets ["claims-2024"] are missing"#,
                ),
            ],
        ),
        (
            "an image outside the allowed registries",
            &[(
                "image: registry.example.com/ml/",
                "image: docker.io/nvidia/",
            )],
            &[(
                "A.8.19",
                "spec.image",
                Enforce,
                r#"A.8.19 Installation of software on operational systems: model "fraud-detection" serves image "docker.io/nvidia/triton-serving@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c", which is not from an allowed registry ["registry.example.com/"]"#,
            )],
        ),
        (
            "a registry that only starts like an allowed one",
            &[(
                "image: registry.example.com/ml/",
                "image: registry.example.com.evil.io/ml/",
            )],
            &[(
                "A.8.19",
                "spec.image",
                Enforce,
                r#"A.8.19 Installation of software on operational systems: model "fraud-detection" serves image "registry.example.com.evil.io/ml/triton-serving@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c", which is not from an allowed registry ["registry.example.com/"]"#,
            )],
        ),
        (
            "weights without a source",
            &[("    uri: s3://models-eu/fraud-detection/3.2.0/\n", "")],
            &[(
                "A.8.19",
                "spec.model.uri",
                Enforce,
                r#"A.8.19 Installation of software on operational systems: model "fraud-detection" does not say where its weights come from (spec.model.uri)"#,
            )],
        ),
        (
            "an image pinned by tag only in Production",
            &[(
                "triton-serving@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c",
                "triton-serving:24.05",
            )],
            &[(
                "A.8.9",
                "spec.image",
                Enforce,
                r#"A.8.9 Configuration management: model "fraud-detection" serves image "registry.example.com/ml/triton-serving:24.05", which is not pinned by digest (@sha256:) as Production requires"#,
            )],
        ),
        (
            "a latest image in Production",
            &[(
                "triton-serving@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c",
                "triton-serving:latest",
            )],
            &[
                (
                    "A.8.9",
                    "spec.image",
                    Enforce,
                    r#"A.8.9 Configuration management: model "fraud-detection" serves image "registry.example.com/ml/triton-serving:latest", which is not pinned by digest (@sha256:) as Production requires"#,
                ),
                (
                    "A.8.31",
                    "spec.image",
                    Enforce,
                    r#"A.8.31 Separation of development, test and production environments: model "fraud-detection" image "registry.example.com/ml/triton-serving:latest" has a mutable reference (latest or no tag) in Production"#,
                ),
            ],
        ),
        (
            "a version that is not a release",
            &[("version: 3.2.0", "version: 3.3.0-SNAPSHOT")],
            &[(
                "A.8.31",
                "spec.model.version",
                Enforce,
                r#"A.8.31 Separation of development, test and production environments: model "fraud-detection" version "3.3.0-SNAPSHOT" is not a release and cannot serve in Production"#,
            )],
        ),
        (
            "version latest",
            &[("version: 3.2.0", "version: latest")],
            &[(
                "A.8.31",
                "spec.model.version",
                Enforce,
                r#"A.8.31 Separation of development, test and production environments: model "fraud-detection" version "latest" is not a release and cannot serve in Production"#,
            )],
        ),
        (
            "traffic from every namespace",
            &[(
                "      - namespaceSelector:\n          matchLabels:\n            kubernetes.io/metadata.name: claims-api\n        podSelector:\n          matchLabels:\n            app: claims-api\n",
                "      - namespaceSelector: {}\n",
            )],
            &[(
                "A.8.22",
                "spec.network.allowedFrom[0]",
                Enforce,
                r#"A.8.22 Segregation of networks: model "fraud-detection" admits traffic from every pod in every namespace"#,
            )],
        ),
        (
            "an allowedFrom entry without selectors",
            &[("    allowedFrom:\n", "    allowedFrom:\n      - {}\n")],
            &[(
                "A.8.22",
                "spec.network.allowedFrom[0]",
                Enforce,
                r#"A.8.22 Segregation of networks: model "fraud-detection" has an allowedFrom entry without a namespaceSelector or podSelector"#,
            )],
        ),
        (
            "a GPU resource the policy does not count",
            &[(
                "    gpus: 1\n",
                "    gpus: 1\n    gpuResourceName: intel.com/gpu\n",
            )],
            &[(
                "A.8.22",
                "spec.resources.gpuResourceName",
                Enforce,
                r#"A.8.22 Segregation of networks: model "fraud-detection" requests "intel.com/gpu", which the policy does not count as a GPU (["nvidia.com/gpu", "nvidia.com/gpu.*", "nvidia.com/mig-*", "amd.com/gpu", "gpu.intel.com/*"])"#,
            )],
        ),
        (
            "Confidential weights without a KMS key",
            &[(
                "    kmsKey: arn:aws:kms:eu-west-1:111122223333:key/models\n",
                "",
            )],
            &[(
                "A.8.24",
                "spec.model.kmsKey",
                Enforce,
                r#"A.8.24 Use of cryptography: model "fraud-detection" is Confidential and its weights have no KMS key"#,
            )],
        ),
        (
            "a KMS key outside the allowed prefixes",
            &[(
                "kmsKey: arn:aws:kms:eu-west-1:",
                "kmsKey: arn:aws:kms:us-east-1:",
            )],
            &[(
                "A.8.24",
                "spec.model.kmsKey",
                Enforce,
                r#"A.8.24 Use of cryptography: model "fraud-detection" uses KMS key "arn:aws:kms:us-east-1:111122223333:key/models", which matches none of the allowed prefixes ["arn:aws:kms:eu-west-1:"]"#,
            )],
        ),
        (
            "Confidential model served without TLS",
            &[("    tlsSecret: fraud-detection-tls\n", "")],
            &[(
                "A.8.24",
                "spec.serving.tlsSecret",
                Enforce,
                r#"A.8.24 Use of cryptography: model "fraud-detection" is Confidential and does not serve over TLS"#,
            )],
        ),
    ];
    for (name, edits, expected) in cases {
        // Approved as edited: only the control under test fails.
        let edited = edit(FRAUD, edits);
        let world = production_with(&[
            approve_release("bob", &release_of(&edited)),
            approve_release("carol", &release_of(&edited)),
        ]);
        let e = world.eval(&edited);
        assert_eq!(e.outcomes.len(), CONTROLS.len(), "{name}");
        assert_findings(&e, expected);
    }
}

#[test]
fn a_model_inherits_restricted_from_one_of_its_datasets() {
    let restricted = edit(
        FRAUD,
        &[(
            "trainingDatasets: [claims]",
            "trainingDatasets: [claims, chargebacks]",
        )],
    );
    let world = production_with(&[
        approve_release("bob", &release_of(&restricted)),
        approve_release("carol", &release_of(&restricted)),
    ])
    .with(&dataset("chargebacks", "Restricted"));

    let Object::Model(model) = object(&restricted) else {
        panic!("not a model")
    };
    assert_eq!(
        classification(&model, &world.inventory),
        (Classification::Restricted, vec![])
    );

    let e = world.eval(&restricted);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_outcome_message(
        &e,
        "A.5.12",
        Pass,
        "classified Restricted from its training datasets",
    );

    // Restricted weights need a key like Confidential ones, and the message says Restricted.
    let e = world.eval(&edit(
        &restricted,
        &[(
            "    kmsKey: arn:aws:kms:eu-west-1:111122223333:key/models\n",
            "",
        )],
    ));
    assert_findings(
        &e,
        &[(
            "A.8.24",
            "spec.model.kmsKey",
            Enforce,
            r#"A.8.24 Use of cryptography: model "fraud-detection" is Restricted and its weights have no KMS key"#,
        )],
    );

    // A policy with no pool for Restricted data (or stricter) cannot place the model's GPUs.
    let no_restricted_pool = edit(
        PRODUCTION,
        &[(
            "      - classification: Restricted\n        nodeSelector:\n          gpu.example.com/pool: restricted\n        taint:\n          key: gpu.example.com/pool\n          value: restricted\n          effect: NoSchedule\n        runtimeClassName: kata-nvidia\n",
            "",
        )],
    );
    let world = [
        dataset("claims", "Confidential"),
        dataset("chargebacks", "Restricted"),
        approve_release("bob", &release_of(&restricted)),
        approve_release("carol", &release_of(&restricted)),
    ]
    .iter()
    .fold(World::with_policies(&[&no_restricted_pool]), |w, y| {
        w.with(y)
    });
    assert_findings(
        &world.eval(&restricted),
        &[(
            "A.8.22",
            "spec.resources.gpus",
            Enforce,
            r#"A.8.22 Segregation of networks: model "fraud-detection" is Restricted and requests GPUs, but no GPU pool serves Restricted or stricter data"#,
        )],
    );
    // The Confidential model still lands on the Confidential pool of that policy.
    let e = world.eval(FRAUD);
    assert!(
        e.findings.iter().all(|f| f.control != "A.8.22"),
        "{:?}",
        e.findings
    );
    assert_outcome(&e, "A.8.22", Pass);
}

#[test]
fn a_model_without_datasets_is_treated_as_confidential() {
    // Unknown lineage must not escape encryption: the model is classified Confidential.
    let e = World::baseline().eval(&edit(FRAUD, &[("  trainingDatasets: [claims]\n", "")]));
    assert_outcome_message(
        &e,
        "A.5.12",
        Pass,
        "no training datasets declared: classified Confidential (unknown lineage)",
    );
    assert_ne!(e.outcome("A.8.24").unwrap().result, NotApplicable);
}

#[test]
fn development_and_staging_rules() {
    let tagged = edit(
        FRAUD,
        &[
            (
                "triton-serving@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c",
                "triton-serving:24.05",
            ),
            ("version: 3.2.0", "version: 3.3.0-dev"),
        ],
    );
    // Development (the baseline): no digest, no release, no approvals required.
    let e = World::baseline()
        .with(&dataset("claims", "Confidential"))
        .eval(&tagged);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_outcome_message(&e, "A.8.31", NotApplicable, "Development environment");
    assert_outcome_message(
        &e,
        "A.8.32",
        NotApplicable,
        "Development requires no approvals",
    );
    assert_outcome_message(
        &e,
        "A.5.3",
        NotApplicable,
        "Development requires no approvals",
    );

    // Staging with requireDigest: the policy (not the environment) requires the digest.
    let staging = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: staging
spec:
  environment: Staging
  images:
    requireDigest: true
"#;
    let e = World::with_policies(&[staging])
        .with(&dataset("claims", "Confidential"))
        .eval(&tagged);
    assert_findings(
        &e,
        &[
            (
                "A.8.9",
                "spec.image",
                Enforce,
                r#"A.8.9 Configuration management: model "fraud-detection" serves image "registry.example.com/ml/triton-serving:24.05", which is not pinned by digest (@sha256:) as the policy requires"#,
            ),
            (
                "A.8.31",
                "spec.model.version",
                Enforce,
                r#"A.8.31 Separation of development, test and production environments: model "fraud-detection" version "3.3.0-dev" is not a release and cannot serve in Staging"#,
            ),
        ],
    );
    assert_outcome_message(&e, "A.8.32", NotApplicable, "Staging requires no approvals");
}

/// The promotion gate: which approvals count for the digest in the spec.
#[test]
fn promotion_gate_counts_only_valid_distinct_approvals() {
    let held = |n: u32| {
        format!(
            r#"A.8.32 Change management: rollout of release {} (digest sha256:a1b2c3d4a1b2) of model "fraud-detection" is held: {n} of 2 approvals"#,
            &fraud_release(DIGEST)[..19]
        )
    };
    let ago = |who: &str, hours: i64| {
        approval(
            &format!("fraud-detection-{who}"),
            who,
            &["ml-reviewers"],
            DIGEST,
            "Approve",
            Some(hours),
            None,
        )
    };
    let cases: Vec<(&str, Vec<String>, Option<u32>)> = vec![
        (
            "two reviewers",
            vec![approve("bob"), approve("carol")],
            None,
        ),
        (
            "three reviewers",
            vec![approve("bob"), approve("carol"), approve("dave")],
            None,
        ),
        ("no approvals", vec![], Some(0)),
        ("too few", vec![approve("bob")], Some(1)),
        (
            "the same reviewer twice counts once",
            vec![
                approve("bob"),
                approval(
                    "fraud-detection-bob-again",
                    "bob",
                    &["ml-reviewers"],
                    DIGEST,
                    "Approve",
                    Some(2),
                    None,
                ),
            ],
            Some(1),
        ),
        (
            "approvals of another digest",
            vec![
                approval(
                    "old-bob",
                    "bob",
                    &["ml-reviewers"],
                    OTHER_DIGEST,
                    "Approve",
                    Some(24),
                    None,
                ),
                approval(
                    "old-carol",
                    "carol",
                    &["ml-reviewers"],
                    OTHER_DIGEST,
                    "Approve",
                    Some(24),
                    None,
                ),
            ],
            Some(0),
        ),
        (
            "one approval expired (8 days old, TTL 7d)",
            vec![ago("bob", 8 * 24), approve("carol")],
            Some(1),
        ),
        (
            "exactly at the TTL is expired",
            vec![ago("bob", 7 * 24), approve("carol")],
            Some(1),
        ),
        (
            "just inside the TTL counts",
            vec![ago("bob", 7 * 24 - 1), approve("carol")],
            None,
        ),
        (
            "an approval without creationTimestamp counts as fresh",
            vec![
                approval(
                    "fraud-detection-bob",
                    "bob",
                    &["ml-reviewers"],
                    DIGEST,
                    "Approve",
                    None,
                    None,
                ),
                approve("carol"),
            ],
            None,
        ),
        (
            "an approver outside the approver groups",
            vec![
                approve("bob"),
                approval(
                    "fraud-detection-erin",
                    "erin",
                    &["data-science"],
                    DIGEST,
                    "Approve",
                    Some(1),
                    None,
                ),
            ],
            Some(1),
        ),
        (
            "an approver in several groups, one allowed",
            vec![
                approve("bob"),
                approval(
                    "fraud-detection-erin",
                    "erin",
                    &["data-science", "ml-reviewers"],
                    DIGEST,
                    "Approve",
                    Some(1),
                    None,
                ),
            ],
            None,
        ),
        (
            "a rejection of another digest does not block",
            vec![
                approve("bob"),
                approve("carol"),
                approval(
                    "old-dave",
                    "dave",
                    &["ml-reviewers"],
                    OTHER_DIGEST,
                    "Reject",
                    Some(1),
                    Some("drift"),
                ),
            ],
            None,
        ),
    ];
    for (name, approvals, held_at) in cases {
        let e = production_with(&approvals).eval(FRAUD);
        match held_at {
            None => {
                assert!(e.findings.is_empty(), "{name}: {:?}", e.findings);
                assert_outcome(&e, "A.8.32", Pass);
            }
            Some(n) => assert_findings(&e, &[("A.8.32", "spec", Warn, &held(n))]),
        }
    }
}

#[test]
fn any_rejection_blocks() {
    let world = production_with(&[
        approve("bob"),
        approve("carol"),
        approval(
            "fraud-detection-dave",
            "dave",
            &["ml-reviewers"],
            DIGEST,
            "Reject",
            Some(1),
            Some("false positives on EU claims doubled"),
        ),
    ]);
    assert_findings(
        &world.eval(FRAUD),
        &[(
            "A.8.32",
            "spec",
            Warn,
            &format!(
                r#"A.8.32 Change management: release {} of model "fraud-detection" was rejected by dave: false positives on EU claims doubled"#,
                &fraud_release(DIGEST)[..19]
            ),
        )],
    );
}

#[test]
fn the_requester_cannot_approve_their_own_digest() {
    let world = production_with(&[approve("alice"), approve("bob")]);
    let e = world.eval(FRAUD);
    let release = &fraud_release(DIGEST)[..19];
    assert_findings(
        &e,
        &[
            (
                "A.5.3",
                "spec",
                Warn,
                &format!(
                    r#"A.5.3 Segregation of duties: approval "fraud-detection-alice" is by alice, who requested release {release}, and is not counted"#
                ),
            ),
            (
                "A.8.32",
                "spec",
                Warn,
                &format!(
                    r#"A.8.32 Change management: rollout of release {release} (digest sha256:a1b2c3d4a1b2) of model "fraud-detection" is held: 1 of 2 approvals"#
                ),
            ),
        ],
    );
    // Another reviewer makes up the count, but the self-approval is still reported.
    let e = production_with(&[approve("alice"), approve("bob"), approve("carol")]).eval(FRAUD);
    assert_outcome(&e, "A.8.32", Pass);
    assert_outcome(&e, "A.5.3", Fail);
    // Without the annotation the requester is unknown: see an_unknown_requester_fails_closed.
}

#[test]
fn the_gate_never_denies_it_holds() {
    // Default action Enforce: gate findings are capped at Warn (admitted with a warning).
    let e = production_with(&[]).eval(FRAUD);
    assert_eq!(e.denials().count(), 0);
    // Audit is below the cap and is kept.
    let audit = edit(PRODUCTION, &[("    action: Enforce", "    action: Audit")]);
    let world = World::with_policies(&[&audit]).with(&dataset("claims", "Confidential"));
    let e = world.eval(FRAUD);
    assert_eq!(e.findings.len(), 1);
    assert_eq!(e.findings[0].action, Audit);
}

#[test]
fn promotion_details() {
    let world = production_with(&[
        approve("bob"),
        approval(
            "fraud-detection-carol",
            "carol",
            &["ml-reviewers"],
            DIGEST,
            "Approve",
            Some(48),
            None,
        ),
        approval(
            "fraud-detection-erin",
            "erin",
            &[],
            DIGEST,
            "Approve",
            Some(1),
            None,
        ),
        approval(
            "fraud-detection-frank",
            "frank",
            &["ml-reviewers"],
            DIGEST,
            "Approve",
            Some(200),
            None,
        ),
        approve("alice"),
    ]);
    let Object::Model(model) = object(FRAUD) else {
        panic!("not a model")
    };
    let approvals: Vec<Arc<_>> = world.inventory.approvals.clone();
    let gate = promotion(&model, &approvals, &world.profile, world.now);
    assert!(gate.approved());
    assert_eq!(gate.summary(), "2 of 2 approvals");
    let counted: Vec<&str> = gate.counted.iter().map(|c| c.approver.as_str()).collect();
    // Oldest first.
    assert_eq!(counted, ["carol", "bob"]);
    // carol's approval (48h old, TTL 7d) expires first: in 120h.
    assert_eq!(
        gate.next_expiry(),
        Some(hours_from_now(120).parse().unwrap())
    );
    assert_eq!(
        gate.self_approvals().collect::<Vec<_>>(),
        ["fraud-detection-alice"]
    );
    let ignored: Vec<(&str, Ignored)> = gate
        .ignored
        .iter()
        .map(|(n, why, _)| (n.as_str(), why.clone()))
        .collect();
    assert_eq!(
        ignored,
        [
            ("fraud-detection-frank", Ignored::Expired),
            ("fraud-detection-alice", Ignored::SelfApproval),
            ("fraud-detection-erin", Ignored::NotInApproverGroup),
        ]
    );
    assert_eq!(
        gate.ignored[0].2,
        "approval by frank expired (approvals are valid for 7d)"
    );
}

/// Every way an approval may fail to count has its own reason (A.8.32, A.5.3).
#[test]
fn each_ignored_approval_says_why() {
    let sa = "system:serviceaccount:fraud:deployer";
    let other_model = approve("dave").replace(
        "modelUID: 6f1c2a4e-fraud-detection",
        "modelUID: deleted-model-uid",
    );
    let world = production_with(&[
        approve("bob"),
        approval(
            "fraud-detection-bob-again",
            "bob",
            &["ml-reviewers"],
            DIGEST,
            "Approve",
            Some(2),
            None,
        ),
        approval(
            "sa",
            sa,
            &["ml-reviewers"],
            DIGEST,
            "Approve",
            Some(3),
            None,
        ),
        approval(
            "old",
            "carol",
            &["ml-reviewers"],
            OTHER_DIGEST,
            "Approve",
            Some(4),
            None,
        ),
        other_model,
    ]);
    let Object::Model(model) = object(FRAUD) else {
        panic!("not a model")
    };
    let gate = promotion(
        &model,
        &world.inventory.approvals,
        &world.profile,
        world.now,
    );
    assert_eq!(gate.summary(), "1 of 2 approvals");
    let reasons: Vec<(&str, &str)> = gate
        .ignored
        .iter()
        .map(|(n, why, _)| (n.as_str(), why.reason()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("fraud-detection-dave", "OtherModel"),
            ("old", "OtherRelease"),
            ("sa", "ServiceAccount"),
            ("fraud-detection-bob-again", "Duplicate"),
        ]
    );
}

/// A release whose requester is not recorded (written while the webhook was down, or before
/// it was installed) never passes A.5.3, whatever the approvals.
#[test]
fn an_unknown_requester_fails_closed() {
    let world = production_with(&[approve("alice"), approve("bob"), approve("carol")]);
    for (what, yaml) in [
        (
            "no annotations",
            edit(
                FRAUD,
                &[(
                    "    annexa.dev/digest-requested-by: alice\n    annexa.dev/requested-release: CURRENT\n",
                    "",
                )],
            ),
        ),
        (
            "a requester recorded for another release",
            edit(
                FRAUD,
                &[(
                    "annexa.dev/requested-release: CURRENT",
                    "annexa.dev/requested-release: sha256:0000",
                )],
            ),
        ),
    ] {
        let e = world.eval(&yaml);
        assert_outcome(&e, "A.5.3", Fail);
        assert!(
            e.findings.iter().any(|f| f.control == "A.5.3"
                && f.message.contains("is not recorded")
                && f.message.contains("cannot be approved")),
            "{what}: {:?}",
            e.findings
        );
        let Object::Model(model) = object(&yaml) else {
            panic!("not a model")
        };
        let gate = promotion(
            &model,
            &world.inventory.approvals,
            &world.profile,
            world.now,
        );
        assert!(
            !gate.approved(),
            "{what}: 3 approvals, one of them possibly the requester's"
        );
    }
}

/// Patching only the serving image is a new release: earlier approvals do not cover it.
#[test]
fn changing_the_image_voids_earlier_approvals() {
    let world = production_with(&[approve("bob"), approve("carol")]);
    let e = world.eval(&edit(
        FRAUD,
        &[("triton-serving@sha256:9f8e", "triton-serving@sha256:0f8e")],
    ));
    assert_outcome(&e, "A.8.32", Fail);
    for field in [
        (
            "uri: s3://models-eu/fraud-detection/3.2.0/",
            "uri: s3://attacker/weights/",
        ),
        ("version: 3.2.0", "version: 3.2.1"),
        ("    port: 8443", "    port: 9443"),
        ("    memory: 16Gi", "    memory: 32Gi"),
    ] {
        let e = world.eval(&edit(FRAUD, &[field]));
        assert_outcome(&e, "A.8.32", Fail);
    }
    // The scale is not part of the release.
    let e = world.eval(&edit(FRAUD, &[("  replicas: 2", "  replicas: 5")]));
    assert_outcome(&e, "A.8.32", Pass);
}

#[test]
fn changing_the_digest_voids_earlier_approvals() {
    let world = production_with(&[approve("bob"), approve("carol")]);
    let new_digest = edit(FRAUD, &[(DIGEST, OTHER_DIGEST)]);
    let e = world.eval(&new_digest);
    assert_findings(
        &e,
        &[(
            "A.8.32",
            "spec",
            Warn,
            &format!(
                r#"A.8.32 Change management: rollout of release {} (digest sha256:e5f60718e5f6) of model "fraud-detection" is held: 0 of 2 approvals"#,
                &fraud_release(OTHER_DIGEST)[..19]
            ),
        )],
    );
}

#[test]
fn models_are_looked_up_in_their_own_namespace() {
    let Object::Model(model) = object(FRAUD) else {
        panic!("not a model")
    };
    let model: ModelDeployment = model;
    let world = World::production().with(&dataset("claims", "Restricted"));
    let mut other_ns = model.clone();
    other_ns.metadata.namespace = Some("marketing".to_string());
    assert_eq!(
        classification(&other_ns, &world.inventory),
        (Classification::Confidential, vec!["claims".to_string()])
    );
}

#[test]
fn rejections_expire_respect_groups_and_may_come_from_the_requester() {
    let reject = |name: &str, who: &str, groups: &[&str], hours_old: i64| {
        approval(
            name,
            who,
            groups,
            DIGEST,
            "Reject",
            Some(hours_old),
            Some("regression on EU claims"),
        )
    };
    // An expired rejection (8 days, TTL 7d) no longer blocks.
    let e = production_with(&[
        approve("bob"),
        approve("carol"),
        reject("old-dave", "dave", &["ml-reviewers"], 8 * 24),
    ])
    .eval(FRAUD);
    assert_outcome(&e, "A.8.32", Pass);
    // A rejection from outside the approver groups does not block.
    let e = production_with(&[
        approve("bob"),
        approve("carol"),
        reject("erin-no", "erin", &["data-science"], 1),
    ])
    .eval(FRAUD);
    assert_outcome(&e, "A.8.32", Pass);
    // The requester (alice) may withdraw their own digest: it blocks, and is not a self-approval.
    let e = production_with(&[
        approve("bob"),
        approve("carol"),
        reject("alice-withdraws", "alice", &[], 1),
    ])
    .eval(FRAUD);
    assert_outcome(&e, "A.8.32", Fail);
    assert_outcome(&e, "A.5.3", Pass);
}
