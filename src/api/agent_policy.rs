//! AgentPolicy (namespaced): what an AI agent's service account may do and reach
//! (A.5.15, A.5.18, A.8.2, A.8.12, A.8.20).

use super::common::CommonStatus;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "annexa.dev",
    version = "v1alpha1",
    kind = "AgentPolicy",
    namespaced,
    shortname = "ap",
    category = "annexa",
    status = "AgentPolicyStatus",
    doc = "Least-privilege identity, permissions and egress of an AI agent.",
    printcolumn(
        name = "ServiceAccount",
        type_ = "string",
        json_path = ".spec.serviceAccountName"
    ),
    printcolumn(name = "TokenTTL", type_ = "string", json_path = ".spec.tokenTTL"),
    printcolumn(
        name = "LeastPrivilege",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"LeastPrivilege\")].status"
    ),
    printcolumn(
        name = "Compliant",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Compliant\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AgentPolicySpec {
    /// Service account (same namespace) the agent runs as; Annexa owns it.
    #[schemars(length(min = 1))]
    pub service_account_name: String,
    /// RBAC rules the agent needs, granted through a Role in the namespace (A.5.15, A.8.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub permissions: Vec<PolicyRule>,
    /// Destinations the agent may reach; all other egress is denied, DNS excepted (A.8.12, A.8.20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub egress: Vec<EgressRule>,
    /// Longest lifetime of the agent's projected token, e.g. `1h` (A.5.18).
    #[serde(default, rename = "tokenTTL", skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(w|d|h|m|s))+$"))]
    pub token_ttl: Option<String>,
    /// Labels of the agent's pods (default: `annexa.dev/agent: <policy name>`). The egress
    /// NetworkPolicy selects them, and in enforced namespaces a pod carries them exactly when
    /// it runs as `serviceAccountName` (A.8.12, A.5.15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// Destination network in CIDR notation, e.g. `10.20.0.0/16`.
    pub cidr: String,
    /// Destination ports (TCP unless `protocol` says otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i32>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
/// Observed state, written by the Annexa controller.
#[serde(rename_all = "camelCase")]
pub struct AgentPolicyStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Bindings granting the agent's service account more than this policy (at most 20 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excess_bindings: Vec<String>,
}

/// Pod label selecting an agent's pods when its policy declares no `podSelector`.
pub const AGENT_LABEL: &str = "annexa.dev/agent";

impl AgentPolicy {
    /// The labels that identify the agent's pods: `spec.podSelector`, or
    /// `annexa.dev/agent: <policy name>` when none is declared. The one definition of "the
    /// agent's pods", read by the egress NetworkPolicy, the admission rules and the audit.
    pub fn pod_selector(&self) -> LabelSelector {
        self.spec
            .pod_selector
            .clone()
            .unwrap_or_else(|| LabelSelector {
                match_labels: Some(std::collections::BTreeMap::from([(
                    AGENT_LABEL.to_string(),
                    self.metadata.name.clone().unwrap_or_default(),
                )])),
                match_expressions: None,
            })
    }

    /// Orders AgentPolicies naming the same service account: the smallest (oldest, then first
    /// by name) governs it. `annexa check`, the webhook's lookup and the controller all decide
    /// by this, through `policy::agent_policy::governing_agent`.
    pub fn seniority(&self) -> (Option<jiff::Timestamp>, &str) {
        (
            self.metadata.creation_timestamp.as_ref().map(|t| t.0),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}
