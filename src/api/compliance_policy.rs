//! CompliancePolicy (cluster-scoped): the platform team's rules for the namespaces it selects.
//! When several policies select a namespace the strictest value of each setting wins (see
//! `policy::profile`); settings no policy sets come from the built-in baseline.

use super::common::{Action, Classification, CommonStatus, Environment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Duration pattern accepted everywhere Annexa takes a duration: `90d`, `12h`, `1h30m`, `2w`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(w|d|h|m|s))+$";

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "annexa.dev",
    version = "v1alpha1",
    kind = "CompliancePolicy",
    plural = "compliancepolicies",
    shortname = "cpol",
    category = "annexa",
    status = "CompliancePolicyStatus",
    doc = "The platform team's ISO/IEC 27001 Annex A rules for the namespaces it selects.",
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment"
    ),
    printcolumn(
        name = "Enforcement",
        type_ = "string",
        json_path = ".spec.enforcement.action"
    ),
    printcolumn(
        name = "Namespaces",
        type_ = "integer",
        json_path = ".status.matchedNamespaces"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CompliancePolicySpec {
    /// Namespaces this policy applies to. An empty selector selects every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Environment of the selected namespaces (A.8.31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// What a failed control does, by default and per control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<EnforcementSpec>,
    /// GPU resources and the node pools reserved per data classification (A.8.22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuPolicy>,
    /// Where serving and workload images may come from (A.8.19, A.8.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagePolicy>,
    /// Encryption requirements (A.8.24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionPolicy>,
    /// Data residency (A.5.34).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<ResidencyPolicy>,
    /// Production change approvals (A.8.32, A.5.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionPolicy>,
    /// Limits on AI agents (A.5.15, A.5.18, A.8.2, A.8.12, A.8.20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentLimits>,
    /// Dataset retention limits (A.8.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    /// Documented exceptions: matching failures are reported as `Excepted`, not enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub exceptions: Vec<ControlException>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnforcementSpec {
    /// Default action for every control (default `Enforce`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Per-control actions that replace the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub overrides: Vec<ControlOverride>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlOverride {
    /// Annex A control identifier, e.g. `A.8.12`.
    #[schemars(regex(pattern = r"^A\.[5-8]\.[0-9]+$"))]
    pub control: String,
    pub action: Action,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlException {
    /// Annex A control identifier the exception applies to.
    #[schemars(regex(pattern = r"^A\.[5-8]\.[0-9]+$"))]
    pub control: String,
    /// Kind of the excepted objects (any kind when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the excepted object (every object of the kind when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why the exception was granted; shown to auditors.
    #[schemars(length(min = 1))]
    pub reason: String,
    /// When the exception ends (RFC 3339); it no longer applies afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuPolicy {
    /// Extended resources that count as GPUs: exact names, or patterns where `*` matches any
    /// run of characters (default `nvidia.com/gpu`, `nvidia.com/gpu.*` for time-sliced and MPS
    /// shares, `nvidia.com/mig-*` for MIG slices, `amd.com/gpu`, `gpu.intel.com/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// DeviceClasses whose Dynamic Resource Allocation claims count as GPU requests: exact
    /// names or `*` patterns (default `gpu.nvidia.com`, `mig.nvidia.com`, `gpu.amd.com`,
    /// `gpu.intel.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_class_names: Vec<String>,
    /// Node pools reserved for GPU workloads, per data classification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<GpuPool>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuPool {
    /// Data classification this pool serves.
    pub classification: Classification,
    /// Node labels a workload must select to land on the pool.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taint on the pool's nodes; workloads of this classification must tolerate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint: Option<PoolTaint>,
    /// RuntimeClass workloads on this pool must use (for example a sandboxed runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolTaint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: TaintEffect,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicy {
    /// Registry prefixes images may come from, e.g. `registry.example.com/ml/`. Empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_registries: Vec<String>,
    /// Require images pinned by digest (`@sha256:`). Always required in Production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_digest: Option<bool>,
    /// Registry prefixes ephemeral containers (`kubectl debug`) may come from besides
    /// `allowedRegistries`. The digest rule still applies, and a GPU pod's debug container is
    /// never privileged. Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub debug_registries: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionPolicy {
    /// Classification from which a KMS key is required (default `Confidential`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_kms_from: Option<Classification>,
    /// Prefixes a KMS key reference must start with, e.g. `arn:aws:kms:eu-west-1:`. Empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_key_prefixes: Vec<String>,
    /// StorageClasses known to encrypt at rest; PVC-backed datasets must use one. Empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypted_storage_classes: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResidencyPolicy {
    /// Regions data may reside in. Empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_regions: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromotionPolicy {
    /// Approvals a model digest needs before it serves (default 2 in Production, 0 elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub required_approvals: Option<u32>,
    /// How long an approval stays valid, e.g. `168h` (default `7d`).
    #[serde(
        default,
        rename = "approvalTTL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^([0-9]+(w|d|h|m|s))+$"))]
    pub approval_ttl: Option<String>,
    /// Groups approvers must belong to (any group when empty). Verified against the groups of
    /// the request that creates the approval, never taken from what the approval declares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver_groups: Vec<String>,
    /// ServiceAccounts allowed to approve, as full usernames
    /// (`system:serviceaccount:NAMESPACE:NAME`). None by default: an approval is a human's
    /// decision. With several policies only the accounts every one of them names are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_account_approvers: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentLimits {
    /// Longest service-account token lifetime an agent may declare (default `1h`).
    #[serde(
        default,
        rename = "maxTokenTTL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(regex(pattern = r"^([0-9]+(w|d|h|m|s))+$"))]
    pub max_token_ttl: Option<String>,
    /// RBAC verbs agents may never hold (default `*`, `escalate`, `bind`, `impersonate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden_verbs: Vec<String>,
    /// Permissions agents may never be granted (A.8.2). Default: token minting, exec/attach/
    /// port-forward, Secret writes and lists, RBAC writes, node proxy, impersonation, CSR
    /// approval and admission configuration writes (`annexa policy default` prints the list).
    /// A policy that lists its own replaces that list for the namespaces it selects; several
    /// policies add up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden_permissions: Vec<ForbiddenPermission>,
    /// Whether agents may read Secrets (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_secret_read: Option<bool>,
    /// Whether an egress allow-list is required (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_egress_allow_list: Option<bool>,
}

/// A permission agents may not hold: any of `verbs` on any of `resources` in `apiGroup`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ForbiddenPermission {
    /// API group (`""`: the core group).
    #[serde(default)]
    pub api_group: String,
    /// Resources, with their subresource where it matters (`pods/exec`).
    #[schemars(length(min = 1))]
    pub resources: Vec<String>,
    /// Verbs (`*`: every verb).
    #[schemars(length(min = 1))]
    pub verbs: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Longest retention a dataset may declare, e.g. `365d` (default `365d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(w|d|h|m|s))+$"))]
    pub max_retention: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
/// Observed state, written by the Annexa controller.
#[serde(rename_all = "camelCase")]
pub struct CompliancePolicyStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// How many namespaces the policy selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_namespaces: Option<i32>,
    /// Pods running on GPU pool nodes that no ModelDeployment governs (at most 20 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ungoverned_gpu_pods: Vec<String>,
    /// Governed pods on GPU pool nodes that fail the workload rules as they run now, with the
    /// failed controls: GPU paths and ephemeral containers admission did not see (at most 20
    /// listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_compliant_gpu_pods: Vec<String>,
}
