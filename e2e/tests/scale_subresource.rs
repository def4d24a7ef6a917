//! The `scale` subresource of Deployments and StatefulSets as `kubectl scale` uses it. The first
//! test holds on any Kubernetes API server (the stand-in, or the real cluster named by
//! ANNEXA_E2E_KUBECONFIG); the second needs a webhook the API server can reach, so it runs on
//! the stand-in only.

mod common;

use std::sync::{Arc, Mutex};

use annexa_e2e::harness::{TestWebhook, allow, deny};
use common::*;
use serde_json::{Value, json};

fn deployment(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    })
}

#[test]
fn kubectl_scale_changes_only_the_replicas_through_the_scale_subresource() {
    let cluster = cluster();
    let ns = cluster.namespace("scale").unwrap();
    let ns = ns.name.as_str();
    cluster.grant(Some(ns), "edit", &["--user=alice"]).unwrap();
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(deployment(ns, "web").to_string())
        .ok()
        .unwrap();
    let before = get_json(cluster.kubectl().args(["-n", ns, "get", "deployment/web"]));

    let out = cluster
        .kubectl_as("alice")
        .args(["-n", ns, "scale", "deployment/web", "--replicas=3"])
        .ok()
        .unwrap();
    assert_eq!(out.trim(), "deployment.apps/web scaled");

    let after = get_json(cluster.kubectl().args([
        "-n",
        ns,
        "get",
        "deployment/web",
        "--show-managed-fields",
    ]));
    assert_eq!(after["spec"]["replicas"], 3);
    // A spec change: the generation moves; the template is untouched.
    assert_eq!(
        after["metadata"]["generation"].as_i64(),
        before["metadata"]["generation"].as_i64().map(|g| g + 1)
    );
    assert_eq!(after["spec"]["template"], before["spec"]["template"]);
    let scale_entry = after["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "scale")
        .cloned()
        .unwrap_or_else(|| panic!("no managedFields entry for the scale subresource: {after}"));
    assert_eq!(scale_entry["operation"], "Update");
    assert!(
        scale_entry["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{scale_entry}"
    );

    // The Scale itself: autoscaling/v1, the parent's identity and version, the selector as text.
    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/web/scale");
    let scale: Value = serde_json::from_str(
        &cluster
            .kubectl()
            .args(["get", "--raw", &path])
            .ok()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["metadata"]["name"], "web");
    assert_eq!(scale["metadata"]["namespace"], ns);
    assert_eq!(scale["metadata"]["uid"], after["metadata"]["uid"]);
    assert_eq!(
        scale["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");

    // Validated as kube-apiserver validates a Scale.
    let err = cluster
        .kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "deployment/web",
            "--subresource=scale",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":-1}}"#,
        ])
        .fails()
        .unwrap();
    assert_eq!(
        err.trim(),
        r#"The Scale "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#
    );
    // A Scale written back with a stale resourceVersion is a conflict on the Deployment.
    let mut stale = scale.clone();
    stale["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"].clone();
    stale["spec"]["replicas"] = json!(5);
    let err = cluster
        .kubectl()
        .args(["-n", ns, "replace", "--raw", &path, "-f", "-"])
        .stdin(stale.to_string())
        .fails()
        .unwrap();
    assert_eq!(
        err.trim(),
        r#"Error from server (Conflict): Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(
        get_json(cluster.kubectl().args(["-n", ns, "get", "deployment/web"]))["spec"]["replicas"],
        3
    );

    // Permission to patch the Deployment is not permission to scale it: RBAC names the
    // subresource.
    cluster
        .kubectl()
        .args([
            "-n",
            ns,
            "create",
            "role",
            "patch-deployments",
            "--verb=get,patch",
            "--resource=deployments",
        ])
        .ok()
        .unwrap();
    cluster
        .kubectl()
        .args([
            "-n",
            ns,
            "create",
            "rolebinding",
            "mallory-patches",
            "--role=patch-deployments",
            "--user=mallory",
        ])
        .ok()
        .unwrap();
    let err = cluster
        .kubectl_as("mallory")
        .args(["-n", ns, "scale", "deployment/web", "--replicas=1"])
        .fails()
        .unwrap();
    assert_eq!(
        err.trim(),
        format!(
            r#"Error from server (Forbidden): deployments.apps "web" is forbidden: User "mallory" cannot patch resource "deployments/scale" in API group "apps" in the namespace "{ns}""#
        )
    );

    // StatefulSets scale the same way.
    let mut set = deployment(ns, "db");
    set["kind"] = json!("StatefulSet");
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(set.to_string())
        .ok()
        .unwrap();
    let out = cluster
        .kubectl_as("alice")
        .args(["-n", ns, "scale", "statefulset/db", "--replicas=2"])
        .ok()
        .unwrap();
    assert_eq!(out.trim(), "statefulset.apps/db scaled");
    assert_eq!(
        get_json(cluster.kubectl().args(["-n", ns, "get", "statefulset/db"]))["spec"]["replicas"],
        2
    );
}

#[test]
fn admission_sees_a_scale_only_where_a_rule_names_the_scale_subresource() {
    let cluster = standin(&[]);
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let record = seen.clone();
    let hook = TestWebhook::start(&[], move |request| {
        record.lock().unwrap().push(request.clone());
        if request["object"]["spec"]["replicas"].as_i64() > Some(5) {
            deny(403, "at most 5 replicas")
        } else {
            allow()
        }
    })
    .unwrap();
    let ns = cluster.namespace("scale-hook").unwrap();
    let ns = ns.name.as_str();
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(deployment(ns, "web").to_string())
        .ok()
        .unwrap();
    let config = |resources: Value| {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "scale.e2e.annexa.dev"},
            "webhooks": [{
                "name": "scale.e2e.annexa.dev",
                "clientConfig": {"url": hook.url("/validate"), "caBundle": hook.ca_bundle()},
                "rules": [{"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": resources}],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }],
        })
    };
    // A rule for `deployments` alone: scaling never reaches the webhook.
    apply_json(cluster.kubectl(), &config(json!(["deployments"])));
    cluster
        .kubectl()
        .args(["-n", ns, "scale", "deployment/web", "--replicas=9"])
        .ok()
        .unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );

    // A rule for `deployments/scale`: the webhook reviews the Scale and may refuse it.
    apply_json(cluster.kubectl(), &config(json!(["deployments/scale"])));
    let err = cluster
        .kubectl()
        .args(["-n", ns, "scale", "deployment/web", "--replicas=7"])
        .fails()
        .unwrap();
    assert_eq!(
        err.trim(),
        r#"Error from server: admission webhook "scale.e2e.annexa.dev" denied the request: at most 5 replicas"#
    );
    cluster
        .kubectl()
        .args(["-n", ns, "scale", "deployment/web", "--replicas=2"])
        .ok()
        .unwrap();
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let last = &requests[1];
    assert_eq!(
        last["kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(
        last["resource"],
        json!({"group": "apps", "version": "v1", "resource": "deployments"})
    );
    assert_eq!(last["subResource"], "scale");
    assert_eq!(last["object"]["kind"], "Scale");
    assert_eq!(last["object"]["spec"]["replicas"], 2);
    assert_eq!(last["oldObject"]["spec"]["replicas"], 9);
    let _ = cluster
        .kubectl()
        .args([
            "delete",
            "validatingwebhookconfiguration",
            "scale.e2e.annexa.dev",
        ])
        .run();
}
