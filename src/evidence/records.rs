//! The records evidence is written from: what `annexa check` evaluated in manifests
//! ([`Report`]) and what the controllers wrote into the status of objects in a cluster
//! ([`Observed`]). `annexa check` and `annexa report` fill them; the writers of this module
//! (SARIF, OSCAL, the Statement of Applicability; the JUnit report of `annexa check`) read them.

use crate::api::ControlResult;
use crate::manifest::Origin;
use crate::policy::{Evaluation, ObjectRef};
use serde::Serialize;

/// One evaluated object.
#[derive(Debug, Serialize)]
pub struct Checked {
    #[serde(skip)]
    pub origin: Origin,
    pub file: String,
    /// Which policies were applied, and why.
    #[serde(rename = "appliedPolicies")]
    pub applied: Applied,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// The policies applied to an object and why (where its namespace's labels came from).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub namespace: String,
    /// The CompliancePolicies that select the namespace; empty: the built-in baseline.
    pub policies: Vec<String>,
    /// One sentence: what was applied and why.
    pub reason: String,
}

/// An object of a kind Annexa does not govern, or a workload outside an enforced namespace.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub file: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

/// Why something in the input was not checked although it may matter (`--strict` fails).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GapKind {
    /// An AI-serving or training kind Annexa does not read (KServe, LeaderWorkerSet, Ray...).
    AiKind,
    /// A workload kind in an API version Annexa does not read.
    WorkloadVersion,
    /// An object of a kind Annexa does not read that asks for GPUs.
    GpuRequest,
    /// A CompliancePolicy given with `--policy` that selects none of the checked namespaces.
    PolicySelectsNothing,
    /// The input holds no object Annexa evaluates.
    NothingEvaluated,
}

/// Something not checked that could hide a failure.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub kind: GapKind,
    /// `InferenceService/ml/llm`, `CompliancePolicy/production`, or `input`.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip)]
    pub origin: Option<Origin>,
    pub message: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub objects: usize,
    pub compliant: usize,
    pub enforce: usize,
    pub warn: usize,
    pub audit: usize,
    pub skipped: usize,
    pub not_checked: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub summary: Summary,
    pub objects: Vec<Checked>,
    pub skipped: Vec<Skipped>,
    /// What was not checked although it may matter: each fails the check with `--strict`.
    pub not_checked: Vec<Gap>,
    /// Whether `--strict` was given (the not-checked entries fail the check).
    pub strict: bool,
}

impl Report {
    /// 0: no Enforce finding (and, with `--strict`, nothing left unchecked); 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.summary.enforce > 0 || (self.strict && !self.not_checked.is_empty()) {
            1
        } else {
            0
        }
    }
}

/// One object's evaluated controls as read from its status.
pub struct Observed {
    pub object: ObjectRef,
    /// False when the status is missing or older than the spec.
    pub current: bool,
    pub controls: Vec<ControlResult>,
    /// Since when the results stand: the last transition of the `Compliant` condition.
    pub since: Option<String>,
}
