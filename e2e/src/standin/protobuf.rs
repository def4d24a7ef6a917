//! Just enough Kubernetes protobuf to accept what kubectl's generator subcommands send
//! (`kubectl create namespace | configmap | secret | serviceaccount | role | clusterrole |
//! rolebinding | clusterrolebinding | token`). Other kinds get 415.

use base64::Engine;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((number, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                out.push((number, Field::Bytes(buf.get(pos..end)?)));
                pos = end;
            }
            1 => pos = pos.checked_add(8)?,
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
    }
    Some(out)
}

fn text(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

/// A map<string, string|bytes> entry list.
fn map_entry(b: &[u8], bytes_value: bool) -> Option<(String, Value)> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = text(k)?,
            (2, Field::Bytes(v)) if bytes_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(v))
            }
            (2, Field::Bytes(v)) => value = json!(text(v)?),
            _ => {}
        }
    }
    Some((key, value))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => {
                meta.insert("name".into(), json!(text(v)?));
            }
            (2, Field::Bytes(v)) => {
                meta.insert("generateName".into(), json!(text(v)?));
            }
            (3, Field::Bytes(v)) => {
                meta.insert("namespace".into(), json!(text(v)?));
            }
            (6, Field::Bytes(v)) => {
                meta.insert("resourceVersion".into(), json!(text(v)?));
            }
            (11, Field::Bytes(v)) => {
                let (k, val) = map_entry(v, false)?;
                labels.insert(k, val);
            }
            (12, Field::Bytes(v)) => {
                let (k, val) = map_entry(v, false)?;
                annotations.insert(k, val);
            }
            (14, Field::Bytes(v)) => finalizers.push(json!(text(v)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(meta))
}

/// The string fields of a message by field number (repeated fields collect).
fn string_fields(b: &[u8]) -> Option<Vec<(u64, String)>> {
    fields(b)?
        .into_iter()
        .filter_map(|(n, f)| match f {
            Field::Bytes(v) => Some(text(v).map(|t| (n, t))),
            Field::Varint(_) => None,
        })
        .collect()
}

/// An rbac/v1 Subject or RoleRef: string fields named by number.
fn named_strings(b: &[u8], names: &[(u64, &str)]) -> Option<Value> {
    let mut out = Map::new();
    for (n, t) in string_fields(b)? {
        if let Some((_, name)) = names.iter().find(|(k, _)| *k == n) {
            out.insert(name.to_string(), json!(t));
        }
    }
    Some(Value::Object(out))
}

/// An rbac/v1 PolicyRule.
fn policy_rule(b: &[u8]) -> Option<Value> {
    let names = [
        (1, "verbs"),
        (2, "apiGroups"),
        (3, "resources"),
        (4, "resourceNames"),
        (5, "nonResourceURLs"),
    ];
    let mut out = Map::new();
    for (n, t) in string_fields(b)? {
        if let Some((_, name)) = names.iter().find(|(k, _)| *k == n) {
            let list = out.entry(name.to_string()).or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(json!(t));
            }
        }
    }
    Some(Value::Object(out))
}

fn push(obj: &mut Value, field: &str, item: Value) {
    if !obj[field].is_array() {
        obj[field] = json!([]);
    }
    if let Some(a) = obj[field].as_array_mut() {
        a.push(item);
    }
}

const RBAC: &str = "rbac.authorization.k8s.io/v1";
const AUTHZ: &str = "authorization.k8s.io/v1";

/// The spec of an access review (`kubectl auth can-i` sends them as protobuf).
fn review_spec(kind: &str, b: &[u8]) -> Option<Value> {
    let mut spec = json!({});
    if kind == "SelfSubjectRulesReview" {
        for (n, t) in string_fields(b)? {
            if n == 1 {
                spec["namespace"] = json!(t);
            }
        }
        return Some(spec);
    }
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => {
                spec["resourceAttributes"] = named_strings(
                    v,
                    &[
                        (1, "namespace"),
                        (2, "verb"),
                        (3, "group"),
                        (4, "version"),
                        (5, "resource"),
                        (6, "subresource"),
                        (7, "name"),
                    ],
                )?
            }
            (2, Field::Bytes(v)) => {
                spec["nonResourceAttributes"] = named_strings(v, &[(1, "path"), (2, "verb")])?
            }
            (3, Field::Bytes(v)) if kind != "SelfSubjectAccessReview" => {
                spec["user"] = json!(text(v)?)
            }
            (4, Field::Bytes(v)) if kind != "SelfSubjectAccessReview" => {
                push(&mut spec, "groups", json!(text(v)?))
            }
            (6, Field::Bytes(v)) if kind != "SelfSubjectAccessReview" => {
                spec["uid"] = json!(text(v)?)
            }
            _ => {}
        }
    }
    Some(spec)
}

/// Decodes a protobuf request body into JSON, or None when it is not a supported kind.
pub fn decode(body: &[u8]) -> Option<Value> {
    let envelope = body.strip_prefix(MAGIC)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(envelope)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (tn, tf) in fields(type_meta)? {
                    match (tn, tf) {
                        (1, Field::Bytes(v)) => api_version = text(v)?,
                        (2, Field::Bytes(v)) => kind = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(v)) => raw = v,
            _ => {}
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
    for (n, f) in fields(raw)? {
        match (api_version.as_str(), kind.as_str(), n, f) {
            (_, _, 1, Field::Bytes(v)) => obj["metadata"] = object_meta(v)?,
            ("v1", "Namespace", 2, Field::Bytes(v)) => {
                let finalizers: Vec<Value> = fields(v)?
                    .into_iter()
                    .filter_map(|(n, f)| match (n, f) {
                        (1, Field::Bytes(s)) => text(s).map(Value::String),
                        _ => None,
                    })
                    .collect();
                obj["spec"] = json!({"finalizers": finalizers});
            }
            ("v1", "Namespace", _, _) => {}
            ("v1", "ConfigMap", 2 | 3, Field::Bytes(v)) => {
                let field = if n == 2 { "data" } else { "binaryData" };
                let (k, val) = map_entry(v, n == 3)?;
                obj[field][k] = val;
            }
            ("v1", "ConfigMap", 4, Field::Varint(b)) => obj["immutable"] = json!(b != 0),
            ("v1", "ConfigMap", _, _) => {}
            ("v1", "Secret", 2 | 4, Field::Bytes(v)) => {
                let field = if n == 2 { "data" } else { "stringData" };
                let (k, val) = map_entry(v, n == 2)?;
                obj[field][k] = val;
            }
            ("v1", "Secret", 3, Field::Bytes(v)) => obj["type"] = json!(text(v)?),
            ("v1", "Secret", 5, Field::Varint(b)) => obj["immutable"] = json!(b != 0),
            ("v1", "Secret", _, _) => {}
            ("v1", "ServiceAccount", 4, Field::Varint(b)) => {
                obj["automountServiceAccountToken"] = json!(b != 0)
            }
            ("v1", "ServiceAccount", _, _) => {}
            (RBAC, "Role" | "ClusterRole", 2, Field::Bytes(v)) => {
                push(&mut obj, "rules", policy_rule(v)?)
            }
            (RBAC, "Role" | "ClusterRole", _, _) => {}
            (RBAC, "RoleBinding" | "ClusterRoleBinding", 2, Field::Bytes(v)) => {
                let subject = named_strings(
                    v,
                    &[(1, "kind"), (2, "apiGroup"), (3, "name"), (4, "namespace")],
                )?;
                push(&mut obj, "subjects", subject)
            }
            (RBAC, "RoleBinding" | "ClusterRoleBinding", 3, Field::Bytes(v)) => {
                obj["roleRef"] = named_strings(v, &[(1, "apiGroup"), (2, "kind"), (3, "name")])?
            }
            (RBAC, "RoleBinding" | "ClusterRoleBinding", _, _) => {}
            ("authentication.k8s.io/v1", "TokenRequest", 2, Field::Bytes(v)) => {
                let mut spec = json!({"audiences": []});
                for (sn, sf) in fields(v)? {
                    match (sn, sf) {
                        (1, Field::Bytes(a)) => push(&mut spec, "audiences", json!(text(a)?)),
                        (4, Field::Varint(secs)) => spec["expirationSeconds"] = json!(secs),
                        _ => {}
                    }
                }
                obj["spec"] = spec;
            }
            ("authentication.k8s.io/v1", "TokenRequest", _, _) => {}
            (AUTHZ, _, 2, Field::Bytes(v)) => obj["spec"] = review_spec(&kind, v)?,
            (AUTHZ, _, _, _) => {}
            ("authentication.k8s.io/v1", "SelfSubjectReview", _, _) => {}
            _ => return None,
        }
    }
    if !matches!(
        (api_version.as_str(), kind.as_str()),
        (
            "v1",
            "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount"
        ) | (
            RBAC,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        ) | (
            "authentication.k8s.io/v1",
            "TokenRequest" | "SelfSubjectReview"
        ) | (
            AUTHZ,
            "SubjectAccessReview"
                | "LocalSubjectAccessReview"
                | "SelfSubjectAccessReview"
                | "SelfSubjectRulesReview"
        )
    ) {
        return None;
    }
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_configmap() {
        let meta = field(1, b"c1");
        let entry = [field(1, b"k"), field(2, b"v")].concat();
        let raw = [field(1, &meta), field(2, &entry)].concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(obj["metadata"]["name"], "c1");
        assert_eq!(obj["data"]["k"], "v");
        assert!(decode(b"k8s\0\xff\xff").is_none());
        assert!(decode(b"nonsense").is_none());
    }
}
