//! Defaulting and validation of Validating- and MutatingWebhookConfigurations, following
//! kube-apiserver's rules and wording for the fields a configuration commonly gets wrong.

use serde_json::{Value, json};

use super::schema::FieldError;

fn err(errors: &mut Vec<FieldError>, field: String, message: String) {
    errors.push(FieldError { field, message });
}

/// Fills in the defaults kube-apiserver sets.
pub fn default(config: &mut Value, mutating: bool) {
    let Some(hooks) = config["webhooks"].as_array_mut() else {
        return;
    };
    for hook in hooks.iter_mut().filter(|h| h.is_object()) {
        let defaults = [
            ("failurePolicy", json!("Fail")),
            ("matchPolicy", json!("Equivalent")),
            ("namespaceSelector", json!({})),
            ("objectSelector", json!({})),
            ("timeoutSeconds", json!(10)),
        ];
        for (k, v) in defaults {
            if hook[k].is_null() {
                hook[k] = v;
            }
        }
        if mutating && hook["reinvocationPolicy"].is_null() {
            hook["reinvocationPolicy"] = json!("Never");
        }
        if hook["clientConfig"]["service"].is_object()
            && hook["clientConfig"]["service"]["port"].is_null()
        {
            hook["clientConfig"]["service"]["port"] = json!(443);
        }
        if let Some(rules) = hook["rules"].as_array_mut() {
            for r in rules.iter_mut().filter(|r| r.is_object()) {
                if r["scope"].is_null() {
                    r["scope"] = json!("*");
                }
            }
        }
    }
}

fn one_of(errors: &mut Vec<FieldError>, field: String, value: &Value, allowed: &[&str]) {
    if let Some(v) = value.as_str()
        && !allowed.contains(&v)
    {
        let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        err(
            errors,
            field,
            format!(
                "Unsupported value: \"{v}\": supported values: {}",
                list.join(", ")
            ),
        );
    }
}

pub fn validate(config: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let hooks = config["webhooks"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for (i, hook) in hooks.iter().enumerate() {
        let at = |f: &str| format!("webhooks[{i}].{f}");
        let name = hook["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            err(&mut errors, at("name"), "Required value".into());
        } else if name.split('.').filter(|s| !s.is_empty()).count() < 3 {
            err(
                &mut errors,
                at("name"),
                format!(
                    "Invalid value: \"{name}\": should be a domain with at least three segments separated by dots"
                ),
            );
        } else if names.iter().any(|n| n == name) {
            err(
                &mut errors,
                at("name"),
                format!("Duplicate value: \"{name}\""),
            );
        }
        names.push(name.to_string());
        let versions: Vec<&str> = hook["admissionReviewVersions"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if versions.is_empty() {
            err(
                &mut errors,
                at("admissionReviewVersions"),
                "Required value: must specify one of v1, v1beta1".into(),
            );
        } else if !versions.iter().any(|v| *v == "v1" || *v == "v1beta1") {
            err(
                &mut errors,
                at("admissionReviewVersions"),
                format!(
                    "Invalid value: {:?}: must include at least one of v1, v1beta1",
                    versions
                ),
            );
        }
        match hook["sideEffects"].as_str() {
            None => err(
                &mut errors,
                at("sideEffects"),
                "Required value: must specify one of None, NoneOnDryRun".into(),
            ),
            Some(_) => one_of(
                &mut errors,
                at("sideEffects"),
                &hook["sideEffects"],
                &["None", "NoneOnDryRun"],
            ),
        }
        one_of(
            &mut errors,
            at("failurePolicy"),
            &hook["failurePolicy"],
            &["Fail", "Ignore"],
        );
        one_of(
            &mut errors,
            at("matchPolicy"),
            &hook["matchPolicy"],
            &["Exact", "Equivalent"],
        );
        one_of(
            &mut errors,
            at("reinvocationPolicy"),
            &hook["reinvocationPolicy"],
            &["Never", "IfNeeded"],
        );
        if let Some(t) = hook["timeoutSeconds"].as_i64()
            && !(1..=30).contains(&t)
        {
            err(
                &mut errors,
                at("timeoutSeconds"),
                format!("Invalid value: {t}: the timeout value must be between 1 and 30 seconds"),
            );
        }
        let client = &hook["clientConfig"];
        match (client["url"].as_str(), client["service"].is_object()) {
            (Some(_), true) | (None, false) => err(
                &mut errors,
                at("clientConfig"),
                "Required value: exactly one of url or service is required".into(),
            ),
            (Some(url), false) if !url.starts_with("https://") => err(
                &mut errors,
                at("clientConfig.url"),
                format!("Invalid value: \"{url}\": 'https' is the only allowed URL scheme"),
            ),
            (None, true) => {
                for f in ["name", "namespace"] {
                    if client["service"][f].as_str().is_none_or(str::is_empty) {
                        err(
                            &mut errors,
                            at(&format!("clientConfig.service.{f}")),
                            format!("Required value: service {f} is required"),
                        );
                    }
                }
                if let Some(path) = client["service"]["path"].as_str()
                    && !path.starts_with('/')
                {
                    err(
                        &mut errors,
                        at("clientConfig.service.path"),
                        format!("Invalid value: \"{path}\": must start with a '/'"),
                    );
                }
            }
            _ => {}
        }
        if let Some(b) = client["caBundle"].as_str()
            && base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).is_err()
        {
            err(
                &mut errors,
                at("clientConfig.caBundle"),
                "Invalid value: illegal base64 data".into(),
            );
        }
        for (j, rule) in hook["rules"].as_array().into_iter().flatten().enumerate() {
            let rat = |f: &str| at(&format!("rules[{j}].{f}"));
            for op in rule["operations"].as_array().into_iter().flatten() {
                one_of(
                    &mut errors,
                    rat("operations"),
                    op,
                    &["*", "CREATE", "UPDATE", "DELETE", "CONNECT"],
                );
            }
            for f in ["apiGroups", "apiVersions", "resources"] {
                if rule[f].as_array().is_none_or(Vec::is_empty) {
                    err(&mut errors, rat(f), "Required value".into());
                }
            }
            one_of(
                &mut errors,
                rat("scope"),
                &rule["scope"],
                &["*", "Cluster", "Namespaced"],
            );
        }
        for (j, c) in hook["matchConditions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let expression = c["expression"].as_str().unwrap_or_default();
            if c["name"].as_str().is_none_or(str::is_empty) {
                err(
                    &mut errors,
                    at(&format!("matchConditions[{j}].name")),
                    "Required value".into(),
                );
            }
            if let Err(e) = cel::Program::compile(expression) {
                err(
                    &mut errors,
                    at(&format!("matchConditions[{j}].expression")),
                    format!("Invalid value: \"{expression}\": compilation failed: {e}"),
                );
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_defaults() {
        let mut good = json!({"webhooks": [{
            "name": "a.b.c", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"service": {"name": "s", "namespace": "n"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        }]});
        default(&mut good, true);
        assert!(validate(&good).is_empty(), "{:?}", validate(&good));
        assert_eq!(good["webhooks"][0]["failurePolicy"], "Fail");
        assert_eq!(good["webhooks"][0]["clientConfig"]["service"]["port"], 443);
        let bad = json!({"webhooks": [{"name": "short", "clientConfig": {"url": "http://x"}, "timeoutSeconds": 31}]});
        let fields: Vec<String> = validate(&bad).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "webhooks[0].name",
                "webhooks[0].admissionReviewVersions",
                "webhooks[0].sideEffects",
                "webhooks[0].timeoutSeconds",
                "webhooks[0].clientConfig.url",
            ]
        );
    }
}
