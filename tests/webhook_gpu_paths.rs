//! Every way a pod reaches a GPU, and every way into a running pod, through real
//! AdmissionReviews: MIG and shared resources, DRA claims through a template or a claim (and
//! an unresolvable one), node pinning, device-visibility variables, `pods/ephemeralcontainers`
//! (`kubectl debug`) and pod image updates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use annexa::manifest;
use annexa::webhook::{Limits, Metrics, StaticContext, WebhookState, server};
use axum::Router;
use serde_json::{Value, json};
use std::sync::Arc;
use webhook_support::*;

const PINNED: &str = "registry.example.com/train@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The claims and nodes the GPU rules resolve, next to the shared context.
const GPU_CONTEXT: &str = r#"
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu.nvidia.com}
spec:
  selectors:
  - cel: {expression: "device.driver == 'gpu.nvidia.com'"}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: one-gpu, namespace: ml-prod}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly: {deviceClassName: gpu.nvidia.com}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: mig-slice, namespace: ml-prod}
spec:
  devices:
    requests:
    - name: slice
      exactly: {deviceClassName: mig.nvidia.com, count: 1}
---
apiVersion: v1
kind: Node
metadata:
  name: gpu-internal-1
  labels: {annexa.dev/gpu-pool: internal, kubernetes.io/hostname: gpu-internal-1}
spec:
  taints:
  - {key: annexa.dev/gpu-pool, value: internal, effect: NoSchedule}
---
apiVersion: v1
kind: Node
metadata:
  name: cpu-1
  labels: {kubernetes.io/hostname: cpu-1}
"#;

fn gpu_router() -> Router {
    let text = format!("{CONTEXT}\n---\n{GPU_CONTEXT}");
    let (documents, errors) = manifest::parse_documents("context.yaml", &text);
    assert!(errors.is_empty(), "{errors:?}");
    server::router(Arc::new(WebhookState {
        context: Arc::new(StaticContext::from_documents(documents)),
        metrics: Arc::new(Metrics::new()),
        limits: Limits::default(),
        access: None,
    }))
}

/// A pod named `train` in `ml-prod` (Production, Enforce; baseline GPU pools) with this spec.
fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "train", "namespace": "ml-prod"}, "spec": spec})
}

fn placed(mut spec: Value) -> Value {
    spec["nodeSelector"]
        .as_object_mut()
        .map(|m| m.insert("annexa.dev/gpu-pool".into(), json!("internal")))
        .unwrap_or_else(|| {
            spec["nodeSelector"] = json!({"annexa.dev/gpu-pool": "internal"});
            None
        });
    spec["tolerations"] = json!([{"key": "annexa.dev/gpu-pool", "operator": "Equal", "value": "internal", "effect": "NoSchedule"}]);
    spec
}

fn container(extra: Value) -> Value {
    let mut c = json!({"name": "trainer", "image": PINNED});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// The denial of an unplaced Internal GPU pod; `via` says how it requests GPUs.
fn unplaced(via: &str) -> String {
    let what = format!(
        "A.8.22 Segregation of networks: pod \"train\" requests GPUs{via} for Internal data (no annexa.dev/classification label: Internal)"
    );
    format!(
        "Pod \"train\" is not compliant: {what} but does not select the Internal pool (annexa.dev/gpu-pool=internal); {what} but does not tolerate the Internal pool taint annexa.dev/gpu-pool=internal:NoSchedule"
    )
}

#[tokio::test]
async fn every_gpu_path_needs_the_pool_placement() {
    let router = gpu_router();
    let claim = |source: Value| {
        let mut pod_claim = source;
        pod_claim["name"] = json!("gpu");
        json!({
            "resourceClaims": [pod_claim],
            "containers": [container(json!({"resources": {"claims": [{"name": "gpu"}]}}))]
        })
    };
    let hostname_affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-internal-1"]}]}]}}});
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "a MIG slice",
            json!({"containers": [container(json!({"resources": {"limits": {"nvidia.com/mig-1g.10gb": "1"}}}))]}),
            unplaced(""),
        ),
        (
            "a time-sliced GPU",
            json!({"containers": [container(json!({"resources": {"requests": {"nvidia.com/gpu.shared": "1"}, "limits": {"nvidia.com/gpu.shared": "1"}}}))]}),
            unplaced(""),
        ),
        (
            "a DRA claim from a template",
            claim(json!({"resourceClaimTemplateName": "one-gpu"})),
            unplaced(" through resource claim \"gpu\" (DeviceClass \"gpu.nvidia.com\")"),
        ),
        (
            "a DRA claim",
            claim(json!({"resourceClaimName": "mig-slice"})),
            unplaced(" through resource claim \"gpu\" (DeviceClass \"mig.nvidia.com\")"),
        ),
        (
            "an unresolvable claim",
            claim(json!({"resourceClaimTemplateName": "eight-gpus"})),
            unplaced(
                " through resource claim \"gpu\" (ResourceClaimTemplate \"eight-gpus\" is not found in namespace \"ml-prod\"; a claim that cannot be resolved counts as a GPU request)",
            ),
        ),
        (
            "spec.nodeName on a pool node",
            json!({"nodeName": "gpu-internal-1", "containers": [container(json!({}))]}),
            unplaced(
                " by pinning spec.nodeName to node \"gpu-internal-1\" of the Internal GPU pool",
            ),
        ),
        (
            "a required hostname affinity to a pool node",
            json!({"affinity": hostname_affinity, "containers": [container(json!({}))]}),
            unplaced(
                " by pinning spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0] to node \"gpu-internal-1\" of the Internal GPU pool",
            ),
        ),
    ];
    for (name, spec, expected) in cases {
        let r = validate(
            &router,
            &review("CREATE", "alice", &pod(spec.clone()), None),
        )
        .await;
        assert_eq!(denial(&r), expected, "{name}");
        let r = validate(
            &router,
            &review("CREATE", "alice", &pod(placed(spec)), None),
        )
        .await;
        assert_eq!(r["allowed"], true, "{name}: {r}");
        admitted_clean(&r);
    }
    // Pinned to a node outside every pool, a CPU pod needs nothing.
    let cpu = json!({"nodeName": "cpu-1", "containers": [container(json!({}))]});
    admitted_clean(&validate(&router, &review("CREATE", "alice", &pod(cpu), None)).await);
}

#[tokio::test]
async fn pods_without_gpus_may_not_set_device_visibility_variables() {
    let router = gpu_router();
    let spec = json!({"containers": [container(json!({"env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]}))]});
    let r = validate(&router, &review("CREATE", "alice", &pod(spec), None)).await;
    assert_eq!(
        denial(&r),
        "Pod \"train\" is not compliant: A.8.22 Segregation of networks: pod \"train\" requests no GPU but container \"trainer\" sets NVIDIA_VISIBLE_DEVICES, which makes a GPU runtime expose the node's GPUs"
    );
    let spec = json!({"containers": [container(json!({"env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]}))]});
    admitted_clean(&validate(&router, &review("CREATE", "alice", &pod(spec), None)).await);
}

/// A `pods/ephemeralcontainers` review: `kubectl debug` adding `debugger` to a running pod.
fn ephemeral_review(namespace: &str, running: &Value, debugger: Value) -> Value {
    let mut debugged = running.clone();
    debugged["metadata"]["namespace"] = json!(namespace);
    debugged["spec"]["ephemeralContainers"] = json!([debugger]);
    let mut old = running.clone();
    old["metadata"]["namespace"] = json!(namespace);
    let mut r = review("UPDATE", "alice", &debugged, Some(&old));
    r["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
    r["request"]["subResource"] = json!("ephemeralcontainers");
    r["request"]["requestSubResource"] = json!("ephemeralcontainers");
    r
}

#[tokio::test]
async fn ephemeral_containers_are_checked_like_containers() {
    let router = gpu_router();
    let running = pod(placed(
        json!({"containers": [container(json!({"resources": {"limits": {"nvidia.com/gpu": "1"}}}))]}),
    ));
    // `kubectl debug -it train --image=busybox:1.36 --profile=sysadmin`
    let sysadmin = json!({"name": "debugger-x7k2p", "image": "busybox:1.36", "targetContainerName": "trainer", "securityContext": {"privileged": true}});
    let r = validate(
        &router,
        &ephemeral_review("ml-prod", &running, sysadmin.clone()),
    )
    .await;
    assert_eq!(
        denial(&r),
        "Pod \"train\" is not compliant: A.8.2 Privileged access rights: pod \"train\" requests GPUs and ephemeral container \"debugger-x7k2p\" is privileged; A.8.9 Configuration management: pod \"train\" ephemeral container \"debugger-x7k2p\" uses image \"busybox:1.36\", which is not pinned by digest (@sha256:); A.8.19 Installation of software on operational systems: pod \"train\" ephemeral container \"debugger-x7k2p\" uses image \"busybox:1.36\", which is not from an allowed registry [\"registry.example.com\"]"
    );
    // A pinned image from an allowed registry, unprivileged: admitted.
    let general =
        json!({"name": "debugger-x7k2p", "image": PINNED, "targetContainerName": "trainer"});
    admitted_clean(&validate(&router, &ephemeral_review("ml-prod", &running, general)).await);
    // Device-visibility variables on a debug container of a pod without GPUs.
    let cpu = pod(json!({"containers": [container(json!({}))]}));
    let peeking = json!({"name": "debugger", "image": PINNED, "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}]});
    let r = validate(&router, &ephemeral_review("ml-prod", &cpu, peeking)).await;
    assert_eq!(
        denial(&r),
        "Pod \"train\" is not compliant: A.8.22 Segregation of networks: pod \"train\" requests no GPU but ephemeral container \"debugger\" sets NVIDIA_VISIBLE_DEVICES, which makes a GPU runtime expose the node's GPUs"
    );
    // Outside opted-in namespaces nothing is checked; other subresources are not evaluated.
    admitted_clean(
        &validate(
            &router,
            &ephemeral_review("legacy", &running, sysadmin.clone()),
        )
        .await,
    );
    let mut status = ephemeral_review("ml-prod", &running, sysadmin);
    status["request"]["subResource"] = json!("status");
    admitted_clean(&validate(&router, &status).await);
}

#[tokio::test]
async fn pod_image_updates_are_evaluated_like_creations() {
    let router = gpu_router();
    let running = pod(json!({"containers": [container(json!({}))]}));
    let mut swapped = running.clone();
    swapped["spec"]["containers"][0]["image"] = json!("docker.io/evil/miner:latest");
    let r = validate(
        &router,
        &review("UPDATE", "alice", &swapped, Some(&running)),
    )
    .await;
    assert_eq!(
        denial(&r),
        "Pod \"train\" is not compliant: A.8.9 Configuration management: pod \"train\" container \"trainer\" uses image \"docker.io/evil/miner:latest\", which is not pinned by digest (@sha256:); A.8.19 Installation of software on operational systems: pod \"train\" container \"trainer\" uses image \"docker.io/evil/miner:latest\", which is not from an allowed registry [\"registry.example.com\"]"
    );
    let mut repinned = running.clone();
    repinned["spec"]["containers"][0]["image"] = json!(PINNED.replace("0123", "4567"));
    admitted_clean(
        &validate(
            &router,
            &review("UPDATE", "alice", &repinned, Some(&running)),
        )
        .await,
    );
}
