//! Garbage collection through ownerReferences as kube-controller-manager performs it:
//! foreground deletion waits for dependents with `blockOwnerDeletion`, orphaning keeps the
//! dependents, and a dependent whose owner no longer exists is collected. Each case runs
//! unchanged against a real cluster (ANNEXA_E2E_KUBECONFIG).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use annexa_e2e::harness::{Cluster, eventually};
use common::*;
use serde_json::{Value, json};

const HOLD: &str = "e2e.annexa.dev/hold";

fn get(cluster: &Cluster, ns: &str, name: &str) -> Option<Value> {
    let out = cluster
        .kubectl()
        .args(["get", "configmap", name, "-n", ns, "-o", "json"])
        .run()
        .unwrap();
    out.success
        .then(|| serde_json::from_str(&out.stdout).unwrap())
}

fn owner_and_dependent(cluster: &Cluster, ns: &str, blocks: bool) -> String {
    apply_json(cluster.kubectl(), &configmap(ns, "owner", json!({})));
    let uid = get(cluster, ns, "owner").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut dep = configmap(ns, "dependent", json!({}));
    dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "owner", "uid": uid, "blockOwnerDeletion": blocks}]);
    // A finalizer keeps the dependent (and, when it blocks, the owner) until the test lets go.
    dep["metadata"]["finalizers"] = json!([HOLD]);
    apply_json(cluster.kubectl(), &dep);
    uid
}

fn release(cluster: &Cluster, ns: &str) {
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "dependent",
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .ok()
        .unwrap();
}

fn wait_gone(cluster: &Cluster, ns: &str, name: &str) {
    eventually(TIMEOUT, &format!("configmap {name} to be gone"), || {
        get(cluster, ns, name).is_none().then_some(())
    })
    .unwrap();
}

#[test]
fn foreground_deletion_waits_for_dependents_that_block_owner_deletion() {
    let cluster = cluster();
    let ns = cluster.namespace("gc-fg").unwrap();
    owner_and_dependent(&cluster, &ns.name, true);
    cluster
        .kubectl()
        .args([
            "delete",
            "configmap",
            "owner",
            "-n",
            &ns.name,
            "--cascade=foreground",
            "--wait=false",
        ])
        .ok()
        .unwrap();
    // The dependent is being deleted; the owner waits for it with the foregroundDeletion
    // finalizer.
    let dependent = eventually(TIMEOUT, "the dependent to be deleted", || {
        get(&cluster, &ns.name, "dependent")
            .filter(|d| !d["metadata"]["deletionTimestamp"].is_null())
    })
    .unwrap();
    assert_eq!(dependent["metadata"]["finalizers"], json!([HOLD]));
    let owner = get(&cluster, &ns.name, "owner").expect("the owner waits for its dependent");
    assert!(!owner["metadata"]["deletionTimestamp"].is_null(), "{owner}");
    assert!(
        owner["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "foregroundDeletion"),
        "{owner}"
    );
    release(&cluster, &ns.name);
    wait_gone(&cluster, &ns.name, "dependent");
    wait_gone(&cluster, &ns.name, "owner");
}

#[test]
fn foreground_deletion_does_not_wait_for_dependents_that_do_not_block() {
    let cluster = cluster();
    let ns = cluster.namespace("gc-nb").unwrap();
    owner_and_dependent(&cluster, &ns.name, false);
    cluster
        .kubectl()
        .args([
            "delete",
            "configmap",
            "owner",
            "-n",
            &ns.name,
            "--cascade=foreground",
            "--wait=false",
        ])
        .ok()
        .unwrap();
    wait_gone(&cluster, &ns.name, "owner");
    let dependent = eventually(TIMEOUT, "the dependent to be deleted", || {
        get(&cluster, &ns.name, "dependent")
            .filter(|d| !d["metadata"]["deletionTimestamp"].is_null())
    })
    .unwrap();
    assert_eq!(dependent["metadata"]["finalizers"], json!([HOLD]));
    release(&cluster, &ns.name);
    wait_gone(&cluster, &ns.name, "dependent");
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_owner_reference() {
    let cluster = cluster();
    let ns = cluster.namespace("gc-orphan").unwrap();
    owner_and_dependent(&cluster, &ns.name, true);
    cluster
        .kubectl()
        .args([
            "delete",
            "configmap",
            "owner",
            "-n",
            &ns.name,
            "--cascade=orphan",
        ])
        .ok()
        .unwrap();
    wait_gone(&cluster, &ns.name, "owner");
    let dependent = eventually(TIMEOUT, "the owner reference to go", || {
        get(&cluster, &ns.name, "dependent").filter(|d| {
            d["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(Vec::is_empty)
        })
    })
    .unwrap();
    assert!(dependent["metadata"]["deletionTimestamp"].is_null());
    release(&cluster, &ns.name);
}

#[test]
fn a_dependent_whose_owner_is_gone_is_collected() {
    let cluster = cluster();
    let ns = cluster.namespace("gc-dangling").unwrap();
    apply_json(cluster.kubectl(), &configmap(&ns.name, "owner", json!({})));
    let uid = get(&cluster, &ns.name, "owner").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    cluster
        .kubectl()
        .args(["delete", "configmap", "owner", "-n", &ns.name])
        .ok()
        .unwrap();
    wait_gone(&cluster, &ns.name, "owner");
    // Written after its owner was deleted (a controller that lost a race): collected anyway.
    let mut late = configmap(&ns.name, "late", json!({}));
    late["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]);
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(late.to_string())
        .ok()
        .unwrap();
    wait_gone(&cluster, &ns.name, "late");
}
