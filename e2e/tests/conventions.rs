//! Self-tests of API conventions that hold on any Kubernetes API server. They run against the
//! stand-in, or against the real cluster named by ANNEXA_E2E_KUBECONFIG.

mod common;

use common::*;
use serde_json::json;

#[test]
fn discovery_and_crd_registration() {
    let cluster = cluster();
    let ns = cluster.namespace("disco").unwrap();
    let crd = TestCrd::install(&cluster);

    let resources = cluster
        .kubectl()
        .args(["api-resources", "--api-group", &crd.group, "-o", "wide"])
        .ok()
        .unwrap();
    assert!(resources.contains("widgets"), "{resources}");
    assert!(resources.contains(&crd.short), "{resources}");
    assert!(resources.contains(&crd.category), "{resources}");

    apply_json(
        cluster.kubectl(),
        &crd.widget(&ns.name, "w1", json!({"size": 3})),
    );
    let by_short = cluster
        .kubectl()
        .args(["get", &crd.short, "-n", &ns.name])
        .ok()
        .unwrap();
    assert!(by_short.contains("w1"), "{by_short}");
    // Printer columns come from the CRD.
    assert!(
        by_short.contains("SIZE") && by_short.contains('3'),
        "{by_short}"
    );
    let by_category = cluster
        .kubectl()
        .args(["get", &crd.category, "-A"])
        .ok()
        .unwrap();
    assert!(
        by_category.contains("w1") && by_category.contains(&ns.name),
        "{by_category}"
    );

    let version = cluster
        .kubectl()
        .args(["version", "-o", "json"])
        .ok()
        .unwrap();
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1");
}

#[test]
fn create_get_update_and_conflicts() {
    let cluster = cluster();
    let ns = cluster.namespace("crud").unwrap();
    let cm = configmap(&ns.name, "c1", json!({"k": "v1"}));
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(cm.to_string())
        .ok()
        .unwrap();
    let again = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(cm.to_string())
        .fails()
        .unwrap();
    assert!(
        again.contains("AlreadyExists") && again.contains("\"c1\" already exists"),
        "{again}"
    );

    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "c1", "-n", &ns.name]),
    );
    let rv1 = live["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!live["metadata"]["uid"].as_str().unwrap().is_empty());
    assert!(live["metadata"]["creationTimestamp"].is_string());

    let mut updated = live.clone();
    updated["data"]["k"] = json!("v2");
    cluster
        .kubectl()
        .args(["replace", "-f", "-"])
        .stdin(updated.to_string())
        .ok()
        .unwrap();
    let rv2 = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "c1", "-n", &ns.name]),
    )["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rv1, rv2);

    // The same stale object again: 409 with the API server's wording.
    let mut stale = live.clone();
    stale["data"]["k"] = json!("v3");
    let err = cluster
        .kubectl()
        .args(["replace", "-f", "-"])
        .stdin(stale.to_string())
        .fails()
        .unwrap();
    assert!(err.contains("Conflict"), "{err}");
    assert!(err.contains("the object has been modified; please apply your changes to the latest version and try again"), "{err}");

    let missing = cluster
        .kubectl()
        .args(["get", "configmap", "nope", "-n", &ns.name])
        .fails()
        .unwrap();
    assert!(
        missing.contains("NotFound") && missing.contains("configmaps \"nope\" not found"),
        "{missing}"
    );

    let no_ns = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(configmap(&format!("missing-{}", random()), "x", json!({})).to_string())
        .fails()
        .unwrap();
    assert!(
        no_ns.contains("NotFound") && no_ns.contains("namespaces \"missing-"),
        "{no_ns}"
    );
}

#[test]
fn merge_and_json_patches() {
    let cluster = cluster();
    let ns = cluster.namespace("patch").unwrap();
    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "c1", json!({"a": "1", "b": "2"})),
    );
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c1",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"data":{"a":null,"c":"3"}}"#,
        ])
        .ok()
        .unwrap();
    cluster
        .kubectl()
        .args(["patch", "configmap", "c1", "-n", &ns.name, "--type=json", "-p", r#"[{"op":"replace","path":"/data/b","value":"20"},{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]"#])
        .ok()
        .unwrap();
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "c1", "-n", &ns.name]),
    );
    assert_eq!(live["data"], json!({"b": "20", "c": "3"}));
    assert_eq!(live["metadata"]["labels"]["x"], "y");
    // A failing JSON patch test operation changes nothing.
    let err = cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c1",
            "-n",
            &ns.name,
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/data/b","value":"nope"},{"op":"remove","path":"/data/b"}]"#,
        ])
        .fails()
        .unwrap();
    // kube-apiserver's generic 422 (NewGenericServerResponse), as kubectl prints it.
    assert_eq!(
        err.trim(),
        "The request is invalid: the server rejected our request due to an error in our request"
    );
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "c1", "-n", &ns.name]),
    );
    assert_eq!(live["data"]["b"], "20");
}

#[test]
fn server_side_apply_keeps_each_managers_fields() {
    let cluster = cluster();
    let ns = cluster.namespace("ssa").unwrap();
    let apply = |manager: &str, data: serde_json::Value, extra: &[&str]| {
        cluster
            .kubectl()
            .args([
                "apply",
                "--server-side",
                &format!("--field-manager={manager}"),
                "-f",
                "-",
            ])
            .args(extra.iter().copied())
            .stdin(configmap(&ns.name, "shared", data).to_string())
            .run()
            .unwrap()
    };
    assert!(apply("alpha", json!({"a": "1", "keep": "x"}), &[]).success);
    assert!(apply("beta", json!({"b": "2"}), &[]).success);
    let data = |c: &annexa_e2e::harness::Cluster| {
        get_json(
            c.kubectl()
                .args(["get", "configmap", "shared", "-n", &ns.name]),
        )["data"]
            .clone()
    };
    assert_eq!(data(&cluster), json!({"a": "1", "b": "2", "keep": "x"}));
    let live = get_json(cluster.kubectl().args([
        "get",
        "configmap",
        "shared",
        "-n",
        &ns.name,
        "--show-managed-fields",
    ]));
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"alpha") && managers.contains(&"beta"),
        "{managers:?}"
    );

    // alpha stops sending "a": it is removed; beta's field stays.
    assert!(apply("alpha", json!({"keep": "x"}), &[]).success);
    assert_eq!(data(&cluster), json!({"b": "2", "keep": "x"}));

    // beta claiming alpha's field with another value conflicts, unless forced.
    let conflict = apply("beta", json!({"b": "2", "keep": "y"}), &[]);
    assert!(!conflict.success);
    assert!(
        conflict.stderr.contains("conflict")
            && conflict.stderr.contains("alpha")
            && conflict.stderr.contains(".data.keep"),
        "{}",
        conflict.stderr
    );
    assert!(
        apply(
            "beta",
            json!({"b": "2", "keep": "y"}),
            &["--force-conflicts"]
        )
        .success
    );
    assert_eq!(data(&cluster), json!({"b": "2", "keep": "y"}));
}

#[test]
fn status_subresource_generation_and_wait() {
    let cluster = cluster();
    let ns = cluster.namespace("status").unwrap();
    let crd = TestCrd::install(&cluster);
    let target = format!("{}/w1", crd.resource());
    apply_json(
        cluster.kubectl(),
        &crd.widget(&ns.name, "w1", json!({"size": 1})),
    );
    let get = || get_json(cluster.kubectl().args(["get", &target, "-n", &ns.name]));
    assert_eq!(get()["metadata"]["generation"], 1);

    // Wait for a condition that a later status patch sets.
    let mut wait = Streaming::start(cluster.kubectl().args([
        "wait",
        "--for=condition=Ready",
        &target,
        "-n",
        &ns.name,
        "--timeout=60s",
    ]));
    cluster
        .kubectl()
        .args(["patch", &target, "-n", &ns.name, "--subresource=status", "--type=merge", "-p", r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Test","message":"ok","lastTransitionTime":"2025-01-01T00:00:00Z"}]}}"#])
        .ok()
        .unwrap();
    assert!(wait.wait_exit(), "kubectl wait failed: {}", wait.stderr());
    let live = get();
    assert_eq!(
        live["metadata"]["generation"], 1,
        "status changes do not bump generation"
    );
    assert_eq!(live["status"]["conditions"][0]["status"], "True");

    // Spec changes bump generation; metadata-only changes do not.
    cluster
        .kubectl()
        .args(["label", &target, "-n", &ns.name, "x=y"])
        .ok()
        .unwrap();
    assert_eq!(get()["metadata"]["generation"], 1);
    cluster
        .kubectl()
        .args([
            "patch",
            &target,
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"size":2},"status":{"conditions":[]}}"#,
        ])
        .ok()
        .unwrap();
    let live = get();
    assert_eq!(live["metadata"]["generation"], 2);
    assert_eq!(live["spec"]["size"], 2);
    // The main resource ignores status.
    assert_eq!(live["status"]["conditions"][0]["type"], "Ready");
    // And the status subresource ignores spec.
    cluster
        .kubectl()
        .args([
            "patch",
            &target,
            "-n",
            &ns.name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":9}}"#,
        ])
        .ok()
        .unwrap();
    assert_eq!(get()["spec"]["size"], 2);
}

#[test]
fn get_watch_sees_changes() {
    let cluster = cluster();
    let ns = cluster.namespace("watch").unwrap();
    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "c1", json!({"v": "1"})),
    );
    let watch = Streaming::start(cluster.kubectl().args([
        "get",
        "configmap",
        "c1",
        "-n",
        &ns.name,
        "-w",
        "-o",
        "jsonpath={.data.v}{\"\\n\"}",
    ]));
    watch.wait_for("initial state", |l| l == "1");
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c1",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"data":{"v":"2"}}"#,
        ])
        .ok()
        .unwrap();
    watch.wait_for("the change", |l| l == "2");
}

#[test]
fn dry_run_stores_nothing() {
    let cluster = cluster();
    let ns = cluster.namespace("dry").unwrap();
    let out = cluster
        .kubectl()
        .args(["create", "--dry-run=server", "-o", "json", "-f", "-"])
        .stdin(configmap(&ns.name, "ghost", json!({"a": "1"})).to_string())
        .ok()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["metadata"]["name"], "ghost");
    let err = cluster
        .kubectl()
        .args(["get", "configmap", "ghost", "-n", &ns.name])
        .fails()
        .unwrap();
    assert!(err.contains("not found"), "{err}");

    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "real", json!({"a": "1"})),
    );
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "real",
            "-n",
            &ns.name,
            "--dry-run=server",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ])
        .ok()
        .unwrap();
    cluster
        .kubectl()
        .args([
            "delete",
            "configmap",
            "real",
            "-n",
            &ns.name,
            "--dry-run=server",
        ])
        .ok()
        .unwrap();
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "real", "-n", &ns.name]),
    );
    assert_eq!(live["data"]["a"], "1");
}

#[test]
fn label_and_field_selectors() {
    let cluster = cluster();
    let ns = cluster.namespace("sel").unwrap();
    for (name, tier, env) in [
        ("a", "web", Some("prod")),
        ("b", "web", Some("dev")),
        ("c", "db", None),
    ] {
        let mut cm = configmap(&ns.name, name, json!({}));
        cm["metadata"]["labels"] = json!({"tier": tier});
        if let Some(env) = env {
            cm["metadata"]["labels"]["env"] = json!(env);
        }
        apply_json(cluster.kubectl(), &cm);
    }
    let names = |selector: &[&str]| {
        let out = cluster
            .kubectl()
            .args([
                "get",
                "configmaps",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])
            .args(selector.iter().copied())
            .ok()
            .unwrap();
        let mut v: Vec<String> = out
            .split_whitespace()
            .filter(|n| *n != "kube-root-ca.crt")
            .map(str::to_string)
            .collect();
        v.sort();
        v.join(",")
    };
    assert_eq!(names(&["-l", "tier=web"]), "a,b");
    assert_eq!(names(&["-l", "tier!=web"]), "c");
    assert_eq!(names(&["-l", "env in (prod,staging)"]), "a");
    // notin also matches objects without the label, as in Kubernetes.
    assert_eq!(names(&["-l", "tier,env notin (prod)"]), "b,c");
    assert_eq!(names(&["-l", "!env"]), "c");
    assert_eq!(names(&["-l", "env"]), "a,b");
    assert_eq!(names(&["--field-selector", "metadata.name=b"]), "b");
    assert_eq!(
        names(&["--field-selector", "metadata.name!=b", "-l", "tier=web"]),
        "a"
    );
    let across = cluster
        .kubectl()
        .args([
            "get",
            "configmaps",
            "-A",
            "--field-selector",
            &format!("metadata.namespace={}", ns.name),
            "-o",
            "name",
        ])
        .ok()
        .unwrap();
    assert!(
        across.contains("configmap/a") && across.contains("configmap/c"),
        "{across}"
    );
}

#[test]
fn pagination_with_limit_and_continue() {
    let cluster = cluster();
    let ns = cluster.namespace("page").unwrap();
    for i in 0..5 {
        let mut cm = configmap(&ns.name, &format!("p{i}"), json!({}));
        cm["metadata"]["labels"] = json!({"page": "yes"});
        apply_json(cluster.kubectl(), &cm);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let mut path = format!(
            "/api/v1/namespaces/{}/configmaps?labelSelector=page%3Dyes&limit=2",
            ns.name
        );
        if !token.is_empty() {
            path.push_str(&format!("&continue={token}"));
        }
        let page: serde_json::Value = serde_json::from_str(
            &cluster
                .kubectl()
                .args(["get", "--raw", &path])
                .ok()
                .unwrap(),
        )
        .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["p0", "p1", "p2", "p3", "p4"]);
    // kubectl's own chunking sees everything too.
    let all = cluster
        .kubectl()
        .args([
            "get",
            "configmaps",
            "-n",
            &ns.name,
            "-l",
            "page=yes",
            "--chunk-size=2",
            "-o",
            "name",
        ])
        .ok()
        .unwrap();
    assert_eq!(all.lines().count(), 5, "{all}");
}

#[test]
fn watch_from_a_compacted_resource_version_is_gone() {
    let cluster = cluster();
    let ns = cluster.namespace("gone").unwrap();
    // resourceVersion 1 is older than any kept history, on a real cluster too.
    let out = cluster
        .kubectl()
        .args([
            "get",
            "--raw",
            &format!(
                "/api/v1/namespaces/{}/configmaps?watch=true&resourceVersion=1&timeoutSeconds=5",
                ns.name
            ),
        ])
        .run()
        .unwrap();
    // As kube-apiserver's watch cache answers: the stream opens, then one ERROR event whose
    // Status is 410 Expired "too old resource version: <asked> (<oldest kept>)".
    assert!(out.success, "{}", out.stderr);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{}", out.stdout);
    assert_eq!(events[0]["type"], "ERROR");
    let status = &events[0]["object"];
    assert_eq!(
        (
            &status["kind"],
            &status["status"],
            &status["code"],
            &status["reason"]
        ),
        (
            &json!("Status"),
            &json!("Failure"),
            &json!(410),
            &json!("Expired")
        ),
        "{status}"
    );
    let message = status["message"].as_str().unwrap();
    let oldest = message
        .strip_prefix("too old resource version: 1 (")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{message}"));
    assert!(
        oldest.parse::<u64>().is_ok_and(|oldest| oldest > 1),
        "{message}"
    );
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let cluster = cluster();
    let ns = cluster.namespace("fin").unwrap();
    let mut cm = configmap(&ns.name, "held", json!({}));
    cm["metadata"]["finalizers"] = json!(["e2e.annexa.dev/hold"]);
    apply_json(cluster.kubectl(), &cm);
    cluster
        .kubectl()
        .args([
            "delete",
            "configmap",
            "held",
            "-n",
            &ns.name,
            "--wait=false",
        ])
        .ok()
        .unwrap();
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "held", "-n", &ns.name]),
    );
    assert!(live["metadata"]["deletionTimestamp"].is_string(), "{live}");
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "held",
            "-n",
            &ns.name,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
        .ok()
        .unwrap();
    annexa_e2e::harness::eventually(TIMEOUT, "the object to go", || {
        let out = cluster
            .kubectl()
            .args(["get", "configmap", "held", "-n", &ns.name])
            .run()
            .unwrap();
        (!out.success && out.stderr.contains("not found")).then_some(())
    })
    .unwrap();
}

#[test]
fn deleting_an_owner_deletes_its_dependents() {
    let cluster = cluster();
    let ns = cluster.namespace("gc").unwrap();
    apply_json(cluster.kubectl(), &configmap(&ns.name, "owner", json!({})));
    let uid = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "owner", "-n", &ns.name]),
    )["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut dep = configmap(&ns.name, "dependent", json!({}));
    dep["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]);
    apply_json(cluster.kubectl(), &dep);
    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "bystander", json!({})),
    );
    cluster
        .kubectl()
        .args(["delete", "configmap", "owner", "-n", &ns.name])
        .ok()
        .unwrap();
    annexa_e2e::harness::eventually(TIMEOUT, "the dependent to be collected", || {
        let out = cluster
            .kubectl()
            .args(["get", "configmap", "dependent", "-n", &ns.name])
            .run()
            .unwrap();
        (!out.success && out.stderr.contains("not found")).then_some(())
    })
    .unwrap();
    cluster
        .kubectl()
        .args(["get", "configmap", "bystander", "-n", &ns.name])
        .ok()
        .unwrap();
}

#[test]
fn users_are_who_their_credentials_say() {
    let cluster = cluster();
    let out = cluster
        .kubectl_as("alice")
        .args(["auth", "whoami", "-o", "json"])
        .ok()
        .unwrap();
    let review: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "alice");
    let groups = review["status"]["userInfo"]["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g == "dev"), "{groups:?}");
}

#[test]
fn deleting_a_namespace_removes_its_content() {
    let cluster = cluster();
    let ns = cluster.namespace("nsdel").unwrap();
    apply_json(cluster.kubectl(), &configmap(&ns.name, "c1", json!({})));
    cluster
        .kubectl()
        .args(["delete", "namespace", &ns.name, "--timeout=60s"])
        .ok()
        .unwrap();
    let err = cluster
        .kubectl()
        .args(["get", "namespace", &ns.name])
        .fails()
        .unwrap();
    assert!(err.contains("not found"), "{err}");
    let err = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(configmap(&ns.name, "c2", json!({})).to_string())
        .fails()
        .unwrap();
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn crd_schema_prunes_defaults_and_validates() {
    let cluster = cluster();
    let ns = cluster.namespace("schema").unwrap();
    let crd = TestCrd::install_with_spec_schema(
        &cluster,
        json!({"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1},
            "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
        }}),
    );
    let create = |spec: serde_json::Value, name: &str, extra: &[&str]| {
        cluster
            .kubectl()
            .args(["create", "-f", "-"])
            .args(extra.iter().copied())
            .stdin(crd.widget(&ns.name, name, spec).to_string())
            .run()
            .unwrap()
    };
    let out = create(json!({"size": 0}), "small", &[]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
        "{}",
        out.stderr
    );
    let out = create(json!({"size": 1, "mode": "C"}), "odd", &[]);
    assert!(
        out.stderr
            .contains("spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\""),
        "{}",
        out.stderr
    );
    let out = create(json!({"mode": "A"}), "nosize", &[]);
    assert!(
        out.stderr.contains("spec.size: Required value"),
        "{}",
        out.stderr
    );
    // kubectl asks for strict field validation by default: unknown fields are refused...
    let out = create(json!({"size": 1, "bogus": true}), "strict", &[]);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("strict decoding error: unknown field \"spec.bogus\""),
        "{}",
        out.stderr
    );
    // ...and pruned when validation is off. Defaults are filled in.
    let out = create(
        json!({"size": 2, "bogus": true}),
        "lenient",
        &["--validate=false"],
    );
    assert!(out.success, "{}", out.stderr);
    let live = get_json(cluster.kubectl().args([
        "get",
        &format!("{}/lenient", crd.resource()),
        "-n",
        &ns.name,
    ]));
    assert_eq!(live["spec"], json!({"size": 2, "mode": "A"}));
}

#[test]
fn kubectl_generator_subcommands_work() {
    let cluster = cluster();
    // These subcommands send protobuf.
    let name = format!("gen-{}", random());
    cluster
        .kubectl()
        .args(["create", "namespace", &name])
        .ok()
        .unwrap();
    let ns = name.clone();
    cluster
        .kubectl()
        .args(["-n", &ns, "create", "configmap", "c", "--from-literal=a=b"])
        .ok()
        .unwrap();
    cluster
        .kubectl()
        .args([
            "-n",
            &ns,
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=pw=hunter2",
        ])
        .ok()
        .unwrap();
    cluster
        .kubectl()
        .args(["-n", &ns, "create", "serviceaccount", "robot"])
        .ok()
        .unwrap();
    let cm = get_json(cluster.kubectl().args(["-n", &ns, "get", "configmap", "c"]));
    assert_eq!(cm["data"]["a"], "b");
    let secret = get_json(cluster.kubectl().args(["-n", &ns, "get", "secret", "s"]));
    assert_eq!(secret["data"]["pw"], "aHVudGVyMg==");
    assert_eq!(secret["type"], "Opaque");
    cluster
        .kubectl()
        .args(["delete", "namespace", &ns, "--wait=false"])
        .ok()
        .unwrap();
}

#[test]
fn crd_cel_validation_rules_hold_on_create_and_update() {
    let cluster = cluster();
    let ns = cluster.namespace("cel").unwrap();
    let crd = TestCrd::install_with_spec_schema(
        &cluster,
        json!({"type": "object",
               "x-kubernetes-validations": [
                   {"rule": "self == oldSelf", "message": "spec is immutable"},
                   {"rule": "self.size <= 10", "message": "size must be at most 10"},
               ],
               "properties": {"size": {"type": "integer"}}}),
    );
    let big = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(crd.widget(&ns.name, "big", json!({"size": 11})).to_string())
        .fails()
        .unwrap();
    assert!(
        big.contains("is invalid") && big.contains("size must be at most 10"),
        "{big}"
    );
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(
            crd.widget(&ns.name, "fixed", json!({"size": 1}))
                .to_string(),
        )
        .ok()
        .unwrap();
    let changed = cluster
        .kubectl()
        .args([
            "patch",
            &format!("{}/fixed", crd.resource()),
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"size":2}}"#,
        ])
        .fails()
        .unwrap();
    assert!(changed.contains("spec is immutable"), "{changed}");
    // Metadata may still change.
    cluster
        .kubectl()
        .args([
            "label",
            &format!("{}/fixed", crd.resource()),
            "-n",
            &ns.name,
            "a=b",
        ])
        .ok()
        .unwrap();
}

#[test]
fn strategic_merge_patches_merge_lists_by_key() {
    let cluster = cluster();
    let ns = cluster.namespace("smp").unwrap();
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": ns.name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [
                    {"name": "a", "image": "registry.example/a:1", "env": [{"name": "X", "value": "1"}]},
                    {"name": "b", "image": "registry.example/b:1"},
                ]},
            },
        },
    });
    apply_json(cluster.kubectl(), &deployment);
    cluster
        .kubectl()
        .args(["patch", "deployment", "d", "-n", &ns.name, "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","env":[{"name":"Y","value":"2"}]}]}}}}"#])
        .ok()
        .unwrap();
    cluster
        .kubectl()
        .args([
            "set",
            "image",
            "deployment/d",
            "-n",
            &ns.name,
            "b=registry.example/b:2",
        ])
        .ok()
        .unwrap();
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "deployment", "d", "-n", &ns.name]),
    );
    let containers = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert_eq!(containers[0]["image"], "registry.example/a:1");
    let env: Vec<&str> = containers[0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["X", "Y"]);
    assert_eq!(containers[1]["image"], "registry.example/b:2");
    assert_eq!(live["metadata"]["generation"], 3);

    // Custom resources take no strategic merge patches.
    let crd = TestCrd::install(&cluster);
    apply_json(
        cluster.kubectl(),
        &crd.widget(&ns.name, "w", json!({"size": 1})),
    );
    let err = cluster
        .kubectl()
        .args([
            "patch",
            &format!("{}/w", crd.resource()),
            "-n",
            &ns.name,
            "--type=strategic",
            "-p",
            r#"{"spec":{"size":2}}"#,
        ])
        .fails()
        .unwrap();
    // kube-apiserver's 415 for a custom resource lists the patch types its handler accepts,
    // in its order; kubectl names the patch type and the kind in front of it.
    assert_eq!(
        err.trim(),
        format!(
            "error: application/strategic-merge-patch+json is not supported by {}/v1, Kind={}: the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            crd.group, crd.kind
        )
    );
}

#[test]
fn webhook_configurations_are_validated_and_defaulted() {
    let cluster = cluster();
    let name = format!("cfg-{}.e2e.annexa.dev", random());
    let config = |side_effects: Option<&str>| {
        let mut hook = json!({
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "nowhere", "namespace": "nowhere", "path": "/validate"}},
            // Matches nothing that exists, so it never affects other tests.
            "rules": [{"operations": ["CREATE"], "apiGroups": ["nothing.e2e.annexa.dev"], "apiVersions": ["v1"], "resources": ["nothings"]}],
        });
        if let Some(s) = side_effects {
            hook["sideEffects"] = json!(s);
        }
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
               "metadata": {"name": name}, "webhooks": [hook]})
    };
    let err = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(config(None).to_string())
        .fails()
        .unwrap();
    assert!(
        err.contains("webhooks[0].sideEffects: Required value"),
        "{err}"
    );
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(config(Some("None")).to_string())
        .ok()
        .unwrap();
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "validatingwebhookconfiguration", &name]),
    );
    cluster
        .kubectl()
        .args(["delete", "validatingwebhookconfiguration", &name])
        .ok()
        .unwrap();
    let hook = &live["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["timeoutSeconds"], 10);
    assert_eq!(hook["matchPolicy"], "Equivalent");
    assert_eq!(hook["clientConfig"]["service"]["port"], 443);
}
