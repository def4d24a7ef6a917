//! The Annexa API: group `annexa.dev`, version `v1alpha1`. One file per kind, plus the
//! types every kind shares (classification, conditions, control results).

// kube's `printcolumn(name = .., type_ = .., json_path = ..)` repeats keys across columns,
// which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod agent_policy;
pub mod bounds;
pub mod common;
pub mod compliance_policy;
pub mod model_approval;
pub mod model_deployment;
pub mod training_dataset;

pub use agent_policy::{AGENT_LABEL, AgentPolicy, AgentPolicySpec, AgentPolicyStatus, EgressRule};
pub use common::*;
pub use compliance_policy::*;
pub use model_approval::{
    ApprovalDecision, ApprovedRelease, Approver, ModelApproval, ModelApprovalSpec,
    ModelApprovalStatus,
};
pub use model_deployment::*;
pub use training_dataset::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

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
/// Namespace label that opts a namespace into workload checks.
pub const ENFORCE_LABEL: &str = "annexa.dev/enforce";
/// Pod label carrying the data classification of a workload.
pub const CLASSIFICATION_LABEL: &str = "annexa.dev/classification";

/// Every CRD Annexa defines, in a stable order, with the file name it is kept under in `crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    let mut crds = vec![
        ("compliancepolicies.yaml", CompliancePolicy::crd()),
        ("trainingdatasets.yaml", TrainingDataset::crd()),
        ("modeldeployments.yaml", ModelDeployment::crd()),
        ("modelapprovals.yaml", ModelApproval::crd()),
        ("agentpolicies.yaml", AgentPolicy::crd()),
    ];
    for (_, crd) in &mut crds {
        bounds::bound(crd);
    }
    crds
}

/// Access to the status fields every Annexa kind shares.
pub trait HasCommonStatus {
    fn common_status(&self) -> Option<&CommonStatus>;
    fn common_status_mut(&mut self) -> Option<&mut CommonStatus>;
}

macro_rules! has_common_status {
    ($($kind:ty),*) => {$(
        impl HasCommonStatus for $kind {
            fn common_status(&self) -> Option<&CommonStatus> {
                self.status.as_ref().map(|s| &s.common)
            }
            fn common_status_mut(&mut self) -> Option<&mut CommonStatus> {
                self.status.as_mut().map(|s| &mut s.common)
            }
        }
    )*};
}

has_common_status!(
    CompliancePolicy,
    TrainingDataset,
    ModelDeployment,
    ModelApproval,
    AgentPolicy
);
