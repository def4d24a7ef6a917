//! CompliancePolicy: `Ready` says whether the policy is valid, `status.matchedNamespaces` how
//! many namespaces it selects, `GPUPoolsIsolated` whether anything ungoverned, or governed
//! but failing the workload rules (any GPU path, ephemeral containers), runs on its GPU pool
//! nodes. Changes re-evaluate every governed object (see `run`).

use super::conditions::{self, Desired};
use super::error::{Context as _, Doing, Result, Target};
use super::{Context, Watches, apply_status, drive, refs};
use crate::api::{CommonStatus, CompliancePolicy, CompliancePolicyStatus, ENFORCE_LABEL};
use crate::controller::model_deployment::MODEL_LABEL;
use crate::decode::workload;
use crate::policy::{self, Governed, Lookup, Profile, selector_matches, validate_policy};
use futures::Future;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Ungoverned pods listed in status at most.
const MAX_LISTED: usize = 20;
/// How often each policy's GPU pool nodes are scanned for ungoverned pods (a scan lists the
/// pods of every pool node, so it runs on this timer and on spec changes, not on every
/// namespace event).
pub const SCAN_INTERVAL: Duration = Duration::from_secs(600);

/// The last GPU-pool scan of each policy: the generation it was made for, when, and what it
/// found (listed pods, total count).
#[derive(Default)]
pub struct PoolScans(std::sync::Mutex<HashMap<String, PoolScan>>);

#[derive(Clone)]
struct PoolScan {
    generation: Option<i64>,
    at: std::time::Instant,
    found: Found,
}

/// What a scan found on the GPU pool nodes: pods nothing governs, and governed pods that fail
/// the workload rules now (admitted before a rule, while the webhook was down, or changed
/// through a path it did not see), each listed up to [`MAX_LISTED`] and counted.
#[derive(Clone, Default)]
pub struct Found {
    pub ungoverned: Vec<String>,
    pub ungoverned_total: usize,
    pub non_compliant: Vec<String>,
    pub non_compliant_total: usize,
}

impl PoolScans {
    /// A scan of this policy generation younger than [`SCAN_INTERVAL`], if any.
    fn fresh(&self, policy: &CompliancePolicy) -> Option<Found> {
        let scans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        scans
            .get(&policy.name_any())
            .filter(|s| {
                s.generation == policy.metadata.generation && s.at.elapsed() < SCAN_INTERVAL
            })
            .map(|s| s.found.clone())
    }

    fn record(&self, policy: &CompliancePolicy, found: &Found) {
        let mut scans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        scans.insert(
            policy.name_any(),
            PoolScan {
                generation: policy.metadata.generation,
                at: std::time::Instant::now(),
                found: found.clone(),
            },
        );
    }
}

/// Whether a pod on a GPU pool node is governed: created by a ModelDeployment, in a namespace
/// opted into workload checks, or a per-node agent (DaemonSet pods such as GPU device plugins).
pub fn governed(pod: &Pod, namespace_enforced: bool) -> bool {
    namespace_enforced
        || pod.labels().contains_key(MODEL_LABEL)
        || pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "DaemonSet")
}

/// The Enforce controls a running pod fails under the workload rules of its namespace: every
/// GPU path (extended resources, DRA claims, pinned nodes, device-visibility variables) and
/// its ephemeral containers, as admission would decide it today.
pub fn failed_workload_controls(
    pod: &Pod,
    profile: &Profile,
    lookup: &dyn Lookup,
    now: Timestamp,
) -> Vec<&'static str> {
    let Ok(value) = serde_json::to_value(pod) else {
        return Vec::new();
    };
    let Ok(workload) = workload::from_object("Pod", &value) else {
        return Vec::new();
    };
    let ctx = policy::Context {
        profile,
        lookup,
        now,
        detail: policy::Detail::Findings,
    };
    let mut controls: Vec<&'static str> = policy::evaluate(Governed::Workload(&workload), &ctx)
        .denials()
        .map(|f| f.control)
        .collect();
    controls.dedup();
    controls
}

/// Pods on this policy's GPU pool nodes that nothing governs, and governed ones that fail the
/// workload rules: `namespace/name on node` (with the failed controls).
async fn scan_gpu_pools(policy: &CompliancePolicy, ctx: &Context) -> Result<Found> {
    let pools = policy
        .spec
        .gpu
        .as_ref()
        .map(|g| g.pools.as_slice())
        .unwrap_or_default();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let mut found = Found::default();
    let now = Timestamp::now();
    for pool in pools.iter().filter(|p| !p.node_selector.is_empty()) {
        let selector: Vec<String> = pool
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let pool_nodes = nodes
            .list_metadata(&ListParams::default().labels(&selector.join(",")))
            .await
            .doing(Doing::List, || Target::list::<Node>(None))?;
        for node in pool_nodes.items {
            let node_name = node.name_any();
            let on_node = pods
                .list(&ListParams::default().fields(&format!("spec.nodeName={node_name}")))
                .await
                .doing(Doing::List, || Target::list::<Pod>(None))?;
            for pod in on_node.items {
                let ns = pod.namespace().unwrap_or_default();
                let enforced = ctx
                    .state
                    .namespace_labels(&ns)
                    .is_some_and(|l| l.get(ENFORCE_LABEL).is_some_and(|v| v == "true"));
                if !governed(&pod, enforced) {
                    found.ungoverned_total += 1;
                    if found.ungoverned.len() < MAX_LISTED {
                        found
                            .ungoverned
                            .push(format!("{ns}/{} on {node_name}", pod.name_any()));
                    }
                } else if enforced {
                    let profile = ctx.state.profile(&ns);
                    let failed = failed_workload_controls(&pod, &profile, &*ctx.state, now);
                    if !failed.is_empty() {
                        found.non_compliant_total += 1;
                        if found.non_compliant.len() < MAX_LISTED {
                            found.non_compliant.push(format!(
                                "{ns}/{} on {node_name} ({})",
                                pod.name_any(),
                                failed.join(", ")
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(found)
}

/// The CompliancePolicy Controller: its own kind, and every namespace (a label change can
/// change what a policy selects).
pub fn controller(ctx: Arc<Context>, watches: &Watches) -> impl Future<Output = ()> + use<> {
    let feeds = &watches.state.feeds;
    let s = watches.state.clone();
    let controller =
        Controller::for_shared_stream(feeds.policies.changes(), feeds.policies.store())
            .with_config(watches.config.clone())
            .watches_shared_stream(feeds.namespaces.updates(), move |_| {
                refs(s.policies.state())
            });
    drive(controller, reconcile, ctx, watches)
}

pub async fn reconcile(policy: Arc<CompliancePolicy>, ctx: Arc<Context>) -> Result<Action> {
    let (policy, ctx) = (&*policy, &*ctx);
    let now = Timestamp::now();
    let errors = validate_policy(policy);
    let matched = ctx
        .state
        .namespaces
        .state()
        .iter()
        .filter(|ns| {
            let name = ns.name_any();
            let labels = ctx.state.namespace_labels(&name).unwrap_or_default();
            selector_matches(policy.spec.namespace_selector.as_ref(), &labels)
        })
        .count();
    let found = match ctx.pool_scans.fresh(policy) {
        Some(scan) => scan,
        None => {
            let found = scan_gpu_pools(policy, ctx).await?;
            ctx.pool_scans.record(policy, &found);
            found
        }
    };
    let desired = vec![
        if errors.is_empty() {
            Desired::new(
                "Ready",
                true,
                "Valid",
                format!("selects {matched} namespaces"),
            )
        } else {
            Desired::new("Ready", false, "Invalid", errors.join("; "))
        },
        if found.ungoverned_total > 0 {
            Desired::new(
                "GPUPoolsIsolated",
                false,
                "UngovernedPods",
                format!(
                    "A.8.22 Segregation of networks: {} pod(s) on GPU pool nodes are not governed by Annexa: {}",
                    found.ungoverned_total,
                    found.ungoverned.join(", ")
                ),
            )
        } else if found.non_compliant_total > 0 {
            Desired::new(
                "GPUPoolsIsolated",
                false,
                "NonCompliantPods",
                format!(
                    "A.8.22 Segregation of networks: {} pod(s) on GPU pool nodes fail the workload rules: {}",
                    found.non_compliant_total,
                    found.non_compliant.join(", ")
                ),
            )
        } else {
            Desired::new(
                "GPUPoolsIsolated",
                true,
                "OnlyGovernedPods",
                "every pod on this policy's GPU pool nodes is governed and passes the workload rules",
            )
        },
    ];
    let old = super::old_conditions(policy);
    let merged = conditions::merge(&old, &desired, policy.metadata.generation, now);
    for c in ctx.unpublished(policy, conditions::transitions(&old, &merged)) {
        ctx.event(policy, c.status == "False", &c.reason, c.message.clone())
            .await;
    }
    let status = CompliancePolicyStatus {
        common: CommonStatus {
            observed_generation: policy.metadata.generation,
            conditions: merged,
            controls: Vec::new(),
        },
        matched_namespaces: Some(i32::try_from(matched).unwrap_or(i32::MAX)),
        ungoverned_gpu_pods: found.ungoverned,
        non_compliant_gpu_pods: found.non_compliant,
    };
    let api: Api<CompliancePolicy> = Api::all(ctx.client.clone());
    apply_status(&api, policy, &status).await?;
    Ok(Action::requeue(SCAN_INTERVAL))
}
