//! Every path to a GPU and into a running pod, end to end: the real `annexa run` and real
//! `kubectl` against the stand-in API server (or a real cluster, see `annexa_scenarios.rs`).
//! A pod asking for a GPU through Dynamic Resource Allocation (a DeviceClass and a
//! ResourceClaimTemplate applied first) needs its pool placement, and `kubectl debug` adds an
//! ephemeral container only when it complies.

mod annexa;

use annexa::*;
use annexa_e2e::harness::eventually;
use serde_json::{Value, json};

/// The pool placement of the staging policy's Internal pool.
fn placed(mut pod: Value) -> Value {
    pod["spec"]["nodeSelector"] = json!({"gpu.example.com/pool": "e2e-internal"});
    pod["spec"]["tolerations"] = json!([{"key": "gpu.example.com/pool", "operator": "Equal", "value": "e2e-internal", "effect": "NoSchedule"}]);
    pod
}

#[test]
fn dra_gpu_pod_needs_the_pool_placement() {
    let a = Annexa::shared();
    let case = Case::new(a, "dra", staging_policy("Enforce"));
    let ns = case.name();
    apply(
        a.kubectl(),
        &json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
            "metadata": {"name": "gpu.nvidia.com"},
            "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"}}]},
        }),
    );
    apply(
        a.kubectl_as("alice"),
        &json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": "one-gpu", "namespace": ns},
            "spec": {"spec": {"devices": {"requests": [
                {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}
            ]}}},
        }),
    );
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llm-finetune", "namespace": ns},
        "spec": {
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}],
            "containers": [{"name": "trainer", "image": IMAGE, "resources": {"claims": [{"name": "gpu"}]}}],
        },
    });
    // Refused without the pool placement, naming the control and the claim's DeviceClass (the
    // template reaches Annexa's cache through its watch: until then the claim is unresolvable,
    // which is refused too).
    let err = eventually(TIMEOUT, "a denial naming the DeviceClass", || {
        let err = create_fails(a.kubectl_as("alice"), &pod);
        err.contains("DeviceClass").then_some(err)
    })
    .unwrap();
    assert!(
        err.contains("admission webhook \"workloads.validate.annexa.dev\" denied the request"),
        "{err}"
    );
    assert!(
        err.contains("A.8.22 Segregation of networks: pod \"llm-finetune\" requests GPUs through resource claim \"gpu\" (DeviceClass \"gpu.nvidia.com\") for Internal data (no annexa.dev/classification label: Internal) but does not select the Internal pool (gpu.example.com/pool=e2e-internal)"),
        "{err}"
    );
    assert!(get(a.kubectl(), ns, "pod/llm-finetune").is_none());
    // Admitted with it.
    apply(a.kubectl_as("alice"), &placed(pod));
    assert!(get(a.kubectl(), ns, "pod/llm-finetune").is_some());
}

#[test]
fn kubectl_debug_adds_an_ephemeral_container_only_when_it_complies() {
    let a = Annexa::shared();
    let case = Case::new(a, "debug", production_policy());
    let ns = case.name();
    let pod = placed(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "scorer", "namespace": ns},
        "spec": {"containers": [{"name": "serve", "image": IMAGE, "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    }));
    apply(a.kubectl_as("alice"), &pod);
    // `kubectl debug --profile=sysadmin` with an unpinned image of another registry: a
    // privileged container on a GPU pod (A.8.2), unpinned (A.8.9), unapproved (A.8.19).
    let err = a
        .kubectl_as("alice")
        .args([
            "debug",
            "-n",
            ns,
            "scorer",
            "--image=busybox:1.36",
            "--target=serve",
            "--profile=sysadmin",
            "--container=debugger",
        ])
        .fails()
        .unwrap();
    assert!(
        err.contains("admission webhook \"workloads.validate.annexa.dev\" denied the request"),
        "{err}"
    );
    for expected in [
        "A.8.2 Privileged access rights: pod \"scorer\" requests GPUs and ephemeral container \"debugger\" is privileged",
        "A.8.9 Configuration management: pod \"scorer\" ephemeral container \"debugger\" uses image \"busybox:1.36\", which is not pinned by digest (@sha256:)",
        "A.8.19 Installation of software on operational systems: pod \"scorer\" ephemeral container \"debugger\" uses image \"busybox:1.36\"",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
    let running = get(a.kubectl(), ns, "pod/scorer").unwrap();
    assert!(
        running["spec"].get("ephemeralContainers").is_none(),
        "{running}"
    );
    // A pinned image of the allowed registry, unprivileged: added.
    a.kubectl_as("alice")
        .args([
            "debug",
            "-n",
            ns,
            "scorer",
            &format!("--image={IMAGE}"),
            "--target=serve",
            "--profile=general",
            "--container=debugger",
        ])
        .ok()
        .unwrap();
    let debugged = get(a.kubectl(), ns, "pod/scorer").unwrap();
    assert_eq!(
        debugged["spec"]["ephemeralContainers"][0]["name"], "debugger",
        "{debugged}"
    );
}
