//! Decoding workloads: a Pod, or the pod template of a Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job or CronJob, read into the [`Workload`] the rules evaluate. Only the fields the
//! rules read are decoded (the views of [`crate::policy::workload`]), which keeps the admission
//! path close to the cost of parsing the review.

use super::{MapOnly, WorkloadError};
use crate::policy::workload::{PodView, Workload, workload_kind};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use std::collections::BTreeMap;

/// Reads a workload from a whole object (`kind`, `metadata`, `spec`). Errors name the field.
pub fn from_object(kind: &str, object: &Value) -> Result<Workload, WorkloadError> {
    let entry = workload_kind(kind).ok_or_else(|| WorkloadError::NotAWorkload {
        kind: kind.to_string(),
    })?;
    let template_path = entry.template;
    let metadata = object.get("metadata");
    let text = |field: &str| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = {
        let n = text("name");
        if n.is_empty() {
            text("generateName")
        } else {
            n
        }
    };
    let namespace = text("namespace");
    let (labels, pod) = if template_path.is_empty() {
        let labels = match metadata.and_then(|m| m.get("labels")) {
            Some(l) => BTreeMap::<String, String>::deserialize(l)
                .map_err(|source| field("metadata.labels", source))?,
            None => BTreeMap::new(),
        };
        let pod = match object.get("spec") {
            Some(spec) => PodView::deserialize(spec).map_err(|source| field("spec", source))?,
            None => return Err(missing("spec")),
        };
        (labels, pod)
    } else {
        let mut node = object;
        for segment in template_path {
            node = node
                .get(segment)
                .ok_or_else(|| missing(&template_path.join(".")))?;
        }
        let path = template_path.join(".");
        let template = TemplateView::deserialize(node).map_err(|source| field(&path, source))?;
        (template.metadata.labels, template.spec)
    };
    Ok(Workload {
        kind: kind.to_string(),
        namespace,
        name,
        labels,
        pod,
        spec_path: entry.spec_path(),
    })
}

fn field(path: &str, source: serde_json::Error) -> WorkloadError {
    WorkloadError::Field {
        path: path.to_string(),
        source,
    }
}

fn missing(path: &str) -> WorkloadError {
    WorkloadError::Missing {
        path: path.to_string(),
    }
}

/// [`from_object`] straight from the object's JSON text, in one pass and without
/// a `Value` (the admission fast path). None where `from_object` might read something else
/// or fail (a missing or malformed field, a duplicate key, a mapping written as a list):
/// call it for the error. The caller checks the text with [`super::value_accepts`].
pub(crate) fn from_json(kind: &str, json: &str) -> Option<Workload> {
    let entry = workload_kind(kind)?;
    let (metadata, labels, pod) = match kind {
        "Pod" => {
            let MapOnly(object) = serde_json::from_str::<
                MapOnly<ObjectView<BTreeMap<String, String>, PodView>>,
            >(json)
            .ok()?;
            let pod = object.spec?;
            match object.metadata {
                Some(MapOnly(m)) => (Some((m.name, m.generate_name, m.namespace)), m.labels, pod),
                None => (None, BTreeMap::new(), pod),
            }
        }
        "CronJob" => {
            let MapOnly(object) = serde_json::from_str::<
                MapOnly<ObjectView<IgnoredAny, MapOnly<WithJobTemplate>>>,
            >(json)
            .ok()?;
            let template = object.spec?.0.job_template?.0.spec?.0.template?;
            let metadata = object
                .metadata
                .map(|MapOnly(m)| (m.name, m.generate_name, m.namespace));
            (metadata, template.metadata.labels, template.spec)
        }
        _ => {
            let MapOnly(object) = serde_json::from_str::<
                MapOnly<ObjectView<IgnoredAny, MapOnly<WithTemplate>>>,
            >(json)
            .ok()?;
            let template = object.spec?.0.template?;
            let metadata = object
                .metadata
                .map(|MapOnly(m)| (m.name, m.generate_name, m.namespace));
            (metadata, template.metadata.labels, template.spec)
        }
    };
    let (name, generate_name, namespace) = metadata.unwrap_or_default();
    Some(Workload {
        kind: kind.to_string(),
        namespace: namespace.unwrap_or_default(),
        name: name
            .filter(|n| !n.is_empty())
            .or(generate_name)
            .unwrap_or_default(),
        labels,
        pod,
        spec_path: entry.spec_path(),
    })
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
struct TemplateView {
    #[serde(default)]
    metadata: MetaView,
    #[serde(default)]
    spec: PodView,
}

#[derive(Deserialize, Default, Debug, Clone)]
struct MetaView {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Object metadata as a workload reads it: `Labels` is a map for a Pod and ignored for the
/// other kinds, whose pod labels are the template's.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMetaView<Labels> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Labels,
}

/// A workload object as [`from_json`] reads it; `Spec` leads to the pod spec.
#[derive(Deserialize)]
#[serde(bound(deserialize = "Labels: Deserialize<'de> + Default, Spec: Deserialize<'de>"))]
struct ObjectView<Labels, Spec> {
    // Missing is None without `default` (which would ask for `Spec: Default`).
    metadata: Option<MapOnly<ObjectMetaView<Labels>>>,
    spec: Option<Spec>,
}

#[derive(Deserialize)]
struct WithTemplate {
    #[serde(default)]
    template: Option<TemplateView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WithJobTemplate {
    #[serde(default)]
    job_template: Option<MapOnly<JobTemplateView>>,
}

#[derive(Deserialize)]
struct JobTemplateView {
    #[serde(default)]
    spec: Option<MapOnly<WithTemplate>>,
}
