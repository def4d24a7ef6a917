//! Types shared by every kind: classification levels, environments, enforcement actions,
//! conditions in the `metav1.Condition` shape and per-control results.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Data classification, ordered from least to most sensitive.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Classification {
    Public,
    Internal,
    Confidential,
    Restricted,
}

impl Classification {
    pub const ALL: [Classification; 4] = [
        Classification::Public,
        Classification::Internal,
        Classification::Confidential,
        Classification::Restricted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "Public",
            Classification::Internal => "Internal",
            Classification::Confidential => "Confidential",
            Classification::Restricted => "Restricted",
        }
    }

    /// Parses the value of a label or annotation (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The environment of a namespace (A.8.31), ordered from least to most strict.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Environment {
    Development,
    Staging,
    Production,
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Environment::Development => "Development",
            Environment::Staging => "Staging",
            Environment::Production => "Production",
        })
    }
}

/// What a failed control does: Enforce denies at admission, Warn admits with a warning,
/// Audit admits and only reports. Ordered from least to most strict.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Action {
    Audit,
    Warn,
    Enforce,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Audit => "Audit",
            Action::Warn => "Warn",
            Action::Enforce => "Enforce",
        })
    }
}

/// The result of evaluating one control on one object.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControlOutcome {
    Pass,
    Fail,
    NotApplicable,
    Excepted,
}

impl fmt::Display for ControlOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControlOutcome::Pass => "Pass",
            ControlOutcome::Fail => "Fail",
            ControlOutcome::NotApplicable => "NotApplicable",
            ControlOutcome::Excepted => "Excepted",
        })
    }
}

/// One entry of `status.controls`: the result of one Annex A control.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ControlResult {
    /// Annex A control identifier, e.g. `A.8.24`.
    pub id: String,
    /// Title of the control in ISO/IEC 27001:2022 Annex A.
    pub title: String,
    pub result: ControlOutcome,
    /// Why the control passed, failed or does not apply.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

// Status fields every kind shares; kinds embed it with `#[serde(flatten)]`. (A plain comment:
// a doc comment here would become the description of every kind's `status`.)
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` the status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions in the `metav1.Condition` shape; `Ready` summarises, `Compliant` says
    /// whether every control passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// One entry per evaluated Annex A control.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub controls: Vec<ControlResult>,
}
