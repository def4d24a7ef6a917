//! A simplified model of server-side apply field ownership.
//!
//! Fields are the leaf paths of an object's maps; lists (and empty maps) are atomic leaves.
//! Ownership is recorded in `metadata.managedFields` in the FieldsV1 shape (`f:` keys only).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

const SKIP_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Leaf paths of `obj` that a manager can own. `status_only` selects the status subresource.
pub fn owned_paths(obj: &Value, status_only: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if status_only => collect(v, vec![k.clone()], &mut out),
            _ if status_only => {}
            "metadata" => {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta {
                        if !SKIP_METADATA.contains(&mk.as_str()) {
                            collect(mv, vec![k.clone(), mk.clone()], &mut out);
                        }
                    }
                }
            }
            _ => collect(v, vec![k.clone()], &mut out),
        }
    }
    out
}

fn collect(v: &Value, path: Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(c, p, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = cur.as_object()?.get(seg)?;
    }
    Some(cur)
}

/// Removes the field at `path`, then parent maps it left empty (never the top-level ones).
pub fn remove_path(v: &mut Value, path: &[String]) {
    fn inner(v: &mut Value, path: &[String], depth: usize) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let Some(map) = v.as_object_mut() else {
            return;
        };
        if rest.is_empty() {
            map.remove(first);
            return;
        }
        if let Some(child) = map.get_mut(first) {
            inner(child, rest, depth + 1);
            if depth >= 1 && child.as_object().is_some_and(Map::is_empty) {
                map.remove(first);
            }
        }
    }
    inner(v, path, 0)
}

/// Deep-merges `patch` into `base`: maps merge, everything else (lists included) replaces.
pub fn deep_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, pv) in p {
                match b.get_mut(k) {
                    Some(bv) if bv.is_object() && pv.is_object() => deep_merge(bv, pv),
                    _ => {
                        b.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn remove_overlapping(set: &mut FieldSet, path: &[String]) {
    set.retain(|q| !overlaps(q, path));
}

/// Paths whose value differs between `old` and `new` (within what managers can own).
pub fn changed_paths(old: &Value, new: &Value, status_only: bool) -> FieldSet {
    let old_paths = owned_paths(old, status_only);
    let new_paths = owned_paths(new, status_only);
    let mut out = FieldSet::new();
    for p in new_paths.iter() {
        if get_path(old, p) != get_path(new, p) {
            out.insert(p.clone());
        }
    }
    for p in old_paths.iter() {
        if get_path(new, p).is_none() {
            out.insert(p.clone());
        }
    }
    out
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

fn fields_to_v1(fields: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let mut cur = &mut root;
        for seg in path {
            let Some(map) = cur.as_object_mut() else {
                break;
            };
            cur = map
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

fn fields_from_v1(v: &Value, path: Path, out: &mut FieldSet) {
    let Some(map) = v.as_object() else {
        return;
    };
    let children: Vec<(&String, &Value)> =
        map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path);
        }
        return;
    }
    for (k, c) in children {
        let mut p = path.clone();
        p.push(k[2..].to_string());
        fields_from_v1(c, p, out);
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let mut fields = FieldSet::new();
            fields_from_v1(&e["fieldsV1"], Vec::new(), &mut fields);
            Entry {
                manager: e["manager"].as_str().unwrap_or_default().to_string(),
                operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: e["time"].as_str().unwrap_or_default().to_string(),
                subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                fields,
            }
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_to_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// Records a non-apply write by `manager`: it takes the changed fields from everyone else.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) {
    let status_only = subresource == "status";
    let mut entries = old.map(read_entries).unwrap_or_default();
    let changed = match old {
        Some(o) => changed_paths(o, new, status_only),
        None => owned_paths(new, status_only),
    };
    if changed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        for p in &changed {
            remove_overlapping(&mut e.fields, p);
        }
    }
    let present: FieldSet = changed
        .into_iter()
        .filter(|p| get_path(new, p).is_some())
        .collect();
    match entries
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource)
    {
        Some(e) => {
            e.fields.extend(present);
            e.time = now.to_string();
            e.api_version = api_version.to_string();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            subresource: subresource.to_string(),
            fields: present,
        }),
    }
    write_entries(new, &entries);
}

/// A field another manager owns with a different value.
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// Applies `applied` as `manager` onto `live` (None when the object does not exist yet).
/// Returns the merged object with managedFields updated, or the conflicts.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let status_only = subresource == "status";
    let applied_fields = owned_paths(applied, status_only);
    let mut entries = live.map(read_entries).unwrap_or_default();
    let is_mine =
        |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == subresource;

    let mut conflicts = Vec::new();
    if let Some(live) = live {
        for e in entries
            .iter()
            .filter(|e| !is_mine(e) && e.subresource == subresource)
        {
            for p in &applied_fields {
                let overlapping = e.fields.iter().any(|q| overlaps(q, p));
                if overlapping && get_path(live, p) != get_path(applied, p) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        api_version: e.api_version.clone(),
                        path: dotted(p),
                    });
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }

    let previous: FieldSet = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    let mut merged = live.cloned().unwrap_or_else(|| json!({}));
    // Fields this manager stops applying are removed unless somebody else still owns them.
    for p in previous.difference(&applied_fields) {
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !is_mine(e))
            .any(|e| e.fields.iter().any(|q| overlaps(q, p)));
        if !owned_elsewhere && !applied_fields.iter().any(|q| overlaps(q, p)) {
            remove_path(&mut merged, p);
        }
    }
    let mut applied_body = applied.clone();
    if let Some(meta) = applied_body
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        meta.remove("managedFields");
    }
    deep_merge(&mut merged, &applied_body);

    if force {
        for e in entries.iter_mut().filter(|e| !is_mine(e)) {
            for c in &conflicts {
                if e.manager == c.manager {
                    let path: Path = c.path.split('.').skip(1).map(str::to_string).collect();
                    remove_overlapping(&mut e.fields, &path);
                }
            }
        }
    }
    entries.retain(|e| !is_mine(e));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: subresource.to_string(),
        fields: applied_fields,
    });
    write_entries(&mut merged, &entries);
    Ok(merged)
}

pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let mut lines = Vec::new();
    for c in conflicts {
        lines.push(format!(
            "conflict with \"{}\" using {}: {}",
            c.manager, c.api_version, c.path
        ));
    }
    if conflicts.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines.join(""))
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_managers_keep_their_fields() {
        let a =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"1"}});
        let live = apply(None, &a, "one", "v1", "", false, "t").ok().unwrap();
        let b =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"b":"2"}});
        let live = apply(Some(&live), &b, "two", "v1", "", false, "t")
            .ok()
            .unwrap();
        assert_eq!(live["data"], json!({"a":"1","b":"2"}));
        // "one" stops sending a: it is removed; b stays.
        let a2 =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"c":"3"}});
        let live = apply(Some(&live), &a2, "one", "v1", "", false, "t")
            .ok()
            .unwrap();
        assert_eq!(live["data"], json!({"b":"2","c":"3"}));
        // "two" setting c to another value conflicts.
        let b2 = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"b":"2","c":"4"}});
        let err = apply(Some(&live), &b2, "two", "v1", "", false, "t")
            .err()
            .unwrap();
        assert_eq!(err[0].path, ".data.c");
    }
}
