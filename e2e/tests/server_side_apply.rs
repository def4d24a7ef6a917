//! Self-tests of server-side apply as kube-apiserver does it: lists merged per their schema
//! (`map` lists by their keys, `set` lists by value, everything else atomic), field ownership
//! per manager in managedFields, conflicts, force, and the removal of fields a manager stops
//! applying. They run against the stand-in, or against the real cluster named by
//! ANNEXA_E2E_KUBECONFIG.

// Test helpers below panic on broken preconditions, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod common;

use annexa_e2e::harness::{Cluster, KubectlOutput};
use common::*;
use serde_json::{Value, json};

fn apply_as(cluster: &Cluster, manager: &str, doc: &Value, force: bool) -> KubectlOutput {
    let mut kubectl = cluster.kubectl().args([
        "apply",
        "--server-side",
        &format!("--field-manager={manager}"),
        "-f",
        "-",
    ]);
    if force {
        kubectl = kubectl.arg("--force-conflicts");
    }
    kubectl.stdin(doc.to_string()).run().unwrap()
}

fn applied(cluster: &Cluster, manager: &str, doc: &Value) {
    let out = apply_as(cluster, manager, doc, false);
    assert!(out.success, "apply as {manager}: {}", out.stderr);
}

fn live(cluster: &Cluster, ns: &str, resource: &str) -> Value {
    get_json(
        cluster
            .kubectl()
            .args(["get", resource, "-n", ns, "--show-managed-fields"]),
    )
}

/// The fieldsV1 of `manager`'s entry for `operation` (Null when it owns nothing).
fn fields(obj: &Value, manager: &str, operation: &str) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

fn deployment(ns: &str, spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": ns}, "spec": spec})
}

/// A complete Deployment with no replicas (nothing runs on a real cluster).
fn web(ns: &str, containers: Value) -> Value {
    deployment(
        ns,
        json!({
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": containers}},
        }),
    )
}

fn container_names(obj: &Value) -> Vec<String> {
    obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

const APP_KEY: &str = r#"k:{"name":"app"}"#;
const PROXY_KEY: &str = r#"k:{"name":"proxy"}"#;

#[test]
fn containers_merge_by_name_between_two_managers() {
    let cluster = cluster();
    let ns = cluster.namespace("ssa-map").unwrap();
    let app =
        |image: &str| json!([{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]);
    applied(
        &cluster,
        "platform",
        &web(&ns.name, app("registry.example.com/app:1")),
    );
    // A second manager adds a container: it joins the list instead of replacing it.
    let sidecar = deployment(
        &ns.name,
        json!({"template": {"spec": {"containers": [
            {"name": "proxy", "image": "registry.example.com/proxy:1"}]}}}),
    );
    applied(&cluster, "mesh", &sidecar);
    let obj = live(&cluster, &ns.name, "deployment/web");
    assert_eq!(container_names(&obj), ["app", "proxy"]);

    // Each manager owns its own item, keyed by name; the port is keyed by containerPort and
    // the protocol's default.
    let containers = |manager: &str| {
        fields(&obj, manager, "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"].clone()
    };
    let platform = containers("platform");
    assert_eq!(platform[APP_KEY]["."], json!({}), "{platform}");
    assert_eq!(platform[APP_KEY]["f:image"], json!({}), "{platform}");
    assert_eq!(
        platform[APP_KEY]["f:ports"][r#"k:{"containerPort":8080,"protocol":"TCP"}"#]["f:containerPort"],
        json!({}),
        "{platform}"
    );
    assert!(platform.get(PROXY_KEY).is_none(), "{platform}");
    let mesh = containers("mesh");
    assert_eq!(mesh[PROXY_KEY]["f:image"], json!({}), "{mesh}");
    assert!(mesh.get(APP_KEY).is_none(), "{mesh}");

    // The first manager re-applies its configuration with a new image: no conflict, and the
    // other manager's container stays.
    applied(
        &cluster,
        "platform",
        &web(&ns.name, app("registry.example.com/app:2")),
    );
    let obj = live(&cluster, &ns.name, "deployment/web");
    assert_eq!(container_names(&obj), ["app", "proxy"]);
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/app:2"
    );

    // The second manager changing the first one's image conflicts, naming the item.
    let out = apply_as(
        &cluster,
        "mesh",
        &deployment(
            &ns.name,
            json!({"template": {"spec": {"containers": [
                {"name": "app", "image": "registry.example.com/app:3"},
                {"name": "proxy", "image": "registry.example.com/proxy:1"}]}}}),
        ),
        false,
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains(
            r#"Apply failed with 1 conflict: conflict with "platform": .spec.template.spec.containers[name="app"].image"#
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn two_items_with_the_same_key_are_refused() {
    let cluster = cluster();
    let ns = cluster.namespace("ssa-dup").unwrap();
    let out = apply_as(
        &cluster,
        "platform",
        &web(
            &ns.name,
            json!([{"name": "app", "image": "registry.example.com/app:1"},
                   {"name": "app", "image": "registry.example.com/app:2"}]),
        ),
        false,
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains(&format!(
            "failed to create typed patch object ({}/web; apps/v1, Kind=Deployment)",
            ns.name
        )) && out
            .stderr
            .contains(r#".spec.template.spec.containers: duplicate entries for key [name="app"]"#),
        "{}",
        out.stderr
    );
    let missing = cluster
        .kubectl()
        .args(["get", "deployment", "web", "-n", &ns.name])
        .run()
        .unwrap();
    assert!(!missing.success, "nothing is stored: {}", missing.stdout);
}

#[test]
fn set_and_map_lists_merge_atomic_lists_and_maps_are_replaced() {
    let cluster = cluster();
    let ns = cluster.namespace("ssa-set").unwrap();
    let crd = TestCrd::install_with_spec_schema(
        &cluster,
        json!({"type": "object", "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "args": {"type": "array", "items": {"type": "string"}},
            "endpoints": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "required": ["name"], "properties": {
                              "name": {"type": "string"}, "port": {"type": "integer"}}}},
            "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                         "additionalProperties": {"type": "string"}},
        }}),
    );
    let widget = |spec: Value| crd.widget(&ns.name, "w", spec);
    let resource = format!("{}/w", crd.resource());
    applied(
        &cluster,
        "alpha",
        &widget(json!({"tags": ["a", "b"], "args": ["x", "y"],
                       "endpoints": [{"name": "http", "port": 80}], "selector": {"app": "w"}})),
    );
    applied(
        &cluster,
        "beta",
        &widget(json!({"tags": ["b", "c"], "endpoints": [{"name": "metrics", "port": 9090}]})),
    );
    let obj = live(&cluster, &ns.name, &resource);
    assert_eq!(obj["spec"]["tags"], json!(["a", "b", "c"]));
    assert_eq!(
        obj["spec"]["endpoints"],
        json!([{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}])
    );
    // Set items are owned by value; "b" by both.
    let tags = |manager: &str| fields(&obj, manager, "Apply")["f:spec"]["f:tags"].clone();
    assert_eq!(
        tags("alpha"),
        json!({r#"v:"a""#: {}, r#"v:"b""#: {}}),
        "{obj}"
    );
    assert_eq!(
        tags("beta"),
        json!({r#"v:"b""#: {}, r#"v:"c""#: {}}),
        "{obj}"
    );
    assert_eq!(
        fields(&obj, "beta", "Apply")["f:spec"]["f:endpoints"][r#"k:{"name":"metrics"}"#],
        json!({".": {}, "f:name": {}, "f:port": {}})
    );

    // An atomic list is one field: changing it conflicts, and forcing replaces it whole.
    let out = apply_as(&cluster, "beta", &widget(json!({"args": ["z"]})), false);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains(r#"Apply failed with 1 conflict: conflict with "alpha": .spec.args"#),
        "{}",
        out.stderr
    );
    assert!(apply_as(&cluster, "beta", &widget(json!({"args": ["z"]})), true).success);
    // So is an atomic map.
    let out = apply_as(
        &cluster,
        "beta",
        &widget(json!({"args": ["z"], "selector": {"tier": "t"}})),
        false,
    );
    assert!(
        out.stderr
            .contains(r#"conflict with "alpha": .spec.selector"#),
        "{}",
        out.stderr
    );
    let beta_last = widget(json!({"args": ["z"], "selector": {"tier": "t"}}));
    assert!(apply_as(&cluster, "beta", &beta_last, true).success);
    let obj = live(&cluster, &ns.name, &resource);
    assert_eq!(obj["spec"]["args"], json!(["z"]));
    assert_eq!(obj["spec"]["selector"], json!({"tier": "t"}));
    let alpha = fields(&obj, "alpha", "Apply");
    assert!(alpha["f:spec"].get("f:args").is_none(), "{alpha}");
    assert!(alpha["f:spec"].get("f:selector").is_none(), "{alpha}");

    // beta's last applies left out its tags and endpoint: they are gone where nobody else
    // owns them ("c", metrics); "b" stays, alpha still applies it.
    assert_eq!(obj["spec"]["tags"], json!(["a", "b"]));
    assert_eq!(
        obj["spec"]["endpoints"],
        json!([{"name": "http", "port": 80}])
    );
}

#[test]
fn a_field_no_longer_applied_is_removed_unless_another_manager_owns_it() {
    let cluster = cluster();
    let ns = cluster.namespace("ssa-prune").unwrap();
    let cm = |data: Value| configmap(&ns.name, "c", data);
    let data = || live(&cluster, &ns.name, "configmap/c")["data"].clone();
    applied(&cluster, "alpha", &cm(json!({"a": "1", "shared": "s"})));
    // The same value applied by a second manager: no conflict, both own it.
    applied(&cluster, "beta", &cm(json!({"shared": "s"})));
    let obj = live(&cluster, &ns.name, "configmap/c");
    for manager in ["alpha", "beta"] {
        assert_eq!(
            fields(&obj, manager, "Apply")["f:data"]["f:shared"],
            json!({}),
            "{manager}: {obj}"
        );
    }
    // A shared field cannot be changed by one owner without the other.
    let out = apply_as(&cluster, "beta", &cm(json!({"shared": "t"})), false);
    assert!(
        out.stderr
            .contains(r#"Apply failed with 1 conflict: conflict with "alpha": .data.shared"#),
        "{}",
        out.stderr
    );

    // alpha stops applying both: "a" goes, "shared" stays because beta still owns it.
    applied(&cluster, "alpha", &cm(json!({"b": "2"})));
    assert_eq!(data(), json!({"b": "2", "shared": "s"}));
    // beta stops applying it: nobody owns it any more, so it goes.
    applied(&cluster, "beta", &cm(json!({"other": "o"})));
    assert_eq!(data(), json!({"b": "2", "other": "o"}));
}

#[test]
fn managed_fields_record_apply_and_update_and_an_update_takes_over_what_it_changes() {
    let cluster = cluster();
    let ns = cluster.namespace("ssa-owners").unwrap();
    let mut cm = configmap(&ns.name, "c", json!({"a": "1"}));
    cm["metadata"]["labels"] = json!({"app": "c"});
    applied(&cluster, "alpha", &cm);
    let obj = live(&cluster, &ns.name, "configmap/c");
    assert_eq!(
        fields(&obj, "alpha", "Apply"),
        json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}})
    );
    let entry = &obj["metadata"]["managedFields"][0];
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].is_string(), "{entry}");

    // A patch by another manager takes the field it changes.
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c",
            "-n",
            &ns.name,
            "--type=merge",
            "--field-manager=ops",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ])
        .ok()
        .unwrap();
    let obj = live(&cluster, &ns.name, "configmap/c");
    assert_eq!(
        fields(&obj, "ops", "Update"),
        json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        fields(&obj, "alpha", "Apply"),
        json!({"f:metadata": {"f:labels": {"f:app": {}}}})
    );
    // alpha applying its old value now conflicts with the updater, named with its API version.
    let out = apply_as(&cluster, "alpha", &cm, false);
    assert!(
        out.stderr
            .contains(r#"Apply failed with 1 conflict: conflict with "ops" using v1: .data.a"#),
        "{}",
        out.stderr
    );
    // Forcing takes the field back; the updater, left with nothing, leaves managedFields.
    assert!(apply_as(&cluster, "alpha", &cm, true).success);
    let obj = live(&cluster, &ns.name, "configmap/c");
    assert_eq!(obj["data"], json!({"a": "1"}));
    assert_eq!(fields(&obj, "ops", "Update"), Value::Null, "{obj}");
    assert_eq!(fields(&obj, "alpha", "Apply")["f:data"], json!({"f:a": {}}));

    // A resourceVersion in the configuration is a precondition, even for a forced apply.
    let mut stale = cm.clone();
    stale["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
    stale["data"]["a"] = json!("3");
    assert!(apply_as(&cluster, "alpha", &stale, true).success);
    stale["data"]["a"] = json!("4");
    let out = apply_as(&cluster, "alpha", &stale, true);
    assert!(
        out.stderr.contains("the object has been modified"),
        "{}",
        out.stderr
    );
    assert_eq!(live(&cluster, &ns.name, "configmap/c")["data"]["a"], "3");
}

mod kube_client {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use kube::{Api, Client};

    async fn client(path: &std::path::Path) -> Client {
        let kubeconfig = Kubeconfig::read_from(path).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        Client::try_from(config).unwrap()
    }

    fn status(result: Result<Deployment, kube::Error>) -> Box<kube::core::Status> {
        match result {
            Err(kube::Error::Api(status)) => status,
            other => panic!("expected an API error, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conflicts_are_409_in_kube_apiservers_wording_and_force_takes_ownership() {
        let cluster = tokio::task::spawn_blocking(cluster).await.unwrap();
        let (cluster, ns) = tokio::task::spawn_blocking(move || {
            let ns = cluster.namespace("ssa-conflict").unwrap();
            (cluster, ns)
        })
        .await
        .unwrap();
        let client = client(cluster.kubeconfig()).await;
        let deployments: Api<Deployment> = Api::namespaced(client, &ns.name);
        let containers = json!([{"name": "app", "image": "registry.example.com/app:1"}]);
        let apply = |manager: &str, force: bool| {
            let mut params = PatchParams::apply(manager);
            params.force = force;
            params
        };
        deployments
            .patch(
                "web",
                &apply("alpha", false),
                &Patch::Apply(web(&ns.name, containers.clone())),
            )
            .await
            .unwrap();

        let replicas = |n: i32| {
            let mut doc = deployment(&ns.name, json!({"replicas": n}));
            doc["metadata"]["labels"] = json!({"team": "beta"});
            doc
        };
        let refused = status(
            deployments
                .patch("web", &apply("beta", false), &Patch::Apply(replicas(1)))
                .await,
        );
        assert_eq!(refused.code, 409);
        assert_eq!(refused.reason, "Conflict");
        assert_eq!(
            refused.message,
            r#"Apply failed with 1 conflict: conflict with "alpha": .spec.replicas"#
        );
        let causes = refused.details.unwrap().causes;
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, "FieldManagerConflict");
        assert_eq!(causes[0].message, r#"conflict with "alpha""#);
        assert_eq!(causes[0].field, ".spec.replicas");

        // Forced: beta owns replicas; alpha keeps the rest of what it applied.
        let forced = deployments
            .patch("web", &apply("beta", true), &Patch::Apply(replicas(1)))
            .await
            .unwrap();
        assert_eq!(forced.spec.replicas, Some(1));
        let entries = forced.metadata.managed_fields.unwrap_or_default();
        let of = |manager: &str| {
            entries
                .iter()
                .find(|e| e.manager.as_deref() == Some(manager))
                .and_then(|e| e.fields_v1.as_ref())
                .map(|f| f.0.clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(of("beta")["f:spec"], json!({"f:replicas": {}}));
        assert!(of("alpha")["f:spec"].get("f:replicas").is_none());
        assert_eq!(of("alpha")["f:spec"]["f:selector"], json!({}));

        // A merge patch by an updater takes both fields; alpha's apply of other values then
        // conflicts twice, listed per manager with the updater's API version.
        let patch = PatchParams {
            field_manager: Some("ops".into()),
            ..PatchParams::default()
        };
        deployments
            .patch(
                "web",
                &patch,
                &Patch::Merge(
                    json!({"metadata": {"labels": {"team": "ops"}}, "spec": {"replicas": 2}}),
                ),
            )
            .await
            .unwrap();
        let refused = status(
            deployments
                .patch("web", &apply("beta", false), &Patch::Apply(replicas(3)))
                .await,
        );
        assert_eq!(refused.code, 409);
        assert_eq!(
            refused.message,
            "Apply failed with 2 conflicts: conflicts with \"ops\" using apps/v1:\n- .metadata.labels.team\n- .spec.replicas"
        );
    }
}
