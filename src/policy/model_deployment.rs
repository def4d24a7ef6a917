//! Rules for ModelDeployment (A.5.3, A.5.9, A.5.12, A.8.9, A.8.19, A.8.22, A.8.24, A.8.31,
//! A.8.32) and the promotion gate: which approvals count for the requested digest.

use super::catalogue::{A_5_3, A_5_9, A_5_12, A_8_9, A_8_19, A_8_22, A_8_24, A_8_31, A_8_32};
use super::{
    Context, Evaluation, Lookup, ObjectRef, Profile, Recorder, image_pinned, image_tag,
    registry_allowed,
};
use crate::api::{
    Action, ApprovalDecision, Classification, DIGEST_REQUESTED_BY, Environment, ModelApproval,
    ModelDeployment,
};
use jiff::Timestamp;
use std::sync::Arc;

pub const KIND: &str = "ModelDeployment";

/// The classification of a model: the highest of its training datasets. A model that declares
/// none is treated as Confidential: unknown lineage must not escape encryption and isolation.
/// Datasets that do not exist are returned separately.
pub fn classification(
    model: &ModelDeployment,
    lookup: &dyn Lookup,
) -> (Classification, Vec<String>) {
    let namespace = model.metadata.namespace.as_deref().unwrap_or("default");
    let mut missing = Vec::new();
    let mut class = None;
    for name in &model.spec.training_datasets {
        match lookup.dataset(namespace, name) {
            Some(d) => class = class.max(Some(d.spec.classification)),
            None => missing.push(name.clone()),
        }
    }
    (class.unwrap_or(Classification::Confidential), missing)
}

/// The identity that requested the current digest, as recorded by the mutating webhook.
pub fn requester(model: &ModelDeployment) -> Option<&str> {
    model
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DIGEST_REQUESTED_BY))
        .map(String::as_str)
}

/// An approval that counts towards the requested digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountedApproval {
    pub name: String,
    pub approver: String,
    pub approved_at: Option<Timestamp>,
    /// When the approval stops counting.
    pub expires_at: Option<Timestamp>,
}

/// The promotion gate's verdict for the digest in the spec.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Promotion {
    pub digest: String,
    pub required: u32,
    /// Valid approvals, one per distinct approver.
    pub counted: Vec<CountedApproval>,
    /// A rejection of this digest: (approver, reason).
    pub rejected: Option<(String, String)>,
    /// Approvals for this digest that do not count, with why.
    pub ignored: Vec<(String, String)>,
    /// Approvals by the digest's requester (A.5.3), not counted.
    pub self_approvals: Vec<String>,
}

impl Promotion {
    pub fn approved(&self) -> bool {
        self.rejected.is_none() && self.counted.len() as u64 >= u64::from(self.required)
    }

    /// The earliest time a counted approval expires (the controller requeues for it).
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.counted.iter().filter_map(|c| c.expires_at).min()
    }

    /// `1 of 2 approvals`.
    pub fn summary(&self) -> String {
        format!("{} of {} approvals", self.counted.len(), self.required)
    }
}

/// Counts the approvals for the model's requested digest under the profile's promotion rules.
pub fn promotion(
    model: &ModelDeployment,
    approvals: &[Arc<ModelApproval>],
    profile: &Profile,
    now: Timestamp,
) -> Promotion {
    let digest = &model.spec.model.digest;
    let model_name = model.metadata.name.as_deref().unwrap_or_default();
    let requester = requester(model);
    let mut result = Promotion {
        digest: digest.clone(),
        required: profile.required_approvals,
        ..Promotion::default()
    };
    let mut sorted: Vec<&Arc<ModelApproval>> = approvals
        .iter()
        .filter(|a| a.spec.model_deployment == model_name && &a.spec.digest == digest)
        .collect();
    sorted.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            &a.metadata.name,
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &b.metadata.name,
            ))
    });
    for approval in sorted {
        let name = approval.metadata.name.clone().unwrap_or_default();
        let approver = &approval.spec.approver;
        let by_requester = requester == Some(approver.username.as_str());
        let rejection = approval.spec.decision == ApprovalDecision::Reject;
        if by_requester && !rejection {
            result.self_approvals.push(name);
            continue;
        }
        let created = approval.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let expires_at = created.and_then(|c| c.checked_add(profile.approval_ttl).ok());
        if expires_at.is_some_and(|e| e <= now) {
            let what = if rejection { "rejection" } else { "approval" };
            result
                .ignored
                .push((name, format!("{what} by {} expired", approver.username)));
            continue;
        }
        // The requester may withdraw their own change; anyone else must be an approver.
        if !by_requester
            && let Some(groups) = &profile.approver_groups
            && !approver.groups.iter().any(|g| groups.contains(g))
        {
            result.ignored.push((
                name,
                format!(
                    "{} is in none of the approver groups {:?}",
                    approver.username, groups
                ),
            ));
            continue;
        }
        if rejection {
            if result.rejected.is_none() {
                result.rejected = Some((
                    approver.username.clone(),
                    approval.spec.reason.clone().unwrap_or_default(),
                ));
            }
            continue;
        }
        if result
            .counted
            .iter()
            .any(|c| c.approver == approver.username)
        {
            result.ignored.push((
                name,
                format!("{} already approved this digest", approver.username),
            ));
            continue;
        }
        result.counted.push(CountedApproval {
            name,
            approver: approver.username.clone(),
            approved_at: created,
            expires_at,
        });
    }
    result
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

pub fn evaluate(model: &ModelDeployment, ctx: &Context<'_>) -> Evaluation {
    let name = model.metadata.name.as_deref().unwrap_or_default();
    let namespace = model.metadata.namespace.as_deref().unwrap_or("default");
    let mut rec = Recorder::new(KIND, ObjectRef::new(KIND, Some(namespace), name), ctx);
    let spec = &model.spec;
    let profile = ctx.profile;

    // A.5.9 / A.5.12: datasets exist; the model inherits their highest classification.
    let (class, missing) = classification(model, ctx.lookup);
    // `missing` keeps the spec's order: each index is found by scanning on from the previous
    // one, so the whole loop is linear in the list's length (not quadratic).
    let mut from = 0;
    for m in &missing {
        let i = spec.training_datasets[from.min(spec.training_datasets.len())..]
            .iter()
            .position(|d| d == m)
            .map_or(from, |p| from + p);
        from = i + 1;
        // A reference to an object that does not exist (yet) warns rather than denies: a GitOps
        // sync does not order objects within a wave, and the controller holds the rollout
        // until the dataset exists and complies.
        rec.fail_capped(
            &A_5_9,
            format!("spec.trainingDatasets[{i}]"),
            format_args!("model {name:?} trains on dataset {m:?}, which does not exist in namespace {namespace:?}"),
            Action::Warn,
        );
    }
    if !missing.is_empty() {
        rec.fail_capped(
            &A_5_12,
            "spec.trainingDatasets",
            format_args!("model {name:?} cannot be classified: datasets {missing:?} are missing"),
            Action::Warn,
        );
    } else if spec.training_datasets.is_empty() {
        rec.pass_note(
            &A_5_12,
            "no training datasets declared: classified Confidential (unknown lineage)",
        );
    } else {
        rec.pass_note(
            &A_5_12,
            format_args!("classified {class} from its training datasets"),
        );
    }

    // A.8.19 installation: allowed registry, weights with a source.
    if !registry_allowed(&spec.image, profile.allowed_registries.as_deref()) {
        rec.fail(
            &A_8_19,
            "spec.image",
            format_args!(
                "model {name:?} serves image {:?}, which is not from an allowed registry {:?}",
                spec.image,
                profile.allowed_registries.as_deref().unwrap_or_default()
            ),
        );
    }
    if spec
        .model
        .uri
        .as_deref()
        .is_none_or(|u| u.trim().is_empty())
    {
        rec.fail(
            &A_8_19,
            "spec.model.uri",
            format_args!(
                "model {name:?} does not say where its weights come from (spec.model.uri)"
            ),
        );
    }

    // A.8.9 configuration: pinned image.
    if profile.digest_required() && !image_pinned(&spec.image) {
        rec.fail(
            &A_8_9,
            "spec.image",
            format_args!(
                "model {name:?} serves image {:?}, which is not pinned by digest (@sha256:) as {} requires",
                spec.image,
                if profile.environment == Environment::Production { "Production" } else { "the policy" }
            ),
        );
    }

    // A.8.31 environments: released versions and immutable images outside Development.
    if profile.environment == Environment::Development {
        rec.not_applicable(&A_8_31, "Development environment");
    } else {
        let version = spec.model.version.to_ascii_lowercase();
        if version == "latest" || ["dev", "snapshot"].iter().any(|m| version.contains(m)) {
            rec.fail(
                &A_8_31,
                "spec.model.version",
                format_args!(
                    "model {name:?} version {:?} is not a release and cannot serve in {}",
                    spec.model.version, profile.environment
                ),
            );
        }
        if !image_pinned(&spec.image) && image_tag(&spec.image).is_none_or(|t| t == "latest") {
            rec.fail(
                &A_8_31,
                "spec.image",
                format_args!(
                    "model {name:?} image {:?} has a mutable reference (latest or no tag) in {}",
                    spec.image, profile.environment
                ),
            );
        }
    }

    // A.8.22 segregation: declared peers only, GPU pool for the classification.
    let peers = spec
        .network
        .as_ref()
        .map_or(&[][..], |n| &n.allowed_from[..]);
    for (i, peer) in peers.iter().enumerate() {
        let empty = |s: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>| {
            s.as_ref().is_none_or(|s| {
                s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                    && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
            })
        };
        if peer.namespace_selector.is_some()
            && empty(&peer.namespace_selector)
            && empty(&peer.pod_selector)
        {
            rec.fail(
                &A_8_22,
                format!("spec.network.allowedFrom[{i}]"),
                format_args!("model {name:?} admits traffic from every pod in every namespace"),
            );
        } else if peer.namespace_selector.is_none() && peer.pod_selector.is_none() {
            rec.fail(
                &A_8_22,
                format!("spec.network.allowedFrom[{i}]"),
                format_args!("model {name:?} has an allowedFrom entry without a namespaceSelector or podSelector"),
            );
        }
    }
    let gpus = spec.resources.as_ref().and_then(|r| r.gpus).unwrap_or(0);
    if gpus > 0 {
        if let Some(resource) = spec
            .resources
            .as_ref()
            .and_then(|r| r.gpu_resource_name.as_deref())
            && !profile.is_gpu_resource(resource)
        {
            rec.fail(
                    &A_8_22,
                    "spec.resources.gpuResourceName",
                    format_args!("model {name:?} requests {resource:?}, which the policy does not count as a GPU ({:?})", profile.gpu_resource_names),
                );
        }
        if profile.pool_for(class).is_none() {
            rec.fail(
                &A_8_22,
                "spec.resources.gpus",
                format_args!("model {name:?} is {class} and requests GPUs, but no GPU pool serves {class} or stricter data"),
            );
        }
    }

    // A.8.24 cryptography: KMS for the weights and TLS when the data calls for it.
    if class >= profile.require_kms_from {
        match spec.model.kms_key.as_deref() {
            None => rec.fail(
                &A_8_24,
                "spec.model.kmsKey",
                format_args!("model {name:?} is {class} and its weights have no KMS key"),
            ),
            Some(key)
                if profile
                    .allowed_key_prefixes
                    .as_ref()
                    .is_some_and(|prefixes| !prefixes.iter().any(|p| key.starts_with(p.as_str()))) =>
            {
                rec.fail(
                    &A_8_24,
                    "spec.model.kmsKey",
                    format_args!(
                        "model {name:?} uses KMS key {key:?}, which matches none of the allowed prefixes {:?}",
                        profile.allowed_key_prefixes.as_deref().unwrap_or_default()
                    ),
                )
            }
            Some(_) => {}
        }
        if spec
            .serving
            .as_ref()
            .and_then(|s| s.tls_secret.as_deref())
            .is_none()
        {
            rec.fail(
                &A_8_24,
                "spec.serving.tlsSecret",
                format_args!("model {name:?} is {class} and does not serve over TLS"),
            );
        }
    } else {
        rec.not_applicable(
            &A_8_24,
            format_args!(
                "{class} model: encryption is required from {}",
                profile.require_kms_from
            ),
        );
    }

    // A.8.32 / A.5.3 promotion gate. It never denies: the controller holds the rollout, so
    // findings are capped at Warn and the user sees them as admission warnings.
    if profile.required_approvals == 0 {
        let environment = profile.environment;
        rec.not_applicable(&A_8_32, format_args!("{environment} requires no approvals"));
        rec.not_applicable(&A_5_3, format_args!("{environment} requires no approvals"));
    } else {
        let approvals = ctx.lookup.approvals(namespace, name);
        let gate = promotion(model, &approvals, profile, ctx.now);
        if let Some((who, reason)) = &gate.rejected {
            rec.fail_capped(
                &A_8_32,
                "spec.model.digest",
                format_args!(
                    "digest {} of model {name:?} was rejected by {who}: {reason}",
                    short(&gate.digest)
                ),
                Action::Warn,
            );
        } else if !gate.approved() {
            rec.fail_capped(
                &A_8_32,
                "spec.model.digest",
                format_args!(
                    "rollout of digest {} of model {name:?} is held: {}",
                    short(&gate.digest),
                    gate.summary()
                ),
                Action::Warn,
            );
        } else {
            rec.pass_note(
                &A_8_32,
                format_args!("{} for {}", gate.summary(), short(&gate.digest)),
            );
        }
        for approval in &gate.self_approvals {
            rec.fail_capped(
                &A_5_3,
                "spec.model.digest",
                format_args!(
                    "approval {approval:?} is by {}, who requested the digest, and is not counted",
                    requester(model).unwrap_or_default()
                ),
                Action::Warn,
            );
        }
        match requester(model) {
            Some(r) => rec.pass_note(&A_5_3, format_args!("digest requested by {r}")),
            None => rec.pass_note(
                &A_5_3,
                "requester not recorded (object not admitted through the webhook)",
            ),
        }
    }

    rec.finish()
}

/// Whether a string is a content digest: `sha256:` and 64 lowercase hex digits.
pub fn is_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}
