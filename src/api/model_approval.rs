//! ModelApproval (namespaced): one reviewer's decision on one release of one model (A.8.32,
//! A.5.3), bound to the model's UID.
//! Immutable once created: the CRD carries `self == oldSelf` on `spec`, so this holds even when
//! the webhook is down.

use super::common::CommonStatus;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "annexa.dev",
    version = "v1alpha1",
    kind = "ModelApproval",
    namespaced,
    shortname = "mapr",
    category = "annexa",
    status = "ModelApprovalStatus",
    doc = "A reviewer's decision on one release of a model; immutable once created.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.modelDeployment"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".spec.decision"),
    printcolumn(
        name = "Approver",
        type_ = "string",
        json_path = ".spec.approver.username"
    ),
    printcolumn(
        name = "Counted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Counted\")].status"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.release.version"
    ),
    printcolumn(
        name = "Release",
        type_ = "string",
        priority = 1,
        json_path = ".spec.release.fingerprint"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: create a new ModelApproval instead"))]
#[serde(rename_all = "camelCase")]
pub struct ModelApprovalSpec {
    /// Name of the ModelDeployment (same namespace) this decision is about.
    #[schemars(length(min = 1))]
    pub model_deployment: String,
    /// UID of that ModelDeployment: an approval does not carry over to another object that
    /// later takes the same name.
    #[serde(rename = "modelUID")]
    #[schemars(length(min = 1, max = 64))]
    pub model_uid: String,
    /// The exact release approved or rejected (`annexa approve` fills it from the model's
    /// `status.pendingRelease`).
    pub release: ApprovedRelease,
    pub decision: ApprovalDecision,
    /// Why; required for a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who decided: the user creating the object, and only groups that user is in (checked
    /// against the request by the webhook and by a ValidatingAdmissionPolicy).
    pub approver: Approver,
}

/// The release a decision is about: its fingerprint, which is what counts, and the readable parts
/// the reviewer saw.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedRelease {
    /// Release fingerprint (`status.pendingRelease.fingerprint` of the model).
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub fingerprint: String,
    /// Weights digest of the release.
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub digest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 128))]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512))]
    pub image: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalDecision {
    Approve,
    Reject,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Approver {
    #[schemars(length(min = 1))]
    pub username: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
/// Observed state, written by the Annexa controller.
#[serde(rename_all = "camelCase")]
pub struct ModelApprovalStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
}
