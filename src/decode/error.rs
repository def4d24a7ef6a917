//! What goes wrong decoding one object, one variant per kind of failure. The Display is the
//! message users read: it names the object and, where it can, the field.

use crate::api::API_VERSION;

/// An object that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("expected a Kubernetes object (a mapping), found {found}")]
    NotAMapping { found: &'static str },
    #[error("kind must be a non-empty string, found {found}")]
    KindNotAString { found: &'static str },
    #[error("document has no kind")]
    NoKind,
    #[error("{kind}: apiVersion must be a string, found {found}")]
    ApiVersionNotAString { kind: String, found: &'static str },
    #[error("{kind}: document has no apiVersion")]
    NoApiVersion { kind: String },
    /// Annexa's group at a version it does not serve.
    #[error("{kind} {name:?}: apiVersion {api_version:?} is not served; use {served:?}", served = API_VERSION)]
    VersionNotServed {
        kind: String,
        name: String,
        api_version: String,
    },
    /// Annexa's apiVersion with a kind it does not define.
    #[error("{kind} {name:?}: {served} has no kind {kind:?}", served = API_VERSION)]
    NoSuchKind { kind: String, name: String },
    #[error("{kind}: metadata.name is required")]
    NoName { kind: String },
    /// Over a size bound of the kind's CRD schema, in the API server's words.
    #[error("{kind} {name:?}: {source}")]
    TooLarge {
        kind: String,
        name: String,
        #[source]
        source: Exceeded,
    },
    /// A field of the wrong type or value, or a required field missing (`hint` names unknown
    /// fields beside it, with the one it was probably meant to be).
    #[error("{kind} {name:?}: field {path}: {source}{hint}")]
    Field {
        kind: String,
        name: String,
        path: String,
        #[source]
        source: serde_json::Error,
        hint: String,
    },
    #[error("{kind} {name:?}: unknown field{} {}", plural(.fields), .fields.join(", "))]
    UnknownFields {
        kind: String,
        name: String,
        fields: Vec<String>,
    },
    #[error("Namespace {name:?}: metadata.labels: {source}")]
    NamespaceLabels {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{kind} {name:?}: {source}")]
    Workload {
        kind: String,
        name: String,
        #[source]
        source: WorkloadError,
    },
}

fn plural(items: &[String]) -> &'static str {
    if items.len() > 1 { "s" } else { "" }
}

/// A workload whose pod (its spec, or its template) does not decode. Display names the field.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{kind} is not a workload kind")]
    NotAWorkload { kind: String },
    #[error("{path}: missing")]
    Missing { path: String },
    #[error("{path}: {source}")]
    Field {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The first size bound of a CRD schema an object exceeds, in the API server's words:
/// `spec.x: Too many: must have at most 64 items`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {limit}")]
pub struct Exceeded {
    pub path: String,
    pub limit: Limit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    #[error("Too long: may not be more than {0} characters")]
    Length(usize),
    #[error("Too many: must have at most {0} items")]
    Items(usize),
    #[error("Too many: must have at most {0} properties")]
    Properties(usize),
}
