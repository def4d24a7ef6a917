//! `meta.k8s.io/v1` Table output for `kubectl get`: Name and Age for built-in kinds, the CRD's
//! `additionalPrinterColumns` (simple JSONPath) for custom resources.

use serde_json::{Value, json};

use super::registry::{PrinterColumn, ResourceType};

/// Human age as kubectl prints it (`42s`, `5m10s`, `3h`, `2d`).
pub fn human_age(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Wildcard,
    Filter(String, String),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            // A filter may contain ']' inside quotes only in exotic cases; not supported.
            if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, value) = f.split_once("==")?;
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Filter(field.trim().to_string(), value.to_string()));
            } else if inner == "*" {
                steps.push(Step::Wildcard);
            } else {
                steps.push(Step::Index(inner.trim().parse().ok()?));
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// Evaluates a simple JSONPath (`.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`); first match.
pub fn eval(obj: &Value, path: &str) -> Option<Value> {
    let steps = parse_path(path)?;
    let mut current = vec![obj.clone()];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match &step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x.clone())
                    }
                }
                Step::Index(i) => {
                    if let Some(x) = v.get(*i) {
                        next.push(x.clone())
                    }
                }
                Step::Wildcard => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter().cloned())
                    }
                }
                Step::Filter(field, value) => {
                    if let Some(a) = v.as_array() {
                        next.extend(
                            a.iter()
                                .filter(|x| {
                                    let mut cur = *x;
                                    for seg in field.split('.') {
                                        cur = &cur[seg];
                                    }
                                    match cur {
                                        Value::String(s) => s == value,
                                        other => other.to_string().as_str() == value.as_str(),
                                    }
                                })
                                .cloned(),
                        )
                    }
                }
            }
        }
        current = next;
    }
    current.into_iter().next()
}

fn cell(col: &PrinterColumn, obj: &Value) -> Value {
    match eval(obj, &col.json_path) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if col.type_ == "date" => json!(human_age(&s)),
        Some(v) => v,
    }
}

pub fn to_table(
    rt: &ResourceType,
    items: &[Value],
    list_meta: Value,
    include_object: Option<&str>,
) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let custom = !rt.printer_columns.is_empty();
    for c in &rt.printer_columns {
        columns.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    if !custom {
        columns.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![obj["metadata"]["name"].clone()];
            if custom {
                cells.extend(rt.printer_columns.iter().map(|c| cell(c, obj)));
            } else {
                cells.push(json!(human_age(obj["metadata"]["creationTimestamp"].as_str().unwrap_or_default())));
            }
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => obj.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let obj = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"n": 3}});
        assert_eq!(
            eval(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("True"))
        );
        assert_eq!(eval(&obj, ".status.conditions[0].type"), Some(json!("A")));
        assert_eq!(eval(&obj, ".spec.n"), Some(json!(3)));
        assert_eq!(eval(&obj, ".spec.missing"), None);
    }
}
