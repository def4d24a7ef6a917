#![allow(clippy::unwrap_used, clippy::expect_used)]
//! No confused deputy at admission: what Annexa's controllers would do for the author of a
//! TrainingDataset or AgentPolicy is checked as that author (SubjectAccessReview), through a
//! fake reviewer that answers from a table and records every question.

mod webhook_support;

use annexa::policy::delegation::AccessCheck;
use annexa::webhook::access::{AccessReviewer, Requester, subject_access_review};
use annexa::webhook::{Limits, Metrics, WebhookState, server};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webhook_support::*;

#[derive(Clone, Copy)]
enum Mode {
    /// Answers from the table.
    Table,
    /// Every review fails (API server unreachable, Annexa lacks `create` on SARs).
    Error,
    /// Never answers.
    Hang,
}

struct FakeReviewer {
    /// (user, check description) pairs that are allowed.
    allowed: Vec<(String, String)>,
    mode: Mode,
    asked: Mutex<Vec<(Requester, AccessCheck)>>,
}

impl FakeReviewer {
    fn new(mode: Mode, allowed: &[(&str, &str)]) -> Arc<Self> {
        Arc::new(Self {
            allowed: allowed
                .iter()
                .map(|(u, c)| (u.to_string(), c.to_string()))
                .collect(),
            mode,
            asked: Mutex::new(Vec::new()),
        })
    }

    fn asked(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|(u, c)| format!("{} {}", u.username, c.describe()))
            .collect()
    }
}

impl AccessReviewer for FakeReviewer {
    fn allowed<'a>(
        &'a self,
        user: &'a Requester,
        check: &'a AccessCheck,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            self.asked
                .lock()
                .unwrap()
                .push((user.clone(), check.clone()));
            match self.mode {
                Mode::Table => Ok(self
                    .allowed
                    .iter()
                    .any(|(u, c)| *u == user.username && *c == check.describe())),
                Mode::Error => Err("subjectaccessreviews.authorization.k8s.io is forbidden".into()),
                Mode::Hang => std::future::pending().await,
            }
        })
    }
}

fn router_with(reviewer: Arc<FakeReviewer>, limits: Limits) -> axum::Router {
    server::router(Arc::new(WebhookState {
        context: Arc::new(context()),
        metrics: Arc::new(Metrics::new()),
        limits,
        access: Some(reviewer),
    }))
}

/// A compliant dataset in `ml-dev` (baseline policy) that names another team's Secret and PVC.
fn dataset() -> Value {
    yaml(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: scraped, namespace: ml-dev}
spec:
  source: {pvc: payments-ledger, sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
  classification: Internal
  owner: ml-team
  credentialsSecret: payments-db
  access: {allowedServiceAccounts: [default]}
  retention: {period: 1d, onExpiry: Delete}
"#,
    )
}

fn agent() -> Value {
    yaml(
        r#"
apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata: {name: helper, namespace: ml-dev}
spec:
  serviceAccountName: helper
  tokenTTL: 30m
  permissions:
  - {apiGroups: [""], resources: [configmaps], resourceNames: [prompts], verbs: [get]}
  - {apiGroups: [""], resources: [pods/log], verbs: [get]}
  egress:
  - {cidr: 10.0.0.0/8, ports: [443], protocol: TCP}
"#,
    )
}

const SECRET: &str = r#""get" on secrets "payments-db" in namespace "ml-dev""#;
const PVC: &str = r#""delete" on persistentvolumeclaims "payments-ledger" in namespace "ml-dev""#;
const CONFIGMAP: &str = r#""get" on configmaps "prompts" in namespace "ml-dev""#;
const LOGS: &str = r#""get" on pods/log in namespace "ml-dev""#;
const ESCALATE: &str = r#""escalate" on roles.rbac.authorization.k8s.io in namespace "ml-dev""#;

#[tokio::test]
async fn a_dataset_naming_a_secret_and_a_pvc_the_author_cannot_touch_is_refused_naming_both() {
    let reviewer = FakeReviewer::new(Mode::Table, &[]);
    let router = router_with(reviewer.clone(), Limits::default());
    let response = validate(&router, &review("CREATE", "mallory", &dataset(), None)).await;
    assert_eq!(
        denial(&response),
        format!(
            "TrainingDataset \"scraped\" is not compliant: A.8.3 Information access restriction: user \"mallory\" may not {SECRET} (spec.credentialsSecret), so Annexa will not grant reading it to service accounts [\"default\"] on their behalf; A.8.10 Information deletion: user \"mallory\" may not {PVC} (spec.source.pvc), so Annexa will not delete it when the retention expires on their behalf"
        )
    );
    assert_eq!(
        reviewer.asked(),
        [format!("mallory {SECRET}"), format!("mallory {PVC}")]
    );
}

#[tokio::test]
async fn a_dataset_is_admitted_when_the_author_holds_exactly_what_annexa_will_do() {
    let reviewer = FakeReviewer::new(Mode::Table, &[("alice", SECRET), ("alice", PVC)]);
    let router = router_with(reviewer.clone(), Limits::default());
    admitted_clean(&validate(&router, &review("CREATE", "alice", &dataset(), None)).await);
    // Holding only the Secret is not enough for the PVC.
    let reviewer = FakeReviewer::new(Mode::Table, &[("alice", SECRET)]);
    let router = router_with(reviewer, Limits::default());
    let message = denial(&validate(&router, &review("CREATE", "alice", &dataset(), None)).await);
    assert!(
        message.contains(&format!(
            "A.8.10 Information deletion: user \"alice\" may not {PVC}"
        )),
        "{message}"
    );
    assert!(!message.contains("A.8.3"), "{message}");
    // Nobody is granted the Secret and nothing is deleted: nothing to ask.
    let mut plain = dataset();
    plain["spec"]
        .as_object_mut()
        .unwrap()
        .remove("credentialsSecret");
    plain["spec"]["retention"] = json!({"period": "1d", "onExpiry": "Retain"});
    let reviewer = FakeReviewer::new(Mode::Table, &[]);
    let router = router_with(reviewer.clone(), Limits::default());
    admitted_clean(&validate(&router, &review("CREATE", "mallory", &plain, None)).await);
    assert!(reviewer.asked().is_empty());
}

#[tokio::test]
async fn an_agent_is_granted_only_what_its_author_holds_or_could_escalate_to() {
    // Without the permissions and without escalate: refused, naming each missing permission.
    let reviewer = FakeReviewer::new(Mode::Table, &[("bob", CONFIGMAP)]);
    let router = router_with(reviewer.clone(), Limits::default());
    let message = denial(&validate(&router, &review("CREATE", "bob", &agent(), None)).await);
    assert_eq!(
        message,
        format!(
            "AgentPolicy \"helper\" is not compliant: A.8.2 Privileged access rights: user \"bob\" may not {LOGS} (spec.permissions[1]), so Annexa will not grant it to service account \"helper\" on their behalf (or the user needs {ESCALATE})"
        )
    );
    assert_eq!(
        reviewer.asked(),
        [
            format!("bob {ESCALATE}"),
            format!("bob {CONFIGMAP}"),
            format!("bob {LOGS}")
        ]
    );
    // Holding every permission granted.
    let reviewer = FakeReviewer::new(Mode::Table, &[("bob", CONFIGMAP), ("bob", LOGS)]);
    let router = router_with(reviewer, Limits::default());
    admitted_clean(&validate(&router, &review("CREATE", "bob", &agent(), None)).await);
    // Or escalate on Roles (kube-apiserver's rule for writing Roles): one question.
    let reviewer = FakeReviewer::new(Mode::Table, &[("admin", ESCALATE)]);
    let router = router_with(reviewer.clone(), Limits::default());
    admitted_clean(&validate(&router, &review("CREATE", "admin", &agent(), None)).await);
    assert_eq!(reviewer.asked(), [format!("admin {ESCALATE}")]);
}

#[tokio::test]
async fn a_failing_or_silent_access_review_refuses_the_object() {
    let reviewer = FakeReviewer::new(Mode::Error, &[]);
    let router = router_with(reviewer, Limits::default());
    let message = denial(&validate(&router, &review("CREATE", "alice", &dataset(), None)).await);
    assert_eq!(
        message,
        format!(
            "TrainingDataset \"scraped\" is not compliant: A.8.3 Information access restriction: could not verify that user \"alice\" may {SECRET} (spec.credentialsSecret): subjectaccessreviews.authorization.k8s.io is forbidden; refused until it can be verified"
        )
    );
    // A review that never answers is cut off inside the webhook's own deadline: the API server
    // gets a refusal, not a timeout.
    let limits = Limits {
        deadline: Duration::from_millis(600),
        ..Limits::default()
    };
    let reviewer = FakeReviewer::new(Mode::Hang, &[]);
    let router = router_with(reviewer, limits);
    let message = denial(&validate(&router, &review("CREATE", "bob", &agent(), None)).await);
    assert!(
        message.starts_with(&format!(
            "AgentPolicy \"helper\" is not compliant: A.8.2 Privileged access rights: could not verify that user \"bob\" may {ESCALATE} (spec.permissions): no answer within "
        )),
        "{message}"
    );
}

#[tokio::test]
async fn nothing_is_cached_and_unchanged_specs_and_denied_objects_ask_nothing() {
    let reviewer = FakeReviewer::new(Mode::Table, &[("alice", SECRET), ("alice", PVC)]);
    let router = router_with(reviewer.clone(), Limits::default());
    let create = review("CREATE", "alice", &dataset(), None);
    admitted_clean(&validate(&router, &create).await);
    admitted_clean(&validate(&router, &create).await);
    assert_eq!(
        reviewer.asked().len(),
        4,
        "asked again for the second request"
    );
    // A metadata-only update does nothing new on anyone's behalf.
    let mut labelled = dataset();
    labelled["metadata"]["labels"] = json!({"team": "ml"});
    admitted_clean(
        &validate(
            &router,
            &review("UPDATE", "mallory", &labelled, Some(&dataset())),
        )
        .await,
    );
    assert_eq!(reviewer.asked().len(), 4);
    // An object the rules refuse anyway is refused without asking.
    let mut wildcard = agent();
    wildcard["spec"]["permissions"][0]["verbs"] = json!(["*"]);
    let message = denial(&validate(&router, &review("CREATE", "alice", &wildcard, None)).await);
    assert!(message.contains("forbidden verb \"*\""), "{message}");
    assert_eq!(reviewer.asked().len(), 4);
}

#[tokio::test]
async fn the_review_asks_as_the_requesting_user_with_uid_groups_and_extra() {
    let reviewer = FakeReviewer::new(Mode::Table, &[("alice", SECRET), ("alice", PVC)]);
    let router = router_with(reviewer.clone(), Limits::default());
    let mut rv = review("CREATE", "alice", &dataset(), None);
    rv["request"]["userInfo"] = json!({
        "username": "alice", "uid": "u-42", "groups": ["ml-team", "system:authenticated"],
        "extra": {"scopes.example.com": ["read", "write"]}
    });
    admitted_clean(&validate(&router, &rv).await);
    let asked = reviewer.asked.lock().unwrap();
    let (user, check) = &asked[0];
    let sar = subject_access_review(user, check);
    let spec = serde_json::to_value(&sar.spec).unwrap();
    assert_eq!(
        spec,
        json!({
            "user": "alice", "uid": "u-42", "groups": ["ml-team", "system:authenticated"],
            "extra": {"scopes.example.com": ["read", "write"]},
            "resourceAttributes": {"namespace": "ml-dev", "verb": "get", "group": "",
                                   "resource": "secrets", "name": "payments-db"}
        })
    );
    assert_eq!(
        user.extra,
        BTreeMap::from([(
            "scopes.example.com".to_string(),
            vec!["read".to_string(), "write".to_string()]
        )])
    );
}
