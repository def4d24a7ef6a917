//! TrainingDataset: A.5.9, A.5.12 (with lineage), A.5.34, A.8.3, A.8.10, A.8.11, A.8.24.

use super::fixtures::*;
use crate::api::Action::{Enforce, Warn};
use crate::api::ControlOutcome::{NotApplicable, Pass};

const CONTROLS: &[&str] = &[
    "A.5.9", "A.5.12", "A.5.34", "A.8.3", "A.8.10", "A.8.11", "A.8.24",
];

/// A Confidential dataset with personal data that meets the production policy.
const CLAIMS: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata:
  name: claims
  namespace: fraud
  creationTimestamp: "2025-05-01T00:00:00Z"
spec:
  source:
    uri: s3://datasets-eu/claims/2025-05/
    sha256: sha256:0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f
  classification: Confidential
  owner: claims-data-team
  personalData:
    contains: true
    categories: [contact, financial]
    masking: Pseudonymization
  encryption:
    kmsKey: arn:aws:kms:eu-west-1:111122223333:key/claims
  residency:
    region: eu-west-1
  retention:
    period: 180d
    onExpiry: Delete
  access:
    allowedServiceAccounts: [fraud-trainer]
  credentialsSecret: claims-s3-reader
"#;

/// An Internal dataset without personal data or credentials: most controls do not apply.
const WEATHER: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata:
  name: weather
  namespace: fraud
spec:
  source:
    uri: s3://datasets-eu/weather/
    sha256: sha256:0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f
  classification: Internal
  owner: data-platform
"#;

fn parent(name: &str, namespace: &str, classification: &str) -> String {
    format!(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata:
  name: {name}
  namespace: {namespace}
spec:
  source:
    uri: s3://datasets-eu/{name}/
  classification: {classification}
"#
    )
}

#[test]
fn compliant_dataset_passes_every_control() {
    let e = World::production().eval(CLAIMS);
    assert_clean(&e, CONTROLS);
    for control in CONTROLS {
        assert_outcome(&e, control, Pass);
    }
    assert_outcome_message(&e, "A.5.12", Pass, "classified Confidential");
    // Created 2025-05-01 + 180d.
    assert_outcome_message(&e, "A.8.10", Pass, "retained until 2025-10-28T00:00:00Z");
}

#[test]
fn internal_dataset_without_personal_data_is_mostly_not_applicable() {
    let e = World::production().eval(WEATHER);
    assert_clean(&e, CONTROLS);
    assert_outcome(&e, "A.5.9", Pass);
    assert_outcome_message(&e, "A.5.12", Pass, "classified Internal");
    assert_outcome_message(
        &e,
        "A.5.34",
        NotApplicable,
        "no personal data and no residency declared",
    );
    assert_outcome_message(
        &e,
        "A.8.3",
        NotApplicable,
        "Internal data without credentials",
    );
    assert_outcome_message(
        &e,
        "A.8.10",
        NotApplicable,
        "Internal data without personal data",
    );
    assert_outcome_message(&e, "A.8.11", NotApplicable, "no personal data");
    assert_outcome_message(
        &e,
        "A.8.24",
        NotApplicable,
        "Internal data: a KMS key is required from Confidential",
    );
}

#[test]
fn each_rule_fails_on_the_field_that_breaks_it() {
    let cases: &[Case<'_>] = &[
        (
            "no owner",
            &[("  owner: claims-data-team\n", "")],
            &[(
                "A.5.9",
                "spec.owner",
                Enforce,
                r#"A.5.9 Inventory of information and other associated assets: dataset "claims" has no owner"#,
            )],
        ),
        (
            "blank owner",
            &[("owner: claims-data-team", "owner: \"  \"")],
            &[(
                "A.5.9",
                "spec.owner",
                Enforce,
                r#"A.5.9 Inventory of information and other associated assets: dataset "claims" has no owner"#,
            )],
        ),
        (
            "no checksum",
            &[(
                "    sha256: sha256:0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f0c9d8e7f\n",
                "",
            )],
            &[(
                "A.5.9",
                "spec.source.sha256",
                Enforce,
                r#"A.5.9 Inventory of information and other associated assets: dataset "claims" has no sha256 checksum of its content manifest"#,
            )],
        ),
        (
            "personal data classified Public",
            &[("classification: Confidential", "classification: Public")],
            &[(
                "A.5.12",
                "spec.classification",
                Enforce,
                r#"A.5.12 Classification of information: dataset "claims" contains personal data and cannot be Public"#,
            )],
        ),
        (
            "region outside the allowed list",
            &[("region: eu-west-1", "region: us-east-1")],
            &[(
                "A.5.34",
                "spec.residency.region",
                Enforce,
                r#"A.5.34 Privacy and protection of personal identifiable information (PII): dataset "claims" resides in "us-east-1", outside the allowed regions ["eu-west-1", "eu-central-1"]"#,
            )],
        ),
        (
            "personal data without categories",
            &[("    categories: [contact, financial]\n", "")],
            &[(
                "A.5.34",
                "spec.personalData.categories",
                Enforce,
                r#"A.5.34 Privacy and protection of personal identifiable information (PII): dataset "claims" contains personal data but lists no categories"#,
            )],
        ),
        (
            "personal data without residency",
            &[("  residency:\n    region: eu-west-1\n", "")],
            &[(
                "A.5.34",
                "spec.residency.region",
                Enforce,
                r#"A.5.34 Privacy and protection of personal identifiable information (PII): dataset "claims" contains personal data but declares no residency region"#,
            )],
        ),
        (
            "personal data without retention",
            &[("  retention:\n    period: 180d\n    onExpiry: Delete\n", "")],
            &[
                (
                    "A.5.34",
                    "spec.retention",
                    Enforce,
                    r#"A.5.34 Privacy and protection of personal identifiable information (PII): dataset "claims" contains personal data but declares no retention"#,
                ),
                (
                    "A.8.10",
                    "spec.retention",
                    Enforce,
                    r#"A.8.10 Information deletion: dataset "claims" is Confidential with personal data and declares no retention"#,
                ),
            ],
        ),
        (
            "credentials Secret readable by nobody named",
            &[(
                "  access:\n    allowedServiceAccounts: [fraud-trainer]\n",
                "",
            )],
            &[(
                "A.8.3",
                "spec.access.allowedServiceAccounts",
                Enforce,
                r#"A.8.3 Information access restriction: dataset "claims" has a credentials Secret but names no service account allowed to read it"#,
            )],
        ),
        (
            "Confidential data readable by nobody named",
            &[
                (
                    "  access:\n    allowedServiceAccounts: [fraud-trainer]\n",
                    "",
                ),
                ("  credentialsSecret: claims-s3-reader\n", ""),
            ],
            &[(
                "A.8.3",
                "spec.access.allowedServiceAccounts",
                Enforce,
                r#"A.8.3 Information access restriction: dataset "claims" is Confidential and names no service account allowed to read it"#,
            )],
        ),
        (
            "retention beyond the maximum",
            &[("period: 180d", "period: 400d")],
            &[(
                "A.8.10",
                "spec.retention",
                Enforce,
                r#"A.8.10 Information deletion: dataset "claims" is retained for 400d, beyond the maximum of 365d"#,
            )],
        ),
        (
            "fixed expiry beyond the maximum, counted from creation",
            &[("period: 180d", "until: \"2027-05-01T00:00:00Z\"")],
            &[(
                "A.8.10",
                "spec.retention",
                Enforce,
                r#"A.8.10 Information deletion: dataset "claims" is retained for 730d, beyond the maximum of 365d"#,
            )],
        ),
        (
            "malformed retention period",
            &[("period: 180d", "period: 6 months")],
            &[(
                "A.8.10",
                "spec.retention",
                Enforce,
                r#"A.8.10 Information deletion: spec.retention.period: duration "6 months" has unknown unit ' ' (use w, d, h, m or s, e.g. 90d or 1h30m)"#,
            )],
        ),
        (
            "personal data not masked",
            &[("masking: Pseudonymization", "masking: None")],
            &[(
                "A.8.11",
                "spec.personalData.masking",
                Enforce,
                r#"A.8.11 Data masking: dataset "claims" contains personal data that is not masked (set a masking technique, or classify it Restricted with a justification)"#,
            )],
        ),
        (
            "a justification is only accepted on Restricted data",
            &[(
                "masking: Pseudonymization",
                "justification: chargeback investigations need names",
            )],
            &[(
                "A.8.11",
                "spec.personalData.masking",
                Enforce,
                r#"A.8.11 Data masking: dataset "claims" contains personal data that is not masked (set a masking technique, or classify it Restricted with a justification)"#,
            )],
        ),
        (
            "Confidential without a KMS key",
            &[(
                "  encryption:\n    kmsKey: arn:aws:kms:eu-west-1:111122223333:key/claims\n",
                "",
            )],
            &[(
                "A.8.24",
                "spec.encryption.kmsKey",
                Enforce,
                r#"A.8.24 Use of cryptography: dataset "claims" is Confidential and has no KMS key"#,
            )],
        ),
        (
            "KMS key outside the allowed prefixes",
            &[("arn:aws:kms:eu-west-1:", "arn:aws:kms:us-east-1:")],
            &[(
                "A.8.24",
                "spec.encryption.kmsKey",
                Enforce,
                r#"A.8.24 Use of cryptography: dataset "claims" uses KMS key "arn:aws:kms:us-east-1:111122223333:key/claims", which matches none of the allowed prefixes ["arn:aws:kms:eu-west-1:"]"#,
            )],
        ),
        (
            "read without TLS",
            &[("key/claims\n", "key/claims\n    inTransitTLS: false\n")],
            &[(
                "A.8.24",
                "spec.encryption.inTransitTLS",
                Enforce,
                r#"A.8.24 Use of cryptography: dataset "claims" is Confidential and is read without TLS"#,
            )],
        ),
        (
            "PVC without a StorageClass",
            &[("uri: s3://datasets-eu/claims/2025-05/", "pvc: claims-data")],
            &[(
                "A.8.24",
                "spec.encryption.storageClass",
                Enforce,
                r#"A.8.24 Use of cryptography: dataset "claims" is stored on a PVC whose StorageClass (unset) is not one of the encrypted classes ["gp3-encrypted"]"#,
            )],
        ),
        (
            "PVC on an unencrypted StorageClass",
            &[
                ("uri: s3://datasets-eu/claims/2025-05/", "pvc: claims-data"),
                ("key/claims\n", "key/claims\n    storageClass: gp2\n"),
            ],
            &[(
                "A.8.24",
                "spec.encryption.storageClass",
                Enforce,
                r#"A.8.24 Use of cryptography: dataset "claims" is stored on a PVC whose StorageClass "gp2" is not one of the encrypted classes ["gp3-encrypted"]"#,
            )],
        ),
    ];
    let world = World::production();
    for (name, edits, expected) in cases {
        let e = world.eval(&edit(CLAIMS, edits));
        assert_eq!(e.outcomes.len(), CONTROLS.len(), "{name}");
        assert_findings(&e, expected);
    }
}

#[test]
fn passing_variants() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "Restricted data may keep personal data unmasked with a justification",
            &[
                ("classification: Confidential", "classification: Restricted"),
                (
                    "masking: Pseudonymization",
                    "masking: None\n    justification: chargeback investigations need names",
                ),
            ],
        ),
        (
            "every masking technique",
            &[("masking: Pseudonymization", "masking: DifferentialPrivacy")],
        ),
        (
            "another allowed region",
            &[("region: eu-west-1", "region: eu-central-1")],
        ),
        (
            "retention exactly at the maximum",
            &[("period: 180d", "period: 365d")],
        ),
        (
            "PVC on an encrypted StorageClass",
            &[
                ("uri: s3://datasets-eu/claims/2025-05/", "pvc: claims-data"),
                (
                    "key/claims\n",
                    "key/claims\n    storageClass: gp3-encrypted\n",
                ),
            ],
        ),
    ];
    let world = World::production();
    for (name, edits) in cases {
        let e = world.eval(&edit(CLAIMS, edits));
        assert!(e.findings.is_empty(), "{name}: {:?}", e.findings);
    }
}

#[test]
fn kms_is_required_from_the_policy_classification() {
    let strict = edit(
        PRODUCTION,
        &[("requireKmsFrom: Confidential", "requireKmsFrom: Internal")],
    );
    let world = World::with_policies(&[&strict]);
    let e = world.eval(WEATHER);
    assert_findings(
        &e,
        &[(
            "A.8.24",
            "spec.encryption.kmsKey",
            Enforce,
            r#"A.8.24 Use of cryptography: dataset "weather" is Internal and has no KMS key"#,
        )],
    );
    // Under the baseline, Internal data needs no key.
    assert!(World::baseline().eval(WEATHER).findings.is_empty());
}

#[test]
fn lineage_never_downgrades_a_classification() {
    let derived = edit(
        CLAIMS,
        &[(
            "  credentialsSecret",
            "  derivedFrom: [claims-raw]\n  credentialsSecret",
        )],
    );

    let e = World::production()
        .with(&parent("claims-raw", "fraud", "Restricted"))
        .eval(&derived);
    assert_findings(
        &e,
        &[(
            "A.5.12",
            "spec.classification",
            Enforce,
            r#"A.5.12 Classification of information: dataset "claims" is Confidential but derives from "claims-raw", which is Restricted"#,
        )],
    );

    for same_or_lower in ["Confidential", "Internal", "Public"] {
        let e = World::production()
            .with(&parent("claims-raw", "fraud", same_or_lower))
            .eval(&derived);
        assert!(
            e.findings.is_empty(),
            "parent {same_or_lower}: {:?}",
            e.findings
        );
    }

    // Upgrading the derived dataset resolves the finding.
    let upgraded = edit(
        &derived,
        &[("classification: Confidential", "classification: Restricted")],
    );
    let e = World::production()
        .with(&parent("claims-raw", "fraud", "Restricted"))
        .eval(&upgraded);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
}

#[test]
fn lineage_to_a_missing_parent_cannot_be_verified() {
    let derived = edit(
        CLAIMS,
        &[(
            "  credentialsSecret",
            "  derivedFrom: [claims-raw]\n  credentialsSecret",
        )],
    );
    let expected: &[Expected<'_>] = &[(
        "A.5.12",
        "spec.derivedFrom[0]",
        Warn,
        r#"A.5.12 Classification of information: dataset "claims" derives from "claims-raw", which does not exist in namespace "fraud", so its classification cannot be verified"#,
    )];
    assert_findings(&World::production().eval(&derived), expected);
    // A parent of the same name in another namespace is not the parent.
    let e = World::production()
        .with(&parent("claims-raw", "marketing", "Public"))
        .eval(&derived);
    assert_findings(&e, expected);
}

#[test]
fn policies_whose_region_lists_have_nothing_in_common_allow_no_region() {
    // One policy keeps data in the EU, another in the US: together they allow no region, and
    // never "any region" (an empty intersection is not the absence of a list).
    let eu = "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: eu}
spec: {residency: {allowedRegions: [eu-west-1]}}
";
    let us = "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: us}
spec: {residency: {allowedRegions: [us-east-1]}}
";
    let e = World::with_policies(&[eu, us]).eval(CLAIMS);
    assert_findings(
        &e,
        &[(
            "A.5.34",
            "spec.residency.region",
            Enforce,
            r#"A.5.34 Privacy and protection of personal identifiable information (PII): dataset "claims" resides in "eu-west-1", outside the allowed regions []"#,
        )],
    );
}
