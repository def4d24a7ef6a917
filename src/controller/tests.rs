//! Pure tests of the builders and decisions: no client, no cluster.

use super::agent_policy::{
    RbacState, build_grant, build_network_policy as agent_netpol, excess_bindings, rule_covered,
};
use super::model_deployment::{
    Inputs, ServingNote, Standing, build_deployment, build_network_policy, build_service,
    build_service_account, decide_serving, desired_conditions, standing, verified,
};
use super::training_dataset::build_access;
use crate::api::{
    AgentPolicy, Classification, ModelApproval, ModelDeployment, ServingRelease, TrainingDataset,
};
use crate::policy::model_deployment::{Promotion, promotion};
use crate::policy::{self, Context as PolicyContext, Governed, Inventory, Profile};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use std::sync::Arc;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn model(extra: &str) -> ModelDeployment {
    let yaml = format!(
        "apiVersion: annexa.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: fraud, namespace: ml, uid: 0b5c-uid}}
spec:
  model: {{name: fraud, version: 3.2.0, uri: 's3://models/fraud/', digest: '{DIGEST}'}}
  image: registry.example.com/serve@{DIGEST}
{extra}"
    );
    serde_yaml_ng::from_str(&yaml).unwrap()
}

/// The model's requested release, as promoted now with no approvals (Development).
fn release_of(m: &ModelDeployment) -> ServingRelease {
    let gate = Promotion::default();
    decide_serving(m, &gate, true, None, jiff::Timestamp::now()).unwrap()
}

#[test]
fn deployment_is_hardened_and_placed_on_the_classification_pool() {
    let m = model(
        "  replicas: 2\n  resources: {gpus: 1, memory: 16Gi}\n  serving: {port: 9000, tlsSecret: fraud-tls}\n",
    );
    let profile = Profile::baseline();
    let release = release_of(&m);
    let d = build_deployment(&Inputs {
        model: &m,
        profile: &profile,
        classification: Classification::Confidential,
        release: Some(&release),
    })
    .unwrap();
    assert_eq!(d.spec.replicas, Some(2));
    assert_eq!(
        d.metadata.owner_references.as_ref().unwrap()[0].kind,
        "ModelDeployment"
    );
    let pod = d.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("fraud"));
    assert_eq!(
        pod.node_selector
            .as_ref()
            .unwrap()
            .get("annexa.dev/gpu-pool")
            .map(String::as_str),
        Some("confidential")
    );
    let tol = &pod.tolerations.as_ref().unwrap()[0];
    assert_eq!(
        (
            tol.key.as_deref(),
            tol.value.as_deref(),
            tol.effect.as_deref()
        ),
        (
            Some("annexa.dev/gpu-pool"),
            Some("confidential"),
            Some("NoSchedule")
        )
    );
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits.get("nvidia.com/gpu").unwrap().0, "1");
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 9000);
    let labels = d
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(
        labels.get("annexa.dev/classification").map(String::as_str),
        Some("Confidential")
    );
    // The pod template the controller writes passes the workload rules it enforces.
    let value = serde_json::to_value(&d).unwrap();
    let w = crate::decode::workload::from_object("Deployment", &value).unwrap();
    let inv = Inventory::default();
    let eval = policy::evaluate(
        Governed::Workload(&w),
        &PolicyContext {
            profile: &profile,
            lookup: &inv,
            now: jiff::Timestamp::now(),
            detail: policy::Detail::Outcomes,
        },
    );
    assert!(eval.is_compliant(), "{:?}", eval.findings);
    assert_eq!(
        build_service(&m, &release.spec)
            .spec
            .unwrap()
            .ports
            .unwrap()[0]
            .port,
        443
    );
    assert_eq!(
        build_service_account(&m).automount_service_account_token,
        Some(false)
    );
}

#[test]
fn no_gpu_means_no_pool_placement_and_nothing_approved_means_no_deployment() {
    let m = model("");
    let profile = Profile::baseline();
    let release = release_of(&m);
    let d = build_deployment(&Inputs {
        model: &m,
        profile: &profile,
        classification: Classification::Restricted,
        release: Some(&release),
    })
    .unwrap();
    let pod = d.spec.template.spec.unwrap();
    assert!(pod.node_selector.is_none() && pod.tolerations.is_none());
    assert!(
        build_deployment(&Inputs {
            model: &m,
            profile: &profile,
            classification: Classification::Internal,
            release: None
        })
        .is_none()
    );
}

const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn approval_of(m: &ModelDeployment, name: &str, who: &str, hours_ago: i64) -> Arc<ModelApproval> {
    let created = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(hours_ago);
    let release = m.spec.release();
    Arc::new(
        serde_yaml_ng::from_str(&format!(
            "apiVersion: annexa.dev/v1alpha1
kind: ModelApproval
metadata: {{name: {name}, namespace: ml, creationTimestamp: '{created}'}}
spec:
  modelDeployment: fraud
  modelUID: 0b5c-uid
  release: {{fingerprint: '{}', digest: '{}'}}
  decision: Approve
  approver: {{username: {who}}}
",
            release.fingerprint(),
            release.model.digest
        ))
        .unwrap(),
    )
}

fn production() -> Profile {
    let mut profile = Profile::baseline();
    profile.required_approvals = 2;
    profile
}

/// Requested by alice, as the mutating webhook records it.
fn requested_by_alice(mut m: ModelDeployment) -> ModelDeployment {
    let release = m.spec.release().fingerprint();
    m.metadata.annotations = Some(
        [
            (
                "annexa.dev/digest-requested-by".to_string(),
                "alice".to_string(),
            ),
            ("annexa.dev/requested-release".to_string(), release),
        ]
        .into(),
    );
    m
}

#[test]
fn the_deployment_is_rendered_from_the_approved_release_not_the_spec() {
    let r1 = requested_by_alice(model("  serving: {port: 9000}\n"));
    let profile = production();
    let now = jiff::Timestamp::now();
    let approvals = vec![
        approval_of(&r1, "bob", "bob", 2),
        approval_of(&r1, "carol", "carol", 1),
    ];
    let gate = promotion(&r1, &approvals, &profile, now);
    assert!(gate.approved(), "{gate:?}");
    let serving = decide_serving(&r1, &gate, true, None, now).unwrap();
    assert_eq!(serving.record.approvers, ["bob", "carol"]);
    assert_eq!(serving.record.requested_by.as_deref(), Some("alice"));
    assert!(verified(&serving, &r1, &approvals, &profile, now));

    // The image, the weights URI, the version and the port change (by alice): a new release,
    // held; R1 keeps serving, every one of them included.
    let mut r2 = r1.clone();
    r2.spec.image = "registry.example.com/serve:evil".to_string();
    r2.spec.model.uri = Some("s3://elsewhere/fraud/".to_string());
    r2.spec.model.version = "3.2.1".to_string();
    r2.spec.serving = Some(crate::api::Serving {
        port: Some(1234),
        tls_secret: None,
    });
    r2.spec.replicas = Some(3);
    let r2 = requested_by_alice(r2);
    let gate2 = promotion(&r2, &approvals, &profile, now);
    assert!(!gate2.approved());
    assert_eq!(gate2.summary(), "0 of 2 approvals");
    let still = decide_serving(&r2, &gate2, false, Some(serving.clone()), now).unwrap();
    assert_eq!(still, serving);
    let d = build_deployment(&Inputs {
        model: &r2,
        profile: &profile,
        classification: Classification::Confidential,
        release: Some(&still),
    })
    .unwrap();
    let container = &d.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some(r1.spec.image.as_str()));
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 9000);
    let env = |name: &str| {
        container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(env("MODEL_URI").as_deref(), Some("s3://models/fraud/"));
    assert_eq!(env("MODEL_VERSION").as_deref(), Some("3.2.0"));
    // The scale is not part of a release: it follows the spec at once.
    assert_eq!(d.spec.replicas, Some(3));
}

#[test]
fn a_serving_release_in_status_is_trusted_only_with_its_approvals() {
    let m = requested_by_alice(model(""));
    let profile = production();
    let now = jiff::Timestamp::now();
    let approvals = vec![
        approval_of(&m, "bob", "bob", 2),
        approval_of(&m, "carol", "carol", 1),
    ];
    let gate = promotion(&m, &approvals, &profile, now);
    let genuine = decide_serving(&m, &gate, true, None, now).unwrap();
    assert!(verified(&genuine, &m, &approvals, &profile, now));
    // Without the approvals (someone wrote status), it does not serve.
    assert!(!verified(&genuine, &m, &approvals[..1], &profile, now));
    assert!(!verified(&genuine, &m, &[], &profile, now));
    // Content that does not match its fingerprint.
    let mut forged = genuine.clone();
    forged.spec.image = "registry.example.com/serve:evil".to_string();
    assert!(!verified(&forged, &m, &approvals, &profile, now));
    // A promotion time before the approvals existed.
    let mut early = genuine.clone();
    early.record.promoted_at = Some(Time(now - jiff::SignedDuration::from_hours(5)));
    assert!(!verified(&early, &m, &approvals, &profile, now));
    // The requester's own approval never counted, whatever status says about who requested.
    let own = vec![
        approval_of(&m, "alice", "alice", 2),
        approval_of(&m, "carol", "carol", 1),
    ];
    assert!(!verified(&genuine, &m, &own, &profile, now));
    // Another object of the same name (deleted and recreated): approvals do not carry over.
    let mut recreated = m.clone();
    recreated.metadata.uid = Some("another-uid".to_string());
    assert!(!verified(&genuine, &recreated, &approvals, &profile, now));
    // Nothing verified and nothing allowed: nothing serves.
    assert_eq!(
        decide_serving(&m, &Promotion::default(), false, None, now),
        None
    );
    let _ = OTHER;
}

#[test]
fn the_service_and_network_policy_expose_the_serving_releases_port_not_a_pending_one() {
    let peers = "  network:\n    allowedFrom:\n    - podSelector: {matchLabels: {app: gateway}}\n";
    let r1 = model(&format!(
        "  serving: {{port: 9000, tlsSecret: fraud-tls}}\n{peers}"
    ));
    let serving = release_of(&r1);
    // Only the serving port changes (and TLS goes): a new release, pending.
    let r2 = model(&format!("  serving: {{port: 1234}}\n{peers}"));
    assert_ne!(r2.spec.release().fingerprint(), serving.record.fingerprint);
    let ports = |m: &ModelDeployment, release: &crate::api::ReleaseSpec| {
        let netpol = build_network_policy(m, release).spec.unwrap();
        let netpol_port = netpol.ingress.unwrap()[0].ports.as_ref().unwrap()[0]
            .port
            .clone();
        let service = build_service(m, release).spec.unwrap().ports.unwrap()[0].clone();
        (netpol_port, service.port, service.target_port)
    };
    let named = Some(IntOrString::String("serving".to_string()));
    assert_eq!(
        ports(&r2, &serving.spec),
        (Some(IntOrString::Int(9000)), 443, named.clone()),
        "R1's port and TLS while R2 is pending"
    );
    let d = build_deployment(&Inputs {
        model: &r2,
        profile: &Profile::baseline(),
        classification: Classification::Internal,
        release: Some(&serving),
    })
    .unwrap();
    let container = &d.spec.template.spec.unwrap().containers[0];
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 9000);
    // Once R2 serves, both follow it.
    let promoted = release_of(&r2);
    assert_eq!(
        ports(&r2, &promoted.spec),
        (Some(IntOrString::Int(1234)), 80, named)
    );
}

#[test]
fn a_raised_approval_count_keeps_the_serving_release_under_the_rule_it_was_promoted_with() {
    let m = requested_by_alice(model(""));
    let mut one = production();
    one.required_approvals = 1;
    one.approval_ttl = jiff::SignedDuration::from_hours(1);
    let approvals = vec![approval_of(&m, "bob", "bob", 2)];
    let mut both = approvals.clone();
    both.push(approval_of(&m, "carol", "carol", 0));
    both.push(approval_of(&m, "dave", "dave", 0));
    let now = jiff::Timestamp::now();
    // Promoted 90 minutes ago, 30 minutes after bob approved, under a rule of one approval.
    let promoted_at = now - jiff::SignedDuration::from_mins(90);
    let gate = promotion(&m, &approvals, &one, promoted_at);
    assert!(gate.approved(), "{gate:?}");
    let r1 = decide_serving(&m, &gate, true, None, promoted_at).unwrap();
    assert_eq!(r1.record.required_approvals, Some(1));

    // The policy now asks for two (same TTL). From the controller's own status, R1 serves under
    // the rule it was promoted with, although bob's approval has expired since (a TTL bounds
    // the wait before a promotion, not how long a release serves).
    let mut two = one.clone();
    two.required_approvals = 2;
    assert_eq!(
        standing(&r1, true, &m, &approvals, &two, now),
        Standing::EarlierRule {
            promoted_under: 1,
            required_now: 2
        }
    );
    // The same record read from the Deployment, which the team may edit, is held to the rule
    // in force now.
    assert!(matches!(
        standing(&r1, false, &m, &approvals, &two, now),
        Standing::Unproven(_)
    ));
    // A record claiming that no approval was needed proves nothing (anyone able to write it
    // could claim so).
    let mut none = r1.clone();
    none.record.required_approvals = Some(0);
    let Standing::Unproven(why) = standing(&none, true, &m, &approvals, &two, now) else {
        panic!("a record claiming zero approvals was trusted");
    };
    assert!(
        why.contains("no approvals were required") && why.contains("2 approvals are required"),
        "{why}"
    );
    // Its approval deleted, R1 can no longer be proved.
    assert_eq!(
        standing(&r1, true, &m, &[], &two, now),
        Standing::Unproven(
            "0 of the 1 approval it was promoted with still exist and count".to_string()
        )
    );
    assert!(!verified(&r1, &m, &[], &two, now));
    assert_eq!(
        standing(&r1, false, &m, &[], &two, now),
        Standing::Unproven("0 of the 2 approvals required now count for it".to_string())
    );

    // The requested release is R1 itself, 1 of 2 now: R1 keeps serving, and says why.
    let gate_now = promotion(&m, &approvals[..0], &two, now);
    assert!(!gate_now.approved());
    assert_eq!(
        decide_serving(&m, &gate_now, false, Some(r1.clone()), now).as_ref(),
        Some(&r1)
    );
    let mut profile = two.clone();
    profile.require_kms_from = Classification::Restricted;
    let inv = Inventory::default();
    let eval = policy::evaluate(
        Governed::Model(&m),
        &PolicyContext {
            profile: &profile,
            lookup: &inv,
            now,
            detail: policy::Detail::Outcomes,
        },
    );
    let note = ServingNote::EarlierRule {
        promoted_under: 1,
        required_now: 2,
    };
    let requested = m.spec.release().record();
    let c = desired_conditions(
        &eval,
        &gate_now,
        &[],
        &requested,
        Some(&r1.record),
        None,
        &note,
    );
    let get = |t: &str| c.iter().find(|d| d.type_ == t).unwrap();
    let approved = get("Approved");
    assert_eq!(
        (approved.status, approved.reason.as_str()),
        (false, "RequirementRaised")
    );
    for part in [
        "A.8.32",
        "(1 approval required)",
        "(2 approvals required, 0 of 2 approvals)",
        "any new release needs 2 approvals",
    ] {
        assert!(
            approved.message.contains(part),
            "{part}: {}",
            approved.message
        );
    }
    assert!(get("Promoted").status && get("Ready").status);
    assert!(
        get("Promoted")
            .message
            .contains("promoted under the rule then in force (1 approval required; 2 now)"),
        "{}",
        get("Promoted").message
    );

    // A new release needs the new count: one approval holds it while R1 keeps serving.
    let mut r2 = m.clone();
    r2.spec.model.version = "3.3.0".to_string();
    let r2 = requested_by_alice(r2);
    let gate2 = promotion(
        &r2,
        &[approval_of(&r2, "bob-r2", "bob", 0)],
        &two,
        jiff::Timestamp::now(),
    );
    assert_eq!(gate2.summary(), "1 of 2 approvals");
    assert_eq!(
        decide_serving(&r2, &gate2, gate2.approved(), Some(r1.clone()), now).as_ref(),
        Some(&r1)
    );

    // Two fresh approvals of R1 meet the new rule (bob's has expired): R1 is recorded anew,
    // under two.
    let gate3 = promotion(&m, &both, &two, jiff::Timestamp::now());
    assert!(gate3.approved(), "{gate3:?}");
    let later = jiff::Timestamp::now();
    let renewed = decide_serving(&m, &gate3, true, Some(r1.clone()), later).unwrap();
    assert_eq!(renewed.record.required_approvals, Some(2));
    assert_eq!(renewed.record.approvers, ["carol", "dave"]);
    assert_eq!(
        standing(&renewed, true, &m, &both, &two, later),
        Standing::Current
    );
}

#[test]
fn a_serving_release_that_cannot_be_proved_is_left_running_and_reported() {
    let m = model("");
    let mut profile = production();
    profile.require_kms_from = Classification::Restricted;
    let inv = Inventory::default();
    let eval = policy::evaluate(
        Governed::Model(&m),
        &PolicyContext {
            profile: &profile,
            lookup: &inv,
            now: jiff::Timestamp::now(),
            detail: policy::Detail::Outcomes,
        },
    );
    let requested = m.spec.release().record();
    let gate = Promotion {
        release: requested.fingerprint.clone(),
        digest: DIGEST.into(),
        required: 2,
        requester: Some("alice".to_string()),
        ..Promotion::default()
    };
    let note = ServingNote::Unproven {
        release: requested.fingerprint.clone(),
        why: "0 of the 2 approvals it was promoted with still exist and count".to_string(),
        running: true,
    };
    let c = desired_conditions(&eval, &gate, &[], &requested, None, None, &note);
    let get = |t: &str| c.iter().find(|d| d.type_ == t).unwrap();
    for type_ in ["Promoted", "Ready"] {
        let condition = get(type_);
        assert_eq!(
            (condition.status, condition.reason.as_str()),
            (false, "ServingUnproven"),
            "{type_}"
        );
        for part in [
            "A.8.32",
            "cannot be proved approved (0 of the 2 approvals",
            "left exactly as it is",
            "0 of 2 approvals",
        ] {
            assert!(
                condition.message.contains(part),
                "{type_} {part}: {}",
                condition.message
            );
        }
    }
    // Without a Deployment, nothing is said to run.
    let gone = ServingNote::Unproven {
        release: requested.fingerprint.clone(),
        why: "its requester is not recorded".to_string(),
        running: false,
    };
    let c = desired_conditions(&eval, &gate, &[], &requested, None, None, &gone);
    let ready = c.iter().find(|d| d.type_ == "Ready").unwrap();
    assert!(
        ready.message.contains("nothing is rendered from it")
            && !ready.message.contains("left exactly"),
        "{}",
        ready.message
    );
}

#[test]
fn a_serving_release_written_by_someone_else_is_replaced_or_removed_whole() {
    use super::model_deployment::serving_release_patch;
    let m = model("");
    let r1 = release_of(&m);
    let mut status = crate::api::ModelDeploymentStatus::default();
    // Nothing serves, but status says R1 does: removed with its digest.
    let Some(kube::api::Patch::Merge(patch)) = serving_release_patch(Some(&r1), &status) else {
        panic!("no merge patch");
    };
    assert_eq!(
        patch,
        serde_json::json!({"status": {"servingRelease": null, "servingDigest": null}})
    );
    // R1 serves, and status holds something else: replaced whole.
    status.serving_release = Some(Box::new(r1.clone()));
    let mut stray = r1.clone();
    stray.record.approvers = vec!["mallory".to_string()];
    let Some(kube::api::Patch::Json(patch)) = serving_release_patch(Some(&stray), &status) else {
        panic!("no JSON patch");
    };
    let ops = serde_json::to_value(&patch).unwrap();
    assert_eq!(ops[0]["op"], "add");
    assert_eq!(ops[0]["path"], "/status/servingRelease");
    assert_eq!(ops[0]["value"], serde_json::to_value(&r1).unwrap());
    // What status holds is what was decided: nothing to do.
    assert!(serving_release_patch(Some(&r1), &status).is_none());
}

#[test]
fn network_policy_denies_all_but_declared_peers() {
    // No peers: the policy selects the model's pods and has no ingress rule at all.
    let m = model("");
    let closed =
        serde_json::to_value(build_network_policy(&m, &m.spec.release()).spec.unwrap()).unwrap();
    assert_eq!(
        closed,
        serde_json::json!({
            "podSelector": {"matchLabels": {"annexa.dev/modeldeployment": "fraud"}},
            "policyTypes": ["Ingress"],
            "ingress": [],
        }),
        "no peers: deny all ingress to the model's pods"
    );
    // Declared peers: each one exactly as written (both selectors of a peer kept together, so
    // a peer means "these pods in these namespaces", not either), on the serving port only.
    let m = model(
        "  serving: {port: 9000}
  network:
    allowedFrom:
    - podSelector: {matchLabels: {app: gateway}}
      namespaceSelector: {matchLabels: {team: edge}}
    - namespaceSelector: {matchExpressions: [{key: tier, operator: In, values: [frontend]}]}
",
    );
    let open = build_network_policy(&m, &m.spec.release()).spec.unwrap();
    assert_eq!(
        serde_json::to_value(open).unwrap(),
        serde_json::json!({
            "podSelector": {"matchLabels": {"annexa.dev/modeldeployment": "fraud"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"team": "edge"}},
                        "podSelector": {"matchLabels": {"app": "gateway"}},
                    },
                    {
                        "namespaceSelector": {"matchExpressions": [
                            {"key": "tier", "operator": "In", "values": ["frontend"]}
                        ]},
                    },
                ],
                "ports": [{"port": 9000, "protocol": "TCP"}],
            }],
        })
    );
}

#[test]
fn conditions_say_awaiting_approval_and_pending() {
    let m = model("");
    let mut profile = Profile::baseline();
    profile.required_approvals = 2;
    // No control fails: only approvals can hold this model.
    profile.require_kms_from = Classification::Restricted;
    let inv = Inventory::default();
    let eval = policy::evaluate(
        Governed::Model(&m),
        &PolicyContext {
            profile: &profile,
            lookup: &inv,
            now: jiff::Timestamp::now(),
            detail: policy::Detail::Outcomes,
        },
    );
    let requested = m.spec.release().record();
    let mut old = requested.clone();
    old.fingerprint = OTHER.to_string();
    old.version = "3.1.0".to_string();
    let gate = Promotion {
        release: requested.fingerprint.clone(),
        digest: DIGEST.into(),
        required: 2,
        requester: Some("alice".to_string()),
        ..Promotion::default()
    };
    let c = desired_conditions(
        &eval,
        &gate,
        &[],
        &requested,
        Some(&old),
        None,
        &ServingNote::None,
    );
    let get = |t: &str| c.iter().find(|d| d.type_ == t).unwrap();
    assert_eq!(
        (
            get("Approved").status,
            get("Approved").reason.as_str(),
            get("Approved").message.as_str()
        ),
        (false, "AwaitingApproval", "0 of 2 approvals")
    );
    assert_eq!(get("Promoted").reason, "AwaitingApproval");
    assert!(
        get("Promoted").message.contains("(3.1.0); release sha256:"),
        "{}",
        get("Promoted").message
    );
    assert!(get("Ready").status, "the previous release still serves");
    let c = desired_conditions(
        &eval,
        &gate,
        &[],
        &requested,
        None,
        None,
        &ServingNote::None,
    );
    let get = |t: &str| c.iter().find(|d| d.type_ == t).unwrap();
    assert_eq!(get("Promoted").reason, "AwaitingApproval");
    assert!(!get("Ready").status);
    assert_eq!(get("Ready").reason, "AwaitingApproval");

    // Held by a dataset with 2 of 2 approvals: the dataset is named, approvals are not.
    let approved = Promotion {
        counted: vec![
            policy::model_deployment::CountedApproval {
                name: "b".into(),
                approver: "bob".into(),
                approved_at: None,
                expires_at: None,
            },
            policy::model_deployment::CountedApproval {
                name: "c".into(),
                approver: "carol".into(),
                approved_at: None,
                expires_at: None,
            },
        ],
        ..gate.clone()
    };
    let c = desired_conditions(
        &eval,
        &approved,
        &["claims (A.8.11)".to_string()],
        &requested,
        None,
        None,
        &ServingNote::None,
    );
    let get = |t: &str| c.iter().find(|d| d.type_ == t).unwrap();
    assert_eq!(get("DatasetsCompliant").reason, "DatasetNotCompliant");
    assert_eq!(get("Approved").reason, "Approved");
    assert_eq!(get("Promoted").reason, "DatasetNotCompliant");
    assert_eq!(get("Ready").reason, "DatasetNotCompliant");
    assert!(
        !get("Ready").message.contains("approv"),
        "{}",
        get("Ready").message
    );

    // Development (no approvals needed) held by a failing control: the control is named.
    let dev = Promotion {
        required: 0,
        ..gate.clone()
    };
    let mut development = Profile::baseline();
    development.required_approvals = 0;
    let failing = policy::evaluate(
        Governed::Model(&m),
        &PolicyContext {
            profile: &development,
            lookup: &inv,
            now: jiff::Timestamp::now(),
            detail: policy::Detail::Outcomes,
        },
    );
    assert!(
        failing.denials().next().is_some(),
        "Confidential without a KMS key"
    );
    let c = desired_conditions(
        &failing,
        &dev,
        &[],
        &requested,
        None,
        None,
        &ServingNote::None,
    );
    let get = |t: &str| c.iter().find(|d| d.type_ == t).unwrap();
    assert_eq!(get("Approved").reason, "NotRequired");
    assert_eq!(get("Ready").reason, "ControlsFailed");
    assert!(
        get("Ready").message.contains("A.8.24"),
        "{}",
        get("Ready").message
    );
    assert!(
        !get("Ready").message.contains("approv"),
        "{}",
        get("Ready").message
    );

    // An unknown requester holds the release, and says so.
    let unknown = Promotion {
        requester: None,
        ..approved.clone()
    };
    let c = desired_conditions(
        &eval,
        &unknown,
        &[],
        &requested,
        None,
        None,
        &ServingNote::None,
    );
    let get = |t: &str| c.iter().find(|d| d.type_ == t).unwrap();
    assert_eq!(get("Approved").reason, "RequesterUnknown");
    assert_eq!(get("Ready").reason, "RequesterUnknown");
    assert!(
        get("Ready").message.contains("A.5.3"),
        "{}",
        get("Ready").message
    );
}

#[test]
fn dataset_access_role_grants_only_get_on_the_secret() {
    let d: TrainingDataset = serde_yaml_ng::from_str(
        "apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims, namespace: ml, uid: u1}
spec:
  source: {uri: 's3://claims/'}
  classification: Confidential
  credentialsSecret: claims-s3
  access: {allowedServiceAccounts: [trainer, evaluator]}
",
    )
    .unwrap();
    let (role, binding) = build_access(&d).unwrap();
    let rule = &role.rules.unwrap()[0];
    assert_eq!(rule.verbs, vec!["get"]);
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["secrets".to_string()][..])
    );
    assert_eq!(
        rule.resource_names.as_deref(),
        Some(&["claims-s3".to_string()][..])
    );
    let names: Vec<_> = binding
        .subjects
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["trainer", "evaluator"]);
}

fn agent() -> AgentPolicy {
    serde_yaml_ng::from_str(
        "apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata: {name: support, namespace: agents, uid: u2}
spec:
  serviceAccountName: support-agent
  tokenTTL: 1h
  permissions:
  - {apiGroups: [''], resources: [configmaps], verbs: [get, list]}
  egress:
  - {cidr: 10.20.0.0/16, ports: [443]}
",
    )
    .unwrap()
}

#[test]
fn agent_grant_has_exactly_the_declared_rules_and_egress_allows_dns() {
    let a = agent();
    let (role, binding) = build_grant(&a);
    assert_eq!(role.rules.as_ref().unwrap(), &a.spec.permissions);
    assert_eq!(binding.subjects.unwrap()[0].name, "support-agent");
    let np = agent_netpol(&a).spec.unwrap();
    assert_eq!(
        np.policy_types.as_deref(),
        Some(&["Egress".to_string()][..])
    );
    assert_eq!(
        serde_json::to_value(&np.pod_selector).unwrap(),
        serde_json::json!({"matchLabels": {"annexa.dev/agent": "support"}}),
        "without a podSelector the policy selects the agent's own pods"
    );
    // The allow-list entry exactly as declared, then DNS: only to kube-dns pods in kube-system,
    // only port 53, UDP and TCP. Anything wider would open egress beyond the allow-list.
    assert_eq!(
        serde_json::to_value(np.egress.unwrap()).unwrap(),
        serde_json::json!([
            {
                "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                "ports": [{"port": 443, "protocol": "TCP"}],
            },
            {
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }],
                "ports": [
                    {"port": 53, "protocol": "UDP"},
                    {"port": 53, "protocol": "TCP"},
                ],
            },
        ])
    );
}

#[test]
fn agent_network_policy_uses_the_declared_pod_selector() {
    let mut a = agent();
    a.spec.pod_selector = Some(
        serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "support-bot"}
        }))
        .unwrap(),
    );
    let np = agent_netpol(&a).spec.unwrap();
    assert_eq!(
        serde_json::to_value(&np.pod_selector).unwrap(),
        serde_json::json!({"matchLabels": {"app": "support-bot"}})
    );
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    }
}

#[test]
fn coverage_of_granted_rules() {
    let declared = vec![rule(&[""], &["configmaps"], &["get", "list"])];
    assert!(rule_covered(
        &rule(&[""], &["configmaps"], &["get"]),
        &declared
    ));
    assert!(!rule_covered(
        &rule(&[""], &["configmaps"], &["delete"]),
        &declared
    ));
    assert!(!rule_covered(
        &rule(&[""], &["secrets"], &["get"]),
        &declared
    ));
    assert!(!rule_covered(&rule(&["*"], &["*"], &["*"]), &declared));
}

fn store<K>(objects: Vec<K>) -> reflector::Store<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for o in objects {
        writer.apply_watcher_event(&Event::InitApply(o));
    }
    writer.apply_watcher_event(&Event::InitDone);
    reader
}

#[test]
fn cluster_admin_binding_is_reported_by_name() {
    let a = agent();
    let crb: ClusterRoleBinding = serde_yaml_ng::from_str(
        "metadata: {name: support-is-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: support-agent, namespace: agents}]
",
    )
    .unwrap();
    let admin: ClusterRole = serde_yaml_ng::from_str(
        "metadata: {name: cluster-admin}\nrules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]\n",
    )
    .unwrap();
    let (own_role, own_binding) = build_grant(&a);
    let rbac = RbacState {
        role_bindings: store::<RoleBinding>(vec![own_binding]),
        cluster_role_bindings: store(vec![crb]),
        roles: store::<Role>(vec![own_role]),
        cluster_roles: store(vec![admin]),
    };
    assert_eq!(
        excess_bindings(&a, &rbac),
        vec!["ClusterRoleBinding support-is-admin (ClusterRole cluster-admin)".to_string()]
    );
    let clean = RbacState {
        cluster_role_bindings: store::<ClusterRoleBinding>(vec![]),
        ..rbac
    };
    assert!(
        excess_bindings(&a, &clean).is_empty(),
        "Annexa's own binding is not excess"
    );
}

#[test]
fn the_oldest_agent_policy_governs_a_shared_service_account() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let at = |name: &str, namespace: &str, second: i64| {
        let mut a = agent();
        a.metadata.name = Some(name.to_string());
        a.metadata.namespace = Some(namespace.to_string());
        a.metadata.creation_timestamp = Some(Time(
            jiff::Timestamp::from_second(1_700_000_000 + second).unwrap(),
        ));
        std::sync::Arc::new(a)
    };
    let first = at("zeta", "agents", 0);
    let same_second = at("alpha", "agents", 0);
    let later = at("beta", "agents", 5);
    let elsewhere = at("gamma", "other", -5);
    let all = vec![
        later.clone(),
        first.clone(),
        same_second.clone(),
        elsewhere.clone(),
    ];
    // Oldest wins; a tie goes to the first name.
    assert!(super::agent_policy::account_owner(&same_second, &all).is_none());
    for other in [&first, &later] {
        assert_eq!(
            super::agent_policy::account_owner(other, &all).map(|o| o.name_any()),
            Some("alpha".to_string())
        );
    }
    // The same account name in another namespace is another account.
    assert!(super::agent_policy::account_owner(&elsewhere, &all).is_none());
    let mut own_account = (*later).clone();
    own_account.spec.service_account_name = "beta-agent".to_string();
    assert!(super::agent_policy::account_owner(&own_account, &all).is_none());
}

#[test]
fn the_audit_reports_running_pods_that_reached_a_gpu_around_admission() {
    use super::compliance_policy::failed_workload_controls;
    use k8s_openapi::api::core::v1::Pod;
    let running = |spec: &str| -> Pod {
        serde_yaml_ng::from_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: train, namespace: ml}}\nspec:\n{spec}status: {{phase: Running}}\n"
        ))
        .unwrap()
    };
    let profile = Profile::baseline();
    let lookup = Inventory::default();
    let now = "2025-06-01T12:00:00Z".parse().unwrap();
    let placed = "  nodeSelector: {annexa.dev/gpu-pool: internal}\n  tolerations: [{key: annexa.dev/gpu-pool, operator: Equal, value: internal, effect: NoSchedule}]\n  containers: [{name: t, image: r/t, resources: {limits: {nvidia.com/mig-1g.10gb: 1}}}]\n";
    assert!(failed_workload_controls(&running(placed), &profile, &lookup, now).is_empty());
    // A privileged debug container added while the webhook did not see it.
    let debugged = format!(
        "{placed}  ephemeralContainers: [{{name: debugger, image: busybox, securityContext: {{privileged: true}}}}]\n"
    );
    assert_eq!(
        failed_workload_controls(&running(&debugged), &profile, &lookup, now),
        ["A.8.2"]
    );
    // A pod that reached the pool by its node name and a DRA claim that no longer resolves.
    let pinned = "  nodeName: gpu-1\n  resourceClaims: [{name: gpu, resourceClaimTemplateName: gone}]\n  containers: [{name: t, image: r/t}]\n";
    assert_eq!(
        failed_workload_controls(&running(pinned), &profile, &lookup, now),
        ["A.8.22"]
    );
}

#[test]
fn children_name_their_parent_as_controller_with_block_owner_deletion() {
    let m = model("");
    let sa = build_service_account(&m);
    let owners = sa.metadata.owner_references.as_ref().unwrap();
    assert_eq!(owners.len(), 1);
    let owner = &owners[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller,
            owner.block_owner_deletion
        ),
        (
            "ModelDeployment",
            "fraud",
            "0b5c-uid",
            Some(true),
            Some(true)
        )
    );
    let (role, binding) = build_grant(&agent());
    for meta in [&role.metadata, &binding.metadata] {
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(owner.uid, "u2");
    }
}

#[test]
fn only_a_child_controlled_by_the_same_parent_uid_counts_as_owned() {
    use super::owned_as_desired;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    let m = model("");
    let desired = build_network_policy(&m, &m.spec.release()).metadata;
    let with_owner = |uid: &str, controller: Option<bool>| ObjectMeta {
        owner_references: Some(vec![OwnerReference {
            api_version: "annexa.dev/v1alpha1".into(),
            kind: "ModelDeployment".into(),
            name: "fraud".into(),
            uid: uid.into(),
            controller,
            block_owner_deletion: None,
        }]),
        ..ObjectMeta::default()
    };
    assert!(owned_as_desired(
        &with_owner("0b5c-uid", Some(true)),
        &desired
    ));
    // The team's own object, labelled like Annexa's or not: not Annexa's.
    let labelled = ObjectMeta {
        labels: desired.labels.clone(),
        ..ObjectMeta::default()
    };
    assert!(!owned_as_desired(&labelled, &desired));
    // A parent of the same name that was deleted and recreated (another UID).
    assert!(!owned_as_desired(
        &with_owner("old-uid", Some(true)),
        &desired
    ));
    // Referenced but not as controller.
    assert!(!owned_as_desired(&with_owner("0b5c-uid", None), &desired));
}

#[test]
fn a_withheld_egress_policy_opens_nothing_but_dns() {
    use super::agent_policy::build_withheld_network_policy;
    let np = build_withheld_network_policy(&agent()).spec.unwrap();
    assert_eq!(np.policy_types, Some(vec!["Egress".to_string()]));
    let egress = np.egress.unwrap();
    assert_eq!(egress.len(), 1);
    let peer = &egress[0].to.as_ref().unwrap()[0];
    assert!(peer.ip_block.is_none());
    assert_eq!(
        peer.pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["k8s-app"],
        "kube-dns"
    );
    let ports: Vec<_> = egress[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (p.protocol.clone().unwrap(), p.port.clone()))
        .collect();
    assert_eq!(ports.len(), 2);
    assert!(ports.iter().all(|(_, port)| *port
        == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(53))));
}

#[test]
fn a_pvc_controlled_by_another_object_is_recognised() {
    use super::training_dataset::foreign_controller;
    let pvc: k8s_openapi::api::core::v1::PersistentVolumeClaim = serde_yaml_ng::from_str(
        "metadata:
  name: data-db-0
  ownerReferences:
  - {apiVersion: apps/v1, kind: StatefulSet, name: db, uid: s1, controller: true}
",
    )
    .unwrap();
    assert_eq!(
        foreign_controller(&pvc.metadata).as_deref(),
        Some("StatefulSet \"db\"")
    );
    let free: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        serde_yaml_ng::from_str("metadata: {name: claims-data}").unwrap();
    assert_eq!(foreign_controller(&free.metadata), None);
}

#[test]
fn a_sidecar_or_volume_added_by_hand_is_put_back_by_a_merge_patch() {
    use super::model_deployment::foreign_pod_items;
    use k8s_openapi::api::core::v1::{Container, HostPathVolumeSource, Volume};
    let m = model("  resources: {gpus: 1}\n");
    let profile = Profile::baseline();
    let release = release_of(&m);
    let desired = build_deployment(&Inputs {
        model: &m,
        profile: &profile,
        classification: Classification::Internal,
        release: Some(&release),
    })
    .unwrap();
    // What server-side apply leaves in place: Annexa's items, in any order, and nothing else.
    assert_eq!(foreign_pod_items(&desired, &desired), None);

    let mut live = desired.clone();
    let pod = live.spec.template.spec.as_mut().unwrap();
    pod.containers.push(Container {
        name: "sidecar".to_string(),
        image: Some("busybox".to_string()),
        ..Container::default()
    });
    let patch = foreign_pod_items(&desired, &live).expect("a sidecar is foreign");
    let want = desired.spec.template.spec.as_ref().unwrap();
    assert_eq!(
        patch["spec"]["template"]["spec"]["containers"],
        serde_json::to_value(&want.containers).unwrap()
    );
    assert_eq!(
        patch["spec"]["template"]["spec"]["volumes"],
        serde_json::to_value(&want.volumes).unwrap()
    );
    assert_eq!(
        patch["spec"]["template"]["spec"]["initContainers"],
        serde_json::Value::Null
    );

    let mut live = desired.clone();
    let pod = live.spec.template.spec.as_mut().unwrap();
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "host".to_string(),
        host_path: Some(HostPathVolumeSource {
            path: "/".to_string(),
            type_: None,
        }),
        ..Volume::default()
    });
    assert!(
        foreign_pod_items(&desired, &live).is_some(),
        "a hostPath volume is foreign"
    );

    let mut live = desired.clone();
    let pod = live.spec.template.spec.as_mut().unwrap();
    pod.init_containers = Some(vec![Container {
        name: "init".to_string(),
        image: Some("busybox".to_string()),
        ..Container::default()
    }]);
    assert!(
        foreign_pod_items(&desired, &live).is_some(),
        "an init container is foreign"
    );
}

#[test]
fn agent_rules_no_role_or_network_policy_can_hold_are_left_out_not_written() {
    // What an Audit namespace admits (the webhook only warns): non-resource URLs and a rule
    // without verbs cannot be in a namespaced Role, and an HTTP protocol, port 0 or a CIDR
    // with a /33 prefix cannot be in a NetworkPolicy; the API server would refuse the whole
    // object. They are left out, so what they ask for stays denied.
    let mut a = agent();
    let declared = a.spec.permissions[0].clone();
    a.spec.permissions.push(rule(&[], &[], &["get"]));
    a.spec.permissions[1].non_resource_urls = Some(vec!["/metrics".to_string()]);
    a.spec.permissions.push(rule(&[""], &["pods"], &[]));
    let (role, _) = build_grant(&a);
    assert_eq!(role.rules.unwrap(), vec![declared]);

    let egress = |cidr: &str, ports: Vec<i32>, protocol: Option<&str>| crate::api::EgressRule {
        cidr: cidr.to_string(),
        ports,
        protocol: protocol.map(str::to_string),
    };
    a.spec
        .egress
        .push(egress("10.40.0.0/16", vec![8080], Some("HTTP")));
    a.spec.egress.push(egress("10.41.0.0/16", vec![0], None));
    a.spec.egress.push(egress("10.42.0.0/33", vec![443], None));
    a.spec
        .egress
        .push(egress("10.43.0.0/16", vec![53], Some("UDP")));
    let rules = agent_netpol(&a).spec.unwrap().egress.unwrap();
    let cidrs: Vec<String> = rules
        .iter()
        .filter_map(|r| r.to.as_ref()?[0].ip_block.as_ref().map(|b| b.cidr.clone()))
        .collect();
    assert_eq!(cidrs, ["10.20.0.0/16", "10.43.0.0/16"]);
}

/// An agent granted `escalate` on Roles, evaluated under a policy whose every control is
/// `action` (the agent was admitted under Audit; the policy is then switched to Enforce).
fn escalating_agent_under(action: crate::api::Action) -> (AgentPolicy, policy::Evaluation) {
    let mut a = agent();
    a.spec.permissions = vec![rule(
        &["rbac.authorization.k8s.io"],
        &["roles"],
        &["get", "escalate"],
    )];
    let mut profile = Profile::baseline();
    profile.default_action = action;
    for value in profile.actions.values_mut() {
        *value = action;
    }
    let inv = Inventory::default();
    let eval = policy::evaluate(
        Governed::Agent(&a),
        &PolicyContext {
            profile: &profile,
            lookup: &inv,
            now: jiff::Timestamp::UNIX_EPOCH,
            detail: policy::Detail::Outcomes,
        },
    );
    (a, eval)
}

#[test]
fn an_escalating_grant_is_made_under_audit_and_withdrawn_under_enforce_with_the_rule_named() {
    use super::agent_policy::{blocked, withheld_ready};
    use crate::api::Action;
    let (_, audit) = escalating_agent_under(Action::Audit);
    // Audit reports the finding but materialises the grant.
    assert!(!audit.is_compliant());
    assert_eq!(blocked(&audit), (false, false));
    let (_, enforce) = escalating_agent_under(Action::Enforce);
    assert_eq!(blocked(&enforce), (true, false));
    let ready = withheld_ready(&enforce, true, false);
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (false, "GrantWithheld")
    );
    assert_eq!(
        ready.message,
        "the spec fails Enforce controls (A.8.2): the declared permissions are not granted (a Role or RoleBinding granted before is withdrawn): A.8.2 Privileged access rights: agent \"support\" is granted the forbidden verb \"escalate\"; A.8.2 Privileged access rights: agent \"support\" is granted \"escalate\" on \"roles\", a dangerous permission the policy forbids"
    );
}

#[test]
fn withheld_egress_and_grant_name_every_failing_rule_and_bound_the_list() {
    use super::agent_policy::{blocked, withheld_ready};
    use crate::api::Action;
    let (mut a, _) = escalating_agent_under(Action::Enforce);
    // The same forbidden verb in two rules (one message), and six dangerous permissions.
    a.spec.permissions = vec![
        rule(&[""], &["things"], &["impersonate"]),
        rule(&[""], &["others"], &["impersonate"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&[""], &["pods/exec"], &["create"]),
        rule(&[""], &["pods/attach"], &["create"]),
        rule(&[""], &["pods/portforward"], &["create"]),
        rule(&[""], &["secrets"], &["create"]),
        rule(&[""], &["secrets"], &["delete"]),
    ];
    a.spec.egress[0].cidr = "0.0.0.0/0".to_string();
    let profile = Profile::baseline();
    let inv = Inventory::default();
    let eval = policy::evaluate(
        Governed::Agent(&a),
        &PolicyContext {
            profile: &profile,
            lookup: &inv,
            now: jiff::Timestamp::UNIX_EPOCH,
            detail: policy::Detail::Outcomes,
        },
    );
    assert_eq!(blocked(&eval), (true, true));
    let ready = withheld_ready(&eval, true, true);
    assert!(
        ready.message.starts_with(
            "the spec fails Enforce controls (A.8.12, A.8.2): the declared permissions are not granted (a Role or RoleBinding granted before is withdrawn); the declared egress is not opened (DNS only): A.8.2 Privileged access rights: agent \"support\" is granted the forbidden verb \"impersonate\""
        ),
        "{}",
        ready.message
    );
    assert_eq!(
        ready.message.matches("forbidden verb").count(),
        1,
        "{}",
        ready.message
    );
    // Seven distinct A.8.2 findings and one A.8.12: five are quoted, the rest counted.
    assert!(ready.message.ends_with("; and 3 more"), "{}", ready.message);
}

#[test]
fn only_a_child_the_parent_controls_by_uid_is_withdrawn() {
    use super::controlled_by;
    let (role, binding) = build_grant(&agent());
    assert!(controlled_by(&role.metadata, "u2"));
    assert!(controlled_by(&binding.metadata, "u2"));
    // Another parent's, or the team's own Role of that name: never withdrawn.
    assert!(!controlled_by(&role.metadata, "other-uid"));
    assert!(!controlled_by(
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::default(),
        "u2"
    ));
    // An owner without a UID (never the case on a cluster) matches nothing.
    assert!(!controlled_by(&role.metadata, ""));
    let mut referenced = role.metadata.clone();
    for o in referenced.owner_references.iter_mut().flatten() {
        o.controller = None;
    }
    assert!(!controlled_by(&referenced, "u2"));
}

#[test]
fn a_dataset_grant_is_withdrawn_with_its_findings_or_because_nothing_is_declared() {
    use super::training_dataset::withdrawal_reason;
    let mut d: TrainingDataset = serde_yaml_ng::from_str(
        "apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims, namespace: ml, uid: d1}
spec:
  source: {uri: 's3://b/claims/', sha256: 'sha256:ca150bd50c376842bc72630b2dd7fb3c1ad1410b2bee1b2e61d9635daf46b22e'}
  classification: Internal
  owner: team
  personalData: {contains: false}
  residency: {region: eu-west-1}
  retention: {period: 30d, onExpiry: Retain}
  credentialsSecret: claims-s3
  access: {allowedServiceAccounts: [trainer]}
",
    )
    .unwrap();
    let inv = Inventory::default();
    let evaluate = |d: &TrainingDataset, profile: &Profile| {
        policy::evaluate(
            Governed::Dataset(d),
            &PolicyContext {
                profile,
                lookup: &inv,
                now: jiff::Timestamp::UNIX_EPOCH,
                detail: policy::Detail::Outcomes,
            },
        )
    };
    let lenient = Profile::baseline();
    assert!(evaluate(&d, &lenient).denials().next().is_none());
    assert_eq!(
        withdrawal_reason(&evaluate(&d, &lenient)),
        "the spec no longer names a credentials Secret and a service account allowed to read it"
    );
    // A stricter policy: the dataset's region is no longer allowed.
    let mut strict = Profile::baseline();
    strict.allowed_regions = Some(vec!["eu-central-1".to_string()]);
    let eval = evaluate(&d, &strict);
    let reason = withdrawal_reason(&eval);
    let denied: Vec<&str> = eval.denials().map(|f| f.message.as_str()).collect();
    assert!(!denied.is_empty());
    assert_eq!(reason, denied.join("; "));
    assert!(reason.contains("eu-west-1"), "{reason}");
    // Nothing left to grant: no Role is built, so the one made before is withdrawn.
    d.spec
        .access
        .as_mut()
        .unwrap()
        .allowed_service_accounts
        .clear();
    assert!(build_access(&d).is_none());
}

/// An approval of a release other than the requested one says which it was, from the model's
/// own records: the release serving, one promoted earlier, or one the model never had (#12:
/// an approval for a digest the model never had is not "superseded").
#[test]
fn an_approval_of_another_release_says_whether_it_serves_was_superseded_or_never_requested() {
    use super::model_approval::counted;
    let with = |digest: &str, version: &str| {
        let mut m = model("");
        m.spec.model.digest = digest.to_string();
        m.spec.model.version = version.to_string();
        m
    };
    let serving = release_of(&with(OTHER, "3.1.0"));
    let earlier = release_of(&with(OTHER, "3.0.0"));
    let never = with(OTHER, "9.9.9");
    let mut m = model("");
    m.status = Some(crate::api::ModelDeploymentStatus {
        serving_release: Some(Box::new(serving.clone())),
        promotions: vec![earlier.record.clone(), serving.record.clone()],
        ..Default::default()
    });
    let mut inventory = Inventory::default();
    inventory.add_model(m);
    let reason_for = |of: &ModelDeployment| {
        let approval = approval_of(of, "a", "bob", 0);
        let (desired, _) = counted(
            &approval,
            &inventory,
            &Profile::baseline(),
            jiff::Timestamp::now(),
        );
        assert!(!desired.status, "{}", desired.message);
        (desired.reason, desired.message)
    };
    let (reason, message) = reason_for(&with(OTHER, "3.1.0"));
    assert_eq!(reason, "Serving", "{message}");
    let (reason, message) = reason_for(&with(OTHER, "3.0.0"));
    assert_eq!(reason, "Superseded", "{message}");
    assert!(message.contains("was promoted earlier"), "{message}");
    let (reason, message) = reason_for(&never);
    assert_eq!(reason, "NotRequested", "{message}");
    assert!(
        message.contains("is not the model's pending release") && message.contains("never counts"),
        "{message}"
    );
}

/// The cache of a test: these approvals and nothing else.
fn inventory_with(approvals: &[Arc<ModelApproval>]) -> Inventory {
    let mut inventory = Inventory::default();
    inventory.approvals = approvals.to_vec();
    inventory
}

#[test]
fn the_plan_keeps_a_pending_release_out_of_the_deployment_until_it_is_approved() {
    use super::model_deployment::{build_status, needs_live_deployment, newly_promoted, plan};
    let r1 = requested_by_alice(model("  serving: {port: 9000}\n"));
    let mut profile = production();
    // Neither KMS nor TLS required: the spec passes every Enforce control.
    profile.require_kms_from = Classification::Restricted;
    let now = jiff::Timestamp::now();
    let approvals = vec![
        approval_of(&r1, "bob", "bob", 2),
        approval_of(&r1, "carol", "carol", 1),
    ];
    let inv = inventory_with(&approvals);
    // R1 approved: planned, promoted now, and nothing pending.
    let first = plan(&r1, &inv, &profile, None, now);
    assert!(first.denied.is_empty(), "{:?}", first.eval.findings);
    let serving = first.serving.clone().expect("R1 serves");
    let image = |p: &super::model_deployment::Plan| {
        p.deployment
            .as_ref()
            .expect("a Deployment")
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
    };
    assert_eq!(image(&first).as_deref(), Some(r1.spec.image.as_str()));
    assert_eq!(newly_promoted(&r1, &first), Some(&serving.record));
    let status = build_status(&r1, &first, &[], None, now);
    assert!(status.pending_release.is_none());
    assert_eq!(status.promotions, std::slice::from_ref(&serving.record));

    // Alice changes the image: R2 is pending, unapproved. The Deployment stays on R1's image,
    // status says which serves and which waits, and no promotion is announced again.
    let mut r2 = r1.clone();
    r2.spec.image = "registry.example.com/serve:evil".to_string();
    let mut r2 = requested_by_alice(r2);
    r2.status = Some(status);
    assert!(
        !needs_live_deployment(&r2, &approvals, &profile, now),
        "a proven status needs no read of the Deployment"
    );
    let second = plan(&r2, &inv, &profile, None, now);
    assert_eq!(image(&second).as_deref(), Some(r1.spec.image.as_str()));
    assert_eq!(newly_promoted(&r2, &second), None);
    let status = build_status(&r2, &second, &[], None, now);
    assert_eq!(
        status
            .serving_release
            .as_ref()
            .map(|s| &s.record.fingerprint),
        Some(&serving.record.fingerprint)
    );
    assert_eq!(
        status.pending_release.as_ref().map(|r| r.image.as_str()),
        Some("registry.example.com/serve:evil")
    );
    let promoted = status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "Promoted")
        .unwrap();
    assert_eq!(
        (promoted.status.as_str(), promoted.reason.as_str()),
        ("False", "AwaitingApproval"),
        "{}",
        promoted.message
    );
}

#[test]
fn the_plan_renders_nothing_from_a_forged_serving_release_and_removes_it_from_status() {
    use super::model_deployment::{
        ServingNote, build_status, needs_live_deployment, plan, serving_release_patch,
    };
    let m = requested_by_alice(model(""));
    let mut profile = production();
    // Neither KMS nor TLS required: the spec passes every Enforce control.
    profile.require_kms_from = Classification::Restricted;
    let now = jiff::Timestamp::now();
    // Someone with modeldeployments/status writes a serving release no approval backs.
    let mut forged = release_of(&m);
    forged.spec.image = "registry.example.com/serve:evil".to_string();
    let mut m = m;
    m.status = Some(crate::api::ModelDeploymentStatus {
        serving_release: Some(Box::new(forged.clone())),
        ..Default::default()
    });
    let inv = inventory_with(&[]);
    assert!(
        needs_live_deployment(&m, &[], &profile, now),
        "whether its Deployment still runs is read once"
    );
    let live = build_deployment(&Inputs {
        model: &m,
        profile: &profile,
        classification: Classification::Internal,
        release: Some(&release_of(&m)),
    });
    let planned = plan(&m, &inv, &profile, live.as_ref(), now);
    assert!(planned.serving.is_none());
    assert!(planned.deployment.is_none(), "nothing is rendered from it");
    assert!(
        matches!(&planned.note, ServingNote::Unproven { running: true, why, .. }
            if why.contains("does not match its fingerprint")),
        "{:?}",
        planned.note
    );
    let status = build_status(&m, &planned, &[], None, now);
    assert!(status.serving_release.is_none());
    let ready = status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "ServingUnproven", "{}", ready.message);
    assert!(
        ready.message.contains("left exactly as it is"),
        "{}",
        ready.message
    );
    // The forged record is removed from status, with its digest.
    assert!(matches!(
        serving_release_patch(Some(&forged), &status),
        Some(kube::api::Patch::Merge(_))
    ));
    // Without a Deployment, nothing is said to run.
    let planned = plan(&m, &inv, &profile, None, now);
    assert!(matches!(
        planned.note,
        ServingNote::Unproven { running: false, .. }
    ));
}

#[test]
fn the_network_policy_selects_exactly_the_pods_admission_calls_the_agents() {
    use crate::policy::pod_access::is_agent_pod;
    use crate::policy::selector_matches;
    use crate::policy::tests::agent_policy::SUPPORT_AGENT;
    use std::collections::BTreeMap;
    let selected = format!(
        "{SUPPORT_AGENT}  podSelector:\n    matchLabels: {{app: support-agent, tier: agent}}\n"
    );
    for yaml in [SUPPORT_AGENT, &selected] {
        let agent: AgentPolicy = serde_yaml_ng::from_str(yaml).unwrap();
        let policy = agent_netpol(&agent);
        let selector = policy.spec.unwrap().pod_selector;
        for labels in [
            vec![],
            vec![("annexa.dev/agent", "support-agent")],
            vec![("app", "support-agent")],
            vec![("app", "support-agent"), ("tier", "agent")],
        ] {
            let labels: BTreeMap<String, String> = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                selector_matches(selector.as_ref(), &labels),
                is_agent_pod(&agent, &labels),
                "{labels:?}"
            );
        }
    }
}
