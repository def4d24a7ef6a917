//! In-process tests of the admission handlers: AdmissionReview fixtures through the router
//! (`oneshot`), for every Annexa kind, workloads, and every decision.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use webhook_support::*;

fn dataset(namespace: &str, kms: bool) -> Value {
    let mut d = yaml(&format!(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {{name: patients, namespace: {namespace}}}
spec:
  source: {{uri: "s3://data/patients", sha256: "{SHA}"}}
  classification: Confidential
  owner: data-team
  access: {{allowedServiceAccounts: [trainer]}}
  retention: {{period: 90d, onExpiry: Delete}}
"#
    ));
    if kms {
        d["spec"]["encryption"] = json!({"kmsKey": "arn:aws:kms:eu-west-1:1:key/patients"});
    }
    d
}

const NO_KMS: &str = "TrainingDataset \"patients\" is not compliant: A.8.24 Use of cryptography: dataset \"patients\" is Confidential and has no KMS key";

#[tokio::test]
async fn enforce_denies_with_the_control_in_the_message() {
    let r = validate(
        &router(),
        &review("CREATE", "alice", &dataset("ml-prod", false), None),
    )
    .await;
    assert_eq!(denial(&r), NO_KMS);
    assert_eq!(r["status"]["reason"], "Forbidden");
}

#[tokio::test]
async fn warn_admits_with_warnings() {
    let r = validate(
        &router(),
        &review("CREATE", "alice", &dataset("ml-warn", false), None),
    )
    .await;
    assert_eq!(r["allowed"], true);
    assert_eq!(
        warnings(&r),
        ["A.8.24 Use of cryptography: dataset \"patients\" is Confidential and has no KMS key"]
    );
}

#[tokio::test]
async fn audit_admits_silently_and_is_counted() {
    let state = state();
    let router = annexa::webhook::server::router(state.clone());
    let r = validate(
        &router,
        &review("CREATE", "alice", &dataset("ml-audit", false), None),
    )
    .await;
    admitted_clean(&r);
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains(r#"annexa_admission_decisions_total{kind="TrainingDataset",control="A.8.24",result="audit"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn compliant_objects_are_admitted() {
    let r = validate(
        &router(),
        &review("CREATE", "alice", &dataset("ml-prod", true), None),
    )
    .await;
    admitted_clean(&r);
}

#[tokio::test]
async fn dry_run_is_decided_the_same() {
    let mut rv = review("CREATE", "alice", &dataset("ml-prod", false), None);
    rv["request"]["dryRun"] = json!(true);
    assert_eq!(denial(&validate(&router(), &rv).await), NO_KMS);
}

#[tokio::test]
async fn ungoverned_kinds_deletes_and_subresources_are_admitted() {
    let router = router();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "ml-prod"}, "data": {"a": "b"}});
    admitted_clean(&validate(&router, &review("CREATE", "alice", &cm, None)).await);
    let bad = dataset("ml-prod", false);
    admitted_clean(
        &validate(
            &router,
            &review("DELETE", "alice", &Value::Null, Some(&bad)),
        )
        .await,
    );
    let mut status = review("UPDATE", "annexa", &bad, Some(&bad));
    status["request"]["subResource"] = json!("status");
    admitted_clean(&validate(&router, &status).await);
    // An object being deleted can always lose its finalizers.
    let mut deleting = bad.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    admitted_clean(&validate(&router, &review("UPDATE", "alice", &deleting, Some(&bad))).await);
}

fn model(namespace: &str, image: &str, digest: &str) -> Value {
    yaml(&format!(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: ranker, namespace: {namespace}}}
spec:
  model: {{name: ranker, version: "2.0.0", uri: "s3://models/ranker", digest: "{digest}", kmsKey: "arn:aws:kms:eu-west-1:1:key/ranker"}}
  image: "{image}"
  trainingDatasets: [claims]
  serving: {{tlsSecret: ranker-tls}}
"#
    ))
}

const PINNED: &str = "registry.example.com/serve@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn model_deployment_decisions() {
    let router = router();
    // Production: an image from elsewhere is denied; the held rollout is only a warning.
    let r = validate(
        &router,
        &review(
            "CREATE",
            "alice",
            &model("ml-prod", "docker.io/evil/serve:1.0", D1),
            None,
        ),
    )
    .await;
    assert_eq!(
        denial(&r),
        "ModelDeployment \"ranker\" is not compliant: A.8.9 Configuration management: model \"ranker\" serves image \"docker.io/evil/serve:1.0\", which is not pinned by digest (@sha256:) as Production requires; A.8.19 Installation of software on operational systems: model \"ranker\" serves image \"docker.io/evil/serve:1.0\", which is not from an allowed registry [\"registry.example.com\"]"
    );
    // Created without the mutating webhook (the review is validating only): the requester is
    // unknown, and the gate says so.
    let held = warnings(&r);
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held[0].starts_with("A.5.3 Segregation of duties: the requester of release sha256:")
            && held[0].ends_with("is not recorded (changed without the webhook): it cannot be approved until its requester is re-established"),
        "{held:?}"
    );
    assert!(
        held[1].starts_with("A.8.32 Change management: rollout of release sha256:")
            && held[1].ends_with(
                "(digest sha256:111111111111) of model \"ranker\" is held: 0 of 2 approvals"
            ),
        "{held:?}"
    );
    // Compliant but awaiting approvals: admitted with the warning.
    let r = validate(
        &router,
        &review("CREATE", "alice", &model("ml-prod", PINNED, D1), None),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    // Held by the gate: approvals, and the requester the mutating webhook did not record here.
    assert_eq!(warnings(&r).len(), 2);
    // Development baseline: admitted clean.
    let mut dev = model("ml-dev", PINNED, D1);
    dev["spec"]["trainingDatasets"] = json!([]);
    admitted_clean(&validate(&router, &review("CREATE", "alice", &dev, None)).await);
    // ... and a dataset the namespace does not have (yet) is an inventory warning: a GitOps
    // sync does not order objects, and the controller holds the rollout until it exists.
    let r = validate(
        &router,
        &review("CREATE", "alice", &model("ml-dev", PINNED, D1), None),
    )
    .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(
        warnings(&r),
        vec![
            "A.5.9 Inventory of information and other associated assets: model \"ranker\" trains on dataset \"claims\", which does not exist in namespace \"ml-dev\"".to_string(),
            "A.5.12 Classification of information: model \"ranker\" cannot be classified: datasets [\"claims\"] are missing".to_string(),
        ]
    );
}

#[tokio::test]
async fn agent_policy_decisions() {
    let router = router();
    let agent = yaml(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata: {name: root-bot, namespace: ml-prod}
spec:
  serviceAccountName: root-bot
  tokenTTL: 1h
  permissions:
  - {apiGroups: [""], resources: [pods], verbs: ["*"]}
  egress:
  - {cidr: 10.0.0.0/8, ports: [443], protocol: TCP}
"#,
    );
    let r = validate(&router, &review("CREATE", "alice", &agent, None)).await;
    assert_eq!(
        denial(&r),
        "AgentPolicy \"root-bot\" is not compliant: A.8.2 Privileged access rights: agent \"root-bot\" is granted the forbidden verb \"*\""
    );
    let mut ok = agent.clone();
    ok["spec"]["permissions"][0]["verbs"] = json!(["get", "list"]);
    admitted_clean(&validate(&router, &review("CREATE", "alice", &ok, None)).await);
}

#[tokio::test]
async fn compliance_policy_is_validated() {
    let router = router();
    let policy = json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "CompliancePolicy", "metadata": {"name": "typo"},
        "spec": {"enforcement": {"overrides": [{"control": "A.9.99", "action": "Audit"}]}}
    });
    let r = validate(&router, &review("CREATE", "alice", &policy, None)).await;
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 422);
    assert_eq!(
        r["status"]["message"],
        "CompliancePolicy \"typo\" is invalid: spec.enforcement.overrides[0].control: \"A.9.99\" is not a control Annexa evaluates (see `annexa controls`)"
    );
    let mut ok = policy.clone();
    ok["spec"]["enforcement"]["overrides"][0]["control"] = json!("A.8.12");
    admitted_clean(&validate(&router, &review("CREATE", "alice", &ok, None)).await);
}

fn gpu_pod_spec(placed: bool) -> Value {
    let mut spec = json!({
        "containers": [{
            "name": "trainer",
            "image": PINNED,
            "resources": {"limits": {"nvidia.com/gpu": "1"}}
        }]
    });
    if placed {
        spec["nodeSelector"] = json!({"annexa.dev/gpu-pool": "internal"});
        spec["tolerations"] = json!([{"key": "annexa.dev/gpu-pool", "operator": "Equal", "value": "internal", "effect": "NoSchedule"}]);
    }
    spec
}

fn workload(kind: &str, namespace: &str, pod_spec: Value) -> Value {
    let template = json!({"metadata": {"labels": {"app": "train"}}, "spec": pod_spec});
    let (api_version, spec) = match kind {
        "Pod" => ("v1", pod_spec),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            ("apps/v1", json!({"template": template}))
        }
        "Job" => ("batch/v1", json!({"template": template})),
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}),
        ),
        _ => unreachable!(),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "train", "namespace": namespace}, "spec": spec})
}

#[tokio::test]
async fn gpu_pods_need_the_pool_placement() {
    let router = router();
    let r = validate(
        &router,
        &review(
            "CREATE",
            "alice",
            &workload("Pod", "ml-dev", gpu_pod_spec(false)),
            None,
        ),
    )
    .await;
    assert_eq!(
        denial(&r),
        "Pod \"train\" is not compliant: A.8.22 Segregation of networks: pod \"train\" requests GPUs for Internal data (no annexa.dev/classification label: Internal) but does not select the Internal pool (annexa.dev/gpu-pool=internal); A.8.22 Segregation of networks: pod \"train\" requests GPUs for Internal data (no annexa.dev/classification label: Internal) but does not tolerate the Internal pool taint annexa.dev/gpu-pool=internal:NoSchedule"
    );
    admitted_clean(
        &validate(
            &router,
            &review(
                "CREATE",
                "alice",
                &workload("Pod", "ml-dev", gpu_pod_spec(true)),
                None,
            ),
        )
        .await,
    );
}

#[tokio::test]
async fn pod_templates_of_every_workload_kind_are_checked() {
    let router = router();
    for (kind, path) in [
        ("Deployment", "spec.template.spec"),
        ("StatefulSet", "spec.template.spec"),
        ("DaemonSet", "spec.template.spec"),
        ("ReplicaSet", "spec.template.spec"),
        ("Job", "spec.template.spec"),
        ("CronJob", "spec.jobTemplate.spec.template.spec"),
    ] {
        let mut spec = gpu_pod_spec(true);
        spec["containers"][0]["securityContext"] = json!({"privileged": true});
        spec["hostNetwork"] = json!(true);
        let object = workload(kind, "ml-dev", spec);
        let r = validate(&router, &review("CREATE", "alice", &object, None)).await;
        let what = kind.to_ascii_lowercase();
        assert_eq!(
            denial(&r),
            format!(
                "{kind} \"train\" is not compliant: A.8.2 Privileged access rights: {what} \"train\" requests GPUs and container \"trainer\" is privileged; A.8.2 Privileged access rights: {what} \"train\" requests GPUs and uses hostNetwork"
            ),
            "{kind} ({path})"
        );
        admitted_clean(
            &validate(
                &router,
                &review(
                    "CREATE",
                    "alice",
                    &workload(kind, "ml-dev", gpu_pod_spec(true)),
                    None,
                ),
            )
            .await,
        );
    }
}

#[tokio::test]
async fn workload_images_follow_the_namespace_policy() {
    let router = router();
    let mut spec = gpu_pod_spec(true);
    spec["containers"][0]["image"] = json!("docker.io/evil/miner:latest");
    let object = workload("Deployment", "ml-warn", spec.clone());
    let r = validate(&router, &review("CREATE", "alice", &object, None)).await;
    assert_eq!(r["allowed"], true);
    assert_eq!(
        warnings(&r),
        [
            "A.8.19 Installation of software on operational systems: deployment \"train\" container \"trainer\" uses image \"docker.io/evil/miner:latest\", which is not from an allowed registry [\"registry.example.com\"]"
        ]
    );
}

#[tokio::test]
async fn cpu_pods_may_not_tolerate_gpu_taints() {
    let router = router();
    let spec = json!({
        "containers": [{"name": "web", "image": "nginx"}],
        "tolerations": [{"key": "annexa.dev/gpu-pool", "operator": "Exists"}]
    });
    let r = validate(
        &router,
        &review("CREATE", "alice", &workload("Pod", "ml-dev", spec), None),
    )
    .await;
    assert_eq!(
        denial(&r),
        "Pod \"train\" is not compliant: A.8.22 Segregation of networks: pod \"train\" requests no GPU but tolerates the taint of the Public GPU pool"
    );
}

#[tokio::test]
async fn workloads_are_checked_only_in_opted_in_namespaces() {
    let router = router();
    let bad = workload("Pod", "legacy", gpu_pod_spec(false));
    admitted_clean(&validate(&router, &review("CREATE", "alice", &bad, None)).await);
    // Stand-alone: a namespace the context does not describe counts as opted in.
    let unknown = workload("Pod", "elsewhere", gpu_pod_spec(false));
    denial(&validate(&router, &review("CREATE", "alice", &unknown, None)).await);
}

/// An approval of `llm`'s release (`LLM_RELEASE`) or of another one.
fn approval(user: &str, release: &str) -> Value {
    yaml(&format!(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: ModelApproval
metadata: {{name: llm-{user}, namespace: ml-prod}}
spec:
  modelDeployment: llm
  modelUID: {LLM_UID}
  release: {{fingerprint: "{release}", digest: "{D1}"}}
  decision: {decision}
  reason: reviewed
  approver: {{username: {user}}}
"#,
        decision = "Approve",
    ))
}

fn rejection(user: &str) -> Value {
    let mut r = approval(user, LLM_RELEASE);
    r["spec"]["decision"] = json!("Reject");
    r
}

#[test]
fn context_records_the_llm_release() {
    use annexa::webhook::context::AdmissionContext as _;
    let Some(model) = context().lookup().model("ml-prod", "llm") else {
        panic!("llm is in the context")
    };
    assert_eq!(model.spec.release().fingerprint(), LLM_RELEASE);
}

/// Groups are verified against the request's userInfo.groups (A.5.3).
#[tokio::test]
async fn claimed_groups_must_be_the_users_own() {
    let router = router();
    let mut claimed = approval("carol", LLM_RELEASE);
    claimed["spec"]["approver"]["groups"] = json!(["ml-reviewers"]);
    let mut request = review("CREATE", "carol", &claimed, None);
    request["request"]["userInfo"]["groups"] = json!(["ml-reviewers", "system:authenticated"]);
    admitted_clean(&validate(&router, &request).await);
    request["request"]["userInfo"]["groups"] = json!(["system:authenticated"]);
    assert_eq!(
        denial(&validate(&router, &request).await),
        "ModelApproval \"llm-carol\" is not compliant: A.5.3 Segregation of duties: approval \"llm-carol\" claims group \"ml-reviewers\", which \"carol\" is not in"
    );
}

/// A ServiceAccount is not a person: it cannot supply an approval (A.5.3).
#[tokio::test]
async fn service_accounts_cannot_approve() {
    let sa = "system:serviceaccount:ml-prod:deployer";
    let mut by_sa = approval("deployer", LLM_RELEASE);
    by_sa["spec"]["approver"]["username"] = json!(sa);
    let r = validate(&router(), &review("CREATE", sa, &by_sa, None)).await;
    assert_eq!(
        denial(&r),
        "ModelApproval \"llm-deployer\" is not compliant: A.5.3 Segregation of duties: \"system:serviceaccount:ml-prod:deployer\" is a ServiceAccount: approvals are made by people, unless a CompliancePolicy names the account in spec.promotion.serviceAccountApprovers"
    );
}

/// DELETE of a rejection: only its author withdraws it (A.8.32); approvals may be deleted.
#[tokio::test]
async fn a_rejection_is_withdrawn_only_by_its_author() {
    let router = router();
    let reject = rejection("carol");
    let r = validate(
        &router,
        &review("DELETE", "bob", &Value::Null, Some(&reject)),
    )
    .await;
    assert_eq!(
        denial(&r),
        "ModelApproval \"llm-carol\" is not compliant: A.8.32 Change management: rejection \"llm-carol\" by \"carol\" can only be withdrawn by its author, not by \"bob\""
    );
    admitted_clean(
        &validate(
            &router,
            &review("DELETE", "carol", &Value::Null, Some(&reject)),
        )
        .await,
    );
    let approve = approval("carol", LLM_RELEASE);
    admitted_clean(
        &validate(
            &router,
            &review("DELETE", "bob", &Value::Null, Some(&approve)),
        )
        .await,
    );
}

/// An approval bound to another object that had the model's name is refused (A.8.32).
#[tokio::test]
async fn an_approval_names_the_models_uid() {
    let mut stale = approval("carol", LLM_RELEASE);
    stale["spec"]["modelUID"] = json!("deleted-llm");
    let r = validate(&router(), &review("CREATE", "carol", &stale, None)).await;
    assert!(
        denial(&r).contains("is bound to ModelDeployment UID \"deleted-llm\""),
        "{r}"
    );
}

#[tokio::test]
async fn approvals_in_ones_own_name_only() {
    let router = router();
    admitted_clean(
        &validate(
            &router,
            &review("CREATE", "carol", &approval("carol", LLM_RELEASE), None),
        )
        .await,
    );
    // Mallory files an approval in Carol's name.
    let r = validate(
        &router,
        &review("CREATE", "mallory", &approval("carol", LLM_RELEASE), None),
    )
    .await;
    assert_eq!(
        denial(&r),
        "ModelApproval \"llm-carol\" is not compliant: A.5.3 Segregation of duties: approval \"llm-carol\" names approver \"carol\" but was submitted by \"mallory\"; approvals can only be made in one's own name"
    );
    // Bob requested llm's release and cannot approve it.
    let r = validate(
        &router,
        &review("CREATE", "bob", &approval("bob", LLM_RELEASE), None),
    )
    .await;
    assert_eq!(
        denial(&r),
        format!(
            "ModelApproval \"llm-bob\" is not compliant: A.5.3 Segregation of duties: \"bob\" requested release {} of model \"llm\" and cannot approve it",
            &LLM_RELEASE[..19]
        )
    );
    // ... but may approve a release someone else requested.
    admitted_clean(
        &validate(
            &router,
            &review("CREATE", "bob", &approval("bob", D2), None),
        )
        .await,
    );
}

#[tokio::test]
async fn approvals_are_immutable() {
    let router = router();
    let old = approval("carol", LLM_RELEASE);
    let mut changed = old.clone();
    changed["spec"]["release"]["fingerprint"] = json!(D2);
    let r = validate(&router, &review("UPDATE", "carol", &changed, Some(&old))).await;
    assert_eq!(
        denial(&r),
        "ModelApproval \"llm-carol\" is not compliant: A.8.32 Change management: approval \"llm-carol\" is immutable: its spec cannot change after creation; create a new ModelApproval instead"
    );
    // Every other field of the spec is frozen too, whoever asks: the approved model, the
    // decision, the reason, the approver and their groups.
    type Edit = (&'static str, fn(&mut Value));
    let edits: [Edit; 5] = [
        ("modelDeployment", |v| {
            v["spec"]["modelDeployment"] = json!("other")
        }),
        ("decision", |v| v["spec"]["decision"] = json!("Reject")),
        ("reason", |v| v["spec"]["reason"] = json!("changed my mind")),
        ("approver.username", |v| {
            v["spec"]["approver"]["username"] = json!("dave")
        }),
        ("approver.groups", |v| {
            v["spec"]["approver"]["groups"] = json!(["ml-reviewers"])
        }),
    ];
    for (what, edit) in edits {
        let mut edited = old.clone();
        edit(&mut edited);
        for user in ["carol", "dave", "admin"] {
            let r = validate(&router, &review("UPDATE", user, &edited, Some(&old))).await;
            assert_eq!(
                denial(&r),
                "ModelApproval \"llm-carol\" is not compliant: A.8.32 Change management: approval \"llm-carol\" is immutable: its spec cannot change after creation; create a new ModelApproval instead",
                "an update of {what} by {user}"
            );
        }
    }
    // An update that leaves the spec as it was (re-applying the same manifest) is admitted.
    admitted_clean(&validate(&router, &review("UPDATE", "carol", &old, Some(&old))).await);
    // Metadata-only updates (labels, finalizers) by anyone are fine.
    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"team": "ml"});
    admitted_clean(&validate(&router, &review("UPDATE", "admin", &labelled, Some(&old))).await);
}

#[tokio::test]
async fn wrong_object_shapes_are_bad_requests() {
    let router = router();
    let cases = [
        (
            json!("a string"),
            "request.object: expected a Kubernetes object (a mapping), found a string",
        ),
        (
            json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "TrainingDataset", "metadata": {"name": "x", "namespace": "ml-prod"}, "spec": {"classification": 7}}),
            "request.object: TrainingDataset \"x\": field spec.classification: invalid type: integer `7`, expected",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml-prod"}, "spec": {"containers": "nope"}}),
            "request.object: Pod \"p\": spec: invalid type: string \"nope\", expected a sequence",
        ),
    ];
    for (object, expected) in cases {
        let mut rv = review("CREATE", "alice", &object, None);
        if object.is_string() {
            rv["request"]["kind"] =
                json!({"group": "annexa.dev", "version": "v1alpha1", "kind": "ModelDeployment"});
        }
        let (status, body) = post(&router, "/validate", serde_json::to_vec(&rv).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["code"], 400);
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{message}");
    }
}

#[tokio::test]
async fn responses_decode_as_kube_admission_reviews() {
    let rv = review("CREATE", "alice", &dataset("ml-prod", false), None);
    let (_, body) = post(&router(), "/validate", serde_json::to_vec(&rv).unwrap()).await;
    let typed: kube::core::admission::AdmissionReview<kube::core::DynamicObject> =
        serde_json::from_value(body).unwrap();
    let response = typed.response.unwrap();
    assert!(!response.allowed);
    assert_eq!(response.result.message, NO_KMS);
}

#[tokio::test]
async fn health_endpoints() {
    let router = router();
    for path in ["/healthz", "/readyz"] {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(router.clone(), request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

/// The benchmark's review (benches/fixtures) is a compliant GPU pod that goes through every
/// workload rule; without its pool placement it is denied.
#[tokio::test]
async fn the_benchmark_review_is_fully_evaluated() {
    let (documents, errors) = annexa::manifest::parse_documents(
        "context.yaml",
        include_str!("../benches/fixtures/context.yaml"),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let state = std::sync::Arc::new(annexa::webhook::WebhookState {
        context: std::sync::Arc::new(annexa::webhook::StaticContext::from_documents(documents)),
        metrics: std::sync::Arc::new(annexa::webhook::Metrics::new()),
        limits: annexa::webhook::Limits::default(),
        access: None,
    });
    let router = annexa::webhook::server::router(state);
    let mut rv: Value =
        serde_json::from_slice(include_bytes!("../benches/fixtures/gpu-pod-review.json")).unwrap();
    assert!(serde_json::to_vec(&rv).unwrap().len() > 9_000);
    admitted_clean(&validate(&router, &rv).await);
    rv["request"]["object"]["spec"]["nodeSelector"] = json!({});
    assert_eq!(
        denial(&validate(&router, &rv).await),
        "Pod \"llm-serve-7d9f8b6c5-x2x7q\" is not compliant: A.8.22 Segregation of networks: pod \"llm-serve-7d9f8b6c5-x2x7q\" requests GPUs for Confidential data (classified Confidential by label annexa.dev/classification) but does not select the Confidential pool (annexa.dev/gpu-pool=confidential)"
    );
}

#[tokio::test]
async fn metadata_only_updates_of_annexa_objects_are_admitted() {
    let router = router();
    let old = dataset("ml-prod", false);
    // A label or finalizer on an object that a tightened policy would now refuse.
    let mut labelled = old.clone();
    labelled["metadata"]["finalizers"] = json!(["annexa.dev/cleanup"]);
    admitted_clean(
        &validate(
            &router,
            &review("UPDATE", "annexa-controller", &labelled, Some(&old)),
        )
        .await,
    );
    // Changing the spec is evaluated again.
    let mut changed = old.clone();
    changed["spec"]["owner"] = json!("another-team");
    assert_eq!(
        denial(&validate(&router, &review("UPDATE", "alice", &changed, Some(&old))).await),
        NO_KMS
    );
}

/// The CRD's size bounds: the webhook refuses what the API server would refuse, naming the
/// field in the API server's words, as `annexa check` does.
#[tokio::test]
async fn objects_over_a_crd_size_bound_are_refused_naming_the_field() {
    let names: Vec<String> = (0..65).map(|i| format!("d{i}")).collect();
    let mut dataset = dataset("ml-prod", true);
    dataset["spec"]["derivedFrom"] = json!(names);
    let body = serde_json::to_vec(&review("CREATE", "alice", &dataset, None)).unwrap();
    let (status, answer) = post(&router(), "/validate", body).await;
    assert_eq!(status.as_u16(), 400, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.ends_with("spec.derivedFrom: Too many: must have at most 64 items"),
        "{message}"
    );
    // 64 are within the bound: decided, not refused.
    dataset["spec"]["derivedFrom"] = json!(names[..64]);
    let r = validate(&router(), &review("CREATE", "alice", &dataset, None)).await;
    assert!(r["allowed"].is_boolean(), "{r}");
}
