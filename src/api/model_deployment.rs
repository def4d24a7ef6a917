//! ModelDeployment (namespaced): a model being served, with its weights digest, serving image,
//! training datasets and network exposure (A.5.3, A.8.9, A.8.19, A.8.22, A.8.24, A.8.31, A.8.32).

use super::common::{Classification, CommonStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pattern of a content digest: `sha256:` and 64 lowercase hex digits.
pub const DIGEST_PATTERN: &str = r"^sha256:[a-f0-9]{64}$";

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "annexa.dev",
    version = "v1alpha1",
    kind = "ModelDeployment",
    namespaced,
    shortname = "md",
    category = "annexa",
    status = "ModelDeploymentStatus",
    doc = "A model served in the cluster, placed, hardened and promoted under Annexa's controls.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.name"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.model.version"),
    printcolumn(
        name = "Classification",
        type_ = "string",
        json_path = ".status.classification"
    ),
    printcolumn(
        name = "Approved",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Approved\")].reason"
    ),
    printcolumn(
        name = "Compliant",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Compliant\")].status"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Serving",
        type_ = "string",
        json_path = ".status.servingRelease.version"
    ),
    printcolumn(
        name = "Pending",
        type_ = "string",
        json_path = ".status.pendingRelease.version"
    ),
    printcolumn(
        name = "Serving-Release",
        type_ = "string",
        priority = 1,
        json_path = ".status.servingRelease.fingerprint"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // The model's Service is named after it, and Service names are DNS-1035 labels; its name
    // is also a label value of every child (at most 63 characters).
    validation = kube::core::Rule::new(
        "size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
    )
    .message("the name of a ModelDeployment names its Service: at most 63 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit (a DNS-1035 label)")
)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentSpec {
    /// The model artefact being served.
    pub model: ModelArtifact,
    /// Serving image; pinned by digest (`@sha256:`) where the policy or Production requires it.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Names of the TrainingDatasets (same namespace) the model was trained on; the model's
    /// classification is the highest of theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub training_datasets: Vec<String>,
    /// Number of serving replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Compute resources of each replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ModelResources>,
    /// How the model is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,
    /// Who may reach the model (A.8.22); everything else is denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<ModelNetwork>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelArtifact {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub version: String,
    /// Where the weights are fetched from, e.g. `s3://models/fraud/3.2.0/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `sha256:` digest of the weights; the unit of promotion and approval.
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub digest: String,
    /// KMS key encrypting the weights at rest (A.8.24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelResources {
    /// GPUs per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub gpus: Option<u32>,
    /// Extended resource name of the GPU (default: the policy's first GPU resource name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_resource_name: Option<String>,
    /// CPU request and limit, e.g. `4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory request and limit, e.g. `16Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    /// Container port the model listens on (default 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Secret (type kubernetes.io/tls) with the serving certificate (A.8.24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelNetwork {
    /// Peers allowed to reach the model; the NetworkPolicy denies everything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub allowed_from: Vec<NetworkPeer>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPeer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
/// Observed state, written by the Annexa controller.
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Classification inherited from the training datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Weights digest of the release rolled out (`servingRelease.digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_digest: Option<String>,
    /// Weights digest of the release requested in the spec and held (`pendingRelease.digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_digest: Option<String>,
    /// The release the Deployment is rendered from: the last one approved, with the content
    /// it was approved for. The controller re-verifies it against the ModelApprovals on every
    /// reconcile and never serves it on the strength of this field alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_release: Option<Box<ServingRelease>>,
    /// The release requested in the spec while it is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_release: Option<Box<ReleaseRecord>>,
    /// Approvals counted for the requested release.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRecord>,
    /// The latest promotions, newest last (at most [`MAX_PROMOTIONS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub promotions: Vec<ReleaseRecord>,
}

/// How many promotions `status.promotions` keeps.
pub const MAX_PROMOTIONS: usize = 10;

/// What runs: every field of the spec that reaches the pod template, except the scale.
/// A change of any of them is a new release, approved on its own.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    pub model: ReleaseModel,
    pub image: String,
    /// They decide the classification, hence the GPU pool the pods are placed on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub training_datasets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ModelResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,
}

/// The weights of a release.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseModel {
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub digest: String,
}

impl ModelDeploymentSpec {
    /// The release this spec requests.
    pub fn release(&self) -> ReleaseSpec {
        ReleaseSpec {
            model: ReleaseModel {
                name: self.model.name.clone(),
                version: self.model.version.clone(),
                uri: self.model.uri.clone(),
                digest: self.model.digest.clone(),
            },
            image: self.image.clone(),
            training_datasets: self.training_datasets.clone(),
            resources: self.resources.clone(),
            serving: self.serving.clone(),
        }
    }
}

impl ReleaseSpec {
    /// The canonical fingerprint of the release: `sha256:` over its JSON encoding (fields in
    /// declaration order, absent options omitted), prefixed by a format tag so that a future
    /// change of the encoding cannot collide with this one.
    pub fn fingerprint(&self) -> String {
        let mut bytes = b"annexa.dev/release/v1\n".to_vec();
        // Serialising plain structs of strings and numbers cannot fail.
        bytes.extend(serde_json::to_vec(self).unwrap_or_default());
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut out = String::with_capacity(71);
        out.push_str("sha256:");
        for b in digest.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// The readable summary of this release.
    pub fn record(&self) -> ReleaseRecord {
        ReleaseRecord {
            fingerprint: self.fingerprint(),
            digest: self.model.digest.clone(),
            version: self.model.version.clone(),
            image: self.image.clone(),
            ..ReleaseRecord::default()
        }
    }
}

/// A release as reported in status: its fingerprint, the readable parts a reviewer checks,
/// and, once promoted, who requested and approved it and when it rolled out.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRecord {
    pub fingerprint: String,
    pub digest: String,
    pub version: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,
    /// How many approvals the rule in force required when the release was promoted. A
    /// release keeps serving under that rule when a policy later asks for more; any new
    /// release needs the new count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub required_approvals: Option<u32>,
}

/// The release that serves, with the content the Deployment is rendered from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServingRelease {
    #[serde(flatten)]
    pub record: ReleaseRecord,
    pub spec: ReleaseSpec,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// Name of the ModelApproval.
    pub name: String,
    pub approver: String,
    pub digest: String,
    /// Fingerprint of the release approved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub release: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
}
