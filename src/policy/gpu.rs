//! Every way a pod reaches a GPU (A.8.22, A.8.2): extended resources by name or pattern (whole
//! GPUs, MIG slices, time-sliced and MPS shares), Dynamic Resource Allocation claims whose
//! DeviceClass is a GPU class (resolved through the [`Lookup`]; a claim that cannot be resolved
//! counts as a GPU request), and pinning to a node of a GPU pool (`spec.nodeName`, a
//! `kubernetes.io/hostname` node selector or required node affinity, a `metadata.name` node
//! field affinity as DaemonSet pods carry), which skips the scheduler and the pool's taint.
//! Plus what a pod that requests no GPU may not do on a GPU runtime: set the runtimes'
//! device-visibility variables or use a pool's RuntimeClass.

use super::Lookup;
use super::profile::Profile;
use super::workload::{PodView, Workload};
use crate::api::{GpuPool, PoolTaint};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::resource::v1::ResourceClaimSpec;
use std::fmt;

/// Environment variables through which GPU container runtimes and stacks choose the devices a
/// container sees. Set on a container of a pod that requested no GPU, they reach the GPUs of
/// the node without any request: NVIDIA's container toolkit (`NVIDIA_VISIBLE_DEVICES`,
/// capabilities and MIG devices), AMD's container toolkit and ROCm/HIP, Intel's Level Zero.
pub const DEVICE_VISIBILITY_VARIABLES: [&str; 9] = [
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "NVIDIA_MIG_CONFIG_DEVICES",
    "NVIDIA_MIG_MONITOR_DEVICES",
    "AMD_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "ZE_AFFINITY_MASK",
];

/// `NVIDIA_VISIBLE_DEVICES` values that expose no GPU (a common way to switch a CUDA image's
/// default `all` off on CPU nodes): allowed everywhere.
const NO_DEVICE_VALUES: [&str; 2] = ["void", "none"];

/// The node label that names a node (its value is the node name on common distributions).
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Why a pod counts as requesting GPUs (the first reason found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuRequest {
    /// A container requests an extended resource the policy counts as a GPU.
    Resource,
    /// A DRA claim asks for devices of a GPU DeviceClass.
    Claim { claim: String, class: String },
    /// A DRA claim that cannot be resolved (fail closed).
    UnresolvedClaim { claim: String, reason: String },
    /// Pinned to a node of a GPU pool, or to a node Annexa does not know (fail closed).
    Pinned {
        node: String,
        field: String,
        pool: Option<String>,
    },
}

impl GpuRequest {
    /// Words placed after "requests GPUs" in messages (empty for plain extended resources).
    pub fn via(&self) -> Via<'_> {
        Via(self)
    }
}

pub struct Via<'a>(&'a GpuRequest);

impl fmt::Display for Via<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            GpuRequest::Resource => Ok(()),
            GpuRequest::Claim { claim, class } => {
                write!(
                    f,
                    " through resource claim {claim:?} (DeviceClass {class:?})"
                )
            }
            GpuRequest::UnresolvedClaim { claim, reason } => write!(
                f,
                " through resource claim {claim:?} ({reason}; a claim that cannot be resolved counts as a GPU request)"
            ),
            GpuRequest::Pinned {
                node,
                field,
                pool: Some(pool),
            } => write!(
                f,
                " by pinning {field} to node {node:?} of the {pool} GPU pool"
            ),
            GpuRequest::Pinned {
                node,
                field,
                pool: None,
            } => write!(
                f,
                " by pinning {field} to node {node:?}, which is not known (a pinned node that cannot be resolved counts as a GPU node)"
            ),
        }
    }
}

/// The DeviceClass names a claim's requests ask for (`exactly` and every `firstAvailable`
/// alternative).
pub fn claim_device_classes(spec: Option<&ResourceClaimSpec>) -> Vec<&str> {
    spec.and_then(|s| s.devices.as_ref())
        .and_then(|d| d.requests.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r.exactly
                .iter()
                .map(|e| e.device_class_name.as_str())
                .chain(
                    r.first_available
                        .iter()
                        .flatten()
                        .map(|s| s.device_class_name.as_str()),
                )
        })
        .collect()
}

/// The GPU class a claim asks for, Ok(None) when it asks for none, Err(why) when the claim
/// cannot be resolved.
fn claim_gpu_class(
    w: &Workload,
    claim: &super::workload::PodResourceClaimView,
    profile: &Profile,
    lookup: &dyn Lookup,
) -> Result<Option<String>, String> {
    let gpu_class = |spec: Option<&ResourceClaimSpec>| {
        claim_device_classes(spec)
            .into_iter()
            .find(|c| profile.is_gpu_device_class(c))
            .map(str::to_string)
    };
    let (kind, resolved) = match (
        &claim.resource_claim_name,
        &claim.resource_claim_template_name,
    ) {
        (Some(name), _) => (
            format!("ResourceClaim {name:?}"),
            lookup
                .resource_claim(&w.namespace, name)
                .map(|c| gpu_class(c.spec.as_ref())),
        ),
        (None, Some(name)) => (
            format!("ResourceClaimTemplate {name:?}"),
            lookup
                .resource_claim_template(&w.namespace, name)
                .map(|t| gpu_class(t.spec.as_ref().and_then(|s| s.spec.as_ref()))),
        ),
        (None, None) => {
            return Err("it names neither a ResourceClaim nor a ResourceClaimTemplate".into());
        }
    };
    resolved.ok_or_else(|| format!("{kind} is not found in namespace {:?}", w.namespace))
}

/// Whether a node belongs to a pool: it carries the pool's node labels, or its taint.
fn node_in_pool(node: &Node, pool: &GpuPool) -> bool {
    let labels = node.metadata.labels.as_ref();
    let selected = !pool.node_selector.is_empty()
        && pool
            .node_selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let tainted = pool.taint.as_ref().is_some_and(|t: &PoolTaint| {
        node.spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .any(|n| {
                n.key == t.key
                    && n.effect == t.effect.as_str()
                    && n.value.as_deref().unwrap_or_default()
                        == t.value.as_deref().unwrap_or_default()
            })
    });
    selected || tainted
}

/// The GPU pool a node belongs to (the strictest when it matches several).
pub fn pool_of_node<'p>(node: &Node, profile: &'p Profile) -> Option<&'p GpuPool> {
    profile
        .gpu_pools
        .values()
        .rev()
        .find(|p| node_in_pool(node, p))
}

/// The nodes a pod names (`field`, node name): `spec.nodeName`, a `kubernetes.io/hostname`
/// node selector, and the values of `In` requirements on `kubernetes.io/hostname` (labels) or
/// `metadata.name` (fields) in its required node affinity.
pub fn pinned_nodes(pod: &PodView, spec_path: &str) -> Vec<(String, String)> {
    let mut nodes = Vec::new();
    if let Some(name) = pod.node_name.as_deref().filter(|n| !n.is_empty()) {
        nodes.push((format!("{spec_path}.nodeName"), name.to_string()));
    }
    if let Some(name) = pod.node_selector.get(HOSTNAME_LABEL) {
        nodes.push((
            format!("{spec_path}.nodeSelector[{HOSTNAME_LABEL}]"),
            name.clone(),
        ));
    }
    let terms = pod
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    for (t, term) in terms.iter().enumerate() {
        let requirements = term
            .match_expressions
            .iter()
            .enumerate()
            .filter(|(_, r)| r.key == HOSTNAME_LABEL)
            .map(|(i, r)| ("matchExpressions", i, r))
            .chain(
                term.match_fields
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.key == "metadata.name")
                    .map(|(i, r)| ("matchFields", i, r)),
            );
        for (list, i, requirement) in requirements {
            if requirement.operator == "In" {
                for value in &requirement.values {
                    nodes.push((
                        format!("{spec_path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{t}].{list}[{i}]"),
                        value.clone(),
                    ));
                }
            }
        }
    }
    nodes
}

/// A node a pod is pinned to that belongs to a GPU pool (Some(pool)) or is not known (None).
pub struct PinnedNode<'p> {
    pub field: String,
    pub node: String,
    pub pool: Option<&'p GpuPool>,
}

/// The pinned nodes that are GPU pool nodes or unknown; nodes known to be outside every pool
/// are left out.
pub fn pinned_gpu_nodes<'p>(
    w: &Workload,
    profile: &'p Profile,
    lookup: &dyn Lookup,
) -> Vec<PinnedNode<'p>> {
    pinned_nodes(&w.pod, &w.spec_path)
        .into_iter()
        .filter_map(|(field, node)| match lookup.node(&node) {
            None => Some(PinnedNode {
                field,
                node,
                pool: None,
            }),
            Some(n) => pool_of_node(&n, profile).map(|pool| PinnedNode {
                field,
                node,
                pool: Some(pool),
            }),
        })
        .collect()
}

/// Why the pod counts as requesting GPUs, if it does. Extended resources first, then claims,
/// then pinning.
pub fn gpu_request(
    w: &Workload,
    profile: &Profile,
    lookup: &dyn Lookup,
    pinned: &[PinnedNode<'_>],
) -> Option<GpuRequest> {
    let by_resource = w.all_containers().any(|(_, _, c)| {
        c.resources.as_ref().is_some_and(|r| {
            r.limits.iter().chain(r.requests.iter()).any(|(name, q)| {
                profile.is_gpu_resource(name) && super::workload::quantity_nonzero(q)
            })
        })
    });
    if by_resource {
        return Some(GpuRequest::Resource);
    }
    let mut unresolved = None;
    for claim in &w.pod.resource_claims {
        match claim_gpu_class(w, claim, profile, lookup) {
            Ok(Some(class)) => {
                return Some(GpuRequest::Claim {
                    claim: claim.name.clone(),
                    class,
                });
            }
            Ok(None) => {}
            Err(reason) => {
                unresolved.get_or_insert(GpuRequest::UnresolvedClaim {
                    claim: claim.name.clone(),
                    reason,
                });
            }
        }
    }
    if unresolved.is_some() {
        return unresolved;
    }
    pinned.first().map(|p| GpuRequest::Pinned {
        node: p.node.clone(),
        field: p.field.clone(),
        pool: p.pool.map(|pool| pool.classification.to_string()),
    })
}

/// A device-visibility variable set on a container (`(env index, name)`), ignoring values that
/// expose no device.
pub fn visibility_variables(
    env: &[super::pod_access::EnvVarView],
) -> impl Iterator<Item = (usize, &str)> {
    env.iter().enumerate().filter_map(|(i, e)| {
        let listed = DEVICE_VISIBILITY_VARIABLES.contains(&e.name.as_str());
        let harmless = e.name == "NVIDIA_VISIBLE_DEVICES"
            && e.value_from.is_none()
            && e.value
                .as_deref()
                .is_some_and(|v| NO_DEVICE_VALUES.contains(&v.trim()));
        (listed && !harmless).then_some((i, e.name.as_str()))
    })
}
