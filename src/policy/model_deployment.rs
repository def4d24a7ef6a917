//! Rules for ModelDeployment (A.5.3, A.5.9, A.5.12, A.8.9, A.8.19, A.8.22, A.8.24, A.8.31,
//! A.8.32) and the promotion gate: which approvals count for the requested digest.

use super::catalogue::{A_5_3, A_5_9, A_5_12, A_8_9, A_8_19, A_8_22, A_8_24, A_8_31, A_8_32};
use super::{Context, Evaluation, ImageRef, Lookup, ObjectRef, Profile, Recorder};
use crate::api::{
    Action, ApprovalDecision, Classification, DIGEST_REQUESTED_BY, Environment, Kind,
    ModelApproval, ModelDeployment, REQUESTED_RELEASE,
};
use jiff::Timestamp;
use std::sync::Arc;

pub const KIND: &str = Kind::ModelDeployment.name();

/// The classification of a model: the highest of its training datasets. A model that declares
/// none is treated as Confidential: unknown lineage must not escape encryption and isolation.
/// Datasets that do not exist are returned separately.
pub fn classification(
    model: &ModelDeployment,
    lookup: &dyn Lookup,
) -> (Classification, Vec<String>) {
    let namespace = model.metadata.namespace.as_deref().unwrap_or("default");
    classification_of(namespace, &model.spec.training_datasets, lookup)
}

/// The classification of a set of datasets (see [`classification`]).
pub fn classification_of(
    namespace: &str,
    datasets: &[String],
    lookup: &dyn Lookup,
) -> (Classification, Vec<String>) {
    let mut missing = Vec::new();
    let mut class = None;
    for name in datasets {
        match lookup.dataset(namespace, name) {
            Some(d) => class = class.max(Some(d.spec.classification)),
            None => missing.push(name.clone()),
        }
    }
    (class.unwrap_or(Classification::Confidential), missing)
}

/// The identity that requested the model's current release, as recorded by the mutating
/// webhook. None when it is not recorded, or recorded for another release (the object was
/// changed without passing through the webhook): the requester is then unknown.
pub fn requester(model: &ModelDeployment) -> Option<&str> {
    let annotations = model.metadata.annotations.as_ref()?;
    let fingerprint = annotations.get(REQUESTED_RELEASE)?;
    if *fingerprint != model.spec.release().fingerprint() {
        return None;
    }
    annotations
        .get(DIGEST_REQUESTED_BY)
        .map(String::as_str)
        .filter(|r| !r.is_empty())
}

/// Prefix of a ServiceAccount's username.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Whether `username` is a ServiceAccount the profile does not allow to approve.
pub fn service_account_barred(username: &str, profile: &Profile) -> bool {
    username.starts_with(SERVICE_ACCOUNT_PREFIX)
        && !profile
            .service_account_approvers
            .iter()
            .any(|a| a == username)
}

/// An approval that counts towards the requested release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountedApproval {
    pub name: String,
    pub approver: String,
    pub approved_at: Option<Timestamp>,
    /// When the approval stops counting.
    pub expires_at: Option<Timestamp>,
}

/// Why a ModelApproval naming the model does not count for the release under evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Bound to another object of the same name (deleted and recreated since).
    OtherModel,
    /// About another release than the one evaluated.
    OtherRelease,
    Expired,
    /// By the identity that requested the release (A.5.3).
    SelfApproval,
    NotInApproverGroup,
    ServiceAccount,
    /// A second approval by the same person.
    Duplicate,
    /// Created after the moment the release is evaluated at.
    Later,
}

impl Ignored {
    /// The `Counted` condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Ignored::OtherModel => "OtherModel",
            Ignored::OtherRelease => "OtherRelease",
            Ignored::Expired => "Expired",
            Ignored::SelfApproval => "SelfApproval",
            Ignored::NotInApproverGroup => "NotInApproverGroup",
            Ignored::ServiceAccount => "ServiceAccount",
            Ignored::Duplicate => "Duplicate",
            Ignored::Later => "NotYetCreated",
        }
    }
}

/// The promotion gate's verdict for one release of a model.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Promotion {
    /// Fingerprint of the release.
    pub release: String,
    /// Weights digest of the release.
    pub digest: String,
    pub required: u32,
    /// Who requested the release (None: unknown, and the gate stays closed: A.5.3).
    pub requester: Option<String>,
    /// Valid approvals, one per distinct approver.
    pub counted: Vec<CountedApproval>,
    /// A rejection of this release: (approver, reason).
    pub rejected: Option<(String, String)>,
    /// Approvals naming the model that do not count, with the kind and a readable why.
    pub ignored: Vec<(String, Ignored, String)>,
}

impl Promotion {
    pub fn approved(&self) -> bool {
        self.required == 0
            || (self.requester.is_some()
                && self.rejected.is_none()
                && self.counted.len() as u64 >= u64::from(self.required))
    }

    /// Names of the approvals by the release's requester.
    pub fn self_approvals(&self) -> impl Iterator<Item = &str> {
        self.ignored
            .iter()
            .filter(|(_, why, _)| *why == Ignored::SelfApproval)
            .map(|(name, _, _)| name.as_str())
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

/// Counts the approvals for the model's requested release under the profile's promotion rules.
pub fn promotion(
    model: &ModelDeployment,
    approvals: &[Arc<ModelApproval>],
    profile: &Profile,
    now: Timestamp,
) -> Promotion {
    let release = model.spec.release();
    promotion_of(
        model,
        &release.fingerprint(),
        &release.model.digest,
        requester(model),
        approvals,
        profile,
        now,
    )
}

/// Counts the approvals of one release of `model` as they stood at `at`: approvals created
/// after `at` or expired by then do not count. Used for the requested release (at = now) and to
/// re-verify the release that serves (at = when it was promoted), so that what serves is
/// derived from the approvals themselves, never from a status field.
pub fn promotion_of(
    model: &ModelDeployment,
    fingerprint: &str,
    digest: &str,
    requester: Option<&str>,
    approvals: &[Arc<ModelApproval>],
    profile: &Profile,
    at: Timestamp,
) -> Promotion {
    let model_name = model.metadata.name.as_deref().unwrap_or_default();
    let model_uid = model.metadata.uid.as_deref().unwrap_or_default();
    let mut result = Promotion {
        release: fingerprint.to_string(),
        digest: digest.to_string(),
        required: profile.required_approvals,
        requester: requester.map(str::to_string),
        ..Promotion::default()
    };
    let mut sorted: Vec<&Arc<ModelApproval>> = approvals
        .iter()
        .filter(|a| a.spec.model_deployment == model_name)
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
    let short_release = short(fingerprint);
    for approval in sorted {
        let name = approval.metadata.name.clone().unwrap_or_default();
        let approver = &approval.spec.approver;
        let who = approver.username.as_str();
        let mut ignore =
            |kind: Ignored, why: String| result.ignored.push((name.clone(), kind, why));
        // Offline (`annexa check`) objects have no UID; in a cluster every object has one.
        if model.metadata.uid.is_some() && approval.spec.model_uid != model_uid {
            ignore(
                Ignored::OtherModel,
                format!(
                    "approval by {who} is bound to ModelDeployment UID {}, not to this object ({model_uid}): the model was deleted and recreated since",
                    approval.spec.model_uid
                ),
            );
            continue;
        }
        if approval.spec.release.fingerprint != fingerprint {
            ignore(
                Ignored::OtherRelease,
                format!(
                    "approval by {who} is for release {}, not {short_release}",
                    short(&approval.spec.release.fingerprint)
                ),
            );
            continue;
        }
        let created = approval.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if created.is_some_and(|c| c > at) {
            ignore(
                Ignored::Later,
                format!("approval by {who} was made after release {short_release} was promoted"),
            );
            continue;
        }
        let by_requester = requester == Some(who);
        let rejection = approval.spec.decision == ApprovalDecision::Reject;
        if by_requester && !rejection {
            ignore(
                Ignored::SelfApproval,
                format!(
                    "A.5.3 Segregation of duties: {who} requested release {short_release} and cannot approve it"
                ),
            );
            continue;
        }
        let expires_at = created.and_then(|c| c.checked_add(profile.approval_ttl).ok());
        // Without a creationTimestamp (a file, offline) an approval counts as fresh.
        if expires_at.is_some_and(|e| e <= at) {
            let what = if rejection { "rejection" } else { "approval" };
            ignore(
                Ignored::Expired,
                format!(
                    "{what} by {who} expired (approvals are valid for {})",
                    super::duration::format_duration(profile.approval_ttl)
                ),
            );
            continue;
        }
        if service_account_barred(who, profile) && !by_requester {
            ignore(
                Ignored::ServiceAccount,
                format!("{who} is a ServiceAccount, and no CompliancePolicy allows it to approve"),
            );
            continue;
        }
        // The requester may withdraw their own change; anyone else must be an approver.
        if !by_requester
            && let Some(groups) = &profile.approver_groups
            && !approver.groups.iter().any(|g| groups.contains(g))
        {
            ignore(
                Ignored::NotInApproverGroup,
                format!("{who} is in none of the approver groups {groups:?}"),
            );
            continue;
        }
        if rejection {
            if result.rejected.is_none() {
                result.rejected = Some((
                    who.to_string(),
                    approval.spec.reason.clone().unwrap_or_default(),
                ));
            }
            continue;
        }
        if result.counted.iter().any(|c| c.approver == who) {
            ignore(
                Ignored::Duplicate,
                format!("{who} already approved release {short_release}; one person counts once"),
            );
            continue;
        }
        result.counted.push(CountedApproval {
            name,
            approver: who.to_string(),
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

    // A.8.3: the pods Annexa builds for the model read no dataset's credentials unless the
    // model's account may.
    super::pod_access::model_pods_access(model, &mut rec, ctx);

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
    let image = ImageRef::parse(&spec.image);
    let allowed = profile.allowed_registries.as_deref();
    if let Err(refusal) = image.registry_check(allowed) {
        rec.fail(
            &A_8_19,
            "spec.image",
            format_args!(
                "model {name:?} serves image {:?}, which {}",
                spec.image,
                refusal.detail(allowed.unwrap_or_default())
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
    if profile.digest_required() && !image.pinned() {
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
        if image.mutable() {
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
            && (!profile.is_gpu_resource(resource) || resource.contains('*'))
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
        let release = short(&gate.release);
        match &gate.requester {
            None => rec.fail_capped(
                &A_5_3,
                "metadata.annotations",
                format_args!(
                    "the requester of release {release} of model {name:?} is not recorded (changed without the webhook): it cannot be approved until its requester is re-established"
                ),
                Action::Warn,
            ),
            Some(r) => rec.pass_note(&A_5_3, format_args!("release {release} requested by {r}")),
        }
        if let Some((who, reason)) = &gate.rejected {
            rec.fail_capped(
                &A_8_32,
                "spec",
                format_args!("release {release} of model {name:?} was rejected by {who}: {reason}"),
                Action::Warn,
            );
        } else if !gate.approved() {
            rec.fail_capped(
                &A_8_32,
                "spec",
                format_args!(
                    "rollout of release {release} (digest {}) of model {name:?} is held: {}",
                    short(&gate.digest),
                    gate.summary()
                ),
                Action::Warn,
            );
        } else {
            rec.pass_note(
                &A_8_32,
                format_args!("{} for release {release}", gate.summary()),
            );
        }
        for approval in gate.self_approvals() {
            rec.fail_capped(
                &A_5_3,
                "spec",
                format_args!(
                    "approval {approval:?} is by {}, who requested release {release}, and is not counted",
                    gate.requester.as_deref().unwrap_or_default()
                ),
                Action::Warn,
            );
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
