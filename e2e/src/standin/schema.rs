//! CRD structural-schema handling: pruning of unknown fields, defaulting and the common
//! OpenAPI v3 validations (type, nullable, required, enum, bounds, lengths, pattern, items).
//! `x-kubernetes-validations` rules run through CEL (`self`, and `oldSelf` on updates for
//! object properties). Not done: `format`, list-type uniqueness, `oneOf`/`not`,
//! `messageExpression`, CEL cost limits.

use serde_json::{Map, Value};

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

/// Removes fields the schema does not declare and fills in defaults. Returns the paths of the
/// removed (unknown) fields.
pub fn prune_and_default(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(map) = obj.as_object_mut() {
        for (k, v) in map.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match schema["properties"].get(k) {
                Some(s) => walk(s, v, k, &mut unknown),
                None if preserves(schema) => {}
                None => unknown.push(k.clone()),
            }
        }
        if !preserves(schema) {
            map.retain(|k, _| {
                matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                    || schema["properties"].get(k).is_some()
            });
        }
        apply_defaults(schema, map);
    }
    unknown
}

fn apply_defaults(schema: &Value, map: &mut Map<String, Value>) {
    if let Some(props) = schema["properties"].as_object() {
        for (k, s) in props {
            if !map.contains_key(k)
                && let Some(d) = s.get("default")
            {
                let mut d = d.clone();
                let mut ignored = Vec::new();
                walk(s, &mut d, k, &mut ignored);
                map.insert(k.clone(), d);
            }
        }
    }
}

fn walk(schema: &Value, value: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let embedded = schema["x-kubernetes-embedded-resource"].as_bool() == Some(true);
            let props = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            let keep_all = preserves(schema) || additional.as_bool() == Some(true);
            let mut remove = Vec::new();
            for (k, v) in map.iter_mut() {
                let p = child(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    walk(s, v, &p, unknown);
                } else if additional.is_object() {
                    walk(additional, v, &p, unknown);
                } else if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                } else if !keep_all {
                    remove.push(k.clone());
                    unknown.push(p);
                }
            }
            for k in remove {
                map.remove(&k);
            }
            apply_defaults(schema, map);
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, v) in items.iter_mut().enumerate() {
                walk(&schema["items"], v, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => format!("\"{}\"", type_name(other)),
    }
}

/// A validation error: field path and message (without the path).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Validates everything but apiVersion, kind and metadata; `old` is the stored object on
/// updates (for transition rules).
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(map) = obj.as_object() else {
        return errors;
    };
    // Root-level rules see the whole object, metadata included.
    rules(schema, obj, old, "", &mut errors);
    let mut root = schema.clone();
    if let Some(m) = root.as_object_mut() {
        m.remove("x-kubernetes-validations");
    }
    if let Some(props) = root["properties"].as_object_mut() {
        props.remove("metadata");
        props.remove("apiVersion");
        props.remove("kind");
    }
    let stripped: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(required) = root["required"].as_array_mut() {
        required.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
    }
    check(&root, &Value::Object(stripped), old, "", &mut errors);
    errors
}

/// Runs a node's `x-kubernetes-validations`. Transition rules (those using `oldSelf`) run
/// only when there is an old value, unless `optionalOldSelf` is set.
fn rules(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(list) = schema["x-kubernetes-validations"].as_array() else {
        return;
    };
    let null = Value::Null;
    for r in list {
        let Some(rule) = r["rule"].as_str() else {
            continue;
        };
        let transition = rule.contains("oldSelf");
        let optional = r["optionalOldSelf"].as_bool() == Some(true);
        if transition && old.is_none() && !optional {
            continue;
        }
        let old_value = old.unwrap_or(&null);
        let mut vars = vec![("self", value)];
        if transition {
            vars.push(("oldSelf", old_value));
        }
        let field = match r["fieldPath"].as_str() {
            Some(fp) if !fp.is_empty() => format!("{path}{fp}").trim_start_matches('.').to_string(),
            _ => path.to_string(),
        };
        let shown_type = schema["type"]
            .as_str()
            .unwrap_or(type_name(value))
            .to_string();
        match super::cel::eval_bool(rule, &vars) {
            Ok(true) => {}
            Ok(false) => {
                let message = r["message"]
                    .as_str()
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("failed rule: {rule}"));
                let text = match r["reason"].as_str() {
                    Some("FieldValueForbidden") => format!("Forbidden: {message}"),
                    Some("FieldValueRequired") => format!("Required value: {message}"),
                    Some("FieldValueDuplicate") => format!("Duplicate value: {message}"),
                    _ => format!("Invalid value: \"{shown_type}\": {message}"),
                };
                err(errors, &field, text);
            }
            Err(e) => err(
                errors,
                &field,
                format!("Invalid value: \"{shown_type}\": {e} evaluating rule: {rule}"),
            ),
        }
    }
}

fn err(errors: &mut Vec<FieldError>, field: &str, message: String) {
    errors.push(FieldError {
        field: field.to_string(),
        message,
    });
}

fn check(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(s, value, old, path, errors);
        }
    }
    if let Some(any) = schema["anyOf"].as_array()
        && !any.is_empty()
        && !any.iter().any(|s| {
            let mut e = Vec::new();
            check(s, value, old, path, &mut e);
            e.is_empty()
        })
    {
        err(
            errors,
            path,
            format!(
                "Invalid value: {}: {path} in body must match at least one schema in anyOf",
                shown(value)
            ),
        );
    }
    if value.is_null() {
        if schema["nullable"].as_bool() != Some(true) && schema["type"].is_string() {
            let t = schema["type"].as_str().unwrap_or_default();
            err(
                errors,
                path,
                format!("Invalid value: \"null\": {path} in body must be of type {t}: \"null\""),
            );
        }
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"].as_bool() == Some(true);
    if let Some(t) = schema["type"].as_str() {
        let actual = type_name(value);
        let ok = actual == t || (t == "number" && actual == "integer");
        if !ok && !int_or_string {
            err(
                errors,
                path,
                format!(
                    "Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
                ),
            );
            return;
        }
    }
    if int_or_string && !matches!(type_name(value), "integer" | "string") {
        err(
            errors,
            path,
            format!(
                "Invalid value: {}: {path} in body must be of type integer or string",
                shown(value)
            ),
        );
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        err(
            errors,
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                value,
                list.join(", ")
            ),
        );
    }
    rules(schema, value, old, path, errors);
    match value {
        Value::String(s) => {
            if let Some(max) = schema["maxLength"].as_u64()
                && s.chars().count() as u64 > max
            {
                err(
                    errors,
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                );
            }
            if let Some(min) = schema["minLength"].as_u64()
                && (s.chars().count() as u64) < min
            {
                err(
                    errors,
                    path,
                    format!(
                        "Invalid value: {value}: {path} in body should be at least {min} chars long"
                    ),
                );
            }
            if let Some(pattern) = schema["pattern"].as_str() {
                match regex::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => err(
                        errors,
                        path,
                        format!("Invalid value: {value}: {path} in body should match '{pattern}'"),
                    ),
                    _ => {}
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema["minimum"].as_f64() {
                let exclusive = schema["exclusiveMinimum"].as_bool() == Some(true);
                if x < min || (exclusive && x == min) {
                    let rel = if exclusive {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    err(
                        errors,
                        path,
                        format!(
                            "Invalid value: {n}: {path} in body should be {rel} {}",
                            schema["minimum"]
                        ),
                    );
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                let exclusive = schema["exclusiveMaximum"].as_bool() == Some(true);
                if x > max || (exclusive && x == max) {
                    let rel = if exclusive {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    err(
                        errors,
                        path,
                        format!(
                            "Invalid value: {n}: {path} in body should be {rel} {}",
                            schema["maximum"]
                        ),
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                err(
                    errors,
                    path,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                );
            }
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                err(
                    errors,
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                );
            }
            if schema["items"].is_object() {
                // List items are not correlated with old items (no oldSelf inside lists).
                for (i, v) in items.iter().enumerate() {
                    check(&schema["items"], v, None, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => {
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str()
                    && !map.contains_key(r)
                {
                    err(errors, &child(path, r), "Required value".into());
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64()
                && map.len() as u64 > max
            {
                err(
                    errors,
                    path,
                    format!("Too many: {}: must have at most {max} items", map.len()),
                );
            }
            let props = schema["properties"].as_object();
            for (k, v) in map {
                let old_child = old.and_then(|o| o.get(k));
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    check(s, v, old_child, &child(path, k), errors);
                } else if schema["additionalProperties"].is_object() {
                    check(
                        &schema["additionalProperties"],
                        v,
                        old_child,
                        &child(path, k),
                        errors,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1},
                "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }})
    }

    #[test]
    fn cel_rules_and_transition_rules() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec is immutable"},
                {"rule": "self.size <= 10", "fieldPath": ".size", "reason": "FieldValueForbidden", "message": "too big"},
            ],
            "properties": {"size": {"type": "integer"}},
        }}});
        let new = json!({"spec": {"size": 11}});
        let old = json!({"spec": {"size": 1}});
        let created = validate(&schema, &new, None);
        assert_eq!(
            created,
            vec![FieldError {
                field: "spec.size".into(),
                message: "Forbidden: too big".into()
            }]
        );
        let updated = validate(&schema, &new, Some(&old));
        assert!(
            updated.contains(&FieldError {
                field: "spec".into(),
                message: "Invalid value: \"object\": spec is immutable".into()
            }),
            "{updated:?}"
        );
    }

    #[test]
    fn prunes_defaults_and_validates() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"size": 0, "bogus": 1, "labels": {"a": "b"}, "free": {"any": {"thing": 1}}}, "extra": true});
        let unknown = prune_and_default(&schema(), &mut obj);
        assert_eq!(unknown, vec!["extra".to_string(), "spec.bogus".to_string()]);
        assert_eq!(obj["spec"]["mode"], "A");
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1);
        let errors = validate(&schema(), &obj, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.size");
        assert_eq!(
            errors[0].message,
            "Invalid value: 0: spec.size in body should be greater than or equal to 1"
        );
        let bad = json!({"spec": {"mode": "C", "size": "x"}});
        let errors = validate(&schema(), &bad, None);
        let text: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        assert!(
            text.contains(
                &"spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\"".to_string()
            ),
            "{text:?}"
        );
        assert!(text.contains(&"spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\"".to_string()), "{text:?}");
        let missing = json!({"spec": {}});
        assert_eq!(
            validate(&schema(), &missing, None)[0].message,
            "Required value"
        );
    }
}
