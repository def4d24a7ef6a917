//! Reading manifests: files and folders of multi-document YAML or JSON, decoded into the
//! objects Annexa governs. Every error names the file, the document and, where it can, the
//! field; nothing panics on any input.

use crate::api::{
    API_VERSION, AgentPolicy, AgentPolicySpec, AgentPolicyStatus, CompliancePolicy,
    CompliancePolicySpec, CompliancePolicyStatus, GROUP, ModelApproval, ModelApprovalSpec,
    ModelApprovalStatus, ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus,
    TrainingDataset, TrainingDatasetSpec, TrainingDatasetStatus,
};
use crate::error::{Error, Result};
use crate::policy::Related;
use crate::policy::workload::{Workload, is_workload_kind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use strict::Strict;

mod bounds;
mod strict;

pub(crate) use bounds::text_within;

/// Largest file `annexa check` reads (a guard against runaway inputs).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Most documents (and `List` items) one file may hold.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Deepest `[`/`{` nesting read. The YAML parser refuses nesting past 128 levels anyway, but
/// only after time that grows with the square of the depth: this is refused before parsing.
pub const MAX_FLOW_NESTING: usize = 256;

/// Where a document came from: `file.yaml` (document 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based index of the document in the file.
    pub document: usize,
    /// 1-based line where the document starts, when known.
    pub line: Option<usize>,
    /// 1-based index in the document's `items` when the document is a `List`.
    pub item: Option<usize>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{} (document {}", self.file, line, self.document)?,
            None => write!(f, "{} (document {}", self.file, self.document)?,
        }
        match self.item {
            Some(item) => write!(f, ", item {item})"),
            None => write!(f, ")"),
        }
    }
}

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

#[derive(Clone, Debug)]
pub struct Document {
    pub origin: Origin,
    pub object: Object,
    /// The manifest names no `metadata.namespace`: a namespaced object was put in `default`
    /// (`annexa check -n` chooses another, as `kubectl apply -n` does).
    pub namespace_omitted: bool,
}

/// Expands paths (files, folders searched recursively for .yaml/.yml/.json, `-` for stdin)
/// in a stable order. Symbolic links to folders are followed, each folder read once (a link
/// back to a folder already read, a loop, is not followed again); anything that is not a
/// regular file or a folder (a FIFO, a socket, a device) is an error, never read.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut visited = std::collections::HashSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(path.clone());
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found, &mut visited)?;
            found.sort();
            out.extend(found);
        } else if meta.is_file() {
            out.push(path.clone());
        } else {
            return Err(not_regular(path));
        }
    }
    Ok(out)
}

fn not_regular(path: &Path) -> Error {
    Error::Input(format!(
        "{}: not a regular file (a FIFO, socket or device); annexa check reads files and folders",
        path.display()
    ))
}

fn walk(
    dir: &Path,
    found: &mut Vec<PathBuf>,
    visited: &mut std::collections::HashSet<PathBuf>,
) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        // Follows symbolic links: a link to a folder is walked, a link to a file read.
        let file_type = std::fs::metadata(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?
            .file_type();
        let manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if file_type.is_dir() {
            walk(&path, found, visited)?;
        } else if manifest && file_type.is_file() {
            found.push(path);
        } else if manifest {
            return Err(not_regular(&path));
        }
    }
    Ok(())
}

/// Reads a file (or stdin for `-`), refusing files over [`MAX_FILE_BYTES`].
pub fn read_source(path: &Path) -> Result<(String, String)> {
    let name = if path.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    } else {
        let file = std::fs::File::open(path).map_err(io)?;
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Input(format!(
            "{name}: file is larger than {} MiB; split it into smaller files",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let mut text = String::from_utf8(bytes)
        .map_err(|e| Error::Input(format!("{name}: not UTF-8 text ({e})")))?;
    // A UTF-8 byte order mark (editors on Windows write one) is not part of the YAML.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok((name, text))
}

/// Splits YAML (or JSON, a subset of YAML) into documents and decodes each one; a `List`
/// (`kind: List` or any `*List` kind with `items`) is expanded into its items.
/// Returns every document that decoded and every error (one per bad document).
pub fn parse_documents(file: &str, text: &str) -> (Vec<Document>, Vec<String>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    if let Some(line) = flow_nesting_beyond(text, MAX_FLOW_NESTING) {
        errors.push(format!(
            "{file}: line {line}: nesting deeper than {MAX_FLOW_NESTING} levels; nothing in this file was read"
        ));
        return (docs, errors);
    }
    let starts = document_start_lines(text);
    let mut count = 0;
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.to_string(),
            document: i + 1,
            line: starts.get(i).copied(),
            item: None,
        };
        count += 1;
        if count > MAX_DOCUMENTS {
            errors.push(format!(
                "{file}: more than {MAX_DOCUMENTS} documents and list items; split the file"
            ));
            break;
        }
        let value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let at = e
                    .location()
                    .map(|l| format!("{file}: line {} column {}", l.line(), l.column()))
                    .unwrap_or_else(|| format!("{file} (document {})", i + 1));
                errors.push(format!(
                    "{at}: malformed YAML: {}",
                    strip_location(&e.to_string())
                ));
                // A syntax error ends the stream: later documents cannot be trusted.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        if let Some(items) = list_items(&value) {
            let items = match items {
                Ok(items) => items,
                Err(e) => {
                    errors.push(format!("{origin}: {e}"));
                    continue;
                }
            };
            count += items.len();
            if count > MAX_DOCUMENTS {
                errors.push(format!(
                    "{file}: more than {MAX_DOCUMENTS} documents and list items; split the file"
                ));
                break;
            }
            for (j, item) in items.into_iter().enumerate() {
                let origin = Origin {
                    item: Some(j + 1),
                    ..origin.clone()
                };
                match decode(&item) {
                    Ok(object) => docs.push(Document {
                        origin,
                        object,
                        namespace_omitted: namespace_omitted(&item),
                    }),
                    Err(e) => errors.push(format!("{origin}: {e}")),
                }
            }
            continue;
        }
        match decode(&value) {
            Ok(object) => docs.push(Document {
                origin,
                object,
                namespace_omitted: namespace_omitted(&value),
            }),
            Err(e) => errors.push(format!("{origin}: {e}")),
        }
    }
    (docs, errors)
}

fn namespace_omitted(value: &Value) -> bool {
    value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
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

/// The items of a `List` document (`kind: List`, or `FooList` with `items`), `None` for any
/// other document. Items of a typed list (`ModelDeploymentList`) may omit `kind` and
/// `apiVersion`, as the API server writes them: they take the list's. A list inside a list is
/// an error (`kubectl` never writes one).
fn list_items(value: &Value) -> Option<Result<Vec<Value>, String>> {
    let kind = value.get("kind")?.as_str()?;
    let list_kind = kind.strip_suffix("List")?;
    let items = value.get("items")?;
    let Value::Array(items) = items else {
        return Some(Err(format!(
            "{kind}: items must be a list, found {}",
            type_name(items)
        )));
    };
    let api_version = value.get("apiVersion").cloned();
    let mut out = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let mut item = item.clone();
        if let Value::Object(map) = &mut item
            && !list_kind.is_empty()
        {
            if !map.contains_key("kind") {
                map.insert("kind".to_string(), Value::String(list_kind.to_string()));
            }
            if let Some(v) = &api_version
                && !map.contains_key("apiVersion")
            {
                map.insert("apiVersion".to_string(), v.clone());
            }
        }
        if item
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
            && item.get("items").is_some()
        {
            return Some(Err(format!(
                "{kind}: items[{j}] is itself a list; nested lists are not read"
            )));
        }
        out.push(item);
    }
    Some(Ok(out))
}

/// The 1-based line where `[`/`{` nesting first goes deeper than `limit`, if it does. Quoted
/// strings and comments are skipped; plain scalars are not told apart, so brackets inside
/// them count (as they would have to be nested `limit` deep to matter, real manifests never
/// come near).
fn flow_nesting_beyond(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut bytes = text.bytes().peekable();
    let mut previous = b'\n';
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => line += 1,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'#' if previous.is_ascii_whitespace() => {
                for c in bytes.by_ref() {
                    if c == b'\n' {
                        line += 1;
                        break;
                    }
                }
                previous = b'\n';
                continue;
            }
            b'"' if depth > 0 => {
                let mut escaped = false;
                for c in bytes.by_ref() {
                    match c {
                        b'\n' => line += 1,
                        b'\\' if !escaped => {
                            escaped = true;
                            continue;
                        }
                        b'"' if !escaped => break,
                        _ => {}
                    }
                    escaped = false;
                }
            }
            b'\'' if depth > 0 => {
                for c in bytes.by_ref() {
                    match c {
                        b'\n' => line += 1,
                        b'\'' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        previous = b;
    }
    None
}

fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// 1-based line numbers where each document starts (after `---` separators).
fn document_start_lines(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pending = Some(1);
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            if let Some(p) = pending.take() {
                // The first separator may open the first document.
                if i > 0
                    && text
                        .lines()
                        .take(i)
                        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                {
                    starts.push(p);
                }
            }
            pending = Some(i + 2);
        }
    }
    if let Some(p) = pending {
        starts.push(p);
    }
    starts
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
            Workload::from_object(kind, value).map_err(|e| format!("{kind} {name:?}: {e}"))?;
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

/// Decodes an Annexa kind strictly: unknown fields and wrong types are errors naming the field.
/// A required field that is missing beside an unknown one spelled like it is reported with the
/// suggestion (`missing field `image`; unknown field spec.imgae (did you mean `image`?)`).
pub fn typed<T: DeserializeOwned>(kind: &str, name: &str, value: &Value) -> Result<T, String> {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let p = field_path(&path);
        // Server-populated metadata and status are not the user's to get wrong.
        // `apiVersion` and `kind` were checked before decoding.
        if !p.starts_with("metadata.")
            && !p.starts_with("status.")
            && p != "apiVersion"
            && p != "kind"
        {
            unknown.push(p)
        }
    };
    let de = serde_ignored::Deserializer::new(value, &mut on_ignored);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    match result {
        Err(e) => {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let hint = missing_field(&message)
                .map(|missing| typo_hint(&path, missing, &unknown))
                .unwrap_or_default();
            Err(format!("{kind} {name:?}: field {path}: {message}{hint}"))
        }
        Ok(_) if !unknown.is_empty() => Err(format!(
            "{kind} {name:?}: unknown field{} {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", ")
        )),
        Ok(v) => Ok(v),
    }
}

/// A field path as the rest of Annexa writes them: `spec.gpu.pools[0].taint` (serde_ignored
/// writes `spec.gpu.?.pools.0.taint`).
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The field serde reports missing (`missing field `image``), if that is the error.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// `; unknown field spec.imgae (did you mean `image`?)` for the unknown fields beside the
/// missing one (`parent` is where serde found it missing); the suggestion when one is spelled
/// within two edits of it.
fn typo_hint(parent: &str, missing: &str, unknown: &[String]) -> String {
    let siblings: Vec<&String> = unknown
        .iter()
        .filter(|u| {
            let (dir, _) = u.rsplit_once('.').unwrap_or(("", u.as_str()));
            dir == parent
        })
        .collect();
    let mut out = String::new();
    for field in siblings {
        let leaf = field.rsplit_once('.').map_or(field.as_str(), |(_, l)| l);
        out.push_str(&format!("; unknown field {field}"));
        if edit_distance(leaf, missing) <= 2 {
            out.push_str(&format!(" (did you mean `{missing}`?)"));
        }
    }
    out
}

/// Levenshtein distance (field names are short; hand-written, no crate needed for this).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
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

/// The top level of an Annexa object read straight from JSON text, without a `Value` (the
/// admission fast path): metadata and status decoded as the kind's type decodes them (fields
/// they do not know are not the user's mistake), the spec kept raw for [`TopLevel::assemble`]
/// to decode strictly. Together they accept what [`typed`] accepts or less (a duplicate or
/// unknown top-level key, a mapping written as a list) and read it the same; they say nothing
/// about what they refuse: decode through [`decode`] to name the problem. The caller checks the
/// text with [`value_accepts`]: ignored fields are skipped here without looking inside.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TopLevel<'a, Status> {
    #[serde(borrow)]
    pub api_version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    pub metadata: ObjectMeta,
    #[serde(borrow)]
    pub spec: &'a RawValue,
    // Missing is None without `default` (which would ask for `Status: Default`).
    pub status: Option<Status>,
}

impl<'a, Status: DeserializeOwned> TopLevel<'a, Status> {
    pub(crate) fn read(json: &'a str) -> Option<Self> {
        serde_json::from_str::<MapOnly<Self>>(json)
            .ok()
            .map(|MapOnly(top)| top)
    }

    /// The object, its spec decoded strictly: None if the spec holds a field its type does not
    /// have or does not decode.
    pub(crate) fn assemble<K: AnnexaKind<Status = Status>>(self) -> Option<K> {
        let ignored = Cell::new(false);
        let mut de = serde_json::Deserializer::from_str(self.spec.get());
        let spec = K::Spec::deserialize(Strict::new(&mut de, &ignored)).ok()?;
        de.end().ok()?;
        (!ignored.get()).then(|| K::assemble(self.metadata, spec, self.status))
    }
}

/// Whether `serde_json` reads JSON text into a `Value`, checked without building one. Text the
/// webhook receives is only known to be well-formed; a `Value` also refuses nesting deeper than
/// 127 levels, lone surrogates in `\u` escapes, numbers beyond `f64`, and maps whose first key
/// is serde_json's raw-value token. The fast paths skip what they ignore without looking
/// inside, so they run only on text this accepts: they never read what the `Value` path
/// refuses.
pub(crate) fn value_accepts(json: &str) -> bool {
    serde_json::from_str::<ValueSyntax>(json).is_ok()
}

/// Any JSON value, visited the way `Value` visits it (strings, numbers and keys parsed, nesting
/// counted) and then dropped.
struct ValueSyntax;

impl<'de> Deserialize<'de> for ValueSyntax {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueSyntax)
    }
}

impl<'de> serde::de::Visitor<'de> for ValueSyntax {
    type Value = ValueSyntax;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<ValueSyntax>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut first = true;
        while let Some(FirstKey(token)) = map.next_key()? {
            if first && token {
                return Err(serde::de::Error::custom("raw value token"));
            }
            first = false;
            map.next_value::<ValueSyntax>()?;
        }
        Ok(self)
    }
}

/// A map key, and whether it is the token that makes a `Value` parse the entry's string as JSON.
struct FirstKey(bool);

impl<'de> Deserialize<'de> for FirstKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = FirstKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<FirstKey, E> {
                Ok(FirstKey(key == "$serde_json::private::RawValue"))
            }
        }
        deserializer.deserialize_str(Key)
    }
}

/// Decodes `T` from a JSON object only. A derived `Deserialize` also accepts a list of the
/// fields in order, which `Value::get` (what the `Value` path navigates with) never reads as
/// a mapping: without this, a fast path could read an object the slow path refuses.
pub(crate) struct MapOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Mapping<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Mapping<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Mapping(std::marker::PhantomData))
            .map(MapOnly)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Loads every document from the paths. Errors from every file are collected; the caller
/// decides what to do with a partial result (`annexa check` refuses to evaluate it).
pub fn load(paths: &[PathBuf]) -> (Vec<Document>, Vec<String>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let files = match expand_paths(paths) {
        Ok(f) => f,
        Err(e) => return (docs, vec![e.to_string()]),
    };
    for file in files {
        match read_source(&file) {
            Err(e) => errors.push(e.to_string()),
            Ok((name, text)) => {
                if text.trim().is_empty() {
                    errors.push(format!("{name}: file is empty"));
                    continue;
                }
                let (d, e) = parse_documents(&name, &text);
                docs.extend(d);
                errors.extend(e);
            }
        }
    }
    (docs, errors)
}
