//! Shared fixtures: decoding inline YAML, a world (profile + related objects + clock) to
//! evaluate in, and assertions on outcomes and findings.
//!
//! The rules sit below decoding, so fixtures are read here with serde alone, as strictly as
//! `annexa check` reads files (a field the type does not have fails the test: a misspelt
//! fixture cannot pass by being ignored). Decoding itself is tested in `decode`.

use crate::api::{
    Action, AgentPolicy, CompliancePolicy, ControlOutcome, ModelApproval, ModelDeployment,
    TrainingDataset,
};
use crate::policy::workload::{PodView, Workload, workload_kind};
use crate::policy::{
    Context, Detail, Evaluation, Finding, Governed, Inventory, Profile, Related, evaluate,
};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The fixed "current time" of every test.
pub const NOW: &str = "2025-06-01T12:00:00Z";

pub fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// `now` shifted by whole hours (negative: in the past), as RFC 3339.
pub fn hours_from_now(hours: i64) -> String {
    now()
        .checked_add(SignedDuration::from_hours(hours))
        .unwrap()
        .to_string()
}

/// Weights digest of the model under test and another one.
pub const DIGEST: &str = "sha256:a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4";
pub const OTHER_DIGEST: &str =
    "sha256:e5f60718e5f60718e5f60718e5f60718e5f60718e5f60718e5f60718e5f60718";

/// A decoded fixture.
#[derive(Debug)]
pub enum Object {
    Policy(CompliancePolicy),
    Dataset(TrainingDataset),
    Model(ModelDeployment),
    Approval(ModelApproval),
    Agent(AgentPolicy),
    Workload(Workload),
    Related(Related),
}

/// Decodes one YAML document: strictly (unknown fields fail) for typed kinds, a namespaced
/// object without a namespace in `default`, as `annexa check` reads files.
fn decode(yaml: &str) -> Object {
    let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    match kind.as_str() {
        "CompliancePolicy" => Object::Policy(strict(&value)),
        "TrainingDataset" => Object::Dataset(namespaced(strict(&value))),
        "ModelDeployment" => Object::Model(namespaced(strict(&value))),
        "ModelApproval" => Object::Approval(namespaced(strict(&value))),
        "AgentPolicy" => Object::Agent(namespaced(strict(&value))),
        "ResourceClaim" => Object::Related(Related::Claim(Box::new(namespaced(strict(&value))))),
        "ResourceClaimTemplate" => {
            Object::Related(Related::ClaimTemplate(Box::new(namespaced(strict(&value)))))
        }
        "Node" => Object::Related(Related::Node(Box::new(strict(&value)))),
        _ => Object::Workload(workload_of(&kind, &value)),
    }
}

fn strict<T: DeserializeOwned>(value: &Value) -> T {
    let mut unknown = Vec::new();
    let object = serde_ignored::deserialize(value, |path| {
        let path = path.to_string();
        let server_side = path.starts_with("metadata.") || path.starts_with("status.");
        if !server_side && path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    })
    .unwrap_or_else(|e| panic!("fixture does not decode: {e}\n{value:#}"));
    assert!(unknown.is_empty(), "fixture has unknown fields {unknown:?}");
    object
}

fn namespaced<K: kube::Resource>(mut object: K) -> K {
    object
        .meta_mut()
        .namespace
        .get_or_insert_with(|| "default".to_string());
    object
}

/// A Pod or the pod template of a workload kind, as the rules see it.
fn workload_of(kind: &str, value: &Value) -> Workload {
    let entry =
        workload_kind(kind).unwrap_or_else(|| panic!("not a kind the fixtures read: {kind}"));
    let pod = (entry.template.iter()).fold(value, |node, segment| &node[segment]);
    let text = |field: &str| value["metadata"][field].as_str().unwrap_or_default();
    let name = [text("name"), text("generateName")]
        .into_iter()
        .find(|n| !n.is_empty());
    Workload {
        kind: kind.to_string(),
        spec_path: entry.spec_path(),
        namespace: Some(text("namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string(),
        name: name.unwrap_or_default().to_string(),
        labels: match &pod["metadata"]["labels"] {
            Value::Null => Default::default(),
            labels => Deserialize::deserialize(labels).unwrap(),
        },
        pod: PodView::deserialize(&pod["spec"]).unwrap(),
    }
}

/// A Pod or workload fixture.
pub fn workload(yaml: &str) -> Workload {
    match object(yaml) {
        Object::Workload(w) => w,
        other => panic!("not a workload: {other:?}"),
    }
}

/// Decodes a fixture. A ModelDeployment whose `annexa.dev/requested-release` annotation is
/// `CURRENT` gets the fingerprint of its own release there, as the mutating webhook records it
/// when the annotated user writes the release; an approval whose release fingerprint is a weights
/// digest (`DIGEST`, `OTHER_DIGEST`) approves the release of `FRAUD` with those weights.
pub fn object(yaml: &str) -> Object {
    let mut object = decode(yaml);
    match &mut object {
        Object::Model(m) => {
            let release = m.spec.release().fingerprint();
            if let Some(recorded) = m
                .metadata
                .annotations
                .as_mut()
                .and_then(|a| a.get_mut(crate::api::REQUESTED_RELEASE))
                .filter(|r| *r == "CURRENT")
            {
                *recorded = release;
            }
        }
        Object::Approval(a)
            if a.spec.release.fingerprint == DIGEST
                || a.spec.release.fingerprint == OTHER_DIGEST =>
        {
            let digest = a.spec.release.fingerprint.clone();
            a.spec.release.fingerprint = fraud_release(&digest);
        }
        _ => {}
    }
    object
}

/// The release fingerprint of the `FRAUD` model with these weights.
pub fn fraud_release(digest: &str) -> String {
    let yaml = super::model_deployment::FRAUD.replace(DIGEST, digest);
    match object(&yaml) {
        Object::Model(m) => m.spec.release().fingerprint(),
        other => panic!("FRAUD is not a model: {other:?}"),
    }
}

pub fn policy(yaml: &str) -> CompliancePolicy {
    match object(yaml) {
        Object::Policy(p) => p,
        other => panic!("expected a CompliancePolicy, got {other:?}"),
    }
}

/// Applies textual edits to a fixture; every `from` must occur, so a stale edit fails loudly.
pub fn edit(base: &str, edits: &[(&str, &str)]) -> String {
    let mut text = base.to_string();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "edit target {from:?} not in fixture:\n{text}"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// The production policy most tests evaluate under: strict registries, KMS prefixes, regions,
/// two approvals from `ml-reviewers`, and GPU pools for Confidential and Restricted data only.
pub const PRODUCTION: &str = r#"
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: production
spec:
  namespaceSelector:
    matchLabels:
      annexa.dev/environment: production
  environment: Production
  enforcement:
    action: Enforce
  gpu:
    pools:
      - classification: Confidential
        nodeSelector:
          gpu.example.com/pool: confidential
        taint:
          key: gpu.example.com/pool
          value: confidential
          effect: NoSchedule
        runtimeClassName: nvidia
      - classification: Restricted
        nodeSelector:
          gpu.example.com/pool: restricted
        taint:
          key: gpu.example.com/pool
          value: restricted
          effect: NoSchedule
        runtimeClassName: kata-nvidia
  images:
    allowedRegistries: ["registry.example.com/"]
    requireDigest: true
  encryption:
    requireKmsFrom: Confidential
    allowedKeyPrefixes: ["arn:aws:kms:eu-west-1:"]
    encryptedStorageClasses: [gp3-encrypted]
  residency:
    allowedRegions: [eu-west-1, eu-central-1]
  promotion:
    requiredApprovals: 2
    approvalTTL: 7d
    approverGroups: [ml-reviewers]
  agents:
    maxTokenTTL: 1h
  retention:
    maxRetention: 365d
"#;

/// A profile, the related objects and the clock: everything a rule reads besides the object.
pub struct World {
    pub profile: Profile,
    pub inventory: Inventory,
    pub now: Timestamp,
}

impl World {
    /// No policy selects the namespace: the built-in baseline.
    pub fn baseline() -> Self {
        Self {
            profile: Profile::baseline(),
            inventory: Inventory::default(),
            now: now(),
        }
    }

    /// The merge of these policies (as if all of them select the namespace).
    pub fn with_policies(yamls: &[&str]) -> Self {
        let policies: Vec<CompliancePolicy> = yamls.iter().map(|y| policy(y)).collect();
        let refs: Vec<&CompliancePolicy> = policies.iter().collect();
        Self {
            profile: Profile::merge(&refs),
            inventory: Inventory::default(),
            now: now(),
        }
    }

    pub fn production() -> Self {
        Self::with_policies(&[PRODUCTION])
    }

    /// Adds a related object (dataset, model, approval, agent, claim, claim template or node)
    /// to the snapshot.
    pub fn with(mut self, yaml: &str) -> Self {
        match object(yaml) {
            Object::Dataset(d) => self.inventory.add_dataset(d),
            Object::Model(m) => self.inventory.add_model(m),
            Object::Approval(a) => self.inventory.add_approval(a),
            Object::Agent(a) => self.inventory.add_agent(a),
            Object::Related(r) => self.inventory.add_related(r),
            other => panic!("not a related object: {other:?}"),
        }
        self
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            profile: &self.profile,
            lookup: &self.inventory,
            now: self.now,
            detail: Detail::Outcomes,
        }
    }

    /// Decodes and evaluates one object, checking that admission (findings only) concludes
    /// exactly what the controllers and `annexa check` conclude.
    pub fn eval(&self, yaml: &str) -> Evaluation {
        let object = object(yaml);
        let governed = match &object {
            Object::Dataset(d) => Governed::Dataset(d),
            Object::Model(m) => Governed::Model(m),
            Object::Approval(a) => Governed::Approval(a),
            Object::Agent(a) => Governed::Agent(a),
            Object::Workload(w) => Governed::Workload(w),
            other => panic!("not a governed object: {other:?}"),
        };
        let full = evaluate(governed, &self.context());
        assert_same_findings(&full, governed, &self.context());
        full
    }
}

/// Evaluates `object` again with [`Detail::Findings`] (what the webhook does) and asserts the
/// findings are identical to `full`'s, and that no outcome was built.
#[track_caller]
pub fn assert_same_findings(full: &Evaluation, object: Governed<'_>, ctx: &Context<'_>) {
    let admission = evaluate(
        object,
        &Context {
            profile: ctx.profile,
            lookup: ctx.lookup,
            now: ctx.now,
            detail: Detail::Findings,
        },
    );
    assert_eq!(admission.findings, full.findings, "{}", full.object);
    assert_eq!(admission.object, full.object);
    assert!(admission.outcomes.is_empty(), "{}", full.object);
}

/// An expected finding: control, field path, action, full message.
pub type Expected<'a> = (&'a str, &'a str, Action, &'a str);

/// A table row: name, textual edits of the fixture, expected findings.
pub type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [Expected<'a>]);

fn describe(e: &Evaluation) -> String {
    let mut out = String::new();
    for o in &e.outcomes {
        out.push_str(&format!(
            "  {} {:?}: {}\n",
            o.control.id, o.result, o.message
        ));
    }
    for f in &e.findings {
        out.push_str(&format!(
            "  finding {} {:?} at {}: {}\n",
            f.control, f.action, f.path, f.message
        ));
    }
    out
}

/// The findings are exactly these (in catalogue order), and each control with a finding
/// has the outcome Fail.
#[track_caller]
pub fn assert_findings(e: &Evaluation, expected: &[Expected<'_>]) {
    let actual: Vec<(&str, &str, Action, &str)> = e
        .findings
        .iter()
        .map(|f: &Finding| (f.control, f.path.as_str(), f.action, f.message.as_str()))
        .collect();
    assert_eq!(
        actual,
        expected,
        "evaluation of {}:\n{}",
        e.object,
        describe(e)
    );
    for (control, ..) in expected {
        assert_outcome(e, control, ControlOutcome::Fail);
    }
}

#[track_caller]
pub fn assert_outcome(e: &Evaluation, control: &str, expected: ControlOutcome) {
    let outcome = e
        .outcome(control)
        .unwrap_or_else(|| panic!("{control} not evaluated on {}:\n{}", e.object, describe(e)));
    assert_eq!(
        outcome.result,
        expected,
        "{control} on {}:\n{}",
        e.object,
        describe(e)
    );
}

/// The outcome and its message.
#[track_caller]
pub fn assert_outcome_message(
    e: &Evaluation,
    control: &str,
    expected: ControlOutcome,
    message: &str,
) {
    assert_outcome(e, control, expected);
    assert_eq!(
        e.outcome(control).map(|o| o.message.as_str()),
        Some(message)
    );
}

/// No findings at all, and these controls were evaluated in this order.
#[track_caller]
pub fn assert_clean(e: &Evaluation, controls: &[&str]) {
    assert!(
        e.findings.is_empty(),
        "expected no findings on {}:\n{}",
        e.object,
        describe(e)
    );
    let ids: Vec<&str> = e.outcomes.iter().map(|o| o.control.id).collect();
    assert_eq!(ids, controls, "controls evaluated on {}", e.object);
    assert!(
        e.outcomes.iter().all(|o| matches!(
            o.result,
            ControlOutcome::Pass | ControlOutcome::NotApplicable
        )),
        "{}",
        describe(e)
    );
}
