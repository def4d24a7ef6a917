//! A CompliancePolicy's own status, end to end: the real `annexa run` against the stand-in (or
//! a real cluster, see `annexa_scenarios.rs`). It counts the namespaces it selects as their
//! labels change, lists the pods on its GPU pool nodes that nothing governs, and publishes an
//! Event through the events API for each condition transition.

mod annexa;

use annexa::*;
use annexa_e2e::harness::eventually;
use serde_json::{Value, json};

/// The Events Annexa published about CompliancePolicy `name` (cluster-scoped: in `default`).
fn policy_events(a: &Annexa, name: &str) -> Vec<Value> {
    let events = get(a.kubectl(), "default", "events.events.k8s.io").unwrap_or_default();
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["kind"] == "CompliancePolicy" && e["regarding"]["name"] == name)
        .cloned()
        .collect()
}

#[test]
fn compliance_policy_status_counts_namespaces_lists_ungoverned_gpu_pods_and_publishes_events() {
    let a = Annexa::shared();
    let id = annexa_e2e::standin::store::random_suffix();
    let selected = ("e2e.annexa.dev/status", id.as_str());
    let _enforced = a
        .cluster
        .namespace_with_labels(
            "status-enforced",
            &[selected, ("annexa.dev/enforce", "true")],
        )
        .unwrap();
    let batch = a
        .cluster
        .namespace_with_labels("status-batch", &[selected])
        .unwrap();
    let later = a.cluster.namespace("status-later").unwrap();
    let batch_ns = batch.name.as_str();

    // A GPU pool node of this policy, with a pod nothing governs (a plain pod in a namespace
    // without workload checks) and a per-node agent (a DaemonSet's pod), which is governed.
    let node = format!("gpu-{id}");
    let pool = format!("e2e-status-{id}");
    apply(
        a.kubectl(),
        &json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {"gpu.example.com/pool": pool}}}),
    );
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": batch_ns},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": IMAGE}]}})
    };
    apply(a.kubectl(), &pod("stray"));
    apply(
        a.kubectl(),
        &json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "device-plugin", "namespace": batch_ns},
                "spec": {"selector": {"matchLabels": {"app": "device-plugin"}},
                         "template": {"metadata": {"labels": {"app": "device-plugin"}},
                                      "spec": {"containers": [{"name": "c", "image": IMAGE}]}}}}),
    );
    let daemonset = get(a.kubectl(), batch_ns, "daemonset/device-plugin").unwrap();
    let mut agent = pod("device-plugin-x1");
    agent["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "device-plugin",
        "uid": daemonset["metadata"]["uid"], "controller": true,
    }]);
    apply(a.kubectl(), &agent);

    let name = format!("e2e-status-{id}");
    let policy = |action: &str| {
        json!({
            "apiVersion": "annexa.dev/v1alpha1", "kind": "CompliancePolicy",
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"e2e.annexa.dev/status": id}},
                "environment": "Staging",
                "enforcement": {"action": action},
                "gpu": {"resourceNames": ["nvidia.com/gpu"],
                        "pools": [{"classification": "Internal", "nodeSelector": {"gpu.example.com/pool": pool}}]},
            },
        })
    };
    apply(a.kubectl(), &policy("Enforce"));
    let what = format!("compliancepolicy/{name}");

    let found = wait_condition(a, "default", &what, "GPUPoolsIsolated", "False");
    let status = &found["status"];
    assert_eq!(status["matchedNamespaces"], 2, "{status}");
    let stray = format!("{batch_ns}/stray on {node}");
    assert_eq!(status["ungovernedGpuPods"], json!([stray]), "{status}");
    let isolated = condition(&found, "GPUPoolsIsolated").unwrap();
    assert_eq!(isolated["reason"], "UngovernedPods");
    let message = format!(
        "A.8.22 Segregation of networks: 1 pod(s) on GPU pool nodes are not governed by Annexa: {stray}"
    );
    assert_eq!(isolated["message"], message);
    let ready = condition(&found, "Ready").unwrap();
    assert_eq!(ready["message"], "selects 2 namespaces");

    // The transition is published as a Warning Event about the policy, with the same words.
    let warning = eventually(TIMEOUT, "a Warning Event for UngovernedPods", || {
        policy_events(a, &name)
            .into_iter()
            .find(|e| e["reason"] == "UngovernedPods")
    })
    .unwrap();
    assert_eq!(warning["type"], "Warning");
    assert_eq!(warning["note"], message);
    assert_eq!(warning["reportingController"], "annexa");

    // The count follows the namespaces' labels.
    a.kubectl()
        .args([
            "label",
            "namespace",
            &later.name,
            &format!("e2e.annexa.dev/status={id}"),
        ])
        .ok()
        .unwrap();
    wait_for(a, "default", &what, "matchedNamespaces 3", |p| {
        p["status"]["matchedNamespaces"] == 3
    });

    // The stray pod gone and the policy changed (a spec change rescans the pools now): only
    // governed pods remain, the list empties, and the transition back is a Normal Event.
    a.kubectl()
        .args(["-n", batch_ns, "delete", "pod", "stray", "--wait=true"])
        .ok()
        .unwrap();
    apply(a.kubectl(), &policy("Warn"));
    let cleared = wait_condition(a, "default", &what, "GPUPoolsIsolated", "True");
    assert_eq!(
        condition(&cleared, "GPUPoolsIsolated").unwrap()["reason"],
        "OnlyGovernedPods"
    );
    assert!(
        cleared["status"]["ungovernedGpuPods"].is_null(),
        "{}",
        cleared["status"]
    );
    let normal = eventually(TIMEOUT, "a Normal Event for OnlyGovernedPods", || {
        policy_events(a, &name)
            .into_iter()
            .find(|e| e["reason"] == "OnlyGovernedPods")
    })
    .unwrap();
    assert_eq!(normal["type"], "Normal");
    assert_eq!(
        normal["note"],
        "every pod on this policy's GPU pool nodes is governed and passes the workload rules"
    );
    // One Event per transition, not one per reconcile.
    let warnings = policy_events(a, &name)
        .into_iter()
        .filter(|e| e["reason"] == "UngovernedPods")
        .count();
    assert_eq!(warnings, 1);

    let _ = a.kubectl().args(["delete", &what, "--wait=false"]).run();
    let _ = a.kubectl().args(["delete", "node", &node]).run();
}
