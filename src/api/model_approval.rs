//! ModelApproval (namespaced): one reviewer's decision on one model digest (A.8.32, A.5.3).
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
    doc = "A reviewer's decision on one model digest; immutable once created.",
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
        name = "Digest",
        type_ = "string",
        priority = 1,
        json_path = ".spec.digest"
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
    /// The exact weights digest approved or rejected.
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub digest: String,
    pub decision: ApprovalDecision,
    /// Why; required for a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who decided: must be the user creating the object.
    pub approver: Approver,
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
