//! Dynamic admission: calls the Mutating- and ValidatingWebhookConfigurations stored in the
//! server over HTTPS, as kube-apiserver does (mutating first, then validating).
//!
//! `matchConditions` are evaluated with the `cel` crate (no `authorizer` variable).
//! ValidatingAdmissionPolicies run in the validating phase, before the webhooks (see `vap`).
//! `reinvocationPolicy` is ignored (each webhook runs once).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::api::ApiError;
use super::registry::{GroupResource, ResourceType, Special};
use super::selectors::LabelSelector;
use super::store::{self, meta_str};
use super::{Server, User};
use crate::tls;

pub struct Attributes<'a> {
    pub rt: &'a ResourceType,
    pub subresource: &'a str,
    pub operation: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub user: &'a User,
    pub dry_run: bool,
    pub options: Value,
}

struct Hook {
    webhook: Value,
    mutating: bool,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn rule_matches(rule: &Value, a: &Attributes<'_>) -> bool {
    let any = |list: Vec<String>, value: &str| list.iter().any(|x| x == "*" || x == value);
    if !any(strings(&rule["operations"]), a.operation)
        || !any(strings(&rule["apiGroups"]), &a.rt.group)
        || !any(strings(&rule["apiVersions"]), &a.rt.version)
    {
        return false;
    }
    let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => !a.rt.namespaced,
        "Namespaced" => a.rt.namespaced,
        _ => true,
    };
    let resource_ok = strings(&rule["resources"]).iter().any(|r| {
        let (res, sub) = match r.split_once('/') {
            Some((res, sub)) => (res, Some(sub)),
            None => (r.as_str(), None),
        };
        let res_ok = res == "*" || res == a.rt.plural;
        let sub_ok = match sub {
            None => a.subresource.is_empty(),
            Some("*") => !a.subresource.is_empty() || res == "*",
            Some(s) => s == a.subresource,
        };
        res_ok && sub_ok
    });
    scope_ok && resource_ok
}

pub(super) fn selector_matches(
    selector: &Value,
    labels: Option<&serde_json::Map<String, Value>>,
) -> bool {
    if selector.is_null() {
        return true;
    }
    LabelSelector::from_object(selector)
        .map(|s| s.matches(labels))
        .unwrap_or(false)
}

fn webhook_matches(server: &Server, hook: &Value, a: &Attributes<'_>) -> bool {
    let rules = hook["rules"].as_array().cloned().unwrap_or_default();
    if !rules.iter().any(|r| rule_matches(r, a)) {
        return false;
    }
    let object_labels = |o: &Option<Value>| {
        o.as_ref()
            .and_then(|o| o["metadata"]["labels"].as_object().cloned())
    };
    // namespaceSelector: the namespace's labels (a Namespace's own labels); ignored for
    // other cluster-scoped objects.
    let ns_labels = if a.rt.special == Special::Namespace {
        object_labels(&a.object).or_else(|| object_labels(&a.old_object))
    } else if a.rt.namespaced {
        server
            .state()
            .get(&store::ns_gr(), "", a.namespace)
            .and_then(|n| n["metadata"]["labels"].as_object().cloned())
    } else {
        None
    };
    let ns_ok = (!a.rt.namespaced && a.rt.special != Special::Namespace)
        || selector_matches(&hook["namespaceSelector"], ns_labels.as_ref());
    let obj_ok = selector_matches(&hook["objectSelector"], object_labels(&a.object).as_ref())
        || (a.old_object.is_some()
            && selector_matches(
                &hook["objectSelector"],
                object_labels(&a.old_object).as_ref(),
            ));
    ns_ok && obj_ok
}

/// Where to send the review: (address to dial, TLS server name, URL as Go would print it).
fn endpoint(
    server: &Server,
    client: &Value,
    timeout: u64,
) -> Result<(String, String, String, String), String> {
    if let Some(url) = client["url"].as_str() {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("webhook url {url:?} must use https"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, addr) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_string(), format!("{h}:{p}"))
            }
            _ => (hostport.to_string(), format!("{hostport}:443")),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let path = format!(
            "{path}{}timeout={timeout}s",
            if path.contains('?') { "&" } else { "?" }
        );
        return Ok((addr, host, format!("https://{hostport}{path}"), path));
    }
    let svc = &client["service"];
    let (name, ns) = match (svc["name"].as_str(), svc["namespace"].as_str()) {
        (Some(n), Some(ns)) => (n, ns),
        _ => return Err("webhook clientConfig has neither url nor service".into()),
    };
    let port = svc["port"].as_u64().unwrap_or(443);
    let path = svc["path"].as_str().unwrap_or("/");
    let path = format!(
        "{path}{}timeout={timeout}s",
        if path.contains('?') { "&" } else { "?" }
    );
    let host = format!("{name}.{ns}.svc");
    let addr = server
        .webhook_override(&format!("{name}.{ns}:{port}"))
        .unwrap_or_else(|| format!("{host}:{port}"));
    Ok((
        addr,
        host.clone(),
        format!("https://{host}:{port}{path}"),
        path,
    ))
}

async fn call(server: &Server, hook: &Value, review: &Value) -> Result<Value, String> {
    let timeout = hook["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30);
    let client = &hook["clientConfig"];
    let (addr, server_name, url, path) = endpoint(server, client, timeout)?;
    let ca = client["caBundle"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default();
    let config = tls::client_config(&ca).map_err(|e| {
        format!("failed to call webhook: Post \"{url}\": tls: failed to verify certificate: x509: certificate signed by unknown authority ({e})")
    })?;
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let request = http::Request::post(&path)
        .header(http::header::HOST, server_name.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .body(Bytes::from(body))
        .map_err(|e| e.to_string())?;
    let response = tls::https_request(
        Arc::new(config),
        &addr,
        &server_name,
        request,
        Duration::from_secs(timeout),
    )
    .await
    .map_err(|e| format!("failed to call webhook: Post \"{url}\": {e}"))?;
    if response.status != 200 {
        return Err(format!(
            "failed to call webhook: the server responded with the status code {} but did not return more information",
            response.status
        ));
    }
    let value: Value = serde_json::from_slice(&response.body)
        .map_err(|e| format!("received invalid webhook response: {e}"))?;
    if value["apiVersion"] != "admission.k8s.io/v1" || value["kind"] != "AdmissionReview" {
        return Err(format!(
            "received invalid webhook response: expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {}, Kind={}",
            value["apiVersion"].as_str().unwrap_or_default(),
            value["kind"].as_str().unwrap_or_default()
        ));
    }
    let response = value["response"].clone();
    if response["uid"] != review["request"]["uid"] {
        return Err(format!(
            "received invalid webhook response: expected response.uid={}, got {}",
            review["request"]["uid"], response["uid"]
        ));
    }
    Ok(response)
}

fn denial(name: &str, result: &Value) -> ApiError {
    let denied_by = format!("admission webhook \"{name}\" denied the request");
    let status = &result["status"];
    let code = status["code"].as_u64().filter(|c| *c >= 400).unwrap_or(403) as u16;
    let message = status["message"].as_str().unwrap_or_default();
    let reason = status["reason"].as_str().unwrap_or_default();
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let mut err = ApiError::new(code, reason, text);
    if !status["details"].is_null() {
        err.details = Some(status["details"].clone());
    }
    err
}

/// Evaluates `matchConditions` (CEL) as kube-apiserver does: any false skips the webhook;
/// otherwise any error is an error; otherwise the webhook is called.
fn match_conditions(
    server: &Server,
    hook: &Value,
    request: &Value,
    a: &Attributes<'_>,
) -> Result<bool, String> {
    let Some(conditions) = hook["matchConditions"].as_array().filter(|c| !c.is_empty()) else {
        return Ok(true);
    };
    let namespace = if a.rt.namespaced {
        server
            .state()
            .get(&store::ns_gr(), "", a.namespace)
            .cloned()
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let vars = [
        ("object", &request["object"]),
        ("oldObject", &request["oldObject"]),
        ("request", request),
        ("namespaceObject", &namespace),
    ];
    let mut first_error = None;
    for c in conditions {
        let expression = c["expression"].as_str().unwrap_or_default();
        match super::cel::eval_bool(expression, &vars) {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            Err(e) => {
                if first_error.is_none() {
                    let name = c["name"].as_str().unwrap_or_default();
                    first_error = Some(format!(
                        "failed to evaluate match condition {name:?}: expression '{expression}' resulted in error: {e}"
                    ));
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(true),
    }
}

pub(super) fn review(a: &Attributes<'_>, object: &Option<Value>) -> Value {
    // The scale subresource is reviewed as the Scale it reads and writes.
    let kind = if a.subresource == "scale" {
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    } else {
        json!({"group": a.rt.group, "version": a.rt.version, "kind": a.rt.kind})
    };
    let resource = json!({"group": a.rt.group, "version": a.rt.version, "resource": a.rt.plural});
    let mut request = json!({
        "uid": store::new_uid(),
        "kind": kind, "resource": resource,
        "requestKind": kind, "requestResource": resource,
        "name": a.name,
        "operation": a.operation,
        "userInfo": {"username": a.user.name, "uid": a.user.uid, "groups": a.user.groups},
        "object": object.clone().unwrap_or(Value::Null),
        "oldObject": a.old_object.clone().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": a.options,
    });
    if !a.subresource.is_empty() {
        request["subResource"] = json!(a.subresource);
        request["requestSubResource"] = json!(a.subresource);
    }
    if !a.namespace.is_empty() {
        request["namespace"] = json!(a.namespace);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn hooks(server: &Server) -> Vec<(String, Hook)> {
    let st = server.state();
    let mut out = Vec::new();
    for (resource, mutating) in [
        ("mutatingwebhookconfigurations", true),
        ("validatingwebhookconfigurations", false),
    ] {
        let gr = GroupResource {
            group: "admissionregistration.k8s.io".into(),
            resource: resource.into(),
        };
        let mut configs: Vec<&Value> = st.list(&gr, None).map(|(_, v)| v).collect();
        configs.sort_by_key(|c| meta_str(c, "name").to_string());
        for c in configs {
            for w in c["webhooks"].as_array().into_iter().flatten() {
                out.push((
                    w["name"].as_str().unwrap_or_default().to_string(),
                    Hook {
                        webhook: w.clone(),
                        mutating,
                    },
                ));
            }
        }
    }
    out
}

/// Which webhooks to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Mutating,
    Validating,
}

/// Runs one admission phase; returns the (possibly mutated) object and the webhooks' warnings.
pub async fn admit(
    server: &Arc<Server>,
    a: Attributes<'_>,
    phase: Phase,
) -> Result<(Option<Value>, Vec<String>), ApiError> {
    let mut object = a.object.clone();
    let mut warnings = Vec::new();
    // Webhooks are never called for webhook configurations (so a broken webhook cannot lock
    // itself in), nor for the review kinds.
    if a.rt.group == "admissionregistration.k8s.io" || a.rt.create_only() {
        return Ok((object, warnings));
    }
    // ValidatingAdmissionPolicies run after the mutating webhooks, before the validating ones
    // (kube-apiserver's plugin order).
    if phase == Phase::Validating {
        warnings.extend(super::vap::validate(server, &a, &object)?);
    }
    for (name, hook) in hooks(server) {
        if hook.mutating != (phase == Phase::Mutating) {
            continue;
        }
        let current = Attributes {
            object: object.clone(),
            old_object: a.old_object.clone(),
            options: a.options.clone(),
            ..a
        };
        if !webhook_matches(server, &hook.webhook, &current) {
            continue;
        }
        let side_effects = hook.webhook["sideEffects"].as_str().unwrap_or("Unknown");
        if a.dry_run && !matches!(side_effects, "None" | "NoneOnDryRun") {
            return Err(ApiError::bad_request(format!(
                "admission webhook \"{name}\" does not support dry run"
            )));
        }
        let ignore = hook.webhook["failurePolicy"].as_str() == Some("Ignore");
        let request = review(&current, &object);
        match match_conditions(server, &hook.webhook, &request["request"], &current) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) if ignore => continue,
            Err(e) => {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{}\" is forbidden: {e}",
                        super::api::qualified(a.rt),
                        a.name
                    ),
                ));
            }
        }
        let result = match call(server, &hook.webhook, &request).await {
            Ok(r) => r,
            Err(_) if ignore => continue,
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "failed calling webhook \"{name}\": {e}"
                )));
            }
        };
        warnings.extend(strings(&result["warnings"]));
        if result["allowed"].as_bool() != Some(true) {
            return Err(denial(&name, &result));
        }
        if hook.mutating
            && let Some(patch) = result["patch"].as_str()
        {
            let applied = apply_patch(&result, patch, object.as_ref());
            match applied {
                Ok(Some(o)) => object = Some(o),
                Ok(None) => {}
                Err(_) if ignore => continue,
                Err(e) => {
                    return Err(ApiError::internal(format!(
                        "failed calling webhook \"{name}\": {e}"
                    )));
                }
            }
        }
    }
    Ok((object, warnings))
}

fn apply_patch(
    result: &Value,
    patch: &str,
    object: Option<&Value>,
) -> Result<Option<Value>, String> {
    if result["patchType"].as_str() != Some("JSONPatch") {
        return Err(format!(
            "unsupported patch type {:?}",
            result["patchType"].as_str().unwrap_or_default()
        ));
    }
    let Some(object) = object else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| format!("invalid patch encoding: {e}"))?;
    let ops: json_patch::Patch =
        serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON patch: {e}"))?;
    let mut doc = object.clone();
    json_patch::patch(&mut doc, &ops)
        .map_err(|e| format!("JSON patch could not be applied: {e}"))?;
    Ok(Some(doc))
}
