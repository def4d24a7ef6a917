//! Workloads (Pods and pod templates): A.5.12, A.5.15, A.5.18, A.8.2, A.8.3, A.8.9, A.8.12,
//! A.8.19, A.8.22. Dataset access and agent identity are in `pod_access.rs`.

use super::agent_policy::SUPPORT_AGENT;
use super::fixtures::*;
use crate::api::Action::Enforce;
use crate::api::ControlOutcome::{Excepted, Fail, NotApplicable, Pass};

pub const CONTROLS: &[&str] = &[
    "A.5.12", "A.5.15", "A.5.18", "A.8.2", "A.8.3", "A.8.9", "A.8.12", "A.8.19", "A.8.22",
];

/// Every workload kind with the YAML path of its pod template and the field path of its pod spec.
pub const KINDS: &[(&str, &str, &str)] = &[
    ("Pod", "v1", "spec"),
    ("Deployment", "apps/v1", "spec.template.spec"),
    ("StatefulSet", "apps/v1", "spec.template.spec"),
    ("DaemonSet", "apps/v1", "spec.template.spec"),
    ("ReplicaSet", "apps/v1", "spec.template.spec"),
    ("Job", "batch/v1", "spec.template.spec"),
    ("CronJob", "batch/v1", "spec.jobTemplate.spec.template.spec"),
];

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{}{l}\n", " ".repeat(by))
            }
        })
        .collect()
}

/// A workload of `kind` named `name` in `namespace`; `labels` and `spec` are the pod's labels
/// and pod spec, unindented YAML.
pub fn workload(kind: &str, name: &str, namespace: &str, labels: &str, spec: &str) -> String {
    let api = KINDS.iter().find(|k| k.0 == kind).map(|k| k.1).unwrap();
    let labels = format!("app: {name}\n{labels}");
    let head = format!(
        "apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
    );
    match kind {
        "Pod" => format!(
            "{head}  labels:\n{}spec:\n{}",
            indent(&labels, 4),
            indent(spec, 2)
        ),
        "CronJob" => format!(
            "{head}spec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels:\n{}        spec:\n{}",
            indent(&labels, 12),
            indent(spec, 10)
        ),
        "Job" => format!(
            "{head}spec:\n  template:\n    metadata:\n      labels:\n{}    spec:\n{}",
            indent(&labels, 8),
            indent(spec, 6)
        ),
        _ => format!(
            "{head}spec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n{}    spec:\n{}",
            indent(&labels, 8),
            indent(spec, 6)
        ),
    }
}

/// A GPU trainer placed on the baseline Internal pool.
pub const GPU_SPEC: &str = "\
nodeSelector:
  annexa.dev/gpu-pool: internal
tolerations:
  - key: annexa.dev/gpu-pool
    operator: Equal
    value: internal
    effect: NoSchedule
containers:
  - name: trainer
    image: registry.example.com/ml/trainer:2.1.0
    resources:
      limits:
        nvidia.com/gpu: 1
";

const UNPLACED_GPU_SPEC: &str = "\
containers:
  - name: trainer
    image: registry.example.com/ml/trainer:2.1.0
    resources:
      limits:
        nvidia.com/gpu: 1
";

#[test]
fn gpu_workloads_of_every_kind_need_the_pool_placement() {
    let world = World::baseline();
    for (kind, _, spec_path) in KINDS {
        let placed = world.eval(&workload(kind, "trainer", "fraud", "", GPU_SPEC));
        assert_clean(&placed, CONTROLS);
        assert_eq!(placed.object.kind, *kind);
        assert_outcome(&placed, "A.8.22", Pass);
        assert_outcome(&placed, "A.8.2", Pass);

        let noun = kind.to_ascii_lowercase();
        let unplaced = world.eval(&workload(kind, "trainer", "fraud", "", UNPLACED_GPU_SPEC));
        assert_findings(
            &unplaced,
            &[
                (
                    "A.8.22",
                    &format!("{spec_path}.nodeSelector"),
                    Enforce,
                    &format!(
                        r#"A.8.22 Segregation of networks: {noun} "trainer" requests GPUs for Internal data (no annexa.dev/classification label: Internal) but does not select the Internal pool (annexa.dev/gpu-pool=internal)"#
                    ),
                ),
                (
                    "A.8.22",
                    &format!("{spec_path}.tolerations"),
                    Enforce,
                    &format!(
                        r#"A.8.22 Segregation of networks: {noun} "trainer" requests GPUs for Internal data (no annexa.dev/classification label: Internal) but does not tolerate the Internal pool taint annexa.dev/gpu-pool=internal:NoSchedule"#
                    ),
                ),
            ],
        );
    }
}

#[test]
fn the_pool_follows_the_classification_label() {
    let world = World::baseline();
    // Labelled Confidential but placed on the Internal pool.
    let e = world.eval(&workload(
        "Deployment",
        "scorer",
        "fraud",
        "annexa.dev/classification: Confidential",
        GPU_SPEC,
    ));
    assert_findings(
        &e,
        &[
            (
                "A.8.22",
                "spec.template.spec.nodeSelector",
                Enforce,
                r#"A.8.22 Segregation of networks: deployment "scorer" requests GPUs for Confidential data (classified Confidential by label annexa.dev/classification) but does not select the Confidential pool (annexa.dev/gpu-pool=confidential)"#,
            ),
            (
                "A.8.22",
                "spec.template.spec.tolerations",
                Enforce,
                r#"A.8.22 Segregation of networks: deployment "scorer" requests GPUs for Confidential data (classified Confidential by label annexa.dev/classification) but does not tolerate the Confidential pool taint annexa.dev/gpu-pool=confidential:NoSchedule"#,
            ),
        ],
    );
    let confidential = GPU_SPEC.replace("internal", "confidential");
    let e = world.eval(&workload(
        "Deployment",
        "scorer",
        "fraud",
        "annexa.dev/classification: Confidential",
        &confidential,
    ));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    // An Exists toleration of the pool's key is as good as an exact one.
    let exists = confidential.replace(
        "    operator: Equal\n    value: confidential\n",
        "    operator: Exists\n",
    );
    let e = world.eval(&workload(
        "Deployment",
        "scorer",
        "fraud",
        "annexa.dev/classification: Confidential",
        &exists,
    ));
    assert!(e.findings.is_empty(), "{:?}", e.findings);

    // A label that is not a classification.
    let e = world.eval(&workload(
        "Deployment",
        "scorer",
        "fraud",
        "annexa.dev/classification: secret",
        GPU_SPEC,
    ));
    assert_findings(
        &e,
        &[(
            "A.8.22",
            "spec.template.metadata.labels[annexa.dev/classification]",
            Enforce,
            r#"A.8.22 Segregation of networks: deployment "scorer" has classification "secret", which is not Public, Internal, Confidential or Restricted"#,
        )],
    );
    let e = world.eval(&workload(
        "Pod",
        "scorer",
        "fraud",
        "annexa.dev/classification: secret",
        GPU_SPEC,
    ));
    assert_eq!(
        e.findings[0].path,
        "metadata.labels[annexa.dev/classification]"
    );
}

#[test]
fn policy_pools_with_a_runtime_class() {
    // The production policy has no Internal pool: Internal GPU work goes to the nearest
    // stricter pool (Confidential), which also requires the nvidia RuntimeClass.
    let world = World::production();
    let spec = "\
nodeSelector:
  gpu.example.com/pool: confidential
tolerations:
  - key: gpu.example.com/pool
    operator: Equal
    value: confidential
    effect: NoSchedule
containers:
  - name: trainer
    image: registry.example.com/ml/trainer@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c
    resources:
      limits:
        nvidia.com/gpu: 1
";
    let e = world.eval(&workload("Job", "retrain", "fraud", "", spec));
    assert_findings(
        &e,
        &[(
            "A.8.22",
            "spec.template.spec.runtimeClassName",
            Enforce,
            r#"A.8.22 Segregation of networks: job "retrain" requests GPUs for Internal data (no annexa.dev/classification label: Internal) but does not use runtimeClassName "nvidia" of the Confidential pool, the nearest stricter pool since none serves Internal data"#,
        )],
    );
    let with_runtime = format!("runtimeClassName: nvidia\n{spec}");
    let e = world.eval(&workload("Job", "retrain", "fraud", "", &with_runtime));
    assert_clean(&e, CONTROLS);
    // The wrong taint effect does not tolerate the pool.
    let wrong_effect = with_runtime.replace("effect: NoSchedule", "effect: NoExecute");
    let e = world.eval(&workload("Job", "retrain", "fraud", "", &wrong_effect));
    assert_eq!(e.findings.len(), 1);
    assert_eq!(e.findings[0].path, "spec.template.spec.tolerations");
}

#[test]
fn what_counts_as_a_gpu() {
    let world = World::baseline();
    let cases = [
        (
            "a limit",
            "    resources:\n      limits:\n        nvidia.com/gpu: 1\n",
            true,
        ),
        (
            "a request as a string",
            "    resources:\n      requests:\n        amd.com/gpu: \"2\"\n",
            true,
        ),
        (
            "zero GPUs",
            "    resources:\n      limits:\n        nvidia.com/gpu: 0\n",
            false,
        ),
        (
            "zero GPUs as a string",
            "    resources:\n      limits:\n        nvidia.com/gpu: \"0\"\n",
            false,
        ),
        (
            "another extended resource",
            "    resources:\n      limits:\n        example.com/fpga: 1\n",
            false,
        ),
        (
            "CPU only",
            "    resources:\n      limits:\n        cpu: \"4\"\n",
            false,
        ),
    ];
    for (name, resources, gpu) in cases {
        let spec = format!(
            "containers:\n  - name: trainer\n    image: registry.example.com/ml/trainer:2.1.0\n{resources}"
        );
        let e = world.eval(&workload("Pod", "trainer", "fraud", "", &spec));
        assert_eq!(!e.findings.is_empty(), gpu, "{name}: {:?}", e.findings);
        let expected = if gpu { Fail } else { Pass };
        assert_outcome(&e, "A.8.22", expected);
    }
    // An init container requesting a GPU makes the pod a GPU pod.
    let spec = "initContainers:\n  - name: warmup\n    image: registry.example.com/ml/warmup:1.0\n    resources:\n      limits:\n        nvidia.com/gpu: 1\ncontainers:\n  - name: app\n    image: registry.example.com/ml/app:1.0\n";
    assert_outcome(
        &world.eval(&workload("Pod", "trainer", "fraud", "", spec)),
        "A.8.22",
        Fail,
    );
    // A resource name the policy counts as a GPU.
    let policy = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: habana
spec:
  gpu:
    resourceNames: [habana.ai/gaudi]
"#;
    let spec = "containers:\n  - name: trainer\n    image: registry.example.com/ml/trainer:2.1.0\n    resources:\n      limits:\n        habana.ai/gaudi: 8\n";
    assert_outcome(
        &World::with_policies(&[policy]).eval(&workload("Pod", "trainer", "fraud", "", spec)),
        "A.8.22",
        Fail,
    );
    assert_outcome(
        &world.eval(&workload("Pod", "trainer", "fraud", "", spec)),
        "A.8.22",
        Pass,
    );
}

#[test]
fn pods_without_gpus_must_not_tolerate_gpu_pool_taints() {
    let world = World::baseline();
    let web = "\
tolerations:
  - key: annexa.dev/gpu-pool
    operator: Equal
    value: internal
    effect: NoSchedule
containers:
  - name: web
    image: registry.example.com/web/claims-ui:1.8.0
";
    let e = world.eval(&workload("Pod", "web", "fraud", "", web));
    assert_findings(
        &e,
        &[(
            "A.8.22",
            "spec.tolerations[0]",
            Enforce,
            r#"A.8.22 Segregation of networks: pod "web" requests no GPU but tolerates the taint of the Internal GPU pool"#,
        )],
    );
    assert_outcome_message(&e, "A.8.2", NotApplicable, "requests no GPU");

    // A blanket "tolerate everything" tolerates every pool (the first one is named).
    let everything = "tolerations:\n  - operator: Exists\ncontainers:\n  - name: web\n    image: registry.example.com/web/claims-ui:1.8.0\n";
    let e = world.eval(&workload("Deployment", "web", "fraud", "", everything));
    assert_findings(
        &e,
        &[(
            "A.8.22",
            "spec.template.spec.tolerations[0]",
            Enforce,
            r#"A.8.22 Segregation of networks: deployment "web" requests no GPU but tolerates the taint of the Public GPU pool"#,
        )],
    );

    // Unrelated tolerations are fine.
    let unrelated = web
        .replace(
            "key: annexa.dev/gpu-pool",
            "key: node.kubernetes.io/not-ready",
        )
        .replace(
            "    operator: Equal\n    value: internal\n    effect: NoSchedule\n",
            "    operator: Exists\n    effect: NoExecute\n",
        );
    let e = world.eval(&workload("Pod", "web", "fraud", "", &unrelated));
    assert_clean(&e, CONTROLS);
}

#[test]
fn gpu_pods_are_not_privileged() {
    let world = World::baseline();
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "privileged container",
            "        nvidia.com/gpu: 1\n",
            "        nvidia.com/gpu: 1\n    securityContext:\n      privileged: true\n",
            r#"spec.containers[0].securityContext.privileged|A.8.2 Privileged access rights: pod "trainer" requests GPUs and container "trainer" is privileged"#,
        ),
        (
            "host network",
            "containers:\n",
            "hostNetwork: true\ncontainers:\n",
            r#"spec.hostNetwork|A.8.2 Privileged access rights: pod "trainer" requests GPUs and uses hostNetwork"#,
        ),
        (
            "host PID",
            "containers:\n",
            "hostPID: true\ncontainers:\n",
            r#"spec.hostPID|A.8.2 Privileged access rights: pod "trainer" requests GPUs and uses hostPID"#,
        ),
        (
            "host IPC",
            "containers:\n",
            "hostIPC: true\ncontainers:\n",
            r#"spec.hostIPC|A.8.2 Privileged access rights: pod "trainer" requests GPUs and uses hostIPC"#,
        ),
        (
            "hostPath volume",
            "containers:\n",
            "volumes:\n  - name: nvidia-driver\n    hostPath:\n      path: /usr/local/nvidia\ncontainers:\n",
            r#"spec.volumes[0].hostPath|A.8.2 Privileged access rights: pod "trainer" requests GPUs and mounts hostPath volume "nvidia-driver""#,
        ),
    ];
    for (name, from, to, expected) in cases {
        let (path, message) = expected.split_once('|').unwrap();
        let e = world.eval(&workload(
            "Pod",
            "trainer",
            "fraud",
            "",
            &edit(GPU_SPEC, &[(from, to)]),
        ));
        assert_eq!(e.outcomes.len(), CONTROLS.len(), "{name}");
        assert_findings(&e, &[("A.8.2", path, Enforce, message)]);
    }
    // privileged: false is fine, and a privileged pod without GPUs is not this rule's concern.
    let e = world.eval(&workload(
        "Pod",
        "trainer",
        "fraud",
        "",
        &edit(
            GPU_SPEC,
            &[(
                "        nvidia.com/gpu: 1\n",
                "        nvidia.com/gpu: 1\n    securityContext:\n      privileged: false\n",
            )],
        ),
    ));
    assert_clean(&e, CONTROLS);
    let e = world.eval(&workload("Pod", "node-tuner", "fraud", "", "hostNetwork: true\ncontainers:\n  - name: tuner\n    image: registry.example.com/ops/tuner:1.0\n    securityContext:\n      privileged: true\n"));
    assert_clean(&e, CONTROLS);
}

#[test]
fn images_come_from_allowed_registries_and_are_pinned_in_production() {
    let spec = "\
runtimeClassName: nvidia
nodeSelector:
  gpu.example.com/pool: confidential
tolerations:
  - key: gpu.example.com/pool
    operator: Exists
initContainers:
  - name: fetch-weights
    image: docker.io/amazon/aws-cli:2.15.0
containers:
  - name: trainer
    image: registry.example.com/ml/trainer:2.1.0
    resources:
      limits:
        nvidia.com/gpu: 1
";
    let e = World::production().eval(&workload("Job", "retrain", "fraud", "", spec));
    assert_findings(
        &e,
        &[
            (
                "A.8.9",
                "spec.template.spec.initContainers[0].image",
                Enforce,
                r#"A.8.9 Configuration management: job "retrain" container "fetch-weights" uses image "docker.io/amazon/aws-cli:2.15.0", which is not pinned by digest (@sha256:)"#,
            ),
            (
                "A.8.9",
                "spec.template.spec.containers[0].image",
                Enforce,
                r#"A.8.9 Configuration management: job "retrain" container "trainer" uses image "registry.example.com/ml/trainer:2.1.0", which is not pinned by digest (@sha256:)"#,
            ),
            (
                "A.8.19",
                "spec.template.spec.initContainers[0].image",
                Enforce,
                r#"A.8.19 Installation of software on operational systems: job "retrain" container "fetch-weights" uses image "docker.io/amazon/aws-cli:2.15.0", which is not from an allowed registry ["registry.example.com/"]"#,
            ),
        ],
    );
    // Development without requireDigest: A.8.9 does not apply; any registry is allowed.
    let e = World::baseline().eval(&workload(
        "Job",
        "retrain",
        "fraud",
        "",
        "containers:\n  - name: trainer\n    image: docker.io/library/python:3.12\n",
    ));
    assert_clean(&e, CONTROLS);
    assert_outcome_message(&e, "A.8.9", NotApplicable, "digests are not required here");
}

#[test]
fn docker_hub_short_names_are_normalised_and_unparseable_images_refused() {
    let hub = edit(
        PRODUCTION,
        &[(
            r#"allowedRegistries: ["registry.example.com/"]"#,
            r#"allowedRegistries: ["docker.io/library/"]"#,
        )],
    );
    let world = World::with_policies(&[&hub]);
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // `nginx`, `library/nginx` and `docker.io/nginx` are all `docker.io/library/nginx`.
    for image in ["nginx", "library/nginx", "docker.io/nginx"] {
        let spec = format!("containers:\n  - name: web\n    image: {image}@{digest}\n");
        let e = world.eval(&workload("Pod", "web", "fraud", "", &spec));
        assert_outcome(&e, "A.8.19", Pass);
        assert_outcome(&e, "A.8.9", Pass);
    }
    let spec = format!("containers:\n  - name: web\n    image: Registry/Web@{digest}\n");
    let e = world.eval(&workload("Pod", "web", "fraud", "", &spec));
    assert_findings(
        &e,
        &[
            (
                "A.8.9",
                "spec.containers[0].image",
                Enforce,
                &format!(
                    r#"A.8.9 Configuration management: pod "web" container "web" uses image "Registry/Web@{digest}", which is not pinned by digest (@sha256:)"#
                ),
            ),
            (
                "A.8.19",
                "spec.containers[0].image",
                Enforce,
                &format!(
                    r#"A.8.19 Installation of software on operational systems: pod "web" container "web" uses image "Registry/Web@{digest}", which is not a valid image reference (invalid reference format), so not from an allowed registry ["docker.io/library/"]"#
                ),
            ),
        ],
    );
}

#[test]
fn agent_pods_use_short_lived_tokens_only() {
    let world = World::baseline().with(SUPPORT_AGENT);
    // The agent's pods carry its default pod label (A.8.12, see `pod_access`).
    let pod = |spec: &str| {
        workload(
            "Pod",
            "support-agent",
            "support",
            "annexa.dev/agent: support-agent",
            spec,
        )
    };
    let base = "\
serviceAccountName: support-agent
containers:
  - name: agent
    image: registry.example.com/agents/support-agent:1.4.2
";
    let projected = |seconds: &str| {
        format!(
            "{base}volumes:\n  - name: token\n    projected:\n      sources:\n        - serviceAccountToken:\n            audience: tickets.example.com\n{seconds}            path: token\n"
        )
    };
    assert_clean(&world.eval(&pod(base)), CONTROLS);
    assert_outcome(&world.eval(&pod(base)), "A.5.18", Pass);
    assert_clean(
        &world.eval(&pod(&format!(
            "automountServiceAccountToken: false\n{base}"
        ))),
        CONTROLS,
    );
    assert_clean(
        &world.eval(&pod(&projected("            expirationSeconds: 1800\n"))),
        CONTROLS,
    );

    assert_findings(
        &world.eval(&pod(&format!("automountServiceAccountToken: true\n{base}"))),
        &[(
            "A.5.18",
            "spec.automountServiceAccountToken",
            Enforce,
            r#"A.5.18 Access rights: pod "support-agent" runs as agent "support-agent" and automounts a service-account token"#,
        )],
    );
    let long = r#"A.5.18 Access rights: pod "support-agent" runs as agent "support-agent" and projects a token valid for 3600s, longer than its TTL of 30m"#;
    let path = "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds";
    assert_findings(
        &world.eval(&pod(&projected("            expirationSeconds: 3600\n"))),
        &[("A.5.18", path, Enforce, long)],
    );
    // Without expirationSeconds the API server issues a one-hour token.
    assert_findings(
        &world.eval(&pod(&projected(""))),
        &[("A.5.18", path, Enforce, long)],
    );

    // Pods of other service accounts, or in another namespace, are not agent pods.
    let other = base.replace(
        "serviceAccountName: support-agent",
        "serviceAccountName: web",
    );
    let e = world.eval(&pod(&format!(
        "automountServiceAccountToken: true\n{other}"
    )));
    assert_outcome_message(&e, "A.5.18", NotApplicable, "not an agent pod");
    let e = world.eval(&workload(
        "Pod",
        "support-agent",
        "fraud",
        "",
        &format!("automountServiceAccountToken: true\n{base}"),
    ));
    assert_outcome(&e, "A.5.18", NotApplicable);
}

#[test]
fn exceptions_turn_a_failure_into_excepted_until_they_expire() {
    let exception = |kind: &str, name: &str, expires_in_hours: i64| {
        edit(
            PRODUCTION,
            &[(
                "  retention:\n",
                &format!(
                    "  exceptions:\n    - control: A.8.22\n      kind: {kind}\n      name: {name}\n      reason: GPU burn-in test, ticket SEC-142\n      expires: \"{}\"\n  retention:\n",
                    hours_from_now(expires_in_hours)
                ),
            )],
        )
    };
    let unplaced = "\
runtimeClassName: nvidia
containers:
  - name: burn-in
    image: registry.example.com/ops/gpu-burn@sha256:9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c9f8e7d6c
    resources:
      limits:
        nvidia.com/gpu: 8
";
    let yaml = workload("Pod", "gpu-burn", "fraud", "", unplaced);

    for (kind, name) in [("Pod", "gpu-burn"), ("Workload", "gpu-burn")] {
        let e = World::with_policies(&[&exception(kind, name, 48)]).eval(&yaml);
        assert!(e.findings.is_empty(), "{kind}: {:?}", e.findings);
        assert_outcome_message(
            &e,
            "A.8.22",
            Excepted,
            r#"excepted by policy (GPU burn-in test, ticket SEC-142): A.8.22 Segregation of networks: pod "gpu-burn" requests GPUs for Internal data (no annexa.dev/classification label: Internal) but does not select the Confidential pool (gpu.example.com/pool=confidential), the nearest stricter pool since none serves Internal data; A.8.22 Segregation of networks: pod "gpu-burn" requests GPUs for Internal data (no annexa.dev/classification label: Internal) but does not tolerate the Confidential pool taint gpu.example.com/pool=confidential:NoSchedule, the nearest stricter pool since none serves Internal data"#,
        );
    }
    // Expired, another object, another kind: the exception does not apply.
    for (kind, name, hours) in [
        ("Pod", "gpu-burn", -1),
        ("Pod", "gpu-burn-2", 48),
        ("Deployment", "gpu-burn", 48),
    ] {
        let e = World::with_policies(&[&exception(kind, name, hours)]).eval(&yaml);
        assert_outcome(&e, "A.8.22", Fail);
        assert_eq!(e.findings.len(), 2, "{kind}/{name} {hours}h");
    }
    // Only the excepted control is excepted.
    let e = World::with_policies(&[&exception("Pod", "gpu-burn", 48)]).eval(&workload(
        "Pod",
        "gpu-burn",
        "fraud",
        "",
        &unplaced.replace("registry.example.com/ops/", "docker.io/ops/"),
    ));
    assert_outcome(&e, "A.8.22", Excepted);
    assert_outcome(&e, "A.8.19", Fail);
}
