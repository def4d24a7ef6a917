//! Decoding: one raw Kubernetes object (a JSON/YAML value, or JSON text on the admission fast
//! path) to the typed objects Annexa governs. The one place the webhook, `annexa check` and the
//! cluster cache decode through, so the three read every object alike.
//!
//! A layer between the rules and everything that does I/O: it imports only [`crate::api`] (the
//! types) and [`crate::policy`] (the views the rules read); files, folders and documents are
//! [`crate::manifest`]'s, reviews the webhook's. Errors name the object and the field.
//!
//! - [`decode`]: a `Value` to an [`Object`] (strict for Annexa kinds: [`typed`]);
//! - [`workload`]: Pods and pod templates to [`Workload`];
//! - `json`: the admission fast path straight from JSON text ([`TopLevel`], [`value_accepts`],
//!   [`MapOnly`]), which reads what [`decode`] reads or gives up;
//! - `bounds`: the CRD schemas' size bounds, checked before decoding.

use crate::api::{
    API_VERSION, AgentPolicy, AgentPolicySpec, AgentPolicyStatus, CompliancePolicy,
    CompliancePolicySpec, CompliancePolicyStatus, GROUP, ModelApproval, ModelApprovalSpec,
    ModelApprovalStatus, ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus,
    TrainingDataset, TrainingDatasetSpec, TrainingDatasetStatus,
};
use crate::policy::Related;
use crate::policy::workload::{Workload, is_workload_kind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

mod bounds;
mod json;
mod strict;
mod typed;
pub mod workload;

pub(crate) use bounds::text_within;
pub(crate) use json::{MapOnly, TopLevel, value_accepts};
pub use typed::typed;

/// A decoded object.
#[derive(Clone, Debug)]
pub enum Object {
    Policy(CompliancePolicy),
    Dataset(TrainingDataset),
    Model(ModelDeployment),
    Approval(ModelApproval),
    Agent(AgentPolicy),
    Workload(Workload),
    /// A ResourceClaim, ResourceClaimTemplate or Node: read by the GPU rules, not evaluated.
    Related(Related),
    Namespace {
        name: String,
        labels: BTreeMap<String, String>,
    },
    /// A kind Annexa does not govern.
    Skipped {
        kind: String,
        api_version: String,
        name: String,
        /// `metadata.namespace`, when the object names one.
        namespace: Option<String>,
        /// Devices the object asks for in fields Annexa does not read (for `annexa check` to say
        /// that a GPU request went unchecked).
        devices: Vec<DeviceRequest>,
    },
}

/// A device request found anywhere inside an object of a kind Annexa does not read: an
/// extended resource under `resources.limits`/`resources.requests`, or a Dynamic Resource
/// Allocation claim (`resourceClaims`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    Resource { path: String, name: String },
    Claim { path: String },
}

/// Decodes one document into an object. Errors name the object and field.
pub fn decode(value: &Value) -> Result<Object, String> {
    let Some(map) = value.as_object() else {
        return Err(format!(
            "expected a Kubernetes object (a mapping), found {}",
            type_name(value)
        ));
    };
    let kind = match map.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => k.as_str(),
        Some(other) => {
            return Err(format!(
                "kind must be a non-empty string, found {}",
                type_name(other)
            ));
        }
        None => return Err("document has no kind".to_string()),
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(v)) => v.as_str(),
        Some(other) => {
            return Err(format!(
                "{kind}: apiVersion must be a string, found {}",
                type_name(other)
            ));
        }
        None => return Err(format!("{kind}: document has no apiVersion")),
    };
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .or_else(|| {
            value
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
        .to_string();
    let annexa_kind = matches!(
        kind,
        "CompliancePolicy"
            | "TrainingDataset"
            | "ModelDeployment"
            | "ModelApproval"
            | "AgentPolicy"
    );
    if api_version.split('/').next() == Some(GROUP) && api_version != API_VERSION {
        return Err(format!(
            "{kind} {name:?}: apiVersion {api_version:?} is not served; use {API_VERSION:?}"
        ));
    }
    if annexa_kind && api_version == API_VERSION {
        if name.is_empty() {
            return Err(format!("{kind}: metadata.name is required"));
        }
        bounds::check_value(kind, value).map_err(|e| format!("{kind} {name:?}: {e}"))?;
        let object = match kind {
            "CompliancePolicy" => Object::Policy(typed(kind, &name, value)?),
            "TrainingDataset" => {
                Object::Dataset(with_default_namespace(typed(kind, &name, value)?))
            }
            "ModelDeployment" => Object::Model(with_default_namespace(typed(kind, &name, value)?)),
            "ModelApproval" => Object::Approval(with_default_namespace(typed(kind, &name, value)?)),
            _ => Object::Agent(with_default_namespace(typed(kind, &name, value)?)),
        };
        return Ok(object);
    }
    if api_version == API_VERSION {
        return Err(format!(
            "{kind} {name:?}: {API_VERSION} has no kind {kind:?}"
        ));
    }
    if kind == "Namespace" && api_version == "v1" {
        let labels = match value.pointer("/metadata/labels") {
            Some(l) => BTreeMap::<String, String>::deserialize(l)
                .map_err(|e| format!("Namespace {name:?}: metadata.labels: {e}"))?,
            None => BTreeMap::new(),
        };
        return Ok(Object::Namespace { name, labels });
    }
    // resource.k8s.io/v1beta2 has the shape of v1.
    let resource_api = matches!(
        api_version,
        "resource.k8s.io/v1" | "resource.k8s.io/v1beta2"
    );
    match kind {
        "ResourceClaim" if resource_api => {
            return Ok(Object::Related(Related::Claim(Box::new(
                with_default_namespace(typed(kind, &name, value)?),
            ))));
        }
        "ResourceClaimTemplate" if resource_api => {
            return Ok(Object::Related(Related::ClaimTemplate(Box::new(
                with_default_namespace(typed(kind, &name, value)?),
            ))));
        }
        "Node" if api_version == "v1" => {
            return Ok(Object::Related(Related::Node(Box::new(typed(
                kind, &name, value,
            )?))));
        }
        _ => {}
    }
    let workload_api = matches!(api_version, "v1" | "apps/v1" | "batch/v1");
    if workload_api && is_workload_kind(kind) {
        let mut w =
            workload::from_object(kind, value).map_err(|e| format!("{kind} {name:?}: {e}"))?;
        if w.namespace.is_empty() {
            w.namespace = "default".to_string();
        }
        return Ok(Object::Workload(w));
    }
    Ok(Object::Skipped {
        kind: kind.to_string(),
        api_version: api_version.to_string(),
        name,
        namespace: value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        devices: device_requests(value),
    })
}

pub(crate) fn with_default_namespace<K: kube::Resource>(mut object: K) -> K {
    if object.meta().namespace.is_none() {
        object.meta_mut().namespace = Some("default".to_string());
    }
    object
}

/// Device requests anywhere in an object (see [`DeviceRequest`]), with the field path of each.
fn device_requests(value: &Value) -> Vec<DeviceRequest> {
    fn walk(value: &Value, path: &str, out: &mut Vec<DeviceRequest>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if key == "resources" {
                        for list in ["limits", "requests"] {
                            if let Some(Value::Object(names)) = child.get(list) {
                                for name in names.keys() {
                                    out.push(DeviceRequest::Resource {
                                        path: format!("{here}.{list}[{name}]"),
                                        name: name.clone(),
                                    });
                                }
                            }
                        }
                    }
                    if key == "resourceClaims"
                        && let Value::Array(claims) = child
                    {
                        for (i, claim) in claims.iter().enumerate() {
                            let named = ["resourceClaimName", "resourceClaimTemplateName"]
                                .iter()
                                .any(|k| claim.get(k).is_some());
                            if named {
                                out.push(DeviceRequest::Claim {
                                    path: format!("{here}[{i}]"),
                                });
                            }
                        }
                    }
                    walk(child, &here, out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

/// An Annexa kind as kube derives it: metadata, spec and status.
pub(crate) trait AnnexaKind: kube::Resource + Sized {
    type Spec: DeserializeOwned;
    type Status: DeserializeOwned;
    fn assemble(metadata: ObjectMeta, spec: Self::Spec, status: Option<Self::Status>) -> Self;
}

macro_rules! annexa_kinds {
    ($($kind:ident($spec:ident, $status:ident)),*) => {$(
        impl AnnexaKind for $kind {
            type Spec = $spec;
            type Status = $status;
            fn assemble(metadata: ObjectMeta, spec: $spec, status: Option<$status>) -> Self {
                Self { metadata, spec, status }
            }
        }
    )*};
}

annexa_kinds!(
    CompliancePolicy(CompliancePolicySpec, CompliancePolicyStatus),
    TrainingDataset(TrainingDatasetSpec, TrainingDatasetStatus),
    ModelDeployment(ModelDeploymentSpec, ModelDeploymentStatus),
    ModelApproval(ModelApprovalSpec, ModelApprovalStatus),
    AgentPolicy(AgentPolicySpec, AgentPolicyStatus)
);

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
