//! The effective profile of a namespace: baseline, selection, strictest-wins merge, overrides.

use super::fixtures::*;
use crate::api::{Action, Classification, CompliancePolicy, Environment, GpuPool};
use crate::policy::duration::format_duration;
use crate::policy::{CATALOGUE, Profile, selector_matches, validate_policy};
use jiff::SignedDuration;
use std::collections::BTreeMap;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// The fraud team's own policy (sorts first by name).
const FRAUD_TEAM: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: fraud-team
spec:
  namespaceSelector:
    matchLabels:
      team: fraud
  environment: Staging
  enforcement:
    action: Warn
    overrides:
      - control: A.8.12
        action: Audit
      - control: A.8.24
        action: Enforce
  gpu:
    resourceNames: [nvidia.com/gpu]
    pools:
      - classification: Confidential
        nodeSelector:
          pool: fraud-confidential
  images:
    allowedRegistries: ["registry.example.com/", "ghcr.io/example/"]
    requireDigest: true
  encryption:
    requireKmsFrom: Internal
    allowedKeyPrefixes: ["arn:aws:kms:eu-west-1:", "arn:aws:kms:eu-central-1:"]
    encryptedStorageClasses: [gp3-encrypted, io2-encrypted]
  residency:
    allowedRegions: [eu-west-1, eu-central-1, us-east-1]
  promotion:
    requiredApprovals: 3
    approvalTTL: 14d
    approverGroups: [ml-reviewers, fraud-leads]
  agents:
    maxTokenTTL: 2h
    forbiddenVerbs: [escalate]
    allowSecretRead: true
    requireEgressAllowList: false
  retention:
    maxRetention: 30d
  exceptions:
    - control: A.8.9
      kind: ModelDeployment
      reason: legacy scorer, migration tracked in FRAUD-88
"#;

/// The platform team's policy for every team namespace.
const PLATFORM: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: platform
spec:
  namespaceSelector:
    matchExpressions:
      - key: team
        operator: Exists
  environment: Production
  enforcement:
    action: Audit
    overrides:
      - control: A.8.12
        action: Warn
  gpu:
    resourceNames: [amd.com/gpu]
    pools:
      - classification: Confidential
        nodeSelector:
          pool: platform-confidential
      - classification: Restricted
        nodeSelector:
          pool: platform-restricted
  images:
    allowedRegistries: ["registry.example.com/"]
    requireDigest: false
  encryption:
    requireKmsFrom: Confidential
    allowedKeyPrefixes: ["arn:aws:kms:eu-west-1:"]
    encryptedStorageClasses: [gp3-encrypted]
  residency:
    allowedRegions: [eu-west-1]
  promotion:
    requiredApprovals: 2
    approvalTTL: 3d
    approverGroups: [ml-reviewers]
  agents:
    maxTokenTTL: 30m
    forbiddenVerbs: ["*", impersonate]
    allowSecretRead: false
    requireEgressAllowList: true
  retention:
    maxRetention: 90d
  exceptions:
    - control: A.8.22
      kind: Pod
      reason: GPU burn-in
"#;

/// A much stricter policy for another team: must not leak into the fraud namespace.
const PAYMENTS: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: payments
spec:
  namespaceSelector:
    matchLabels:
      team: payments
  environment: Production
  enforcement:
    action: Enforce
  images:
    allowedRegistries: ["registry.payments.example.com/"]
  residency:
    allowedRegions: [eu-north-1]
  promotion:
    requiredApprovals: 5
  retention:
    maxRetention: 1d
"#;

#[test]
fn the_baseline_applies_when_no_policy_selects() {
    let baseline = Profile::baseline();
    assert!(baseline.policies.is_empty());
    assert_eq!(baseline.environment, Environment::Development);
    assert_eq!(baseline.default_action, Action::Enforce);
    assert!(
        CATALOGUE
            .iter()
            .all(|c| baseline.action(c.id) == Action::Enforce)
    );
    assert_eq!(
        baseline.gpu_resource_names,
        strings(&[
            "nvidia.com/gpu",
            "nvidia.com/gpu.*",
            "nvidia.com/mig-*",
            "amd.com/gpu",
            "gpu.intel.com/*"
        ])
    );
    assert_eq!(
        baseline.gpu_device_class_names,
        strings(&[
            "gpu.nvidia.com",
            "mig.nvidia.com",
            "gpu.amd.com",
            "gpu.intel.com"
        ])
    );
    assert!(baseline.debug_registries.is_empty());
    assert_eq!(baseline.gpu_pools.len(), 4);
    let internal = &baseline.gpu_pools[&Classification::Internal];
    assert_eq!(
        internal.node_selector,
        labels(&[("annexa.dev/gpu-pool", "internal")])
    );
    assert_eq!(
        internal.taint.as_ref().map(|t| t.key.as_str()),
        Some("annexa.dev/gpu-pool")
    );
    assert_eq!(baseline.allowed_registries, None);
    assert!(!baseline.require_digest && !baseline.digest_required());
    assert_eq!(baseline.require_kms_from, Classification::Confidential);
    assert_eq!(baseline.allowed_key_prefixes, None);
    assert_eq!(baseline.allowed_regions, None);
    assert_eq!(baseline.required_approvals, 0);
    assert_eq!(baseline.approval_ttl, days(7));
    assert_eq!(baseline.max_token_ttl, SignedDuration::from_hours(1));
    assert_eq!(
        baseline.forbidden_verbs,
        strings(&["*", "escalate", "bind", "impersonate"])
    );
    assert!(!baseline.allow_secret_read);
    assert!(baseline.require_egress_allow_list);
    assert_eq!(baseline.max_retention, days(365));
    assert!(baseline.exceptions.is_empty());

    // No policies, or only policies that select other namespaces: the baseline.
    let ns = labels(&[("team", "fraud")]);
    assert_eq!(Profile::for_namespace(&ns, []), baseline);
    let payments = policy(PAYMENTS);
    assert_eq!(Profile::for_namespace(&ns, [&payments]), baseline);
    let production = policy(PRODUCTION);
    assert_eq!(
        Profile::for_namespace(
            &labels(&[("annexa.dev/environment", "staging")]),
            [&production]
        ),
        baseline
    );
}

#[test]
fn the_baseline_round_trips_through_a_policy() {
    // What `annexa policy default` prints, applied as a policy, gives the same rules.
    let baseline = Profile::baseline();
    let printed = CompliancePolicy::new("default", baseline.to_spec());
    assert!(
        validate_policy(&printed).is_empty(),
        "{:?}",
        validate_policy(&printed)
    );
    let mut reapplied = Profile::merge(&[&printed]);
    assert_eq!(reapplied.policies, ["default"]);
    reapplied.policies.clear();
    assert_eq!(reapplied, baseline);
}

#[test]
fn a_production_policy_sets_its_values() {
    let production = policy(PRODUCTION);
    let p = Profile::for_namespace(
        &labels(&[("annexa.dev/environment", "production")]),
        [&production],
    );
    assert_eq!(p.policies, ["production"]);
    assert_eq!(p.environment, Environment::Production);
    assert!(p.digest_required());
    assert_eq!(p.required_approvals, 2);
    assert_eq!(
        p.gpu_pools.keys().copied().collect::<Vec<_>>(),
        [Classification::Confidential, Classification::Restricted]
    );
    // Lower classifications use the nearest stricter pool; never a less isolated one.
    let pool_of = |c| p.pool_for(c).map(|pool: &GpuPool| pool.classification);
    assert_eq!(
        pool_of(Classification::Public),
        Some(Classification::Confidential)
    );
    assert_eq!(
        pool_of(Classification::Internal),
        Some(Classification::Confidential)
    );
    assert_eq!(
        pool_of(Classification::Restricted),
        Some(Classification::Restricted)
    );
}

#[test]
fn production_defaults_to_two_approvals() {
    let p = World::with_policies(&[r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: prod
spec:
  environment: Production
"#])
    .profile;
    assert_eq!(p.required_approvals, 2);
    assert!(p.digest_required(), "Production always requires digests");
    assert!(!p.require_digest);
}

#[test]
fn the_strictest_value_of_each_setting_wins() {
    let fraud_team = policy(FRAUD_TEAM);
    let platform = policy(PLATFORM);
    let payments = policy(PAYMENTS);
    let ns = labels(&[("team", "fraud"), ("kubernetes.io/metadata.name", "fraud")]);
    let p = Profile::for_namespace(&ns, [&platform, &payments, &fraud_team]);

    assert_eq!(
        p.policies,
        ["fraud-team", "platform"],
        "payments does not select the namespace"
    );
    assert_eq!(
        p.environment,
        Environment::Production,
        "platform: Production > Staging"
    );
    assert_eq!(p.default_action, Action::Warn, "fraud-team: Warn > Audit");
    assert_eq!(p.action("A.8.24"), Action::Enforce, "fraud-team's override");
    assert_eq!(
        p.action("A.8.12"),
        Action::Warn,
        "platform's override Warn > fraud-team's Audit"
    );
    assert_eq!(p.action("A.8.22"), Action::Warn, "the stricter default");
    assert_eq!(
        p.gpu_resource_names,
        strings(&["nvidia.com/gpu", "amd.com/gpu"]),
        "union"
    );
    assert_eq!(
        p.gpu_pools[&Classification::Confidential].node_selector,
        labels(&[("pool", "fraud-confidential")]),
        "a pool defined twice comes from the policy that sorts first"
    );
    assert_eq!(
        p.gpu_pools[&Classification::Restricted].node_selector,
        labels(&[("pool", "platform-restricted")])
    );
    assert_eq!(
        p.allowed_registries,
        Some(strings(&["registry.example.com/"])),
        "intersection"
    );
    assert!(p.require_digest, "fraud-team requires digests");
    assert_eq!(
        p.require_kms_from,
        Classification::Internal,
        "fraud-team: from Internal"
    );
    assert_eq!(
        p.allowed_key_prefixes,
        Some(strings(&["arn:aws:kms:eu-west-1:"]))
    );
    assert_eq!(
        p.encrypted_storage_classes,
        Some(strings(&["gp3-encrypted"]))
    );
    assert_eq!(p.allowed_regions, Some(strings(&["eu-west-1"])));
    assert_eq!(p.required_approvals, 3, "fraud-team: 3 > 2");
    assert_eq!(p.approval_ttl, days(3), "platform: 3d < 14d");
    assert_eq!(p.approver_groups, Some(strings(&["ml-reviewers"])));
    assert_eq!(
        p.max_token_ttl,
        SignedDuration::from_mins(30),
        "platform: 30m < 2h"
    );
    assert_eq!(
        p.forbidden_verbs,
        strings(&["escalate", "*", "impersonate"]),
        "union"
    );
    assert!(!p.allow_secret_read, "only if every policy allows it");
    assert!(p.require_egress_allow_list, "if any policy requires it");
    assert_eq!(p.max_retention, days(30), "fraud-team: 30d < 90d");
    let excepted: Vec<&str> = p.exceptions.iter().map(|e| e.control.as_str()).collect();
    assert_eq!(excepted, ["A.8.9", "A.8.22"], "every policy's exceptions");

    // The order the policies come in does not matter.
    assert_eq!(
        Profile::for_namespace(&ns, [&fraud_team, &payments, &platform]),
        p
    );

    // Each policy alone is looser than the merge somewhere.
    let alone = Profile::for_namespace(&ns, [&fraud_team]);
    assert_eq!(
        (alone.environment, alone.approval_ttl),
        (Environment::Staging, days(14))
    );
    let alone = Profile::for_namespace(&ns, [&platform]);
    assert_eq!(
        (alone.required_approvals, alone.max_retention),
        (2, days(90))
    );
}

#[test]
fn a_merged_profile_fails_what_one_policy_alone_allows() {
    let dataset = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata:
  name: claims-us
  namespace: fraud
spec:
  source:
    uri: s3://datasets-us/claims/
    sha256: sha256:0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f
  classification: Internal
  owner: claims-data-team
  residency:
    region: us-east-1
"#;
    let e = World::with_policies(&[FRAUD_TEAM]).eval(&edit(
        dataset,
        &[(
            "  residency:",
            "  encryption:\n    kmsKey: arn:aws:kms:eu-west-1:1:key/x\n  residency:",
        )],
    ));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    let e = World::with_policies(&[FRAUD_TEAM, PLATFORM]).eval(dataset);
    let failed: Vec<(&str, Action)> = e.findings.iter().map(|f| (f.control, f.action)).collect();
    // Region outside the intersection (Warn, the stricter default), KMS from Internal (Enforce override).
    assert_eq!(
        failed,
        [("A.5.34", Action::Warn), ("A.8.24", Action::Enforce)]
    );
}

#[test]
fn overrides_within_one_policy() {
    let p = World::with_policies(&[r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: rollout
spec:
  enforcement:
    action: Audit
    overrides:
      - control: A.8.2
        action: Enforce
      - control: A.8.2
        action: Warn
"#])
    .profile;
    assert_eq!(p.default_action, Action::Audit);
    assert_eq!(
        p.action("A.8.2"),
        Action::Warn,
        "the last override of a control wins"
    );
    assert_eq!(p.action("A.5.15"), Action::Audit);
    assert_eq!(p.to_spec().enforcement.map(|e| e.overrides.len()), Some(1));
}

#[test]
fn label_selectors() {
    let ns = labels(&[("team", "fraud"), ("tier", "gold")]);
    let selector = |yaml: &str| serde_yaml_ng::from_str(yaml).unwrap();
    let cases = [
        ("{}", true),
        ("matchLabels: {team: fraud}", true),
        ("matchLabels: {team: fraud, tier: silver}", false),
        (
            "matchExpressions: [{key: team, operator: In, values: [fraud, payments]}]",
            true,
        ),
        (
            "matchExpressions: [{key: team, operator: NotIn, values: [fraud]}]",
            false,
        ),
        (
            "matchExpressions: [{key: region, operator: NotIn, values: [us]}]",
            true,
        ),
        ("matchExpressions: [{key: tier, operator: Exists}]", true),
        (
            "matchExpressions: [{key: tier, operator: DoesNotExist}]",
            false,
        ),
        (
            "matchExpressions: [{key: tier, operator: Matches, values: [gold]}]",
            false,
        ),
        (
            "{matchLabels: {team: fraud}, matchExpressions: [{key: tier, operator: In, values: [silver]}]}",
            false,
        ),
        // A missing key is never In a set and always NotIn it.
        (
            "matchExpressions: [{key: region, operator: In, values: [eu]}]",
            false,
        ),
        // In and NotIn need values: without, the selector is invalid and matches nothing.
        ("matchExpressions: [{key: team, operator: In}]", false),
        ("matchExpressions: [{key: region, operator: NotIn}]", false),
        (
            "matchExpressions: [{key: region, operator: NotIn, values: []}]",
            true,
        ),
        ("{matchLabels: {}, matchExpressions: []}", true),
    ];
    for (yaml, expected) in cases {
        assert_eq!(
            selector_matches(Some(&selector(yaml)), &ns),
            expected,
            "{yaml}"
        );
    }
    assert!(selector_matches(None, &ns));
}

#[test]
fn policy_validation_names_the_field() {
    let bad = policy(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: typo
spec:
  namespaceSelector:
    matchExpressions:
      - {key: env, operator: NotIn}
      - {key: tier, operator: Equals, values: [gold]}
      - {key: team, operator: Exists, values: [ml]}
      - {key: env, operator: In, values: [prod]}
  enforcement:
    overrides:
      - control: A.9.1
        action: Audit
  promotion:
    approvalTTL: 7days
  gpu:
    pools:
      - classification: Confidential
      - classification: Confidential
        nodeSelector: {pool: a}
"#,
    );
    assert_eq!(
        validate_policy(&bad),
        [
            "spec.namespaceSelector.matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'",
            r#"spec.namespaceSelector.matchExpressions[1].operator: "Equals" is not a valid selector operator (In, NotIn, Exists, DoesNotExist)"#,
            "spec.namespaceSelector.matchExpressions[2].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            r#"spec.enforcement.overrides[0].control: "A.9.1" is not a control Annexa evaluates (see `annexa controls`)"#,
            r#"spec.promotion.approvalTTL: duration "7days" has unknown unit 'a' (use w, d, h, m or s, e.g. 90d or 1h30m)"#,
            "spec.gpu.pools[0]: a pool needs a nodeSelector or a taint to isolate anything",
            "spec.gpu.pools[1].classification: a pool for Confidential is already defined",
        ]
    );
    assert!(validate_policy(&policy(PRODUCTION)).is_empty());
}

/// A generated CompliancePolicy: every setting the strictest-wins merge combines, each either
/// unset or drawn from a small pool of values (small pools, so that lists overlap, coincide
/// and miss each other often). Exceptions and GPU pools are left out: an exception is an
/// explicit, named waiver, and pools are placements, not limits that can be stricter or looser.
fn generated_policy() -> impl proptest::strategy::Strategy<Value = CompliancePolicy> {
    use proptest::prelude::*;
    use proptest::sample::subsequence;
    use serde_json::{Value, json};
    fn maybe<T: std::fmt::Debug + Clone + 'static>(
        values: &'static [T],
    ) -> impl Strategy<Value = Option<T>> {
        proptest::option::of(proptest::sample::select(values))
    }
    fn some_of(values: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
        subsequence(values, 0..=values.len())
    }
    let actions = &["Audit", "Warn", "Enforce"][..];
    let controls: Vec<&'static str> = CATALOGUE.iter().map(|c| c.id).collect();
    let overrides = proptest::collection::vec(
        (
            proptest::sample::select(controls),
            proptest::sample::select(actions),
        ),
        0..4,
    );
    let durations = &["1h", "12h", "24h", "7d", "30d", "365d", "3650d"][..];
    (
        (
            maybe(&["Development", "Staging", "Production"][..]),
            maybe(actions),
            overrides,
            some_of(&["registry.example.com", "ghcr.io/acme", "docker.io"]),
            maybe(&[true, false][..]),
            maybe(&["Public", "Internal", "Confidential", "Restricted"][..]),
            some_of(&["arn:aws:kms:eu-", "arn:aws:kms:us-", "projects/acme/"]),
            some_of(&["encrypted-gp3", "encrypted-ssd", "standard"]),
        ),
        (
            some_of(&["eu-west-1", "eu-central-1", "us-east-1"]),
            maybe(&[0u32, 1, 2, 3][..]),
            maybe(durations),
            some_of(&["ml-reviewers", "security", "leads"]),
            maybe(durations),
            some_of(&["*", "escalate", "bind", "impersonate", "delete", "create"]),
            (maybe(&[true, false][..]), maybe(&[true, false][..])),
            (
                maybe(durations),
                some_of(&["nvidia.com/gpu", "amd.com/gpu", "example.com/gpu"]),
            ),
        ),
    )
        .prop_map(
            |(
                (env, action, overrides, registries, digest, kms_from, prefixes, classes),
                (regions, approvals, ttl, groups, token_ttl, verbs, (secrets, egress), (keep, gpus)),
            )| {
                let mut spec = serde_json::Map::new();
                let mut set = |key: &str, value: Value| {
                    // Drop nulls and empty lists: the policy leaves the setting unset.
                    let value = match value {
                        Value::Object(map) => Value::Object(
                            map.into_iter()
                                .filter(|(_, v)| {
                                    !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())
                                })
                                .collect(),
                        ),
                        other => other,
                    };
                    if !value.is_null() && value.as_object().is_none_or(|m| !m.is_empty()) {
                        spec.insert(key.to_string(), value);
                    }
                };
                set("environment", json!(env));
                set(
                    "enforcement",
                    json!({
                        "action": action,
                        "overrides": overrides
                            .iter()
                            .map(|(control, action)| json!({"control": control, "action": action}))
                            .collect::<Vec<_>>(),
                    }),
                );
                set("images", json!({"allowedRegistries": registries, "requireDigest": digest}));
                set(
                    "encryption",
                    json!({
                        "requireKmsFrom": kms_from,
                        "allowedKeyPrefixes": prefixes,
                        "encryptedStorageClasses": classes,
                    }),
                );
                set("residency", json!({"allowedRegions": regions}));
                set(
                    "promotion",
                    json!({"requiredApprovals": approvals, "approvalTTL": ttl, "approverGroups": groups}),
                );
                set(
                    "agents",
                    json!({
                        "maxTokenTTL": token_ttl,
                        "forbiddenVerbs": verbs,
                        "allowSecretRead": secrets,
                        "requireEgressAllowList": egress,
                    }),
                );
                set("retention", json!({"maxRetention": keep}));
                set("gpu", json!({"resourceNames": gpus}));
                serde_json::from_value(json!({
                    "apiVersion": "annexa.dev/v1alpha1",
                    "kind": "CompliancePolicy",
                    "metadata": {"name": "generated"},
                    "spec": spec,
                }))
                .unwrap()
            },
        )
}

/// Every way in which `merged` is looser than `before`, as readable lines (empty: none).
fn loosenings(before: &Profile, merged: &Profile) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            out.push(what);
        }
    };
    check(
        merged.environment >= before.environment,
        format!(
            "environment {:?} -> {:?}",
            before.environment, merged.environment
        ),
    );
    for (control, action) in &before.actions {
        let now = merged.actions.get(control).copied();
        check(
            now.is_some_and(|a| a >= *action),
            format!("action of {control} {action:?} -> {now:?}"),
        );
    }
    // An allow-list: empty allows anything; otherwise the merged list must allow nothing the
    // earlier one refused (non-empty and a subset).
    let lists = [
        (
            "allowedRegistries",
            &before.allowed_registries,
            &merged.allowed_registries,
        ),
        (
            "allowedKeyPrefixes",
            &before.allowed_key_prefixes,
            &merged.allowed_key_prefixes,
        ),
        (
            "encryptedStorageClasses",
            &before.encrypted_storage_classes,
            &merged.encrypted_storage_classes,
        ),
        (
            "allowedRegions",
            &before.allowed_regions,
            &merged.allowed_regions,
        ),
        (
            "approverGroups",
            &before.approver_groups,
            &merged.approver_groups,
        ),
    ];
    for (name, b, m) in lists {
        // None allows anything; a list, only what it names.
        let ok = match (b, m) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(b), Some(m)) => m.iter().all(|v| b.contains(v)),
        };
        check(ok, format!("{name} {b:?} -> {m:?}"));
    }
    check(
        merged.require_digest || !before.require_digest,
        "requireDigest true -> false".to_string(),
    );
    check(
        merged.require_kms_from <= before.require_kms_from,
        format!(
            "requireKmsFrom {:?} -> {:?}",
            before.require_kms_from, merged.require_kms_from
        ),
    );
    check(
        merged.required_approvals >= before.required_approvals,
        format!(
            "requiredApprovals {} -> {}",
            before.required_approvals, merged.required_approvals
        ),
    );
    for (name, b, m) in [
        ("approvalTTL", before.approval_ttl, merged.approval_ttl),
        ("maxTokenTTL", before.max_token_ttl, merged.max_token_ttl),
        ("maxRetention", before.max_retention, merged.max_retention),
    ] {
        check(
            m <= b,
            format!("{name} {} -> {}", format_duration(b), format_duration(m)),
        );
    }
    check(
        before
            .forbidden_verbs
            .iter()
            .all(|v| merged.forbidden_verbs.contains(v)),
        format!(
            "forbiddenVerbs {:?} -> {:?}",
            before.forbidden_verbs, merged.forbidden_verbs
        ),
    );
    check(
        !merged.allow_secret_read || before.allow_secret_read,
        "allowSecretRead false -> true".to_string(),
    );
    check(
        merged.require_egress_allow_list || !before.require_egress_allow_list,
        "requireEgressAllowList true -> false".to_string(),
    );
    check(
        before
            .gpu_resource_names
            .iter()
            .all(|r| merged.gpu_resource_names.contains(r)),
        format!(
            "GPU resource names {:?} -> {:?}",
            before.gpu_resource_names, merged.gpu_resource_names
        ),
    );
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever policies already select a namespace (one or more), adding another never makes
    /// any setting looser, in any order.
    #[test]
    fn adding_a_policy_never_loosens_what_the_others_require(
        existing in proptest::collection::vec(generated_policy(), 1..4),
        added in generated_policy(),
        position in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let before: Vec<&CompliancePolicy> = existing.iter().collect();
        let mut after = before.clone();
        after.insert(position.index(before.len() + 1), &added);
        let found = loosenings(&Profile::merge(&before), &Profile::merge(&after));
        proptest::prop_assert!(
            found.is_empty(),
            "adding {} to {} loosened: {:#?}",
            serde_json::to_string(&added.spec).unwrap(),
            serde_json::to_string(&existing.iter().map(|p| &p.spec).collect::<Vec<_>>()).unwrap(),
            found
        );
    }
}

#[test]
fn a_single_policy_may_relax_the_baseline_but_a_second_one_never_loosens_it() {
    // The rule the property checks is about policies combined; on its own a policy may relax
    // the baseline (its authors chose so), and the loosenings check sees that.
    let loose = policy(
        "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: loose}
spec:
  promotion: {requiredApprovals: 1, approvalTTL: 30d}
  agents: {allowSecretRead: true}
",
    );
    let strict = policy(
        "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: strict}
spec:
  environment: Production
",
    );
    let alone = Profile::merge(&[&loose]);
    assert_eq!(
        loosenings(&Profile::baseline(), &alone),
        strings(&["approvalTTL 7d -> 30d", "allowSecretRead false -> true"])
    );
    let both = Profile::merge(&[&strict, &loose]);
    assert_eq!(
        both.required_approvals, 2,
        "strict's Production default of 2 wins"
    );
    assert_eq!(both.approval_ttl, days(7));
    assert!(!both.allow_secret_read);
    assert_eq!(
        loosenings(&Profile::merge(&[&strict]), &both),
        Vec::<String>::new()
    );
}

#[test]
fn an_allow_list_that_allows_nothing_is_written_so_that_it_reads_back_as_nothing() {
    // Two policies whose registries, regions and approver groups have nothing in common allow
    // none; written back as a policy, the lists must still allow none (an empty list is "any").
    let a = policy(
        "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: a}
spec:
  images: {allowedRegistries: [ghcr.io/a/]}
  residency: {allowedRegions: [eu-west-1]}
  promotion: {approverGroups: [team-a]}
  encryption: {allowedKeyPrefixes: ['arn:a:'], encryptedStorageClasses: [gp3-a]}
",
    );
    let b = policy(
        "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: b}
spec:
  images: {allowedRegistries: [ghcr.io/b/]}
  residency: {allowedRegions: [us-east-1]}
  promotion: {approverGroups: [team-b]}
  encryption: {allowedKeyPrefixes: ['arn:b:'], encryptedStorageClasses: [gp3-b]}
",
    );
    let merged = Profile::merge(&[&a, &b]);
    assert_eq!(merged.allowed_registries, Some(vec![]));
    let spec = merged.to_spec();
    let images = spec.images.clone().unwrap_or_default();
    assert_eq!(images.allowed_registries, ["nothing-allowed.invalid"]);
    let reread = Profile::merge(&[&CompliancePolicy::new("printed", spec)]);
    for (what, list) in [
        ("registries", &reread.allowed_registries),
        ("regions", &reread.allowed_regions),
        ("approver groups", &reread.approver_groups),
        ("key prefixes", &reread.allowed_key_prefixes),
        ("storage classes", &reread.encrypted_storage_classes),
    ] {
        assert!(list.is_some(), "{what} read back as any");
    }
    assert!(!crate::policy::registry_allowed(
        "ghcr.io/a/model:1",
        reread.allowed_registries.as_deref()
    ));
}
