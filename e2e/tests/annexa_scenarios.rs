//! Annexa end to end: the real `annexa run` and real `kubectl` against the stand-in API server
//! (or, with ANNEXA_E2E_KUBECONFIG, a real cluster where Annexa is installed with Helm).
//! Annexa is installed from the rendered chart once for this file; each test works in its own
//! namespace with its own CompliancePolicy and cleans up.

mod annexa;

use annexa::*;
use base64::Engine;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// 1. Install

#[test]
fn install_from_chart_serves_crds_webhooks_and_readyz() {
    let a = Annexa::shared();
    // The category covers every Annexa kind (kubectl may need a discovery refresh after the
    // CRDs appeared, as on a real cluster).
    annexa_e2e::harness::eventually(TIMEOUT, "kubectl get annexa -A", || {
        a.kubectl().args(["get", "annexa", "-A"]).ok().ok()
    })
    .unwrap();
    // Each kind is served: listed by discovery and listable, which is what Established means
    // to a client (the stand-in sets the condition at once, so waiting for it proves nothing).
    let resources = a
        .kubectl()
        .args(["api-resources", "--api-group=annexa.dev", "-o", "name"])
        .ok()
        .unwrap();
    for plural in [
        "compliancepolicies",
        "trainingdatasets",
        "modeldeployments",
        "modelapprovals",
        "agentpolicies",
    ] {
        let resource = format!("{plural}.annexa.dev");
        assert!(
            resources.lines().any(|l| l.trim() == resource),
            "{resource} not served:\n{resources}"
        );
        a.kubectl()
            .args(["get", &resource, "-A"])
            .ok()
            .unwrap_or_else(|e| panic!("{resource}: {e}"));
    }
    // Every webhook of both configurations carries the CA that signs the serving certificate.
    let ca = a.ca_bundle_pem();
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");
    let expected = base64::engine::general_purpose::STANDARD.encode(&ca);
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        let config = get(a.kubectl(), "default", &format!("{kind}/{RELEASE}")).unwrap();
        let webhooks = config["webhooks"].as_array().unwrap();
        if a.cluster.is_standin() {
            // As many as the chart renders, by name.
            let rendered_kind = if kind.starts_with("validating") {
                "ValidatingWebhookConfiguration"
            } else {
                "MutatingWebhookConfiguration"
            };
            let rendered: Vec<&Value> = a
                .rendered
                .iter()
                .find(|o| o["kind"] == rendered_kind)
                .and_then(|o| o["webhooks"].as_array())
                .map(|w| w.iter().map(|h| &h["name"]).collect())
                .unwrap();
            let served: Vec<&Value> = webhooks.iter().map(|h| &h["name"]).collect();
            assert_eq!(served, rendered, "{kind}");
        }
        assert!(!webhooks.is_empty(), "{kind} has no webhook");
        for webhook in webhooks {
            let bundle = webhook["clientConfig"]["caBundle"]
                .as_str()
                .unwrap_or_default();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(bundle)
                .unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&decoded),
                ca,
                "{kind} webhook {} has another caBundle ({expected:.20}...)",
                webhook["name"]
            );
        }
    }
    if a.cluster.is_standin() {
        assert_eq!(a.readyz(a.webhook_port, &ca).as_deref(), Some("ok"));
        // The self-managed certificate Secret the chart names exists.
        a.kubectl()
            .args(["-n", &a.namespace, "get", "secret", "annexa-webhook-tls"])
            .ok()
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Admission through the real webhook

#[test]
fn noncompliant_model_is_refused_with_the_control_id_and_compliant_one_admitted() {
    let a = Annexa::shared();
    let case = Case::new(a, "adm", staging_policy("Enforce"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));

    let mut open = model(ns, "open-to-all", DIGEST_1, &["data"]);
    open["spec"]["network"]["allowedFrom"] = json!([{"namespaceSelector": {}}]);
    let err = create_fails(a.kubectl_as("alice"), &open);
    assert!(
        err.contains("admission webhook \"kinds.validate.annexa.dev\" denied the request"),
        "{err}"
    );
    assert!(err.contains("A.8.22"), "{err}");
    assert!(get(a.kubectl(), ns, "md/open-to-all").is_none());

    apply(
        a.kubectl_as("alice"),
        &model(ns, "closed", DIGEST_1, &["data"]),
    );
    assert!(get(a.kubectl(), ns, "md/closed").is_some());
}

#[test]
fn warn_findings_reach_kubectl_as_warnings() {
    let a = Annexa::shared();
    let case = Case::new(a, "warn", staging_policy("Warn"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    let mut open = model(ns, "open-to-all", DIGEST_1, &["data"]);
    open["spec"]["network"]["allowedFrom"] = json!([{"namespaceSelector": {}}]);
    let out = a
        .kubectl_as("alice")
        .args(["create", "-f", "-"])
        .stdin(open.to_string())
        .run()
        .unwrap();
    assert!(out.success, "Warn must admit: {}", out.stderr);
    let warning = out
        .stderr
        .lines()
        .find(|l| l.starts_with("Warning:") && l.contains("A.8.22"));
    assert!(warning.is_some(), "no A.8.22 warning in: {}", out.stderr);
}

#[test]
fn approval_in_someone_elses_name_is_refused() {
    let a = Annexa::shared();
    let case = Case::new(a, "forge", production_policy());
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    apply(a.kubectl_as("alice"), &model(ns, "m", DIGEST_1, &["data"]));
    let uid = get(a.kubectl(), ns, "md/m").expect("the model was created")["metadata"]["uid"]
        .as_str()
        .expect("the model has a uid")
        .to_string();
    let forged = json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": "m-by-alice", "namespace": ns},
        "spec": {"modelDeployment": "m", "modelUID": uid,
                 "release": {"fingerprint": DIGEST_2, "digest": DIGEST_1},
                 "decision": "Approve", "reason": "looks good",
                 "approver": {"username": "alice", "groups": ["approvers"]}},
    });
    // The chart's ValidatingAdmissionPolicy refuses it in the API server, before any webhook is
    // called (kube-apiserver runs policies before validating webhooks); the webhook's own refusal
    // of the same approval is tested in tests/webhook_admission.rs.
    let err = create_fails(a.kubectl_as("bob"), &forged);
    assert!(
        err.contains("ValidatingAdmissionPolicy 'annexa-modelapproval-identity'"),
        "{err}"
    );
    assert!(err.contains("A.5.3"), "{err}");
    assert!(err.contains("submitted by \"bob\""), "{err}");
}

#[test]
fn wildcard_verb_agent_policy_is_refused() {
    let a = Annexa::shared();
    let case = Case::new(a, "wild", staging_policy("Enforce"));
    let ns = case.name();
    let mut agent = agent_policy(ns, "greedy");
    agent["spec"]["permissions"][0]["verbs"] = json!(["*"]);
    let err = create_fails(a.kubectl_as("alice"), &agent);
    assert!(err.contains("denied the request"), "{err}");
    assert!(err.contains("A.8.2"), "{err}");
    // The same agent with enumerated verbs is admitted.
    apply(a.kubectl_as("alice"), &agent_policy(ns, "modest"));
}

// ---------------------------------------------------------------------------------------------
// 3. The digest requester annotation

#[test]
fn digest_requester_is_set_by_the_webhook_and_cannot_be_forged() {
    let a = Annexa::shared();
    let case = Case::new(a, "req", staging_policy("Enforce"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    let requester = |object: &Value| {
        object["metadata"]["annotations"]["annexa.dev/digest-requested-by"]
            .as_str()
            .map(str::to_string)
    };

    let mut forged = model(ns, "m", DIGEST_1, &["data"]);
    forged["metadata"]["annotations"] = json!({"annexa.dev/digest-requested-by": "mallory"});
    apply(a.kubectl_as("alice"), &forged);
    let stored = get(a.kubectl(), ns, "md/m").unwrap();
    assert_eq!(requester(&stored).as_deref(), Some("alice"));

    // Bob edits something else and claims the digest is carol's: the record stays alice's.
    let mut edit = forged.clone();
    edit["metadata"]["annotations"] = json!({"annexa.dev/digest-requested-by": "carol"});
    edit["spec"]["replicas"] = json!(2);
    apply(a.kubectl_as("bob"), &edit);
    let stored = get(a.kubectl(), ns, "md/m").unwrap();
    assert_eq!(stored["spec"]["replicas"], 2);
    assert_eq!(requester(&stored).as_deref(), Some("alice"));

    // Bob changes the digest: now he is its requester.
    edit["spec"]["model"]["digest"] = json!(DIGEST_2);
    apply(a.kubectl_as("bob"), &edit);
    let stored = get(a.kubectl(), ns, "md/m").unwrap();
    assert_eq!(requester(&stored).as_deref(), Some("bob"));
}

// ---------------------------------------------------------------------------------------------
// 4. Controllers: a compliant staging model

#[test]
fn compliant_staging_model_gets_hardened_children_and_becomes_ready() {
    let a = Annexa::shared();
    let case = Case::new(a, "stg", staging_policy("Enforce"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    apply(a.kubectl_as("alice"), &model(ns, "m", DIGEST_1, &["data"]));
    a.kubectl()
        .args([
            "-n",
            ns,
            "wait",
            "--for=condition=Ready",
            "md/m",
            "--timeout=60s",
        ])
        .ok()
        .unwrap();

    let sa = get(a.kubectl(), ns, "serviceaccount/m").expect("ServiceAccount");
    assert_eq!(sa["automountServiceAccountToken"], false);
    let deployment = get(a.kubectl(), ns, "deployment/m").expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], IMAGE);
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(pod["nodeSelector"]["gpu.example.com/pool"], "e2e-internal");
    let tolerations = pod["tolerations"].as_array().expect("tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| t["key"] == "gpu.example.com/pool" && t["value"] == "e2e-internal"),
        "{tolerations:?}"
    );
    assert_eq!(pod["serviceAccountName"], "m");
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["kind"],
        "ModelDeployment"
    );
    get(a.kubectl(), ns, "service/m").expect("Service");
    let netpol = get(a.kubectl(), ns, "networkpolicy/m").expect("NetworkPolicy");
    assert_eq!(
        netpol["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "e2e-client"
    );

    let md = get(a.kubectl(), ns, "md/m").unwrap();
    let controls = md["status"]["controls"]
        .as_array()
        .expect("status.controls");
    assert!(
        controls
            .iter()
            .any(|c| c["id"] == "A.8.22" && c["result"] == "Pass"),
        "{controls:?}"
    );
    assert_eq!(condition(&md, "Compliant").unwrap()["status"], "True");
    assert_eq!(condition(&md, "GPUIsolated").unwrap()["status"], "True");
    assert_eq!(md["status"]["servingDigest"], DIGEST_1);
}

// ---------------------------------------------------------------------------------------------
// 5. Production promotion

#[test]
fn production_promotion_waits_for_two_approvals_of_exactly_the_digest() {
    let a = Annexa::shared();
    let case = Case::new(a, "prod", production_policy());
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    let manifest = model(ns, "m", DIGEST_1, &["data"]);
    apply(a.kubectl_as("alice"), &manifest);

    // No approvals: nothing serves.
    let md = wait_condition(a, ns, "md/m", "Approved", "False");
    let approved = condition(&md, "Approved").unwrap();
    assert!(
        approved["message"]
            .as_str()
            .unwrap()
            .contains("0 of 2 approvals"),
        "{approved}"
    );
    assert!(get(a.kubectl(), ns, "deployment/m").is_none());

    let approve = |user: &str, digest: &str| {
        annexa_cli(a, user, &["approve", "md/m", "--digest", digest, "-n", ns])
    };
    let (ok, out, err) = approve("bob", DIGEST_1);
    assert!(ok, "bob's approval: {out}{err}");
    wait_for(a, ns, "md/m", "1 of 2 approvals", |md| {
        condition(md, "Approved").is_some_and(|c| {
            c["message"]
                .as_str()
                .unwrap_or_default()
                .contains("1 of 2 approvals")
        })
    });
    assert!(get(a.kubectl(), ns, "deployment/m").is_none());
    let (ok, out, err) = approve("carol", DIGEST_1);
    assert!(ok, "carol's approval: {out}{err}");

    let deployment = wait_for(a, ns, "deployment/m", "rollout of digest 1", |d| {
        serving_digest(d) == Some(DIGEST_1)
    });
    assert!(deployment.is_object());
    wait_condition(a, ns, "md/m", "Approved", "True");
    let md = wait_for(a, ns, "md/m", "the promotion record", |md| {
        md["status"]["promotions"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    });
    let record = &md["status"]["promotions"][0];
    assert_eq!(record["requestedBy"], "alice", "{record}");
    assert_eq!(record["approvers"], json!(["bob", "carol"]), "{record}");
    assert_eq!(
        record["fingerprint"],
        md["status"]["servingRelease"]["fingerprint"]
    );

    // Release R2 changes only the serving image: the Deployment keeps R1's image and the model
    // reports the change as pending; R1's approvals do not cover it.
    let mut image_only = manifest.clone();
    image_only["spec"]["image"] = json!(IMAGE_2);
    apply(a.kubectl_as("alice"), &image_only);
    let md = wait_for(a, ns, "md/m", "the image change pending", |md| {
        md["status"]["pendingRelease"]["image"] == IMAGE_2
    });
    assert_eq!(md["status"]["servingRelease"]["image"], IMAGE);
    let promoted = condition(&md, "Promoted").unwrap();
    assert_eq!(promoted["status"], "False", "{promoted}");
    assert_eq!(promoted["reason"], "AwaitingApproval", "{promoted}");
    let deployment = get(a.kubectl(), ns, "deployment/m").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );
    // `kubectl get md` shows what serves and what is pending.
    let table = a.kubectl().args(["get", "md", "m", "-n", ns]).ok().unwrap();
    assert!(
        table.contains("SERVING") && table.contains("PENDING"),
        "{table}"
    );
    // Two valid approvals of R2: it rolls out.
    for user in ["bob", "carol"] {
        let (ok, out, err) = annexa_cli(a, user, &["approve", "md/m", "-n", ns]);
        assert!(ok, "{user}'s approval of R2: {out}{err}");
        assert!(out.contains("image:   ") && out.contains(IMAGE_2), "{out}");
    }
    wait_for(a, ns, "deployment/m", "rollout of the new image", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE_2
    });
    let md = wait_for(a, ns, "md/m", "R2 serving", |md| {
        md["status"]["servingRelease"]["image"] == IMAGE_2
    });
    assert!(md["status"]["pendingRelease"].is_null(), "{}", md["status"]);

    // Release R3 changes only the serving port: the Deployment, the NetworkPolicy and the
    // Service keep R2's port, and the model reports R3 as pending.
    let serving_release = md["status"]["servingRelease"]["fingerprint"].clone();
    let mut port_only = image_only.clone();
    port_only["spec"]["serving"]["port"] = json!(9090);
    apply(a.kubectl_as("alice"), &port_only);
    let md = wait_for(a, ns, "md/m", "the port change pending", |md| {
        md["status"]["pendingRelease"]["fingerprint"]
            .as_str()
            .is_some_and(|f| json!(f) != serving_release)
    });
    assert_eq!(
        md["status"]["servingRelease"]["fingerprint"],
        serving_release
    );
    assert_eq!(
        condition(&md, "Promoted").unwrap()["reason"],
        "AwaitingApproval"
    );
    let deployment = get(a.kubectl(), ns, "deployment/m").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    let netpol = get(a.kubectl(), ns, "networkpolicy/m").unwrap();
    assert_eq!(
        netpol["spec"]["ingress"][0]["ports"][0]["port"], 8080,
        "{netpol}"
    );
    let service = get(a.kubectl(), ns, "service/m").unwrap();
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"], "serving",
        "{service}"
    );
    assert_eq!(service["spec"]["ports"][0]["port"], 80, "{service}");

    // A new digest: the old one keeps serving, the new one is pending.
    let mut changed = image_only.clone();
    changed["spec"]["model"]["digest"] = json!(DIGEST_2);
    apply(a.kubectl_as("alice"), &changed);
    let md = wait_for(a, ns, "md/m", "pendingDigest = digest 2", |md| {
        md["status"]["pendingDigest"] == DIGEST_2
    });
    assert_eq!(md["status"]["servingDigest"], DIGEST_1);
    let deployment = get(a.kubectl(), ns, "deployment/m").unwrap();
    assert_eq!(serving_digest(&deployment), Some(DIGEST_1));
    assert_eq!(condition(&md, "Approved").unwrap()["status"], "False");

    // Without the approver role, RBAC refuses before any webhook sees a request: `annexa
    // approve` cannot even read the model it would approve.
    let (ok, out, err) = approve("mallory", DIGEST_2);
    assert!(!ok, "mallory approved: {out}");
    assert!(
        err.contains(&format!(
            "modeldeployments.annexa.dev \"m\" is forbidden: User \"mallory\" cannot get resource \"modeldeployments\" in API group \"annexa.dev\" in the namespace \"{ns}\""
        )),
        "{err}"
    );
    // The requester cannot approve her own digest, even when RBAC lets her record approvals:
    // that is the webhook's separation of duties (A.5.3), not RBAC.
    a.cluster
        .grant(Some(ns), &format!("{RELEASE}-approver"), &["--user=alice"])
        .unwrap();
    let (ok, out, err) = approve("alice", DIGEST_2);
    assert!(!ok, "alice approved her own digest: {out}");
    assert!(err.contains("A.5.3"), "{err}");

    let (ok, out, err) = approve("bob", DIGEST_2);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = approve("carol", DIGEST_2);
    assert!(ok, "{out}{err}");
    wait_for(a, ns, "deployment/m", "rollout of digest 2", |d| {
        serving_digest(d) == Some(DIGEST_2)
    });
    let md = wait_for(a, ns, "md/m", "servingDigest = digest 2", |md| {
        md["status"]["servingDigest"] == DIGEST_2
    });
    assert!(md["status"]["pendingDigest"].is_null(), "{}", md["status"]);
}

/// A policy that raises the number of approvals after R1 was promoted neither rolls R1 back
/// nor makes it vanish from status: R1 keeps serving under the rule it was promoted with, the
/// model says so naming both numbers, and a new release needs the new count. Once R1's
/// approval is deleted nothing proves it any more: its Deployment is left as it is and the
/// model says that it cannot be proved.
#[test]
fn raising_the_required_approvals_keeps_the_serving_release_and_says_why() {
    let a = Annexa::shared();
    let mut policy = production_policy();
    policy["promotion"]["requiredApprovals"] = json!(1);
    let case = Case::new(a, "raise", policy);
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    let manifest = model(ns, "m", DIGEST_1, &["data"]);
    apply(a.kubectl_as("alice"), &manifest);
    wait_condition(a, ns, "md/m", "Approved", "False");
    let (ok, out, err) = annexa_cli(a, "bob", &["approve", "md/m", "-n", ns]);
    assert!(ok, "bob's approval: {out}{err}");
    wait_for(a, ns, "deployment/m", "rollout of R1", |d| {
        serving_digest(d) == Some(DIGEST_1)
    });
    let md = wait_for(a, ns, "md/m", "R1 serving", |md| {
        md["status"]["servingRelease"]["requiredApprovals"] == 1
    });
    let r1 = md["status"]["servingRelease"]["fingerprint"].clone();

    case.patch_policy(json!({"promotion": {"requiredApprovals": 2}}));
    let md = wait_for(a, ns, "md/m", "Approved=RequirementRaised", |md| {
        condition(md, "Approved").is_some_and(|c| c["reason"] == "RequirementRaised")
    });
    let approved = condition(&md, "Approved").unwrap();
    let message = approved["message"].as_str().unwrap();
    assert_eq!(approved["status"], "False", "{approved}");
    assert!(
        message.contains("A.8.32")
            && message.contains("(1 approval required)")
            && message.contains("(2 approvals required, 1 of 2 approvals)"),
        "{message}"
    );
    assert_eq!(md["status"]["servingRelease"]["fingerprint"], r1);
    assert!(md["status"]["pendingRelease"].is_null(), "{}", md["status"]);
    assert_eq!(condition(&md, "Ready").unwrap()["status"], "True");
    let control = md["status"]["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "A.8.32")
        .unwrap();
    assert_eq!(control["message"], approved["message"], "{control}");
    let deployment = get(a.kubectl(), ns, "deployment/m").unwrap();
    assert_eq!(serving_digest(&deployment), Some(DIGEST_1));

    // R2 needs two now: one approval holds it while R1 keeps serving.
    let mut r2 = manifest.clone();
    r2["spec"]["model"]["digest"] = json!(DIGEST_2);
    apply(a.kubectl_as("alice"), &r2);
    wait_for(a, ns, "md/m", "R2 pending", |md| {
        md["status"]["pendingDigest"] == DIGEST_2
    });
    let (ok, out, err) = annexa_cli(a, "bob", &["approve", "md/m", "-n", ns]);
    assert!(ok, "bob's approval of R2: {out}{err}");
    let md = wait_for(a, ns, "md/m", "R2 at 1 of 2", |md| {
        condition(md, "Approved")
            .is_some_and(|c| c["message"].as_str().unwrap_or_default() == "1 of 2 approvals")
    });
    assert_eq!(md["status"]["servingRelease"]["fingerprint"], r1);
    let promoted = condition(&md, "Promoted").unwrap();
    assert!(
        promoted["message"]
            .as_str()
            .unwrap()
            .contains("promoted under the rule then in force (1 approval required; 2 now)"),
        "{promoted}"
    );
    assert_eq!(
        serving_digest(&get(a.kubectl(), ns, "deployment/m").unwrap()),
        Some(DIGEST_1)
    );

    // R1's approval is deleted: nothing proves R1 any more. Its Deployment is not rolled back,
    // scaled down or removed, and the model says it cannot be proved.
    let approvals: Value = serde_json::from_str(
        &a.kubectl()
            .args(["-n", ns, "get", "modelapprovals", "-o", "json"])
            .ok()
            .unwrap(),
    )
    .unwrap();
    let of_r1: Vec<&str> = approvals["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["spec"]["release"]["fingerprint"] == r1)
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(of_r1.len(), 1, "{approvals}");
    a.kubectl()
        .args(["-n", ns, "delete", "modelapproval", of_r1[0]])
        .ok()
        .unwrap();
    let md = wait_for(a, ns, "md/m", "Promoted=ServingUnproven", |md| {
        condition(md, "Promoted").is_some_and(|c| c["reason"] == "ServingUnproven")
    });
    let promoted = condition(&md, "Promoted").unwrap();
    let message = promoted["message"].as_str().unwrap();
    assert!(
        message.contains("A.8.32")
            && message.contains("cannot be proved approved (0 of the ")
            && message.contains("left exactly as it is"),
        "{message}"
    );
    assert!(md["status"]["servingRelease"].is_null(), "{}", md["status"]);
    assert_eq!(
        condition(&md, "Ready").unwrap()["reason"],
        "ServingUnproven"
    );
    let deployment = get(a.kubectl(), ns, "deployment/m").expect("the Deployment still runs");
    assert_eq!(serving_digest(&deployment), Some(DIGEST_1));
    assert_eq!(deployment["spec"]["replicas"], 1);

    // A second valid approval of R2: it rolls out under the new rule.
    let (ok, out, err) = annexa_cli(a, "carol", &["approve", "md/m", "-n", ns]);
    assert!(ok, "carol's approval of R2: {out}{err}");
    wait_for(a, ns, "deployment/m", "rollout of R2", |d| {
        serving_digest(d) == Some(DIGEST_2)
    });
    let md = wait_for(a, ns, "md/m", "R2 serving under two", |md| {
        md["status"]["servingRelease"]["requiredApprovals"] == 2
    });
    assert_eq!(condition(&md, "Approved").unwrap()["reason"], "Approved");
}

/// Whoever can write `modeldeployments/status` cannot promote: a servingRelease written there,
/// with content that matches its fingerprint, renders nothing without the approvals, is reported
/// as unproven (A.8.32) and removed from status. Approvals are bound to the model's UID: they do
/// not carry over to a model deleted and recreated under the same name.
#[test]
fn a_forged_status_or_a_recreated_model_promotes_nothing() {
    let a = Annexa::shared();
    let case = Case::new(a, "forged", production_policy());
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    let manifest = model(ns, "m", DIGEST_1, &["data"]);
    apply(a.kubectl_as("alice"), &manifest);
    let md = wait_for(a, ns, "md/m", "R1 pending", |md| {
        md["status"]["pendingRelease"]["fingerprint"].is_string()
    });
    let spec = &manifest["spec"];
    let forged = json!({"status": {"servingDigest": DIGEST_1, "servingRelease": {
        "fingerprint": md["status"]["pendingRelease"]["fingerprint"],
        "digest": DIGEST_1, "version": "1.0.0", "image": IMAGE,
        "requestedBy": "alice", "approvers": ["bob", "carol"],
        "promotedAt": "2026-01-01T00:00:00Z", "requiredApprovals": 2,
        "spec": {"model": spec["model"], "image": IMAGE, "trainingDatasets": ["data"],
                 "resources": spec["resources"], "serving": spec["serving"]},
    }}});
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "md/m",
            "--subresource=status",
            "--type=merge",
            "-p",
            &forged.to_string(),
        ])
        .ok()
        .unwrap();
    let events = wait_for(
        a,
        ns,
        "events.events.k8s.io",
        "a ServingUnproven event",
        |e| {
            e["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|e| e["regarding"]["name"] == "m" && e["reason"] == "ServingUnproven")
            })
        },
    );
    let note = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"] == "ServingUnproven")
        .and_then(|e| e["note"].as_str())
        .unwrap()
        .to_string();
    // The content matched its fingerprint: only the missing approvals give it away.
    assert!(
        note.contains("A.8.32")
            && note.contains("cannot be proved approved (0 of the 2 approvals it was promoted with still exist and count)"),
        "{note}"
    );
    let md = wait_for(a, ns, "md/m", "the forged record removed", |md| {
        md["status"]["servingRelease"].is_null() && md["status"]["servingDigest"].is_null()
    });
    assert_eq!(
        condition(&md, "Promoted").unwrap()["reason"],
        "AwaitingApproval"
    );
    assert!(get(a.kubectl(), ns, "deployment/m").is_none());

    // Two approvals, then the model is deleted and recreated under the same name: the
    // approvals name the old UID and count for nothing.
    for user in ["bob", "carol"] {
        let (ok, out, err) = annexa_cli(a, user, &["approve", "md/m", "-n", ns]);
        assert!(ok, "{user}'s approval: {out}{err}");
    }
    wait_for(a, ns, "deployment/m", "rollout of R1", |d| {
        serving_digest(d) == Some(DIGEST_1)
    });
    let promoted = wait_for(a, ns, "md/m", "R1's promotion recorded", |md| {
        md["status"]["promotions"]
            .as_array()
            .is_some_and(|p| p.len() == 1)
    });
    let record = promoted["status"]["promotions"][0].clone();
    // The status is lost (a restore without status, or a reconcile that read a status older
    // than its own last write): the release found on the Deployment is re-proved and its
    // promotion record put back, once, with no second promotion Event.
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "md/m",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status": {"servingRelease": null, "servingDigest": null, "promotions": null}}"#,
        ])
        .ok()
        .unwrap();
    let md = wait_for(a, ns, "md/m", "R1 serving again with its record", |md| {
        md["status"]["servingRelease"]["fingerprint"] == record["fingerprint"]
            && md["status"]["promotions"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
    });
    assert_eq!(md["status"]["promotions"], json!([record]));
    let events = get(a.kubectl(), ns, "events.events.k8s.io").unwrap();
    let promotions = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] == "m" && e["reason"] == "ReleasePromoted")
        .count();
    assert_eq!(promotions, 1, "one ReleasePromoted Event for one promotion");
    a.kubectl_as("alice")
        .args(["-n", ns, "delete", "md/m", "--wait=true"])
        .ok()
        .unwrap();
    apply(a.kubectl_as("alice"), &manifest);
    let md = wait_for(a, ns, "md/m", "the recreated model held", |md| {
        condition(md, "Promoted").is_some_and(|c| {
            c["message"]
                .as_str()
                .unwrap_or_default()
                .contains("A.8.32 Change management: release")
        })
    });
    let promoted = condition(&md, "Promoted").unwrap();
    assert!(
        promoted["message"]
            .as_str()
            .unwrap()
            .contains("awaits approval: 0 of 2 approvals"),
        "{promoted}"
    );
    assert!(md["status"]["servingRelease"].is_null(), "{}", md["status"]);
    let approvals = wait_for(a, ns, "modelapprovals", "both approvals not counted", |l| {
        l["items"].as_array().is_some_and(|items| {
            items.len() == 2
                && items
                    .iter()
                    .all(|i| condition(i, "Counted").is_some_and(|c| c["reason"] == "OtherModel"))
        })
    });
    assert_eq!(approvals["items"].as_array().unwrap().len(), 2);
}

/// Another serving image (a release that differs from R1 only there).
const IMAGE_2: &str = "registry.example.com/ml/triton-serving@sha256:4444444444444444444444444444444444444444444444444444444444444444";

/// An approval as `kubectl create` would send it (not through `annexa approve`).
fn approval_doc(ns: &str, name: &str, approver: &str, groups: &[&str], decision: &str) -> Value {
    json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "modelDeployment": "m", "modelUID": "0d7a3e55-e2e",
            "release": {"fingerprint": DIGEST_2, "digest": DIGEST_1},
            "decision": decision, "reason": "reviewed",
            "approver": {"username": approver, "groups": groups},
        },
    })
}

/// With Annexa's webhook out of the way (not running, failurePolicy Ignore as the emergency
/// procedure sets it), the API server itself still refuses approvals in someone else's name or
/// with a group the user lacks, and the deletion of someone else's rejection: the chart's
/// ValidatingAdmissionPolicy.
#[test]
fn identity_rules_hold_in_the_api_server_while_the_webhook_is_down() {
    let a = Annexa::own_standin();
    let webhook = a
        .rendered
        .iter()
        .find(|o| o["kind"] == "ValidatingWebhookConfiguration")
        .and_then(|o| o["metadata"]["name"].as_str())
        .expect("the chart renders a ValidatingWebhookConfiguration")
        .to_string();
    a.kubectl()
        .args([
            "patch",
            "validatingwebhookconfiguration",
            &webhook,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]"#,
        ])
        .ok()
        .unwrap();
    let ns = a.cluster.namespace("vap").unwrap();
    let ns = ns.name.as_str();
    // Everything RBAC can give in this namespace: only the policy refuses.
    a.cluster
        .grant(
            Some(ns),
            "cluster-admin",
            &["--user=alice", "--user=bob", "--user=carol"],
        )
        .unwrap();
    let vap = "ValidatingAdmissionPolicy 'annexa-modelapproval-identity' with binding 'annexa-modelapproval-identity' denied request";

    // In one's own name, with one's own groups: admitted (nothing else is checked now).
    apply(
        a.kubectl_as("bob"),
        &approval_doc(ns, "by-bob", "bob", &["approvers"], "Approve"),
    );
    // In someone else's name.
    let err = create_fails(
        a.kubectl_as("alice"),
        &approval_doc(ns, "forged", "bob", &[], "Approve"),
    );
    assert!(
        err.contains(vap)
            && err.contains("A.5.3 Segregation of duties: approval names approver \"bob\" but was submitted by \"alice\""),
        "{err}"
    );
    // With a group the user is not in (alice is in dev only).
    let err = create_fails(
        a.kubectl_as("alice"),
        &approval_doc(ns, "claimed", "alice", &["approvers"], "Approve"),
    );
    assert!(err.contains(vap) && err.contains("claims a group"), "{err}");
    // A rejection is withdrawn only by its author.
    apply(
        a.kubectl_as("carol"),
        &approval_doc(ns, "no", "carol", &[], "Reject"),
    );
    let out = a
        .kubectl_as("alice")
        .args(["delete", "modelapproval", "no", "-n", ns])
        .fails()
        .unwrap();
    assert!(
        out.contains(vap) && out.contains("can only be withdrawn by its author"),
        "{out}"
    );
    a.kubectl_as("carol")
        .args(["delete", "modelapproval", "no", "-n", ns])
        .ok()
        .unwrap();
}

/// With Annexa's webhooks out of the way (not running, both configurations at failurePolicy
/// Ignore), the API server itself keeps the requester annotations of a ModelDeployment in the
/// requesting user's own name: nobody can name someone else as the requester of their release
/// (and then approve it themselves), nor record a new release under someone else's name. The
/// chart's second ValidatingAdmissionPolicy.
#[test]
fn requester_annotations_hold_in_the_api_server_while_the_webhook_is_down() {
    let a = Annexa::own_standin();
    ignore_webhook_failures(&a);
    let ns = a.cluster.namespace("req-vap").unwrap();
    let ns = ns.name.as_str();
    a.cluster
        .grant(
            Some(ns),
            "cluster-admin",
            &["--user=alice", "--user=bob", "--user=carol"],
        )
        .unwrap();
    let vap = "ValidatingAdmissionPolicy 'annexa-modeldeployment-requester' with binding 'annexa-modeldeployment-requester' denied request";
    let with_requester = |by: &str, release: &str| {
        let mut md = model(ns, "m", DIGEST_1, &["data"]);
        md["metadata"]["annotations"] = json!({
            "annexa.dev/digest-requested-by": by,
            "annexa.dev/requested-release": release,
        });
        md
    };

    // Alice names bob as the requester of her release.
    let err = create_fails(a.kubectl_as("alice"), &with_requester("bob", "sha256:r1"));
    assert!(
        err.contains(vap)
            && err.contains("annotation annexa.dev/digest-requested-by names \"bob\" but the request is by \"alice\""),
        "{err}"
    );
    // In her own name: admitted.
    apply(a.kubectl_as("alice"), &with_requester("alice", "sha256:r1"));
    // Carol records a new release while alice stays named as its requester.
    let err = a
        .kubectl_as("carol")
        .args([
            "-n",
            ns,
            "annotate",
            "--overwrite",
            "md/m",
            "annexa.dev/requested-release=sha256:r2",
        ])
        .fails()
        .unwrap();
    assert!(
        err.contains(vap) && err.contains("only the requester may record the release they request"),
        "{err}"
    );
    // Carol renames the requester to bob.
    let err = a
        .kubectl_as("carol")
        .args([
            "-n",
            ns,
            "annotate",
            "--overwrite",
            "md/m",
            "annexa.dev/digest-requested-by=bob",
        ])
        .fails()
        .unwrap();
    assert!(err.contains(vap), "{err}");
    // Other edits that leave both annotations alone are not the policy's business.
    a.kubectl_as("carol")
        .args(["-n", ns, "label", "md/m", "team=fraud"])
        .ok()
        .unwrap();
}

/// Both webhook configurations at failurePolicy Ignore, as the emergency procedure sets them:
/// with Annexa not running, the API server admits what the webhooks would have seen.
#[allow(clippy::unwrap_used, clippy::expect_used)]
fn ignore_webhook_failures(a: &Annexa) {
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let config = a
            .rendered
            .iter()
            .find(|o| o["kind"] == kind)
            .expect("the chart renders both webhook configurations");
        let name = config["metadata"]["name"].as_str().unwrap();
        let patch: Vec<Value> = (0..config["webhooks"].as_array().unwrap().len())
            .map(|i| json!({"op": "replace", "path": format!("/webhooks/{i}/failurePolicy"), "value": "Ignore"}))
            .collect();
        a.kubectl()
            .args([
                "patch",
                &kind.to_lowercase(),
                name,
                "--type=json",
                "-p",
                &Value::from(patch).to_string(),
            ])
            .ok()
            .unwrap();
    }
}

/// A release written while Annexa's webhooks were out of the way (failurePolicy Ignore, Annexa
/// not running) has no recorded requester: once Annexa runs it is held with `RequesterUnknown`
/// (A.5.3, fail closed), two valid approvals notwithstanding, until its requester claims it with
/// the webhook running; then the approvals count and it rolls out.
#[test]
fn a_release_written_without_the_webhook_is_held_until_its_requester_claims_it() {
    let a = Annexa::own_standin();
    ignore_webhook_failures(&a);
    let case = Case::new(&a, "unknown", production_policy());
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    apply(a.kubectl_as("alice"), &model(ns, "m", DIGEST_1, &["data"]));
    let stored = get(a.kubectl(), ns, "md/m").unwrap();
    assert!(
        stored["metadata"]["annotations"]["annexa.dev/digest-requested-by"].is_null(),
        "{stored}"
    );
    let _annexa = a.start("annexa-0", &[]);
    for user in ["bob", "carol"] {
        let (ok, out, err) = annexa_cli(&a, user, &["approve", "md/m", "-n", ns]);
        assert!(ok, "{user}'s approval: {out}{err}");
    }
    let md = wait_for(&a, ns, "md/m", "held: requester unknown", |md| {
        condition(md, "Ready").is_some_and(|c| c["reason"] == "RequesterUnknown")
    });
    assert_eq!(
        condition(&md, "Approved").unwrap()["reason"],
        "RequesterUnknown"
    );
    let ready = condition(&md, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ready.contains("A.5.3 Segregation of duties: the requester of release")
            && ready.contains("is not recorded"),
        "{ready}"
    );
    assert!(get(a.kubectl(), ns, "deployment/m").is_none());

    // Alice claims her release with the webhook running: bob's and carol's approvals count.
    a.kubectl_as("alice")
        .args([
            "-n",
            ns,
            "annotate",
            "--overwrite",
            "md/m",
            "annexa.dev/digest-requested-by=alice",
        ])
        .ok()
        .unwrap();
    wait_for(&a, ns, "deployment/m", "rollout once claimed", |d| {
        serving_digest(d) == Some(DIGEST_1)
    });
    let md = wait_condition(&a, ns, "md/m", "Approved", "True");
    assert_eq!(md["status"]["promotions"][0]["requestedBy"], "alice");
}

fn serving_digest(deployment: &Value) -> Option<&str> {
    let key = "annexa.dev/model-digest";
    deployment["metadata"]["annotations"][key]
        .as_str()
        .or_else(|| deployment["spec"]["template"]["metadata"]["annotations"][key].as_str())
}

// ---------------------------------------------------------------------------------------------
// 6. Datasets: personal data, retention

#[test]
fn unmasked_personal_data_fails_a_8_11_and_holds_the_model() {
    let a = Annexa::shared();
    // Audit: admitted, so the controllers' report is what the user sees.
    // The dataset predates the enforcement: created under Audit (admitted), then the platform
    // team switches the namespace to Enforce. Under Enforce it could not be created at all.
    let case = Case::new(a, "pii", staging_policy("Audit"));
    let ns = case.name();
    let mut pii = dataset(ns, "pii");
    pii["spec"]["personalData"] =
        json!({"contains": true, "categories": ["contact"], "masking": "None"});
    apply(a.kubectl_as("alice"), &pii);
    let td = wait_condition(a, ns, "td/pii", "Compliant", "False");
    let message = condition(&td, "Compliant").unwrap()["message"].to_string();
    assert!(message.contains("A.8.11"), "{message}");
    case.patch_policy(json!({"enforcement": {"action": "Enforce"}}));
    // Now a dataset like it is refused at admission.
    let mut again = pii.clone();
    again["metadata"]["name"] = json!("pii-again");
    let err = annexa_e2e::harness::eventually(TIMEOUT, "Enforce to apply", || {
        let out = a
            .kubectl_as("alice")
            .args(["create", "--dry-run=server", "-f", "-"])
            .stdin(again.to_string())
            .run()
            .ok()?;
        (!out.success).then_some(out.stderr)
    })
    .unwrap();
    assert!(err.contains("A.8.11"), "{err}");

    apply(a.kubectl_as("alice"), &model(ns, "m", DIGEST_1, &["pii"]));
    let md = wait_condition(a, ns, "md/m", "DatasetsCompliant", "False");
    assert!(md["status"]["servingDigest"].is_null(), "{}", md["status"]);
    assert!(get(a.kubectl(), ns, "deployment/m").is_none());
}

#[test]
fn expired_dataset_with_on_expiry_delete_removes_its_pvc() {
    let a = Annexa::shared();
    let case = Case::new(a, "ret", staging_policy("Enforce"));
    let ns = case.name();
    let pvc = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "features", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    });
    apply(a.kubectl(), &pvc);
    // Whole seconds: metav1.Time has no fractions.
    let until = jiff::Timestamp::from_second(
        (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(6)).as_second(),
    )
    .unwrap();
    let mut td = dataset(ns, "short-lived");
    td["spec"]["source"] = json!({"pvc": "features",
        "sha256": "sha256:ca150bd50c376842bc72630b2dd7fb3c1ad1410b2bee1b2e61d9635daf46b22e"});
    td["spec"]["retention"] =
        json!({"until": until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), "onExpiry": "Delete"});
    apply(a.kubectl_as("alice"), &td);
    // Retained until the instant passes; the PVC is still there meanwhile.
    wait_condition(a, ns, "td/short-lived", "Retained", "True");
    wait_gone(a, ns, "pvc/features");
    let td = wait_condition(a, ns, "td/short-lived", "Retained", "False");
    let deleted_at = td["status"]["deletedAt"]
        .as_str()
        .expect("status.deletedAt");
    let deleted_at: jiff::Timestamp = deleted_at.parse().unwrap();
    assert!(
        deleted_at >= until,
        "deleted at {deleted_at}, before {until}"
    );
    assert_eq!(condition(&td, "Retained").unwrap()["reason"], "Expired");
}

// ---------------------------------------------------------------------------------------------
// 7. AgentPolicy least privilege

fn agent_policy(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "AgentPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "serviceAccountName": name,
            "permissions": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            "egress": [{"cidr": "10.40.12.0/24", "ports": [443], "protocol": "TCP"}],
            "tokenTTL": "30m",
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
        },
    })
}

#[test]
fn cluster_admin_binding_for_an_agent_is_reported_and_cleared() {
    let a = Annexa::shared();
    let case = Case::new(a, "agent", staging_policy("Enforce"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &agent_policy(ns, "helper"));
    wait_condition(a, ns, "ap/helper", "LeastPrivilege", "True");
    // cluster-admin exists from the start, on the stand-in as on a cluster.
    assert!(get(a.kubectl(), "default", "clusterrole/cluster-admin").is_some());
    let binding = format!("e2e-{}-helper-admin", case.id);
    apply(
        a.kubectl(),
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": binding},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "helper", "namespace": ns}]}),
    );
    let ap = wait_condition(a, ns, "ap/helper", "LeastPrivilege", "False");
    let message = condition(&ap, "LeastPrivilege").unwrap()["message"].to_string();
    assert!(message.contains(&binding), "{message}");
    a.kubectl()
        .args(["delete", "clusterrolebinding", &binding])
        .ok()
        .unwrap();
    wait_condition(a, ns, "ap/helper", "LeastPrivilege", "True");
}

#[test]
fn second_agent_policy_for_one_service_account_reports_the_conflict_and_takes_over_later() {
    let a = Annexa::shared();
    let case = Case::new(a, "agent-conflict", staging_policy("Enforce"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &agent_policy(ns, "helper"));
    wait_condition(a, ns, "ap/helper", "Ready", "True");
    let mut second = agent_policy(ns, "helper-two");
    second["spec"]["serviceAccountName"] = json!("helper");
    apply(a.kubectl_as("alice"), &second);
    let ap = wait_condition(a, ns, "ap/helper-two", "Ready", "False");
    let ready = condition(&ap, "Ready").unwrap();
    assert_eq!(ready["reason"], "ServiceAccountConflict");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("already governed by AgentPolicy \"helper\""),
        "{ready}"
    );
    // The account keeps its one owner: the second policy applied nothing.
    let sa = get(a.kubectl(), ns, "serviceaccount/helper").unwrap();
    let owners: Vec<&str> = sa["metadata"]["ownerReferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["helper"]);
    assert!(get(a.kubectl(), ns, "role/helper-two-agent").is_none());
    // Once the first policy is gone, the second one governs the account.
    a.kubectl()
        .args(["delete", "agentpolicy", "helper", "-n", ns])
        .ok()
        .unwrap();
    wait_condition(a, ns, "ap/helper-two", "Ready", "True");
    assert!(get(a.kubectl(), ns, "role/helper-two-agent").is_some());
}

// ---------------------------------------------------------------------------------------------
// 7b. No confused deputy: never adopt, controllers re-check

#[test]
fn a_model_named_like_an_existing_object_reports_the_collision_and_changes_nothing() {
    let a = Annexa::shared();
    let case = Case::new(a, "collide", staging_policy("Enforce"));
    let ns = case.name();
    // The team's own NetworkPolicy, created by someone else before the model.
    let team_policy = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    });
    apply(a.kubectl(), &team_policy);
    let before = get(a.kubectl(), ns, "networkpolicy/default-deny").unwrap();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    apply(
        a.kubectl_as("alice"),
        &model(ns, "default-deny", DIGEST_1, &["data"]),
    );
    let md = wait_for(a, ns, "md/default-deny", "Ready=False/NameConflict", |m| {
        condition(m, "Ready").is_some_and(|c| c["reason"] == "NameConflict")
    });
    let message = condition(&md, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(&format!(
            "NetworkPolicy \"default-deny\" already exists in namespace \"{ns}\" and is not owned by this object"
        )),
        "{message}"
    );
    // Nothing was written: the team's policy is untouched and not adopted, no other child exists.
    let after = get(a.kubectl(), ns, "networkpolicy/default-deny").unwrap();
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert!(
        after["metadata"].get("ownerReferences").is_none(),
        "{after}"
    );
    for child in [
        "deployment/default-deny",
        "service/default-deny",
        "serviceaccount/default-deny",
    ] {
        assert!(get(a.kubectl(), ns, child).is_none(), "{child} was written");
    }
}

#[test]
fn an_agent_the_webhook_never_saw_gets_no_forbidden_rule_and_no_open_egress() {
    let a = Annexa::shared();
    // Annexa's own namespace is excluded from every webhook: what is created there reaches the
    // controllers unchecked, like objects created before install or under failurePolicy Ignore.
    let ns = a.namespace.as_str();
    let mut agent = agent_policy(ns, "unseen-agent");
    agent["spec"]["permissions"] = json!([
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}
    ]);
    agent["spec"]["egress"] = json!([
        {"cidr": "0.0.0.0/0", "ports": [443], "protocol": "TCP"},
        {"cidr": "10.40.0.0/16"}
    ]);
    apply(a.kubectl(), &agent);
    let ap = wait_for(a, ns, "ap/unseen-agent", "Ready=False/GrantWithheld", |o| {
        condition(o, "Ready").is_some_and(|c| c["reason"] == "GrantWithheld")
    });
    let message = condition(&ap, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with(
            "the spec fails Enforce controls (A.8.12, A.8.2, A.8.20): the declared permissions are not granted (a Role or RoleBinding granted before is withdrawn); the declared egress is not opened (DNS only): "
        ),
        "{message}"
    );
    // The failing rules themselves, not only the controls.
    assert!(
        message.contains("is granted \"create\" on \"serviceaccounts/token\""),
        "{message}"
    );
    assert!(get(a.kubectl(), ns, "role/unseen-agent-agent").is_none());
    assert!(get(a.kubectl(), ns, "rolebinding/unseen-agent-agent").is_none());
    let netpol = get(a.kubectl(), ns, "networkpolicy/unseen-agent-agent").unwrap();
    let egress = netpol["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 1, "{netpol}");
    assert!(egress[0]["to"][0].get("ipBlock").is_none(), "{netpol}");
    assert_eq!(egress[0]["ports"][0]["port"], 53);
    a.kubectl()
        .args(["delete", "agentpolicy", "unseen-agent", "-n", ns])
        .ok()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 8. Drift and policy changes

#[test]
fn children_edited_by_hand_are_restored() {
    let a = Annexa::shared();
    let case = Case::new(a, "drift", staging_policy("Enforce"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    apply(a.kubectl_as("alice"), &model(ns, "m", DIGEST_1, &["data"]));
    wait_condition(a, ns, "md/m", "Ready", "True");
    let netpol = get(a.kubectl(), ns, "networkpolicy/m").unwrap();
    let original_ingress = netpol["spec"]["ingress"].clone();

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
    a.kubectl()
        .args([
            "-n",
            ns,
            "patch",
            "networkpolicy/m",
            "--type=merge",
            "-p",
            r#"{"spec":{"ingress":[{}]}}"#,
        ])
        .ok()
        .unwrap();
    wait_for(a, ns, "deployment/m", "replicas restored to 1", |d| {
        d["spec"]["replicas"] == 1
    });
    wait_for(a, ns, "networkpolicy/m", "ingress restored", |n| {
        n["spec"]["ingress"] == original_ingress
    });
}

#[test]
fn a_sidecar_and_a_host_path_volume_injected_into_a_child_are_removed() {
    let a = Annexa::shared();
    // Audit: the workload webhook warns but admits the injection (Enforce would refuse a
    // hostPath volume on a GPU pod before it reaches the Deployment).
    let case = Case::new(a, "inject", staging_policy("Audit"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    apply(a.kubectl_as("alice"), &model(ns, "m", DIGEST_1, &["data"]));
    wait_condition(a, ns, "md/m", "Ready", "True");
    let names = |d: &Value, list: &str| -> Vec<String> {
        d["spec"]["template"]["spec"][list]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let original = get(a.kubectl(), ns, "deployment/m").unwrap();
    let injection = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "registry.example.com/sidecar:1",
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}]}],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
    }}}});
    // A strategic-merge patch adds both by name, as a mutating webhook or `kubectl patch` would.
    let injected = a
        .kubectl()
        .args(["-n", ns, "patch", "deployment/m", "-o", "json", "-p"])
        .arg(injection.to_string())
        .ok()
        .unwrap();
    let injected: Value = serde_json::from_str(&injected).unwrap();
    assert!(
        names(&injected, "containers").contains(&"sidecar".to_string()),
        "{injected:#}"
    );
    assert!(
        names(&injected, "volumes").contains(&"host".to_string()),
        "{injected:#}"
    );

    let restored = wait_for(
        a,
        ns,
        "deployment/m",
        "sidecar and hostPath volume removed",
        |d| {
            !names(d, "containers").contains(&"sidecar".to_string())
                && !names(d, "volumes").contains(&"host".to_string())
        },
    );
    assert_eq!(
        restored["spec"]["template"]["spec"]["containers"],
        original["spec"]["template"]["spec"]["containers"]
    );
    assert_eq!(
        restored["spec"]["template"]["spec"]["volumes"],
        original["spec"]["template"]["spec"]["volumes"]
    );
}

#[test]
fn a_model_whose_name_cannot_name_its_service_is_refused_by_the_crd() {
    let a = Annexa::shared();
    let case = Case::new(a, "mdname", staging_policy("Audit"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    // A valid object name, but not a DNS-1035 label: its Service could never be written.
    let err = create_fails(
        a.kubectl_as("alice"),
        &model(ns, "fraud.v2", DIGEST_1, &["data"]),
    );
    assert!(
        err.contains("The ModelDeployment \"fraud.v2\" is invalid")
            && err.contains("the name of a ModelDeployment names its Service"),
        "{err}"
    );
    apply(
        a.kubectl_as("alice"),
        &model(ns, "fraud-v2", DIGEST_1, &["data"]),
    );
    wait_for(a, ns, "service/fraud-v2", "the model's Service", |_| true);
}

#[test]
fn compliance_policy_change_re_evaluates_models() {
    let a = Annexa::shared();
    let case = Case::new(a, "cpol", staging_policy("Audit"));
    let ns = case.name();
    apply(a.kubectl_as("alice"), &dataset(ns, "data"));
    apply(a.kubectl_as("alice"), &model(ns, "m", DIGEST_1, &["data"]));
    wait_condition(a, ns, "md/m", "Compliant", "True");

    case.patch_policy(json!({"images": {"allowedRegistries": ["other.example.com/"]}}));
    let md = wait_condition(a, ns, "md/m", "Compliant", "False");
    let message = condition(&md, "Compliant").unwrap()["message"].to_string();
    assert!(message.contains("A.8.19"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// 10. GitOps

#[test]
fn gitops_reapply_has_no_conflict_and_no_difference_in_user_fields() {
    let a = Annexa::shared();
    let case = Case::new(a, "gitops", staging_policy("Enforce"));
    let ns = case.name();
    let argocd = |doc: &Value| {
        a.kubectl()
            .args([
                "apply",
                "--server-side",
                "--field-manager=argocd",
                "-f",
                "-",
            ])
            .stdin(doc.to_string())
            .ok()
            .unwrap_or_else(|e| panic!("argocd apply: {e}"))
    };
    argocd(&dataset(ns, "data"));
    let manifest = model(ns, "m", DIGEST_1, &["data"]);
    argocd(&manifest);
    // The spec as the server stored it from Argo CD's apply, before Annexa reconciled.
    let applied = get(a.kubectl(), ns, "md/m").unwrap();
    wait_condition(a, ns, "md/m", "Ready", "True");
    let before = get(a.kubectl(), ns, "md/m").unwrap();
    assert_eq!(
        before["spec"], applied["spec"],
        "reconciling changed the spec"
    );

    // Re-apply the same manifest: no conflict, no change.
    argocd(&manifest);
    let after = get(a.kubectl(), ns, "md/m").unwrap();
    assert_eq!(after["spec"], before["spec"]);
    // Status may move on (Annexa reports), the object's generation does not: no spec change.
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    assert_eq!(
        after["metadata"]["annotations"],
        before["metadata"]["annotations"]
    );
    // kubectl diff (what Argo CD's server-side diff does) sees nothing to change.
    let diff = a
        .kubectl()
        .args(["diff", "--server-side", "--field-manager=argocd", "-f", "-"])
        .stdin(manifest.to_string())
        .run()
        .unwrap();
    assert!(
        diff.success,
        "kubectl diff found a difference:\n{}{}",
        diff.stdout, diff.stderr
    );

    // The user's spec is exactly the manifest's; Annexa's only additions are its two annotations.
    for (key, value) in manifest["spec"].as_object().unwrap() {
        assert_eq!(&after["spec"][key], value, "spec.{key}");
    }
    let annotations: Vec<&String> = after["metadata"]["annotations"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    // Annexa records who requested the release and which release that was (both restored from
    // the old object on every update, so Git never owns or fights them).
    assert_eq!(
        annotations,
        vec![
            "annexa.dev/digest-requested-by",
            "annexa.dev/requested-release"
        ]
    );
    // Annexa manages no field of the object but its status; Argo CD owns the spec.
    let with_fields: Value = serde_json::from_str(
        &a.kubectl()
            .args([
                "-n",
                ns,
                "get",
                "md/m",
                "-o",
                "json",
                "--show-managed-fields",
            ])
            .ok()
            .unwrap(),
    )
    .unwrap();
    let managers = with_fields["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        managers
            .iter()
            .any(|e| e["manager"] == "argocd" && e["fieldsV1"]["f:spec"].is_object()),
        "{managers:?}"
    );
    let annexa_entries: Vec<&Value> = managers
        .iter()
        .filter(|e| e["manager"] == "annexa")
        .collect();
    // Annexa did write (its status): an empty list would make the check below vacuous.
    assert!(
        !annexa_entries.is_empty(),
        "no managedFields entry of annexa: {managers:?}"
    );
    for entry in annexa_entries {
        assert_eq!(entry["subresource"], "status", "{entry}");
        assert!(entry["fieldsV1"]["f:status"].is_object(), "{entry}");
    }
}

// ---------------------------------------------------------------------------------------------
// Who may run a pod: dataset access where the data is read (A.8.3), agent identity (A.8.12,
// A.5.15)

/// A Restricted dataset read through the Secret `<name>-s3-reader`, by `fraud-trainer` only.
fn restricted_dataset(ns: &str, name: &str) -> Value {
    let mut td = dataset(ns, name);
    td["spec"]["classification"] = json!("Restricted");
    td["spec"]["encryption"] =
        json!({"kmsKey": "arn:aws:kms:eu-west-1:111122223333:key/e2e-restricted"});
    td["spec"]["access"] = json!({"allowedServiceAccounts": ["fraud-trainer"]});
    td["spec"]["credentialsSecret"] = json!(format!("{name}-s3-reader"));
    td
}

/// A Pod of `ns` running as `account` (None: `default`) that reads `secret` through envFrom.
fn secret_reader(ns: &str, name: &str, account: Option<&str>, secret: &str) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "job", "image": IMAGE,
                            "envFrom": [{"secretRef": {"name": secret}}]}],
        },
    });
    if let Some(account) = account {
        pod["spec"]["serviceAccountName"] = json!(account);
    }
    pod
}

fn service_account(a: &Annexa, ns: &str, name: &str) {
    apply(
        a.kubectl(),
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": ns}}),
    );
}

#[test]
fn a_pod_reads_a_restricted_datasets_secret_only_as_an_allowed_account() {
    let a = Annexa::shared();
    let case = Case::new(a, "access", production_policy());
    let ns = case.name();
    service_account(a, ns, "fraud-trainer");
    apply(
        a.kubectl(),
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "claims-raw-s3-reader", "namespace": ns},
                "stringData": {"AWS_ACCESS_KEY_ID": "e2e"}}),
    );
    // Before the dataset is declared, nothing ties the Secret to data: the pod is admitted.
    apply(
        a.kubectl_as("alice"),
        &secret_reader(ns, "early-reader", None, "claims-raw-s3-reader"),
    );
    apply(a.kubectl_as("alice"), &restricted_dataset(ns, "claims-raw"));

    // The background audit finds the running pod that reads it as `default`.
    let td = wait_condition(a, ns, "td/claims-raw", "AccessRestricted", "False");
    let message = condition(&td, "AccessRestricted").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!(
            "{ns}/early-reader as \"default\" (spec.containers[0].envFrom[0].secretRef.name)"
        )),
        "{message}"
    );
    assert!(
        message.starts_with("A.8.3 Information access restriction: 1 pod(s)"),
        "{message}"
    );
    let events = get(a.kubectl(), ns, "events.events.k8s.io").expect("events");
    assert!(
        events["items"].as_array().unwrap().iter().any(|e| {
            e["regarding"]["name"] == "claims-raw" && e["reason"] == "UnallowedReaders"
        }),
        "no UnallowedReaders event: {events}"
    );

    // A new pod as `default` that reads the dataset's Secret is refused, naming the dataset,
    // the reference and the accounts allowed.
    let err = create_fails(
        a.kubectl_as("alice"),
        &secret_reader(ns, "reader", None, "claims-raw-s3-reader"),
    );
    assert!(
        err.contains("admission webhook \"workloads.validate.annexa.dev\" denied the request"),
        "{err}"
    );
    for part in [
        "A.8.3 Information access restriction",
        "runs as service account \"default\"",
        "reads Secret \"claims-raw-s3-reader\" (spec.containers[0].envFrom[0].secretRef.name)",
        "dataset \"claims-raw\" (Restricted)",
        "which only [\"fraud-trainer\"] may read",
    ] {
        assert!(err.contains(part), "{part} not in: {err}");
    }
    assert!(get(a.kubectl(), ns, "pod/reader").is_none());

    // The same pod as the allowed account is admitted.
    apply(
        a.kubectl_as("alice"),
        &secret_reader(ns, "reader", Some("fraud-trainer"), "claims-raw-s3-reader"),
    );
    assert!(get(a.kubectl(), ns, "pod/reader").is_some());

    // Once the early reader is gone, the audit clears.
    a.kubectl()
        .args(["-n", ns, "delete", "pod", "early-reader", "--wait=true"])
        .ok()
        .unwrap();
    // The dataset is re-audited on its next reconcile; a spec change triggers one now.
    let mut td = restricted_dataset(ns, "claims-raw");
    td["spec"]["owner"] = json!("e2e-team-2");
    apply(a.kubectl_as("alice"), &td);
    wait_condition(a, ns, "td/claims-raw", "AccessRestricted", "True");
}

#[test]
fn an_agents_pods_run_as_its_account_and_carry_its_labels() {
    let a = Annexa::shared();
    let case = Case::new(a, "agentpods", production_policy());
    let ns = case.name();
    let agent = json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "AgentPolicy",
        "metadata": {"name": "support-agent", "namespace": ns},
        "spec": {
            "serviceAccountName": "support-agent",
            "permissions": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            "egress": [{"cidr": "10.40.12.0/24", "ports": [443], "protocol": "TCP"}],
            "tokenTTL": "30m",
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "support-agent"}},
        },
    });
    apply(a.kubectl_as("alice"), &agent);
    // The controller's egress NetworkPolicy selects exactly the podSelector.
    let policy = wait_for(
        a,
        ns,
        "networkpolicy/support-agent-agent",
        "the agent's egress NetworkPolicy",
        |_| true,
    );
    assert_eq!(
        policy["spec"]["podSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "support-agent"}})
    );
    wait_for(
        a,
        ns,
        "serviceaccount/support-agent",
        "the agent's account",
        |_| true,
    );

    let pod = |name: &str, labels: Value, account: Option<&str>| {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"automountServiceAccountToken": false,
                     "containers": [{"name": "agent", "image": IMAGE}]},
        });
        if let Some(account) = account {
            pod["spec"]["serviceAccountName"] = json!(account);
        }
        pod
    };
    let agent_labels = json!({"app.kubernetes.io/name": "support-agent"});

    // The agent's account without its labels: refused (outside the egress policy).
    let err = create_fails(
        a.kubectl_as("alice"),
        &pod(
            "unlabelled",
            json!({"app.kubernetes.io/name": "x"}),
            Some("support-agent"),
        ),
    );
    assert!(
        err.contains("A.8.12 Data leakage prevention: pod \"unlabelled\" runs as service account \"support-agent\" of agent \"support-agent\" but its labels (metadata.labels) do not match the agent's podSelector (app.kubernetes.io/name=support-agent)"),
        "{err}"
    );
    // The agent's labels on `default`: refused (outside its least privilege).
    let err = create_fails(
        a.kubectl_as("alice"),
        &pod("impostor", agent_labels.clone(), None),
    );
    assert!(
        err.contains("A.5.15 Access control: pod \"impostor\" matches the podSelector of agent \"support-agent\" (app.kubernetes.io/name=support-agent) but runs as service account \"default\" (spec.serviceAccountName)"),
        "{err}"
    );
    // Both agree: admitted, and the agent reports its pods consistent.
    apply(
        a.kubectl_as("alice"),
        &pod("support-agent-0", agent_labels, Some("support-agent")),
    );
    wait_condition(a, ns, "ap/support-agent", "PodIdentity", "True");
    // Relabelling the running agent pod out of the selector is refused too.
    let out = a
        .kubectl_as("alice")
        .args([
            "-n",
            ns,
            "label",
            "pod",
            "support-agent-0",
            "--overwrite",
            "app.kubernetes.io/name=other",
        ])
        .run()
        .unwrap();
    assert!(!out.success, "relabelling was admitted: {}", out.stdout);
    assert!(out.stderr.contains("A.8.12"), "{}", out.stderr);
}
