//! Self-tests of ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) as kube-apiserver
//! evaluates it: CEL on `object`, `oldObject`, `request.userInfo` and `params`, match
//! constraints, validation actions and failure policies, with kube-apiserver's wording. They run
//! against the stand-in, or against the real cluster named by ANNEXA_E2E_KUBECONFIG (1.30+).
//! Every policy is bound only to the test's own namespace, and removed afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use annexa_e2e::harness::{Cluster, eventually};
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// A policy and its binding, deleted when dropped (they are cluster-scoped).
struct Policy<'c> {
    cluster: &'c Cluster,
    name: String,
}

impl<'c> Policy<'c> {
    /// Installs `spec` as a policy bound (with `binding`, merged over `policyName`) to the
    /// namespace `ns` only.
    fn install(cluster: &'c Cluster, ns: &str, spec: Value, binding: Value) -> Policy<'c> {
        let name = format!("e2e-{}", random());
        let mut binding_spec = json!({
            "policyName": name,
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
        });
        for (k, v) in binding.as_object().cloned().unwrap_or_default() {
            binding_spec[k] = v;
        }
        let docs = [
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                   "metadata": {"name": name}, "spec": spec}),
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                   "metadata": {"name": name}, "spec": binding_spec}),
        ];
        for doc in docs {
            apply_json(cluster.kubectl(), &doc);
        }
        Policy { cluster, name }
    }
}

impl Drop for Policy<'_> {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybindings",
            "validatingadmissionpolicies",
        ] {
            let _ = self
                .cluster
                .kubectl()
                .args(["delete", kind, &self.name, "--ignore-not-found"])
                .run();
        }
    }
}

fn create_as(cluster: &Cluster, user: &str, doc: &Value) -> annexa_e2e::harness::KubectlOutput {
    cluster
        .kubectl_as(user)
        .args(["create", "-f", "-"])
        .stdin(doc.to_string())
        .run()
        .unwrap()
}

/// A real API server applies a new binding a moment after it is stored: wait until `probe`
/// is refused.
fn until_enforced(cluster: &Cluster, user: &str, probe: &Value) -> String {
    eventually(Duration::from_secs(20), "the policy to be enforced", || {
        let out = create_as(cluster, user, probe);
        (!out.success).then_some(out.stderr)
    })
    .unwrap()
}

#[test]
fn policies_check_the_requesting_user_with_params_and_say_who_denied() {
    let cluster = cluster();
    let ns = cluster.namespace("vap-user").unwrap();
    // The users may write ConfigMaps here: only the policy refuses.
    cluster
        .grant(
            Some(&ns.name),
            "edit",
            &["--user=alice", "--user=bob", "--user=carol"],
        )
        .unwrap();
    // The parameters: who may own ConfigMaps here.
    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "owners", json!({"allowed": "alice,bob"})),
    );
    let policy = Policy::install(
        &cluster,
        &ns.name,
        json!({
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["configmaps"], "operations": ["CREATE"]}]},
            "matchConditions": [{"name": "not-the-params", "expression": "object.metadata.name != 'owners'"}],
            "variables": [{"name": "user", "expression": "request.userInfo.username"}],
            "validations": [
                {"expression": "has(object.data) && has(object.data.owner) && object.data.owner == variables.user",
                 "messageExpression": "'owner must be ' + variables.user", "reason": "Forbidden"},
                {"expression": "params.data.allowed.contains(variables.user)",
                 "message": "not an allowed owner"},
            ],
        }),
        json!({"paramRef": {"name": "owners", "namespace": ns.name, "parameterNotFoundAction": "Deny"},
               "validationActions": ["Deny"]}),
    );
    let owned = |name: &str, owner: &str| configmap(&ns.name, name, json!({"owner": owner}));

    // carol (not in the params) owning her own: refused by the second validation, reason
    // Invalid (the default), 422, which kubectl prints from the status cause.
    let denied = until_enforced(&cluster, "carol", &owned("c1", "carol"));
    let expected = format!(
        "The configmaps \"c1\" is invalid: : ValidatingAdmissionPolicy '{0}' with binding '{0}' denied request: not an allowed owner",
        policy.name
    );
    assert!(denied.contains(&expected), "{denied}");
    // alice, in someone else's name: refused, reason Forbidden, message from the expression.
    let denied = create_as(&cluster, "alice", &owned("a2", "bob"));
    assert!(!denied.success);
    assert!(
        denied.stderr.contains("(Forbidden)")
            && denied.stderr.contains(&format!(
                "configmaps \"a2\" is forbidden: ValidatingAdmissionPolicy '{0}' with binding '{0}' denied request: owner must be alice",
                policy.name
            )),
        "{}",
        denied.stderr
    );
    // alice in her own name: admitted.
    let ok = create_as(&cluster, "alice", &owned("a1", "alice"));
    assert!(ok.success, "{}", ok.stderr);
    // Outside the bound namespace nothing applies.
    let other = cluster.namespace("vap-other").unwrap();
    cluster
        .grant(Some(&other.name), "edit", &["--user=alice"])
        .unwrap();
    let ok = create_as(
        &cluster,
        "alice",
        &configmap(&other.name, "x", json!({"owner": "bob"})),
    );
    assert!(ok.success, "{}", ok.stderr);
}

#[test]
fn deletions_see_the_old_object_and_warn_binding_only_warns() {
    let cluster = cluster();
    let ns = cluster.namespace("vap-delete").unwrap();
    cluster
        .grant(Some(&ns.name), "edit", &["--user=alice", "--user=bob"])
        .unwrap();
    for (name, owner) in [("mine", "alice"), ("probe", "alice")] {
        apply_json(
            cluster.kubectl(),
            &configmap(&ns.name, name, json!({"owner": owner})),
        );
    }
    let _guard = Policy::install(
        &cluster,
        &ns.name,
        json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["configmaps"], "operations": ["DELETE"]}]},
            "validations": [{"expression": "oldObject.data.owner == request.userInfo.username",
                "messageExpression": "'only ' + oldObject.data.owner + ' may delete it'", "reason": "Forbidden"}],
        }),
        json!({"validationActions": ["Deny"]}),
    );
    let denied = eventually(Duration::from_secs(20), "the policy to be enforced", || {
        let out = cluster
            .kubectl_as("bob")
            .args(["delete", "configmap", "probe", "-n", &ns.name])
            .run()
            .unwrap();
        (!out.success).then_some(out.stderr)
    })
    .unwrap();
    assert!(
        denied.contains("(Forbidden)")
            && denied.contains("denied request: only alice may delete it"),
        "{denied}"
    );
    cluster
        .kubectl_as("alice")
        .args(["delete", "configmap", "mine", "-n", &ns.name])
        .ok()
        .unwrap();

    // A Warn binding admits and says why; an expression that fails to evaluate is handled by
    // the failure policy (Ignore admits).
    let _warn = Policy::install(
        &cluster,
        &ns.name,
        json!({
            "failurePolicy": "Ignore",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["configmaps"], "operations": ["CREATE"]}]},
            "validations": [{"expression": "!has(object.data.note)", "message": "notes are discouraged"}],
        }),
        json!({"validationActions": ["Warn"]}),
    );
    let warned = eventually(Duration::from_secs(20), "the warning", || {
        let name = format!("n-{}", random());
        let out = create_as(
            &cluster,
            "alice",
            &configmap(&ns.name, &name, json!({"note": "x"})),
        );
        assert!(out.success, "{}", out.stderr);
        out.stderr
            .contains("notes are discouraged")
            .then_some(out.stderr)
    })
    .unwrap();
    assert!(
        warned.contains("Validation failed for ValidatingAdmissionPolicy 'e2e-")
            && warned.contains("': notes are discouraged"),
        "{warned}"
    );
    // No data at all: `object.data.note` has nothing to look in; Ignore admits.
    let bare = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bare", "namespace": ns.name}});
    let out = create_as(&cluster, "alice", &bare);
    assert!(out.success, "{}", out.stderr);
}
