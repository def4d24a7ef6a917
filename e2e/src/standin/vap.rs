//! ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1): the policies and their bindings
//! stored in the server, evaluated with CEL as kube-apiserver's ValidatingAdmissionPolicy plugin
//! does, after the mutating webhooks and before the validating ones.
//!
//! Covered: `matchConstraints` (resourceRules with operations, groups, versions, resources,
//! subresources, scope and resourceNames; excludeResourceRules; namespaceSelector;
//! objectSelector), the binding's `matchResources` (the same, further narrowing), `paramKind` +
//! `paramRef` (by name, or by selector, in the request's namespace unless the ref names one;
//! `parameterNotFoundAction`; a selector that matches several objects evaluates each),
//! `matchConditions`, `variables`, `validations` with `message`, `messageExpression` and
//! `reason`, `failurePolicy` and `validationActions` (Deny, Warn; Audit is accepted and only
//! recorded nowhere, as no audit log exists here), with kube-apiserver's wording.
//!
//! Not covered: `auditAnnotations`, the `authorizer` variable, the Kubernetes CEL libraries
//! (quantity, IP/CIDR, URL, regex helpers beyond `matches`), type checking of expressions at
//! policy creation (an expression that does not compile is found at evaluation, and handled
//! by `failurePolicy`), CEL cost limits, and `matchPolicy: Equivalent` across API versions.

use serde_json::Value;

use super::Server;
use super::admission::{Attributes, review, rule_matches, selector_matches};
use super::api::{ApiError, qualified};
use super::registry::{GroupResource, Special};
use super::store::{self, meta_str};

fn gr(resource: &str) -> GroupResource {
    GroupResource {
        group: "admissionregistration.k8s.io".into(),
        resource: resource.into(),
    }
}

fn names(rule: &Value) -> Vec<&str> {
    rule["resourceNames"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn named_rule_matches(rule: &Value, a: &Attributes<'_>) -> bool {
    let names = names(rule);
    rule_matches(rule, a) && (names.is_empty() || names.contains(&a.name))
}

/// `matchConstraints` of a policy, or `matchResources` of a binding.
fn resources_match(server: &Server, constraints: &Value, a: &Attributes<'_>) -> bool {
    if constraints.is_null() {
        return true;
    }
    let rules = constraints["resourceRules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // A binding's matchResources without resourceRules matches every resource the policy does.
    if constraints.get("resourceRules").is_some() && !rules.iter().any(|r| named_rule_matches(r, a))
    {
        return false;
    }
    let excluded = constraints["excludeResourceRules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if excluded.iter().any(|r| named_rule_matches(r, a)) {
        return false;
    }
    let labels = |o: &Option<Value>| {
        o.as_ref()
            .and_then(|o| o["metadata"]["labels"].as_object().cloned())
    };
    let ns_labels = if a.rt.special == Special::Namespace {
        labels(&a.object).or_else(|| labels(&a.old_object))
    } else if a.rt.namespaced {
        server
            .state()
            .get(&store::ns_gr(), "", a.namespace)
            .and_then(|n| n["metadata"]["labels"].as_object().cloned())
    } else {
        None
    };
    let ns_ok = (!a.rt.namespaced && a.rt.special != Special::Namespace)
        || selector_matches(&constraints["namespaceSelector"], ns_labels.as_ref());
    let selector = &constraints["objectSelector"];
    let obj_ok = selector_matches(selector, labels(&a.object).as_ref())
        || (a.old_object.is_some() && selector_matches(selector, labels(&a.old_object).as_ref()));
    ns_ok && obj_ok
}

/// The parameter objects of a binding: None when the policy has no paramKind.
fn params(
    server: &Server,
    policy: &Value,
    binding: &Value,
    a: &Attributes<'_>,
) -> Result<Option<Vec<Value>>, String> {
    let kind = &policy["spec"]["paramKind"];
    if kind.is_null() {
        return Ok(None);
    }
    let api_version = kind["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind_name = kind["kind"].as_str().unwrap_or_default();
    let reference = &binding["spec"]["paramRef"];
    if reference.is_null() {
        return Err(
            "failed to configure binding: paramRef is required when the policy has a paramKind"
                .into(),
        );
    }
    let st = server.state();
    let Some(rt) = st
        .registry
        .all()
        .iter()
        .find(|t| t.group == group && t.version == version && t.kind == kind_name)
        .cloned()
    else {
        return Err(format!(
            "failed to configure policy: failed to find resource referenced by paramKind: '{api_version}, Kind={kind_name}'"
        ));
    };
    let namespace = if rt.namespaced {
        reference["namespace"]
            .as_str()
            .unwrap_or(a.namespace)
            .to_string()
    } else {
        String::new()
    };
    let found: Vec<Value> = match reference["name"].as_str() {
        Some(name) => st
            .get(&rt.group_resource(), &namespace, name)
            .cloned()
            .into_iter()
            .collect(),
        None => st
            .list(
                &rt.group_resource(),
                rt.namespaced.then_some(namespace.as_str()),
            )
            .map(|(_, v)| v.clone())
            .filter(|v| {
                selector_matches(&reference["selector"], v["metadata"]["labels"].as_object())
            })
            .collect(),
    };
    if found.is_empty() && reference["parameterNotFoundAction"].as_str() != Some("Allow") {
        return Err(
            "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
                .into(),
        );
    }
    Ok(Some(found))
}

fn code_of(reason: &str) -> u16 {
    match reason {
        "Unauthorized" => 401,
        "Forbidden" => 403,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}

/// One failed validation: reason and message.
struct Failure {
    reason: String,
    message: String,
}

/// Evaluates one binding with one parameter object: Ok(None) admits, Ok(Some) is a failed
/// validation, Err an evaluation error (handled by the failurePolicy).
fn evaluate(policy: &Value, vars: &[(&str, &Value)]) -> Result<Option<Failure>, String> {
    for c in policy["spec"]["matchConditions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expression = c["expression"].as_str().unwrap_or_default();
        match super::cel::eval_bool(expression, vars) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                let name = c["name"].as_str().unwrap_or_default();
                return Err(format!(
                    "failed to evaluate match condition {name:?}: expression '{expression}' resulted in error: {e}"
                ));
            }
        }
    }
    let mut variables = std::collections::HashMap::<String, cel::Value>::new();
    for v in policy["spec"]["variables"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default();
        let expression = v["expression"].as_str().unwrap_or_default();
        let value = super::cel::eval(
            expression,
            vars,
            &[("variables", cel::Value::from(variables.clone()))],
        )
        .map_err(|e| {
            format!("variable '{name}': expression '{expression}' resulted in error: {e}")
        })?;
        variables.insert(name.to_string(), value);
    }
    let cel_vars = [("variables", cel::Value::from(variables))];
    for v in policy["spec"]["validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expression = v["expression"].as_str().unwrap_or_default();
        match super::cel::eval(expression, vars, &cel_vars) {
            Ok(cel::Value::Bool(true)) => continue,
            Ok(cel::Value::Bool(false)) => {}
            Ok(other) => {
                return Err(format!(
                    "expression '{expression}' resulted in error: expected a boolean, got {other:?}"
                ));
            }
            Err(e) => return Err(format!("expression '{expression}' resulted in error: {e}")),
        }
        let from_expression = v["messageExpression"]
            .as_str()
            .and_then(|m| match super::cel::eval(m, vars, &cel_vars) {
                Ok(cel::Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                    Some(s.to_string())
                }
                _ => None,
            });
        let message = from_expression
            .or_else(|| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("failed expression: {expression}"));
        let reason = v["reason"].as_str().unwrap_or("Invalid").to_string();
        return Ok(Some(Failure { reason, message }));
    }
    Ok(None)
}

/// Runs every ValidatingAdmissionPolicy bound to this request. Returns the warnings of
/// `Warn` bindings, or the first denial.
pub fn validate(
    server: &Server,
    a: &Attributes<'_>,
    object: &Option<Value>,
) -> Result<Vec<String>, ApiError> {
    let (policies, bindings): (Vec<Value>, Vec<Value>) = {
        let st = server.state();
        let mut policies: Vec<Value> = st
            .list(&gr("validatingadmissionpolicies"), None)
            .map(|(_, v)| v.clone())
            .collect();
        policies.sort_by_key(|p| meta_str(p, "name").to_string());
        let mut bindings: Vec<Value> = st
            .list(&gr("validatingadmissionpolicybindings"), None)
            .map(|(_, v)| v.clone())
            .collect();
        bindings.sort_by_key(|b| meta_str(b, "name").to_string());
        (policies, bindings)
    };
    if policies.is_empty() || bindings.is_empty() {
        return Ok(Vec::new());
    }
    let request = review(a, object)["request"].clone();
    let namespace_object = if a.rt.namespaced {
        server
            .state()
            .get(&store::ns_gr(), "", a.namespace)
            .cloned()
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let mut warnings = Vec::new();
    for policy in &policies {
        let policy_name = meta_str(policy, "name");
        if !resources_match(server, &policy["spec"]["matchConstraints"], a) {
            continue;
        }
        let fail_closed = policy["spec"]["failurePolicy"].as_str() != Some("Ignore");
        for binding in bindings
            .iter()
            .filter(|b| b["spec"]["policyName"].as_str() == Some(policy_name))
        {
            let binding_name = meta_str(binding, "name");
            if !resources_match(server, &binding["spec"]["matchResources"], a) {
                continue;
            }
            let actions: Vec<&str> = binding["spec"]["validationActions"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            // As kube-apiserver builds it: admission.NewForbidden's text and details, with the
            // validation's reason (default Invalid) and its code, and the message as a cause.
            let denied = |reason: &str, message: &str| {
                let cause = format!(
                    "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {message}"
                );
                ApiError::new(
                    code_of(reason),
                    reason,
                    format!("{} \"{}\" is forbidden: {cause}", qualified(a.rt), a.name),
                )
                .with_details(serde_json::json!({
                    "name": a.name,
                    "group": a.rt.group,
                    "kind": a.rt.plural,
                    "causes": [{"message": cause}],
                }))
            };
            let outcomes: Vec<Result<Option<Failure>, String>> =
                match params(server, policy, binding, a) {
                    Err(e) => vec![Err(e)],
                    Ok(None) => {
                        let vars = [
                            ("object", &request["object"]),
                            ("oldObject", &request["oldObject"]),
                            ("request", &request),
                            ("namespaceObject", &namespace_object),
                            ("params", &Value::Null),
                        ];
                        vec![evaluate(policy, &vars)]
                    }
                    Ok(Some(found)) => found
                        .iter()
                        .map(|p| {
                            let vars = [
                                ("object", &request["object"]),
                                ("oldObject", &request["oldObject"]),
                                ("request", &request),
                                ("namespaceObject", &namespace_object),
                                ("params", p),
                            ];
                            evaluate(policy, &vars)
                        })
                        .collect(),
                };
            for outcome in outcomes {
                let failure = match outcome {
                    Ok(None) => continue,
                    Ok(Some(f)) => f,
                    Err(_) if !fail_closed => continue,
                    Err(e) => Failure {
                        reason: "Invalid".into(),
                        message: e,
                    },
                };
                if actions.contains(&"Deny") {
                    return Err(denied(&failure.reason, &failure.message));
                }
                if actions.contains(&"Warn") {
                    warnings.push(format!(
                        "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {}",
                        failure.message
                    ));
                }
            }
        }
    }
    Ok(warnings)
}
