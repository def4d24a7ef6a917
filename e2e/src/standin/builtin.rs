//! Built-in kinds decoded and validated as kube-apiserver does it.
//!
//! Two steps, in kube-apiserver's order:
//!
//! 1. **Decoding** into the typed object (the k8s-openapi structs stand in for the Go types): a
//!    value of the wrong JSON type is a 400 `cannot be handled as a Deployment: json: cannot
//!    unmarshal …`, and a field the type does not declare is handled per `fieldValidation`
//!    (Strict: 400 `strict decoding error: unknown field "spec.foo"`; Warn, the default: the
//!    field is dropped and named in a `Warning` header; Ignore: dropped silently).
//! 2. **Validation** of the decoded object with the rules of kube-apiserver's
//!    `pkg/apis/*/validation` that Annexa's objects and the e2e cases meet: object metadata
//!    (names, labels, annotations), pod specs (also inside workload templates), Deployment
//!    and other workload selectors, Services, NetworkPolicies, RBAC roles and bindings,
//!    PersistentVolumeClaims, ConfigMaps and Secrets. Failures are a 422 `Invalid` Status
//!    with `details.causes`, worded as kube-apiserver words them. Rules not listed here are
//!    not checked (`e2e/README.md` says which).
//!
//! Nothing is defaulted (kube-apiserver defaults before it validates): a field whose default
//! would satisfy a rule is accepted when absent.

use std::collections::{BTreeSet, HashSet};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::api::ApiError;
use super::registry::ResourceType;
use super::selectors::LabelSelector;

/// One field error, as `k8s.io/apimachinery/pkg/util/validation/field.Error` renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ... as in a Status's `details.causes`.
    pub reason: &'static str,
    pub field: String,
    /// The text after `field: `, e.g. `Required value` or `Invalid value: "x": detail`.
    pub message: String,
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn required(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired",
        field: field.to_string(),
        message: if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        },
    }
}

fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: field.to_string(),
        message: format!("Invalid value: {}: {detail}", render(value)),
    }
}

fn duplicate(field: &str, value: &Value) -> Cause {
    Cause {
        reason: "FieldValueDuplicate",
        field: field.to_string(),
        message: format!("Duplicate value: {}", render(value)),
    }
}

fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Cause {
    let listed: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    Cause {
        reason: "FieldValueNotSupported",
        field: field.to_string(),
        message: format!(
            "Unsupported value: {}: supported values: {}",
            render(value),
            listed.join(", ")
        ),
    }
}

fn forbidden(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden",
        field: field.to_string(),
        message: format!("Forbidden: {detail}"),
    }
}

fn not_found(field: &str, value: &Value) -> Cause {
    Cause {
        reason: "FieldValueNotFound",
        field: field.to_string(),
        message: format!("Not found: {}", render(value)),
    }
}

fn too_long(field: &str, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooLong",
        field: field.to_string(),
        message: format!("Too long: must have at most {max} bytes"),
    }
}

fn child(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// A segment of a field path in an object.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// kube-apiserver's spelling of a path: `spec.containers[0].name`.
fn dotted(path: &[Segment]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn ignored_path(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
    match path {
        serde_ignored::Path::Root => {}
        serde_ignored::Path::Seq { parent, index } => {
            ignored_path(parent, out);
            out.push(Segment::Index(*index));
        }
        serde_ignored::Path::Map { parent, key } => {
            ignored_path(parent, out);
            out.push(Segment::Key(key.clone()));
        }
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent, out),
    }
}

/// Why an object could not be decoded into its type.
#[derive(Debug)]
struct DecodeError {
    path: Vec<Segment>,
    message: String,
    /// The schema of the kind (JSON Schema of the k8s-openapi type), for Go type names.
    schema: Value,
}

fn decode<T: DeserializeOwned + schemars::JsonSchema>(
    obj: &Value,
) -> Result<Vec<Vec<Segment>>, DecodeError> {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let mut segments = Vec::new();
        ignored_path(&path, &mut segments);
        unknown.push(segments);
    };
    let de = serde_ignored::Deserializer::new(obj, &mut on_ignored);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    match result {
        Ok(_) => Ok(unknown),
        Err(e) => {
            let path = e
                .path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                    _ => None,
                })
                .collect();
            let schema = schemars::SchemaGenerator::default()
                .into_root_schema_for::<T>()
                .to_value();
            Err(DecodeError {
                path,
                message: e.into_inner().to_string(),
                schema,
            })
        }
    }
}

/// Decodes `obj` as the k8s-openapi type of its kind; `None` for kinds not covered here.
fn decode_kind(rt: &ResourceType, obj: &Value) -> Option<Result<Vec<Vec<Segment>>, DecodeError>> {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
        networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    };
    Some(
        match (rt.group.as_str(), rt.version.as_str(), rt.plural.as_str()) {
            ("", "v1", "namespaces") => decode::<core::Namespace>(obj),
            ("", "v1", "pods") => decode::<core::Pod>(obj),
            ("", "v1", "services") => decode::<core::Service>(obj),
            ("", "v1", "serviceaccounts") => decode::<core::ServiceAccount>(obj),
            ("", "v1", "configmaps") => decode::<core::ConfigMap>(obj),
            ("", "v1", "secrets") => decode::<core::Secret>(obj),
            ("", "v1", "persistentvolumeclaims") => decode::<core::PersistentVolumeClaim>(obj),
            ("apps", "v1", "deployments") => decode::<apps::Deployment>(obj),
            ("apps", "v1", "statefulsets") => decode::<apps::StatefulSet>(obj),
            ("apps", "v1", "daemonsets") => decode::<apps::DaemonSet>(obj),
            ("apps", "v1", "replicasets") => decode::<apps::ReplicaSet>(obj),
            ("batch", "v1", "jobs") => decode::<batch::Job>(obj),
            ("batch", "v1", "cronjobs") => decode::<batch::CronJob>(obj),
            ("rbac.authorization.k8s.io", "v1", "roles") => decode::<rbac::Role>(obj),
            ("rbac.authorization.k8s.io", "v1", "clusterroles") => decode::<rbac::ClusterRole>(obj),
            ("rbac.authorization.k8s.io", "v1", "rolebindings") => decode::<rbac::RoleBinding>(obj),
            ("rbac.authorization.k8s.io", "v1", "clusterrolebindings") => {
                decode::<rbac::ClusterRoleBinding>(obj)
            }
            ("networking.k8s.io", "v1", "networkpolicies") => {
                decode::<networking::NetworkPolicy>(obj)
            }
            ("coordination.k8s.io", "v1", "leases") => decode::<coordination::Lease>(obj),
            ("policy", "v1", "poddisruptionbudgets") => decode::<policy::PodDisruptionBudget>(obj),
            _ => return None,
        },
    )
}

/// Follows `$ref`s of a schemars root schema; returns the schema and the definition's name.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> (&'a Value, Option<&'a str>) {
    let mut name = None;
    for _ in 0..8 {
        let Some(reference) = schema["$ref"].as_str() else {
            break;
        };
        let def = reference.rsplit('/').next().unwrap_or_default();
        name = Some(def);
        schema = &root["$defs"][def];
    }
    (schema, name)
}

/// `io.k8s.api.apps.v1.DeploymentSpec` -> `v1.DeploymentSpec`, as Go's `%v` of a type.
fn go_name(definition: &str) -> String {
    let mut parts = definition.rsplit('.');
    let name = parts.next().unwrap_or(definition);
    match (name, parts.next()) {
        ("Quantity", _) => "resource.Quantity".to_string(),
        ("IntOrString", _) => "intstr.IntOrString".to_string(),
        (_, Some(package)) => format!("{package}.{name}"),
        (_, None) => name.to_string(),
    }
}

fn go_type(root: &Value, schema: &Value) -> String {
    let (schema, name) = resolve(root, schema);
    if let Some(name) = name {
        return go_name(name);
    }
    let ty = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or_default()
            .to_string(),
        other => other.as_str().unwrap_or_default().to_string(),
    };
    match ty.as_str() {
        "integer" => schema["format"].as_str().unwrap_or("int64").to_string(),
        "number" => "float64".to_string(),
        "boolean" => "bool".to_string(),
        "string" => "string".to_string(),
        "array" => format!("[]{}", go_type(root, &schema["items"])),
        "object" => format!(
            "map[string]{}",
            go_type(root, &schema["additionalProperties"])
        ),
        _ => "interface {}".to_string(),
    }
}

fn json_kind(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::String(_)) => "string",
        Some(Value::Number(_)) => "number",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
        _ => "null",
    }
}

fn at<'a>(obj: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    let mut v = obj;
    for s in path {
        v = match s {
            Segment::Key(k) => v.get(k)?,
            Segment::Index(i) => v.get(i)?,
        };
    }
    Some(v)
}

/// Go's `encoding/json` wording for a value of the wrong type: `json: cannot unmarshal string
/// into Go struct field DeploymentSpec.spec.replicas of type int32`.
fn unmarshal_message(obj: &Value, e: &DecodeError) -> String {
    let fallback = format!("{}: {}", dotted(&e.path), e.message);
    if !e.message.starts_with("invalid type") {
        return fallback;
    }
    let root = &e.schema;
    let mut schema = root;
    let mut parent = None;
    for s in &e.path {
        let (resolved, name) = resolve(root, schema);
        if name.is_some() {
            parent = name;
        }
        schema = match s {
            Segment::Key(k) => match resolved["properties"].get(k) {
                Some(p) => p,
                None => &resolved["additionalProperties"],
            },
            Segment::Index(_) => &resolved["items"],
        };
    }
    if schema.is_null() {
        return fallback;
    }
    let field: Vec<&str> = e
        .path
        .iter()
        .filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Index(_) => None,
        })
        .collect();
    let struct_name = parent
        .map(|p| p.rsplit('.').next().unwrap_or(p))
        .unwrap_or_default();
    format!(
        "json: cannot unmarshal {} into Go struct field {struct_name}.{} of type {}",
        json_kind(at(obj, &e.path)),
        field.join("."),
        go_type(root, schema)
    )
}

fn remove(obj: &mut Value, path: &[Segment]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut v = obj;
    for s in parents {
        let next = match s {
            Segment::Key(k) => v.get_mut(k),
            Segment::Index(i) => v.get_mut(*i),
        };
        let Some(next) = next else {
            return;
        };
        v = next;
    }
    if let (Segment::Key(k), Some(map)) = (last, v.as_object_mut()) {
        map.remove(k);
    }
}

/// Decodes and validates a built-in object for a write. Unknown fields are dropped from `obj`
/// unless `fieldValidation` is Strict (then they are an error); the warnings to send back are
/// returned. Kinds not covered here pass unchanged.
pub fn check(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    field_validation: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {detail}",
            kind = rt.kind,
            version = rt.version
        ))
    };
    let unknown = match decode_kind(rt, obj) {
        None => return Ok(Vec::new()),
        Some(Err(e)) => return Err(cannot(unmarshal_message(obj, &e))),
        Some(Ok(unknown)) => unknown,
    };
    let listed: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{}\"", dotted(p)))
        .collect();
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        if field_validation == Some("Strict") {
            return Err(cannot(format!(
                "strict decoding error: {}",
                listed.join(", ")
            )));
        }
        for path in &unknown {
            remove(obj, path);
        }
        if field_validation != Some("Ignore") {
            warnings = listed;
        }
    }
    let causes = validate(rt, obj, old);
    if causes.is_empty() {
        Ok(warnings)
    } else {
        Err(invalid_status(rt, obj, &causes))
    }
}

/// Decodes and validates one built-in object (as `kubectl create` sends it, `Strict` by
/// default) outside the server: what a write of it would answer, without the name rules the
/// server checks on create. `Ok` for kinds not covered here.
pub fn check_object(obj: &Value, field_validation: Option<&str>) -> Result<Vec<String>, ApiError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let registry = super::registry::Registry::default();
    let Some(rt) = registry
        .all()
        .iter()
        .find(|rt| rt.api_version() == api_version && rt.kind == kind)
    else {
        return Ok(Vec::new());
    };
    let mut obj = obj.clone();
    let warnings = check(rt, &mut obj, None, field_validation)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if rt.group == RBAC_GROUP {
        path_segment("metadata.name", name, &mut causes);
    } else if rt.plural == "namespaces" {
        names(
            "metadata.name",
            name,
            dns1123_label_errors(name),
            &mut causes,
        );
    } else if rt.plural != "services" {
        names(
            "metadata.name",
            name,
            dns1123_subdomain_errors(name),
            &mut causes,
        );
    }
    if causes.is_empty() {
        Ok(warnings)
    } else {
        Err(invalid_status(rt, &obj, &causes))
    }
}

/// The 422 Status kube-apiserver sends for field errors.
pub fn invalid_status(rt: &ResourceType, obj: &Value, causes: &[Cause]) -> ApiError {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let kind = if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    let texts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let joined = if texts.len() == 1 {
        texts.join("")
    } else {
        format!("[{}]", texts.join(", "))
    };
    let detail: Vec<Value> = causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect();
    ApiError::new(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {joined}"),
    )
    .with_details(json!({"name": name, "kind": rt.kind, "group": rt.group, "causes": detail}))
}

// ---------------------------------------------------------------------------------------------
// Name and label syntax (k8s.io/apimachinery/pkg/util/validation)

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        });
    if !ok {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

fn dns1035_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        out.push(DNS1035_LABEL_MSG.to_string());
    }
    out
}

fn name_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// `IsQualifiedName`: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters.
fn qualified_name_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else {
                out.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            out.push(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return out;
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !name_part_ok(name) {
        out.push(QUALIFIED_NAME_MSG.to_string());
    }
    out
}

fn label_value_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !name_part_ok(s) {
        out.push(LABEL_VALUE_MSG.to_string());
    }
    out
}

/// `IsValidPortName` (IANA service names).
fn port_name_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        out.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        out.push("must not begin or end with a hyphen".into());
    }
    out
}

fn port_number_ok(v: &Value) -> bool {
    v.as_i64().is_some_and(|p| (1..=65535).contains(&p))
}

fn names(path: &str, value: &str, errors: Vec<String>, causes: &mut Vec<Cause>) {
    for m in errors {
        causes.push(invalid(path, &json!(value), &m));
    }
}

fn labels(path: &str, map: &Value, causes: &mut Vec<Cause>) {
    let Some(map) = map.as_object() else {
        return;
    };
    for (k, v) in map {
        names(path, k, qualified_name_errors(k), causes);
        let v = v.as_str().unwrap_or_default();
        names(path, v, label_value_errors(v), causes);
    }
}

const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

fn annotations(path: &str, map: &Value, causes: &mut Vec<Cause>) {
    let Some(map) = map.as_object() else {
        return;
    };
    let mut total = 0;
    for (k, v) in map {
        names(path, k, qualified_name_errors(&k.to_lowercase()), causes);
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE {
        causes.push(too_long(path, TOTAL_ANNOTATION_SIZE));
    }
}

fn object_meta(path: &str, meta: &Value, causes: &mut Vec<Cause>) {
    labels(&child(path, "labels"), &meta["labels"], causes);
    annotations(&child(path, "annotations"), &meta["annotations"], causes);
}

fn label_selector(path: &str, selector: &Value, causes: &mut Vec<Cause>) {
    labels(
        &child(path, "matchLabels"),
        &selector["matchLabels"],
        causes,
    );
    let Some(exprs) = selector["matchExpressions"].as_array() else {
        return;
    };
    for (i, e) in exprs.iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values = e["values"].as_array().map_or(0, Vec::len);
        match e["operator"].as_str().unwrap_or_default() {
            "In" | "NotIn" if values == 0 => causes.push(required(
                &child(&p, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if values > 0 => causes.push(forbidden(
                &child(&p, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(invalid(
                &child(&p, "operator"),
                &json!(other),
                "not a valid selector operator",
            )),
        }
        let k = e["key"].as_str().unwrap_or_default();
        names(&child(&p, "key"), k, qualified_name_errors(k), causes);
    }
}

fn selector_empty(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(Map::is_empty)
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

// ---------------------------------------------------------------------------------------------
// Kinds

/// Field errors of a built-in object (`old` on updates), in kube-apiserver's order and wording.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    if rt.group.is_empty() && rt.plural == "services" {
        names(
            "metadata.name",
            name,
            dns1035_label_errors(name),
            &mut causes,
        );
    }
    object_meta("metadata", meta, &mut causes);
    let spec = &obj["spec"];
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => pod_spec("spec", spec, None, &mut causes),
        ("", "services") => service(spec, &mut causes),
        ("", "persistentvolumeclaims") => pvc(spec, old, &mut causes),
        ("", "configmaps") => config_data(obj, old, true, &mut causes),
        ("", "secrets") => config_data(obj, old, false, &mut causes),
        ("", "serviceaccounts") => {}
        ("apps", "deployments") => {
            workload(spec, old, "deployment", &mut causes);
            deployment_strategy(spec, &mut causes);
        }
        ("apps", "replicasets") => workload(spec, old, "replicaset", &mut causes),
        ("apps", "statefulsets") => workload(spec, old, "statefulset", &mut causes),
        ("apps", "daemonsets") => workload(spec, old, "daemonset", &mut causes),
        ("batch", "jobs") => job_template("spec.template", &spec["template"], &mut causes),
        ("batch", "cronjobs") => job_template(
            "spec.jobTemplate.spec.template",
            &spec["jobTemplate"]["spec"]["template"],
            &mut causes,
        ),
        ("networking.k8s.io", "networkpolicies") => network_policy(spec, &mut causes),
        ("rbac.authorization.k8s.io", "roles") => rbac_rules(obj, true, &mut causes),
        ("rbac.authorization.k8s.io", "clusterroles") => rbac_rules(obj, false, &mut causes),
        ("rbac.authorization.k8s.io", "rolebindings") => binding(obj, old, true, &mut causes),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            binding(obj, old, false, &mut causes)
        }
        _ => {}
    }
    causes
}

fn non_negative(path: &str, v: &Value, causes: &mut Vec<Cause>) {
    if v.as_i64().is_some_and(|n| n < 0) {
        causes.push(invalid(path, v, "must be greater than or equal to 0"));
    }
}

/// Deployments, ReplicaSets, StatefulSets and DaemonSets: a non-empty selector that matches
/// the template's labels and never changes.
fn workload(spec: &Value, old: Option<&Value>, what: &str, causes: &mut Vec<Cause>) {
    non_negative("spec.replicas", &spec["replicas"], causes);
    for f in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        non_negative(&child("spec", f), &spec[f], causes);
    }
    let selector = &spec["selector"];
    if selector.is_null() {
        causes.push(required("spec.selector", ""));
    } else {
        label_selector("spec.selector", selector, causes);
        if selector_empty(selector) {
            causes.push(invalid(
                "spec.selector",
                selector,
                &format!("empty selector is invalid for {what}"),
            ));
        }
    }
    let template = &spec["template"];
    object_meta("spec.template.metadata", &template["metadata"], causes);
    if !selector.is_null()
        && !selector_empty(selector)
        && let Ok(sel) = LabelSelector::from_object(selector)
        && !sel.matches(template["metadata"]["labels"].as_object())
    {
        causes.push(invalid(
            "spec.template.metadata.labels",
            &template["metadata"]["labels"],
            "`selector` does not match template `labels`",
        ));
    }
    let restart: &[&str] = &["Always"];
    pod_spec(
        "spec.template.spec",
        &template["spec"],
        Some(restart),
        causes,
    );
    if let Some(old) = old
        && old["spec"]["selector"] != *selector
    {
        causes.push(invalid("spec.selector", selector, "field is immutable"));
    }
}

fn deployment_strategy(spec: &Value, causes: &mut Vec<Cause>) {
    let strategy = &spec["strategy"];
    match strategy["type"].as_str() {
        None | Some("RollingUpdate") => {}
        Some("Recreate") => {
            if !strategy["rollingUpdate"].is_null() {
                causes.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        Some(other) => causes.push(not_supported(
            "spec.strategy.type",
            &json!(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

fn job_template(path: &str, template: &Value, causes: &mut Vec<Cause>) {
    object_meta(&child(path, "metadata"), &template["metadata"], causes);
    let spec = &template["spec"];
    let restart: &[&str] = &["OnFailure", "Never"];
    if spec["restartPolicy"].is_null() {
        causes.push(required(
            &child(path, "spec.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        ));
    }
    pod_spec(&child(path, "spec"), spec, Some(restart), causes);
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `ValidatePodSpec` for the rules listed in the module documentation. `restart` is what a
/// workload template allows (`None` for a Pod: any of the three policies).
fn pod_spec(path: &str, spec: &Value, restart: Option<&[&str]>, causes: &mut Vec<Cause>) {
    let mut volume_names = HashSet::new();
    if let Some(volumes) = spec["volumes"].as_array() {
        for (i, v) in volumes.iter().enumerate() {
            let p = index(&child(path, "volumes"), i);
            let name = v["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                causes.push(required(&child(&p, "name"), ""));
            } else {
                names(&child(&p, "name"), name, dns1123_label_errors(name), causes);
                if !volume_names.insert(name.to_string()) {
                    causes.push(duplicate(&child(&p, "name"), &json!(name)));
                }
            }
            let sources: Vec<&&str> = VOLUME_SOURCES
                .iter()
                .filter(|s| !v[**s].is_null())
                .collect();
            match sources.as_slice() {
                [] => causes.push(required(&p, "must specify a volume type")),
                [one] => {
                    if **one == "hostPath"
                        && v["hostPath"]["path"].as_str().is_none_or(str::is_empty)
                    {
                        causes.push(required(&child(&p, "hostPath.path"), ""));
                    }
                    if **one == "persistentVolumeClaim"
                        && v["persistentVolumeClaim"]["claimName"]
                            .as_str()
                            .is_none_or(str::is_empty)
                    {
                        causes.push(required(&child(&p, "persistentVolumeClaim.claimName"), ""));
                    }
                }
                [_, second, ..] => causes.push(forbidden(
                    &child(&p, second),
                    "may not specify more than 1 volume type",
                )),
            }
        }
    }
    let mut container_names = HashSet::new();
    let containers = spec["containers"].as_array();
    if containers.is_none_or(Vec::is_empty) {
        causes.push(required(&child(path, "containers"), ""));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(items) = spec[list].as_array() else {
            continue;
        };
        for (i, c) in items.iter().enumerate() {
            container(
                &index(&child(path, list), i),
                c,
                &volume_names,
                &mut container_names,
                causes,
            );
        }
    }
    if let Some(policy) = spec["restartPolicy"].as_str() {
        let allowed = restart.unwrap_or(&["Always", "OnFailure", "Never"]);
        if !allowed.contains(&policy) {
            causes.push(not_supported(
                &child(path, "restartPolicy"),
                &json!(policy),
                allowed,
            ));
        }
    }
    if let Some(account) = spec["serviceAccountName"].as_str()
        && !account.is_empty()
    {
        names(
            &child(path, "serviceAccountName"),
            account,
            dns1123_subdomain_errors(account),
            causes,
        );
    }
    labels(&child(path, "nodeSelector"), &spec["nodeSelector"], causes);
    if let Some(tolerations) = spec["tolerations"].as_array() {
        for (i, t) in tolerations.iter().enumerate() {
            let p = index(&child(path, "tolerations"), i);
            match t["operator"].as_str() {
                None | Some("Equal") => {}
                Some("Exists") => {
                    if t["value"].as_str().is_some_and(|v| !v.is_empty()) {
                        causes.push(invalid(
                            &child(&p, "operator"),
                            &t["operator"],
                            "value must be empty when `operator` is 'Exists'",
                        ));
                    }
                }
                Some(other) => causes.push(not_supported(
                    &child(&p, "operator"),
                    &json!(other),
                    &["Equal", "Exists"],
                )),
            }
            if let Some(effect) = t["effect"].as_str()
                && !effect.is_empty()
                && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
            {
                causes.push(not_supported(
                    &child(&p, "effect"),
                    &json!(effect),
                    &["NoExecute", "NoSchedule", "PreferNoSchedule"],
                ));
            }
        }
    }
}

fn container(
    path: &str,
    c: &Value,
    volumes: &HashSet<String>,
    seen: &mut HashSet<String>,
    causes: &mut Vec<Cause>,
) {
    let name = c["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        causes.push(required(&child(path, "name"), ""));
    } else {
        names(
            &child(path, "name"),
            name,
            dns1123_label_errors(name),
            causes,
        );
        if !seen.insert(name.to_string()) {
            causes.push(duplicate(&child(path, "name"), &json!(name)));
        }
    }
    let image = c["image"].as_str().unwrap_or_default();
    if image.is_empty() {
        causes.push(required(&child(path, "image"), ""));
    } else if image.trim() != image {
        causes.push(invalid(
            &child(path, "image"),
            &json!(image),
            "must not have leading or trailing whitespace",
        ));
    }
    let mut port_names = HashSet::new();
    if let Some(ports) = c["ports"].as_array() {
        for (i, port) in ports.iter().enumerate() {
            let p = index(&child(path, "ports"), i);
            if let Some(n) = port["name"].as_str()
                && !n.is_empty()
            {
                names(&child(&p, "name"), n, port_name_errors(n), causes);
                if !port_names.insert(n.to_string()) {
                    causes.push(duplicate(&child(&p, "name"), &json!(n)));
                }
            }
            let number = &port["containerPort"];
            if number.is_null() || number.as_i64() == Some(0) {
                causes.push(required(&child(&p, "containerPort"), ""));
            } else if !port_number_ok(number) {
                causes.push(invalid(&child(&p, "containerPort"), number, PORT_RANGE_MSG));
            }
            let host = &port["hostPort"];
            if !host.is_null() && host.as_i64() != Some(0) && !port_number_ok(host) {
                causes.push(invalid(&child(&p, "hostPort"), host, PORT_RANGE_MSG));
            }
            protocol(&child(&p, "protocol"), &port["protocol"], causes);
        }
    }
    let mut mount_paths = HashSet::new();
    if let Some(mounts) = c["volumeMounts"].as_array() {
        for (i, m) in mounts.iter().enumerate() {
            let p = index(&child(path, "volumeMounts"), i);
            let volume = m["name"].as_str().unwrap_or_default();
            if volume.is_empty() {
                causes.push(required(&child(&p, "name"), ""));
            } else if !volumes.contains(volume) {
                causes.push(not_found(&child(&p, "name"), &json!(volume)));
            }
            let mount_path = m["mountPath"].as_str().unwrap_or_default();
            if mount_path.is_empty() {
                causes.push(required(&child(&p, "mountPath"), ""));
            } else if !mount_paths.insert(mount_path.to_string()) {
                causes.push(invalid(
                    &child(&p, "mountPath"),
                    &json!(mount_path),
                    "must be unique",
                ));
            }
        }
    }
    if let Some(env) = c["env"].as_array() {
        for (i, e) in env.iter().enumerate() {
            let p = index(&child(path, "env"), i);
            if e["name"].as_str().is_none_or(str::is_empty) {
                causes.push(required(&child(&p, "name"), ""));
            }
        }
    }
    if let Some(policy) = c["imagePullPolicy"].as_str() {
        let allowed = ["Always", "IfNotPresent", "Never"];
        if !allowed.contains(&policy) {
            causes.push(not_supported(
                &child(path, "imagePullPolicy"),
                &json!(policy),
                &allowed,
            ));
        }
    }
}

fn protocol(path: &str, value: &Value, causes: &mut Vec<Cause>) {
    if let Some(p) = value.as_str()
        && !["TCP", "UDP", "SCTP"].contains(&p)
    {
        causes.push(not_supported(path, value, &["SCTP", "TCP", "UDP"]));
    }
}

fn service(spec: &Value, causes: &mut Vec<Cause>) {
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.contains(&ty) {
        causes.push(not_supported("spec.type", &spec["type"], &types));
    }
    let headless = spec["clusterIP"].as_str() == Some("None");
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if ty == "ExternalName" {
        if spec["externalName"].as_str().is_none_or(str::is_empty) {
            causes.push(required("spec.externalName", ""));
        }
    } else if ports.is_empty() && !headless {
        causes.push(required("spec.ports", ""));
    }
    let mut port_names = HashSet::new();
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = port["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            if ports.len() > 1 {
                causes.push(required(&child(&p, "name"), ""));
            }
        } else {
            names(&child(&p, "name"), name, dns1123_label_errors(name), causes);
            if !port_names.insert(name.to_string()) {
                causes.push(duplicate(&child(&p, "name"), &json!(name)));
            }
        }
        if !port_number_ok(&port["port"]) {
            causes.push(invalid(
                &child(&p, "port"),
                &json!(port["port"].as_i64().unwrap_or(0)),
                PORT_RANGE_MSG,
            ));
        }
        protocol(&child(&p, "protocol"), &port["protocol"], causes);
        match &port["targetPort"] {
            Value::Number(n) if n.as_i64() != Some(0) && !port_number_ok(&port["targetPort"]) => {
                causes.push(invalid(
                    &child(&p, "targetPort"),
                    &port["targetPort"],
                    PORT_RANGE_MSG,
                ));
            }
            Value::String(s) => {
                names(&child(&p, "targetPort"), s, port_name_errors(s), causes);
            }
            _ => {}
        }
        let node_port = &port["nodePort"];
        if !node_port.is_null() && node_port.as_i64() != Some(0) {
            if ty != "NodePort" && ty != "LoadBalancer" {
                causes.push(forbidden(
                    &child(&p, "nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !port_number_ok(node_port) {
                causes.push(invalid(&child(&p, "nodePort"), node_port, PORT_RANGE_MSG));
            }
        }
        let key = (
            port["port"].as_i64().unwrap_or(0),
            port["protocol"].as_str().unwrap_or("TCP").to_string(),
        );
        if !seen.insert(key.clone()) {
            causes.push(duplicate(&p, &json!({"port": key.0, "protocol": key.1})));
        }
    }
    labels("spec.selector", &spec["selector"], causes);
}

fn pvc(spec: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let modes = spec["accessModes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let supported = [
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    if modes.is_empty() {
        causes.push(required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for m in modes {
        if !m.as_str().is_some_and(|m| supported.contains(&m)) {
            causes.push(not_supported("spec.accessModes", m, &supported));
        }
    }
    let storage = &spec["resources"]["requests"]["storage"];
    if storage.is_null() {
        causes.push(required("spec.resources[storage]", ""));
    } else if quantity_is_zero(storage) {
        causes.push(invalid(
            "spec.resources.requests[storage]",
            &json!(
                storage
                    .as_str()
                    .map_or_else(|| storage.to_string(), str::to_string)
            ),
            "must be greater than zero",
        ));
    }
    if let Some(old) = old {
        let strip = |s: &Value| {
            let mut s = s.clone();
            if let Some(m) = s.as_object_mut() {
                m.remove("volumeAttributesClassName");
                if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
                    r.remove("requests");
                }
                // A claim bound by a controller gets its volumeName afterwards.
                m.remove("volumeName");
            }
            s
        };
        if strip(&old["spec"]) != strip(spec) {
            causes.push(forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
    }
}

fn quantity_is_zero(q: &Value) -> bool {
    match q {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => {
            let digits: String = s
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-')
                .collect();
            digits.parse::<f64>().is_ok_and(|v| v <= 0.0)
        }
        _ => false,
    }
}

/// ConfigMap (`data`, `binaryData`) and Secret (`data`, `stringData`) keys, size and
/// immutability.
fn config_data(obj: &Value, old: Option<&Value>, config_map: bool, causes: &mut Vec<Cause>) {
    let fields: &[&str] = if config_map {
        &["data", "binaryData"]
    } else {
        &["data", "stringData"]
    };
    let mut keys = HashSet::new();
    for f in fields {
        let Some(map) = obj[*f].as_object() else {
            continue;
        };
        for k in map.keys() {
            let p = key(f, k);
            let ok = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !ok {
                causes.push(invalid(&p, &json!(k), CONFIG_KEY_MSG));
            } else if k == "." || k == ".." || k.starts_with("..") {
                causes.push(invalid(&p, &json!(k), "must not be '.' or '..'"));
            }
            if config_map && !keys.insert(k.clone()) {
                causes.push(invalid(
                    &p,
                    &json!(k),
                    "duplicate of key present in binaryData",
                ));
            }
        }
    }
    let Some(old) = old else {
        return;
    };
    if old["immutable"].as_bool() == Some(true) {
        if obj["immutable"].as_bool() != Some(true) {
            causes.push(forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        for f in fields {
            if old[*f] != obj[*f] && *f != "stringData" {
                causes.push(forbidden(f, "field is immutable when `immutable` is set"));
            }
        }
    }
    if !config_map {
        let old_type = old["type"].as_str().unwrap_or("Opaque");
        let new_type = obj["type"].as_str().unwrap_or("Opaque");
        if old_type != new_type {
            causes.push(invalid("type", &json!(new_type), "field is immutable"));
        }
    }
}

fn network_policy(spec: &Value, causes: &mut Vec<Cause>) {
    label_selector("spec.podSelector", &spec["podSelector"], causes);
    for (direction, peers_field) in [("ingress", "from"), ("egress", "to")] {
        let Some(rules) = spec[direction].as_array() else {
            continue;
        };
        for (i, rule) in rules.iter().enumerate() {
            let p = index(&child("spec", direction), i);
            if let Some(ports) = rule["ports"].as_array() {
                for (j, port) in ports.iter().enumerate() {
                    network_policy_port(&index(&child(&p, "ports"), j), port, causes);
                }
            }
            if let Some(peers) = rule[peers_field].as_array() {
                for (j, peer) in peers.iter().enumerate() {
                    network_policy_peer(&index(&child(&p, peers_field), j), peer, causes);
                }
            }
        }
    }
    if let Some(types) = spec["policyTypes"].as_array() {
        for (i, t) in types.iter().enumerate() {
            if !t.as_str().is_some_and(|t| t == "Ingress" || t == "Egress") {
                causes.push(not_supported(
                    &index("spec.policyTypes", i),
                    t,
                    &["Egress", "Ingress"],
                ));
            }
        }
        if types.len() > 2 {
            causes.push(forbidden(
                "spec.policyTypes",
                "may not specify more than two policyTypes",
            ));
        }
    }
}

fn network_policy_port(path: &str, port: &Value, causes: &mut Vec<Cause>) {
    protocol(&child(path, "protocol"), &port["protocol"], causes);
    let number = &port["port"];
    match number {
        Value::Number(_) if !port_number_ok(number) => {
            causes.push(invalid(&child(path, "port"), number, PORT_RANGE_MSG));
        }
        Value::String(s) => names(&child(path, "port"), s, port_name_errors(s), causes),
        _ => {}
    }
    let end = &port["endPort"];
    if end.is_null() {
        return;
    }
    match number {
        Value::Null => causes.push(required(
            &child(path, "port"),
            "must be specified when endPort is specified",
        )),
        Value::String(_) => causes.push(forbidden(
            &child(path, "endPort"),
            "may not be specified when port is non-numerical",
        )),
        _ => {
            if !port_number_ok(end) {
                causes.push(invalid(&child(path, "endPort"), end, PORT_RANGE_MSG));
            } else if end.as_i64() < number.as_i64() {
                causes.push(invalid(
                    &child(path, "endPort"),
                    end,
                    "must be greater than or equal to `port`",
                ));
            }
        }
    }
}

fn network_policy_peer(path: &str, peer: &Value, causes: &mut Vec<Cause>) {
    let present: Vec<&str> = ["podSelector", "namespaceSelector", "ipBlock"]
        .into_iter()
        .filter(|f| !peer[*f].is_null())
        .collect();
    if present.is_empty() {
        causes.push(required(path, "must specify a peer"));
    } else if present.len() > 1 && present.contains(&"ipBlock") {
        causes.push(forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    for f in ["podSelector", "namespaceSelector"] {
        if !peer[f].is_null() {
            label_selector(&child(path, f), &peer[f], causes);
        }
    }
    let block = &peer["ipBlock"];
    if block.is_null() {
        return;
    }
    let p = child(path, "ipBlock");
    let cidr = block["cidr"].as_str().unwrap_or_default();
    if cidr.is_empty() {
        causes.push(required(&child(&p, "cidr"), ""));
    } else if parse_cidr(cidr).is_none() {
        causes.push(invalid(
            &child(&p, "cidr"),
            &json!(cidr),
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
    if let Some(except) = block["except"].as_array() {
        for (i, e) in except.iter().enumerate() {
            let s = e.as_str().unwrap_or_default();
            let ep = index(&child(&p, "except"), i);
            match (parse_cidr(s), parse_cidr(cidr)) {
                (None, _) => causes.push(invalid(
                    &ep,
                    &json!(s),
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )),
                (Some(inner), Some(outer)) if !strict_subset(inner, outer) => {
                    causes.push(invalid(&ep, &json!(s), "must be a strict subset of `cidr`"))
                }
                _ => {}
            }
        }
    }
}

fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn strict_subset(inner: (std::net::IpAddr, u8), outer: (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr::{V4, V6};
    let same_prefix = |a: u128, b: u128, width: u8| {
        let shift = u32::from(width - outer.1);
        shift >= 128 || (a >> shift) == (b >> shift)
    };
    inner.1 > outer.1
        && match (inner.0, outer.0) {
            (V4(a), V4(b)) => same_prefix(u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            (V6(a), V6(b)) => same_prefix(u128::from(a), u128::from(b), 128),
            _ => false,
        }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `ValidatePolicyRule` for Roles (`namespaced`) and ClusterRoles.
fn rbac_rules(obj: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let aggregated = !namespaced && !obj["aggregationRule"].is_null();
    let Some(rules) = obj["rules"].as_array() else {
        return;
    };
    if aggregated {
        // The aggregation controller owns the rules of an aggregated ClusterRole.
        return;
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = index("rules", i);
        let len = |f: &str| rule[f].as_array().map_or(0, Vec::len);
        if len("verbs") == 0 {
            causes.push(required(
                &child(&p, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        if len("nonResourceURLs") > 0 {
            if namespaced {
                causes.push(invalid(
                    &child(&p, "nonResourceURLs"),
                    &rule["nonResourceURLs"],
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if len("apiGroups") > 0 || len("resources") > 0 || len("resourceNames") > 0 {
                causes.push(invalid(
                    &child(&p, "nonResourceURLs"),
                    &rule["nonResourceURLs"],
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if len("apiGroups") == 0 {
            causes.push(required(
                &child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if len("resources") == 0 {
            causes.push(required(
                &child(&p, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// RoleBindings (`namespaced`) and ClusterRoleBindings: roleRef and subjects; roleRef never
/// changes.
fn binding(obj: &Value, old: Option<&Value>, namespaced: bool, causes: &mut Vec<Cause>) {
    let role_ref = &obj["roleRef"];
    let group = role_ref["apiGroup"].as_str().unwrap_or_default();
    if group != RBAC_GROUP {
        causes.push(not_supported(
            "roleRef.apiGroup",
            &json!(group),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = role_ref["kind"].as_str().unwrap_or_default();
    if !kinds.contains(&kind) {
        causes.push(not_supported("roleRef.kind", &json!(kind), kinds));
    }
    let role = role_ref["name"].as_str().unwrap_or_default();
    if role.is_empty() {
        causes.push(required("roleRef.name", ""));
    } else {
        path_segment("roleRef.name", role, causes);
    }
    if let Some(subjects) = obj["subjects"].as_array() {
        for (i, s) in subjects.iter().enumerate() {
            subject(&index("subjects", i), s, namespaced, causes);
        }
    }
    if let Some(old) = old
        && old["roleRef"] != *role_ref
    {
        causes.push(invalid("roleRef", role_ref, "cannot change roleRef"));
    }
}

/// `path.IsValidPathSegmentName`, the name rule of RBAC objects and references.
fn path_segment(path: &str, name: &str, causes: &mut Vec<Cause>) {
    if name == "." || name == ".." {
        causes.push(invalid(path, &json!(name), &format!("may not be '{name}'")));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            causes.push(invalid(
                path,
                &json!(name),
                &format!("may not contain '{bad}'"),
            ));
        }
    }
}

fn subject(path: &str, s: &Value, namespaced: bool, causes: &mut Vec<Cause>) {
    let name = s["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        causes.push(required(&child(path, "name"), ""));
    }
    let group = s["apiGroup"].as_str().unwrap_or_default();
    match s["kind"].as_str().unwrap_or_default() {
        "ServiceAccount" => {
            if !name.is_empty() {
                names(
                    &child(path, "name"),
                    name,
                    dns1123_subdomain_errors(name),
                    causes,
                );
            }
            if !group.is_empty() {
                causes.push(not_supported(
                    &child(path, "apiGroup"),
                    &json!(group),
                    &[""],
                ));
            }
            if !namespaced && s["namespace"].as_str().is_none_or(str::is_empty) {
                causes.push(required(&child(path, "namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != RBAC_GROUP {
                causes.push(not_supported(
                    &child(path, "apiGroup"),
                    &json!(group),
                    &[RBAC_GROUP],
                ));
            }
        }
        other => causes.push(not_supported(
            &child(path, "kind"),
            &json!(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_subsets() {
        let c = |s| parse_cidr(s).unwrap_or((std::net::IpAddr::from([0, 0, 0, 0]), 0));
        assert!(strict_subset(c("10.0.1.0/24"), c("10.0.0.0/16")));
        assert!(!strict_subset(c("10.1.0.0/24"), c("10.0.0.0/16")));
        assert!(!strict_subset(c("10.0.0.0/16"), c("10.0.0.0/16")));
        assert!(strict_subset(c("169.254.169.254/32"), c("0.0.0.0/0")));
        assert!(strict_subset(c("fd00::/64"), c("fd00::/8")));
        assert!(!strict_subset(c("fe00::/64"), c("fd00::/8")));
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
        assert!(qualified_name_errors("annexa.dev/digest").is_empty());
        assert!(!qualified_name_errors("bad key").is_empty());
        assert!(!qualified_name_errors("a/b/c").is_empty());
        assert!(!qualified_name_errors("Bad_Prefix/x").is_empty());
        assert!(label_value_errors("").is_empty());
        assert!(!label_value_errors("-x").is_empty());
    }
}
