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
//! - `bounds`: the CRD schemas' size bounds, checked before decoding;
//! - [`Error`]: one variant per failure, its message the one users read.

use crate::api::{
    API_VERSION, AgentPolicy, AnnexaKind, CompliancePolicy, GROUP, Kind, ModelApproval,
    ModelDeployment, TrainingDataset,
};
use crate::policy::Related;
use crate::policy::workload::{WORKLOAD_KINDS, Workload, is_workload_kind};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

mod bounds;
mod error;
mod json;
mod strict;
mod typed;
pub mod workload;

pub(crate) use bounds::text_within;
pub use error::{Error, Exceeded, Limit, WorkloadError};
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
pub fn decode(value: &Value) -> Result<Object, Error> {
    let Some(map) = value.as_object() else {
        return Err(Error::NotAMapping {
            found: type_name(value),
        });
    };
    let kind = match map.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => k.as_str(),
        Some(other) => {
            return Err(Error::KindNotAString {
                found: type_name(other),
            });
        }
        None => return Err(Error::NoKind),
    };
    let api_version = match map.get("apiVersion") {
        Some(Value::String(v)) => v.as_str(),
        Some(other) => {
            return Err(Error::ApiVersionNotAString {
                kind: kind.to_string(),
                found: type_name(other),
            });
        }
        None => {
            return Err(Error::NoApiVersion {
                kind: kind.to_string(),
            });
        }
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
    if api_version.split('/').next() == Some(GROUP) && api_version != API_VERSION {
        return Err(Error::VersionNotServed {
            kind: kind.to_string(),
            name,
            api_version: api_version.to_string(),
        });
    }
    if let Some(annexa) = Kind::parse(kind)
        && api_version == API_VERSION
    {
        if name.is_empty() {
            return Err(Error::NoName {
                kind: kind.to_string(),
            });
        }
        if let Err(source) = bounds::check_value(kind, value) {
            return Err(Error::TooLarge {
                kind: kind.to_string(),
                name,
                source,
            });
        }
        let object = match annexa {
            Kind::CompliancePolicy => Object::Policy(annexa_object(&name, value)?),
            Kind::TrainingDataset => Object::Dataset(annexa_object(&name, value)?),
            Kind::ModelDeployment => Object::Model(annexa_object(&name, value)?),
            Kind::ModelApproval => Object::Approval(annexa_object(&name, value)?),
            Kind::AgentPolicy => Object::Agent(annexa_object(&name, value)?),
        };
        return Ok(object);
    }
    if api_version == API_VERSION {
        return Err(Error::NoSuchKind {
            kind: kind.to_string(),
            name,
        });
    }
    if kind == "Namespace" && api_version == "v1" {
        let labels = match value.pointer("/metadata/labels") {
            Some(l) => match BTreeMap::<String, String>::deserialize(l) {
                Ok(labels) => labels,
                Err(source) => return Err(Error::NamespaceLabels { name, source }),
            },
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
    // Any workload kind's apiVersion (`v1`, `apps/v1`, `batch/v1`) reads a workload kind.
    let workload_api = WORKLOAD_KINDS
        .iter()
        .any(|w| w.has_api_version(api_version));
    if workload_api && is_workload_kind(kind) {
        let mut w = workload::from_object(kind, value).map_err(|source| Error::Workload {
            kind: kind.to_string(),
            name: name.clone(),
            source,
        })?;
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

/// An Annexa object decoded strictly ([`typed`]), in `default` when it is of a namespaced
/// kind and names no namespace.
fn annexa_object<K: AnnexaKind>(name: &str, value: &Value) -> Result<K, Error> {
    typed(K::KIND.name(), name, value).map(in_default_namespace)
}

/// A namespaced Annexa object that names no namespace is in `default`, as `kubectl` puts it.
pub(crate) fn in_default_namespace<K: AnnexaKind>(object: K) -> K {
    if K::KIND.namespaced() {
        with_default_namespace(object)
    } else {
        object
    }
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

/// How messages name the type of a JSON value: `a list`, `a mapping`, `null`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::error::Error as _;

    fn error(value: Value) -> Error {
        match decode(&value) {
            Err(e) => e,
            Ok(object) => panic!("decoded {value}: {object:?}"),
        }
    }

    /// Each failure's message names the object and the field, in the words `annexa check` and
    /// the webhook print.
    #[test]
    fn each_failure_is_named_with_the_object_and_the_field() {
        let annexa = "annexa.dev/v1alpha1";
        let cases = [
            (
                json!([1]),
                "expected a Kubernetes object (a mapping), found a list",
            ),
            (
                json!({"kind": 3}),
                "kind must be a non-empty string, found a number",
            ),
            (json!({"apiVersion": "v1"}), "document has no kind"),
            (
                json!({"kind": "Pod", "apiVersion": 1}),
                "Pod: apiVersion must be a string, found a number",
            ),
            (json!({"kind": "Pod"}), "Pod: document has no apiVersion"),
            (
                json!({"kind": "ModelDeployment", "apiVersion": "annexa.dev/v1", "metadata": {"name": "m"}}),
                r#"ModelDeployment "m": apiVersion "annexa.dev/v1" is not served; use "annexa.dev/v1alpha1""#,
            ),
            (
                json!({"kind": "Model", "apiVersion": annexa, "metadata": {"name": "m"}}),
                r#"Model "m": annexa.dev/v1alpha1 has no kind "Model""#,
            ),
            (
                json!({"kind": "ModelDeployment", "apiVersion": annexa}),
                "ModelDeployment: metadata.name is required",
            ),
            (
                json!({"kind": "TrainingDataset", "apiVersion": annexa, "metadata": {"name": "d"},
                    "spec": {"source": {"uri": "x".repeat(1025)}}}),
                r#"TrainingDataset "d": spec.source.uri: Too long: may not be more than 1024 characters"#,
            ),
            (
                json!({"kind": "ModelDeployment", "apiVersion": annexa, "metadata": {"name": "m"},
                    "spec": {"model": {"name": "m", "version": "1", "digest": "sha256:0"}, "imgae": "r/i"}}),
                r#"ModelDeployment "m": field spec: missing field `image`; unknown field spec.imgae (did you mean `image`?)"#,
            ),
            (
                json!({"kind": "CompliancePolicy", "apiVersion": annexa, "metadata": {"name": "p"},
                    "spec": {"x": 1, "y": 2}}),
                r#"CompliancePolicy "p": unknown fields spec.x, spec.y"#,
            ),
            (
                json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "n", "labels": {"a": 1}}}),
                r#"Namespace "n": metadata.labels: invalid type: integer `1`, expected a string"#,
            ),
            (
                json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}),
                r#"Pod "p": spec: missing"#,
            ),
            (
                json!({"kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "c"},
                    "spec": {"jobTemplate": {}}}),
                r#"CronJob "c": spec.jobTemplate.spec.template: missing"#,
            ),
        ];
        for (value, message) in cases {
            assert_eq!(error(value).to_string(), message);
        }
    }

    /// The underlying error is kept as the source, not only copied into the message.
    #[test]
    fn underlying_errors_are_kept_as_the_source() {
        let labels = error(json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": "n", "labels": []}}));
        assert!(labels.source().is_some_and(|s| s.is::<serde_json::Error>()));
        let pod = error(json!({"kind": "Pod", "apiVersion": "v1", "spec": {"containers": 1}}));
        let Error::Workload { source, .. } = &pod else {
            panic!("{pod:?}");
        };
        assert!(matches!(source, WorkloadError::Field { path, .. } if path == "spec"));
        assert!(pod.source().and_then(|s| s.source()).is_some());
        let bound = error(
            json!({"kind": "ModelDeployment", "apiVersion": "annexa.dev/v1alpha1",
            "metadata": {"name": "m"}, "spec": {"trainingDatasets": vec!["d"; 65]}}),
        );
        assert!(matches!(
            &bound,
            Error::TooLarge {
                source: Exceeded {
                    limit: Limit::Items(64),
                    ..
                },
                ..
            }
        ));
    }
}
