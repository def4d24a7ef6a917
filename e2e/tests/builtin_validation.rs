//! Self-tests: built-in kinds are decoded and validated as kube-apiserver does it. Wrong types
//! and unknown fields are refused or dropped as the Go decoder and `fieldValidation` decide,
//! and invalid objects get kube-apiserver's 422 with its field paths and wording. They run
//! against the stand-in, or against the real cluster named by ANNEXA_E2E_KUBECONFIG.
// Test helpers: panicking on a broken precondition is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use annexa_e2e::harness::Cluster;
use common::*;
use serde_json::{Value, json};

fn create(cluster: &Cluster, doc: &Value, extra: &[&str]) -> annexa_e2e::harness::KubectlOutput {
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .args(extra.iter().copied())
        .stdin(doc.to_string())
        .run()
        .unwrap()
}

/// Creates `doc` (kubectl's default: `fieldValidation=Strict`) expecting a refusal; returns
/// kubectl's error text.
fn refused(cluster: &Cluster, doc: &Value) -> String {
    let out = create(cluster, doc, &[]);
    assert!(
        !out.success,
        "accepted but should be refused:\n{doc:#}\n{}",
        out.stdout
    );
    out.stderr
}

fn accepted(cluster: &Cluster, doc: &Value) {
    let out = create(cluster, doc, &[]);
    assert!(out.success, "refused:\n{doc:#}\n{}", out.stderr);
}

/// Replaces `doc` (as read back and changed by `edit`) expecting a refusal.
fn update_refused(
    cluster: &Cluster,
    ns: &str,
    resource: &str,
    name: &str,
    edit: impl Fn(&mut Value),
) -> String {
    let mut live = get_json(cluster.kubectl().args(["get", resource, name, "-n", ns]));
    edit(&mut live);
    cluster
        .kubectl()
        .args(["replace", "-f", "-"])
        .stdin(live.to_string())
        .fails()
        .unwrap()
}

fn assert_has(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "expected {w:?} in:\n{text}");
    }
}

fn container(name: &str) -> Value {
    json!({"name": name, "image": "registry.example/app:1.0"})
}

fn pod(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn deployment(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn valid_deployment_spec() -> Value {
    json!({
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [container("web")]}
        }
    })
}

fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    if let Some(slot) = base.pointer_mut(pointer) {
        *slot = value;
    } else {
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        base.pointer_mut(parent).unwrap()[field] = value;
    }
    base
}

fn without(mut base: Value, pointer: &str) -> Value {
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    base.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(field);
    base
}

#[test]
fn wrong_types_are_refused_as_the_go_decoder_words_them() {
    let cluster = cluster();
    let ns = cluster.namespace("types").unwrap();
    let n = &ns.name;

    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(valid_deployment_spec(), "/replicas", json!("two")),
        ),
    );
    assert_has(
        &err,
        &[
            "Deployment in version \"v1\" cannot be handled as a Deployment",
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        ],
    );

    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(
                valid_deployment_spec(),
                "/template/spec/containers",
                json!({"name": "web"}),
            ),
        ),
    );
    assert_has(
        &err,
        &[
            "cannot be handled as a Deployment",
            "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container",
        ],
    );

    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": n},
        "spec": {"ports": [{"port": "http"}]}});
    let err = refused(&cluster, &service);
    assert_has(
        &err,
        &[
            "Service in version \"v1\" cannot be handled as a Service",
            "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32",
        ],
    );

    let missing = cluster
        .kubectl()
        .args(["get", "deployment", "web", "-n", n])
        .fails()
        .unwrap();
    assert!(missing.contains("NotFound"), "{missing}");
}

#[test]
fn unknown_fields_follow_field_validation() {
    let cluster = cluster();
    let ns = cluster.namespace("unknown").unwrap();
    let n = &ns.name;
    let spec = with(valid_deployment_spec(), "/replica", json!(2));
    let spec = with(
        spec,
        "/template/spec/containers/0/imagePolicy",
        json!("Always"),
    );

    // kubectl's default is Strict: the object is refused, every unknown field named.
    let err = refused(&cluster, &deployment(n, "strict", spec.clone()));
    assert_has(
        &err,
        &[
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error:",
            "unknown field \"spec.replica\"",
            "unknown field \"spec.template.spec.containers[0].imagePolicy\"",
        ],
    );

    // Warn: stored without the unknown fields, each named in a warning.
    let out = create(
        &cluster,
        &deployment(n, "warned", spec.clone()),
        &["--validate=warn"],
    );
    assert!(out.success, "{}", out.stderr);
    assert_has(
        &out.stderr,
        &[
            "Warning: unknown field \"spec.replica\"",
            "Warning: unknown field \"spec.template.spec.containers[0].imagePolicy\"",
        ],
    );
    let stored = get_json(
        cluster
            .kubectl()
            .args(["get", "deployment", "warned", "-n", n]),
    );
    assert!(stored["spec"].get("replica").is_none(), "{stored:#}");
    assert!(
        stored["spec"]["template"]["spec"]["containers"][0]
            .get("imagePolicy")
            .is_none(),
        "{stored:#}"
    );
    assert_eq!(stored["spec"]["replicas"], 1);

    // Ignore: dropped without a word.
    let out = create(
        &cluster,
        &deployment(n, "ignored", spec),
        &["--validate=false"],
    );
    assert!(out.success, "{}", out.stderr);
    assert!(!out.stderr.contains("unknown field"), "{}", out.stderr);
    let stored = get_json(
        cluster
            .kubectl()
            .args(["get", "deployment", "ignored", "-n", n]),
    );
    assert!(stored["spec"].get("replica").is_none(), "{stored:#}");
}

#[test]
fn deployments_need_a_selector_that_matches_their_template_and_never_changes() {
    let cluster = cluster();
    let ns = cluster.namespace("deploy").unwrap();
    let n = &ns.name;

    let err = refused(
        &cluster,
        &deployment(n, "web", without(valid_deployment_spec(), "/selector")),
    );
    assert_has(
        &err,
        &[
            "The Deployment \"web\" is invalid:",
            "spec.selector: Required value",
        ],
    );

    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(valid_deployment_spec(), "/selector", json!({})),
        ),
    );
    assert_has(
        &err,
        &[
            "spec.selector: Invalid value:",
            "empty selector is invalid for deployment",
        ],
    );

    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(
                valid_deployment_spec(),
                "/template/metadata/labels",
                json!({"app": "api"}),
            ),
        ),
    );
    assert_has(
        &err,
        &[
            "The Deployment \"web\" is invalid: spec.template.metadata.labels: Invalid value:",
            "`selector` does not match template `labels`",
        ],
    );

    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(
                valid_deployment_spec(),
                "/selector",
                json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
            ),
        ),
    );
    assert_has(
        &err,
        &[
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ],
    );

    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(valid_deployment_spec(), "/replicas", json!(-1)),
        ),
    );
    assert_has(
        &err,
        &["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
    );

    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(
                valid_deployment_spec(),
                "/template/spec/restartPolicy",
                json!("Never"),
            ),
        ),
    );
    assert_has(
        &err,
        &[
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ],
    );

    // A selector by expression that the labels meet is valid; so is changing replicas.
    let by_expression = with(
        valid_deployment_spec(),
        "/selector",
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
    );
    accepted(&cluster, &deployment(n, "by-expression", by_expression));
    accepted(&cluster, &deployment(n, "web", valid_deployment_spec()));
    cluster
        .kubectl()
        .args(["patch", "deployment", "web", "-n", n, "--type=merge"])
        .args(["-p", r#"{"spec":{"replicas":3}}"#])
        .ok()
        .unwrap();

    let err = update_refused(&cluster, n, "deployment", "web", |d| {
        d["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "front"}});
    });
    assert_has(
        &err,
        &[
            "The Deployment \"web\" is invalid:",
            "spec.selector: Invalid value:",
            "field is immutable",
        ],
    );
}

#[test]
fn pod_specs_are_validated_in_pods_and_in_workload_templates() {
    let cluster = cluster();
    let ns = cluster.namespace("podspec").unwrap();
    let n = &ns.name;

    let err = refused(&cluster, &pod(n, "p", json!({"containers": []})));
    assert_has(
        &err,
        &[
            "The Pod \"p\" is invalid:",
            "spec.containers: Required value",
        ],
    );

    let err = refused(
        &cluster,
        &pod(n, "p", json!({"containers": [container("Web_1")]})),
    );
    assert_has(
        &err,
        &[
            "spec.containers[0].name: Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ],
    );

    let err = refused(
        &cluster,
        &pod(
            n,
            "p",
            json!({"initContainers": [container("app")], "containers": [container("app")]}),
        ),
    );
    assert_has(&err, &["spec.containers[0].name: Duplicate value: \"app\""]);

    let err = refused(
        &cluster,
        &pod(n, "p", json!({"containers": [{"name": "app"}]})),
    );
    assert_has(&err, &["spec.containers[0].image: Required value"]);

    let mut with_port = container("app");
    with_port["ports"] = json!([{"containerPort": 70000}]);
    let err = refused(&cluster, &pod(n, "p", json!({"containers": [with_port]})));
    assert_has(
        &err,
        &[
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ],
    );

    let mut with_mount = container("app");
    with_mount["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    let err = refused(&cluster, &pod(n, "p", json!({"containers": [with_mount]})));
    assert_has(
        &err,
        &["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
    );

    let err = refused(
        &cluster,
        &pod(
            n,
            "p",
            json!({"containers": [container("app")],
                "volumes": [{"name": "data", "emptyDir": {}, "hostPath": {"path": "/srv"}}]}),
        ),
    );
    assert_has(
        &err,
        &["spec.volumes[0]", "may not specify more than 1 volume type"],
    );

    // The same rules inside a Deployment's template, with the template's path.
    let err = refused(
        &cluster,
        &deployment(
            n,
            "web",
            with(
                valid_deployment_spec(),
                "/template/spec/containers",
                json!([{"name": "web"}]),
            ),
        ),
    );
    assert_has(
        &err,
        &[
            "The Deployment \"web\" is invalid:",
            "spec.template.spec.containers[0].image: Required value",
        ],
    );

    let mut complete = container("app");
    complete["ports"] = json!([{"containerPort": 8080, "name": "http", "protocol": "TCP"}]);
    complete["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    accepted(
        &cluster,
        &pod(
            n,
            "p",
            json!({"containers": [complete], "initContainers": [container("init")],
                "volumes": [{"name": "data", "emptyDir": {}}], "restartPolicy": "Never"}),
        ),
    );
}

#[test]
fn service_names_and_ports_are_validated() {
    let cluster = cluster();
    let ns = cluster.namespace("svc").unwrap();
    let n = &ns.name;
    let service = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": n}, "spec": spec});

    let err = refused(
        &cluster,
        &service("web", json!({"selector": {"app": "web"}})),
    );
    assert_has(
        &err,
        &["The Service \"web\" is invalid: spec.ports: Required value"],
    );

    let err = refused(&cluster, &service("1web", json!({"ports": [{"port": 80}]})));
    assert_has(
        &err,
        &[
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        ],
    );

    let err = refused(&cluster, &service("web", json!({"ports": [{"port": 0}]})));
    assert_has(
        &err,
        &["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
    );

    let err = refused(
        &cluster,
        &service("web", json!({"ports": [{"port": 80}, {"port": 443}]})),
    );
    assert_has(
        &err,
        &[
            "spec.ports[0].name: Required value",
            "spec.ports[1].name: Required value",
        ],
    );

    let err = refused(
        &cluster,
        &service(
            "web",
            json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 8080}]}),
        ),
    );
    assert_has(&err, &["spec.ports[1].name: Duplicate value: \"http\""]);

    let err = refused(
        &cluster,
        &service("web", json!({"ports": [{"port": 80, "protocol": "HTTP"}]})),
    );
    assert_has(
        &err,
        &[
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ],
    );

    let err = refused(
        &cluster,
        &service("web", json!({"ports": [{"port": 80, "targetPort": 70000}]})),
    );
    assert_has(
        &err,
        &["spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"],
    );

    accepted(
        &cluster,
        &service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "targetPort": 9090}]}),
        ),
    );
}

#[test]
fn network_policy_ports_and_peers_are_validated() {
    let cluster = cluster();
    let ns = cluster.namespace("netpol").unwrap();
    let n = &ns.name;
    let policy = |spec: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "np", "namespace": n}, "spec": spec})
    };

    let err = refused(
        &cluster,
        &policy(json!({"podSelector": {}, "ingress": [{"from": [{}]}]})),
    );
    assert_has(
        &err,
        &[
            "The NetworkPolicy \"np\" is invalid: spec.ingress[0].from[0]: Required value: must specify a peer",
        ],
    );

    let err = refused(
        &cluster,
        &policy(json!({"podSelector": {}, "ingress": [{"from": [
            {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]})),
    );
    assert_has(
        &err,
        &["spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"],
    );

    let err = refused(
        &cluster,
        &policy(json!({"podSelector": {}, "egress": [{"ports": [{"port": 0}]}]})),
    );
    assert_has(
        &err,
        &["spec.egress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"],
    );

    let err = refused(
        &cluster,
        &policy(json!({"podSelector": {}, "egress": [{"ports": [{"port": 8080, "endPort": 80}]}]})),
    );
    assert_has(
        &err,
        &[
            "spec.egress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`",
        ],
    );

    let err = refused(
        &cluster,
        &policy(
            json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
        ),
    );
    assert_has(
        &err,
        &["spec.egress[0].to[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\""],
    );

    let err = refused(
        &cluster,
        &policy(
            json!({"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "DNS"}]}]}),
        ),
    );
    assert_has(
        &err,
        &[
            "spec.egress[0].ports[0].protocol: Unsupported value: \"DNS\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ],
    );

    accepted(
        &cluster,
        &policy(json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}},
                                   "podSelector": {"matchLabels": {"role": "client"}}}],
                         "ports": [{"port": "http"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}],
                        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 8000, "endPort": 8080}]}]
        })),
    );
}

#[test]
fn rbac_rules_and_bindings_are_validated_and_role_refs_never_change() {
    let cluster = cluster();
    let ns = cluster.namespace("rbac").unwrap();
    let n = &ns.name;
    let role = |rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": n}, "rules": rules})
    };
    let binding = |role_ref: Value, subjects: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "readers", "namespace": n}, "roleRef": role_ref, "subjects": subjects})
    };
    let alice = json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]);

    let err = refused(
        &cluster,
        &role(json!([{"apiGroups": [""], "resources": ["pods"]}])),
    );
    assert_has(
        &err,
        &[
            "The Role \"reader\" is invalid: rules[0].verbs: Required value: verbs must contain at least one value",
        ],
    );
    let err = refused(
        &cluster,
        &role(json!([{"resources": ["pods"], "verbs": ["get"]}])),
    );
    assert_has(
        &err,
        &["rules[0].apiGroups: Required value: resource rules must supply at least one api group"],
    );
    let err = refused(
        &cluster,
        &role(json!([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}])),
    );
    assert_has(
        &err,
        &[
            "rules[0].nonResourceURLs: Invalid value:",
            "namespaced rules cannot apply to non-resource URLs",
        ],
    );

    let err = refused(
        &cluster,
        &binding(
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ""}),
            alice.clone(),
        ),
    );
    assert_has(
        &err,
        &[
            "The RoleBinding \"readers\" is invalid:",
            "roleRef.name: Required value",
        ],
    );
    let err = refused(
        &cluster,
        &binding(
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Pod", "name": "reader"}),
            alice.clone(),
        ),
    );
    assert_has(
        &err,
        &["roleRef.kind: Unsupported value: \"Pod\": supported values: \"Role\", \"ClusterRole\""],
    );
    let err = refused(
        &cluster,
        &binding(
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}),
            json!([{"kind": "Robot", "name": "r2"}]),
        ),
    );
    assert_has(
        &err,
        &[
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
        ],
    );

    accepted(
        &cluster,
        &role(json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])),
    );
    accepted(
        &cluster,
        &binding(
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}),
            json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                   {"kind": "ServiceAccount", "name": "default", "namespace": n}]),
        ),
    );
    let err = update_refused(&cluster, n, "rolebinding", "readers", |b| {
        b["roleRef"]["kind"] = json!("ClusterRole");
        b["roleRef"]["name"] = json!("view");
    });
    assert_has(
        &err,
        &[
            "The RoleBinding \"readers\" is invalid: roleRef: Invalid value:",
            "cannot change roleRef",
        ],
    );
}

#[test]
fn claims_config_keys_and_metadata_are_validated() {
    let cluster = cluster();
    let ns = cluster.namespace("claims").unwrap();
    let n = &ns.name;
    let claim = |spec: Value| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": n}, "spec": spec})
    };

    let err = refused(
        &cluster,
        &claim(json!({"resources": {"requests": {"storage": "1Gi"}}})),
    );
    assert_has(
        &err,
        &[
            "The PersistentVolumeClaim \"data\" is invalid:",
            "spec.accessModes: Required value: at least 1 access mode is required",
        ],
    );
    let err = refused(&cluster, &claim(json!({"accessModes": ["ReadWriteOnce"]})));
    assert_has(&err, &["spec.resources[storage]: Required value"]);
    let err = refused(
        &cluster,
        &claim(
            json!({"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "1Gi"}}}),
        ),
    );
    assert_has(
        &err,
        &["spec.accessModes: Unsupported value: \"ReadWriteSometimes\""],
    );

    let err = refused(
        &cluster,
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": n, "labels": {"bad key": "x"}}}),
    );
    assert_has(
        &err,
        &[
            "The ConfigMap \"c\" is invalid: metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ],
    );
    let err = refused(
        &cluster,
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": n, "labels": {"app": "-web"}}}),
    );
    assert_has(
        &err,
        &[
            "metadata.labels: Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ],
    );
    let err = refused(
        &cluster,
        &json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": n, "annotations": {"example.com/a/b": "x"}}}),
    );
    assert_has(
        &err,
        &["The Secret \"s\" is invalid: metadata.annotations: Invalid value: \"example.com/a/b\""],
    );
    let err = refused(
        &cluster,
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": n}, "data": {"bad key": "x"}}),
    );
    assert_has(
        &err,
        &[
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
        ],
    );

    accepted(
        &cluster,
        &claim(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "standard"}),
        ),
    );
    let err = update_refused(&cluster, n, "pvc", "data", |c| {
        c["spec"]["storageClassName"] = json!("fast");
    });
    assert_has(
        &err,
        &[
            "The PersistentVolumeClaim \"data\" is invalid: spec: Forbidden: spec is immutable after creation",
        ],
    );
    accepted(
        &cluster,
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": n,
                "labels": {"app.kubernetes.io/name": "web", "empty": ""},
                "annotations": {"example.com/note": "any text: at all"}},
            "data": {"config.yaml": "a: 1", "KEY_NAME": "v"}}),
    );
}
