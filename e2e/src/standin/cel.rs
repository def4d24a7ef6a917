//! CEL evaluation (the `cel` crate) for webhook `matchConditions`, CRD
//! `x-kubernetes-validations` and ValidatingAdmissionPolicies. Standard CEL with macros and `matches`; none of the
//! Kubernetes-specific libraries (`authorizer`, quantity, IP/CIDR, URL, `isSorted`, …).

use serde_json::Value;

/// Evaluates `expression` with JSON variables; it must yield a boolean.
pub fn eval_bool(expression: &str, vars: &[(&str, &Value)]) -> Result<bool, String> {
    match eval(expression, vars, &[])? {
        cel::Value::Bool(b) => Ok(b),
        other => Err(format!("expected a boolean, got {other:?}")),
    }
}

/// Evaluates `expression` with JSON variables and variables that are already CEL values
/// (a ValidatingAdmissionPolicy's `variables`).
pub fn eval(
    expression: &str,
    vars: &[(&str, &Value)],
    cel_vars: &[(&str, cel::Value)],
) -> Result<cel::Value, String> {
    let program =
        cel::Program::compile(expression).map_err(|e| format!("compilation failed: {e}"))?;
    let mut ctx = cel::Context::default();
    for (name, value) in vars {
        ctx.add_variable(*name, (*value).clone())
            .map_err(|e| format!("binding {name}: {e}"))?;
    }
    for (name, value) in cel_vars {
        ctx.add_variable_from_value(*name, value.clone());
    }
    program.execute(&ctx).map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_kubernetes_style_expressions() {
        let object =
            json!({"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}});
        assert_eq!(
            eval_bool(
                "object.spec.containers.exists(c, has(c.resources.limits) && 'nvidia.com/gpu' in c.resources.limits)",
                &[("object", &object)]
            ),
            Ok(true)
        );
        let a = json!({"x": 1});
        let b = json!({"x": 2});
        assert_eq!(
            eval_bool("self == oldSelf", &[("self", &a), ("oldSelf", &b)]),
            Ok(false)
        );
        assert!(eval_bool("self.missing == 1", &[("self", &a)]).is_err());
        assert!(eval_bool("1 +", &[]).is_err());
    }
}
