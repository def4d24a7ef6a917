//! The pure rule engine. No client, no I/O, no clock: the caller passes the object, the
//! namespace's [`Profile`], a [`Lookup`] over related objects and the current time.
//!
//! The webhook, the controllers and `annexa check` all call [`evaluate`], so they can never
//! disagree.

pub mod agent_policy;
pub mod catalogue;
pub mod delegation;
pub mod duration;
pub mod gpu;
pub mod image;
pub mod model_approval;
pub mod model_deployment;
pub mod pod_access;
pub mod profile;
pub mod training_dataset;
pub mod workload;

pub use catalogue::{CATALOGUE, Control, Theme};
pub use image::{ImageRef, RegistryRefusal, image_mutable, image_pinned, registry_allowed};
pub use profile::{Profile, selector_matches, validate_policy};

use crate::api::{
    Action, AgentPolicy, ControlOutcome, ControlResult, ModelApproval, ModelDeployment,
    TrainingDataset,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Identifies an object in findings and reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// A failed control: what the webhook denies or warns about and what status reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Annex A control identifier, e.g. `A.8.24`.
    pub control: &'static str,
    pub action: Action,
    /// Shared by every finding of the evaluation (a finding costs no copy of the names).
    #[serde(serialize_with = "serialize_shared")]
    pub object: Arc<ObjectRef>,
    /// Field path of the offending value, e.g. `spec.encryption.kmsKey`.
    pub path: String,
    /// Names the control: `A.8.24 Use of cryptography: dataset "claims" is ...`.
    pub message: String,
}

/// Serialises a shared object as the object itself (what serde's `rc` feature would do).
fn serialize_shared<S: serde::Serializer>(
    object: &Arc<ObjectRef>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    object.as_ref().serialize(serializer)
}

/// The result of one control on one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub control: &'static Control,
    pub result: ControlOutcome,
    pub message: String,
}

/// Everything the engine concluded about one object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    #[serde(serialize_with = "serialize_shared")]
    pub object: Arc<ObjectRef>,
    /// One entry per control evaluated on the object's kind, in catalogue order.
    pub outcomes: Vec<Outcome>,
    /// Failed controls that were not excepted.
    pub findings: Vec<Finding>,
}

impl Evaluation {
    /// Findings with the Enforce action (denied at admission; `annexa check` exits 1).
    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.action == Action::Enforce)
    }

    pub fn is_compliant(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn outcome(&self, control: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.control.id == control)
    }

    /// The outcomes as `status.controls` entries.
    pub fn control_results(&self) -> Vec<ControlResult> {
        self.outcomes
            .iter()
            .map(|o| ControlResult {
                id: o.control.id.to_string(),
                title: o.control.title.to_string(),
                result: o.result,
                message: o.message.clone(),
            })
            .collect()
    }
}

/// Related objects the cross-object rules read. Implemented over reflector stores in the
/// cluster and over the parsed files in `annexa check`.
pub trait Lookup {
    fn dataset(&self, namespace: &str, name: &str) -> Option<Arc<TrainingDataset>>;
    fn model(&self, namespace: &str, name: &str) -> Option<Arc<ModelDeployment>>;
    /// ModelApprovals naming this ModelDeployment.
    fn approvals(&self, namespace: &str, model: &str) -> Vec<Arc<ModelApproval>>;
    /// The AgentPolicy governing this service account, if any; when several name it, the one
    /// [`agent_policy::governing_agent`] picks.
    fn agent_for_service_account(&self, namespace: &str, sa: &str) -> Option<Arc<AgentPolicy>>;
    /// Every AgentPolicy of the namespace (their pod selectors), looked up by namespace.
    fn agents_in(&self, namespace: &str) -> Vec<Arc<AgentPolicy>>;
    /// Datasets whose `credentialsSecret` is this Secret, looked up by namespace and name.
    fn datasets_by_secret(&self, namespace: &str, secret: &str) -> Vec<Arc<TrainingDataset>>;
    /// Datasets whose `source.pvc` is this claim, looked up by namespace and name.
    fn datasets_by_claim(&self, namespace: &str, claim: &str) -> Vec<Arc<TrainingDataset>>;
    /// A ResourceClaim (the GPU rules read its requests' DeviceClass names). None: not known,
    /// which the rules treat as a GPU request (fail closed).
    fn resource_claim(&self, _namespace: &str, _name: &str) -> Option<Arc<ResourceClaim>> {
        None
    }
    /// A ResourceClaimTemplate, as [`Lookup::resource_claim`].
    fn resource_claim_template(
        &self,
        _namespace: &str,
        _name: &str,
    ) -> Option<Arc<ResourceClaimTemplate>> {
        None
    }
    /// A Node (its labels and taints say which GPU pool it belongs to). None: not known, and a
    /// pod pinned to it counts as pinned to a GPU node (fail closed).
    fn node(&self, _name: &str) -> Option<Arc<Node>> {
        None
    }
}

/// Objects the rules resolve but do not evaluate: the DRA claims and templates pods name, and
/// the nodes they pin (read from `annexa check`'s input and `--context` files).
#[derive(Clone, Debug)]
pub enum Related {
    Claim(Box<ResourceClaim>),
    ClaimTemplate(Box<ResourceClaimTemplate>),
    Node(Box<Node>),
}

/// An object of a namespace, by `(namespace, name)`.
pub type NamespacedName = (String, String);

/// The Secret and the claim a dataset is read through, as index keys.
pub fn dataset_read_keys(d: &TrainingDataset) -> (Option<NamespacedName>, Option<NamespacedName>) {
    let namespace = d.metadata.namespace.clone().unwrap_or_default();
    let named = |name: Option<&String>| {
        name.filter(|n| !n.is_empty())
            .map(|n| (namespace.clone(), n.clone()))
    };
    (
        named(d.spec.credentials_secret.as_ref()),
        named(d.spec.source.pvc.as_ref()),
    )
}

/// A [`Lookup`] over objects held in memory (used by `annexa check` and tests).
#[derive(Default, Clone, Debug)]
pub struct Inventory {
    pub datasets: BTreeMap<(String, String), Arc<TrainingDataset>>,
    pub models: BTreeMap<(String, String), Arc<ModelDeployment>>,
    pub approvals: Vec<Arc<ModelApproval>>,
    pub agents: Vec<Arc<AgentPolicy>>,
    /// Dataset names by `(namespace, credentials Secret)` and by `(namespace, claim)`.
    by_secret: BTreeMap<(String, String), Vec<String>>,
    by_claim: BTreeMap<(String, String), Vec<String>>,
    pub resource_claims: BTreeMap<(String, String), Arc<ResourceClaim>>,
    pub resource_claim_templates: BTreeMap<(String, String), Arc<ResourceClaimTemplate>>,
    pub nodes: BTreeMap<String, Arc<Node>>,
}

fn key(namespace: Option<&String>, name: Option<&String>) -> (String, String) {
    (
        namespace.cloned().unwrap_or_default(),
        name.cloned().unwrap_or_default(),
    )
}

impl Inventory {
    pub fn add_dataset(&mut self, d: TrainingDataset) {
        let k = key(d.metadata.namespace.as_ref(), d.metadata.name.as_ref());
        let (secret, claim) = dataset_read_keys(&d);
        for (index, read) in [(&mut self.by_secret, secret), (&mut self.by_claim, claim)] {
            if let Some(read) = read {
                let names = index.entry(read).or_default();
                if !names.contains(&k.1) {
                    names.push(k.1.clone());
                }
            }
        }
        self.datasets.insert(k, Arc::new(d));
    }

    /// The datasets an index names that still read through `read` (a replaced dataset may
    /// have left its old Secret or claim behind).
    fn datasets_indexed(
        &self,
        index: &BTreeMap<(String, String), Vec<String>>,
        read: (&str, &str),
        still: impl Fn(&TrainingDataset) -> bool,
    ) -> Vec<Arc<TrainingDataset>> {
        let (namespace, name) = read;
        index
            .get(&(namespace.to_string(), name.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|d| self.dataset(namespace, d))
            .filter(|d| still(d))
            .collect()
    }
    pub fn add_model(&mut self, m: ModelDeployment) {
        let k = key(m.metadata.namespace.as_ref(), m.metadata.name.as_ref());
        self.models.insert(k, Arc::new(m));
    }
    pub fn add_approval(&mut self, a: ModelApproval) {
        self.approvals.push(Arc::new(a));
    }
    pub fn add_agent(&mut self, a: AgentPolicy) {
        self.agents.push(Arc::new(a));
    }
    /// Adds a ResourceClaim, ResourceClaimTemplate or Node the GPU rules resolve.
    pub fn add_related(&mut self, related: Related) {
        match related {
            Related::Claim(c) => {
                let k = key(c.metadata.namespace.as_ref(), c.metadata.name.as_ref());
                self.resource_claims.insert(k, Arc::new(*c));
            }
            Related::ClaimTemplate(t) => {
                let k = key(t.metadata.namespace.as_ref(), t.metadata.name.as_ref());
                self.resource_claim_templates.insert(k, Arc::new(*t));
            }
            Related::Node(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                self.nodes.insert(name, Arc::new(*n));
            }
        }
    }
}

impl Lookup for Inventory {
    fn dataset(&self, namespace: &str, name: &str) -> Option<Arc<TrainingDataset>> {
        self.datasets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
    fn model(&self, namespace: &str, name: &str) -> Option<Arc<ModelDeployment>> {
        self.models
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
    fn approvals(&self, namespace: &str, model: &str) -> Vec<Arc<ModelApproval>> {
        self.approvals
            .iter()
            .filter(|a| {
                a.metadata.namespace.as_deref() == Some(namespace)
                    && a.spec.model_deployment == model
            })
            .cloned()
            .collect()
    }
    fn agent_for_service_account(&self, namespace: &str, sa: &str) -> Option<Arc<AgentPolicy>> {
        agent_policy::governing_agent(&self.agents, namespace, sa)
    }
    fn resource_claim(&self, namespace: &str, name: &str) -> Option<Arc<ResourceClaim>> {
        self.resource_claims
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
    fn resource_claim_template(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<ResourceClaimTemplate>> {
        self.resource_claim_templates
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
    fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes.get(name).cloned()
    }
    fn agents_in(&self, namespace: &str) -> Vec<Arc<AgentPolicy>> {
        self.agents
            .iter()
            .filter(|a| a.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect()
    }
    fn datasets_by_secret(&self, namespace: &str, secret: &str) -> Vec<Arc<TrainingDataset>> {
        self.datasets_indexed(&self.by_secret, (namespace, secret), |d| {
            d.spec.credentials_secret.as_deref() == Some(secret)
        })
    }
    fn datasets_by_claim(&self, namespace: &str, claim: &str) -> Vec<Arc<TrainingDataset>> {
        self.datasets_indexed(&self.by_claim, (namespace, claim), |d| {
            d.spec.source.pvc.as_deref() == Some(claim)
        })
    }
}

/// How much an evaluation records. The rules are the same in both: only what is kept differs,
/// so the findings are identical (a test evaluates every fixture both ways).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// Findings and one outcome with its message per control of the kind: what the controllers
    /// write into `status.controls` and what `annexa check` prints.
    #[default]
    Outcomes,
    /// Findings only (`Evaluation::outcomes` is empty): all admission answers with, without
    /// formatting a note for every passing or not-applicable control.
    Findings,
}

/// What the rules are evaluated against.
pub struct Context<'a> {
    pub profile: &'a Profile,
    pub lookup: &'a dyn Lookup,
    pub now: Timestamp,
    pub detail: Detail,
}

/// An object the engine evaluates.
#[derive(Clone, Copy)]
pub enum Governed<'a> {
    Dataset(&'a TrainingDataset),
    Model(&'a ModelDeployment),
    Approval(&'a ModelApproval),
    Agent(&'a AgentPolicy),
    Workload(&'a workload::Workload),
}

/// Evaluates every control that applies to the object.
pub fn evaluate(object: Governed<'_>, ctx: &Context<'_>) -> Evaluation {
    match object {
        Governed::Dataset(d) => training_dataset::evaluate(d, ctx),
        Governed::Model(m) => model_deployment::evaluate(m, ctx),
        Governed::Approval(a) => model_approval::evaluate(a, ctx),
        Governed::Agent(a) => agent_policy::evaluate(a, ctx),
        Governed::Workload(w) => workload::evaluate(w, ctx),
    }
}

/// A failed control as the rules recorded it.
struct Failure {
    control: &'static Control,
    /// Position of the control in the catalogue: findings come out in catalogue order.
    order: usize,
    path: String,
    /// The whole message: `"<id> <title>: <detail>"`.
    message: String,
    cap: Option<Action>,
}

/// Collects the results of the rules for one object, then applies actions and exceptions.
///
/// Notes for passing and not-applicable controls take `impl Display` (pass `format_args!`) so
/// that they are formatted only when outcomes are recorded ([`Detail::Outcomes`]).
pub(crate) struct Recorder<'a> {
    kind: &'static str,
    object: Arc<ObjectRef>,
    ctx: &'a Context<'a>,
    failures: Vec<Failure>,
    not_applicable: Vec<(&'static str, String)>,
    passes: Vec<(&'static str, String)>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(kind: &'static str, object: ObjectRef, ctx: &'a Context<'a>) -> Self {
        Self {
            kind,
            object: Arc::new(object),
            ctx,
            failures: Vec::new(),
            not_applicable: Vec::new(),
            passes: Vec::new(),
        }
    }

    fn outcomes_recorded(&self) -> bool {
        self.ctx.detail == Detail::Outcomes
    }

    /// Records a failure; `detail` is appended to `"<id> <title>: "`.
    pub(crate) fn fail(
        &mut self,
        control: &'static Control,
        path: impl Into<String>,
        detail: impl fmt::Display,
    ) {
        self.push_failure(control, path.into(), detail, None);
    }

    /// Records a failure whose action is capped (the promotion gate never denies: the
    /// controller holds the rollout instead).
    pub(crate) fn fail_capped(
        &mut self,
        control: &'static Control,
        path: impl Into<String>,
        detail: impl fmt::Display,
        cap: Action,
    ) {
        self.push_failure(control, path.into(), detail, Some(cap));
    }

    fn push_failure(
        &mut self,
        control: &'static Control,
        path: String,
        detail: impl fmt::Display,
        cap: Option<Action>,
    ) {
        use fmt::Write as _;
        // Room for a typical detail: most messages are written without growing the buffer.
        let mut message = String::with_capacity(control.id.len() + control.title.len() + 192);
        // Writing into a String cannot fail.
        let _ = write!(message, "{} {}: {detail}", control.id, control.title);
        self.failures.push(Failure {
            control,
            order: CATALOGUE
                .iter()
                .position(|c| c.id == control.id)
                .unwrap_or(usize::MAX),
            path,
            message,
            cap,
        });
    }

    pub(crate) fn not_applicable(&mut self, control: &'static Control, why: impl fmt::Display) {
        if self.outcomes_recorded() {
            self.not_applicable.push((control.id, why.to_string()));
        }
    }

    /// A message for a passing control (e.g. the derived classification).
    pub(crate) fn pass_note(&mut self, control: &'static Control, note: impl fmt::Display) {
        if self.outcomes_recorded() {
            self.passes.push((control.id, note.to_string()));
        }
    }

    fn excepted(&self, control: &str) -> Option<&str> {
        self.ctx.profile.exceptions.iter().find_map(|e| {
            let applies = e.control == control
                && e.kind
                    .as_deref()
                    .is_none_or(|k| k == self.kind || k == self.object.kind)
                && e.name.as_deref().is_none_or(|n| n == self.object.name)
                && e.expires.as_ref().is_none_or(|t| t.0 > self.ctx.now);
            applies.then_some(e.reason.as_str())
        })
    }

    /// Applies actions and exceptions. Findings are built the same way whatever the
    /// [`Detail`]; outcomes are then read from them.
    pub(crate) fn finish(mut self) -> Evaluation {
        let outcomes_recorded = self.outcomes_recorded();
        let mut outcomes = Vec::new();
        let mut findings = Vec::with_capacity(self.failures.len());
        let mut failures = std::mem::take(&mut self.failures);
        // Stable: failures of one control keep the order the rules recorded them in.
        failures.sort_by_key(|f| f.order);
        let mut failures = failures.into_iter().peekable();
        for (order, control) in CATALOGUE
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kinds.contains(&self.kind))
        {
            // Failures of controls not evaluated on this kind are dropped.
            while failures.next_if(|f| f.order < order).is_some() {}
            let first = findings.len();
            let action = self.ctx.profile.action(control.id);
            while let Some(failure) = failures.next_if(|f| f.order == order) {
                findings.push(Finding {
                    control: failure.control.id,
                    action: failure.cap.map_or(action, |cap| action.min(cap)),
                    object: self.object.clone(),
                    path: failure.path,
                    message: failure.message,
                });
            }
            if findings.len() > first {
                let excepted = self.excepted(control.id);
                if outcomes_recorded {
                    let messages = join_messages(&findings[first..]);
                    outcomes.push(match excepted {
                        Some(reason) => Outcome {
                            control,
                            result: ControlOutcome::Excepted,
                            message: format!("excepted by policy ({reason}): {messages}"),
                        },
                        None => Outcome {
                            control,
                            result: ControlOutcome::Fail,
                            message: messages,
                        },
                    });
                }
                if excepted.is_some() {
                    findings.truncate(first);
                }
            } else if outcomes_recorded {
                let outcome = match self.not_applicable.iter_mut().find(|n| n.0 == control.id) {
                    Some((_, why)) => Outcome {
                        control,
                        result: ControlOutcome::NotApplicable,
                        message: std::mem::take(why),
                    },
                    None => Outcome {
                        control,
                        result: ControlOutcome::Pass,
                        message: self
                            .passes
                            .iter_mut()
                            .find(|p| p.0 == control.id)
                            .map(|p| std::mem::take(&mut p.1))
                            .unwrap_or_default(),
                    },
                };
                outcomes.push(outcome);
            }
        }
        Evaluation {
            object: self.object,
            outcomes,
            findings,
        }
    }
}

fn join_messages(findings: &[Finding]) -> String {
    let mut joined = String::new();
    for (i, finding) in findings.iter().enumerate() {
        if i > 0 {
            joined.push_str("; ");
        }
        joined.push_str(&finding.message);
    }
    joined
}

#[cfg(test)]
pub(crate) mod tests;
