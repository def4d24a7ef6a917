//! Annexa end to end, scenarios that stop, restart or duplicate `annexa run` or inject faults:
//! each test starts a stand-in of its own (also when ANNEXA_E2E_KUBECONFIG is set), installs
//! Annexa from the rendered chart and runs `annexa run` as child processes.

mod annexa;

use std::time::Duration;

use annexa::*;
use annexa_e2e::harness::eventually;
use annexa_e2e::standin::{Faults, authz};
use serde_json::json;

fn staged_model(a: &Annexa, case: &Case, name: &str) {
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, &format!("{name}-data")));
    apply(
        a.kubectl_as("alice"),
        &model(ns, name, DIGEST_1, &[&format!("{name}-data")]),
    );
}

/// Exactly one child of each kind for model `name`.
fn assert_one_child_each(a: &Annexa, ns: &str, name: &str) {
    let selector = format!("annexa.dev/modeldeployment={name}");
    for resource in [
        "deployments",
        "services",
        "networkpolicies",
        "serviceaccounts",
    ] {
        assert_eq!(
            names(a, ns, resource, &selector),
            vec![name.to_string()],
            "{resource} of {name}"
        );
    }
}

#[test]
fn webhook_down_is_handled_per_failure_policy_and_a_restart_converges() {
    let a = Annexa::own_standin();
    let mut first = a.start("annexa-0", &[]);
    let case = Case::new(&a, "restart", staging_policy("Enforce"));
    let ns = case.name();
    staged_model(&a, &case, "m");
    wait_condition(&a, ns, "md/m", "Ready", "True");
    // Bob approves m while Annexa is up.
    let (ok, out, err) = annexa_cli(&a, "bob", &["approve", "md/m", "-n", ns]);
    assert!(ok, "{out}{err}");
    let approvals = names(&a, ns, "modelapprovals", "");
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let approval_name = approvals[0].clone();

    // Annexa stops. The Annexa kinds have failurePolicy Fail: refused, not admitted unchecked.
    let status = first.terminate(TIMEOUT).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "annexa run did not stop cleanly:\n{}",
        first.log()
    );
    // A ModelDeployment meets the mutating webhook first (the API server calls mutating
    // webhooks before validating ones), and it cannot be reached.
    let err = create_fails(
        a.kubectl_as("alice"),
        &model(ns, "while-down", DIGEST_1, &["m-data"]),
    );
    assert!(
        err.contains(r#"failed calling webhook "digest-requester.mutate.annexa.dev""#),
        "{err}"
    );
    assert!(get(a.kubectl(), ns, "md/while-down").is_none());

    // The approval's spec is frozen by the CRD's own rule, which the API server checks before
    // any validating webhook: the refusal is the CRD's message, not a webhook failure. Even a
    // cluster admin cannot change it.
    let err = a
        .kubectl()
        .args([
            "-n",
            ns,
            "patch",
            &format!("modelapproval/{approval_name}"),
            "--type=merge",
            "-p",
            r#"{"spec":{"decision":"Reject","reason":"changed my mind"}}"#,
        ])
        .fails()
        .unwrap();
    assert_eq!(
        err.trim(),
        format!(
            r#"The ModelApproval "{approval_name}" is invalid: spec: Invalid value: "object": spec is immutable: create a new ModelApproval instead"#
        )
    );
    assert_eq!(
        get(a.kubectl(), ns, &format!("modelapproval/{approval_name}")).unwrap()["spec"]["decision"],
        "Approve"
    );

    // A pod in the enforced namespace cannot be created unchecked (workload failurePolicy Fail),
    // this non-compliant one included: a GPU pod without the pool placement.
    let gpu_pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "unplaced", "namespace": ns},
        "spec": {"containers": [{"name": "train", "image": IMAGE,
                                 "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    });
    let err = create_fails(a.kubectl_as("alice"), &gpu_pod);
    assert!(
        err.contains(r#"failed calling webhook "workloads.validate.annexa.dev""#),
        "{err}"
    );
    assert!(get(a.kubectl(), ns, "pod/unplaced").is_none());

    // `kubectl scale` writes the Deployment's `scale` subresource, which no Annexa webhook
    // rule names: scaling works with Annexa down, as the operating guide promises.
    let out = a
        .kubectl_as("alice")
        .args(["-n", ns, "scale", "deployment/m", "--replicas=3"])
        .ok()
        .unwrap();
    assert_eq!(out.trim(), "deployment.apps/m scaled");
    assert_eq!(
        get(a.kubectl(), ns, "deployment/m").unwrap()["spec"]["replicas"],
        3
    );
    // So does a replicas-only change of the Deployment itself: the workload webhook's
    // matchConditions send it no request, since no pod template changes.
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "deployment/m",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ])
        .ok()
        .unwrap();
    assert_eq!(
        get(a.kubectl(), ns, "deployment/m").unwrap()["spec"]["replicas"],
        2
    );
    // A change of the pod template, on the other hand, must be checked, so it is refused.
    let err = a
        .kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "deployment/m",
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"metadata":{"labels":{"edited":"yes"}}}}}"#,
        ])
        .fails()
        .unwrap();
    assert!(
        err.contains(r#"failed calling webhook "workloads.validate.annexa.dev""#),
        "{err}"
    );

    // Meanwhile someone deletes a child and edits another: the serving port of the Service is
    // pointed elsewhere. (The edit changes a field Annexa applies. `ports` is a list keyed by
    // port and protocol, so under server-side apply a port someone else adds is theirs and
    // stays, on a real cluster as on the stand-in.)
    let ports = get(a.kubectl(), ns, "service/m").unwrap()["spec"]["ports"].clone();
    assert_eq!(ports[0]["targetPort"], "serving", "{ports}");
    a.kubectl()
        .args(["-n", ns, "delete", "deployment/m"])
        .ok()
        .unwrap();
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "service/m",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/ports/0/targetPort","value":9999}]"#,
        ])
        .ok()
        .unwrap();
    assert_eq!(
        get(a.kubectl(), ns, "service/m").unwrap()["spec"]["ports"][0]["targetPort"],
        9999
    );

    // Restarted, it converges: the Deployment is back, exactly one of each child.
    let second = a.start("annexa-0", &[]);
    wait_for(&a, ns, "deployment/m", "the Deployment recreated", |d| {
        d["metadata"]["annotations"]["annexa.dev/model-digest"] == DIGEST_1
            || d["spec"]["template"]["metadata"]["annotations"]["annexa.dev/model-digest"]
                == DIGEST_1
    });
    wait_for(&a, ns, "service/m", "the Service restored", |s| {
        s["spec"]["ports"] == ports
    });
    assert_one_child_each(&a, ns, "m");
    wait_condition(&a, ns, "md/m", "Ready", "True");
    // And admission works again.
    staged_model(&a, &case, "after");
    wait_condition(&a, ns, "md/after", "Ready", "True");
    assert_one_child_each(&a, ns, "after");
    drop(second);
}

fn lease_spec(a: &Annexa) -> serde_json::Value {
    get(a.kubectl(), &a.namespace, "lease/annexa-leader")
        .map(|lease| lease["spec"].clone())
        .unwrap_or_default()
}

fn lease_holder(a: &Annexa) -> Option<String> {
    lease_spec(a)["holderIdentity"].as_str().map(str::to_string)
}

#[test]
fn two_replicas_only_the_lease_holder_reconciles_and_shutdown_releases_the_lease() {
    let a = Annexa::own_standin();
    let mut leader = a.start("annexa-a", &[]);
    eventually(TIMEOUT, "annexa-a to hold the Lease", || {
        (lease_holder(&a).as_deref() == Some("annexa-a")).then_some(())
    })
    .unwrap();
    // The second replica serves its webhook on a port of its own (the Service points at the
    // first; both serve, as replicas behind one Service do).
    let follower_port = annexa_e2e::harness::free_port().unwrap();
    let mut follower = a.start_on("annexa-b", follower_port, &[]);
    follower
        .wait_for_log("waiting for leadership", TIMEOUT)
        .expect("the follower waits for the Lease");

    let case = Case::new(&a, "ha", staging_policy("Enforce"));
    let ns = case.name();
    staged_model(&a, &case, "m");
    wait_condition(&a, ns, "md/m", "Ready", "True");
    assert_eq!(lease_holder(&a).as_deref(), Some("annexa-a"));

    let reconciles = |p: &annexa_e2e::harness::Background| {
        let text = http_get(metrics_port(p), "/metrics").expect("metrics");
        counter_total(&text, "annexa_reconciles_total")
    };
    // The Lease says who holds it and for how long: 15 s terms.
    let held = lease_spec(&a);
    assert_eq!(held["holderIdentity"], "annexa-a", "{held}");
    assert_eq!(held["leaseDurationSeconds"], 15, "{held}");
    assert!(held["renewTime"].is_string(), "{held}");
    let transitions = held["leaseTransitions"].as_i64().unwrap_or(0);
    assert!(reconciles(&leader) > 0.0, "the leader reconciled nothing");
    assert_eq!(reconciles(&follower), 0.0, "the follower reconciled");
    assert!(
        !follower.log().contains("became leader"),
        "{}",
        follower.log()
    );

    // Graceful shutdown of the leader releases the Lease: the moment the process is gone the
    // Lease no longer names it (without the release it would name annexa-a until its 15 s
    // term ran out). The follower takes it at its next check, with one more transition.
    let status = leader.terminate(TIMEOUT).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{}", leader.log());
    let released = lease_spec(&a);
    match released["holderIdentity"].as_str() {
        None => {
            // Released and not yet taken: no holder and no term left.
            assert!(released["renewTime"].is_null(), "{released}");
            assert!(released["leaseDurationSeconds"].is_null(), "{released}");
        }
        Some(holder) => assert_eq!(holder, "annexa-b", "not released: {released}"),
    }
    assert!(
        leader.log().contains("released the Lease"),
        "{}",
        leader.log()
    );
    // The Service's only endpoint left is the follower.
    a.route_webhook_service_to(follower_port);
    eventually(TIMEOUT, "annexa-b to hold the Lease", || {
        (lease_holder(&a).as_deref() == Some("annexa-b")).then_some(())
    })
    .unwrap();
    let taken = lease_spec(&a);
    assert_eq!(
        taken["leaseTransitions"].as_i64(),
        Some(transitions + 1),
        "{taken}"
    );
    assert_eq!(taken["leaseDurationSeconds"], 15, "{taken}");
    assert!(taken["acquireTime"].is_string(), "{taken}");
    staged_model(&a, &case, "after");
    wait_condition(&a, ns, "md/after", "Ready", "True");
    assert!(reconciles(&follower) > 0.0);
}

#[test]
fn converges_through_409_and_500_faults_and_dropped_watches() {
    let a = Annexa::own_standin();
    let annexa = a.start("annexa-0", &[]);
    let case = Case::new(&a, "faults", staging_policy("Enforce"));
    let ns = case.name();
    staged_model(&a, &case, "before");
    wait_condition(&a, ns, "md/before", "Ready", "True");
    // Reconcile errors that come from the API server, by kind (`category="kube"`).
    let errors = |kind: &str| {
        let text = http_get(metrics_port(&annexa), "/metrics").expect("metrics");
        text.lines()
            .filter(|l| {
                l.starts_with("annexa_reconcile_errors_total{")
                    && l.contains("category=\"kube\"")
                    && (kind.is_empty() || l.contains(&format!("kind=\"{kind}\"")))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = errors("");
    assert_eq!(before, 0.0, "errors before any fault was injected");

    // Annexa's writes (server-side apply is PATCH) fail: first all of them, until Annexa has
    // seen errors, then at random. kubectl's own creates (POST) go through. Watches are cut
    // while the faults are on.
    let mut faults = Faults {
        error_rate: 1.0,
        error_codes: vec![409, 500],
        methods: vec!["PATCH".into(), "PUT".into()],
        ..Faults::default()
    };
    a.cluster.set_faults(&faults).unwrap();
    staged_model(&a, &case, "m");
    // The injected errors are counted, against the kind whose writes failed.
    eventually(TIMEOUT, "Annexa to meet the injected errors", || {
        (errors("ModelDeployment") > before).then_some(())
    })
    .unwrap();
    faults.error_rate = 0.2;
    a.cluster.set_faults(&faults).unwrap();
    for _ in 0..3 {
        a.cluster.drop_watches().unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    // A failed reconcile backs off 10-20 s; a few of them in a row are expected.
    eventually(TIMEOUT * 3, "md/m Ready under faults", || {
        let md = get(a.kubectl(), ns, "md/m")?;
        condition(&md, "Ready")
            .is_some_and(|c| c["status"] == "True")
            .then_some(())
    })
    .unwrap();
    a.cluster.set_faults(&Faults::default()).unwrap();
    a.cluster.drop_watches().unwrap();
    // A change made after the dropped watches is still seen.
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "deployment/m",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":7}}"#,
        ])
        .ok()
        .unwrap();
    wait_for(
        &a,
        ns,
        "deployment/m",
        "replicas restored after the faults",
        |d| d["spec"]["replicas"] == 1,
    );
    // With the faults lifted, reconciles stop failing: another repair adds no error.
    let after_faults = errors("");
    assert!(after_faults > before, "{after_faults}");
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "deployment/m",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":5}}"#,
        ])
        .ok()
        .unwrap();
    wait_for(&a, ns, "deployment/m", "replicas restored again", |d| {
        d["spec"]["replicas"] == 1
    });
    assert_eq!(
        errors(""),
        after_faults,
        "errors once the faults were lifted"
    );
    assert_one_child_each(&a, ns, "m");
    assert_one_child_each(&a, ns, "before");
}

/// The rules the rendered chart grants to its own ServiceAccount, with the namespace they are
/// limited to (None: cluster-wide, from a ClusterRoleBinding).
fn chart_grants(a: &Annexa) -> Vec<(Option<String>, authz::PolicyRule)> {
    let sa = &a.service_account_name();
    let mut out = Vec::new();
    for binding in a
        .rendered
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
    {
        let binds_annexa = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == sa.as_str()
                    && s["namespace"] == a.namespace.as_str()
            });
        if !binds_annexa {
            continue;
        }
        let scope = binding["metadata"]["namespace"]
            .as_str()
            .map(str::to_string);
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role = a
            .rendered
            .iter()
            .find(|o| o["kind"] == role_kind && o["metadata"]["name"] == binding["roleRef"]["name"])
            .unwrap_or_else(|| panic!("the chart renders the role {binding}"));
        for rule in role["rules"].as_array().into_iter().flatten() {
            out.push((scope.clone(), authz::PolicyRule::from_json(rule)));
        }
    }
    out
}

/// Every request Annexa's ServiceAccount makes while it installs, reconciles every kind and
/// deletes what it reconciled is authorised by the stand-in's RBAC; each was granted by a rule
/// the rendered chart gives that ServiceAccount; and the chart's grants no request used are
/// listed (a ClusterRole holding more than the code needs shows here).
#[test]
fn every_request_annexa_makes_is_granted_by_the_chart_and_unused_grants_are_listed() {
    let a = Annexa::own_standin();
    let process = a.start("annexa-0", &[]);
    let case = Case::new(&a, "grants", staging_policy("Enforce"));
    let ns = case.name();
    staged_model(&a, &case, "m");
    wait_condition(&a, ns, "md/m", "Ready", "True");
    let agent = json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "AgentPolicy",
        "metadata": {"name": "helper", "namespace": ns},
        "spec": {
            "serviceAccountName": "helper",
            "permissions": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            "egress": [{"cidr": "10.40.12.0/24", "ports": [443], "protocol": "TCP"}],
            "tokenTTL": "30m",
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "helper"}},
        },
    });
    apply(a.kubectl_as("alice"), &agent);
    wait_condition(&a, ns, "ap/helper", "LeastPrivilege", "True");
    a.kubectl()
        .args(["-n", ns, "delete", "md/m", "ap/helper"])
        .ok()
        .unwrap();
    if let Err(e) = eventually(TIMEOUT, "deployment/m to be gone", || {
        get(a.kubectl(), ns, "deployment/m").is_none().then_some(())
    }) {
        panic!(
            "{e}: {:#?}\nmd: {:?}\n{}",
            get(a.kubectl(), ns, "deployment/m").map(|d| d["metadata"].clone()),
            get(a.kubectl(), ns, "md/m").map(|d| d["metadata"].clone()),
            process.log()
        );
    }

    let user = format!(
        "system:serviceaccount:{}:{}",
        a.namespace,
        a.service_account_name()
    );
    let records = a.cluster.authorizations(&user).unwrap();
    assert!(!records.is_empty(), "no request was recorded for {user}");
    let denied: Vec<_> = records.iter().filter(|r| !r.allowed).collect();
    assert!(
        denied.is_empty(),
        "Annexa was refused:\n{denied:#?}\n{}",
        process.log()
    );
    let grants = chart_grants(&a);
    let not_from_chart: Vec<_> = records
        .iter()
        .filter(|r| {
            !grants.iter().any(|(scope, rule)| {
                scope
                    .as_deref()
                    .is_none_or(|ns| ns == r.attributes.namespace)
                    && authz::rule_allows(&r.attributes, rule)
            })
        })
        .collect();
    assert!(
        not_from_chart.is_empty(),
        "allowed by something other than the chart's RBAC:\n{not_from_chart:#?}"
    );
    // Grants no request used: one line per (verb, group, resource[, name]).
    let mut unused = Vec::new();
    for (scope, rule) in &grants {
        for verb in &rule.verbs {
            for group in &rule.api_groups {
                for resource in &rule.resources {
                    let names: Vec<Option<&String>> = if rule.resource_names.is_empty() {
                        vec![None]
                    } else {
                        rule.resource_names.iter().map(Some).collect()
                    };
                    for name in names {
                        let atom = authz::PolicyRule {
                            verbs: vec![verb.clone()],
                            api_groups: vec![group.clone()],
                            resources: vec![resource.clone()],
                            resource_names: name.cloned().into_iter().collect(),
                            non_resource_urls: Vec::new(),
                        };
                        let used = records.iter().any(|r| {
                            scope
                                .as_deref()
                                .is_none_or(|ns| ns == r.attributes.namespace)
                                && authz::rule_allows(&r.attributes, &atom)
                        });
                        if !used {
                            unused.push(format!(
                                "{verb} {}{resource}{}{}",
                                if group.is_empty() {
                                    String::new()
                                } else {
                                    format!("{group}/")
                                },
                                name.map(|n| format!(" name={n}")).unwrap_or_default(),
                                scope
                                    .as_deref()
                                    .map(|s| format!(" in {s}"))
                                    .unwrap_or_default(),
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{} distinct requests by {user}, all granted by the chart; {} of the chart's grants unused:\n  {}",
        records.len(),
        unused.len(),
        unused.join("\n  ")
    );
}
