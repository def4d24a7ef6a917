//! ModelDeployment: a ServiceAccount, a hardened Deployment placed on the GPU pool of the
//! model's classification, a Service and a default-deny NetworkPolicy, all owned and applied
//! server-side; the promotion gate decides which release the Deployment is rendered from.

use super::conditions::{self, Desired};
use super::error::{Context as _, Doing, Result, Target};
use super::{
    Child, Context, Watches, apply, apply_status, child_labels, drive, foreign_children,
    name_conflict, owner_reference, put_back, refs, replace_ready, requeue_until,
};
use crate::api::{
    ApprovalRecord, CLASSIFICATION_LABEL, Classification, CommonStatus, ControlOutcome, GpuPool,
    MAX_PROMOTIONS, ModelApproval, ModelDeployment, ModelDeploymentStatus, ReleaseRecord,
    ReleaseSpec, ServingRelease,
};
use crate::policy::model_deployment::{Promotion, classification, promotion, promotion_of};
use crate::policy::training_dataset as dataset_rules;
use crate::policy::{self, Context as PolicyContext, Evaluation, Governed, Lookup, Profile};
use futures::Future;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Pod-template annotation recording the digest a Deployment serves.
pub const SERVING_DIGEST_ANNOTATION: &str = "annexa.dev/model-digest";
/// Pod-template annotation recording the fingerprint of the release a Deployment serves.
pub const SERVING_RELEASE_ANNOTATION: &str = "annexa.dev/release";
/// Deployment annotation keeping the serving release (JSON), so that a lost status does not
/// lose what serves; like status, it is re-verified against the approvals before it is used.
pub const RELEASE_RECORD_ANNOTATION: &str = "annexa.dev/serving-release";
/// Label selecting a model's pods.
pub const MODEL_LABEL: &str = "annexa.dev/modeldeployment";

/// Everything the pure builders need.
pub struct Inputs<'a> {
    pub model: &'a ModelDeployment,
    pub profile: &'a Profile,
    /// The classification of the serving release's datasets.
    pub classification: Classification,
    /// The release to serve (None: nothing is approved yet, no Deployment). Everything that
    /// reaches the pod template comes from it, never from the current spec; only the scale does.
    pub release: Option<&'a ServingRelease>,
}

fn meta(model: &ModelDeployment, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: model.metadata.namespace.clone(),
        labels: Some(child_labels("modeldeployment", &model.name_any())),
        owner_references: owner_reference(model).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn selector_labels(model: &ModelDeployment) -> BTreeMap<String, String> {
    BTreeMap::from([(MODEL_LABEL.to_string(), model.name_any())])
}

pub fn build_service_account(model: &ModelDeployment) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(model, model.name_any()),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The container port a release serves on (default 8080).
fn port(release: &ReleaseSpec) -> i32 {
    release
        .serving
        .as_ref()
        .and_then(|s| s.port)
        .unwrap_or(8080)
}

fn tls_secret(release: &ReleaseSpec) -> Option<&str> {
    release
        .serving
        .as_ref()
        .and_then(|s| s.tls_secret.as_deref())
}

fn hardened_container_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// nodeSelector, tolerations and runtimeClassName of a pod placed on a GPU pool.
pub type Placement = (
    Option<BTreeMap<String, String>>,
    Option<Vec<Toleration>>,
    Option<String>,
);

/// The pool placement of a classification: nodeSelector, toleration, runtimeClass.
pub fn placement(pool: Option<&GpuPool>) -> Placement {
    let Some(pool) = pool else {
        return (None, None, None);
    };
    let selector = (!pool.node_selector.is_empty()).then(|| pool.node_selector.clone());
    let tolerations = pool.taint.as_ref().map(|t| {
        vec![Toleration {
            key: Some(t.key.clone()),
            operator: Some(if t.value.is_some() { "Equal" } else { "Exists" }.to_string()),
            value: t.value.clone(),
            effect: Some(t.effect.as_str().to_string()),
            toleration_seconds: None,
        }]
    });
    (selector, tolerations, pool.runtime_class_name.clone())
}

/// The serving Deployment, or None when no release may serve yet.
pub fn build_deployment(inputs: &Inputs<'_>) -> Option<Deployment> {
    let model = inputs.model;
    let serving = inputs.release?;
    let spec = &serving.spec;
    let digest = spec.model.digest.as_str();
    let gpus = spec.resources.as_ref().and_then(|r| r.gpus).unwrap_or(0);
    let mut limits = BTreeMap::new();
    if gpus > 0 {
        let resource = spec
            .resources
            .as_ref()
            .and_then(|r| r.gpu_resource_name.clone())
            .or_else(|| inputs.profile.default_gpu_resource().map(str::to_string))
            .unwrap_or_else(|| "nvidia.com/gpu".to_string());
        limits.insert(resource, Quantity(gpus.to_string()));
    }
    if let Some(cpu) = spec.resources.as_ref().and_then(|r| r.cpu.clone()) {
        limits.insert("cpu".to_string(), Quantity(cpu));
    }
    if let Some(memory) = spec.resources.as_ref().and_then(|r| r.memory.clone()) {
        limits.insert("memory".to_string(), Quantity(memory));
    }
    let (node_selector, tolerations, runtime_class_name) = if gpus > 0 {
        placement(inputs.profile.pool_for(inputs.classification))
    } else {
        (None, None, None)
    };
    let mut pod_labels = selector_labels(model);
    pod_labels.insert(
        CLASSIFICATION_LABEL.to_string(),
        inputs.classification.as_str().to_string(),
    );
    // The model's name and version are free text (`2.1.0+cuda12`); as label values they must
    // be at most 63 of [A-Za-z0-9._-], or the API server refuses the whole Deployment. One that
    // is not stays out of the labels (the release annotation and MODEL_* variables carry it).
    for (key, value) in [
        ("app.kubernetes.io/name", &spec.model.name),
        ("app.kubernetes.io/version", &spec.model.version),
    ] {
        if is_label_value(value) {
            pod_labels.insert(key.to_string(), value.clone());
        }
    }
    let env = |name: &str, value: &str| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    };
    let port = port(spec);
    let tls_secret = tls_secret(spec);
    let mut env_vars = vec![
        env("MODEL_NAME", &spec.model.name),
        env("MODEL_VERSION", &spec.model.version),
        env("MODEL_DIGEST", digest),
    ];
    if let Some(uri) = &spec.model.uri {
        env_vars.push(env("MODEL_URI", uri));
    }
    let mut volumes = vec![Volume {
        name: "tmp".to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".to_string(),
        mount_path: "/tmp".to_string(),
        ..VolumeMount::default()
    }];
    if let Some(secret) = tls_secret {
        volumes.push(Volume {
            name: "tls".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_string()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "tls".to_string(),
            mount_path: "/tls".to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        env_vars.push(env("TLS_CERT_FILE", "/tls/tls.crt"));
        env_vars.push(env("TLS_KEY_FILE", "/tls/tls.key"));
    }
    let resources = (!limits.is_empty()).then(|| ResourceRequirements {
        limits: Some(limits.clone()),
        requests: Some(limits),
        ..ResourceRequirements::default()
    });
    let mut metadata = meta(model, model.name_any());
    if let Ok(record) = serde_json::to_string(serving) {
        metadata.annotations = Some(BTreeMap::from([(
            RELEASE_RECORD_ANNOTATION.to_string(),
            record,
        )]));
    }
    Some(Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(model.spec.replicas.unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(model)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([
                        (SERVING_DIGEST_ANNOTATION.to_string(), digest.to_string()),
                        (
                            SERVING_RELEASE_ANNOTATION.to_string(),
                            serving.record.fingerprint.clone(),
                        ),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(model.name_any()),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    node_selector,
                    tolerations,
                    runtime_class_name,
                    containers: vec![Container {
                        name: "model".to_string(),
                        image: Some(spec.image.clone()),
                        ports: Some(vec![ContainerPort {
                            name: Some("serving".to_string()),
                            container_port: port,
                            protocol: Some("TCP".to_string()),
                            ..ContainerPort::default()
                        }]),
                        env: Some(env_vars),
                        resources,
                        security_context: Some(hardened_container_context()),
                        volume_mounts: Some(mounts),
                        ..Container::default()
                    }],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// A valid label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` that start and end
/// with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A JSON merge patch that puts the pod template's containers, init containers and volumes back
/// to Annexa's when the live Deployment holds items Annexa did not write (a sidecar or a
/// hostPath volume added by hand). Server-side apply merges these lists by name and keeps the
/// items another manager added, so applying alone would leave them (A.8.9); a merge patch
/// replaces each list whole. `None` when the live lists hold only Annexa's items.
pub fn foreign_pod_items(desired: &Deployment, live: &Deployment) -> Option<serde_json::Value> {
    let want = desired.spec.template.spec.as_ref()?;
    let have = live.spec.template.spec.as_ref()?;
    fn extra<T>(have: Option<&[T]>, want: Option<&[T]>, name: fn(&T) -> &str) -> bool {
        let wanted: Vec<&str> = want.unwrap_or_default().iter().map(name).collect();
        have.unwrap_or_default()
            .iter()
            .any(|item| !wanted.contains(&name(item)))
    }
    fn container(c: &Container) -> &str {
        &c.name
    }
    fn volume(v: &Volume) -> &str {
        &v.name
    }
    let foreign = extra(Some(&have.containers), Some(&want.containers), container)
        || extra(
            have.init_containers.as_deref(),
            want.init_containers.as_deref(),
            container,
        )
        || extra(have.volumes.as_deref(), want.volumes.as_deref(), volume);
    foreign.then(|| {
        serde_json::json!({"spec": {"template": {"spec": {
            "containers": want.containers,
            "initContainers": want.init_containers,
            "volumes": want.volumes,
        }}}})
    })
}

/// The Service in front of the model's pods. Its port (443 with TLS, else 80) follows the
/// release that serves (`release`: the serving one, or the requested one while nothing
/// serves), like everything else that belongs to a release.
pub fn build_service(model: &ModelDeployment, release: &ReleaseSpec) -> Service {
    let service_port = if tls_secret(release).is_some() {
        443
    } else {
        80
    };
    Service {
        metadata: meta(model, model.name_any()),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(model)),
            ports: Some(vec![ServicePort {
                name: Some(if service_port == 443 { "https" } else { "http" }.to_string()),
                port: service_port,
                target_port: Some(IntOrString::String("serving".to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Default-deny ingress that admits only the declared peers (the current spec: a narrowing
/// takes effect at once), on the port of `release` (the serving one, or the requested one
/// while nothing serves): a pending port change opens nothing before it is approved.
pub fn build_network_policy(model: &ModelDeployment, release: &ReleaseSpec) -> NetworkPolicy {
    let peers: Vec<NetworkPolicyPeer> = model
        .spec
        .network
        .as_ref()
        .map(|n| {
            n.allowed_from
                .iter()
                .map(|p| NetworkPolicyPeer {
                    namespace_selector: p.namespace_selector.clone(),
                    pod_selector: p.pod_selector.clone(),
                    ip_block: None,
                })
                .collect()
        })
        .unwrap_or_default();
    let ingress = if peers.is_empty() {
        Vec::new()
    } else {
        vec![NetworkPolicyIngressRule {
            from: Some(peers),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(port(release))),
                protocol: Some("TCP".to_string()),
                end_port: None,
            }]),
        }]
    };
    NetworkPolicy {
        metadata: meta(model, model.name_any()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(model)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(ingress),
            egress: None,
        }),
    }
}

/// What the controller can prove about a release recorded as serving.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Approved under the rule in force now (or the rule in force now requires no approvals).
    Current,
    /// Approved under the rule in force when it was promoted, which required fewer approvals
    /// than the rule in force now. It keeps serving (Annexa never rolls back a running release
    /// on its own); any new release needs the new count.
    EarlierRule {
        promoted_under: u32,
        required_now: u32,
    },
    /// Nothing proves it was approved; the reason, for the conditions.
    Unproven(String),
}

/// Whether a release recorded as serving (in status, or on the Deployment) really was
/// promoted: its content matches its fingerprint and, where approvals are required, the
/// ModelApprovals of this very model (UID) for that fingerprint sufficed when it was promoted.
/// A status anyone with `modeldeployments/status` can write is never trusted on its own.
///
/// The count required is the rule in force at the promotion, as the promotion record says,
/// when `trust_recorded_rule` (the record comes from the controller's own status, which no
/// user role may write) and never below one approval: a record claiming that none were needed
/// cannot be told from a forged one. A record read from the Deployment (which the team may
/// edit) is held to the rule in force now.
pub fn standing(
    candidate: &ServingRelease,
    trust_recorded_rule: bool,
    model: &ModelDeployment,
    approvals: &[Arc<ModelApproval>],
    profile: &Profile,
    now: Timestamp,
) -> Standing {
    if candidate.spec.fingerprint() != candidate.record.fingerprint {
        return Standing::Unproven("its content does not match its fingerprint".to_string());
    }
    let required_now = profile.required_approvals;
    if required_now == 0 {
        return Standing::Current;
    }
    let Some(at) = candidate.record.promoted_at.as_ref().map(|t| t.0) else {
        return Standing::Unproven("it has no promotion time".to_string());
    };
    if at > now {
        return Standing::Unproven("its promotion time is in the future".to_string());
    }
    let under = match candidate.record.required_approvals {
        Some(recorded) if trust_recorded_rule && recorded < required_now => recorded,
        _ => required_now,
    };
    if under == 0 {
        return Standing::Unproven(format!(
            "it was promoted where no approvals were required, and nothing proves it now that {} required",
            approvals_phrase(required_now, "are", "is")
        ));
    }
    let mut gate = promotion_of(
        model,
        &candidate.record.fingerprint,
        &candidate.spec.model.digest,
        candidate.record.requested_by.as_deref(),
        approvals,
        profile,
        at,
    );
    gate.required = under;
    if !gate.approved() {
        return Standing::Unproven(if gate.requester.is_none() {
            "its requester is not recorded".to_string()
        } else if under < required_now || candidate.record.required_approvals == Some(required_now)
        {
            format!(
                "{} of the {} it was promoted with still exist and count",
                gate.counted.len(),
                approvals_phrase(under, "", "")
            )
        } else {
            format!(
                "{} of the {} required now count for it",
                gate.counted.len(),
                approvals_phrase(under, "", "")
            )
        });
    }
    if under < required_now {
        Standing::EarlierRule {
            promoted_under: under,
            required_now,
        }
    } else {
        Standing::Current
    }
}

/// `1 approval`, `2 approvals`, with the verb that agrees (`2 approvals are`).
fn approvals_phrase(n: u32, plural_verb: &str, singular_verb: &str) -> String {
    let (noun, verb) = if n == 1 {
        ("approval", singular_verb)
    } else {
        ("approvals", plural_verb)
    };
    if verb.is_empty() {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun} {verb}")
    }
}

/// Whether a release recorded as serving is proved approved under the rule in force now or
/// at its promotion (see [`standing`]).
pub fn verified(
    candidate: &ServingRelease,
    model: &ModelDeployment,
    approvals: &[Arc<ModelApproval>],
    profile: &Profile,
    now: Timestamp,
) -> bool {
    !matches!(
        standing(candidate, true, model, approvals, profile, now),
        Standing::Unproven(_)
    )
}

/// Which release serves: the requested one when the gate and the controls allow it, else the
/// verified one that served before (None: nothing serves).
pub fn decide_serving(
    model: &ModelDeployment,
    gate: &Promotion,
    allowed: bool,
    previous: Option<ServingRelease>,
    now: Timestamp,
) -> Option<ServingRelease> {
    let requested = model.spec.release();
    let fingerprint = requested.fingerprint();
    if allowed {
        // The same release keeps its promotion record, unless it was promoted under a rule
        // that asked fewer approvals than the one it now meets: it is then recorded anew,
        // under the rule in force now. A new release is promoted now.
        if let Some(previous) = previous.filter(|p| {
            p.record.fingerprint == fingerprint
                && p.record
                    .required_approvals
                    .is_none_or(|under| under >= gate.required)
        }) {
            return Some(previous);
        }
        let mut record = requested.record();
        record.requested_by = gate.requester.clone();
        record.approvers = gate.counted.iter().map(|c| c.approver.clone()).collect();
        record.promoted_at = Some(Time(now));
        record.required_approvals = Some(gate.required);
        return Some(ServingRelease {
            record,
            spec: requested,
        });
    }
    previous
}

/// Datasets whose own evaluation has Enforce findings (a model using them is not rolled out).
pub fn noncompliant_datasets(
    model: &ModelDeployment,
    lookup: &dyn Lookup,
    profile: &Profile,
    now: Timestamp,
) -> Vec<String> {
    let namespace = model.namespace().unwrap_or_default();
    let ctx = PolicyContext {
        profile,
        lookup,
        now,
        detail: policy::Detail::Outcomes,
    };
    model
        .spec
        .training_datasets
        .iter()
        .filter_map(|name| {
            let d = lookup.dataset(&namespace, name)?;
            let eval = dataset_rules::evaluate(&d, &ctx);
            let controls: Vec<&str> = eval.denials().map(|f| f.control).collect();
            (!controls.is_empty()).then(|| format!("{name} ({})", controls.join(", ")))
        })
        .collect()
}

fn outcome_condition(
    eval: &Evaluation,
    type_: &'static str,
    control: &str,
    ok_reason: &str,
    fail_reason: &str,
) -> Desired {
    match eval.outcome(control) {
        Some(o) if o.result == ControlOutcome::Fail => {
            Desired::new(type_, false, fail_reason, o.message.clone())
        }
        Some(o) => Desired::new(type_, true, ok_reason, o.message.clone()),
        None => Desired::new(type_, true, ok_reason, ""),
    }
}

/// Why the requested release does not serve, as (reason, message); None when nothing holds
/// it. Failed controls and datasets come first: approvals are named only when they are the
/// cause.
pub fn hold_cause(
    eval: &Evaluation,
    gate: &Promotion,
    bad_datasets: &[String],
) -> Option<(&'static str, String)> {
    let denials: Vec<&str> = eval.denials().map(|f| f.message.as_str()).collect();
    if !denials.is_empty() {
        return Some(("ControlsFailed", denials.join("; ")));
    }
    if !bad_datasets.is_empty() {
        return Some((
            "DatasetNotCompliant",
            format!(
                "training datasets not compliant: {}",
                bad_datasets.join(", ")
            ),
        ));
    }
    if gate.required == 0 {
        return None;
    }
    let release = gate.release.get(..19).unwrap_or(&gate.release);
    if gate.requester.is_none() {
        return Some((
            "RequesterUnknown",
            format!(
                "A.5.3 Segregation of duties: the requester of release {release} is not recorded (the release was written without the webhook), so it cannot be approved; the person who requested it re-establishes it (see docs/operating.md)"
            ),
        ));
    }
    if let Some((who, reason)) = &gate.rejected {
        return Some((
            "Rejected",
            format!("A.8.32 Change management: release {release} was rejected by {who}: {reason}"),
        ));
    }
    if !gate.approved() {
        return Some((
            "AwaitingApproval",
            format!(
                "A.8.32 Change management: release {release} awaits approval: {}",
                gate.summary()
            ),
        ));
    }
    None
}

/// What the conditions say about the release recorded as serving, beyond its record.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ServingNote {
    #[default]
    None,
    /// The serving release met the rule in force when it was promoted, not the current one.
    EarlierRule {
        promoted_under: u32,
        required_now: u32,
    },
    /// The release recorded as serving cannot be proved approved: nothing is rendered from
    /// it, and the Deployment, when one still `running`, is left exactly as it is.
    Unproven {
        release: String,
        why: String,
        running: bool,
    },
}

/// The conditions of a ModelDeployment (pure).
pub fn desired_conditions(
    eval: &Evaluation,
    gate: &Promotion,
    bad_datasets: &[String],
    requested: &ReleaseRecord,
    serving: Option<&ReleaseRecord>,
    available: Option<(bool, String)>,
    note: &ServingNote,
) -> Vec<Desired> {
    let mut out = Vec::new();
    out.push(if bad_datasets.is_empty() {
        outcome_condition(
            eval,
            "DatasetsCompliant",
            "A.5.9",
            "DatasetsCompliant",
            "DatasetMissing",
        )
    } else {
        Desired::new(
            "DatasetsCompliant",
            false,
            "DatasetNotCompliant",
            format!(
                "training datasets not compliant: {}; the model is not rolled out",
                bad_datasets.join(", ")
            ),
        )
    });
    out.push(outcome_condition(
        eval,
        "Encrypted",
        "A.8.24",
        "Encrypted",
        "NotEncrypted",
    ));
    out.push(outcome_condition(
        eval,
        "GPUIsolated",
        "A.8.22",
        "Isolated",
        "NotIsolated",
    ));
    let short = |d: &str| d.get(..19).unwrap_or(d).to_string();
    out.push(if gate.required == 0 {
        Desired::new(
            "Approved",
            true,
            "NotRequired",
            "no approvals required in this environment",
        )
    } else if gate.requester.is_none() {
        Desired::new(
            "Approved",
            false,
            "RequesterUnknown",
            format!(
                "the requester of release {} is not recorded; approvals cannot count until it is re-established",
                short(&gate.release)
            ),
        )
    } else if let Some((who, reason)) = &gate.rejected {
        Desired::new(
            "Approved",
            false,
            "Rejected",
            format!("rejected by {who}: {reason}"),
        )
    } else if gate.approved() {
        Desired::new("Approved", true, "Approved", gate.summary())
    } else if let ServingNote::EarlierRule {
        promoted_under,
        required_now,
    } = note
        && serving.is_some_and(|s| s.fingerprint == requested.fingerprint)
    {
        Desired::new(
            "Approved",
            false,
            "RequirementRaised",
            format!(
                "A.8.32 Change management: release {} serves: it met the rule in force when it was promoted ({} required) but not the current one ({} required, {}); it keeps serving and is not rolled back, and any new release needs {}",
                short(&requested.fingerprint),
                approvals_phrase(*promoted_under, "", ""),
                approvals_phrase(*required_now, "", ""),
                gate.summary(),
                approvals_phrase(*required_now, "", ""),
            ),
        )
    } else {
        Desired::new("Approved", false, "AwaitingApproval", gate.summary())
    });
    let cause = hold_cause(eval, gate, bad_datasets);
    let describe = |r: &ReleaseRecord| format!("release {} ({})", short(&r.fingerprint), r.version);
    let promoted_under = match note {
        ServingNote::EarlierRule {
            promoted_under,
            required_now,
        } => format!(
            ", promoted under the rule then in force ({} required; {} now)",
            approvals_phrase(*promoted_under, "", ""),
            required_now
        ),
        _ => String::new(),
    };
    let unproven = match note {
        ServingNote::Unproven {
            release,
            why,
            running,
        } => Some(format!(
            "A.8.32 Change management: release {} recorded as serving cannot be proved approved ({why}); {}",
            short(release),
            if *running {
                "its Deployment is left exactly as it is (never rolled back, scaled down or re-applied by Annexa) until a release is approved"
            } else {
                "nothing is rendered from it"
            }
        )),
        _ => None,
    };
    let held = |cause: &Option<(&'static str, String)>| match cause {
        Some((reason, message)) => (*reason, message.clone()),
        None => ("Pending", "rolling out".to_string()),
    };
    out.push(match serving {
        Some(s) if s.fingerprint == requested.fingerprint => Desired::new(
            "Promoted",
            true,
            "Promoted",
            format!("serving {}{promoted_under}", describe(s)),
        ),
        Some(s) => {
            let (reason, why) = held(&cause);
            Desired::new(
                "Promoted",
                false,
                reason,
                format!(
                    "serving {}{promoted_under}; {} is pending: {why}",
                    describe(s),
                    describe(requested)
                ),
            )
        }
        None => {
            let (reason, why) = held(&cause);
            match &unproven {
                Some(unproven) => Desired::new(
                    "Promoted",
                    false,
                    "ServingUnproven",
                    format!("{unproven}; {} is held: {why}", describe(requested)),
                ),
                None => Desired::new(
                    "Promoted",
                    false,
                    reason,
                    format!("nothing serves; {} is held: {why}", describe(requested)),
                ),
            }
        }
    });
    if let Some((ok, message)) = available {
        out.push(Desired::new(
            "Available",
            ok,
            if ok {
                "MinimumReplicasAvailable"
            } else {
                "ReplicasUnavailable"
            },
            message,
        ));
    }
    out.push(match serving {
        Some(s) => Desired::new(
            "Ready",
            true,
            "Reconciled",
            format!("children applied; {} is rolled out", describe(s)),
        ),
        None => {
            let (reason, why) = held(&cause);
            match &unproven {
                Some(unproven) => Desired::new(
                    "Ready",
                    false,
                    "ServingUnproven",
                    format!("{unproven}; the requested release is held: {why}"),
                ),
                None => Desired::new("Ready", false, reason, format!("nothing serves yet: {why}")),
            }
        }
    });
    out.push(if eval.is_compliant() {
        Desired::new("Compliant", true, "AllControlsPass", "every control passes")
    } else {
        let messages: Vec<&str> = eval.findings.iter().map(|f| f.message.as_str()).collect();
        Desired::new("Compliant", false, "ControlsFailed", messages.join("; "))
    });
    out
}

/// The ModelDeployment Controller: its own kind and owned children (ServiceAccount,
/// Deployment, Service, NetworkPolicy, watched by Annexa's label so drift is put back), and
/// the objects its decisions read: its approvals, its training datasets, the policies and its
/// namespace.
pub fn controller(ctx: Arc<Context>, watches: &Watches) -> impl Future<Output = ()> + use<> {
    let (client, feeds) = (&watches.client, &watches.state.feeds);
    let (s, s2, s3) = (
        watches.state.clone(),
        watches.state.clone(),
        watches.state.clone(),
    );
    let controller = Controller::for_shared_stream(feeds.models.changes(), feeds.models.store())
        .with_config(watches.config.clone())
        .owns(
            Api::<Deployment>::all(client.clone()),
            watches.owned.clone(),
        )
        .owns(Api::<Service>::all(client.clone()), watches.owned.clone())
        .owns(
            Api::<NetworkPolicy>::all(client.clone()),
            watches.owned.clone(),
        )
        .owns(
            Api::<ServiceAccount>::all(client.clone()),
            watches.owned.clone(),
        )
        .watches_shared_stream(feeds.approvals.updates(), |a: Arc<ModelApproval>| {
            a.metadata
                .namespace
                .clone()
                .map(|ns| ObjectRef::<ModelDeployment>::new(&a.spec.model_deployment).within(&ns))
        })
        .watches_shared_stream(feeds.datasets.updates(), move |d| {
            let ns = d.namespace().unwrap_or_default();
            let name = d.name_any();
            refs(s.models.state_filter(|m| {
                m.metadata.namespace.as_deref() == Some(ns.as_str())
                    && m.spec.training_datasets.contains(&name)
            }))
        })
        .watches_shared_stream(feeds.policies.updates(), move |_| refs(s2.models.state()))
        .watches_shared_stream(feeds.namespaces.updates(), move |ns| {
            let ns = ns.name_any();
            refs(
                s3.models
                    .state_filter(|m| m.metadata.namespace.as_deref() == Some(ns.as_str())),
            )
        });
    drive(controller, reconcile, ctx, watches)
}

/// Reconciles a ModelDeployment: [`read`] the live Deployment when the plan needs it, [`plan`]
/// the children and what serves (pure), apply the children ([`apply_children`]), then
/// [`build_status`] (pure) and write it with the Events of its transitions.
pub async fn reconcile(model: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action> {
    let (model, ctx) = (&*model, &*ctx);
    let namespace = super::namespace_of(model)?;
    let now = Timestamp::now();
    let profile = ctx.state.profile(&namespace);
    let live = read(model, ctx, &profile, now).await?;
    let plan = plan(model, &*ctx.state, &profile, live.as_ref(), now);
    let (foreign, applied) = apply_children(ctx, &plan).await?;
    let status = build_status(model, &plan, &foreign, applied.as_ref(), now);
    write_status(model, ctx, &plan, status).await?;
    Ok(requeue_until(plan.gate.next_expiry(), now))
}

/// Whether the plan needs the live Deployment: to find what served before on it (status
/// holds no serving release: lost, or the first reconcile after an upgrade), or to say whether
/// it still runs (the release recorded in status cannot be proved approved).
pub fn needs_live_deployment(
    model: &ModelDeployment,
    approvals: &[Arc<ModelApproval>],
    profile: &Profile,
    now: Timestamp,
) -> bool {
    match model
        .status
        .as_ref()
        .and_then(|s| s.serving_release.as_deref())
    {
        None => true,
        Some(recorded) => matches!(
            standing(recorded, true, model, approvals, profile, now),
            Standing::Unproven(_)
        ),
    }
}

/// The read step: the live Deployment, once, when [`needs_live_deployment`] (None otherwise,
/// or when it does not exist). Everything else the plan reads comes from the shared cache.
async fn read(
    model: &ModelDeployment,
    ctx: &Context,
    profile: &Profile,
    now: Timestamp,
) -> Result<Option<Deployment>> {
    let namespace = model.namespace().unwrap_or_default();
    let approvals = ctx.state.approvals(&namespace, &model.name_any());
    if !needs_live_deployment(model, &approvals, profile, now) {
        return Ok(None);
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    deployments
        .get_opt(&model.name_any())
        .await
        .doing(Doing::Get, || {
            Target::new::<Deployment>(Some(&namespace), &model.name_any())
        })
}

/// What a ModelDeployment's reconcile decides before it writes anything (see [`plan`]).
pub struct Plan {
    pub eval: Evaluation,
    pub gate: Promotion,
    /// Training datasets whose own evaluation has Enforce findings.
    pub bad_datasets: Vec<String>,
    /// The release the spec requests, with its requester.
    pub requested: ReleaseRecord,
    /// The release that serves (None: nothing serves).
    pub serving: Option<ServingRelease>,
    /// The record of the verified release that served before, to tell a new promotion.
    pub previous: Option<ReleaseRecord>,
    pub note: ServingNote,
    pub classification: Classification,
    /// The Enforce controls the spec fails: no Deployment is written from it.
    pub denied: Vec<&'static str>,
    pub service_account: ServiceAccount,
    pub network_policy: NetworkPolicy,
    pub service: Service,
    /// The Deployment to apply (None: nothing may serve, or the spec fails an Enforce control;
    /// what runs now is then left as it is).
    pub deployment: Option<Deployment>,
}

impl Plan {
    /// The children to apply, in order (the Deployment last).
    pub fn children(&self) -> Vec<Child<'_>> {
        let mut children = vec![
            Child::of(&self.service_account),
            Child::of(&self.network_policy),
            Child::of(&self.service),
        ];
        if let Some(d) = &self.deployment {
            children.push(Child::of(d));
        }
        children
    }
}

/// The plan of a ModelDeployment (pure): which release serves and the children to apply, from
/// the cached objects (`lookup`: approvals, datasets), the live Deployment when [`read`] read
/// it, and `now`.
///
/// What served before is taken from status, else from the record on the live Deployment;
/// either is used only once re-verified against the approvals, because both can be written
/// by others. The record in status is the controller's own (no user role may write the status
/// subresource), so the rule it was promoted under is taken from it; the one on the
/// Deployment, which the team may edit, is held to the rule in force now.
pub fn plan(
    model: &ModelDeployment,
    lookup: &dyn Lookup,
    profile: &Profile,
    live: Option<&Deployment>,
    now: Timestamp,
) -> Plan {
    let namespace = model.namespace().unwrap_or_default();
    let eval = policy::evaluate(
        Governed::Model(model),
        &PolicyContext {
            profile,
            lookup,
            now,
            detail: policy::Detail::Outcomes,
        },
    );
    let approvals = lookup.approvals(&namespace, &model.name_any());
    let gate = promotion(model, &approvals, profile, now);
    let bad_datasets = noncompliant_datasets(model, lookup, profile, now);
    let requested = model.spec.release();
    let mut requested_record = requested.record();
    requested_record.requested_by = gate.requester.clone();

    let candidate = match model
        .status
        .as_ref()
        .and_then(|s| s.serving_release.as_deref())
    {
        Some(recorded) => Some((recorded.clone(), true)),
        None => live
            .and_then(|d| d.metadata.annotations.as_ref())
            .and_then(|a| a.get(RELEASE_RECORD_ANNOTATION))
            .and_then(|json| serde_json::from_str::<ServingRelease>(json).ok())
            .map(|r| (r, false)),
    };
    let (previous, previous_standing) = match candidate {
        Some((c, trusted)) => {
            let standing = standing(&c, trusted, model, &approvals, profile, now);
            (Some(c), Some(standing))
        }
        None => (None, None),
    };
    let unproven = match (&previous, &previous_standing) {
        (Some(p), Some(Standing::Unproven(why))) => {
            Some((p.record.fingerprint.clone(), why.clone()))
        }
        _ => None,
    };
    let previous = previous.filter(|_| unproven.is_none());
    let previous_record = previous.as_ref().map(|p| p.record.clone());
    // Gate findings are capped at Warn, so any denial here is another control failing.
    let allowed = gate.approved() && hold_cause(&eval, &gate, &bad_datasets).is_none();
    let serving = decide_serving(model, &gate, allowed, previous, now);
    let note = match (&serving, previous_standing, unproven) {
        (
            Some(s),
            Some(Standing::EarlierRule {
                promoted_under,
                required_now,
            }),
            _,
        ) if previous_record.as_ref() == Some(&s.record) => ServingNote::EarlierRule {
            promoted_under,
            required_now,
        },
        // What still runs is left as it is: say so only when it does.
        (None, _, Some((release, why))) => ServingNote::Unproven {
            release,
            why,
            running: live.is_some(),
        },
        _ => ServingNote::None,
    };

    let class = match &serving {
        Some(s) => {
            crate::policy::model_deployment::classification_of(
                &namespace,
                &s.spec.training_datasets,
                lookup,
            )
            .0
        }
        None => classification(model, lookup).0,
    };
    // The same engine call as the webhook: a spec that fails an Enforce control (wrong GPU
    // placement, a registry the policy refuses...) never reaches a Deployment, whether or not
    // the webhook saw it. What runs now is left as it is.
    let mut denied: Vec<&'static str> = eval.denials().map(|f| f.control).collect();
    denied.dedup();
    // What the Service and NetworkPolicy expose belongs to the release that serves; while
    // nothing serves, to the requested one (no pod answers yet).
    let exposed = serving.as_ref().map_or(&requested, |s| &s.spec);
    let service_account = build_service_account(model);
    let network_policy = build_network_policy(model, exposed);
    let service = build_service(model, exposed);
    let deployment = if denied.is_empty() {
        build_deployment(&Inputs {
            model,
            profile,
            classification: class,
            release: serving.as_ref(),
        })
    } else {
        None
    };
    Plan {
        eval,
        gate,
        bad_datasets,
        requested: requested_record,
        serving,
        previous: previous_record,
        note,
        classification: class,
        denied,
        service_account,
        network_policy,
        service,
        deployment,
    }
}

/// The apply step: the planned children, server-side applied, unless one of them collides with
/// an object this model does not own (then nothing is written). Returns those collisions and
/// the Deployment as applied (with drift put back).
async fn apply_children(ctx: &Context, plan: &Plan) -> Result<(Vec<String>, Option<Deployment>)> {
    let foreign = foreign_children(&ctx.client, &plan.children()).await?;
    if !foreign.is_empty() {
        return Ok((foreign, None));
    }
    apply(&ctx.client, &plan.service_account).await?;
    apply(&ctx.client, &plan.network_policy).await?;
    apply(&ctx.client, &plan.service).await?;
    let Some(d) = &plan.deployment else {
        return Ok((foreign, None));
    };
    let live = apply(&ctx.client, d).await?;
    let applied = match foreign_pod_items(d, &live) {
        Some(patch) => put_back(&ctx.client, &live, &patch).await?,
        None => live,
    };
    Ok((foreign, Some(applied)))
}

/// The status of a ModelDeployment after the apply (pure): conditions merged with the old
/// ones (`lastTransitionTime` moves only on a transition), the promotion records, what serves
/// and what is pending. `foreign`: the children that collide with objects it does not own;
/// `applied`: the Deployment as applied (None: none was).
pub fn build_status(
    model: &ModelDeployment,
    plan: &Plan,
    foreign: &[String],
    applied: Option<&Deployment>,
    now: Timestamp,
) -> ModelDeploymentStatus {
    let available = applied.map(|d| {
        let wanted = d.spec.replicas.unwrap_or(1);
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        (
            ready >= wanted,
            format!("{ready} of {wanted} replicas available"),
        )
    });
    let mut desired = desired_conditions(
        &plan.eval,
        &plan.gate,
        &plan.bad_datasets,
        &plan.requested,
        plan.serving.as_ref().map(|s| &s.record),
        available,
        &plan.note,
    );
    if !foreign.is_empty() {
        replace_ready(&mut desired, name_conflict(foreign));
    } else if !plan.denied.is_empty() {
        replace_ready(
            &mut desired,
            Desired::new(
                "Ready",
                false,
                "ControlsFailed",
                format!(
                    "the spec fails Enforce controls ({}): no Deployment is written from it",
                    plan.denied.join(", ")
                ),
            ),
        );
    }
    let old_conditions = super::old_conditions(model);
    let merged = conditions::merge(&old_conditions, &desired, model.metadata.generation, now);
    // Evidence (A.8.32): each promotion is recorded in status (bounded) and as an Event.
    let mut promotions = model
        .status
        .as_ref()
        .map(|s| s.promotions.clone())
        .unwrap_or_default();
    // The serving release's record is always in the list: a reconcile that read a status
    // older than its own last write (the cache lags the write) or a status that was lost
    // finds the release on the Deployment and must put its record back, not apply a list
    // without it.
    if let Some(s) = &plan.serving
        && !promotions.contains(&s.record)
    {
        promotions.push(s.record.clone());
        let excess = promotions.len().saturating_sub(MAX_PROMOTIONS);
        promotions.drain(..excess);
    }
    let requested = &plan.requested;
    let pending = plan
        .serving
        .as_ref()
        .is_none_or(|s| s.record.fingerprint != requested.fingerprint);
    let mut controls = plan.eval.control_results();
    if let ServingNote::EarlierRule { .. } = plan.note
        && !pending
        && let Some(approved) = desired.iter().find(|d| d.type_ == "Approved")
        && let Some(control) = controls.iter_mut().find(|c| c.id == "A.8.32")
    {
        // The requested release is the one that serves: not "held", serving under the rule
        // it was promoted with.
        control.message = approved.message.clone();
    }
    let gate = &plan.gate;
    ModelDeploymentStatus {
        common: CommonStatus {
            observed_generation: model.metadata.generation,
            conditions: merged,
            controls,
        },
        classification: Some(plan.classification),
        serving_digest: plan.serving.as_ref().map(|s| s.record.digest.clone()),
        pending_digest: pending.then(|| requested.digest.clone()),
        pending_release: pending.then(|| Box::new(requested.clone())),
        serving_release: plan.serving.clone().map(Box::new),
        promotions,
        // Bounded: status never grows with the number of approvals filed.
        approvals: gate
            .counted
            .iter()
            .take(20)
            .map(|c| ApprovalRecord {
                name: c.name.clone(),
                approver: c.approver.clone(),
                digest: gate.digest.clone(),
                release: gate.release.clone(),
                approved_at: c.approved_at.map(Time),
            })
            .collect(),
    }
}

/// The release promoted by this reconcile, for its Event: the one that serves, when it is not
/// in the promotion records yet and did not serve before. The Event is published once, when
/// the release is promoted.
pub fn newly_promoted<'p>(model: &ModelDeployment, plan: &'p Plan) -> Option<&'p ReleaseRecord> {
    let serving = &plan.serving.as_ref()?.record;
    let recorded = model
        .status
        .as_ref()
        .is_some_and(|s| s.promotions.contains(serving));
    (!recorded && plan.previous.as_ref() != Some(serving)).then_some(serving)
}

/// The status step: Events for the condition transitions and the promotion, then the status,
/// server-side applied, with a serving release written by someone else replaced whole (see
/// [`serving_release_patch`]).
async fn write_status(
    model: &ModelDeployment,
    ctx: &Context,
    plan: &Plan,
    status: ModelDeploymentStatus,
) -> Result<()> {
    let old_conditions = super::old_conditions(model);
    ctx.publish_transitions(model, &old_conditions, &status.common.conditions, |c| {
        c.status == "False" && c.type_ != "Available"
    })
    .await;
    if let Some(record) = newly_promoted(model, plan) {
        ctx.event(model, false, "ReleasePromoted", promotion_note(record))
            .await;
    }
    let namespace = model.namespace().unwrap_or_default();
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let recorded = model
        .status
        .as_ref()
        .and_then(|s| s.serving_release.as_deref());
    let replace = serving_release_patch(recorded, &status);
    apply_status(&api, model, &status).await?;
    if let Some(patch) = replace {
        let params = kube::api::PatchParams {
            field_manager: Some(super::FIELD_MANAGER.to_string()),
            ..kube::api::PatchParams::default()
        };
        api.patch_status(&model.name_any(), &params, &patch)
            .await
            .doing(Doing::WriteStatus, || Target::of(model))?;
    }
    Ok(())
}

/// Server-side apply leaves in place what another field manager wrote: a `servingRelease`
/// written by someone else would stay in status (and in `kubectl get md`) although nothing is
/// rendered from it, and stray fields could be added to the controller's own record. Whenever
/// the recorded serving release differs from the one decided, it is replaced whole (JSON
/// patch `add`) or removed with its digest (merge patch `null`), after the apply.
pub fn serving_release_patch(
    recorded: Option<&ServingRelease>,
    status: &ModelDeploymentStatus,
) -> Option<kube::api::Patch<serde_json::Value>> {
    use json_patch::jsonptr::PointerBuf;
    use json_patch::{AddOperation, PatchOperation};
    if recorded == status.serving_release.as_deref() {
        return None;
    }
    Some(match &status.serving_release {
        Some(release) => {
            let add = |field: &str, value: serde_json::Value| {
                PatchOperation::Add(AddOperation {
                    path: PointerBuf::from_tokens(["status", field]),
                    value,
                })
            };
            kube::api::Patch::Json(json_patch::Patch(vec![
                add("servingRelease", serde_json::json!(release)),
                add("servingDigest", serde_json::json!(release.record.digest)),
            ]))
        }
        None => kube::api::Patch::Merge(serde_json::json!({
            "status": {"servingRelease": null, "servingDigest": null}
        })),
    })
}

/// The Event note of a promotion: release, requester, approvers, time.
pub fn promotion_note(record: &ReleaseRecord) -> String {
    format!(
        "A.8.32 release {} (version {}, digest {}, image {}) promoted at {}; requested by {}, approved by {}",
        record.fingerprint,
        record.version,
        record.digest,
        record.image,
        record
            .promoted_at
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        record.requested_by.as_deref().unwrap_or("(not required)"),
        if record.approvers.is_empty() {
            "nobody (no approvals required)".to_string()
        } else {
            record.approvers.join(", ")
        }
    )
}
