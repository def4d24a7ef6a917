//! TrainingDataset (namespaced): training data with its classification, personal data,
//! encryption, residency, retention and lineage (A.5.9, A.5.12, A.5.34, A.8.3, A.8.10,
//! A.8.11, A.8.24).

use super::common::{Classification, CommonStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "annexa.dev",
    version = "v1alpha1",
    kind = "TrainingDataset",
    namespaced,
    shortname = "td",
    category = "annexa",
    status = "TrainingDatasetStatus",
    doc = "Training data governed by Annexa: classification, personal data, encryption, residency, retention and lineage.",
    printcolumn(
        name = "Classification",
        type_ = "string",
        json_path = ".spec.classification"
    ),
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(
        name = "Compliant",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Compliant\")].status"
    ),
    printcolumn(
        name = "Retained",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Retained\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TrainingDatasetSpec {
    /// Where the data lives and the checksum of its content manifest.
    pub source: DatasetSource,
    /// Data classification (A.5.12).
    pub classification: Classification,
    /// Personal data the dataset contains (A.5.34, A.8.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_data: Option<PersonalData>,
    /// Encryption at rest and in transit (A.8.24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<DatasetEncryption>,
    /// Where the data resides (A.5.34).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Residency>,
    /// How long the data is kept and what happens at expiry (A.8.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Accountable owner of the dataset (A.5.9), e.g. a team or a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Who may read the data (A.8.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<DatasetAccess>,
    /// Secret holding the credentials of the data source; only `access.allowedServiceAccounts`
    /// may read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Names of the datasets (same namespace) this one was derived from (A.5.12 lineage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub derived_from: Vec<String>,
}

#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.uri) != has(self.pvc)").message("exactly one of source.uri and source.pvc must be set"))]
pub struct DatasetSource {
    /// URI of the data, e.g. `s3://bucket/prefix/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Name of a PersistentVolumeClaim (same namespace) holding the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<String>,
    /// `sha256:` digest of the content manifest, for integrity and poisoning detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub sha256: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PersonalData {
    /// Whether the dataset contains personal data.
    pub contains: bool,
    /// Categories of personal data, e.g. `contact`, `health`, `financial`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// How personal data is masked (A.8.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking: Option<MaskingTechnique>,
    /// Why unmasked personal data is needed (only accepted on Restricted datasets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskingTechnique {
    Pseudonymization,
    Anonymization,
    Tokenization,
    DifferentialPrivacy,
    Synthetic,
    None,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetEncryption {
    /// KMS key encrypting the data at rest, e.g. `arn:aws:kms:eu-west-1:111122223333:key/…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    /// Whether the data is only read over TLS (default true).
    #[serde(
        default,
        rename = "inTransitTLS",
        skip_serializing_if = "Option::is_none"
    )]
    pub in_transit_tls: Option<bool>,
    /// StorageClass of the backing PVC, checked against the policy's encrypted classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Residency {
    /// Region the data resides in, e.g. `eu-west-1`.
    pub region: String,
}

#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.period) != has(self.until)").message("exactly one of retention.period and retention.until must be set"))]
pub struct Retention {
    /// Retention counted from the dataset's creation, e.g. `90d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(w|d|h|m|s))+$"))]
    pub period: Option<String>,
    /// Fixed expiry instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Time>,
    /// What happens at expiry (default `Retain`: report only).
    #[serde(default)]
    pub on_expiry: OnExpiry,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnExpiry {
    #[default]
    Retain,
    Delete,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetAccess {
    /// Service accounts (same namespace) allowed to read the data and its credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub allowed_service_accounts: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
/// Observed state, written by the Annexa controller.
#[serde(rename_all = "camelCase")]
pub struct TrainingDatasetStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// When the retention period ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the backing data was deleted at expiry (evidence of deletion, A.8.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Time>,
}
