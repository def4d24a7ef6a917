//! Strategic merge patch for built-in kinds, driven by a table of list merge keys instead of
//! the Go struct tags: lists with a merge key (containers by name, ports by port, conditions by
//! type, webhooks by name, …) merge item by item; other lists are replaced. Directives handled:
//! `$patch: replace|delete`, `$setElementOrder/…`, `$deleteFromPrimitiveList/…`, `$retainKeys`.

use serde_json::{Map, Value};

fn merge_key(field: &str, items: &[Value], original: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "webhooks"
        | "resourceClaims"
        | "secrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ownerReferences" => "uid",
        "readinessGates" => "conditionType",
        "ports" => {
            let container = items
                .iter()
                .chain(original)
                .any(|i| i.get("containerPort").is_some());
            if container { "containerPort" } else { "port" }
        }
        _ => return None,
    })
}

/// Lists of scalars merged as sets.
fn primitive_merge(field: &str) -> bool {
    field == "finalizers"
}

/// Removes directives from a value that is inserted as a whole.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to `original`.
pub fn apply(original: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => merge_map(original, p),
        other => *original = strip(other),
    }
}

fn merge_map(original: &mut Value, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *original = strip(&Value::Object(patch.clone()));
        return;
    }
    if !original.is_object() {
        *original = Value::Object(Map::new());
    }
    let Some(orig) = original.as_object_mut() else {
        return;
    };
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                orig.get_mut(field).and_then(Value::as_array_mut),
                v.as_array(),
            ) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                orig.remove(k);
            }
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    orig.remove(k);
                    continue;
                }
                let entry = orig.entry(k.clone()).or_insert(Value::Null);
                merge_map(entry, pm);
            }
            Value::Array(items) => {
                let current: Vec<Value> = orig
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let merged = if items
                    .iter()
                    .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
                {
                    strip(v).as_array().cloned().unwrap_or_default()
                } else if let Some(key) = merge_key(k, items, &current) {
                    merge_list(current, items, key)
                } else if primitive_merge(k) {
                    let mut out = current;
                    for i in items {
                        if !out.contains(i) {
                            out.push(i.clone());
                        }
                    }
                    out
                } else {
                    strip(v).as_array().cloned().unwrap_or_default()
                };
                orig.insert(k.clone(), Value::Array(merged));
            }
            other => {
                orig.insert(k.clone(), other.clone());
            }
        }
    }
    for (k, order) in patch {
        if let (Some(field), Some(order)) = (k.strip_prefix("$setElementOrder/"), order.as_array())
            && let Some(list) = orig.get_mut(field).and_then(Value::as_array_mut)
        {
            reorder(list, order, field);
        }
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        orig.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k.as_str())));
    }
}

fn merge_list(mut current: Vec<Value>, items: &[Value], key: &str) -> Vec<Value> {
    for item in items {
        let id = item.get(key).cloned();
        let position = id
            .as_ref()
            .and_then(|id| current.iter().position(|c| c.get(key) == Some(id)));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(pos) = position {
                current.remove(pos);
            }
            continue;
        }
        match (position, item.as_object()) {
            (Some(pos), Some(pm)) => merge_map(&mut current[pos], pm),
            _ => current.push(strip(item)),
        }
    }
    current
}

fn reorder(list: &mut Vec<Value>, order: &[Value], field: &str) {
    let key = merge_key(field, order, list);
    let id = |v: &Value| -> Value {
        match key {
            Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
            None => v.clone(),
        }
    };
    let mut ordered = Vec::with_capacity(list.len());
    let mut rest: Vec<Value> = std::mem::take(list);
    for o in order {
        let wanted = id(o);
        if let Some(pos) = rest.iter().position(|x| id(x) == wanted) {
            ordered.push(rest.remove(pos));
        }
    }
    ordered.extend(rest);
    *list = ordered;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_keyed_lists_and_handles_directives() {
        let mut doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"},
        ]}}}, "metadata": {"finalizers": ["f1"]}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "c:1"},
            ]}}}, "metadata": {"finalizers": ["f2"]}});
        apply(&mut doc, &patch);
        let containers = &doc["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "a");
        assert_eq!(containers[0]["image"], "a:2");
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}])
        );
        assert_eq!(containers[1]["name"], "c");
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(doc["metadata"]["finalizers"], json!(["f1", "f2"]));

        let mut hooks = json!({"webhooks": [{"name": "w", "rules": [1], "failurePolicy": "Fail"}]});
        apply(
            &mut hooks,
            &json!({"$setElementOrder/webhooks": [{"name": "w"}], "webhooks": [{"name": "w", "failurePolicy": "Ignore"}]}),
        );
        assert_eq!(
            hooks,
            json!({"webhooks": [{"name": "w", "rules": [1], "failurePolicy": "Ignore"}]})
        );
    }
}
