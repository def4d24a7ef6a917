//! The Annexa API: group `annexa.dev`, version `v1alpha1`. One file per kind, plus the
//! types every kind shares (classification, conditions, control results) and the one table of
//! the kinds ([`Kind`], in `kind.rs`) that CRD generation, decoding and admission follow.

// kube's `printcolumn(name = .., type_ = .., json_path = ..)` repeats keys across columns,
// which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod agent_policy;
pub mod bounds;
pub mod common;
pub mod compliance_policy;
pub mod kind;
pub mod model_approval;
pub mod model_deployment;
pub mod training_dataset;

pub use agent_policy::{AGENT_LABEL, AgentPolicy, AgentPolicySpec, AgentPolicyStatus, EgressRule};
pub use common::*;
pub use compliance_policy::*;
pub use kind::{AnnexaKind, Kind};
pub use model_approval::{
    ApprovalDecision, ApprovedRelease, Approver, ModelApproval, ModelApprovalSpec,
    ModelApprovalStatus,
};
pub use model_deployment::*;
pub use training_dataset::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The API group of every Annexa kind.
pub const GROUP: &str = "annexa.dev";
/// The API version of every Annexa kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "annexa.dev/v1alpha1";

/// Annotation recording who requested the current release (set by the mutating webhook).
pub const DIGEST_REQUESTED_BY: &str = "annexa.dev/digest-requested-by";
/// Annotation recording the fingerprint of the release `DIGEST_REQUESTED_BY` requested (set by
/// the mutating webhook); a requester recorded for another release is not a requester.
pub const REQUESTED_RELEASE: &str = "annexa.dev/requested-release";
/// Label on every object Annexa creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "annexa");
/// Namespace label that opts a namespace into workload checks.
pub const ENFORCE_LABEL: &str = "annexa.dev/enforce";
/// Pod label carrying the data classification of a workload.
pub const CLASSIFICATION_LABEL: &str = "annexa.dev/classification";

/// Every CRD Annexa defines, in a stable order, with the file name it is kept under in `crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let mut crd = kind.crd();
            bounds::bound(&mut crd);
            (kind.crd_file(), crd)
        })
        .collect()
}

/// Access to the status fields every Annexa kind shares.
pub trait HasCommonStatus {
    fn common_status(&self) -> Option<&CommonStatus>;
    fn common_status_mut(&mut self) -> Option<&mut CommonStatus>;
}
