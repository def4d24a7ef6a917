//! Rules for workloads: Pods and the pod templates of Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job and CronJob (A.5.18, A.8.2, A.8.9, A.8.19, A.8.22). Evaluated in namespaces
//! labelled `annexa.dev/enforce=true`. Containers, init containers and ephemeral containers
//! (`kubectl debug`) are checked alike; what counts as a GPU request is in [`super::gpu`].
//!
//! The rules read views (`PodView`, `ContainerView`, ...): only the fields the rules read, not
//! the full typed Pod. `decode::workload` reads objects into them.

use super::catalogue::{A_5_18, A_8_2, A_8_9, A_8_19, A_8_22};
use super::duration::format_duration;
use super::gpu;
use super::pod_access::{self, ClassSource};
use super::{Context, Evaluation, ImageRef, ObjectRef, Recorder};
use crate::api::{CLASSIFICATION_LABEL, Classification, GpuPool};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A kind whose pods Annexa checks: the API group it is served under (version `v1`) and the
/// path of its pod template (none for a Pod).
#[derive(Debug, PartialEq, Eq)]
pub struct WorkloadKind {
    pub kind: &'static str,
    pub group: &'static str,
    pub template: &'static [&'static str],
}

impl WorkloadKind {
    /// Whether `api_version` is the kind's group at version `v1` (`v1`, `apps/v1`, `batch/v1`).
    pub fn has_api_version(&self, api_version: &str) -> bool {
        match api_version.split_once('/') {
            None => self.group.is_empty() && api_version == "v1",
            Some((group, version)) => group == self.group && version == "v1",
        }
    }

    /// Field path of the pod spec: `spec`, `spec.template.spec`.
    pub fn spec_path(&self) -> String {
        let mut path = self.template.join(".");
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str("spec");
        path
    }
}

/// The kinds whose pods Annexa checks, listed once: decoding, admission routing and the rules
/// follow this table.
pub const WORKLOAD_KINDS: &[WorkloadKind] = &[
    WorkloadKind {
        kind: "Pod",
        group: "",
        template: &[],
    },
    WorkloadKind {
        kind: "Deployment",
        group: "apps",
        template: &["spec", "template"],
    },
    WorkloadKind {
        kind: "StatefulSet",
        group: "apps",
        template: &["spec", "template"],
    },
    WorkloadKind {
        kind: "DaemonSet",
        group: "apps",
        template: &["spec", "template"],
    },
    WorkloadKind {
        kind: "ReplicaSet",
        group: "apps",
        template: &["spec", "template"],
    },
    WorkloadKind {
        kind: "Job",
        group: "batch",
        template: &["spec", "template"],
    },
    WorkloadKind {
        kind: "CronJob",
        group: "batch",
        template: &["spec", "jobTemplate", "spec", "template"],
    },
];

/// The workload kind named `kind`, if Annexa checks its pods.
pub fn workload_kind(kind: &str) -> Option<&'static WorkloadKind> {
    WORKLOAD_KINDS.iter().find(|w| w.kind == kind)
}

pub fn is_workload_kind(kind: &str) -> bool {
    workload_kind(kind).is_some()
}

/// The fields of a PodSpec the rules read.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    #[serde(default)]
    pub containers: Vec<ContainerView>,
    #[serde(default)]
    pub init_containers: Vec<ContainerView>,
    /// Added to a running pod through `pods/ephemeralcontainers` (`kubectl debug`).
    #[serde(default)]
    pub ephemeral_containers: Vec<ContainerView>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub affinity: Option<AffinityView>,
    /// Dynamic Resource Allocation claims of the pod.
    #[serde(default)]
    pub resource_claims: Vec<PodResourceClaimView>,
    #[serde(default)]
    pub tolerations: Vec<TolerationView>,
    #[serde(default)]
    pub runtime_class_name: Option<String>,
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(default, rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    #[serde(default)]
    pub volumes: Vec<VolumeView>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`.
    #[serde(default)]
    pub service_account: Option<String>,
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub resources: Option<ResourcesView>,
    #[serde(default)]
    pub security_context: Option<SecurityContextView>,
    #[serde(default)]
    pub env: Vec<pod_access::EnvVarView>,
    #[serde(default)]
    pub env_from: Vec<pod_access::EnvFromView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PodResourceClaimView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub resource_claim_name: Option<String>,
    #[serde(default)]
    pub resource_claim_template_name: Option<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AffinityView {
    #[serde(default)]
    pub node_affinity: Option<NodeAffinityView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinityView {
    #[serde(default)]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelectorView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorView {
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTermView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTermView {
    #[serde(default)]
    pub match_expressions: Vec<NodeRequirementView>,
    #[serde(default)]
    pub match_fields: Vec<NodeRequirementView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
pub struct NodeRequirementView {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
pub struct ResourcesView {
    #[serde(default)]
    pub limits: BTreeMap<String, Value>,
    #[serde(default)]
    pub requests: BTreeMap<String, Value>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContextView {
    #[serde(default)]
    pub privileged: Option<bool>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TolerationView {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub effect: Option<String>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct VolumeView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub host_path: Option<Value>,
    #[serde(default)]
    pub projected: Option<ProjectedView>,
    #[serde(default)]
    pub secret: Option<pod_access::SecretVolumeView>,
    #[serde(default)]
    pub persistent_volume_claim: Option<pod_access::ClaimVolumeView>,
    #[serde(default)]
    pub csi: Option<pod_access::CsiVolumeView>,
    #[serde(default)]
    pub ephemeral: Option<pod_access::EphemeralVolumeView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
pub struct ProjectedView {
    #[serde(default)]
    pub sources: Vec<ProjectionView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionView {
    #[serde(default)]
    pub service_account_token: Option<TokenProjectionView>,
    #[serde(default)]
    pub secret: Option<pod_access::NameRef>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TokenProjectionView {
    #[serde(default)]
    pub expiration_seconds: Option<i64>,
}

/// A pod or pod template, reduced to what the rules read.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Labels of the pod (the template's labels for controllers).
    pub labels: BTreeMap<String, String>,
    pub pod: PodView,
    /// Field path prefix of the pod spec, e.g. `spec.template.spec`.
    pub spec_path: String,
}

impl Workload {
    /// Init, regular and ephemeral containers, with the list each is in.
    pub(crate) fn all_containers(
        &self,
    ) -> impl Iterator<Item = (&'static str, usize, &ContainerView)> {
        fn list<'w>(
            name: &'static str,
            containers: &'w [ContainerView],
        ) -> impl Iterator<Item = (&'static str, usize, &'w ContainerView)> {
            containers
                .iter()
                .enumerate()
                .map(move |(i, c)| (name, i, c))
        }
        list("initContainers", &self.pod.init_containers)
            .chain(list("containers", &self.pod.containers))
            .chain(list("ephemeralContainers", &self.pod.ephemeral_containers))
    }
}

pub(crate) fn quantity_nonzero(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f > 0.0),
        // A quantity such as "1", "0.0", "500m" or "2k": zero whatever its suffix.
        Value::String(s) => {
            let number = s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic());
            number
                .parse::<f64>()
                .map_or(!number.is_empty(), |f| f > 0.0)
        }
        _ => false,
    }
}

/// How messages name a container of a list.
fn container_noun(list: &str) -> &'static str {
    if list == "ephemeralContainers" {
        "ephemeral container"
    } else {
        "container"
    }
}

/// Whether a toleration tolerates the pool's taint (Kubernetes toleration semantics).
fn tolerates(t: &TolerationView, pool: &GpuPool) -> bool {
    let Some(taint) = &pool.taint else {
        return false;
    };
    let exists = t.operator.as_deref() == Some("Exists");
    let key_ok = match t.key.as_deref() {
        None | Some("") => exists,
        Some(k) => k == taint.key,
    };
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect.as_str());
    let value_ok = exists
        || t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default();
    key_ok && effect_ok && value_ok
}

pub fn evaluate(w: &Workload, ctx: &Context<'_>) -> Evaluation {
    let profile = ctx.profile;
    let kind: &'static str = workload_kind(&w.kind).map_or("Workload", |k| k.kind);
    let mut rec = Recorder::new(
        "Workload",
        ObjectRef::new(kind, Some(&w.namespace), &w.name),
        ctx,
    );
    let what = format!("{} {:?}", kind.to_ascii_lowercase(), w.name);
    let sp = &w.spec_path;
    let sa = pod_access::service_account(w);

    // Who may run the pod: dataset access (A.8.3) and agent identity (A.8.12, A.5.15).
    let floor = pod_access::dataset_access(w, sa, &what, &mut rec, ctx);
    pod_access::agent_identity(w, sa, &what, &mut rec, ctx);
    // Classification (A.5.12): the label's, raised by the data the pod reads.
    let label = w.labels.get(CLASSIFICATION_LABEL).map(String::as_str);
    let labelled = label.map_or(Some(Classification::Internal), Classification::parse);
    let class = pod_access::classification(labelled, floor.as_ref());
    pod_access::note_classification(&mut rec, label, floor.as_ref(), class);

    // Images: registries (A.8.19) and digests (A.8.9). Ephemeral (debug) containers may also
    // come from the policy's debug registries.
    for (list, i, c) in w.all_containers() {
        let image = c.image.as_deref().unwrap_or_default();
        let noun = container_noun(list);
        let reference = ImageRef::parse(image);
        let debug_allowed = list == "ephemeralContainers"
            && !profile.debug_registries.is_empty()
            && reference
                .registry_check(Some(&profile.debug_registries))
                .is_ok();
        let allowed = profile.allowed_registries.as_deref();
        if let (false, Err(refusal)) = (debug_allowed, reference.registry_check(allowed)) {
            rec.fail(
                &A_8_19,
                format!("{sp}.{list}[{i}].image"),
                format_args!(
                    "{what} {noun} {:?} uses image {image:?}, which {}",
                    c.name,
                    refusal.detail(allowed.unwrap_or_default())
                ),
            );
        }
        if profile.digest_required() && !reference.pinned() {
            rec.fail(&A_8_9, format!("{sp}.{list}[{i}].image"), format_args!(
                "{what} {noun} {:?} uses image {image:?}, which is not pinned by digest (@sha256:)",
                c.name
            ));
        }
    }
    if !profile.digest_required() {
        rec.not_applicable(&A_8_9, "digests are not required here");
    }

    // GPU placement (A.8.22) and privilege (A.8.2), whatever the way to the GPU.
    let pinned = gpu::pinned_gpu_nodes(w, profile, ctx.lookup);
    if let Some(request) = gpu::gpu_request(w, profile, ctx.lookup, &pinned) {
        let via = request.via();
        if let (Some(v), None) = (label, labelled) {
            // The labels are the template's for controllers: `spec.template.metadata`.
            let metadata = pod_access::metadata_path(sp);
            rec.fail(&A_8_22, format!("{metadata}.labels[{CLASSIFICATION_LABEL}]"), format_args!(
                "{what} has classification {v:?}, which is not Public, Internal, Confidential or Restricted"
            ));
        }
        if let Some(class) = class {
            // Where the classification came from, when the data decided it.
            let source = ClassSource {
                label,
                floor: floor.as_ref(),
                class,
            };
            match profile.pool_for(class) {
                None => rec.fail(&A_8_22, sp.clone(), format_args!(
                    "{what} requests GPUs{via} for {class} data{source}, but no GPU pool serves {class} or stricter data"
                )),
                Some(pool) => {
                    // A stricter pool than the data's: say why it is the one asked for.
                    let nearest = if pool.classification == class {
                        String::new()
                    } else {
                        format!(", the nearest stricter pool since none serves {class} data")
                    };
                    for (k, v) in &pool.node_selector {
                        if w.pod.node_selector.get(k) != Some(v) {
                            rec.fail(&A_8_22, format!("{sp}.nodeSelector"), format_args!(
                                "{what} requests GPUs{via} for {class} data{source} but does not select the {} pool ({k}={v}){nearest}",
                                pool.classification
                            ));
                        }
                    }
                    if let Some(taint) = &pool.taint
                        && !w.pod.tolerations.iter().any(|t| tolerates(t, pool)) {
                            rec.fail(&A_8_22, format!("{sp}.tolerations"), format_args!(
                                "{what} requests GPUs{via} for {class} data{source} but does not tolerate the {} pool taint {}={}:{}{nearest}",
                                pool.classification, taint.key, taint.value.as_deref().unwrap_or_default(), taint.effect.as_str()
                            ));
                        }
                    if let Some(rc) = &pool.runtime_class_name
                        && w.pod.runtime_class_name.as_ref() != Some(rc) {
                            rec.fail(&A_8_22, format!("{sp}.runtimeClassName"), format_args!(
                                "{what} requests GPUs{via} for {class} data{source} but does not use runtimeClassName {rc:?} of the {} pool{nearest}",
                                pool.classification
                            ));
                        }
                    // Pinned past the scheduler to a node of another pool.
                    for p in &pinned {
                        if let Some(other) = p.pool
                            && other.classification != pool.classification
                        {
                            rec.fail(&A_8_22, p.field.clone(), format_args!(
                                "{what} is pinned to node {:?} of the {} GPU pool, but its {class} data belongs on the {} pool",
                                p.node, other.classification, pool.classification
                            ));
                        }
                    }
                }
            }
        }
        for (list, i, c) in w.all_containers() {
            if c.security_context.as_ref().and_then(|s| s.privileged) == Some(true) {
                rec.fail(
                    &A_8_2,
                    format!("{sp}.{list}[{i}].securityContext.privileged"),
                    format_args!(
                        "{what} requests GPUs{via} and {} {:?} is privileged",
                        container_noun(list),
                        c.name
                    ),
                );
            }
        }
        for (field, value) in [
            ("hostNetwork", w.pod.host_network),
            ("hostPID", w.pod.host_pid),
            ("hostIPC", w.pod.host_ipc),
        ] {
            if value == Some(true) {
                rec.fail(
                    &A_8_2,
                    format!("{sp}.{field}"),
                    format_args!("{what} requests GPUs{via} and uses {field}"),
                );
            }
        }
        for (i, v) in w.pod.volumes.iter().enumerate() {
            if v.host_path.is_some() {
                rec.fail(
                    &A_8_2,
                    format!("{sp}.volumes[{i}].hostPath"),
                    format_args!(
                        "{what} requests GPUs{via} and mounts hostPath volume {:?}",
                        v.name
                    ),
                );
            }
        }
    } else {
        rec.not_applicable(&A_8_2, "requests no GPU");
        for (i, t) in w.pod.tolerations.iter().enumerate() {
            if let Some(pool) = profile.gpu_pools.values().find(|p| tolerates(t, p)) {
                rec.fail(
                    &A_8_22,
                    format!("{sp}.tolerations[{i}]"),
                    format_args!(
                        "{what} requests no GPU but tolerates the taint of the {} GPU pool",
                        pool.classification
                    ),
                );
            }
        }
        // No way to the GPUs around the request: a pool's runtime, or the variables with
        // which a GPU runtime exposes the node's devices.
        if let Some(rc) = &w.pod.runtime_class_name
            && let Some(pool) = profile
                .gpu_pools
                .values()
                .find(|p| p.runtime_class_name.as_ref() == Some(rc))
        {
            rec.fail(
                &A_8_22,
                format!("{sp}.runtimeClassName"),
                format_args!(
                    "{what} requests no GPU but uses runtimeClassName {rc:?} of the {} GPU pool",
                    pool.classification
                ),
            );
        }
        for (list, i, c) in w.all_containers() {
            for (j, variable) in gpu::visibility_variables(&c.env) {
                rec.fail(
                    &A_8_22,
                    format!("{sp}.{list}[{i}].env[{j}]"),
                    format_args!(
                        "{what} requests no GPU but {} {:?} sets {variable}, which makes a GPU runtime expose the node's GPUs",
                        container_noun(list),
                        c.name
                    ),
                );
            }
        }
    }

    // A.5.18: agent pods use short-lived tokens only.
    match ctx.lookup.agent_for_service_account(&w.namespace, sa) {
        None => rec.not_applicable(&A_5_18, "not an agent pod"),
        Some(agent) => {
            let agent_name = agent.metadata.name.as_deref().unwrap_or_default();
            if w.pod.automount_service_account_token == Some(true) {
                rec.fail(
                    &A_5_18,
                    format!("{sp}.automountServiceAccountToken"),
                    format_args!(
                        "{what} runs as agent {agent_name:?} and automounts a service-account token"
                    ),
                );
            }
            let ttl = agent
                .spec
                .token_ttl
                .as_deref()
                .and_then(|t| super::duration::parse_duration(t).ok())
                .unwrap_or(profile.max_token_ttl);
            for (i, v) in w.pod.volumes.iter().enumerate() {
                for (j, source) in v
                    .projected
                    .iter()
                    .flat_map(|p| p.sources.iter())
                    .enumerate()
                {
                    if let Some(token) = &source.service_account_token {
                        let secs = token.expiration_seconds.unwrap_or(3_600);
                        if secs > ttl.as_secs() {
                            rec.fail(&A_5_18, format!("{sp}.volumes[{i}].projected.sources[{j}].serviceAccountToken.expirationSeconds"), format_args!(
                                "{what} runs as agent {agent_name:?} and projects a token valid for {secs}s, longer than its TTL of {}",
                                format_duration(ttl)
                            ));
                        }
                    }
                }
            }
        }
    }
    rec.finish()
}
