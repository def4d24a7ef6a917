//! Self-tests that need the stand-in itself: admission webhooks served from this test process
//! on loopback, fault injection, watch-history bounds, bookmarks, shutdown. They always start
//! their own stand-in, also when ANNEXA_E2E_KUBECONFIG is set.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use annexa_e2e::harness::{self, TestWebhook, allow, deny, eventually};
use annexa_e2e::standin::Faults;
use common::*;
use serde_json::{Value, json};

fn webhook_config(
    kind: &str,
    name: &str,
    client_config: Value,
    policy: &str,
    ns_label: &str,
) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [{
            "name": name,
            "clientConfig": client_config,
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"webhook-test": ns_label}},
            "failurePolicy": policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        }],
    })
}

#[test]
fn webhook_denial_reaches_kubectl_in_kube_apiserver_wording() {
    let cluster = standin(&[]);
    let seen = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let record = seen.clone();
    let hook = TestWebhook::start(&[], move |request| {
        record.lock().unwrap().push(request.clone());
        if request["object"]["data"]["forbidden"].is_string() {
            deny(403, "A.8.24 forbidden data is not allowed")
        } else {
            allow()
        }
    })
    .unwrap();
    let guarded = cluster
        .namespace_with_labels("guarded", &[("webhook-test", "on")])
        .unwrap();
    let open = cluster.namespace("open").unwrap();
    cluster
        .grant(Some(&guarded.name), "edit", &["--group=dev"])
        .unwrap();
    apply_json(
        cluster.kubectl(),
        &webhook_config(
            "ValidatingWebhookConfiguration",
            "deny.e2e.annexa.dev",
            json!({"url": hook.url("/validate"), "caBundle": hook.ca_bundle()}),
            "Fail",
            "on",
        ),
    );
    let err = cluster
        .kubectl_as("alice")
        .args(["create", "-f", "-"])
        .stdin(configmap(&guarded.name, "bad", json!({"forbidden": "x"})).to_string())
        .fails()
        .unwrap();
    assert!(
        err.contains("admission webhook \"deny.e2e.annexa.dev\" denied the request: A.8.24 forbidden data is not allowed"),
        "{err}"
    );
    // The same object elsewhere is not matched by the namespaceSelector.
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(configmap(&open.name, "bad", json!({"forbidden": "x"})).to_string())
        .ok()
        .unwrap();
    // Allowed objects pass; the review carried the user and the operation.
    cluster
        .kubectl_as("alice")
        .args(["create", "-f", "-"])
        .stdin(configmap(&guarded.name, "good", json!({"fine": "x"})).to_string())
        .ok()
        .unwrap();
    let reviews = seen.lock().unwrap().clone();
    let good = reviews
        .iter()
        .find(|r| r["name"] == "good")
        .expect("the webhook saw the request");
    assert_eq!(good["operation"], "CREATE");
    assert_eq!(good["userInfo"]["username"], "alice");
    assert_eq!(good["namespace"], guarded.name.as_str());
    assert_eq!(
        good["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(good["kind"]["kind"], "ConfigMap");
    assert_eq!(good["dryRun"], false);
    assert!(good["oldObject"].is_null());
    assert!(!reviews.iter().any(|r| r["namespace"] == open.name.as_str()));
    assert!(
        cluster
            .kubectl()
            .args(["get", "configmap", "bad", "-n", &guarded.name])
            .fails()
            .is_ok()
    );
}

#[test]
fn mutating_webhook_patch_and_warnings_are_applied() {
    let cluster = standin(&[]);
    let hook = TestWebhook::start(&[], |request| {
        let mut response = harness::patch(json!([
            {"op": "add", "path": "/metadata/annotations", "value": {"e2e.annexa.dev/requested-by": request["userInfo"]["username"]}}
        ]));
        response["warnings"] = json!(["mutated by the test webhook"]);
        response
    })
    .unwrap();
    let ns = cluster
        .namespace_with_labels("mutate", &[("webhook-test", "on")])
        .unwrap();
    cluster
        .grant(Some(&ns.name), "edit", &["--group=dev"])
        .unwrap();
    apply_json(
        cluster.kubectl(),
        &webhook_config(
            "MutatingWebhookConfiguration",
            "mutate.e2e.annexa.dev",
            json!({"url": hook.url("/mutate"), "caBundle": hook.ca_bundle()}),
            "Fail",
            "on",
        ),
    );
    let out = cluster
        .kubectl_as("bob")
        .args(["create", "-f", "-"])
        .stdin(configmap(&ns.name, "m", json!({})).to_string())
        .run()
        .unwrap();
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stderr.contains("Warning: mutated by the test webhook"),
        "{}",
        out.stderr
    );
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "m", "-n", &ns.name]),
    );
    assert_eq!(
        live["metadata"]["annotations"]["e2e.annexa.dev/requested-by"],
        "bob"
    );
}

#[test]
fn failure_policy_decides_when_the_webhook_is_down() {
    let cluster = standin(&[]);
    let dead_port = harness::free_port().unwrap();
    // A CA that signed nothing listening there: the webhook is simply down.
    let ca = TestWebhook::start(&[], |_| allow()).unwrap().ca_bundle();
    let strict = cluster
        .namespace_with_labels("strict", &[("webhook-test", "strict")])
        .unwrap();
    let lenient = cluster
        .namespace_with_labels("lenient", &[("webhook-test", "lenient")])
        .unwrap();
    let url = format!("https://127.0.0.1:{dead_port}/validate");
    apply_json(
        cluster.kubectl(),
        &webhook_config(
            "ValidatingWebhookConfiguration",
            "strict.e2e.annexa.dev",
            json!({"url": url, "caBundle": ca}),
            "Fail",
            "strict",
        ),
    );
    apply_json(
        cluster.kubectl(),
        &webhook_config(
            "ValidatingWebhookConfiguration",
            "lenient.e2e.annexa.dev",
            json!({"url": url, "caBundle": ca}),
            "Ignore",
            "lenient",
        ),
    );
    let err = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(configmap(&strict.name, "c", json!({})).to_string())
        .fails()
        .unwrap();
    assert!(
        err.contains(&format!("Internal error occurred: failed calling webhook \"strict.e2e.annexa.dev\": failed to call webhook: Post \"https://127.0.0.1:{dead_port}/validate?timeout=5s\"")),
        "{err}"
    );
    cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(configmap(&lenient.name, "c", json!({})).to_string())
        .ok()
        .unwrap();
}

#[test]
fn webhook_with_a_service_reference_is_reached_through_a_host_override() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let hook = TestWebhook::start(&["hook.hooks.svc", "late.hooks.svc"], move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        deny(422, "refused through the service")
    })
    .unwrap();
    let cluster = standin(&[&format!(
        "--webhook-host-override=hook.hooks:443=127.0.0.1:{}",
        hook.port
    )]);
    let ns = cluster
        .namespace_with_labels("svc", &[("webhook-test", "on")])
        .unwrap();
    apply_json(
        cluster.kubectl(),
        &webhook_config(
            "ValidatingWebhookConfiguration",
            "svc.e2e.annexa.dev",
            json!({"service": {"name": "hook", "namespace": "hooks", "path": "/validate"}, "caBundle": hook.ca_bundle()}),
            "Fail",
            "on",
        ),
    );
    let err = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(configmap(&ns.name, "c", json!({})).to_string())
        .fails()
        .unwrap();
    assert!(err.contains("admission webhook \"svc.e2e.annexa.dev\" denied the request: refused through the service"), "{err}");
    assert!(calls.load(Ordering::SeqCst) >= 1);
    // Dry runs are admitted too (the webhook declares sideEffects: None) and still denied.
    let err = cluster
        .kubectl()
        .args(["create", "--dry-run=server", "-f", "-"])
        .stdin(configmap(&ns.name, "c", json!({})).to_string())
        .fails()
        .unwrap();
    assert!(err.contains("refused through the service"), "{err}");

    // Overrides can also be added while the stand-in runs (e.g. once `annexa run` listens).
    cluster
        .add_webhook_override("late.hooks:8443", &format!("127.0.0.1:{}", hook.port))
        .unwrap();
    let late_ns = cluster
        .namespace_with_labels("late", &[("webhook-test", "late")])
        .unwrap();
    apply_json(
        cluster.kubectl(),
        &webhook_config(
            "ValidatingWebhookConfiguration",
            "late.e2e.annexa.dev",
            json!({"service": {"name": "late", "namespace": "hooks", "port": 8443, "path": "/validate"}, "caBundle": hook.ca_bundle()}),
            "Fail",
            "late",
        ),
    );
    let err = cluster
        .kubectl()
        .args(["create", "-f", "-"])
        .stdin(configmap(&late_ns.name, "c", json!({})).to_string())
        .fails()
        .unwrap();
    assert!(
        err.contains("admission webhook \"late.e2e.annexa.dev\" denied the request"),
        "{err}"
    );
}

#[test]
fn injected_faults_reach_clients_and_can_be_cleared() {
    let cluster = standin(&[]);
    let ns = cluster.namespace("faults").unwrap();
    apply_json(cluster.kubectl(), &configmap(&ns.name, "c", json!({})));
    cluster
        .set_faults(&Faults {
            error_rate: 1.0,
            error_codes: vec![500],
            path_contains: ns.name.clone(),
            ..Faults::default()
        })
        .unwrap();
    let err = cluster
        .kubectl()
        .args(["get", "configmap", "c", "-n", &ns.name])
        .fails()
        .unwrap();
    assert!(
        err.contains("InternalError") && err.contains("injected fault"),
        "{err}"
    );
    cluster
        .set_faults(&Faults {
            error_rate: 1.0,
            error_codes: vec![409],
            methods: vec!["PATCH".into()],
            ..Faults::default()
        })
        .unwrap();
    let err = cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"data":{"a":"1"}}"#,
        ])
        .fails()
        .unwrap();
    assert!(err.contains("Conflict"), "{err}");
    // Reads still work while only PATCH fails.
    cluster
        .kubectl()
        .args(["get", "configmap", "c", "-n", &ns.name])
        .ok()
        .unwrap();
    cluster
        .set_faults(&Faults {
            latency_ms: 50,
            ..Faults::default()
        })
        .unwrap();
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"data":{"a":"1"}}"#,
        ])
        .ok()
        .unwrap();
    cluster.set_faults(&Faults::default()).unwrap();
}

#[test]
fn dropped_watches_end_and_can_resume() {
    let cluster = standin(&[]);
    let ns = cluster.namespace("drop").unwrap();
    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "c", json!({"v": "1"})),
    );
    let rv = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "c", "-n", &ns.name]),
    )["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watch = Streaming::start(cluster.kubectl().args([
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/{}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=120",
            ns.name
        ),
    ]));
    // The watch is open once a change arrives through it.
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"data":{"v":"2"}}"#,
        ])
        .ok()
        .unwrap();
    watch.wait_for("the change", |l| l.contains("\"v\":\"2\""));
    cluster.drop_watches().unwrap();
    watch.wait_exit();
    // Resuming from the last seen resourceVersion replays what happened meanwhile.
    cluster
        .kubectl()
        .args([
            "patch",
            "configmap",
            "c",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"data":{"v":"3"}}"#,
        ])
        .ok()
        .unwrap();
    let resumed = cluster
        .kubectl()
        .args([
            "get",
            "--raw",
            &format!(
                "/api/v1/namespaces/{}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1",
                ns.name
            ),
        ])
        .ok()
        .unwrap();
    let values: Vec<String> = resumed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["object"]["data"]["v"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(values, vec!["2", "3"]);
}

#[test]
fn bounded_watch_history_answers_410_and_bookmarks_flow() {
    let cluster = standin(&["--watch-history=5", "--bookmark-interval-seconds=1"]);
    let ns = cluster.namespace("hist").unwrap();
    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "c", json!({"v": "0"})),
    );
    let first = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "c", "-n", &ns.name]),
    )["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 1..=8 {
        cluster
            .kubectl()
            .args([
                "patch",
                "configmap",
                "c",
                "-n",
                &ns.name,
                "--type=merge",
                "-p",
                &format!(r#"{{"data":{{"v":"{i}"}}}}"#),
            ])
            .ok()
            .unwrap();
    }
    let watch = |rv: &str, extra: &str| {
        cluster
            .kubectl()
            .args([
                "get",
                "--raw",
                &format!(
                    "/api/v1/namespaces/{}/configmaps?watch=true&resourceVersion={rv}{extra}",
                    ns.name
                ),
            ])
            .ok()
            .unwrap()
    };
    let gone: Value =
        serde_json::from_str(watch(&first, "&timeoutSeconds=1").lines().next().unwrap()).unwrap();
    assert_eq!(gone["type"], "ERROR");
    assert_eq!(gone["object"]["code"], 410);
    assert_eq!(gone["object"]["reason"], "Expired");

    let latest = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "c", "-n", &ns.name]),
    )["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let out = watch(&latest, "&timeoutSeconds=3&allowWatchBookmarks=true");
    assert!(out.lines().any(|l| l.contains("\"BOOKMARK\"")), "{out}");
    // Streaming lists end their initial events with a marked bookmark.
    let out = watch(
        "",
        "&timeoutSeconds=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "ADDED");
    assert!(
        lines.iter().any(|l| l["type"] == "BOOKMARK"
            && l["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"),
        "{out}"
    );
}

#[test]
fn authentication_is_required() {
    let cluster = standin(&[]);
    let (code, body) = raw(&cluster, None, "GET", "/api/v1/namespaces");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Unauthorized"));
    let (code, _) = raw(&cluster, Some("admin"), "GET", "/api/v1/namespaces");
    assert_eq!(code, 200);
    // Authenticated is not authorised: alice holds no permission on namespaces.
    let (code, body) = raw(&cluster, Some("alice"), "GET", "/api/v1/namespaces");
    assert_eq!(code, 403, "{body}");
    let (url, ca) = cluster.standin_endpoint().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (code, _, _) = rt
        .block_on(harness::raw_request(
            url,
            ca,
            "not-a-token",
            "GET",
            "/api/v1/namespaces",
            None,
            &[],
        ))
        .unwrap();
    assert_eq!(code, 401);
}

#[test]
fn bad_input_gets_clear_errors() {
    let cluster = standin(&[]);
    let ns = cluster.namespace("bad").unwrap();
    let (url, ca) = cluster.standin_endpoint().unwrap();
    let token = cluster.token("admin").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let post = |body: &str, content_type: &str| {
        rt.block_on(common::raw_body(
            url,
            ca,
            token,
            "POST",
            &format!("/api/v1/namespaces/{}/configmaps", ns.name),
            body,
            content_type,
        ))
    };
    let (code, body) = post("{not json", "application/json");
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#,
        "application/json",
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
        "application/json",
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("is invalid"), "{body}");
    let (code, body) = post("\u{0}\u{1}k8s", "application/vnd.kubernetes.protobuf");
    assert_eq!(code, 415, "{body}");
    let huge = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"x":"{}"}}}}"#,
        "a".repeat(4 * 1024 * 1024)
    );
    let (code, _) = post(&huge, "application/json");
    assert_eq!(code, 413);
    let (code, body) = post(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":"oops"}}"#,
        "application/json",
    );
    assert_eq!(code, 400, "{body}");
    apply_json(
        cluster.kubectl(),
        &configmap(&ns.name, "target", json!({"a": "1"})),
    );
    let patch = |body: &str, content_type: &str| {
        rt.block_on(common::raw_body(
            url,
            ca,
            token,
            "PATCH",
            &format!("/api/v1/namespaces/{}/configmaps/target", ns.name),
            body,
            content_type,
        ))
    };
    for (body, content_type) in [
        ("[1,2]", "application/merge-patch+json"),
        (r#"{"metadata":"x"}"#, "application/merge-patch+json"),
        (
            r#"{"metadata":{"labels":[1]}}"#,
            "application/strategic-merge-patch+json",
        ),
        (
            r#"[{"op":"replace","path":"","value":"x"}]"#,
            "application/json-patch+json",
        ),
        ("kind: [", "application/apply-patch+yaml"),
        ("{}", "application/octet-stream"),
    ] {
        let (code, text) = patch(body, content_type);
        assert!((400..500).contains(&code), "{body}: {code} {text}");
    }
    let (code, text) = patch("{}", "application/apply-patch+yaml");
    assert_eq!(code, 422, "fieldManager is required: {text}");
    // Nothing was damaged, and the server still serves.
    let live = get_json(
        cluster
            .kubectl()
            .args(["get", "configmap", "target", "-n", &ns.name]),
    );
    assert_eq!(live["data"]["a"], "1");
    cluster.kubectl().args(["get", "namespaces"]).ok().unwrap();
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut cluster = standin(&[]);
    cluster.kubectl().args(["get", "namespaces"]).ok().unwrap();
    assert!(
        cluster.stop().unwrap(),
        "exit status was not 0:\n{}",
        cluster.standin_log()
    );
    assert!(
        eventually(TIMEOUT, "the log", || Some(cluster.standin_log()))
            .unwrap()
            .contains("stopped")
    );
}

#[test]
fn match_conditions_select_requests_and_errors_follow_failure_policy() {
    let cluster = standin(&[]);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let hook = TestWebhook::start(&[], move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        deny(403, "flagged")
    })
    .unwrap();
    let ns = cluster
        .namespace_with_labels("cond", &[("webhook-test", "cond")])
        .unwrap();
    let mut config = webhook_config(
        "ValidatingWebhookConfiguration",
        "cond.e2e.annexa.dev",
        json!({"url": hook.url("/validate"), "caBundle": hook.ca_bundle()}),
        "Fail",
        "cond",
    );
    config["webhooks"][0]["matchConditions"] = json!([
        {"name": "flagged-only", "expression": "has(object.data) && 'flag' in object.data"},
        {"name": "not-exempt", "expression": "!object.metadata.name.startsWith('exempt-')"},
    ]);
    apply_json(cluster.kubectl(), &config);
    let create = |name: &str, data: Value| {
        cluster
            .kubectl()
            .args(["create", "-f", "-"])
            .stdin(configmap(&ns.name, name, data).to_string())
            .run()
            .unwrap()
    };
    assert!(create("plain", json!({"a": "1"})).success);
    assert!(create("exempt-one", json!({"flag": "1"})).success);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the webhook was called for non-matching requests"
    );
    let out = create("flagged", json!({"flag": "1"}));
    assert!(
        out.stderr.contains("denied the request: flagged"),
        "{}",
        out.stderr
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A condition that cannot be evaluated: Fail refuses, Ignore skips the webhook.
    config["webhooks"][0]["matchConditions"] =
        json!([{"name": "broken", "expression": "object.data.missing == 'x'"}]);
    apply_json(cluster.kubectl(), &config);
    let out = create("broken", json!({"a": "1"}));
    assert!(!out.success);
    assert!(
        out.stderr.contains("Forbidden")
            && out.stderr.contains("failed to evaluate match condition"),
        "{}",
        out.stderr
    );
    config["webhooks"][0]["failurePolicy"] = json!("Ignore");
    apply_json(cluster.kubectl(), &config);
    assert!(create("ignored", json!({"a": "1"})).success);
}
