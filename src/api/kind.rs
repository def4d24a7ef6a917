//! The Annexa kinds, listed once. CRD generation ([`super::crds`]), decoding, admission routing
//! and the status helpers all follow this table; `match`es over [`Kind`] are exhaustive, so the
//! compiler names every place a new kind must be handled.

use super::{
    AgentPolicy, AgentPolicySpec, AgentPolicyStatus, CommonStatus, CompliancePolicy,
    CompliancePolicySpec, CompliancePolicyStatus, HasCommonStatus, ModelApproval,
    ModelApprovalSpec, ModelApprovalStatus, ModelDeployment, ModelDeploymentSpec,
    ModelDeploymentStatus, TrainingDataset, TrainingDatasetSpec, TrainingDatasetStatus,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use serde::de::DeserializeOwned;

/// An Annexa kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    CompliancePolicy,
    TrainingDataset,
    ModelDeployment,
    ModelApproval,
    AgentPolicy,
}

impl Kind {
    /// Every kind, in the order the CRDs are listed.
    pub const ALL: [Kind; 5] = [
        Kind::CompliancePolicy,
        Kind::TrainingDataset,
        Kind::ModelDeployment,
        Kind::ModelApproval,
        Kind::AgentPolicy,
    ];

    /// The kind as written in `kind:`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::CompliancePolicy => "CompliancePolicy",
            Kind::TrainingDataset => "TrainingDataset",
            Kind::ModelDeployment => "ModelDeployment",
            Kind::ModelApproval => "ModelApproval",
            Kind::AgentPolicy => "AgentPolicy",
        }
    }

    /// The kind named `name`, if it is one of Annexa's.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The file the kind's CRD is kept under in `crds/` (its plural).
    pub const fn crd_file(self) -> &'static str {
        match self {
            Kind::CompliancePolicy => "compliancepolicies.yaml",
            Kind::TrainingDataset => "trainingdatasets.yaml",
            Kind::ModelDeployment => "modeldeployments.yaml",
            Kind::ModelApproval => "modelapprovals.yaml",
            Kind::AgentPolicy => "agentpolicies.yaml",
        }
    }

    /// Whether objects of the kind live in a namespace (all but CompliancePolicy).
    pub const fn namespaced(self) -> bool {
        !matches!(self, Kind::CompliancePolicy)
    }

    /// The kind's CRD as kube derives it from the Rust type (before the size bounds are added).
    pub fn crd(self) -> CustomResourceDefinition {
        match self {
            Kind::CompliancePolicy => CompliancePolicy::crd(),
            Kind::TrainingDataset => TrainingDataset::crd(),
            Kind::ModelDeployment => ModelDeployment::crd(),
            Kind::ModelApproval => ModelApproval::crd(),
            Kind::AgentPolicy => AgentPolicy::crd(),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The Rust type of an Annexa kind as kube derives it: metadata, spec and a status that holds
/// the [`CommonStatus`] every kind shares.
pub trait AnnexaKind:
    kube::Resource<DynamicType = ()> + HasCommonStatus + DeserializeOwned + Sized
{
    const KIND: Kind;
    type Spec: DeserializeOwned;
    type Status: DeserializeOwned;
    /// The object from its parts (what decoding reads separately).
    fn assemble(metadata: ObjectMeta, spec: Self::Spec, status: Option<Self::Status>) -> Self;
}

macro_rules! annexa_kind {
    ($kind:ident($spec:ident, $status:ident)) => {
        impl AnnexaKind for $kind {
            const KIND: Kind = Kind::$kind;
            type Spec = $spec;
            type Status = $status;
            fn assemble(metadata: ObjectMeta, spec: $spec, status: Option<$status>) -> Self {
                Self {
                    metadata,
                    spec,
                    status,
                }
            }
        }

        impl HasCommonStatus for $kind {
            fn common_status(&self) -> Option<&CommonStatus> {
                self.status.as_ref().map(|s| &s.common)
            }
            fn common_status_mut(&mut self) -> Option<&mut CommonStatus> {
                self.status.as_mut().map(|s| &mut s.common)
            }
        }
    };
}

annexa_kind!(CompliancePolicy(
    CompliancePolicySpec,
    CompliancePolicyStatus
));
annexa_kind!(TrainingDataset(TrainingDatasetSpec, TrainingDatasetStatus));
annexa_kind!(ModelDeployment(ModelDeploymentSpec, ModelDeploymentStatus));
annexa_kind!(ModelApproval(ModelApprovalSpec, ModelApprovalStatus));
annexa_kind!(AgentPolicy(AgentPolicySpec, AgentPolicyStatus));

#[cfg(test)]
mod tests {
    use super::*;

    /// The table says of each kind what kube derives from its type.
    #[test]
    fn the_table_agrees_with_the_types() {
        fn check<K: AnnexaKind + CustomResourceExt>() {
            let kind = K::KIND;
            assert_eq!(kind.name(), K::kind(&()), "{kind}");
            assert_eq!(
                kind.crd_file(),
                format!("{}.yaml", K::plural(&())),
                "{kind}"
            );
            let crd = K::crd();
            assert_eq!(crd, kind.crd(), "{kind}");
            assert_eq!(crd.spec.scope == "Namespaced", kind.namespaced(), "{kind}");
            assert_eq!(Kind::parse(kind.name()), Some(kind));
        }
        check::<CompliancePolicy>();
        check::<TrainingDataset>();
        check::<ModelDeployment>();
        check::<ModelApproval>();
        check::<AgentPolicy>();
        assert_eq!(Kind::parse("Pod"), None);
        assert_eq!(Kind::parse("compliancepolicy"), None);
    }
}
