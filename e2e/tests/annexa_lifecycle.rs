//! Annexa end to end, scenarios that stop, restart or duplicate `annexa run` or inject faults:
//! each test starts a stand-in of its own (also when ANNEXA_E2E_KUBECONFIG is set), installs
//! Annexa from the rendered chart and runs `annexa run` as child processes.

mod annexa;

use std::time::Duration;

use annexa::*;
use annexa_e2e::harness::eventually;
use annexa_e2e::standin::Faults;

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

    // Annexa stops. The Annexa kinds have failurePolicy Fail: refused, not admitted unchecked.
    let status = first.terminate(TIMEOUT).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "annexa run did not stop cleanly:\n{}",
        first.log()
    );
    let err = create_fails(
        a.kubectl_as("alice"),
        &model(ns, "while-down", DIGEST_1, &["m-data"]),
    );
    assert!(err.contains("failed calling webhook"), "{err}");
    assert!(
        err.contains("kinds.validate.annexa.dev") || err.contains("digest-requester"),
        "{err}"
    );
    assert!(get(a.kubectl(), ns, "md/while-down").is_none());

    // Meanwhile someone deletes a child and edits another.
    let ports = get(a.kubectl(), ns, "service/m").unwrap()["spec"]["ports"].clone();
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
            "--type=merge",
            "-p",
            r#"{"spec":{"ports":[{"port":9999}]}}"#,
        ])
        .ok()
        .unwrap();

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
