//! Who may run a pod: dataset access through every reference form (A.8.3), classification that
//! follows the data (A.5.12, A.8.22), and agent identity (A.8.12, A.5.15).

use super::agent_policy::SUPPORT_AGENT;
use super::fixtures::{self, *};
use super::workload::{CONTROLS, GPU_SPEC, KINDS, workload};
use crate::api::Action::Enforce;
use crate::api::ControlOutcome::{NotApplicable, Pass};
use crate::policy::pod_access::{DataSource, data_reads};
use crate::policy::workload::Workload;

/// A Restricted dataset read through a Secret, only by `fraud-trainer`.
const CLAIMS_RAW: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims-raw, namespace: fraud}
spec:
  source: {uri: "s3://claims/raw/"}
  classification: Restricted
  owner: fraud-team
  access:
    allowedServiceAccounts: [fraud-trainer]
  credentialsSecret: claims-raw-s3-reader
"#;

/// A Confidential dataset on a claim, readable by `fraud-trainer` and `fraud-eval`.
const FEATURES: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: features, namespace: fraud}
spec:
  source: {pvc: features-pvc}
  classification: Confidential
  owner: fraud-team
  access:
    allowedServiceAccounts: [fraud-trainer, fraud-eval]
"#;

fn world() -> World {
    World::baseline().with(CLAIMS_RAW).with(FEATURES)
}

const IMAGE: &str = "registry.example.com/ml/trainer:2.1.0";

/// Every form in which a pod spec reads a Secret or a claim: the spec (unindented, without
/// `serviceAccountName`), the field path of the reference below the pod spec, what it reads.
fn reference_forms() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let c = format!("containers:\n  - name: trainer\n    image: {IMAGE}\n");
    vec![
        (
            "env valueFrom.secretKeyRef",
            format!(
                "{c}    env:\n      - {{name: PLAIN, value: x}}\n      - name: KEY\n        valueFrom:\n          secretKeyRef: {{name: claims-raw-s3-reader, key: key}}\n"
            ),
            "containers[0].env[1].valueFrom.secretKeyRef.name",
            "reads Secret \"claims-raw-s3-reader\"",
        ),
        (
            "envFrom secretRef",
            format!(
                "{c}    envFrom:\n      - configMapRef: {{name: settings}}\n      - secretRef: {{name: claims-raw-s3-reader}}\n"
            ),
            "containers[0].envFrom[1].secretRef.name",
            "reads Secret \"claims-raw-s3-reader\"",
        ),
        (
            "init container envFrom",
            format!(
                "initContainers:\n  - name: fetch\n    image: {IMAGE}\n    envFrom:\n      - secretRef: {{name: claims-raw-s3-reader}}\n{c}"
            ),
            "initContainers[0].envFrom[0].secretRef.name",
            "reads Secret \"claims-raw-s3-reader\"",
        ),
        (
            "ephemeral container env",
            format!(
                "{c}ephemeralContainers:\n  - name: debug\n    image: {IMAGE}\n    env:\n      - name: KEY\n        valueFrom:\n          secretKeyRef: {{name: claims-raw-s3-reader, key: key}}\n"
            ),
            "ephemeralContainers[0].env[0].valueFrom.secretKeyRef.name",
            "reads Secret \"claims-raw-s3-reader\"",
        ),
        (
            "secret volume",
            format!(
                "{c}volumes:\n  - name: creds\n    secret: {{secretName: claims-raw-s3-reader}}\n"
            ),
            "volumes[0].secret.secretName",
            "mounts Secret \"claims-raw-s3-reader\"",
        ),
        (
            "projected secret",
            format!(
                "{c}volumes:\n  - name: creds\n    projected:\n      sources:\n        - configMap: {{name: settings}}\n        - secret: {{name: claims-raw-s3-reader}}\n"
            ),
            "volumes[0].projected.sources[1].secret.name",
            "mounts Secret \"claims-raw-s3-reader\"",
        ),
        (
            "CSI nodePublishSecretRef",
            format!(
                "{c}volumes:\n  - name: bucket\n    csi:\n      driver: s3.csi.aws.com\n      nodePublishSecretRef: {{name: claims-raw-s3-reader}}\n"
            ),
            "volumes[0].csi.nodePublishSecretRef.name",
            "mounts Secret \"claims-raw-s3-reader\"",
        ),
        (
            "persistentVolumeClaim",
            format!(
                "{c}volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: features-pvc, readOnly: true}}\n"
            ),
            "volumes[0].persistentVolumeClaim.claimName",
            "mounts PersistentVolumeClaim \"features-pvc\"",
        ),
        (
            "ephemeral dataSource",
            format!(
                "{c}volumes:\n  - name: scratch\n    ephemeral:\n      volumeClaimTemplate:\n        spec:\n          accessModes: [ReadWriteOnce]\n          dataSource: {{kind: PersistentVolumeClaim, name: features-pvc}}\n"
            ),
            "volumes[0].ephemeral.volumeClaimTemplate.spec.dataSource.name",
            "clones PersistentVolumeClaim \"features-pvc\"",
        ),
        (
            "ephemeral dataSourceRef",
            format!(
                "{c}volumes:\n  - name: scratch\n    ephemeral:\n      volumeClaimTemplate:\n        spec:\n          accessModes: [ReadWriteOnce]\n          dataSourceRef: {{apiGroup: \"\", kind: PersistentVolumeClaim, name: features-pvc}}\n"
            ),
            "volumes[0].ephemeral.volumeClaimTemplate.spec.dataSourceRef.name",
            "clones PersistentVolumeClaim \"features-pvc\"",
        ),
    ]
}

#[test]
fn every_reference_form_needs_an_allowed_service_account() {
    let world = world();
    for (form, spec, at, reads) in reference_forms() {
        let (dataset, class, allowed, what_it_is) =
            if at.contains("Claim") || at.contains("dataSource") {
                (
                    "features",
                    "Confidential",
                    r#"["fraud-trainer", "fraud-eval"]"#,
                    "the data",
                )
            } else {
                (
                    "claims-raw",
                    "Restricted",
                    r#"["fraud-trainer"]"#,
                    "the credentials",
                )
            };
        for (kind, _, spec_path) in KINDS {
            let noun = kind.to_ascii_lowercase();
            // As `default` (no serviceAccountName): refused, naming dataset, path and readers.
            let refused = world.eval(&workload(kind, "job", "fraud", "", &spec));
            assert_findings(
                &refused,
                &[(
                    "A.8.3",
                    &format!("{spec_path}.{at}"),
                    Enforce,
                    &format!(
                        "A.8.3 Information access restriction: {noun} \"job\" runs as service account \"default\" and {reads} ({spec_path}.{at}), {what_it_is} of dataset \"{dataset}\" ({class}), which only {allowed} may read"
                    ),
                )],
            );
            // As another account, through the deprecated alias: refused the same way.
            let other = world.eval(&workload(
                kind,
                "job",
                "fraud",
                "",
                &format!("serviceAccount: web\n{spec}"),
            ));
            assert_eq!(other.denials().count(), 1, "{form} as web");
            assert!(
                other.findings[0]
                    .message
                    .contains("runs as service account \"web\""),
                "{form}: {}",
                other.findings[0].message
            );
            // As the allowed account: admitted.
            let allowed = world.eval(&workload(
                kind,
                "job",
                "fraud",
                "",
                &format!("serviceAccountName: fraud-trainer\n{spec}"),
            ));
            assert_clean(&allowed, CONTROLS);
            assert_outcome_message(
                &allowed,
                "A.8.3",
                Pass,
                &format!("runs as \"fraud-trainer\", allowed to read dataset(s) {dataset}"),
            );
        }
    }
}

#[test]
fn references_to_other_secrets_and_claims_are_not_dataset_reads() {
    let world = world();
    for (form, spec, ..) in reference_forms() {
        let spec = spec
            .replace("claims-raw-s3-reader", "web-tls")
            .replace("features-pvc", "scratch-pvc");
        let e = world.eval(&workload("Pod", "web", "fraud", "", &spec));
        assert_clean(&e, CONTROLS);
        assert_outcome_message(
            &e,
            "A.8.3",
            NotApplicable,
            "reads no dataset's credentials Secret or PersistentVolumeClaim",
        );
        // The same names in another namespace belong to no dataset.
        let e = world.eval(&workload(
            "Pod",
            "web",
            "elsewhere",
            "",
            &spec.replace("web-tls", "claims-raw-s3-reader"),
        ));
        assert!(e.findings.is_empty(), "{form}: {:?}", e.findings);
    }
    // A data source that is not a claim (a VolumeSnapshot of the same name) is not the claim.
    let snapshot = format!(
        "containers:\n  - name: t\n    image: {IMAGE}\nvolumes:\n  - name: s\n    ephemeral:\n      volumeClaimTemplate:\n        spec:\n          dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: features-pvc}}\n"
    );
    assert!(
        world
            .eval(&workload("Pod", "t", "fraud", "", &snapshot))
            .findings
            .is_empty()
    );
}

#[test]
fn a_dataset_with_no_readers_or_in_another_namespace_is_read_by_nobody() {
    let closed = CLAIMS_RAW.replace(
        "  access:\n    allowedServiceAccounts: [fraud-trainer]\n",
        "",
    );
    let world = World::baseline().with(&closed).with(FEATURES);
    let spec = format!(
        "serviceAccountName: fraud-trainer\ncontainers:\n  - name: t\n    image: {IMAGE}\n    envFrom:\n      - secretRef: {{name: claims-raw-s3-reader}}\n"
    );
    assert_findings(
        &world.eval(&workload("Pod", "t", "fraud", "", &spec)),
        &[(
            "A.8.3",
            "spec.containers[0].envFrom[0].secretRef.name",
            Enforce,
            r#"A.8.3 Information access restriction: pod "t" runs as service account "fraud-trainer" and reads Secret "claims-raw-s3-reader" (spec.containers[0].envFrom[0].secretRef.name), the credentials of dataset "claims-raw" (Restricted), which no service account may read (its access.allowedServiceAccounts is empty)"#,
        )],
    );
    // A clone of another namespace's claim (dataSourceRef.namespace) is checked against that
    // namespace's dataset, whose readers are its own accounts.
    let cross = format!(
        "serviceAccountName: fraud-trainer\ncontainers:\n  - name: t\n    image: {IMAGE}\nvolumes:\n  - name: s\n    ephemeral:\n      volumeClaimTemplate:\n        spec:\n          dataSourceRef: {{kind: PersistentVolumeClaim, name: features-pvc, namespace: fraud}}\n"
    );
    assert_findings(
        &world.eval(&workload("Pod", "t", "scratch", "", &cross)),
        &[(
            "A.8.3",
            "spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSourceRef.name",
            Enforce,
            r#"A.8.3 Information access restriction: pod "t" runs as service account "fraud-trainer" and clones PersistentVolumeClaim "features-pvc" (spec.volumes[0].ephemeral.volumeClaimTemplate.spec.dataSourceRef.name), the data of dataset "features" (Confidential), which lives in namespace "fraud": only its own service accounts may read it"#,
        )],
    );
}

#[test]
fn every_reference_is_reported_with_its_path() {
    let world = world();
    let spec = format!(
        "containers:\n  - name: a\n    image: {IMAGE}\n    envFrom:\n      - secretRef: {{name: claims-raw-s3-reader}}\n  - name: b\n    image: {IMAGE}\nvolumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: features-pvc}}\n"
    );
    let e = world.eval(&workload(
        "Pod",
        "mixed",
        "fraud",
        "",
        &format!("serviceAccountName: fraud-eval\n{spec}"),
    ));
    // fraud-eval may read features, not claims-raw.
    let paths: Vec<&str> = e.denials().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["spec.containers[0].envFrom[0].secretRef.name"]);
    let e = world.eval(&workload("Pod", "mixed", "fraud", "", &spec));
    let paths: Vec<&str> = e.denials().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.containers[0].envFrom[0].secretRef.name",
            "spec.volumes[0].persistentVolumeClaim.claimName"
        ]
    );
}

#[test]
fn data_reads_lists_every_form_once() {
    for (form, spec, at, _) in reference_forms() {
        let w = fixtures::workload(&workload("Deployment", "d", "fraud", "", &spec));
        let reads = data_reads(&w);
        assert_eq!(reads.len(), 1, "{form}: {reads:?}");
        assert_eq!(reads[0].path, format!("spec.template.spec.{at}"), "{form}");
        let source = if at.contains("Claim") || at.contains("dataSource") {
            DataSource::Claim
        } else {
            DataSource::Secret
        };
        assert_eq!(reads[0].source, source, "{form}");
        assert_eq!(reads[0].namespace, "fraud");
    }
}

// ---------------------------------------------------------------------------------------------
// Classification follows the data (A.5.12, A.8.22)

/// A GPU trainer of `fraud-trainer` on the Internal pool that reads `claims-raw` (Restricted).
fn gpu_reader(label: &str) -> String {
    workload(
        "Job",
        "train",
        "fraud",
        label,
        &format!(
            "serviceAccountName: fraud-trainer\n{GPU_SPEC}    envFrom:\n      - secretRef: {{name: claims-raw-s3-reader}}\n"
        ),
    )
}

#[test]
fn a_pod_reading_a_dataset_is_placed_for_the_datasets_classification() {
    let world = world();
    let at = "spec.template.spec.containers[0].envFrom[0].secretRef.name";
    // Labelled Public, on the Internal pool: the Restricted data decides, and says so.
    let e = world.eval(&gpu_reader("annexa.dev/classification: Public"));
    assert_findings(
        &e,
        &[
            (
                "A.8.22",
                "spec.template.spec.nodeSelector",
                Enforce,
                &format!(
                    r#"A.8.22 Segregation of networks: job "train" requests GPUs for Restricted data (from dataset "claims-raw" read at {at}; its label says "Public") but does not select the Restricted pool (annexa.dev/gpu-pool=restricted)"#
                ),
            ),
            (
                "A.8.22",
                "spec.template.spec.tolerations",
                Enforce,
                &format!(
                    r#"A.8.22 Segregation of networks: job "train" requests GPUs for Restricted data (from dataset "claims-raw" read at {at}; its label says "Public") but does not tolerate the Restricted pool taint annexa.dev/gpu-pool=restricted:NoSchedule"#
                ),
            ),
        ],
    );
    assert_outcome_message(
        &e,
        "A.5.12",
        Pass,
        &format!(
            r#"classified Restricted (from dataset "claims-raw" read at {at}; its label says "Public")"#
        ),
    );
    // Without a label, the same.
    let e = world.eval(&gpu_reader(""));
    assert!(
        e.findings[0]
            .message
            .contains("(from dataset \"claims-raw\" read at spec.template.spec.containers[0].envFrom[0].secretRef.name; it has no classification label)"),
        "{}",
        e.findings[0].message
    );
    // On the Restricted pool it passes, whatever the label says.
    let restricted =
        gpu_reader("annexa.dev/classification: Public").replace("internal", "restricted");
    let e = world.eval(&restricted);
    assert_clean(&e, CONTROLS);
    assert_outcome(&e, "A.8.22", Pass);
    // A label above the data's keeps the label's pool; the data is named in the note.
    let world = World::baseline().with(FEATURES);
    let reader = workload(
        "Pod",
        "t",
        "fraud",
        "annexa.dev/classification: Restricted",
        &format!(
            "serviceAccountName: fraud-eval\n{}volumes:\n  - name: d\n    persistentVolumeClaim: {{claimName: features-pvc}}\n",
            GPU_SPEC.replace("internal", "restricted")
        ),
    );
    let e = world.eval(&reader);
    assert_clean(&e, CONTROLS);
    assert_outcome_message(
        &e,
        "A.5.12",
        Pass,
        r#"classified Restricted by label annexa.dev/classification; reads dataset "features" (Confidential)"#,
    );
}

// ---------------------------------------------------------------------------------------------
// Agent identity (A.8.12, A.5.15)

const AGENT_SPEC: &str = "\
automountServiceAccountToken: false
containers:
  - name: agent
    image: registry.example.com/agents/support-agent:1.4.2
";

/// SUPPORT_AGENT with an explicit podSelector.
fn selected_agent() -> String {
    format!("{SUPPORT_AGENT}  podSelector:\n    matchLabels: {{app: support-agent, tier: agent}}\n")
}

#[test]
fn a_pod_running_as_the_agents_account_carries_its_labels() {
    for (agent, labels, selector) in [
        (
            SUPPORT_AGENT.to_string(),
            "annexa.dev/agent: support-agent",
            "annexa.dev/agent=support-agent",
        ),
        (
            selected_agent(),
            "tier: agent",
            "app=support-agent,tier=agent",
        ),
    ] {
        let world = World::baseline().with(&agent);
        let spec = format!("serviceAccountName: support-agent\n{AGENT_SPEC}");
        for (kind, _, spec_path) in KINDS {
            let noun = kind.to_ascii_lowercase();
            // `workload` labels every pod `app: <name>`.
            let labelled = world.eval(&workload(kind, "support-agent", "support", labels, &spec));
            assert_clean(&labelled, CONTROLS);
            assert_outcome_message(
                &labelled,
                "A.8.12",
                Pass,
                "agent \"support-agent\"'s pod: its egress NetworkPolicy selects it",
            );
            let metadata = spec_path.strip_suffix("spec").unwrap();
            let unlabelled = world.eval(&workload(kind, "support-agent", "support", "", &spec));
            assert_findings(
                &unlabelled,
                &[(
                    "A.8.12",
                    &format!("{metadata}metadata.labels"),
                    Enforce,
                    &format!(
                        "A.8.12 Data leakage prevention: {noun} \"support-agent\" runs as service account \"support-agent\" of agent \"support-agent\" but its labels ({metadata}metadata.labels) do not match the agent's podSelector ({selector}), so the agent's egress NetworkPolicy does not select it"
                    ),
                )],
            );
        }
    }
}

#[test]
fn a_pod_carrying_the_agents_labels_runs_as_its_account() {
    let world = World::baseline().with(&selected_agent());
    for (kind, _, spec_path) in KINDS {
        let noun = kind.to_ascii_lowercase();
        for (account, spec) in [
            ("default", AGENT_SPEC.to_string()),
            ("web", format!("serviceAccountName: web\n{AGENT_SPEC}")),
        ] {
            let e = world.eval(&workload(
                kind,
                "support-agent",
                "support",
                "tier: agent",
                &spec,
            ));
            assert_findings(
                &e,
                &[(
                    "A.5.15",
                    &format!("{spec_path}.serviceAccountName"),
                    Enforce,
                    &format!(
                        "A.5.15 Access control: {noun} \"support-agent\" matches the podSelector of agent \"support-agent\" (app=support-agent,tier=agent) but runs as service account \"{account}\" ({spec_path}.serviceAccountName), not the agent's \"support-agent\", so it holds rights outside the agent's least-privilege policy"
                    ),
                )],
            );
        }
    }
    // Pods that carry only part of the selector, or live in another namespace, are not the
    // agent's.
    let partial = world.eval(&workload("Pod", "support-agent", "support", "", AGENT_SPEC));
    assert_clean(&partial, CONTROLS);
    assert_outcome_message(&partial, "A.5.15", NotApplicable, "not an agent pod");
    assert_outcome_message(&partial, "A.8.12", NotApplicable, "not an agent pod");
    let elsewhere = world.eval(&workload(
        "Pod",
        "support-agent",
        "web",
        "tier: agent",
        AGENT_SPEC,
    ));
    assert_clean(&elsewhere, CONTROLS);
}

#[test]
fn agent_selectors_with_expressions_and_the_default_label() {
    // A set-based selector.
    let agent = format!(
        "{SUPPORT_AGENT}  podSelector:\n    matchExpressions:\n      - {{key: role, operator: In, values: [agent, agent-canary]}}\n"
    );
    let world = World::baseline().with(&agent);
    let as_agent = format!("serviceAccountName: support-agent\n{AGENT_SPEC}");
    assert_clean(
        &world.eval(&workload(
            "Pod",
            "a",
            "support",
            "role: agent-canary",
            &as_agent,
        )),
        CONTROLS,
    );
    let e = world.eval(&workload("Pod", "a", "support", "role: web", &as_agent));
    assert_eq!(
        e.denials().map(|f| f.control).collect::<Vec<_>>(),
        ["A.8.12"]
    );
    assert!(
        e.findings[0]
            .message
            .contains("(role in (agent, agent-canary))")
    );
    let e = world.eval(&workload("Pod", "a", "support", "role: agent", AGENT_SPEC));
    assert_eq!(
        e.denials().map(|f| f.control).collect::<Vec<_>>(),
        ["A.5.15"]
    );
    // The default selector is the policy's name, not its account's.
    let renamed = SUPPORT_AGENT.replace("  name: support-agent\n", "  name: helpdesk\n");
    let world = World::baseline().with(&renamed);
    let e = world.eval(&workload(
        "Pod",
        "a",
        "support",
        "annexa.dev/agent: helpdesk",
        &as_agent,
    ));
    assert_clean(&e, CONTROLS);
    let e = world.eval(&workload(
        "Pod",
        "a",
        "support",
        "annexa.dev/agent: support-agent",
        &as_agent,
    ));
    assert_eq!(
        e.denials().map(|f| f.control).collect::<Vec<_>>(),
        ["A.8.12"]
    );
}

// ---------------------------------------------------------------------------------------------
// Background audit: running pods, as the controllers list them

fn pod_workload(name: &str, namespace: &str, labels: &str, spec: &str) -> Workload {
    fixtures::workload(&workload("Pod", name, namespace, labels, spec))
}

fn dataset_object(yaml: &str) -> crate::api::TrainingDataset {
    match object(yaml) {
        Object::Dataset(d) => d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_dataset_audit_names_running_pods_that_read_it_unallowed() {
    use crate::policy::pod_access::{listed, unallowed_readers};
    let env_from = |sa: &str, secret: &str| {
        format!(
            "{sa}containers:\n  - name: c\n    image: {IMAGE}\n    envFrom:\n      - secretRef: {{name: {secret}}}\n"
        )
    };
    let pods = vec![
        pod_workload(
            "as-default",
            "fraud",
            "",
            &env_from("", "claims-raw-s3-reader"),
        ),
        pod_workload(
            "as-trainer",
            "fraud",
            "",
            &env_from(
                "serviceAccountName: fraud-trainer\n",
                "claims-raw-s3-reader",
            ),
        ),
        pod_workload("other-secret", "fraud", "", &env_from("", "web-tls")),
        pod_workload(
            "elsewhere",
            "web",
            "",
            &env_from("", "claims-raw-s3-reader"),
        ),
    ];
    let found = unallowed_readers(&dataset_object(CLAIMS_RAW), &pods);
    assert_eq!(
        found,
        [r#"fraud/as-default as "default" (spec.containers[0].envFrom[0].secretRef.name)"#]
    );
    // The claim of another dataset is not this one's.
    let claim = format!(
        "serviceAccountName: web\ncontainers:\n  - name: c\n    image: {IMAGE}\nvolumes:\n  - name: d\n    persistentVolumeClaim: {{claimName: features-pvc}}\n"
    );
    let pods = vec![pod_workload("mounts", "fraud", "", &claim)];
    assert!(unallowed_readers(&dataset_object(CLAIMS_RAW), &pods).is_empty());
    assert_eq!(
        unallowed_readers(&dataset_object(FEATURES), &pods),
        [r#"fraud/mounts as "web" (spec.volumes[0].persistentVolumeClaim.claimName)"#]
    );
    // Long lists are capped in the condition.
    let many: Vec<String> = (0..25).map(|i| format!("p{i}")).collect();
    let text = listed(&many);
    assert!(text.starts_with("25 pod(s): p0, p1"), "{text}");
    assert!(text.ends_with("p19 and 5 more"), "{text}");
}

#[test]
fn the_agent_audit_names_pods_whose_account_and_labels_disagree() {
    use crate::policy::pod_access::agent_pod_mismatches;
    let agent = match object(SUPPORT_AGENT) {
        Object::Agent(a) => a,
        other => panic!("{other:?}"),
    };
    let as_agent = format!("serviceAccountName: support-agent\n{AGENT_SPEC}");
    let pods = vec![
        pod_workload(
            "ok",
            "support",
            "annexa.dev/agent: support-agent",
            &as_agent,
        ),
        pod_workload("unlabelled", "support", "", &as_agent),
        pod_workload(
            "impostor",
            "support",
            "annexa.dev/agent: support-agent",
            AGENT_SPEC,
        ),
        pod_workload("web", "support", "", AGENT_SPEC),
        pod_workload(
            "elsewhere",
            "web",
            "annexa.dev/agent: support-agent",
            AGENT_SPEC,
        ),
    ];
    assert_eq!(
        agent_pod_mismatches(&agent, &pods),
        [
            r#"support/unlabelled runs as "support-agent" without the agent's pod labels (A.8.12: outside its egress policy)"#,
            r#"support/impostor carries the agent's pod labels but runs as "default" (A.5.15: outside its least-privilege role)"#,
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The pods Annexa builds for a ModelDeployment follow the same rule

#[test]
fn a_models_pods_mount_a_datasets_credentials_only_if_its_account_may_read_them() {
    use super::model_deployment::FRAUD;
    let claims = r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims, namespace: fraud}
spec:
  source: {uri: "s3://claims/", sha256: "sha256:a61808fe40feb8b3433778bbc2ececcaa47c8c47fc1657f054c239efd3f0e984"}
  classification: Confidential
  owner: fraud-team
  encryption: {kmsKey: "arn:aws:kms:eu-west-1:111122223333:key/claims"}
  retention: {period: 90d}
  access:
    allowedServiceAccounts: [fraud-trainer]
  credentialsSecret: fraud-tls
"#;
    let world = World::baseline().with(claims);
    let model = FRAUD.replace("tlsSecret: fraud-detection-tls", "tlsSecret: fraud-tls");
    assert!(model.contains("tlsSecret: fraud-tls"), "{model}");
    let e = world.eval(&model);
    let denials: Vec<(&str, &str, &str)> = e
        .denials()
        .filter(|f| f.control == "A.8.3")
        .map(|f| (f.control, f.path.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        denials,
        [(
            "A.8.3",
            "spec.serving.tlsSecret",
            r#"A.8.3 Information access restriction: model "fraud-detection"'s pods run as service account "fraud-detection" and would mount Secret "fraud-tls" (spec.serving.tlsSecret), the credentials of dataset "claims" (Confidential), which only ["fraud-trainer"] may read"#
        )]
    );
    // Allowed for the model's own account: no A.8.3 finding.
    let allowed = claims.replace("[fraud-trainer]", "[fraud-trainer, fraud-detection]");
    let e = World::baseline().with(&allowed).eval(&model);
    assert!(
        e.findings.iter().all(|f| f.control != "A.8.3"),
        "{:?}",
        e.findings
    );
}
