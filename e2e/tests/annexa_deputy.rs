//! Annexa never does for a user what that user could not do, and never leaves a grant that
//! current policy forbids: end to end, with Annexa running under the chart's ServiceAccount and
//! the stand-in enforcing RBAC (escalation prevention included) as kube-apiserver does.
// Test helpers: panicking on a broken precondition is the point.
#![allow(clippy::unwrap_used)]

mod annexa;

use annexa::*;
use annexa_e2e::harness::eventually;
use serde_json::{Value, json};

/// The user the stand-in knows Annexa's ServiceAccount as.
fn annexa_user(a: &Annexa) -> String {
    format!(
        "system:serviceaccount:{}:{}",
        a.namespace,
        a.service_account_name()
    )
}

/// The requests the stand-in refused to Annexa's ServiceAccount, described.
fn refused_to_annexa(a: &Annexa) -> Vec<String> {
    a.cluster
        .authorizations(&annexa_user(a))
        .unwrap()
        .into_iter()
        .filter(|r| !r.allowed)
        .map(|r| format!("{:?}", r.attributes))
        .collect()
}

fn ready_message(object: &Value) -> String {
    condition(object, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The note of the Event with `reason` published about `name` in `ns` (waits for it).
fn event_note(a: &Annexa, ns: &str, name: &str, reason: &str) -> String {
    eventually(TIMEOUT, &format!("a {reason} Event about {name}"), || {
        let events = get(a.kubectl(), ns, "events.events.k8s.io")?;
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["regarding"]["name"] == name && e["reason"] == reason)
            .map(|e| {
                assert_eq!(e["type"], "Warning", "{e}");
                e["note"].as_str().unwrap_or_default().to_string()
            })
    })
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Withdrawal: a grant made while policy allowed it goes when policy forbids it

#[test]
fn an_agent_admitted_under_audit_with_escalate_loses_its_role_when_the_policy_turns_to_enforce() {
    let a = Annexa::shared();
    let case = Case::new(a, "withdraw-agent", staging_policy("Audit"));
    let ns = case.name();
    let agent = json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "AgentPolicy",
        "metadata": {"name": "janitor", "namespace": ns},
        "spec": {
            "serviceAccountName": "janitor",
            "permissions": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                             "verbs": ["get", "escalate"]}],
            "egress": [{"cidr": "10.40.12.0/24", "ports": [443], "protocol": "TCP"}],
            "tokenTTL": "30m",
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "janitor"}},
        },
    });
    // Under Audit the forbidden verb is reported, not refused: the administrator (who holds
    // escalate, so the webhook's access review passes) gets the agent and Annexa grants it.
    apply(a.kubectl(), &agent);
    let ap = wait_condition(a, ns, "ap/janitor", "Ready", "True");
    assert_eq!(condition(&ap, "Compliant").unwrap()["status"], "False");
    let role = get(a.kubectl(), ns, "role/janitor-agent").expect("the grant under Audit");
    assert_eq!(
        role["rules"][0]["verbs"],
        json!(["get", "escalate"]),
        "{role}"
    );
    assert!(get(a.kubectl(), ns, "rolebinding/janitor-agent").is_some());

    case.patch_policy(json!({"enforcement": {"action": "Enforce"}}));
    wait_gone(a, ns, "rolebinding/janitor-agent");
    wait_gone(a, ns, "role/janitor-agent");
    let ap = wait_for(a, ns, "ap/janitor", "Ready=False/GrantWithheld", |o| {
        condition(o, "Ready").is_some_and(|c| c["reason"] == "GrantWithheld")
    });
    assert_eq!(
        ready_message(&ap),
        "the spec fails Enforce controls (A.8.2): the declared permissions are not granted (a Role or RoleBinding granted before is withdrawn): A.8.2 Privileged access rights: agent \"janitor\" is granted the forbidden verb \"escalate\"; A.8.2 Privileged access rights: agent \"janitor\" is granted \"escalate\" on \"roles\", a dangerous permission the policy forbids"
    );
    assert_eq!(
        event_note(a, ns, "janitor", "GrantWithdrawn"),
        "Role and RoleBinding \"janitor-agent\" withdrawn: A.8.2 Privileged access rights: agent \"janitor\" is granted the forbidden verb \"escalate\"; A.8.2 Privileged access rights: agent \"janitor\" is granted \"escalate\" on \"roles\", a dangerous permission the policy forbids"
    );
    // The rest of the agent stays: its account and its egress allow-list.
    assert!(get(a.kubectl(), ns, "serviceaccount/janitor").is_some());
    assert!(get(a.kubectl(), ns, "networkpolicy/janitor-agent").is_some());
    // Withdrawn for good: a later reconcile (the policy touched again) writes nothing back.
    case.patch_policy(json!({"promotion": {"requiredApprovals": 0}}));
    wait_condition(a, ns, "ap/janitor", "Ready", "False");
    assert!(get(a.kubectl(), ns, "role/janitor-agent").is_none());
    assert!(
        refused_to_annexa(a).is_empty(),
        "{:?}",
        refused_to_annexa(a)
    );
}

#[test]
fn an_agents_open_egress_admitted_under_audit_is_narrowed_to_dns_when_the_policy_turns_to_enforce()
{
    let a = Annexa::shared();
    let case = Case::new(a, "withdraw-egress", staging_policy("Audit"));
    let ns = case.name();
    let agent = json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "AgentPolicy",
        "metadata": {"name": "crawler", "namespace": ns},
        "spec": {
            "serviceAccountName": "crawler",
            "permissions": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            "egress": [{"cidr": "0.0.0.0/0", "ports": [443], "protocol": "TCP"}],
            "tokenTTL": "30m",
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "crawler"}},
        },
    });
    apply(a.kubectl_as("alice"), &agent);
    wait_condition(a, ns, "ap/crawler", "Ready", "True");
    let open = get(a.kubectl(), ns, "networkpolicy/crawler-agent").unwrap();
    assert_eq!(
        open["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"], "0.0.0.0/0",
        "{open}"
    );

    case.patch_policy(json!({"enforcement": {"action": "Enforce"}}));
    let narrowed = wait_for(
        a,
        ns,
        "networkpolicy/crawler-agent",
        "egress narrowed to DNS",
        |np| {
            np["spec"]["egress"]
                .as_array()
                .is_some_and(|e| e.len() == 1)
        },
    );
    let egress = &narrowed["spec"]["egress"][0];
    assert!(egress["to"][0].get("ipBlock").is_none(), "{narrowed}");
    assert_eq!(egress["ports"][0]["port"], 53, "{narrowed}");
    let ap = wait_for(a, ns, "ap/crawler", "Ready=False/EgressWithheld", |o| {
        condition(o, "Ready").is_some_and(|c| c["reason"] == "EgressWithheld")
    });
    let message = ready_message(&ap);
    assert!(
        message.contains("the declared egress is not opened (DNS only)")
            && message.contains("0.0.0.0/0"),
        "{message}"
    );
    // Its permissions pass every control: the grant stays.
    assert!(get(a.kubectl(), ns, "role/crawler-agent").is_some());
}

#[test]
fn a_datasets_reader_role_is_withdrawn_when_its_policy_becomes_stricter() {
    let a = Annexa::shared();
    let case = Case::new(a, "withdraw-data", staging_policy("Enforce"));
    let ns = case.name();
    let mut td = dataset(ns, "claims");
    td["spec"]["credentialsSecret"] = json!("claims-s3");
    // alice holds `edit` in the namespace, which reads Secrets: the webhook lets her grant it.
    apply(a.kubectl_as("alice"), &td);
    wait_condition(a, ns, "td/claims", "Ready", "True");
    let role = get(a.kubectl(), ns, "role/claims-credentials-reader").unwrap();
    assert_eq!(role["rules"][0]["resourceNames"], json!(["claims-s3"]));

    // Data may now reside only in eu-central-1; the dataset is in eu-west-1.
    case.patch_policy(json!({"residency": {"allowedRegions": ["eu-central-1"]}}));
    wait_gone(a, ns, "rolebinding/claims-credentials-reader");
    wait_gone(a, ns, "role/claims-credentials-reader");
    let td = wait_for(a, ns, "td/claims", "Ready=False/AccessWithheld", |o| {
        condition(o, "Ready").is_some_and(|c| c["reason"] == "AccessWithheld")
    });
    let message = ready_message(&td);
    assert!(
        message.starts_with(
            "the spec fails Enforce controls (A.5.34): no access to the credentials Secret is granted (a Role or RoleBinding granted before is withdrawn): A.5.34 "
        ),
        "{message}"
    );
    assert!(message.contains("eu-west-1"), "{message}");
    let note = event_note(a, ns, "claims", "AccessWithdrawn");
    assert!(
        note.starts_with("Role and RoleBinding \"claims-credentials-reader\" reading the credentials Secret withdrawn: A.5.34 "),
        "{note}"
    );

    // The policy relaxed again: the grant comes back.
    case.patch_policy(json!({"residency": null}));
    wait_condition(a, ns, "td/claims", "Ready", "True");
    assert!(get(a.kubectl(), ns, "role/claims-credentials-reader").is_some());

    // No Secret declared any more: the Role that read it is withdrawn too.
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "td/claims",
            "--type=merge",
            "-p",
            r#"{"spec":{"credentialsSecret":null}}"#,
        ])
        .ok()
        .unwrap();
    wait_gone(a, ns, "role/claims-credentials-reader");
    assert!(
        refused_to_annexa(a).is_empty(),
        "{:?}",
        refused_to_annexa(a)
    );
}

// ---------------------------------------------------------------------------------------------
// A user cannot reach through Annexa what they cannot reach themselves

#[test]
fn a_user_who_cannot_read_a_secret_cannot_expose_it_through_a_dataset() {
    let a = Annexa::shared();
    let case = Case::new(a, "deputy-secret", staging_policy("Enforce"));
    let ns = case.name();
    apply(
        a.kubectl(),
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "payroll-db", "namespace": ns},
                "stringData": {"password": "s3cr3t"}}),
    );
    // mallory may manage datasets in the namespace, and nothing else: no Secret.
    apply(
        a.kubectl(),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "dataset-author", "namespace": ns},
                "rules": [{"apiGroups": ["annexa.dev"], "resources": ["trainingdatasets"],
                           "verbs": ["get", "list", "create", "update", "patch"]}]}),
    );
    apply(
        a.kubectl(),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "dataset-author", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dataset-author"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]}),
    );
    let denied = a
        .kubectl_as("mallory")
        .args(["-n", ns, "get", "secret", "payroll-db"])
        .fails()
        .unwrap();
    assert!(
        denied.contains("cannot get resource \"secrets\""),
        "{denied}"
    );

    let mut td = dataset(ns, "payroll");
    td["spec"]["credentialsSecret"] = json!("payroll-db");
    td["spec"]["access"] = json!({"allowedServiceAccounts": ["default"]});
    let err = create_fails(a.kubectl_as("mallory"), &td);
    assert!(
        err.contains(&format!(
            "TrainingDataset \"payroll\" is not compliant: A.8.3 Information access restriction: user \"mallory\" may not \"get\" on secrets \"payroll-db\" in namespace \"{ns}\" (spec.credentialsSecret), so Annexa will not grant reading it to service accounts [\"default\"] on their behalf"
        )),
        "{err}"
    );
    assert!(get(a.kubectl(), ns, "td/payroll").is_none());
    assert!(get(a.kubectl(), ns, "role/payroll-credentials-reader").is_none());
    assert!(get(a.kubectl(), ns, "rolebinding/payroll-credentials-reader").is_none());
    // The same dataset by someone who may read the Secret is admitted and granted.
    apply(a.kubectl_as("alice"), &td);
    wait_condition(a, ns, "td/payroll", "Ready", "True");
    assert!(get(a.kubectl(), ns, "role/payroll-credentials-reader").is_some());
    // mallory cannot widen it afterwards either: adding a reader is a new grant.
    let widened = a
        .kubectl_as("mallory")
        .args([
            "-n",
            ns,
            "patch",
            "td/payroll",
            "--type=merge",
            "-p",
            r#"{"spec":{"access":{"allowedServiceAccounts":["default","builder"]}}}"#,
        ])
        .fails()
        .unwrap();
    assert!(
        widened.contains("user \"mallory\" may not \"get\" on secrets \"payroll-db\""),
        "{widened}"
    );
    let binding = get(a.kubectl(), ns, "rolebinding/payroll-credentials-reader").unwrap();
    assert_eq!(
        binding["subjects"].as_array().unwrap().len(),
        1,
        "{binding}"
    );

    // Nor can mallory have Annexa delete another team's PVC at a retention she sets to 1s.
    apply(
        a.kubectl(),
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "ledger", "namespace": ns},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    let mut wiper = dataset(ns, "wiper");
    wiper["spec"]["source"] = json!({"pvc": "ledger",
        "sha256": "sha256:ca150bd50c376842bc72630b2dd7fb3c1ad1410b2bee1b2e61d9635daf46b22e"});
    wiper["spec"]["retention"] = json!({"period": "1s", "onExpiry": "Delete"});
    let err = create_fails(a.kubectl_as("mallory"), &wiper);
    assert!(
        err.contains(&format!(
            "A.8.10 Information deletion: user \"mallory\" may not \"delete\" on persistentvolumeclaims \"ledger\" in namespace \"{ns}\" (spec.source.pvc), so Annexa will not delete it when the retention expires on their behalf"
        )),
        "{err}"
    );
    assert!(get(a.kubectl(), ns, "td/wiper").is_none());
    assert!(get(a.kubectl(), ns, "pvc/ledger").is_some());
}

// ---------------------------------------------------------------------------------------------
// Annexa's own reach

/// The webhook certificate is renewed (a short serving lifetime) and recreated (its Secret
/// deleted) by `annexa run` under the chart's ServiceAccount: the Secret and the caBundle are
/// written with the chart's verbs only, nothing is refused to Annexa, and the webhook keeps
/// answering the API server.
#[test]
fn the_webhook_certificate_rotates_under_the_charts_service_account_without_a_refusal() {
    let a = Annexa::own_standin();
    let process = a.start(
        "annexa-0",
        &[
            "--certificate-check-interval=1s",
            "--serving-certificate-lifetime=15s",
        ],
    );
    let secret_name = format!("{RELEASE}-webhook-tls");
    let serving_cert = || {
        a.kubectl()
            .args([
                "-n",
                &a.namespace,
                "get",
                "secret",
                &secret_name,
                "-o",
                "jsonpath={.data.tls\\.crt}",
            ])
            .ok()
            .unwrap()
    };
    let first = serving_cert();
    let ca_before = a.ca_bundle_pem();
    // Renewed at two thirds of 15 s, from the same CA: the caBundle does not change.
    eventually(TIMEOUT, "the serving certificate renewed", || {
        (serving_cert() != first).then_some(())
    })
    .unwrap();
    let mut process = process;
    process
        .wait_for_log("serving the renewed certificate", TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", process.log()));
    assert_eq!(a.ca_bundle_pem(), ca_before);
    assert_eq!(
        a.readyz(a.webhook_port, &ca_before).as_deref(),
        Some("ok"),
        "the renewed certificate is served and trusted"
    );

    // The Secret lost: a new CA and certificate, and the caBundle of both configurations follows.
    a.kubectl()
        .args(["-n", &a.namespace, "delete", "secret", &secret_name])
        .ok()
        .unwrap();
    let ca_after = eventually(TIMEOUT, "a new CA in the caBundle", || {
        let ca = a.ca_bundle_pem();
        (ca != ca_before).then_some(ca)
    })
    .unwrap();
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        let config = get(a.kubectl(), "default", &format!("{kind}/{RELEASE}")).unwrap();
        for webhook in config["webhooks"].as_array().unwrap() {
            let pem = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                webhook["clientConfig"]["caBundle"].as_str().unwrap(),
            )
            .unwrap();
            let pem = String::from_utf8(pem).unwrap();
            assert!(
                pem.contains(ca_after.trim()),
                "{kind} webhook {} has no new CA",
                webhook["name"]
            );
        }
    }
    eventually(TIMEOUT, "the webhook served with the new CA", || {
        (a.readyz(a.webhook_port, &ca_after).as_deref() == Some("ok")).then_some(())
    })
    .unwrap();
    // The API server reaches the webhook with the new bundle: an Annexa object is admitted.
    let ns = a.cluster.namespace("rotated").unwrap();
    a.cluster
        .grant(Some(&ns.name), "edit", &["--group=dev"])
        .unwrap();
    apply(a.kubectl_as("alice"), &dataset(&ns.name, "after-rotation"));

    let records = a.cluster.authorizations(&annexa_user(&a)).unwrap();
    let refused: Vec<_> = records.iter().filter(|r| !r.allowed).collect();
    assert!(refused.is_empty(), "{refused:#?}\n{}", process.log());
    let did = |verb: &str, resource: &str| {
        records.iter().any(|r| {
            r.allowed
                && r.attributes.verb == verb
                && r.attributes.resource == resource
                && r.attributes.namespace == a.namespace
        })
    };
    assert!(did("update", "secrets"), "renewal updates the Secret");
    assert!(did("create", "secrets"), "the lost Secret is recreated");
    assert!(
        records.iter().any(|r| r.attributes.verb == "patch"
            && r.attributes.resource == "mutatingwebhookconfigurations"),
        "the caBundle is patched"
    );
}

/// rbac.namespaces: Annexa may write grants and delete PVCs in the listed namespaces only;
/// elsewhere the API server refuses and the object says which permission Annexa lacks.
#[test]
fn outside_the_listed_namespaces_a_grant_or_a_deletion_is_refused_and_reported() {
    let a = Annexa::own_standin_with(
        &json!({"rbac": {"namespaces": ["team-served"]}}),
        &["team-served", "team-other"],
    );
    let process = a.start("annexa-0", &[]);
    let agent = |ns: &str| {
        json!({
            "apiVersion": "annexa.dev/v1alpha1", "kind": "AgentPolicy",
            "metadata": {"name": "reader", "namespace": ns},
            "spec": {
                "serviceAccountName": "reader",
                "permissions": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
                "egress": [{"cidr": "10.40.12.0/24", "ports": [443], "protocol": "TCP"}],
                "tokenTTL": "30m",
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "reader"}},
            },
        })
    };
    apply(a.kubectl(), &agent("team-served"));
    apply(a.kubectl(), &agent("team-other"));
    wait_condition(&a, "team-served", "ap/reader", "Ready", "True");
    assert!(get(a.kubectl(), "team-served", "role/reader-agent").is_some());
    let ap = wait_for(
        &a,
        "team-other",
        "ap/reader",
        "Ready=False/Forbidden",
        |o| condition(o, "Ready").is_some_and(|c| c["reason"] == "Forbidden"),
    );
    let message = ready_message(&ap);
    assert!(
        message.starts_with(
            "Annexa's own RBAC does not allow it to write the agent's children in namespace \"team-other\": "
        ),
        "{message}"
    );
    assert!(
        message.contains("is attempting to grant RBAC permissions not currently held"),
        "the missing permission is named: {message}"
    );
    assert!(message.contains("configmaps"), "{message}");
    assert!(get(a.kubectl(), "team-other", "role/reader-agent").is_none());
    // What Annexa may do there is done: the account and the egress policy.
    assert!(get(a.kubectl(), "team-other", "serviceaccount/reader").is_some());
    assert!(get(a.kubectl(), "team-other", "networkpolicy/reader-agent").is_some());

    // An expired dataset with onExpiry: Delete: its PVC is deleted where Annexa may, and the
    // refusal reported where it may not.
    let until = jiff::Timestamp::from_second(
        (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(4)).as_second(),
    )
    .unwrap();
    for ns in ["team-served", "team-other"] {
        apply(
            a.kubectl(),
            &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "features", "namespace": ns},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        let mut td = dataset(ns, "short-lived");
        td["spec"]["source"] = json!({"pvc": "features",
            "sha256": "sha256:ca150bd50c376842bc72630b2dd7fb3c1ad1410b2bee1b2e61d9635daf46b22e"});
        td["spec"]["retention"] = json!({"until": until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                                         "onExpiry": "Delete"});
        apply(a.kubectl(), &td);
    }
    wait_gone(&a, "team-served", "pvc/features");
    let td = wait_for(
        &a,
        "team-other",
        "td/short-lived",
        "Retained=False/DeletionRefused",
        |o| condition(o, "Retained").is_some_and(|c| c["reason"] == "DeletionRefused"),
    );
    let retained = condition(&td, "Retained").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        retained.contains("Annexa's own RBAC does not allow it to delete PersistentVolumeClaim \"features\" in namespace \"team-other\""),
        "{retained}"
    );
    assert!(
        retained.contains("cannot delete resource \"persistentvolumeclaims\""),
        "{retained}"
    );
    assert!(get(a.kubectl(), "team-other", "pvc/features").is_some());
    assert!(td["status"].get("deletedAt").is_none(), "{td}");
    drop(process);
}

/// Installed from the chart and acting as its ServiceAccount, Annexa reconciles every compliant
/// example (policies, datasets, models, agents) and writes their children, the Roles it grants
/// included, without a single request refused.
#[test]
fn every_example_is_reconciled_under_the_charts_service_account_with_nothing_refused() {
    let a = Annexa::own_standin();
    let process = a.start("annexa-0", &[]);
    let dir = repo_root().join("examples/compliant");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            // Approvals are made by their approvers with `annexa approve`, not applied; the
            // workloads are not Annexa's to reconcile.
            let name = p.file_name().unwrap().to_string_lossy();
            !name.contains("approvals") && !name.contains("workloads")
        })
        .collect();
    files.sort();
    for file in &files {
        a.kubectl()
            .args(["apply", "-f", file.to_str().unwrap()])
            .ok()
            .unwrap_or_else(|e| panic!("kubectl apply {}: {e}", file.display()));
    }
    let reconciled = |o: &Value| {
        o["status"]["observedGeneration"] == o["metadata"]["generation"]
            && condition(o, "Ready").is_some()
    };
    let mut objects = Vec::new();
    for (ns, what) in [
        ("fraud-prod", "td/claims-raw"),
        ("fraud-prod", "td/claims"),
        ("fraud-prod", "md/fraud-detection"),
        ("fraud-staging", "td/claims-synthetic"),
        ("fraud-staging", "md/fraud-detection"),
        ("support-prod", "ap/support-agent"),
        ("fraud-staging", "ap/claims-triage-agent"),
    ] {
        objects.push(wait_for(
            &a,
            ns,
            what,
            &format!("{what} reconciled"),
            reconciled,
        ));
    }
    for o in &objects {
        let ready = condition(o, "Ready").unwrap();
        assert_ne!(ready["reason"], "Forbidden", "{}", o["metadata"]["name"]);
        assert_ne!(ready["reason"], "NameConflict", "{}", o["metadata"]["name"]);
    }
    // The grants Annexa wrote for users: exactly the declared rules and readers.
    let reader = get(
        a.kubectl(),
        "fraud-prod",
        "role/claims-raw-credentials-reader",
    )
    .unwrap();
    assert_eq!(
        reader["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"],
                "resourceNames": ["claims-raw-s3-reader"], "verbs": ["get"]}])
    );
    for (ns, agent) in [
        ("support-prod", "support-agent"),
        ("fraud-staging", "claims-triage-agent"),
    ] {
        let declared = get(a.kubectl(), ns, &format!("ap/{agent}")).unwrap();
        let role = get(a.kubectl(), ns, &format!("role/{agent}-agent")).unwrap();
        assert_eq!(role["rules"], declared["spec"]["permissions"], "{agent}");
    }
    let refused = refused_to_annexa(&a);
    assert!(refused.is_empty(), "{refused:#?}\n{}", process.log());
}
