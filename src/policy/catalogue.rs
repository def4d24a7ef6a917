//! The catalogue of ISO/IEC 27001:2022 Annex A controls Annexa evaluates.

use crate::api::Kind;
use serde::Serialize;

/// The four themes of Annex A.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Organizational,
    People,
    Physical,
    Technological,
}

/// One Annex A control: its identifier, the standard's title, and what Annexa checks.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    pub id: &'static str,
    pub title: &'static str,
    pub theme: Theme,
    /// What Annexa checks for this control.
    pub checks: &'static str,
    /// Kinds the control is evaluated on (`Workload` = Pods and pod templates).
    pub kinds: &'static [&'static str],
}

macro_rules! control {
    ($const:ident, $id:literal, $title:literal, $theme:ident, $kinds:expr, $checks:literal) => {
        pub const $const: Control = Control {
            id: $id,
            title: $title,
            theme: Theme::$theme,
            checks: $checks,
            kinds: $kinds,
        };
    };
}

const TD: &str = Kind::TrainingDataset.name();
const MD: &str = Kind::ModelDeployment.name();
const MAPR: &str = Kind::ModelApproval.name();
const AP: &str = Kind::AgentPolicy.name();
const WL: &str = "Workload";

control!(
    A_5_3,
    "A.5.3",
    "Segregation of duties",
    Organizational,
    &[MD, MAPR],
    "The identity that requested a model digest can never approve it; its approvals are not counted."
);
control!(
    A_5_9,
    "A.5.9",
    "Inventory of information and other associated assets",
    Organizational,
    &[TD, MD],
    "Datasets name an accountable owner and the sha256 checksum of their content; models reference only datasets that exist."
);
control!(
    A_5_12,
    "A.5.12",
    "Classification of information",
    Organizational,
    &[TD, MD, WL],
    "A dataset is classified at least as high as every dataset it derives from, and at least Internal when it holds personal data; a model inherits the highest classification of its datasets; a workload is classified by its pod label annexa.dev/classification (Public, Internal, Confidential or Restricted; Internal without one), and at least as high as every dataset whose Secret or claim it reads, whatever its label says."
);
control!(
    A_5_15,
    "A.5.15",
    "Access control",
    Organizational,
    &[AP, WL],
    "Agent permissions name explicit API groups and resources: no wildcard resources or API groups, no non-resource URLs; a pod carrying an agent's pod labels runs as the agent's service account."
);
control!(
    A_5_18,
    "A.5.18",
    "Access rights",
    Organizational,
    &[AP, WL],
    "Agent access is time-bound: a token TTL within the policy's maximum; agent pods do not automount tokens nor project tokens that outlive the TTL."
);
control!(
    A_5_34,
    "A.5.34",
    "Privacy and protection of personal identifiable information (PII)",
    Organizational,
    &[TD],
    "Datasets with personal data list its categories, declare a residency region and a retention; regions are within the allowed list."
);
control!(
    A_8_2,
    "A.8.2",
    "Privileged access rights",
    Technological,
    &[AP, WL],
    "Agents never hold forbidden verbs (*, escalate, bind, impersonate) nor dangerous permissions (token minting, exec/attach/port-forward, Secret writes and lists, RBAC writes, node proxy, impersonation, CSR approval, admission configuration) nor read Secrets unless allowed; an agent is granted only what its author holds; GPU pods, whatever their path to the GPU, are not privileged (ephemeral debug containers included) and use no host namespaces or hostPath volumes."
);
control!(
    A_8_3,
    "A.8.3",
    "Information access restriction",
    Technological,
    &[TD, MD, WL],
    "Confidential and Restricted datasets, and any dataset with a credentials Secret, name the service accounts allowed to read them; a pod that references a dataset's credentials Secret or claim (env, envFrom, secret, projected and CSI volumes, persistentVolumeClaim and ephemeral volumes cloned from it) runs as one of them, and running pods that do not are reported on the dataset; a model's pods mount a dataset's credentials only if the model's account is allowed. Out of sight: reads that bypass Kubernetes (the bucket itself, credentials copied elsewhere)."
);
control!(
    A_8_9,
    "A.8.9",
    "Configuration management",
    Technological,
    &[MD, WL],
    "Images, ephemeral debug containers' included, are pinned by digest (@sha256:) where the policy requires it and always in Production."
);
control!(
    A_8_10,
    "A.8.10",
    "Information deletion",
    Technological,
    &[TD],
    "Confidential, Restricted and personal datasets declare a retention within the policy's maximum; expiry is enforced by the controller."
);
control!(
    A_8_11,
    "A.8.11",
    "Data masking",
    Technological,
    &[TD],
    "Personal data is masked (pseudonymised, anonymised, tokenised, differentially private or synthetic), unless the dataset is Restricted and justifies it."
);
control!(
    A_8_12,
    "A.8.12",
    "Data leakage prevention",
    Technological,
    &[AP, WL],
    "Agents declare an egress allow-list when the policy requires one, and it never opens the whole internet (0.0.0.0/0, ::/0); a pod running as an agent's service account carries the agent's pod labels, so the egress policy selects it."
);
control!(
    A_8_19,
    "A.8.19",
    "Installation of software on operational systems",
    Technological,
    &[MD, WL],
    "Serving and workload images come from allowed registries (ephemeral debug containers also from the policy's debug registries); model weights name their source URI."
);
control!(
    A_8_20,
    "A.8.20",
    "Networks security",
    Technological,
    &[AP],
    "Every egress rule of an agent is a valid CIDR with explicit ports and protocol."
);
control!(
    A_8_22,
    "A.8.22",
    "Segregation of networks",
    Technological,
    &[MD, WL],
    "Models admit traffic only from declared peers (never from everywhere) and land on the GPU pool of their classification; GPU pods carry the pool placement (nodeSelector, toleration, runtimeClass) of their classification's pool, or of the nearest stricter pool where none serves it, their classification at least that of the datasets they read, whether they ask for GPUs by resource name or pattern (MIG slices, shared GPUs), by a DRA claim of a GPU DeviceClass (an unresolvable claim counts) or by pinning a pool node (nodeName, hostname affinity); other pods do not tolerate GPU pool taints, use a pool's runtimeClass or set GPU device-visibility variables."
);
control!(
    A_8_24,
    "A.8.24",
    "Use of cryptography",
    Technological,
    &[TD, MD],
    "Data and weights at or above the policy's classification have a KMS key with an allowed prefix, PVCs use encrypted StorageClasses, and such models serve over TLS."
);
control!(
    A_8_31,
    "A.8.31",
    "Separation of development, test and production environments",
    Technological,
    &[MD],
    "In Staging and Production, models serve released versions (no latest, dev or snapshot) from images with immutable references."
);
control!(
    A_8_32,
    "A.8.32",
    "Change management",
    Technological,
    &[MD, MAPR],
    "A model digest rolls out only with enough valid approvals for exactly that digest (distinct approvers, not expired, in allowed groups, no rejection); rejections give a reason."
);

/// Every control Annexa evaluates, in Annex A order.
pub const CATALOGUE: &[Control] = &[
    A_5_3, A_5_9, A_5_12, A_5_15, A_5_18, A_5_34, A_8_2, A_8_3, A_8_9, A_8_10, A_8_11, A_8_12,
    A_8_19, A_8_20, A_8_22, A_8_24, A_8_31, A_8_32,
];

/// Looks a control up by its identifier (`A.8.24`).
pub fn control(id: &str) -> Option<&'static Control> {
    CATALOGUE.iter().find(|c| c.id == id)
}

/// The controls evaluated on a kind, in catalogue order.
pub fn controls_for(kind: &str) -> impl Iterator<Item = &'static Control> + '_ {
    CATALOGUE.iter().filter(move |c| c.kinds.contains(&kind))
}
