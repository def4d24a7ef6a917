//! Who a pod runs as, held against what it reads and what it is: the workload rules for
//! dataset access (A.8.3, with the classification that follows the data, A.5.12) and for the
//! identity of agent pods (A.8.12, A.5.15).
//!
//! A pod reads a Secret or mounts a PersistentVolumeClaim of its namespace through its spec,
//! and the kubelet fetches them with its own credentials: no RBAC check ever looks at the
//! pod's ServiceAccount. So the dataset's `access.allowedServiceAccounts` holds only if the
//! pods that reference the dataset's credentials Secret or claim run as one of those accounts.
//!
//! An agent is known by two things, its ServiceAccount (what its Role grants) and its pods'
//! labels (what its egress NetworkPolicy selects, [`AgentPolicy::pod_selector`]). Both hold
//! only if they pick the same pods.

use super::catalogue::{A_5_12, A_5_15, A_8_3, A_8_12};
use super::workload::{ContainerView, Workload};
use super::{Context, Recorder, selector_matches};
use crate::api::{AgentPolicy, CLASSIFICATION_LABEL, Classification, TrainingDataset};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use std::fmt::{self, Write as _};
use std::sync::Arc;

/// `env[]` of a container.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarView {
    /// Name and literal value: the GPU rules read the device-visibility variables.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_from: Option<EnvVarSourceView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSourceView {
    #[serde(default)]
    pub secret_key_ref: Option<NameRef>,
}

/// `envFrom[]` of a container.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromView {
    #[serde(default)]
    pub secret_ref: Option<NameRef>,
}

/// Any `{name: ...}` reference (secretKeyRef, secretRef, a projected secret,
/// nodePublishSecretRef).
#[derive(Deserialize, Default, Debug, Clone)]
pub struct NameRef {
    #[serde(default)]
    pub name: Option<String>,
}

/// A `secret` volume.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolumeView {
    #[serde(default)]
    pub secret_name: Option<String>,
}

/// A `persistentVolumeClaim` volume.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ClaimVolumeView {
    #[serde(default)]
    pub claim_name: Option<String>,
}

/// A `csi` volume: its driver reads `nodePublishSecretRef` (object-store drivers mount a
/// bucket with it).
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CsiVolumeView {
    #[serde(default)]
    pub node_publish_secret_ref: Option<NameRef>,
}

/// A generic `ephemeral` volume: its claim may be provisioned from an existing claim.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralVolumeView {
    #[serde(default)]
    pub volume_claim_template: Option<ClaimTemplateView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
pub struct ClaimTemplateView {
    #[serde(default)]
    pub spec: Option<ClaimSpecView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ClaimSpecView {
    #[serde(default)]
    pub data_source: Option<TypedRefView>,
    #[serde(default)]
    pub data_source_ref: Option<TypedRefView>,
}

#[derive(Deserialize, Default, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct TypedRefView {
    #[serde(default)]
    pub api_group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl TypedRefView {
    /// The claim this data source names, if it names a PersistentVolumeClaim (core group).
    fn claim(&self) -> Option<&str> {
        (self.kind.as_deref() == Some("PersistentVolumeClaim")
            && self.api_group.as_deref().unwrap_or_default().is_empty())
        .then_some(self.name.as_deref())
        .flatten()
        .filter(|n| !n.is_empty())
    }
}

/// What a pod reference reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// A Secret (a dataset's `credentialsSecret`).
    Secret,
    /// A PersistentVolumeClaim (a dataset's `source.pvc`).
    Claim,
}

/// One reference of a pod spec to a Secret or a PersistentVolumeClaim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataRead {
    pub source: DataSource,
    /// Namespace of the Secret or claim (a data source may name another namespace).
    pub namespace: String,
    pub name: String,
    /// Field path of the reference, e.g. `spec.containers[0].envFrom[1].secretRef.name`.
    pub path: String,
    /// How it is read, for messages: `reads`, `mounts`, `clones`.
    pub how: &'static str,
}

/// The ServiceAccount a pod runs as: `serviceAccountName`, else the deprecated
/// `serviceAccount` (the API server copies it over), else `default`.
pub fn service_account(w: &Workload) -> &str {
    [&w.pod.service_account_name, &w.pod.service_account]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .find(|sa| !sa.is_empty())
        .unwrap_or("default")
}

/// Field path of the pod's metadata (`metadata` for a Pod, `spec.template.metadata` for a
/// Deployment).
pub(crate) fn metadata_path(spec_path: &str) -> String {
    spec_path
        .strip_suffix("spec")
        .map_or_else(|| "metadata".to_string(), |p| format!("{p}metadata"))
}

/// Every Secret and PersistentVolumeClaim the pod spec references, in every form the kubelet
/// resolves without asking RBAC: `env[].valueFrom.secretKeyRef`, `envFrom[].secretRef` (of
/// init, regular and ephemeral containers), `secret` volumes, `secret` sources of projected
/// volumes, a CSI volume's `nodePublishSecretRef`, `persistentVolumeClaim` volumes, and generic
/// ephemeral volumes provisioned from a claim (`dataSource`, `dataSourceRef`).
pub fn data_reads(w: &Workload) -> Vec<DataRead> {
    let sp = &w.spec_path;
    let mut reads = Vec::new();
    let mut push = |source, namespace: Option<&str>, name: Option<&String>, path, how| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            reads.push(DataRead {
                source,
                namespace: namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&w.namespace)
                    .to_string(),
                name: name.clone(),
                path,
                how,
            });
        }
    };
    let lists: [(&str, &[ContainerView]); 3] = [
        ("initContainers", &w.pod.init_containers),
        ("containers", &w.pod.containers),
        ("ephemeralContainers", &w.pod.ephemeral_containers),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            for (j, env) in c.env.iter().enumerate() {
                let secret = env
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref());
                push(
                    DataSource::Secret,
                    None,
                    secret.and_then(|s| s.name.as_ref()),
                    format!("{sp}.{list}[{i}].env[{j}].valueFrom.secretKeyRef.name"),
                    "reads",
                );
            }
            for (j, from) in c.env_from.iter().enumerate() {
                push(
                    DataSource::Secret,
                    None,
                    from.secret_ref.as_ref().and_then(|s| s.name.as_ref()),
                    format!("{sp}.{list}[{i}].envFrom[{j}].secretRef.name"),
                    "reads",
                );
            }
        }
    }
    for (i, v) in w.pod.volumes.iter().enumerate() {
        let at = format!("{sp}.volumes[{i}]");
        if let Some(secret) = &v.secret {
            push(
                DataSource::Secret,
                None,
                secret.secret_name.as_ref(),
                format!("{at}.secret.secretName"),
                "mounts",
            );
        }
        for (j, source) in v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter())
            .enumerate()
        {
            push(
                DataSource::Secret,
                None,
                source.secret.as_ref().and_then(|s| s.name.as_ref()),
                format!("{at}.projected.sources[{j}].secret.name"),
                "mounts",
            );
        }
        if let Some(csi) = &v.csi {
            push(
                DataSource::Secret,
                None,
                csi.node_publish_secret_ref
                    .as_ref()
                    .and_then(|s| s.name.as_ref()),
                format!("{at}.csi.nodePublishSecretRef.name"),
                "mounts",
            );
        }
        if let Some(claim) = &v.persistent_volume_claim {
            push(
                DataSource::Claim,
                None,
                claim.claim_name.as_ref(),
                format!("{at}.persistentVolumeClaim.claimName"),
                "mounts",
            );
        }
        let template = v
            .ephemeral
            .as_ref()
            .and_then(|e| e.volume_claim_template.as_ref())
            .and_then(|t| t.spec.as_ref());
        if let Some(spec) = template {
            for (field, source) in [
                ("dataSource", &spec.data_source),
                ("dataSourceRef", &spec.data_source_ref),
            ] {
                if let Some(source) = source
                    && let Some(claim) = source.claim()
                {
                    let claim = claim.to_string();
                    push(
                        DataSource::Claim,
                        source.namespace.as_deref(),
                        Some(&claim),
                        format!("{at}.ephemeral.volumeClaimTemplate.spec.{field}.name"),
                        "clones",
                    );
                }
            }
        }
    }
    reads
}

/// The datasets a reference reads (an index lookup by namespace and name).
pub fn datasets_read(read: &DataRead, ctx: &Context<'_>) -> Vec<Arc<TrainingDataset>> {
    match read.source {
        DataSource::Secret => ctx.lookup.datasets_by_secret(&read.namespace, &read.name),
        DataSource::Claim => ctx.lookup.datasets_by_claim(&read.namespace, &read.name),
    }
}

/// Whether a pod of `namespace` running as `sa` may read the dataset.
pub fn may_read(dataset: &TrainingDataset, namespace: &str, sa: &str) -> bool {
    dataset.metadata.namespace.as_deref() == Some(namespace)
        && dataset
            .spec
            .access
            .as_ref()
            .is_some_and(|a| a.allowed_service_accounts.iter().any(|s| s == sa))
}

/// The dataset that sets a pod's classification floor (A.5.12): the most highly classified one
/// it reads.
#[derive(Clone, Debug)]
pub struct DataFloor {
    pub class: Classification,
    pub dataset: String,
    pub path: String,
}

/// The A.8.3 rule: every dataset the pod reads allows the pod's ServiceAccount. Returns the
/// classification floor the data sets.
pub(crate) fn dataset_access(
    w: &Workload,
    sa: &str,
    what: &str,
    rec: &mut Recorder<'_>,
    ctx: &Context<'_>,
) -> Option<DataFloor> {
    let mut floor: Option<DataFloor> = None;
    let mut allowed_reads: Vec<String> = Vec::new();
    for read in data_reads(w) {
        for dataset in datasets_read(&read, ctx) {
            let name = dataset.metadata.name.as_deref().unwrap_or_default();
            let class = dataset.spec.classification;
            if floor.as_ref().is_none_or(|f| class > f.class) {
                floor = Some(DataFloor {
                    class,
                    dataset: name.to_string(),
                    path: read.path.clone(),
                });
            }
            if may_read(&dataset, &w.namespace, sa) {
                if !allowed_reads.iter().any(|d| d == name) {
                    allowed_reads.push(name.to_string());
                }
                continue;
            }
            let what_it_is = match read.source {
                DataSource::Secret => "the credentials",
                DataSource::Claim => "the data",
            };
            let object = match read.source {
                DataSource::Secret => "Secret",
                DataSource::Claim => "PersistentVolumeClaim",
            };
            rec.fail(
                &A_8_3,
                read.path.clone(),
                format_args!(
                    "{what} runs as service account {sa:?} and {} {object} {:?} ({}), {what_it_is} of dataset {name:?} ({class}), {}",
                    read.how,
                    read.name,
                    read.path,
                    Readers(&dataset, &w.namespace)
                ),
            );
        }
    }
    if floor.is_none() {
        rec.not_applicable(
            &A_8_3,
            "reads no dataset's credentials Secret or PersistentVolumeClaim",
        );
    } else {
        rec.pass_note(
            &A_8_3,
            format_args!(
                "runs as {sa:?}, allowed to read dataset(s) {}",
                allowed_reads.join(", ")
            ),
        );
    }
    floor
}

/// "which only [...] may read", for messages.
struct Readers<'a>(&'a TrainingDataset, &'a str);

impl fmt::Display for Readers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Readers(dataset, namespace) = self;
        if dataset.metadata.namespace.as_deref() != Some(namespace) {
            return write!(
                f,
                "which lives in namespace {:?}: only its own service accounts may read it",
                dataset.metadata.namespace.as_deref().unwrap_or_default()
            );
        }
        let allowed = dataset
            .spec
            .access
            .as_ref()
            .map(|a| a.allowed_service_accounts.as_slice())
            .unwrap_or_default();
        if allowed.is_empty() {
            f.write_str(
                "which no service account may read (its access.allowedServiceAccounts is empty)",
            )
        } else {
            write!(f, "which only {allowed:?} may read")
        }
    }
}

/// The classification a pod is evaluated under (A.5.12): its label's (Internal without one),
/// raised to the highest of the datasets it reads. None when the label is invalid and no
/// dataset decides.
pub(crate) fn classification(
    labelled: Option<Classification>,
    floor: Option<&DataFloor>,
) -> Option<Classification> {
    match (labelled, floor) {
        (Some(l), Some(f)) => Some(l.max(f.class)),
        (l, f) => l.or(f.map(|f| f.class)),
    }
}

/// Where the classification came from, appended to GPU placement messages when the data, not
/// the label, decides it: ` (from dataset "claims-raw" read at <path>; its label says Public)`.
pub(crate) struct ClassSource<'a> {
    pub label: Option<&'a str>,
    pub floor: Option<&'a DataFloor>,
    pub class: Classification,
}

impl ClassSource<'_> {
    /// Whether a dataset raised the classification above the label's.
    fn data_decides(&self) -> bool {
        self.floor.is_some_and(|f| {
            f.class == self.class
                && self
                    .label
                    .and_then(Classification::parse)
                    .unwrap_or(Classification::Internal)
                    < f.class
        })
    }
}

impl fmt::Display for ClassSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(floor) = self.floor.filter(|_| self.data_decides()) else {
            return match self.label {
                Some(_) => write!(
                    f,
                    " (classified {} by label {CLASSIFICATION_LABEL})",
                    self.class
                ),
                None => write!(f, " (no {CLASSIFICATION_LABEL} label: Internal)"),
            };
        };
        write!(
            f,
            " (from dataset {:?} read at {}; ",
            floor.dataset, floor.path
        )?;
        match self.label {
            Some(label) => write!(f, "its label says {label:?})"),
            None => f.write_str("it has no classification label)"),
        }
    }
}

/// Records the A.5.12 outcome of a workload: the classification it is held to and why.
pub(crate) fn note_classification(
    rec: &mut Recorder<'_>,
    label: Option<&str>,
    floor: Option<&DataFloor>,
    class: Option<Classification>,
) {
    let Some(class) = class else {
        rec.pass_note(&A_5_12, "classification label is invalid (see A.8.22)");
        return;
    };
    let source = ClassSource {
        label,
        floor,
        class,
    };
    if source.data_decides() {
        rec.pass_note(&A_5_12, format_args!("classified {class}{source}"));
    } else {
        let mut note = format!("classified {class}");
        match label {
            Some(_) => {
                let _ = write!(note, " by label {CLASSIFICATION_LABEL}");
            }
            None => {
                let _ = write!(note, " (no {CLASSIFICATION_LABEL} label: Internal)");
            }
        }
        if let Some(floor) = floor {
            let _ = write!(
                note,
                "; reads dataset {:?} ({})",
                floor.dataset, floor.class
            );
        }
        rec.pass_note(&A_5_12, note);
    }
}

/// A selector in the short form messages use: `app=support-agent,tier in (a, b)`.
pub struct SelectorText<'a>(pub &'a LabelSelector);

impl fmt::Display for SelectorText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str(",")
            }
        };
        for (k, v) in self.0.match_labels.iter().flatten() {
            sep(f)?;
            write!(f, "{k}={v}")?;
        }
        for e in self.0.match_expressions.iter().flatten() {
            sep(f)?;
            let values = e.values.as_deref().unwrap_or_default().join(", ");
            match e.operator.as_str() {
                "Exists" => write!(f, "{}", e.key)?,
                "DoesNotExist" => write!(f, "!{}", e.key)?,
                "In" => write!(f, "{} in ({values})", e.key)?,
                "NotIn" => write!(f, "{} notin ({values})", e.key)?,
                other => write!(f, "{} {other} ({values})", e.key)?,
            }
        }
        if first {
            f.write_str("<every pod>")?;
        }
        Ok(())
    }
}

/// Whether a pod with these labels is one of the agent's pods.
pub fn is_agent_pod(
    agent: &AgentPolicy,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    selector_matches(Some(&agent.pod_selector()), labels)
}

/// How a pod breaks an agent's identity, if it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentMismatch {
    /// Runs as the agent's ServiceAccount without the agent's labels: its egress NetworkPolicy
    /// does not select it (A.8.12).
    Unlabelled,
    /// Carries the agent's labels but runs as another ServiceAccount: it holds that account's
    /// rights, not the agent's (A.5.15).
    OtherAccount,
}

/// The identity rule for one agent and one pod, shared by admission and the audit.
pub fn agent_mismatch(
    agent: &AgentPolicy,
    labels: &std::collections::BTreeMap<String, String>,
    sa: &str,
) -> Option<AgentMismatch> {
    let runs_as = agent.spec.service_account_name == sa;
    let selected = is_agent_pod(agent, labels);
    match (runs_as, selected) {
        (true, false) => Some(AgentMismatch::Unlabelled),
        (false, true) => Some(AgentMismatch::OtherAccount),
        _ => None,
    }
}

/// The A.8.12 / A.5.15 rule: a pod that runs as an agent's ServiceAccount carries the agent's
/// labels, and a pod that carries them runs as its ServiceAccount.
pub(crate) fn agent_identity(
    w: &Workload,
    sa: &str,
    what: &str,
    rec: &mut Recorder<'_>,
    ctx: &Context<'_>,
) {
    let sp = &w.spec_path;
    let mut agent_pod = false;
    if let Some(agent) = ctx.lookup.agent_for_service_account(&w.namespace, sa) {
        agent_pod = true;
        let name = agent.metadata.name.as_deref().unwrap_or_default();
        if agent_mismatch(&agent, &w.labels, sa) == Some(AgentMismatch::Unlabelled) {
            let labels = format!("{}.labels", metadata_path(sp));
            rec.fail(
                &A_8_12,
                labels.clone(),
                format_args!(
                    "{what} runs as service account {sa:?} of agent {name:?} but its labels ({labels}) do not match the agent's podSelector ({}), so the agent's egress NetworkPolicy does not select it",
                    SelectorText(&agent.pod_selector())
                ),
            );
        } else {
            rec.pass_note(
                &A_8_12,
                format_args!("agent {name:?}'s pod: its egress NetworkPolicy selects it"),
            );
        }
    }
    for agent in ctx.lookup.agents_in(&w.namespace) {
        if agent_mismatch(&agent, &w.labels, sa) == Some(AgentMismatch::OtherAccount) {
            agent_pod = true;
            let name = agent.metadata.name.as_deref().unwrap_or_default();
            rec.fail(
                &A_5_15,
                format!("{sp}.serviceAccountName"),
                format_args!(
                    "{what} matches the podSelector of agent {name:?} ({}) but runs as service account {sa:?} ({sp}.serviceAccountName), not the agent's {:?}, so it holds rights outside the agent's least-privilege policy",
                    SelectorText(&agent.pod_selector()),
                    agent.spec.service_account_name
                ),
            );
        }
    }
    if agent_pod {
        rec.pass_note(
            &A_5_15,
            format_args!("runs as the agent's service account {sa:?}"),
        );
    } else {
        rec.not_applicable(&A_8_12, "not an agent pod");
        rec.not_applicable(&A_5_15, "not an agent pod");
    }
}

/// Running pods listed in an audit condition at most.
pub const AUDIT_LISTED: usize = 20;

/// The background audit of a dataset (A.8.3): the running pods of its namespace that read it
/// as a service account it does not allow, each as `namespace/name as "sa" (path)`.
pub fn unallowed_readers(dataset: &TrainingDataset, pods: &[Workload]) -> Vec<String> {
    let namespace = dataset.metadata.namespace.as_deref().unwrap_or_default();
    let (secret, claim) = super::dataset_read_keys(dataset);
    let reads_it = |read: &DataRead| {
        let key = Some((read.namespace.clone(), read.name.clone()));
        match read.source {
            DataSource::Secret => key == secret,
            DataSource::Claim => key == claim,
        }
    };
    pods.iter()
        .filter(|w| w.namespace == namespace)
        .filter_map(|w| {
            let sa = service_account(w);
            if may_read(dataset, &w.namespace, sa) {
                return None;
            }
            let read = data_reads(w).into_iter().find(|r| reads_it(r))?;
            Some(format!(
                "{}/{} as {sa:?} ({})",
                w.namespace, w.name, read.path
            ))
        })
        .collect()
}

/// The background audit of an agent (A.8.12, A.5.15): the running pods of its namespace that
/// run as its account without its labels, or carry its labels under another account.
pub fn agent_pod_mismatches(agent: &AgentPolicy, pods: &[Workload]) -> Vec<String> {
    let namespace = agent.metadata.namespace.as_deref().unwrap_or_default();
    pods.iter()
        .filter(|w| w.namespace == namespace)
        .filter_map(|w| {
            let sa = service_account(w);
            let pod = format!("{}/{}", w.namespace, w.name);
            match agent_mismatch(agent, &w.labels, sa)? {
                AgentMismatch::Unlabelled => Some(format!(
                    "{pod} runs as {sa:?} without the agent's pod labels (A.8.12: outside its egress policy)"
                )),
                AgentMismatch::OtherAccount => Some(format!(
                    "{pod} carries the agent's pod labels but runs as {sa:?} (A.5.15: outside its least-privilege role)"
                )),
            }
        })
        .collect()
}

/// "3 pod(s): a, b, c" with at most [`AUDIT_LISTED`] named.
pub fn listed(found: &[String]) -> String {
    let mut text = format!("{} pod(s): ", found.len());
    text.push_str(
        &found
            .iter()
            .take(AUDIT_LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    );
    if found.len() > AUDIT_LISTED {
        let _ = write!(text, " and {} more", found.len() - AUDIT_LISTED);
    }
    text
}

/// The A.8.3 rule for the pods Annexa builds for a ModelDeployment: they run as the model's own
/// service account (named after the model) and mount `serving.tlsSecret`; when that Secret is a
/// dataset's credentials, the model's account must be one the dataset allows.
pub(crate) fn model_pods_access(
    model: &crate::api::ModelDeployment,
    rec: &mut Recorder<'_>,
    ctx: &Context<'_>,
) {
    let name = model.metadata.name.as_deref().unwrap_or_default();
    let namespace = model.metadata.namespace.as_deref().unwrap_or("default");
    let Some(secret) = model
        .spec
        .serving
        .as_ref()
        .and_then(|s| s.tls_secret.as_deref())
        .filter(|s| !s.is_empty())
    else {
        rec.pass_note(&A_8_3, "its pods mount no dataset's Secret or claim");
        return;
    };
    let datasets = ctx.lookup.datasets_by_secret(namespace, secret);
    if datasets.is_empty() {
        rec.pass_note(&A_8_3, "its pods mount no dataset's Secret or claim");
    }
    for dataset in datasets {
        if may_read(&dataset, namespace, name) {
            continue;
        }
        rec.fail(
            &A_8_3,
            "spec.serving.tlsSecret",
            format_args!(
                "model {name:?}'s pods run as service account {name:?} and would mount Secret {secret:?} (spec.serving.tlsSecret), the credentials of dataset {:?} ({}), {}",
                dataset.metadata.name.as_deref().unwrap_or_default(),
                dataset.spec.classification,
                Readers(&dataset, namespace)
            ),
        );
    }
}
