//! Admission decisions: a decoded review in, a response out. Pure: no I/O, no clock (the
//! caller passes `now`), no client. The rules are the policy engine's: this module only
//! decodes the object with [`decode::decode`] (as `annexa check` does), calls
//! [`policy::evaluate`] / [`model_approval::evaluate_request`], and turns findings into an
//! answer (Enforce denies, Warn admits with warnings, Audit admits and is only counted).

use super::context::AdmissionContext;
use super::review::{Gvk, Operation, Request, Response, ReviewError};
use crate::api::{
    API_VERSION, Action, AnnexaKind, DIGEST_REQUESTED_BY, GROUP, Kind, ModelDeploymentSpec,
    REQUESTED_RELEASE,
};
use crate::decode::{self, MapOnly, Object, TopLevel, in_default_namespace, value_accepts};
use crate::policy::delegation::{self, Delegation};
use crate::policy::workload::WORKLOAD_KINDS;
use crate::policy::{self, Context, Evaluation, Governed, model_approval};
use base64::Engine as _;
use jiff::Timestamp;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What a review is about, from `request.kind` alone (before the object is decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Annexa(Kind),
    Workload(&'static str),
    Other,
}

impl Target {
    pub fn of(gvk: &Gvk) -> Self {
        if gvk.group == GROUP {
            if let Some(kind) = Kind::parse(&gvk.kind) {
                return Target::Annexa(kind);
            }
        } else if gvk.version == "v1"
            && let Some(workload) = WORKLOAD_KINDS
                .iter()
                .find(|w| w.kind == gvk.kind && w.group == gvk.group)
        {
            return Target::Workload(workload.kind);
        }
        Target::Other
    }

    /// A bounded metrics label: the governed kind, or `other`.
    pub fn label(self) -> &'static str {
        match self {
            Target::Annexa(kind) => kind.name(),
            Target::Workload(kind) => kind,
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
    /// What Annexa will do on the requester's behalf if this is admitted: the permissions the
    /// requester must hold, checked with SubjectAccessReview before the answer is sent (see
    /// [`super::access`]). Empty when nothing is delegated or the object is denied anyway.
    pub delegation: Delegation,
}

impl Decision {
    fn admit(request: &Request<'_>, kind: &'static str) -> Self {
        Self {
            response: Response::allow(&request.uid),
            kind,
            counts: Vec::new(),
            delegation: Delegation::default(),
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
            delegation: Delegation::default(),
        }
    }
}

fn is_subresource(request: &Request<'_>) -> bool {
    request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
}

/// `pods/ephemeralcontainers` (`kubectl debug`): the object is the whole Pod with its new
/// ephemeral containers, checked like any pod update.
fn is_ephemeral_containers(request: &Request<'_>, target: Target) -> bool {
    target == Target::Workload("Pod")
        && request.sub_resource.as_deref() == Some("ephemeralcontainers")
}

/// The validating webhook: every Annexa kind, and workloads in opted-in namespaces.
///
/// Pod updates are evaluated like creations (a running pod's images can change), and so is the
/// `pods/ephemeralcontainers` subresource (see [`is_ephemeral_containers`]).
///
/// Admitted without evaluation: DELETE and CONNECT, other subresources (status, scale), kinds Annexa
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
    if request.operation == Operation::Delete
        && target == Target::Annexa(Kind::ModelApproval)
        && !is_subresource(request)
    {
        return approval_deletion(request, kind);
    }
    if matches!(request.operation, Operation::Delete | Operation::Connect)
        || (is_subresource(request) && !is_ephemeral_containers(request, target))
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

    let (object, namespace) = match prepare(request, target)? {
        Prepared::Admit => return Ok(Decision::admit(request, kind)),
        Prepared::Object(object, namespace) => (object, namespace),
    };
    let namespace: &str = &namespace;

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
                delegation: Delegation::default(),
            });
        }
        Object::Dataset(d) => {
            let mut decision =
                Decision::from_evaluation(request, kind, evaluate(Governed::Dataset(d)));
            if decision.response.allowed {
                decision.delegation = delegation::dataset(d);
            }
            return Ok(decision);
        }
        Object::Model(m) => evaluate(Governed::Model(m)),
        Object::Agent(a) => {
            let mut decision =
                Decision::from_evaluation(request, kind, evaluate(Governed::Agent(a)));
            if decision.response.allowed {
                decision.delegation = delegation::agent(a);
            }
            return Ok(decision);
        }
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
                        delegation: Delegation::default(),
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
            let groups: Vec<&str> = request
                .user_info
                .groups
                .iter()
                .flatten()
                .map(|g| &**g)
                .collect();
            model_approval::evaluate_request(
                approval,
                Some(model_approval::RequestUser {
                    username: request.username().unwrap_or_default(),
                    groups: &groups,
                }),
                &ctx,
            )
        }
        Object::Namespace { .. } | Object::Related(_) | Object::Skipped { .. } => {
            return Ok(Decision::admit(request, kind));
        }
    };
    Ok(Decision::from_evaluation(request, kind, evaluation))
}

/// DELETE of a ModelApproval: a rejection is withdrawn only by its author (A.8.32).
fn approval_deletion(request: &Request<'_>, kind: &'static str) -> Result<Decision, ReviewError> {
    let mut old = object_value(request.old_object, "request.oldObject")?;
    let Object::Approval(old) = decode_object(&mut old, request, "request.oldObject")? else {
        return Err(ReviewError::new("request.oldObject is not a ModelApproval"));
    };
    match model_approval::deletion_refused(&old, request.username().unwrap_or_default()) {
        None => Ok(Decision::admit(request, kind)),
        Some(message) => {
            let name = old.metadata.name.as_deref().unwrap_or_default();
            Ok(Decision {
                response: Response::deny(
                    &request.uid,
                    403,
                    "Forbidden",
                    format!("ModelApproval {name:?} is not compliant: {message}"),
                ),
                kind,
                counts: vec![("A.8.32", "deny")],
                delegation: Delegation::default(),
            })
        }
    }
}

/// The object under review, decoded, or admitted before it is decoded.
#[allow(clippy::large_enum_variant)] // built and moved once per request; a Box would allocate
enum Prepared<'r> {
    Admit,
    /// The object and the namespace whose profile applies.
    Object(Object, Cow<'r, str>),
}

/// Decodes the object under review. Admitted without decoding: objects being deleted (so
/// finalizers can always be removed), and updates of Annexa objects that keep their spec
/// (labels, annotations, finalizers): the rules read the spec, and a policy tightened since
/// creation must not block metadata changes by controllers or GitOps (the controller reports
/// the object's status).
///
/// Two paths, one answer: [`prepare_fast`] reads well-formed objects straight from the raw JSON;
/// anything else goes through a `serde_json::Value` exactly as `annexa check` decodes files
/// ([`prepare_by_value`]), which names what is wrong. A test holds them to the same answer.
fn prepare<'r>(request: &'r Request<'_>, target: Target) -> Result<Prepared<'r>, ReviewError> {
    match prepare_fast(request, target) {
        Some(prepared) => Ok(prepared),
        None => prepare_by_value(request, target),
    }
}

fn prepare_by_value<'r>(
    request: &'r Request<'_>,
    target: Target,
) -> Result<Prepared<'r>, ReviewError> {
    let mut value = object_value(request.object, "request.object")?;
    if value
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(Prepared::Admit);
    }
    if matches!(target, Target::Annexa(_))
        && request.operation == Operation::Update
        && let Some(old) = request.old_object
        && serde_json::from_str::<Value>(old.get())
            .is_ok_and(|old| old.get("spec") == value.get("spec"))
    {
        return Ok(Prepared::Admit);
    }
    let object = decode_object(&mut value, request, "request.object")?;
    let namespace = match request.namespace.as_deref() {
        Some(namespace) => Cow::Borrowed(namespace),
        None => Cow::Owned(
            value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
        ),
    };
    Ok(Prepared::Object(object, namespace))
}

/// The namespace whose profile applies: the request's, else the object's, else `default`.
fn profile_namespace<'r>(request: &'r Request<'_>, object: Option<Cow<'r, str>>) -> Cow<'r, str> {
    match (&request.namespace, object) {
        (Some(requested), _) => Cow::Borrowed(&**requested),
        (None, Some(namespace)) => namespace,
        (None, None) => Cow::Borrowed("default"),
    }
}

/// The API server may leave the namespace out of the object on CREATE: the request's is filled
/// in (as `decode_object` does for an object with metadata).
fn fill_namespace(request: &Request<'_>, namespace: &mut Option<String>) {
    if namespace.as_deref().is_none_or(str::is_empty)
        && let Some(requested) = &request.namespace
    {
        *namespace = Some(requested.to_string());
    }
}

/// Reads the object straight from the raw JSON, never through a `Value`. None whenever the
/// `Value` path might answer differently: text a `Value` refuses (see `value_accepts`), an
/// object that is not a mapping, a duplicate key, an unknown field, a wrong type, a kind or
/// apiVersion that does not match, no name. The checks are the `Value` path's, in its order.
fn prepare_fast<'r>(request: &'r Request<'_>, target: Target) -> Option<Prepared<'r>> {
    let raw = request.object?.get();
    if !value_accepts(raw) {
        return None;
    }
    // Over a CRD size bound: the `Value` path names the field.
    if let Target::Annexa(kind) = target
        && !decode::text_within(kind.name(), raw)
    {
        return None;
    }
    match target {
        Target::Annexa(kind) => match kind {
            Kind::CompliancePolicy => prepare_annexa(request, raw, Object::Policy),
            Kind::TrainingDataset => prepare_annexa(request, raw, Object::Dataset),
            Kind::ModelDeployment => prepare_annexa(request, raw, Object::Model),
            Kind::ModelApproval => prepare_annexa(request, raw, Object::Approval),
            Kind::AgentPolicy => prepare_annexa(request, raw, Object::Agent),
        },
        Target::Workload(kind) => prepare_workload(request, kind, raw),
        Target::Other => None,
    }
}

/// The fast path for an Annexa kind: one pass over the object, a second over its spec.
fn prepare_annexa<'r, K: AnnexaKind>(
    request: &'r Request<'_>,
    raw: &'r str,
    wrap: fn(K) -> Object,
) -> Option<Prepared<'r>> {
    let top = TopLevel::<K::Status>::read(raw)?;
    if top.metadata.deletion_timestamp.is_some() {
        return Some(Prepared::Admit);
    }
    if request.operation == Operation::Update
        && let Some(old) = request.old_object
        && spec_unchanged(top.spec, old)?
    {
        return Some(Prepared::Admit);
    }
    if top.kind != request.kind.kind
        || top.api_version != API_VERSION
        || (top.metadata.name.as_deref())
            .or(top.metadata.generate_name.as_deref())
            .is_none_or(str::is_empty)
    {
        return None;
    }
    let namespace = profile_namespace(request, top.metadata.namespace.clone().map(Cow::Owned));
    let mut object: K = top.assemble()?;
    fill_namespace(request, &mut object.meta_mut().namespace);
    Some(Prepared::Object(
        wrap(in_default_namespace(object)),
        namespace,
    ))
}

/// What the fast path reads of a workload before decoding its pod, borrowed from the request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadHeader<'a> {
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    metadata: Option<MapOnly<MetadataHeader<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataHeader<'a> {
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    /// Present and not null.
    #[serde(default)]
    deletion_timestamp: Option<IgnoredAny>,
}

/// The fast path for a workload: a pass for the header, a second for the pod.
fn prepare_workload<'r>(
    request: &'r Request<'_>,
    kind: &str,
    raw: &'r str,
) -> Option<Prepared<'r>> {
    let MapOnly(header) = serde_json::from_str::<MapOnly<WorkloadHeader<'r>>>(raw).ok()?;
    let metadata = header.metadata.map(|MapOnly(m)| m);
    if metadata
        .as_ref()
        .is_some_and(|m| m.deletion_timestamp.is_some())
    {
        return Some(Prepared::Admit);
    }
    if header.kind.as_deref() != Some(&*request.kind.kind)
        || !matches!(
            header.api_version.as_deref(),
            Some("v1" | "apps/v1" | "batch/v1")
        )
    {
        return None;
    }
    let mut workload = decode::workload::from_json(kind, raw)?;
    let mut namespace = Some(std::mem::take(&mut workload.namespace));
    if metadata.is_some() {
        fill_namespace(request, &mut namespace);
    }
    workload.namespace = namespace
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let namespace = profile_namespace(request, metadata.and_then(|m| m.namespace));
    Some(Prepared::Object(Object::Workload(workload), namespace))
}

/// The spec of the old object of an update; an explicit `null` is kept (as `Value::get` sees
/// it).
#[derive(Deserialize)]
struct SpecHeader<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    spec: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Whether an update keeps the spec, compared as JSON values (key order and spacing may differ
/// between the object and the old object): the same text is the same value, and only different
/// texts are parsed. None when the old object is not one the `Value` path reads as a mapping:
/// it decides.
fn spec_unchanged(spec: &RawValue, old: &RawValue) -> Option<bool> {
    let old = old.get();
    if !value_accepts(old) {
        return None;
    }
    let MapOnly(old) = serde_json::from_str::<MapOnly<SpecHeader<'_>>>(old).ok()?;
    Some(old.spec.is_some_and(|old| {
        spec.get() == old.get()
            || serde_json::from_str::<Value>(spec.get()).is_ok_and(|new| {
                serde_json::from_str::<Value>(old.get()).is_ok_and(|old| old == new)
            })
    }))
}

/// Parses a raw object; a missing or non-mapping object is a bad request.
fn object_value(raw: Option<&RawValue>, field: &str) -> Result<Value, ReviewError> {
    let raw = raw.ok_or_else(|| ReviewError::new(format!("{field} is missing")))?;
    let value: Value =
        serde_json::from_str(raw.get()).map_err(|e| ReviewError::new(format!("{field}: {e}")))?;
    if !value.is_object() {
        return Err(ReviewError::new(format!(
            "{field}: expected a Kubernetes object (a mapping), found {}",
            decode::type_name(&value)
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
    decode::decode(value).map_err(|e| ReviewError::new(format!("{field}: {e}")))
}

/// The fingerprint of the release a ModelDeployment requests (None: the spec does not decode;
/// the validating webhook refuses such an object).
fn release_of(value: &Value) -> Option<String> {
    let spec = value.get("spec")?;
    ModelDeploymentSpec::deserialize(spec)
        .ok()
        .map(|s| s.release().fingerprint())
}

fn annotation_of<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The mutating webhook: records who requested a ModelDeployment's release in the
/// `annexa.dev/digest-requested-by` annotation, and which release in `annexa.dev/requested-release`
/// (its fingerprint). Set to the request's user when the release is new (CREATE) or changed
/// (UPDATE), restored from the old object otherwise, so a forged or removed value is put back.
/// One exception: when the old object's requester is unknown for its release (written without
/// the webhook), a user may claim the release as its requester by setting the annotation to
/// their own name, which only ever restricts that user. Nothing else is ever mutated; other
/// kinds are admitted unchanged.
pub fn mutate(request: &Request<'_>) -> Result<Decision, ReviewError> {
    let target = Target::of(&request.kind);
    let kind = target.label();
    if target != Target::Annexa(Kind::ModelDeployment)
        || !matches!(request.operation, Operation::Create | Operation::Update)
        || is_subresource(request)
    {
        return Ok(Decision::admit(request, kind));
    }
    let value = object_value(request.object, "request.object")?;
    let Some(release) = release_of(&value) else {
        return Ok(Decision::admit(request, kind));
    };
    let user = || {
        request
            .username()
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                ReviewError::new(
                    "request.userInfo.username is missing: cannot record who requested the release",
                )
            })
    };
    // (requester, release fingerprint)
    let desired: Option<(String, String)> = if request.operation == Operation::Create {
        Some((user()?, release))
    } else {
        let old = object_value(request.old_object, "request.oldObject")?;
        let old_release = release_of(&old);
        let old_requester = annotation_of(&old, DIGEST_REQUESTED_BY);
        let old_recorded = annotation_of(&old, REQUESTED_RELEASE);
        if old_release.as_deref() != Some(release.as_str()) {
            Some((user()?, release))
        } else if let Some(requester) = old_requester
            && old_recorded == Some(release.as_str())
        {
            Some((requester.to_string(), release))
        } else {
            let user = user()?;
            (annotation_of(&value, DIGEST_REQUESTED_BY) == Some(user.as_str()))
                .then_some((user, release))
        }
    };
    let current = (
        annotation_of(&value, DIGEST_REQUESTED_BY),
        annotation_of(&value, REQUESTED_RELEASE),
    );
    let wanted = match &desired {
        Some((who, what)) => (Some(who.as_str()), Some(what.as_str())),
        None => (None, None),
    };
    if current == wanted {
        return Ok(Decision::admit(request, kind));
    }

    let metadata = value.get("metadata").filter(|m| m.is_object());
    let annotations = metadata
        .and_then(|m| m.get("annotations"))
        .filter(|a| a.is_object());
    let path = |key: &str| PointerBuf::from_tokens(["metadata", "annotations", key]);
    let mut operations = Vec::new();
    match (&desired, metadata, annotations) {
        (Some((who, what)), None, _) => operations.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata"]),
            value: serde_json::json!({ "annotations": { DIGEST_REQUESTED_BY: who, REQUESTED_RELEASE: what } }),
        })),
        (Some((who, what)), Some(_), None) => operations.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: serde_json::json!({ DIGEST_REQUESTED_BY: who, REQUESTED_RELEASE: what }),
        })),
        (Some((who, what)), Some(_), Some(_)) => {
            operations.push(PatchOperation::Add(AddOperation {
                path: path(DIGEST_REQUESTED_BY),
                value: Value::String(who.clone()),
            }));
            operations.push(PatchOperation::Add(AddOperation {
                path: path(REQUESTED_RELEASE),
                value: Value::String(what.clone()),
            }));
        }
        (None, _, _) => {
            for (key, present) in [
                (DIGEST_REQUESTED_BY, current.0.is_some()),
                (REQUESTED_RELEASE, current.1.is_some()),
            ] {
                // A non-string value is removed too.
                let any = annotations.is_some_and(|a| a.get(key).is_some());
                if present || any {
                    operations.push(PatchOperation::Remove(RemoveOperation { path: path(key) }));
                }
            }
        }
    }
    let patch = serde_json::to_vec(&operations)
        .map_err(|e| ReviewError::new(format!("cannot encode the patch: {e}")))?;
    let mut response = Response::allow(&request.uid);
    response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
    response.patch_type = Some("JSONPatch");
    Ok(Decision {
        response,
        kind,
        counts: Vec::new(),
        delegation: Delegation::default(),
    })
}

#[cfg(test)]
mod tests {
    //! The fast path and the `Value` path must give one answer: wherever the fast path decides,
    //! it decides what the `Value` path decides (the same object, namespace, or admission).
    use super::*;
    use crate::policy::workload::workload_kind;
    use crate::webhook::review;
    use serde_json::json;
    use std::path::Path;

    fn describe(prepared: Result<Prepared<'_>, ReviewError>) -> String {
        match prepared {
            Ok(Prepared::Admit) => "admitted".to_string(),
            Ok(Prepared::Object(object, namespace)) => format!("{object:?} in {namespace:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    /// A review of `object` (raw JSON text, so key order and spacing are the test's).
    fn review_of(
        operation: &str,
        namespace: Option<&str>,
        object: &str,
        old: Option<&str>,
    ) -> String {
        let kind = serde_json::from_str::<Value>(object)
            .ok()
            .and_then(|o| o.get("kind").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| "ModelDeployment".to_string());
        let (group, version) = match workload_kind(&kind) {
            Some(workload) => (workload.group, "v1"),
            None => (GROUP, "v1alpha1"),
        };
        let namespace = namespace.map_or(String::new(), |n| format!(r#""namespace":"{n}","#));
        let old = old.map_or(String::new(), |o| format!(r#","oldObject":{o}"#));
        format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u1","kind":{{"group":"{group}","version":"{version}","kind":"{kind}"}},"operation":"{operation}","userInfo":{{"username":"alice"}},{namespace}"object":{object}{old}}}}}"#
        )
    }

    /// Asserts both paths agree on the review; returns whether the fast path decided.
    #[track_caller]
    fn agree(review: &str) -> bool {
        let request = review::decode(review.as_bytes()).unwrap();
        let target = Target::of(&request.kind);
        let Some(fast) = prepare_fast(&request, target) else {
            return false;
        };
        assert_eq!(
            describe(Ok(fast)),
            describe(prepare_by_value(&request, target)),
            "{review}"
        );
        true
    }

    /// Every governed object of the examples, as JSON text.
    fn example_objects() -> Vec<Value> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let files =
            crate::manifest::expand_paths(&[root.join("compliant"), root.join("noncompliant")])
                .unwrap();
        let mut objects = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            for document in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = Value::deserialize(document).unwrap();
                let kind = value
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if Kind::parse(kind).is_some() || workload_kind(kind).is_some() {
                    objects.push(value);
                }
            }
        }
        assert!(objects.len() > 20, "{} objects", objects.len());
        objects
    }

    #[test]
    fn benchmark_reviews_take_the_fast_path_and_agree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
        let mut checked = 0;
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let review = std::fs::read_to_string(&path).unwrap();
                assert!(
                    agree(&review),
                    "{}: not decided by the fast path",
                    path.display()
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 16);
    }

    #[test]
    fn examples_take_the_fast_path_and_agree_with_or_without_the_request_namespace() {
        for object in example_objects() {
            let text = object.to_string();
            for namespace in [None, Some("ml-prod"), Some("")] {
                assert!(
                    agree(&review_of("CREATE", namespace, &text, None)),
                    "{text}"
                );
            }
            // Without a namespace in the object, the request's (or `default`) applies.
            let mut bare = object.clone();
            if let Some(Value::Object(metadata)) = bare.get_mut("metadata") {
                metadata.remove("namespace");
            }
            for namespace in [None, Some("ml-prod")] {
                assert!(agree(&review_of(
                    "CREATE",
                    namespace,
                    &bare.to_string(),
                    None
                )));
            }
        }
    }

    /// Every node of every example replaced by values of every JSON type, or removed: the
    /// fast path refuses or agrees, never reads what the `Value` path would not.
    #[test]
    fn mutated_examples_agree() {
        fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, child) in map {
                        let path = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                        out.push(path.clone());
                        pointers(child, path, out);
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        let path = format!("{at}/{i}");
                        out.push(path.clone());
                        pointers(child, path, out);
                    }
                }
                _ => {}
            }
        }
        let (mut fast, mut cases) = (0, 0);
        for object in example_objects() {
            let mut unknown = object.clone();
            unknown["zzUnknown"] = json!(1);
            assert!(
                !agree(&review_of("CREATE", None, &unknown.to_string(), None))
                    || object["apiVersion"].as_str() != Some(API_VERSION)
            );
            let mut paths = Vec::new();
            pointers(&object, String::new(), &mut paths);
            for path in paths {
                let original = object.pointer(&path).cloned().unwrap_or_default();
                let replacements = [
                    Value::Null,
                    json!(true),
                    json!(5),
                    json!(-1.5),
                    json!(""),
                    json!("x"),
                    json!([]),
                    json!({}),
                    json!([original.clone()]),
                    json!({ "x": original }),
                ];
                for replacement in replacements {
                    let mut mutated = object.clone();
                    if let Some(node) = mutated.pointer_mut(&path) {
                        *node = replacement;
                    }
                    for namespace in [None, Some("ml-prod")] {
                        cases += 1;
                        fast += usize::from(agree(&review_of(
                            "CREATE",
                            namespace,
                            &mutated.to_string(),
                            None,
                        )));
                    }
                }
                // Removed.
                let (parent, key) = path.rsplit_once('/').unwrap();
                let mut mutated = object.clone();
                match mutated.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(items)) => {
                        items.remove(key.parse::<usize>().unwrap());
                    }
                    _ => {}
                }
                cases += 1;
                fast += usize::from(agree(&review_of(
                    "CREATE",
                    Some("ml-prod"),
                    &mutated.to_string(),
                    None,
                )));
                // A field no type has, added to a mapping: an unknown field in the spec (or at
                // the top), ignored in metadata and status.
                let mut mutated = object.clone();
                if let Some(Value::Object(map)) = mutated.pointer_mut(&path) {
                    map.insert("zzUnknown".to_string(), json!(1));
                    let review = review_of("CREATE", Some("ml-prod"), &mutated.to_string(), None);
                    let decided = agree(&review);
                    let annexa = object["apiVersion"].as_str() == Some(API_VERSION);
                    assert!(
                        !(decided && annexa && path.starts_with("/spec")),
                        "unknown field at {path} decided by the fast path"
                    );
                    cases += 1;
                    fast += usize::from(decided);
                }
            }
        }
        // Not vacuous: many mutants are still valid objects and decided by the fast path.
        assert!(
            fast > cases / 10,
            "{fast} of {cases} decided by the fast path"
        );
    }

    #[test]
    fn malformed_objects_agree() {
        let model = r#"{"apiVersion":"annexa.dev/v1alpha1","kind":"ModelDeployment","metadata":{"name":"m","namespace":"ml-prod"},"spec":{"model":{"name":"m","version":"1.0.0","digest":"sha256:88b2072e3e177ec34a14929ecf42086800c989831269ec4b589231b683ae50be"},"image":"registry.example.com/serve@sha256:88b2072e3e177ec34a14929ecf42086800c989831269ec4b589231b683ae50be"}}"#;
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ml-prod","labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}"#;
        let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{"metadata":{"labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#;
        assert!(agree(&review_of("CREATE", None, model, None)));
        assert!(agree(&review_of("CREATE", None, pod, None)));
        assert!(agree(&review_of("CREATE", None, deployment, None)));
        let refused = [
            // Not a mapping, or fields given as a list of values.
            review_of("CREATE", None, "[1]", None),
            review_of(
                "CREATE",
                None,
                r#"["annexa.dev/v1alpha1","ModelDeployment",{"name":"m"}]"#,
                None,
            ),
            model.replace(
                r#""metadata":{"name":"m","namespace":"ml-prod"}"#,
                r#""metadata":["m","","ml-prod"]"#,
            ),
            pod.replace(
                r#""metadata":{"name":"p","namespace":"ml-prod","labels":{"app":"a"}}"#,
                r#""metadata":["p","","ml-prod",{"app":"a"}]"#,
            ),
            deployment
                .replace(r#""spec":{"template":"#, r#""spec":["#)
                .replace("}]}}}}", "}]}}]}"),
            // Duplicate keys: a `Value` keeps the last, derived types refuse.
            model.replace(r#""image":"#, r#""image":"nginx","image":"#),
            pod.replace(r#""spec":"#, r#""spec":{},"spec":"#),
            // Unknown fields, wrong types, another kind or version, no name.
            model.replace(r#""image":"#, r#""imag":"x","image":"#),
            model.replace(r#""version":"1.0.0""#, r#""version":1"#),
            model.replace(r#""kind":"ModelDeployment""#, r#""kind":"AgentPolicy""#),
            model.replace("annexa.dev/v1alpha1", "annexa.dev/v1"),
            model.replace(
                r#""name":"m","namespace""#,
                r#""name":"","generateName":"m-","namespace""#,
            ),
            model.replace(r#""name":"m","namespace""#, r#""namespace""#),
            pod.replace(r#""namespace":"ml-prod""#, r#""namespace":7"#),
            pod.replace(r#""labels":{"app":"a"}"#, r#""labels":null"#),
            deployment.replace(
                r#""apiVersion":"apps/v1""#,
                r#""apiVersion":"apps/v1beta1""#,
            ),
        ];
        for review in refused {
            let review = if review.starts_with(r#"{"apiVersion":"admission"#) {
                review
            } else {
                review_of("CREATE", Some("ml-prod"), &review, None)
            };
            assert!(!agree(&review), "decided by the fast path: {review}");
        }
        // Decided and agreeing: generateName, a null namespace, duplicate label keys and
        // duplicate metadata fields (ObjectMeta, like a `Value`, keeps the last), a deleted
        // object whatever its content.
        for object in [
            model.replace(
                r#""name":"m","namespace""#,
                r#""name":"x","name":"m","namespace""#,
            ),
            model.replace(
                r#""name":"m","namespace""#,
                r#""generateName":"m-","namespace""#,
            ),
            model.replace(r#""namespace":"ml-prod""#, r#""namespace":null"#),
            pod.replace(
                r#""labels":{"app":"a"}"#,
                r#""labels":{"app":"a","app":"b"}"#,
            ),
            model
                .replace(
                    r#""namespace":"ml-prod""#,
                    r#""deletionTimestamp":"2025-01-01T00:00:00Z""#,
                )
                .replace(r#""image":"#, r#""imag":"#),
        ] {
            for namespace in [None, Some("ml-prod")] {
                assert!(
                    agree(&review_of("CREATE", namespace, &object, None)),
                    "{object}"
                );
            }
        }
    }

    /// Text the review decoder accepts (it only skips the object) but a `Value` refuses: the
    /// fast path skips ignored fields without looking inside, so it must refuse such text
    /// itself, wherever it hides (metadata, status, a pod's unread fields, the old object).
    #[test]
    fn text_a_value_refuses_is_left_to_the_value_path() {
        let model = |extra: &str| {
            format!(
                r#"{{"apiVersion":"annexa.dev/v1alpha1","kind":"ModelDeployment","metadata":{{"name":"m","x":{extra}}},"spec":{{"model":{{"name":"m","version":"1.0.0","digest":"sha256:88b2072e3e177ec34a14929ecf42086800c989831269ec4b589231b683ae50be"}},"image":"r/i"}},"status":{{"y":{extra}}}}}"#
            )
        };
        let pod = |extra: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p"}},"spec":{{"containers":[{{"name":"c","image":"nginx","args":[{extra}]}}]}}}}"#
            )
        };
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        // Nesting: the object is one level, metadata a second, `x` the rest (127 in all).
        for levels in 120..=125 {
            assert!(agree(&review_of(
                "CREATE",
                None,
                &model(&nested(levels)),
                None
            )));
        }
        let refused = [
            nested(126),
            nested(130),
            r#""\ud800""#.to_string(),
            r#""a\udc00b""#.to_string(),
            "1e400".to_string(),
            format!("1{}", "0".repeat(400)),
            r#"{"$serde_json::private::RawValue":"[1]"}"#.to_string(),
        ];
        for extra in &refused {
            for object in [model(extra), pod(extra)] {
                let review = review_of("CREATE", None, &object, None);
                assert!(!agree(&review), "decided by the fast path: {object}");
                let request = review::decode(review.as_bytes()).unwrap();
                let answer = describe(prepare_by_value(&request, Target::of(&request.kind)));
                if !extra.contains("RawValue") {
                    assert!(answer.starts_with("error: request.object: "), "{answer}");
                }
            }
            // In the old object of an update: not a spec the `Value` path can compare.
            let review = review_of("UPDATE", None, &model("1"), Some(&model(extra)));
            assert!(!agree(&review), "decided by the fast path: {extra}");
        }
        // What a `Value` reads: a valid surrogate pair, big and small numbers.
        for extra in [
            r#""\ud83d\ude00""#,
            "1e300",
            "-1e-400",
            "18446744073709551616",
        ] {
            assert!(
                agree(&review_of("CREATE", None, &model(extra), None)),
                "{extra}"
            );
            assert!(
                agree(&review_of("CREATE", None, &pod(extra), None)),
                "{extra}"
            );
        }
        // Brackets inside strings do not nest.
        let brackets = format!(r#""{}""#, "[{".repeat(100));
        assert!(value_accepts(&format!("[{brackets}]")));
        assert!(value_accepts(&nested(127)));
        assert!(!value_accepts(&nested(128)));
    }

    #[test]
    fn updates_keeping_the_spec_are_recognised_whatever_the_formatting() {
        let object = |spec: &str| {
            format!(
                r#"{{"apiVersion":"annexa.dev/v1alpha1","kind":"AgentPolicy","metadata":{{"name":"a","namespace":"ml-prod"}}{spec}}}"#
            )
        };
        let spec = r#","spec":{"serviceAccountName":"sa","tokenTTL":"1h","egress":[{"cidr":"10.0.0.0/8","ports":[443]}]}"#;
        let reordered = r#", "spec" : { "egress" : [ { "ports":[443], "cidr":"10.0.0.0/8" } ], "tokenTTL":"1h", "serviceAccountName":"sa" }"#;
        let changed = r#","spec":{"serviceAccountName":"sa","tokenTTL":"2h","egress":[{"cidr":"10.0.0.0/8","ports":[443]}]}"#;
        let integer_as_float = r#","spec":{"serviceAccountName":"sa","tokenTTL":"1h","egress":[{"cidr":"10.0.0.0/8","ports":[443.0]}]}"#;
        let cases = [
            (spec, spec, true),
            (spec, reordered, true),
            (spec, changed, false),
            (spec, integer_as_float, false),
            (spec, "", false),
            ("", "", true),
            ("", r#","spec":null"#, false),
        ];
        for (new, old, unchanged) in cases {
            let review = review_of("UPDATE", Some("ml-prod"), &object(new), Some(&object(old)));
            let request = review::decode(review.as_bytes()).unwrap();
            let answer = describe(prepare_by_value(&request, Target::of(&request.kind)));
            assert_eq!(answer == "admitted", unchanged, "{new} / {old}: {answer}");
            // Without a spec, a changed object does not decode: the `Value` path says why.
            let decided = agree(&review);
            assert!(decided || new.is_empty(), "{new} / {old}");
        }
        // Old objects the fast path cannot read are left to the `Value` path.
        for old in [
            "[1]".to_string(),
            object(spec).replace(r#""spec""#, r#""spec":{},"spec""#),
        ] {
            let review = review_of("UPDATE", Some("ml-prod"), &object(spec), Some(&old));
            assert!(!agree(&review), "{old}");
        }
    }
}
