//! Every way a pod reaches a GPU gets the same rules (A.8.22, A.8.2): MIG slices and shared
//! GPUs, DRA claims through a template or a claim (unresolvable ones fail closed), pinning to a
//! pool node, device-visibility variables and a pool's runtimeClass on pods without GPUs; and
//! ephemeral containers are checked like containers (A.8.19, A.8.9, A.8.2).

use super::fixtures::*;
use crate::api::Action::Enforce;
use crate::api::ControlOutcome::{NotApplicable, Pass};
use crate::policy::profile::name_matches;

const CONTROLS: &[&str] = &[
    "A.5.12", "A.5.15", "A.5.18", "A.8.2", "A.8.3", "A.8.9", "A.8.12", "A.8.19", "A.8.22",
];

const IMAGE: &str = "registry.example.com/ml/trainer@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The Restricted pool's placement under the production policy.
const PLACEMENT: &str = "\
nodeSelector:
  gpu.example.com/pool: restricted
tolerations:
  - key: gpu.example.com/pool
    operator: Equal
    value: restricted
    effect: NoSchedule
runtimeClassName: kata-nvidia
";

/// A Restricted pod named `trainer` in the production namespace; `spec` is its pod spec.
fn pod(spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: trainer\n  namespace: fraud-prod\n  labels:\n    annexa.dev/classification: Restricted\nspec:\n{spec}"
    )
}

/// One container with this resources/env/securityContext block (indented under the container).
fn container(extra: &str) -> String {
    let extra: String = extra.lines().map(|l| format!("    {l}\n")).collect();
    format!("containers:\n  - name: trainer\n    image: {IMAGE}\n{extra}")
}

/// The three placement findings of a Restricted GPU pod without placement; `via` is what the
/// messages say about how it requests GPUs.
fn unplaced(via: &str) -> Vec<(String, String)> {
    let what = format!(
        r#"A.8.22 Segregation of networks: pod "trainer" requests GPUs{via} for Restricted data (classified Restricted by label annexa.dev/classification)"#
    );
    vec![
        (
            "spec.nodeSelector".to_string(),
            format!(
                "{what} but does not select the Restricted pool (gpu.example.com/pool=restricted)"
            ),
        ),
        (
            "spec.tolerations".to_string(),
            format!(
                "{what} but does not tolerate the Restricted pool taint gpu.example.com/pool=restricted:NoSchedule"
            ),
        ),
        (
            "spec.runtimeClassName".to_string(),
            format!(
                r#"{what} but does not use runtimeClassName "kata-nvidia" of the Restricted pool"#
            ),
        ),
    ]
}

#[track_caller]
fn assert_owned_findings(e: &crate::policy::Evaluation, expected: &[(&str, String, String)]) {
    let expected: Vec<(&str, &str, crate::api::Action, &str)> = expected
        .iter()
        .map(|(c, p, m)| (*c, p.as_str(), Enforce, m.as_str()))
        .collect();
    assert_findings(e, &expected);
}

fn a822(findings: Vec<(String, String)>) -> Vec<(&'static str, String, String)> {
    findings
        .into_iter()
        .map(|(p, m)| ("A.8.22", p, m))
        .collect()
}

#[test]
fn mig_slices_and_shared_gpus_are_gpu_requests() {
    let world = World::production();
    for resource in [
        "nvidia.com/mig-1g.10gb",
        "nvidia.com/mig-3g.40gb.shared",
        "nvidia.com/gpu.shared",
        "gpu.intel.com/i915",
    ] {
        let requests = format!("resources:\n  limits:\n    {resource}: 1\n");
        let privileged = format!("{requests}securityContext:\n  privileged: true\n");
        // Privileged and unplaced: refused on A.8.2 and A.8.22, naming the fields.
        let e = world.eval(&pod(&container(&privileged)));
        let mut expected = vec![(
            "A.8.2",
            "spec.containers[0].securityContext.privileged".to_string(),
            r#"A.8.2 Privileged access rights: pod "trainer" requests GPUs and container "trainer" is privileged"#.to_string(),
        )];
        expected.extend(a822(unplaced("")));
        assert_owned_findings(&e, &expected);
        // Placed on its pool and unprivileged: compliant.
        let e = world.eval(&pod(&format!("{PLACEMENT}{}", container(&requests))));
        assert_clean(&e, CONTROLS);
        assert_outcome(&e, "A.8.2", Pass);
    }
    // Names outside every pattern are not GPUs.
    let e = world.eval(&pod(&container(
        "resources:\n  limits:\n    example.com/fpga: 1\n",
    )));
    assert_clean(&e, CONTROLS);
    assert_outcome_message(&e, "A.8.2", NotApplicable, "requests no GPU");
}

#[test]
fn policy_patterns_and_the_union_of_definitions() {
    let habana = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: habana}
spec:
  gpu:
    resourceNames: ["habana.ai/*"]
    deviceClassNames: ["*.habana.ai"]
"#;
    let world = World::with_policies(&[habana]);
    assert!(world.profile.is_gpu_resource("habana.ai/gaudi2"));
    assert!(
        !world.profile.is_gpu_resource("nvidia.com/gpu"),
        "the policy's own list replaces the defaults"
    );
    assert!(world.profile.is_gpu_device_class("gaudi.habana.ai"));
    // With a second policy that leaves the definition to the defaults, both count.
    let world = World::with_policies(&[habana, PRODUCTION]);
    assert!(world.profile.is_gpu_resource("habana.ai/gaudi2"));
    assert!(world.profile.is_gpu_resource("nvidia.com/mig-1g.10gb"));
    assert!(world.profile.is_gpu_device_class("mig.nvidia.com"));
    assert_eq!(world.profile.default_gpu_resource(), Some("nvidia.com/gpu"));

    for (pattern, name, matches) in [
        ("nvidia.com/mig-*", "nvidia.com/mig-1g.10gb", true),
        ("nvidia.com/mig-*", "nvidia.com/gpu", false),
        ("nvidia.com/gpu", "nvidia.com/gpu.shared", false),
        ("nvidia.com/gpu.*", "nvidia.com/gpu.shared", true),
        ("gpu.intel.com/*", "gpu.intel.com/xe", true),
        ("*.nvidia.com", "gpu.nvidia.com", true),
        ("*.nvidia.com", "gpu.nvidia.com.evil.io", false),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxcyyb", false),
        ("ab*ba", "aba", false),
    ] {
        assert_eq!(name_matches(pattern, name), matches, "{pattern} ~ {name}");
    }
}

const GPU_TEMPLATE: &str = r#"
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: one-gpu, namespace: fraud-prod}
spec:
  spec:
    devices:
      requests:
        - name: gpu
          exactly:
            deviceClassName: gpu.nvidia.com
            selectors:
              - cel: {expression: "device.attributes['gpu.nvidia.com'].productName == 'H100'"}
"#;

const MIG_CLAIM: &str = r#"
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: shared-slice, namespace: fraud-prod}
spec:
  devices:
    requests:
      - name: slice
        firstAvailable:
          - {name: small, deviceClassName: mig.nvidia.com}
          - {name: whole, deviceClassName: gpu.nvidia.com}
"#;

const NIC_TEMPLATE: &str = r#"
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: rdma, namespace: fraud-prod}
spec:
  spec:
    devices:
      requests:
        - name: nic
          exactly: {deviceClassName: rdma.example.com}
"#;

fn with_claim(source: &str) -> String {
    format!(
        "resourceClaims:\n  - name: gpu\n    {source}\n{}",
        container("resources:\n  claims:\n    - name: gpu\nsecurityContext:\n  privileged: true\n")
    )
}

#[test]
fn dra_claims_of_gpu_device_classes_are_gpu_requests() {
    let world = World::production()
        .with(GPU_TEMPLATE)
        .with(MIG_CLAIM)
        .with(NIC_TEMPLATE);
    for (source, via) in [
        (
            "resourceClaimTemplateName: one-gpu",
            r#" through resource claim "gpu" (DeviceClass "gpu.nvidia.com")"#,
        ),
        (
            "resourceClaimName: shared-slice",
            r#" through resource claim "gpu" (DeviceClass "mig.nvidia.com")"#,
        ),
    ] {
        let e = world.eval(&pod(&with_claim(source)));
        let mut expected = vec![(
            "A.8.2",
            "spec.containers[0].securityContext.privileged".to_string(),
            format!(
                r#"A.8.2 Privileged access rights: pod "trainer" requests GPUs{via} and container "trainer" is privileged"#
            ),
        )];
        expected.extend(a822(unplaced(via)));
        assert_owned_findings(&e, &expected);
        // The compliant variant: placed, unprivileged.
        let compliant = format!(
            "{PLACEMENT}resourceClaims:\n  - name: gpu\n    {source}\n{}",
            container("resources:\n  claims:\n    - name: gpu\n")
        );
        assert_clean(&world.eval(&pod(&compliant)), CONTROLS);
    }
    // A claim for a DeviceClass that is not a GPU class is not a GPU request.
    let e = world.eval(&pod(&with_claim("resourceClaimTemplateName: rdma")));
    assert_clean(&e, CONTROLS);
    assert_outcome_message(&e, "A.8.2", NotApplicable, "requests no GPU");
}

#[test]
fn an_unresolvable_claim_counts_as_a_gpu_request() {
    let world = World::production();
    let e = world.eval(&pod(&with_claim("resourceClaimTemplateName: one-gpu")));
    let via = r#" through resource claim "gpu" (ResourceClaimTemplate "one-gpu" is not found in namespace "fraud-prod"; a claim that cannot be resolved counts as a GPU request)"#;
    let mut expected = vec![(
        "A.8.2",
        "spec.containers[0].securityContext.privileged".to_string(),
        format!(
            r#"A.8.2 Privileged access rights: pod "trainer" requests GPUs{via} and container "trainer" is privileged"#
        ),
    )];
    expected.extend(a822(unplaced(via)));
    assert_owned_findings(&e, &expected);
    // The same claim from another namespace does not resolve it either.
    let elsewhere = GPU_TEMPLATE.replace("namespace: fraud-prod", "namespace: other");
    let e = World::production()
        .with(&elsewhere)
        .eval(&pod(&with_claim("resourceClaimTemplateName: one-gpu")));
    assert_eq!(e.denials().count(), 4);
    // Placed and unprivileged, an unresolvable claim is admitted like any GPU pod.
    let compliant = format!(
        "{PLACEMENT}resourceClaims:\n  - name: gpu\n    resourceClaimName: missing\n{}",
        container("")
    );
    assert_clean(&world.eval(&pod(&compliant)), CONTROLS);
}

const RESTRICTED_NODE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: gpu-r-1
  labels: {gpu.example.com/pool: restricted, kubernetes.io/hostname: gpu-r-1}
spec:
  taints:
    - {key: gpu.example.com/pool, value: restricted, effect: NoSchedule}
"#;

const TAINTED_ONLY_NODE: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: gpu-c-9}
spec:
  taints:
    - {key: gpu.example.com/pool, value: confidential, effect: NoSchedule}
"#;

const CPU_NODE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: cpu-1
  labels: {kubernetes.io/hostname: cpu-1}
"#;

#[test]
fn pinning_to_a_pool_node_needs_the_pool_rules() {
    let world = World::production()
        .with(RESTRICTED_NODE)
        .with(TAINTED_ONLY_NODE)
        .with(CPU_NODE);
    let cpu_container = container("");
    // spec.nodeName skips the scheduler and the taint: the pool's rules apply.
    let e = world.eval(&pod(&format!("nodeName: gpu-r-1\n{cpu_container}")));
    assert_owned_findings(
        &e,
        &a822(unplaced(
            r#" by pinning spec.nodeName to node "gpu-r-1" of the Restricted GPU pool"#,
        )),
    );
    let e = world.eval(&pod(&format!(
        "nodeName: gpu-r-1\n{PLACEMENT}{cpu_container}"
    )));
    assert_clean(&e, CONTROLS);
    // A required node affinity on the hostname label, or on the node's name (as DaemonSet
    // pods carry), is the same pinning.
    let affinity = "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms:\n        - matchExpressions:\n            - {key: kubernetes.io/hostname, operator: In, values: [cpu-1, gpu-r-1]}\n";
    let e = world.eval(&pod(&format!("{affinity}{cpu_container}")));
    assert_owned_findings(
        &e,
        &a822(unplaced(
            r#" by pinning spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0] to node "gpu-r-1" of the Restricted GPU pool"#,
        )),
    );
    let fields = affinity
        .replace("matchExpressions", "matchFields")
        .replace("kubernetes.io/hostname", "metadata.name");
    assert_eq!(
        world
            .eval(&pod(&format!("{fields}{cpu_container}")))
            .denials()
            .count(),
        3
    );
    // A node known only by its pool taint is a pool node too; pinned there, a Restricted pod
    // is on the wrong pool.
    let e = world.eval(&pod(&format!(
        "nodeName: gpu-c-9\n{PLACEMENT}{cpu_container}"
    )));
    assert_findings(
        &e,
        &[(
            "A.8.22",
            "spec.nodeName",
            Enforce,
            r#"A.8.22 Segregation of networks: pod "trainer" is pinned to node "gpu-c-9" of the Confidential GPU pool, but its Restricted data belongs on the Restricted pool"#,
        )],
    );
    // A node outside every pool is no concern; an unknown one fails closed.
    assert_clean(
        &world.eval(&pod(&format!("nodeName: cpu-1\n{cpu_container}"))),
        CONTROLS,
    );
    let e = world.eval(&pod(&format!("nodeName: gpu-x-7\n{cpu_container}")));
    assert_owned_findings(
        &e,
        &a822(unplaced(
            r#" by pinning spec.nodeName to node "gpu-x-7", which is not known (a pinned node that cannot be resolved counts as a GPU node)"#,
        )),
    );
}

#[test]
fn pods_without_gpus_may_not_reach_them_through_the_runtime() {
    let world = World::production();
    let e = world.eval(&pod(&container(
        "env:\n  - {name: MODEL, value: fraud}\n  - {name: NVIDIA_VISIBLE_DEVICES, value: all}\n",
    )));
    assert_findings(
        &e,
        &[(
            "A.8.22",
            "spec.containers[0].env[1]",
            Enforce,
            r#"A.8.22 Segregation of networks: pod "trainer" requests no GPU but container "trainer" sets NVIDIA_VISIBLE_DEVICES, which makes a GPU runtime expose the node's GPUs"#,
        )],
    );
    for variable in [
        "ROCR_VISIBLE_DEVICES",
        "AMD_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "ZE_AFFINITY_MASK",
    ] {
        let e = world.eval(&pod(&container(&format!(
            "env:\n  - {{name: {variable}, value: '0'}}\n"
        ))));
        assert_eq!(e.denials().count(), 1, "{variable}");
        assert_eq!(e.findings[0].path, "spec.containers[0].env[0]");
    }
    // From a ConfigMap key it is set all the same.
    let e = world.eval(&pod(&container(
        "env:\n  - name: NVIDIA_VISIBLE_DEVICES\n    valueFrom: {configMapKeyRef: {name: gpus, key: all}}\n",
    )));
    assert_eq!(e.denials().count(), 1);
    // `void` and `none` hide every GPU: allowed.
    for value in ["void", "none"] {
        let e = world.eval(&pod(&container(&format!(
            "env:\n  - {{name: NVIDIA_VISIBLE_DEVICES, value: {value}}}\n"
        ))));
        assert_clean(&e, CONTROLS);
    }
    // A GPU pod on its pool may set them (the device plugin decides what it gets).
    let e = world.eval(&pod(&format!(
        "{PLACEMENT}{}",
        container("resources:\n  limits:\n    nvidia.com/gpu: 1\nenv:\n  - {name: NVIDIA_DRIVER_CAPABILITIES, value: 'compute,utility'}\n")
    )));
    assert_clean(&e, CONTROLS);
    // A pool's runtimeClass is for GPU pods only.
    let e = world.eval(&pod(&format!(
        "runtimeClassName: kata-nvidia\n{}",
        container("")
    )));
    assert_findings(
        &e,
        &[(
            "A.8.22",
            "spec.runtimeClassName",
            Enforce,
            r#"A.8.22 Segregation of networks: pod "trainer" requests no GPU but uses runtimeClassName "kata-nvidia" of the Restricted GPU pool"#,
        )],
    );
    assert_clean(
        &world.eval(&pod(&format!(
            "runtimeClassName: gvisor\n{}",
            container("")
        ))),
        CONTROLS,
    );
}

const DEBUG_POLICY: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: debugging}
spec:
  images:
    debugRegistries: ["debug.example.com/"]
"#;

fn debugged(debug: &str) -> String {
    let debug: String = debug.lines().map(|l| format!("    {l}\n")).collect();
    pod(&format!(
        "{PLACEMENT}{}ephemeralContainers:\n  - name: debugger\n    targetContainerName: trainer\n{debug}",
        container("resources:\n  limits:\n    nvidia.com/gpu: 1\n")
    ))
}

#[test]
fn ephemeral_containers_are_checked_like_containers() {
    let world = World::production();
    // `kubectl debug --profile=sysadmin --image=busybox` on a Restricted GPU pod.
    let e = world.eval(&debugged(
        "image: busybox:1.36\nsecurityContext:\n  privileged: true\n",
    ));
    assert_findings(
        &e,
        &[
            (
                "A.8.2",
                "spec.ephemeralContainers[0].securityContext.privileged",
                Enforce,
                r#"A.8.2 Privileged access rights: pod "trainer" requests GPUs and ephemeral container "debugger" is privileged"#,
            ),
            (
                "A.8.9",
                "spec.ephemeralContainers[0].image",
                Enforce,
                r#"A.8.9 Configuration management: pod "trainer" ephemeral container "debugger" uses image "busybox:1.36", which is not pinned by digest (@sha256:)"#,
            ),
            (
                "A.8.19",
                "spec.ephemeralContainers[0].image",
                Enforce,
                r#"A.8.19 Installation of software on operational systems: pod "trainer" ephemeral container "debugger" uses image "busybox:1.36", which is not from an allowed registry ["registry.example.com/"]"#,
            ),
        ],
    );
    // From an allowed registry, pinned and unprivileged: admitted.
    assert_clean(
        &world.eval(&debugged(&format!("image: {IMAGE}\n"))),
        CONTROLS,
    );

    // A policy may allow debug images from a named registry: the digest rule still holds and
    // privilege on a GPU pod never passes.
    let production_debug = edit(
        PRODUCTION,
        &[(
            "    requireDigest: true\n",
            "    requireDigest: true\n    debugRegistries: [\"debug.example.com/\"]\n",
        )],
    );
    let world = World::with_policies(&[&production_debug]);
    assert_eq!(world.profile.debug_registries, ["debug.example.com/"]);
    let pinned_debug = "image: debug.example.com/tools@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
    assert_clean(&world.eval(&debugged(pinned_debug)), CONTROLS);
    let e = world.eval(&debugged(&format!(
        "{pinned_debug}securityContext:\n  privileged: true\n"
    )));
    assert_eq!(
        e.findings
            .iter()
            .map(|f| (f.control, f.path.as_str()))
            .collect::<Vec<_>>(),
        [(
            "A.8.2",
            "spec.ephemeralContainers[0].securityContext.privileged"
        )]
    );
    let e = world.eval(&debugged("image: debug.example.com/tools:latest\n"));
    assert_eq!(
        e.findings
            .iter()
            .map(|f| (f.control, f.path.as_str()))
            .collect::<Vec<_>>(),
        [("A.8.9", "spec.ephemeralContainers[0].image")]
    );
    // Debug registries are for ephemeral containers only.
    let e = world.eval(&pod(
        "containers:\n  - name: trainer\n    image: debug.example.com/tools@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    ));
    assert_eq!(
        e.findings
            .iter()
            .map(|f| (f.control, f.path.as_str()))
            .collect::<Vec<_>>(),
        [("A.8.19", "spec.containers[0].image")]
    );
    // A policy that lists no debug registry allows none (strictest wins).
    assert!(
        World::with_policies(&[PRODUCTION, DEBUG_POLICY])
            .profile
            .debug_registries
            .is_empty()
    );
    let other = DEBUG_POLICY.replace("debugging", "other").replace(
        "debugRegistries: [\"debug.example.com/\"]",
        "requireDigest: true",
    );
    assert!(
        World::with_policies(&[DEBUG_POLICY, &other])
            .profile
            .debug_registries
            .is_empty()
    );

    // Device-visibility variables on an ephemeral container of a pod without GPUs.
    let e = World::production().eval(&pod(&format!(
        "{}ephemeralContainers:\n  - name: debugger\n    image: {IMAGE}\n    env:\n      - {{name: NVIDIA_VISIBLE_DEVICES, value: all}}\n",
        container("")
    )));
    assert_eq!(
        e.findings
            .iter()
            .map(|f| (f.control, f.path.as_str()))
            .collect::<Vec<_>>(),
        [("A.8.22", "spec.ephemeralContainers[0].env[0]")]
    );
}
