//! Server-side apply and field ownership, modelled on kube-apiserver's structured-merge-diff.
//!
//! - Field sets are FieldsV1 paths: `f:<field>`, `k:{...}` for an item of a list of type `map`
//!   (its key fields, with schema defaults for missing ones), `v:<value>` for an item of a list
//!   of type `set`, and `.` for a node that is itself owned and has owned children.
//! - Lists follow the schema's `x-kubernetes-list-type` (`atomic` when absent), maps follow
//!   `x-kubernetes-map-type` (`granular` when absent). Built-in kinds take their list types from
//!   the table in `ssa_schema.rs`; custom resources from their CRD's `openAPIV3Schema`.
//! - Apply merges the configuration into the live object, owns exactly the fields it sets,
//!   removes what the manager applied last time and nobody owns any more, and reports a conflict
//!   for every field of another manager whose value it would change (unless forced, which takes
//!   the field over). Any other write takes over the fields it changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

/// One path of FieldsV1 segments (`f:spec`, `k:{"name":"app"}`, `v:"x"`).
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

static NULL: Value = Value::Null;

/// Metadata fields no manager owns (kube-apiserver strips them from every field set).
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

/// The type information apply needs about one kind.
pub struct Schema {
    /// OpenAPI v3 shape: `properties`, `additionalProperties`, `items`,
    /// `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`.
    root: Value,
    /// Built-in kinds: a map field the table does not describe is a struct field. Custom
    /// resources: a field outside `properties` is an unknown (preserved or pruned) field.
    builtin: bool,
    /// The kind has a `status` subresource: writes to the main resource own no status field.
    status_subresource: bool,
}

impl Schema {
    pub fn new(root: Value, builtin: bool, status_subresource: bool) -> Schema {
        Schema {
            root,
            builtin,
            status_subresource,
        }
    }

    /// The schema of `key` inside an object of schema `s` (`root` for the object itself).
    fn child<'a>(&'a self, s: &'a Value, key: &str, at_root: bool) -> &'a Value {
        if at_root && key == "metadata" {
            return super::ssa_schema::object_meta();
        }
        if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
            return p;
        }
        match s.get("additionalProperties") {
            Some(a) if a.is_object() => a,
            _ => &NULL,
        }
    }

    /// Whether `key` is a declared field of `s` (a struct field) rather than a map entry.
    fn declared(&self, s: &Value, key: &str, at_root: bool) -> bool {
        at_root
            || s["properties"].get(key).is_some()
            || (self.builtin && !s["additionalProperties"].is_object())
    }

    /// Fields a custom resource's schema would prune: not owned by anyone.
    fn pruned(&self, s: &Value, key: &str, at_root: bool) -> bool {
        if self.builtin || s.is_null() {
            return false;
        }
        let embedded = at_root || s["x-kubernetes-embedded-resource"].as_bool() == Some(true);
        if embedded && matches!(key, "apiVersion" | "kind" | "metadata") {
            return false;
        }
        s["properties"].get(key).is_none()
            && !s["additionalProperties"].is_object()
            && s["additionalProperties"].as_bool() != Some(true)
            && s["x-kubernetes-preserve-unknown-fields"].as_bool() != Some(true)
            && s.get("properties").is_some()
    }
}

#[derive(Clone, Debug, PartialEq)]
enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

fn list_type(s: &Value) -> ListType {
    match s["x-kubernetes-list-type"].as_str() {
        Some("set") => ListType::Set,
        Some("map") => {
            let keys: Vec<String> = s["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if keys.is_empty() {
                ListType::Set
            } else {
                ListType::Map(keys)
            }
        }
        _ => ListType::Atomic,
    }
}

fn atomic_map(s: &Value) -> bool {
    s["x-kubernetes-map-type"].as_str() == Some("atomic")
}

/// The path segment of one item of a `set` or `map` list.
fn item_segment(list_schema: &Value, list: &ListType, item: &Value) -> Result<String, String> {
    match list {
        ListType::Map(keys) => {
            let Some(fields) = item.as_object() else {
                return Err("associative list with keys may not have non-map elements".into());
            };
            let mut key: BTreeMap<&str, &Value> = BTreeMap::new();
            for k in keys {
                if let Some(v) = fields.get(k) {
                    key.insert(k, v);
                } else if let Some(d) =
                    list_schema["items"]["properties"][k.as_str()].get("default")
                {
                    key.insert(k, d);
                }
            }
            if key.is_empty() {
                return Err(format!(
                    "associative list with keys has an element that omits all key fields {keys:?} (and doesn't have default values for any key fields)"
                ));
            }
            let body: Vec<String> = key
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
                .collect();
            Ok(format!("k:{{{}}}", body.join(",")))
        }
        ListType::Set => match item {
            Value::Object(_) | Value::Array(_) | Value::Null => {
                Err("associative list without keys has an element that's not a scalar".into())
            }
            scalar => Ok(format!("v:{scalar}")),
        },
        ListType::Atomic => Err("invalid indexing of an atomic list".into()),
    }
}

/// How kube-apiserver prints a path in a conflict: `.spec.containers[name="app"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = seg.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Field sets of a value

/// The fields `value` sets, per the schema: scalars, atomic lists and maps, empty maps, items of
/// `set`/`map` lists and map entries outside declared fields.
fn field_set(
    schema: &Schema,
    s: &Value,
    value: &Value,
    path: &mut Path,
    out: &mut FieldSet,
) -> Result<(), String> {
    let at_root = path.is_empty();
    match value {
        Value::Object(map) => {
            if atomic_map(s) && !at_root {
                out.insert(path.clone());
                return Ok(());
            }
            for (k, v) in map {
                if schema.pruned(s, k, at_root) {
                    continue;
                }
                let cs = schema.child(s, k, at_root);
                path.push(format!("f:{k}"));
                field_set(schema, cs, v, path, out)?;
                if v.is_null()
                    || v.as_object().is_some_and(Map::is_empty)
                    || !schema.declared(s, k, at_root)
                {
                    out.insert(path.clone());
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let lt = list_type(s);
            if lt == ListType::Atomic {
                out.insert(path.clone());
                return Ok(());
            }
            let mut seen = BTreeSet::new();
            for item in items {
                let seg =
                    item_segment(s, &lt, item).map_err(|e| format!("{}: {e}", display(path)))?;
                if !seen.insert(seg.clone()) {
                    let mut p = path.clone();
                    p.push(seg);
                    return Err(format!(
                        "{}: duplicate entries for key {}",
                        display(path),
                        display(&p[p.len() - 1..])
                    ));
                }
                path.push(seg);
                field_set(schema, &s["items"], item, path, out)?;
                out.insert(path.clone());
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
    Ok(())
}

/// Which owned paths a write through `subresource` can touch (kube-apiserver's reset fields
/// and the metadata it strips from every field set).
fn writable(path: &[String], subresource: &str, status_subresource: bool) -> bool {
    let Some(first) = path.first() else {
        return false;
    };
    match subresource {
        "status" => first == "f:status",
        "ephemeralcontainers" => {
            first == "f:spec" && path.get(1).map(String::as_str) == Some("f:ephemeralContainers")
        }
        _ => match first.as_str() {
            "f:apiVersion" | "f:kind" => false,
            "f:metadata" => path
                .get(1)
                .and_then(|s| s.strip_prefix("f:"))
                .is_some_and(|f| !SKIP_METADATA.contains(&f)),
            "f:status" => !status_subresource,
            _ => true,
        },
    }
}

fn filtered(set: FieldSet, subresource: &str, status_subresource: bool) -> FieldSet {
    set.into_iter()
        .filter(|p| writable(p, subresource, status_subresource))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Merge

fn index_items(s: &Value, lt: &ListType, items: &[Value]) -> Vec<Option<String>> {
    items.iter().map(|i| item_segment(s, lt, i).ok()).collect()
}

/// Merges an applied configuration into the live value: maps key by key, `set` and `map`
/// lists item by item (applied order first, live-only items where they were), everything else
/// (scalars, atomic lists and maps) replaced.
fn merge(schema: &Schema, s: &Value, live: &Value, applied: &Value, at_root: bool) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if at_root || !atomic_map(s) => {
            let mut out = l.clone();
            for (k, av) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge(schema, schema.child(s, k, at_root), lv, av, false),
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => {
            let lt = list_type(s);
            if lt == ListType::Atomic {
                return applied.clone();
            }
            let item_schema = &s["items"];
            let lsegs = index_items(s, &lt, l);
            let asegs = index_items(s, &lt, a);
            let mut live_by_seg: HashMap<&str, &Value> = HashMap::new();
            for (seg, item) in lsegs.iter().zip(l) {
                if let Some(seg) = seg {
                    live_by_seg.entry(seg.as_str()).or_insert(item);
                }
            }
            let mut applied_at: HashMap<&str, usize> = HashMap::new();
            for (i, seg) in asegs.iter().enumerate() {
                if let Some(seg) = seg {
                    applied_at.entry(seg.as_str()).or_insert(i);
                }
            }
            let take = |i: usize| -> Value {
                match asegs[i].as_deref().and_then(|seg| live_by_seg.get(seg)) {
                    Some(lv) => merge(schema, item_schema, lv, &a[i], false),
                    None => a[i].clone(),
                }
            };
            let mut out = Vec::new();
            let mut next = 0;
            for (seg, item) in lsegs.iter().zip(l) {
                match seg.as_deref().and_then(|seg| applied_at.get(seg)) {
                    None => out.push(item.clone()),
                    Some(&j) => {
                        while next <= j {
                            out.push(take(next));
                            next += 1;
                        }
                    }
                }
            }
            while next < a.len() {
                out.push(take(next));
                next += 1;
            }
            Value::Array(out)
        }
        _ => applied.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison

#[derive(Default, Debug)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

impl Comparison {
    fn filter(self, subresource: &str, status_subresource: bool) -> Comparison {
        Comparison {
            added: filtered(self.added, subresource, status_subresource),
            modified: filtered(self.modified, subresource, status_subresource),
            removed: filtered(self.removed, subresource, status_subresource),
        }
    }

    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified).cloned().collect()
    }
}

fn empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Fields added, modified and removed between two versions of an object.
fn compare(
    schema: &Schema,
    s: &Value,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Path,
    out: &mut Comparison,
) {
    let at_root = path.is_empty();
    let is_map = |v: Option<&Value>| v.is_some_and(Value::is_object);
    let is_list = |v: Option<&Value>| v.is_some_and(Value::is_array);
    let maps = (is_map(lhs) || lhs.is_none()) && (is_map(rhs) || rhs.is_none());
    let lists = (is_list(lhs) || lhs.is_none()) && (is_list(rhs) || rhs.is_none());
    let both_empty = empty_container(lhs) && empty_container(rhs);
    let granular = if maps {
        at_root || !atomic_map(s)
    } else if lists {
        list_type(s) != ListType::Atomic
    } else {
        false
    };
    if !granular || (both_empty && !at_root) {
        match (lhs, rhs) {
            (None, Some(_)) => {
                out.added.insert(path.clone());
            }
            (Some(_), None) => {
                out.removed.insert(path.clone());
            }
            (Some(l), Some(r)) if l != r => {
                out.modified.insert(path.clone());
            }
            _ => {}
        }
        return;
    }
    if maps {
        let empty = Map::new();
        let l = lhs.and_then(Value::as_object).unwrap_or(&empty);
        let r = rhs.and_then(Value::as_object).unwrap_or(&empty);
        let keys: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
        for k in keys {
            if schema.pruned(s, k, at_root) {
                continue;
            }
            path.push(format!("f:{k}"));
            compare(
                schema,
                schema.child(s, k, at_root),
                l.get(k),
                r.get(k),
                path,
                out,
            );
            path.pop();
        }
    } else {
        let lt = list_type(s);
        let mut items: BTreeMap<String, (Option<&Value>, Option<&Value>)> = BTreeMap::new();
        for v in lhs.and_then(Value::as_array).into_iter().flatten() {
            if let Ok(seg) = item_segment(s, &lt, v) {
                items.entry(seg).or_insert((None, None)).0.get_or_insert(v);
            }
        }
        for v in rhs.and_then(Value::as_array).into_iter().flatten() {
            if let Ok(seg) = item_segment(s, &lt, v) {
                items.entry(seg).or_insert((None, None)).1.get_or_insert(v);
            }
        }
        for (seg, (l, r)) in items {
            path.push(seg);
            compare(schema, &s["items"], l, r, path, out);
            path.pop();
        }
    }
    if !at_root {
        if lhs.is_none() {
            out.added.insert(path.clone());
        } else if rhs.is_none() {
            out.removed.insert(path.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Removal

/// Removes the node at `path` (with everything under it). A map or list that the removal
/// leaves empty is removed from its parent, as kube-apiserver leaves it null.
fn remove_path(schema: &Schema, s: &Value, v: &mut Value, path: &[String], at_root: bool) -> bool {
    let Some((seg, rest)) = path.split_first() else {
        return false;
    };
    if let Some(field) = seg.strip_prefix("f:") {
        let child_schema = schema.child(s, field, at_root);
        let Some(map) = v.as_object_mut() else {
            return false;
        };
        if rest.is_empty() {
            return map.remove(field).is_some();
        }
        let Some(child) = map.get_mut(field) else {
            return false;
        };
        let removed = remove_path(schema, child_schema, child, rest, false);
        if removed && rest.len() == 1 && empty_container(Some(child)) {
            map.remove(field);
        }
        return removed;
    }
    let lt = list_type(s);
    let Some(items) = v.as_array_mut() else {
        return false;
    };
    let Some(index) = items
        .iter()
        .position(|item| item_segment(s, &lt, item).ok().as_deref() == Some(seg.as_str()))
    else {
        return false;
    };
    if rest.is_empty() {
        items.remove(index);
        return true;
    }
    remove_path(schema, &s["items"], &mut items[index], rest, false)
}

/// Adds every prefix of a path that ends in a field name (kube-apiserver treats the declared
/// fields on the way to an owned field as owned too when it prunes).
fn with_named_prefixes(set: &FieldSet) -> FieldSet {
    let mut out = set.clone();
    for p in set {
        for i in 1..p.len() {
            if p[i - 1].starts_with("f:") {
                out.insert(p[..i].to_vec());
            }
        }
    }
    out
}

/// Removes from `merged` what the manager applied last time, no longer applies and no manager
/// owns now.
fn prune(schema: &Schema, merged: &mut Value, last: &FieldSet, owned: &FieldSet) {
    let last = with_named_prefixes(last);
    let owned = with_named_prefixes(owned);
    let mut removed: Vec<&Path> = Vec::new();
    for p in last.difference(&owned) {
        if p.first().is_some_and(|f| f == "f:metadata") && p.len() == 1 {
            continue;
        }
        if removed.iter().any(|r| p.starts_with(r)) {
            continue;
        }
        remove_path(schema, &schema.root, merged, p, true);
        removed.push(p);
    }
}

// ---------------------------------------------------------------------------------------------
// managedFields

#[derive(Clone, Debug)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    /// kube-apiserver's manager identity: an applier is one manager whatever API version it
    /// uses; an updater is one per API version.
    fn same_manager(&self, manager: &str, operation: &str, api_version: &str, sub: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == sub
            && (operation == "Apply" || self.api_version == api_version)
    }
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
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    // A member that also has owned children carries `.`.
    fn node<'a>(root: &'a mut Value, path: &[String]) -> Option<&'a mut Map<String, Value>> {
        let mut cur = root;
        for seg in path {
            cur = cur.get_mut(seg)?;
        }
        cur.as_object_mut()
    }
    for path in fields {
        if let Some(map) = node(&mut root, path)
            && map.keys().any(|k| k != ".")
        {
            map.insert(".".into(), json!({}));
        }
    }
    root
}

fn fields_from_v1(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(map) = v.as_object() else {
        return;
    };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (k, child) in map {
        if k == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            continue;
        }
        path.push(k.clone());
        fields_from_v1(child, path, out);
        path.pop();
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let mut fields = FieldSet::new();
            fields_from_v1(&e["fieldsV1"], &mut Vec::new(), &mut fields);
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

/// Writes the entries that own something, in kube-apiserver's order (operation, time,
/// manager, API version, subresource).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let mut kept: Vec<&Entry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    kept.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let list: Vec<Value> = kept
        .iter()
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

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// Records a write that is not an apply (create, update, patch) by `manager`: it takes over the
/// fields it adds or changes from everyone; fields it removes are owned by nobody any more.
pub fn record_update(
    schema: &Schema,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let before = old.map(without_managed_fields).unwrap_or_else(|| json!({}));
    let after = without_managed_fields(new);
    let mut cmp = Comparison::default();
    compare(
        schema,
        &schema.root,
        Some(&before),
        Some(&after),
        &mut Vec::new(),
        &mut cmp,
    );
    let cmp = cmp.filter(subresource, schema.status_subresource);
    let changed = cmp.changed();
    for e in entries
        .iter_mut()
        .filter(|e| !e.same_manager(manager, "Update", api_version, subresource))
    {
        e.fields = e
            .fields
            .difference(&changed)
            .filter(|p| !cmp.removed.contains(*p))
            .cloned()
            .collect();
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_manager(manager, "Update", api_version, subresource))
        {
            Some(e) => {
                e.fields = e
                    .fields
                    .difference(&cmp.removed)
                    .cloned()
                    .chain(changed)
                    .collect();
                e.time = now.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    } else if let Some(e) = entries
        .iter_mut()
        .find(|e| e.same_manager(manager, "Update", api_version, subresource))
    {
        e.fields = e.fields.difference(&cmp.removed).cloned().collect();
    }
    write_entries(new, &entries);
}

/// A field another manager owns whose value the apply would change.
#[derive(Clone, Debug)]
pub struct Conflict {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    /// As kube-apiserver prints it: `.spec.replicas`.
    pub path: String,
}

impl Conflict {
    /// kube-apiserver's wording of the manager: `"m"`, `"m" with subresource "status"`, and
    /// `using apps/v1` for a manager that updated rather than applied.
    pub fn manager_text(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

#[derive(Debug)]
pub enum ApplyError {
    Conflicts(Vec<Conflict>),
    /// The configuration does not fit the schema (duplicate keys, an item without its keys).
    Invalid(String),
}

/// Applies `applied` as `manager` onto `live` (None when the object does not exist yet).
/// Returns the merged object with managedFields updated.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    schema: &Schema,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    let config = without_managed_fields(applied);
    let mut config_set = FieldSet::new();
    field_set(
        schema,
        &schema.root,
        &config,
        &mut Vec::new(),
        &mut config_set,
    )
    .map_err(ApplyError::Invalid)?;
    let config_set = filtered(config_set, subresource, schema.status_subresource);

    let empty = json!({});
    let before = live.map(without_managed_fields).unwrap_or(empty);
    let mut merged = merge(schema, &schema.root, &before, &config, true);

    let mut entries = live.map(read_entries).unwrap_or_default();
    let is_mine = |e: &Entry| e.same_manager(manager, "Apply", api_version, subresource);
    let previous = entries.iter().find(|e| is_mine(e)).cloned();
    let last = previous
        .as_ref()
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    entries.retain(|e| !is_mine(e));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        subresource: subresource.to_string(),
        fields: config_set,
    });
    if !last.is_empty() {
        let owned: FieldSet = entries.iter().flat_map(|e| e.fields.clone()).collect();
        prune(schema, &mut merged, &last, &owned);
    }

    let mut cmp = Comparison::default();
    compare(
        schema,
        &schema.root,
        Some(&before),
        Some(&merged),
        &mut Vec::new(),
        &mut cmp,
    );
    let cmp = cmp.filter(subresource, schema.status_subresource);
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| !is_mine(e)) {
        let mut paths: Vec<&Path> = e.fields.intersection(&changed).collect();
        paths.sort_by(|a, b| set_order(a, b));
        for p in paths {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                path: display(p),
            });
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    let unchanged = changed.is_empty() && cmp.removed.is_empty();
    for e in entries.iter_mut() {
        if is_mine(e) {
            // As kube-apiserver, the time moves only when the object changes.
            if let Some(p) = previous.as_ref().filter(|_| unchanged) {
                e.time = p.time.clone();
            }
            continue;
        }
        e.fields = e
            .fields
            .iter()
            .filter(|p| !changed.contains(*p) && !cmp.removed.contains(*p))
            .cloned()
            .collect();
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// The order in which structured-merge-diff walks a field set: at each level the members (the
/// paths that end there) come before the children, each group sorted.
fn set_order(a: &[String], b: &[String]) -> std::cmp::Ordering {
    for i in 0..a.len().min(b.len()) {
        let (a_ends, b_ends) = (a.len() == i + 1, b.len() == i + 1);
        if a_ends != b_ends {
            return if a_ends {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
        }
        match a[i].cmp(&b[i]) {
            std::cmp::Ordering::Equal => {}
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

/// kube-apiserver's message for a refused apply.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager_text(),
            c.path
        );
    }
    let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry(c.manager_text())
            .or_default()
            .push(c.path.as_str());
    }
    let mut lines = Vec::new();
    for (manager, paths) in by_manager {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(paths.iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests;
