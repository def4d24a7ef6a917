//! The list and map types server-side apply needs, per kind.
//!
//! Custom resources use their CRD's `openAPIV3Schema`. Built-in kinds use the table below,
//! written from the Kubernetes OpenAPI (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`) for the kinds Annexa and its tests write. What the table leaves out
//! is what kube-apiserver's schema makes of it by default: lists atomic, structs and maps
//! field by field.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::registry::{GroupResource, ResourceType};
use super::ssa::Schema;
use super::store::State;

/// The schema apply uses for objects of `rt`.
pub fn for_type(st: &State, rt: &ResourceType) -> Schema {
    match &rt.crd {
        Some(crd_name) => {
            let crd_gr = GroupResource {
                group: "apiextensions.k8s.io".into(),
                resource: "customresourcedefinitions".into(),
            };
            let schema = st
                .get(&crd_gr, "", crd_name)
                .and_then(|crd| {
                    crd["spec"]["versions"]
                        .as_array()?
                        .iter()
                        .find(|v| v["name"] == rt.version.as_str())
                        .map(|v| v["schema"]["openAPIV3Schema"].clone())
                })
                .filter(Value::is_object)
                .unwrap_or(Value::Null);
            Schema::new(schema, false, rt.status_subresource)
        }
        None => Schema::new(builtin(&rt.group, &rt.kind), true, rt.status_subresource),
    }
}

fn obj(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

/// `x-kubernetes-map-type: atomic` (also `+structType=atomic` structs such as LabelSelector).
fn atomic() -> Value {
    json!({"type": "object", "x-kubernetes-map-type": "atomic"})
}

fn map_list(keys: &[&str], items: Value) -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "map",
           "x-kubernetes-list-map-keys": keys, "items": items})
}

fn set_list() -> Value {
    json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}})
}

/// Items keyed by `name` with nothing else of note.
fn by_name() -> Value {
    map_list(&["name"], obj(json!({})))
}

/// Conditions keyed by `type`.
fn conditions() -> Value {
    map_list(&["type"], obj(json!({})))
}

/// `ports` keyed by a port field and `protocol`, which defaults to TCP.
fn ports(port_field: &str) -> Value {
    map_list(
        &[port_field, "protocol"],
        obj(json!({"protocol": {"type": "string", "default": "TCP"}})),
    )
}

pub fn object_meta() -> &'static Value {
    static META: LazyLock<Value> = LazyLock::new(|| {
        obj(json!({
            "labels": string_map(),
            "annotations": string_map(),
            "finalizers": set_list(),
            "ownerReferences": map_list(&["uid"], obj(json!({}))),
        }))
    });
    &META
}

fn resources() -> Value {
    obj(json!({"limits": string_map(), "requests": string_map(), "claims": by_name()}))
}

fn container() -> Value {
    let selector_refs = obj(json!({"valueFrom": obj(json!({
        "configMapKeyRef": atomic(), "secretKeyRef": atomic(),
        "fieldRef": atomic(), "resourceFieldRef": atomic(),
    }))}));
    obj(json!({
        "env": map_list(&["name"], selector_refs),
        "ports": ports("containerPort"),
        "volumeMounts": map_list(&["mountPath"], obj(json!({}))),
        "volumeDevices": map_list(&["devicePath"], obj(json!({}))),
        "resources": resources(),
    }))
}

fn pod_spec() -> Value {
    let label_selector_term = obj(json!({"labelSelector": atomic()}));
    obj(json!({
        "containers": map_list(&["name"], container()),
        "initContainers": map_list(&["name"], container()),
        "ephemeralContainers": map_list(&["name"], container()),
        "volumes": map_list(&["name"], obj(json!({
            "persistentVolumeClaim": obj(json!({})),
        }))),
        "imagePullSecrets": by_name(),
        "hostAliases": map_list(&["ip"], obj(json!({}))),
        "nodeSelector": json!({"type": "object", "additionalProperties": {"type": "string"},
                               "x-kubernetes-map-type": "atomic"}),
        "topologySpreadConstraints": map_list(&["topologyKey", "whenUnsatisfiable"], label_selector_term),
        "resourceClaims": by_name(),
        "schedulingGates": by_name(),
        "overhead": string_map(),
    }))
}

fn pod_template() -> Value {
    obj(json!({"metadata": object_meta().clone(), "spec": pod_spec()}))
}

/// Deployments, ReplicaSets, DaemonSets, StatefulSets and Jobs.
fn workload() -> Value {
    obj(json!({
        "spec": obj(json!({"selector": atomic(), "template": pod_template()})),
        "status": obj(json!({"conditions": conditions()})),
    }))
}

fn webhook_configuration() -> Value {
    obj(json!({"webhooks": map_list(&["name"], obj(json!({
        "namespaceSelector": atomic(),
        "objectSelector": atomic(),
        "matchConditions": by_name(),
    })))}))
}

#[cfg(test)]
pub fn builtin_for_tests(group: &str, kind: &str) -> Value {
    builtin(group, kind)
}

/// The table of built-in kinds; `null` (everything at its default) for the others.
fn builtin(group: &str, kind: &str) -> Value {
    match (group, kind) {
        ("", "Pod") => obj(json!({
            "spec": pod_spec(),
            "status": obj(json!({
                "conditions": conditions(),
                "podIPs": map_list(&["ip"], obj(json!({}))),
                "hostIPs": map_list(&["ip"], obj(json!({}))),
            })),
        })),
        ("", "Service") => obj(json!({
            "spec": obj(json!({
                "ports": ports("port"),
                "selector": json!({"type": "object", "additionalProperties": {"type": "string"},
                                   "x-kubernetes-map-type": "atomic"}),
            })),
            "status": obj(json!({"conditions": conditions()})),
        })),
        ("", "ServiceAccount") => obj(json!({"secrets": by_name()})),
        ("", "ConfigMap") => obj(json!({"data": string_map(), "binaryData": string_map()})),
        ("", "Secret") => obj(json!({"data": string_map(), "stringData": string_map()})),
        ("", "PersistentVolumeClaim") => obj(json!({
            "spec": obj(json!({
                "selector": atomic(),
                "dataSource": atomic(),
                "dataSourceRef": atomic(),
                "resources": resources(),
            })),
            "status": obj(json!({"conditions": conditions(), "capacity": string_map()})),
        })),
        ("", "Namespace") => obj(json!({"status": obj(json!({"conditions": conditions()}))})),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") | ("batch", "Job") => {
            workload()
        }
        ("batch", "CronJob") => obj(json!({
            "spec": obj(json!({"jobTemplate": obj(json!({
                "spec": obj(json!({"selector": atomic(), "template": pod_template()})),
            }))})),
        })),
        ("networking.k8s.io", "NetworkPolicy") => {
            obj(json!({"spec": obj(json!({"podSelector": atomic()}))}))
        }
        ("rbac.authorization.k8s.io", "RoleBinding")
        | ("rbac.authorization.k8s.io", "ClusterRoleBinding") => obj(json!({"roleRef": atomic()})),
        ("policy", "PodDisruptionBudget") => obj(json!({
            "spec": obj(json!({"selector": atomic()})),
            "status": obj(json!({"conditions": conditions()})),
        })),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            webhook_configuration()
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => obj(json!({
            "spec": obj(json!({"matchConditions": by_name(), "variables": by_name()})),
            "status": obj(json!({"conditions": conditions()})),
        })),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            obj(json!({"spec": obj(json!({"validationActions": set_list()}))}))
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            obj(json!({"status": obj(json!({"conditions": conditions()}))}))
        }
        _ => Value::Null,
    }
}
