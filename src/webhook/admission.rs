//! Admission decisions: a decoded review in, a response out. Pure: no I/O, no clock (the
//! caller passes `now`), no client. The rules are the policy engine's: this module only
//! decodes the object with [`manifest::decode`] (as `annexa check` does), calls
//! [`policy::evaluate`] / [`model_approval::evaluate_request`], and turns findings into an
//! answer (Enforce denies, Warn admits with warnings, Audit admits and is only counted).

use super::context::AdmissionContext;
use super::review::{Gvk, Operation, Request, Response, ReviewError};
use crate::api::{Action, DIGEST_REQUESTED_BY, GROUP};
use crate::manifest::{self, Object};
use crate::policy::{self, Context, Evaluation, Governed, model_approval};
use base64::Engine as _;
use jiff::Timestamp;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use serde_json::Value;
use serde_json::value::RawValue;

/// The Annexa kinds the webhook governs.
pub const ANNEXA_KINDS: [&str; 5] = [
    "CompliancePolicy",
    "TrainingDataset",
    "ModelDeployment",
    "ModelApproval",
    "AgentPolicy",
];

/// Workload kinds with the API group they are checked under (version `v1`).
const WORKLOAD_GROUPS: [(&str, &str); 7] = [
    ("Pod", ""),
    ("Deployment", "apps"),
    ("StatefulSet", "apps"),
    ("DaemonSet", "apps"),
    ("ReplicaSet", "apps"),
    ("Job", "batch"),
    ("CronJob", "batch"),
];

/// What a review is about, from `request.kind` alone (before the object is decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Annexa(&'static str),
    Workload(&'static str),
    Other,
}

impl Target {
    pub fn of(gvk: &Gvk) -> Self {
        if gvk.group == GROUP {
            if let Some(kind) = ANNEXA_KINDS.iter().find(|k| **k == gvk.kind) {
                return Target::Annexa(kind);
            }
        } else if gvk.version == "v1"
            && let Some((kind, _)) = WORKLOAD_GROUPS
                .iter()
                .find(|(k, g)| *k == gvk.kind && *g == gvk.group)
        {
            return Target::Workload(kind);
        }
        Target::Other
    }

    /// A bounded metrics label: the governed kind, or `other`.
    pub fn label(self) -> &'static str {
        match self {
            Target::Annexa(kind) | Target::Workload(kind) => kind,
            Target::Other => "other",
        }
    }
}

/// The answer to one review, with what metrics count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub response: Response,
    /// Kind label for metrics (see [`Target::label`]).
    pub kind: &'static str,
    /// One `(control, result)` per finding, result `deny`, `warn` or `audit`; `("none",
    /// "admit")` for an object evaluated without findings; empty when nothing was evaluated.
    pub counts: Vec<(&'static str, &'static str)>,
}

impl Decision {
    fn admit(request: &Request<'_>, kind: &'static str) -> Self {
        Self {
            response: Response::allow(&request.uid),
            kind,
            counts: Vec::new(),
        }
    }

    /// Turns the engine's findings into the answer.
    pub fn from_evaluation(
        request: &Request<'_>,
        kind: &'static str,
        evaluation: Evaluation,
    ) -> Self {
        const SEPARATOR: &str = "; ";
        let mut denials = 0;
        let mut denial_bytes = 0;
        let mut warnings = Vec::new();
        let mut counts = Vec::with_capacity(evaluation.findings.len().max(1));
        for finding in &evaluation.findings {
            counts.push((
                finding.control,
                match finding.action {
                    Action::Enforce => {
                        denials += 1;
                        denial_bytes += finding.message.len() + SEPARATOR.len();
                        "deny"
                    }
                    Action::Warn => "warn",
                    Action::Audit => "audit",
                },
            ));
        }
        if counts.is_empty() {
            counts.push(("none", "admit"));
        }
        let mut response = if denials == 0 {
            Response::allow(&request.uid)
        } else {
            use std::fmt::Write as _;
            // `<Kind> "<name>" is not compliant: <denial>; <denial>`, written once.
            let object = &evaluation.object;
            let mut message =
                String::with_capacity(object.kind.len() + object.name.len() + 24 + denial_bytes);
            // Writing into a String cannot fail.
            let _ = write!(
                message,
                "{} {:?} is not compliant: ",
                object.kind, object.name
            );
            for (i, finding) in evaluation.denials().enumerate() {
                if i > 0 {
                    message.push_str(SEPARATOR);
                }
                message.push_str(&finding.message);
            }
            Response::deny(&request.uid, 403, "Forbidden", message)
        };
        if denials < evaluation.findings.len() {
            warnings = evaluation
                .findings
                .into_iter()
                .filter(|f| f.action == Action::Warn)
                .map(|f| f.message)
                .collect();
        }
        response.warnings = warnings;
        Self {
            response,
            kind,
            counts,
        }
    }
}

fn is_subresource(request: &Request<'_>) -> bool {
    request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
}

/// The validating webhook: every Annexa kind, and workloads in opted-in namespaces.
///
/// Admitted without evaluation: DELETE and CONNECT, subresources (status, scale), kinds Annexa
/// does not govern, workloads in namespaces not labelled `annexa.dev/enforce=true`, objects
/// already being deleted (so finalizers can always be removed), and updates of Annexa objects
/// that keep their spec.
pub fn validate(
    request: &Request<'_>,
    context: &dyn AdmissionContext,
    now: Timestamp,
) -> Result<Decision, ReviewError> {
    let target = Target::of(&request.kind);
    let kind = target.label();
    if matches!(request.operation, Operation::Delete | Operation::Connect)
        || is_subresource(request)
    {
        return Ok(Decision::admit(request, kind));
    }
    match target {
        Target::Other => return Ok(Decision::admit(request, kind)),
        Target::Workload(_) => {
            let namespace = request.namespace.as_deref().unwrap_or("default");
            if !context.workloads_enforced(namespace) {
                return Ok(Decision::admit(request, kind));
            }
        }
        Target::Annexa(_) => {}
    }

    let mut value = object_value(request.object, "request.object")?;
    if value
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(Decision::admit(request, kind));
    }
    // An update of an Annexa object that keeps its spec (labels, annotations, finalizers) is
    // admitted: the rules read the spec, and a policy tightened since creation must not block
    // metadata changes by controllers or GitOps (the controller reports the object's status).
    if matches!(target, Target::Annexa(_))
        && request.operation == Operation::Update
        && let Some(old) = request.old_object
        && serde_json::from_str::<Value>(old.get())
            .is_ok_and(|old| old.get("spec") == value.get("spec"))
    {
        return Ok(Decision::admit(request, kind));
    }
    let object = decode_object(&mut value, request, "request.object")?;
    let namespace = request
        .namespace
        .as_deref()
        .or_else(|| value.pointer("/metadata/namespace").and_then(Value::as_str))
        .unwrap_or("default");

    let evaluate = |governed: Governed<'_>| {
        let profile = context.profile(namespace);
        let ctx = Context {
            profile: &profile,
            lookup: context.lookup(),
            now,
            detail: policy::Detail::Findings,
        };
        policy::evaluate(governed, &ctx)
    };
    let evaluation = match &object {
        Object::Policy(p) => {
            let errors = policy::validate_policy(p);
            if errors.is_empty() {
                return Ok(Decision::admit(request, kind));
            }
            let name = p.metadata.name.as_deref().unwrap_or_default();
            return Ok(Decision {
                response: Response::deny(
                    &request.uid,
                    422,
                    "Invalid",
                    format!(
                        "CompliancePolicy {name:?} is invalid: {}",
                        errors.join("; ")
                    ),
                ),
                kind,
                counts: vec![("none", "deny")],
            });
        }
        Object::Dataset(d) => evaluate(Governed::Dataset(d)),
        Object::Model(m) => evaluate(Governed::Model(m)),
        Object::Agent(a) => evaluate(Governed::Agent(a)),
        Object::Workload(w) => evaluate(Governed::Workload(w)),
        Object::Approval(approval) => {
            if request.operation == Operation::Update {
                // Approvals are immutable (A.8.32); updates that keep `spec` were admitted above
                // (the approver was checked at creation).
                let mut old_value = object_value(request.old_object, "request.oldObject")?;
                let Object::Approval(old) =
                    decode_object(&mut old_value, request, "request.oldObject")?
                else {
                    return Err(ReviewError::new("request.oldObject is not a ModelApproval"));
                };
                if model_approval::spec_changed(&old, approval) {
                    let name = approval.metadata.name.as_deref().unwrap_or_default();
                    return Ok(Decision {
                        response: Response::deny(
                            &request.uid,
                            403,
                            "Forbidden",
                            format!(
                                "ModelApproval {name:?} is not compliant: A.8.32 Change management: approval {name:?} is immutable: its spec cannot change after creation; create a new ModelApproval instead"
                            ),
                        ),
                        kind,
                        counts: vec![("A.8.32", "deny")],
                    });
                }
                return Ok(Decision::admit(request, kind));
            }
            let profile = context.profile(namespace);
            let ctx = Context {
                profile: &profile,
                lookup: context.lookup(),
                now,
                detail: policy::Detail::Findings,
            };
            model_approval::evaluate_request(
                approval,
                Some(request.username().unwrap_or_default()),
                &ctx,
            )
        }
        Object::Namespace { .. } | Object::Skipped { .. } => {
            return Ok(Decision::admit(request, kind));
        }
    };
    Ok(Decision::from_evaluation(request, kind, evaluation))
}

/// Parses a raw object; a missing or non-mapping object is a bad request.
fn object_value(raw: Option<&RawValue>, field: &str) -> Result<Value, ReviewError> {
    let raw = raw.ok_or_else(|| ReviewError::new(format!("{field} is missing")))?;
    let value: Value =
        serde_json::from_str(raw.get()).map_err(|e| ReviewError::new(format!("{field}: {e}")))?;
    if !value.is_object() {
        return Err(ReviewError::new(format!(
            "{field}: expected a Kubernetes object (a mapping), found {}",
            match value {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "a list",
                Value::Object(_) => "a mapping",
            }
        )));
    }
    Ok(value)
}

/// Decodes the object exactly as `annexa check` does, after filling in the request's namespace
/// (the API server may leave it out of the object on CREATE).
fn decode_object(
    value: &mut Value,
    request: &Request<'_>,
    field: &str,
) -> Result<Object, ReviewError> {
    let object_kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if object_kind != request.kind.kind {
        return Err(ReviewError::new(format!(
            "{field} is a {object_kind:?} but request.kind is {:?}",
            request.kind.kind
        )));
    }
    if let Some(namespace) = request.namespace.as_deref()
        && let Some(Value::Object(metadata)) = value.get_mut("metadata")
        && metadata
            .get("namespace")
            .is_none_or(|n| n.as_str().is_none_or(str::is_empty))
    {
        metadata.insert("namespace".into(), Value::String(namespace.to_string()));
    }
    manifest::decode(value).map_err(|e| ReviewError::new(format!("{field}: {e}")))
}

fn digest_of(value: &Value) -> Option<&str> {
    value.pointer("/spec/model/digest").and_then(Value::as_str)
}

fn annotation_of(value: &Value) -> Option<&Value> {
    value
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(DIGEST_REQUESTED_BY))
}

/// The mutating webhook: records who requested a ModelDeployment's digest in the
/// `annexa.dev/digest-requested-by` annotation. Set to the request's user when the digest is new
/// (CREATE) or changed (UPDATE), restored from the old object otherwise, so a forged or removed
/// value is put back. Nothing else is ever mutated; other kinds are admitted unchanged.
pub fn mutate(request: &Request<'_>) -> Result<Decision, ReviewError> {
    let target = Target::of(&request.kind);
    let kind = target.label();
    if target != Target::Annexa("ModelDeployment")
        || !matches!(request.operation, Operation::Create | Operation::Update)
        || is_subresource(request)
    {
        return Ok(Decision::admit(request, kind));
    }
    let value = object_value(request.object, "request.object")?;
    let user = || {
        request
            .username()
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                ReviewError::new(
                    "request.userInfo.username is missing: cannot record who requested the digest",
                )
            })
    };
    let desired: Option<String> = if request.operation == Operation::Create {
        Some(user()?)
    } else {
        let old = object_value(request.old_object, "request.oldObject")?;
        if digest_of(&old) != digest_of(&value) {
            Some(user()?)
        } else {
            annotation_of(&old)
                .and_then(Value::as_str)
                .map(str::to_string)
        }
    };
    let current = annotation_of(&value);
    if current.and_then(Value::as_str) == desired.as_deref()
        && (current.is_some() == desired.is_some())
    {
        return Ok(Decision::admit(request, kind));
    }

    let metadata = value.get("metadata").filter(|m| m.is_object());
    let annotations = metadata
        .and_then(|m| m.get("annotations"))
        .filter(|a| a.is_object());
    let operation = match (&desired, metadata, annotations) {
        (Some(user), None, _) => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata"]),
            value: serde_json::json!({ "annotations": { DIGEST_REQUESTED_BY: user } }),
        }),
        (Some(user), Some(_), None) => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: serde_json::json!({ DIGEST_REQUESTED_BY: user }),
        }),
        (Some(user), Some(_), Some(_)) => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", DIGEST_REQUESTED_BY]),
            value: Value::String(user.clone()),
        }),
        (None, _, _) => PatchOperation::Remove(RemoveOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", DIGEST_REQUESTED_BY]),
        }),
    };
    let patch = serde_json::to_vec(&[operation])
        .map_err(|e| ReviewError::new(format!("cannot encode the patch: {e}")))?;
    let mut response = Response::allow(&request.uid);
    response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
    response.patch_type = Some("JSONPatch");
    Ok(Decision {
        response,
        kind,
        counts: Vec::new(),
    })
}
