//! `annexa check -o sarif`: the findings as a SARIF 2.1.0 log, the format code-scanning UIs
//! (GitHub, GitLab, Azure DevOps, IDEs) display inline on the manifest that caused them.
//!
//! One rule per control of the catalogue (id, title, what Annexa checks as help), one result
//! per finding, located at the file and line where the object's document starts, with the
//! offending field in the message. Level from the action: Enforce -> `error`, Warn ->
//! `warning`, Audit -> `note`. The log is built as JSON values: no maintained SARIF crate fits
//! the crate's dependency set, and the shape is small; a test validates it against the
//! official SARIF 2.1.0 schema.

use crate::api::Action;
use crate::evidence::records::Report;
use crate::policy::CATALOGUE;
use serde_json::{Value, json};

/// Where the SARIF 2.1.0 schema is published (the `$schema` of every log).
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The rule of results for what `annexa check` did not evaluate.
pub const NOT_CHECKED_RULE: &str = "annexa/not-checked";

/// The SARIF level of a finding's action.
pub fn level(action: Action) -> &'static str {
    match action {
        Action::Enforce => "error",
        Action::Warn => "warning",
        Action::Audit => "note",
    }
}

/// A file name as a relative URI reference: characters a URI cannot hold are percent-encoded.
fn uri(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    for byte in file.bytes() {
        match byte {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'+'
            | b','
            | b'='
            | b'@' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The check report as a SARIF 2.1.0 log.
pub fn sarif(report: &Report) -> Value {
    let rules: Vec<Value> = CATALOGUE
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.title,
                "shortDescription": { "text": format!("{} {}", c.id, c.title) },
                "fullDescription": { "text": c.checks },
                "help": {
                    "text": format!("ISO/IEC 27001:2022 Annex A {} {} ({:?}). Annexa checks: {} Evaluated on: {}.",
                        c.id, c.title, c.theme, c.checks, c.kinds.join(", ")),
                    "markdown": format!("**ISO/IEC 27001:2022 Annex A {} {}** ({:?})\n\nAnnexa checks: {}\n\nEvaluated on: {}.",
                        c.id, c.title, c.theme, c.checks, c.kinds.join(", ")),
                },
                "defaultConfiguration": { "level": "error" },
                "properties": {
                    "tags": ["iso27001", format!("{:?}", c.theme).to_lowercase()],
                    "kinds": c.kinds,
                },
            })
        })
        .collect();
    let mut results = Vec::new();
    for checked in &report.objects {
        let e = &checked.evaluation;
        for f in &e.findings {
            let rule_index = CATALOGUE.iter().position(|c| c.id == f.control);
            let mut region = serde_json::Map::new();
            if let Some(line) = checked.origin.line {
                region.insert("startLine".into(), json!(line));
            }
            let mut physical = json!({
                "artifactLocation": { "uri": uri(&checked.origin.file) },
            });
            if !region.is_empty() {
                physical["region"] = Value::Object(region);
            }
            let mut result = json!({
                "ruleId": f.control,
                "level": level(f.action),
                "message": { "text": format!("{} (field {})", f.message, f.path) },
                "locations": [{
                    "physicalLocation": physical,
                    "logicalLocations": [{
                        "fullyQualifiedName": e.object.to_string(),
                        "name": e.object.name,
                        "kind": "object",
                    }],
                }],
                "properties": {
                    "action": f.action.to_string(),
                    "field": f.path,
                    "object": e.object.to_string(),
                    "document": checked.origin.document,
                    "appliedPolicies": checked.applied.reason,
                },
            });
            if let Some(index) = rule_index {
                result["ruleIndex"] = json!(index);
            }
            results.push(result);
        }
    }
    // What was not checked: one result each, an error with --strict (it fails the check), a
    // warning otherwise, under a rule of its own after the catalogue's.
    let mut rules = rules;
    if !report.not_checked.is_empty() {
        rules.push(json!({
            "id": NOT_CHECKED_RULE,
            "name": "Not checked",
            "shortDescription": { "text": "Something annexa check did not evaluate that could hide a failure" },
            "fullDescription": { "text": "An AI-serving or GPU kind Annexa does not read, a policy given with --policy that selects none of the checked namespaces, or an input with no object Annexa evaluates." },
            "defaultConfiguration": { "level": "warning" },
        }));
        let rule_index = rules.len() - 1;
        for gap in &report.not_checked {
            let mut result = json!({
                "ruleId": NOT_CHECKED_RULE,
                "ruleIndex": rule_index,
                "level": if report.strict { "error" } else { "warning" },
                "message": { "text": format!("{}: {}", gap.subject, gap.message) },
                "properties": { "subject": gap.subject },
            });
            let file = gap
                .origin
                .as_ref()
                .map(|o| (o.file.as_str(), o.line))
                .or(gap.file.as_deref().map(|f| (f, None)));
            if let Some((file, line)) = file {
                let mut physical = json!({ "artifactLocation": { "uri": uri(file) } });
                if let Some(line) = line {
                    physical["region"] = json!({ "startLine": line });
                }
                result["locations"] = json!([{ "physicalLocation": physical }]);
            }
            results.push(result);
        }
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "annexa",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_become_uri_references() {
        assert_eq!(uri("examples/a b.yaml"), "examples/a%20b.yaml");
        assert_eq!(uri("<stdin>"), "%3Cstdin%3E");
        assert_eq!(uri("dir/#1?.yaml"), "dir/%231%3F.yaml");
    }

    #[test]
    fn levels_follow_the_action() {
        assert_eq!(level(Action::Enforce), "error");
        assert_eq!(level(Action::Warn), "warning");
        assert_eq!(level(Action::Audit), "note");
    }
}
