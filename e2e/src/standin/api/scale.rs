//! The `scale` subresource of Deployments, StatefulSets and ReplicaSets (`kubectl scale`, the
//! HorizontalPodAutoscaler), as kube-apiserver serves it: an `autoscaling/v1` Scale read from
//! the parent object, and an update of the Scale that changes the parent's `spec.replicas` and
//! nothing else. Admission sees the Scale (kind `autoscaling/v1 Scale`, subresource `scale`), so
//! a webhook that matches only `deployments` never sees a scaling request.

use super::*;

/// The kinds whose scale subresource the stand-in serves.
pub(super) fn serves(rt: &ResourceType, subresource: &str) -> bool {
    subresource == "scale"
        && rt.group == "apps"
        && matches!(
            rt.plural.as_str(),
            "deployments" | "statefulsets" | "replicasets"
        )
}

/// `metav1.LabelSelectorAsSelector(...).String()`: requirements sorted by key, set values
/// sorted, `matchLabels` as `key=value`.
fn selector_string(selector: &Value) -> String {
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or_default();
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default().to_string();
        let mut values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        values.dedup();
        let text = match expression["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            _ => format!("!{key}"),
        };
        requirements.push((key, text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

/// The Scale of a parent object (kube-apiserver's `scaleFromDeployment` and its siblings).
fn scale_of(parent: &Value) -> Value {
    let metadata = &parent["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        // The API server defaults `spec.replicas` to 1 on create.
        "spec": {"replicas": parent["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": parent["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&parent["spec"]["selector"]),
        },
    })
}

fn invalid_scale(name: &str, field: &str, value: &Value, message: &str) -> ApiError {
    let detail = format!("Invalid value: {value}: {message}");
    ApiError::new(
        422,
        "Invalid",
        format!("Scale.autoscaling \"{name}\" is invalid: {field}: {detail}"),
    )
    .with_details(json!({
        "name": name, "kind": "Scale", "group": "autoscaling",
        "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}],
    }))
}

/// `ValidateScale`: a whole number of replicas, not negative.
fn validated_replicas(name: &str, scale: &Value) -> Result<i64, ApiError> {
    let replicas = &scale["spec"]["replicas"];
    match replicas.as_i64() {
        Some(n) if n >= 0 => Ok(n),
        Some(_) => Err(invalid_scale(
            name,
            "spec.replicas",
            replicas,
            "must be greater than or equal to 0",
        )),
        None if replicas.is_null() => Ok(0),
        None => Err(ApiError::bad_request(format!(
            "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: expected an integer, got {replicas}"
        ))),
    }
}

/// The Scale a PUT or PATCH asks for, from the current one.
fn requested_scale(req: &Req, name: &str, current: &Value) -> Result<Value, ApiError> {
    let media = req
        .content_type()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let mut scale = current.clone();
    match (&req.method, media) {
        (&Method::PUT, _) => {
            scale = parse_body(req)?;
            let body_name = meta_str(&scale, "name");
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        (&Method::PATCH, "application/merge-patch+json") => {
            let patch: Value = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
            json_patch::merge(&mut scale, &patch);
        }
        (&Method::PATCH, "application/strategic-merge-patch+json") => {
            let patch: Value = serde_json::from_slice(&req.body).map_err(|e| {
                ApiError::bad_request(format!("invalid strategic merge patch: {e}"))
            })?;
            smp::apply(&mut scale, &patch);
        }
        (&Method::PATCH, "application/json-patch+json") => {
            let ops: json_patch::Patch = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut scale, &ops).map_err(|_| {
                ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                )
            })?;
        }
        (&Method::PATCH, other) => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?}; the stand-in does not serve server-side apply on the scale subresource)"
                ),
            ));
        }
        _ => return Err(method_not_allowed()),
    }
    check_shape(&scale)?;
    Ok(scale)
}

/// GET, PUT and PATCH of `.../NAME/scale`.
pub(super) async fn handle(
    server: &Arc<Server>,
    req: &Req,
    target: &Target,
) -> Result<Response<Body>, ApiError> {
    let rt = &target.rt;
    let name = target.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(method_not_allowed());
    }
    let read = || {
        server
            .state()
            .get(&target.gr(), target.ns(), &name)
            .cloned()
            .ok_or_else(|| not_found(rt, &name))
    };
    if req.method == Method::GET {
        return Ok(json_response(200, &scale_of(&read()?), &[]));
    }
    if !matches!(req.method, Method::PUT | Method::PATCH) {
        return Err(method_not_allowed());
    }
    let dry_run = req.dry_run()?;
    let kind = if req.method == Method::PUT {
        WriteKind::Update
    } else {
        WriteKind::Patch(PatchKind::Merge)
    };
    for _attempt in 0..8 {
        let parent = read()?;
        let old_scale = scale_of(&parent);
        let scale = requested_scale(req, &name, &old_scale)?;
        validated_replicas(&name, &scale)?;
        let uid = meta_str(&scale, "uid");
        if !uid.is_empty() && uid != meta_str(&parent, "uid") {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {}/scale.apps \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    rt.plural,
                    meta_str(&parent, "uid")
                ),
            ));
        }
        let wanted_rv = meta_str(&scale, "resourceVersion").to_string();
        if !wanted_rv.is_empty() && wanted_rv != meta_str(&parent, "resourceVersion") {
            return Err(conflict(rt, &name));
        }
        let attributes = |object: Value| admission::Attributes {
            rt,
            subresource: "scale",
            operation: "UPDATE",
            name: &name,
            namespace: target.ns(),
            object: Some(object),
            old_object: Some(old_scale.clone()),
            user: &req.user,
            dry_run,
            options: operation_options(kind, req),
        };
        let (mutated, mut warnings) =
            admission::admit(server, attributes(scale), admission::Phase::Mutating).await?;
        let scale = mutated.ok_or_else(|| ApiError::internal("admission removed the object"))?;
        let replicas = validated_replicas(&name, &scale)?;
        let (_, validating_warnings) =
            admission::admit(server, attributes(scale), admission::Phase::Validating).await?;
        warnings.extend(validating_warnings);

        let mut candidate = parent.clone();
        candidate["spec"]["replicas"] = json!(replicas);
        let new = finish_update(
            &server.state(),
            target,
            &parent,
            candidate,
            Some(&req.manager()),
        )?;
        if dry_run {
            return Ok(json_response(200, &scale_of(&new), &warnings));
        }
        let mut st = server.state();
        let live_rv = st
            .get(&target.gr(), target.ns(), &name)
            .map(|o| meta_str(o, "resourceVersion").to_string());
        if live_rv.as_deref() != Some(meta_str(&parent, "resourceVersion")) {
            // Changed while webhooks ran: an unconditional update retries, as GuaranteedUpdate
            // does; one that named a resourceVersion is a conflict.
            if !wanted_rv.is_empty() {
                return Err(conflict(rt, &name));
            }
            continue;
        }
        if same_content(&parent, &new) {
            return Ok(json_response(200, &old_scale, &warnings));
        }
        let stored = st.put(&target.gr(), new, false).map_err(|e| match e {
            StoreError::TooManyObjects => ApiError::new(
                507,
                "InsufficientStorage",
                "the stand-in holds its maximum number of objects (--max-objects)",
            ),
        })?;
        return Ok(json_response(200, &scale_of(&stored), &warnings));
    }
    Err(conflict(rt, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_string_is_kube_apiservers() {
        let selector = json!({
            "matchLabels": {"tier": "web", "app": "m"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "gpu", "operator": "Exists"},
            ],
        });
        assert_eq!(
            selector_string(&selector),
            "app=m,!canary,env notin (dev),gpu,tier=web,zone in (a,b)"
        );
    }

    #[test]
    fn negative_replicas_are_invalid_with_kube_apiservers_message() {
        let err = validated_replicas("m", &json!({"spec": {"replicas": -1}})).unwrap_err();
        assert_eq!(
            err.message,
            "Scale.autoscaling \"m\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
