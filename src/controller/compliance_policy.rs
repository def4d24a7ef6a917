//! CompliancePolicy: `Ready` says whether the policy is valid, `status.matchedNamespaces` how
//! many namespaces it selects. Changes re-evaluate every governed object (see `run`).

use super::conditions::{self, Desired};
use super::{Context, apply_status, error_action};
use crate::api::{CommonStatus, CompliancePolicy, CompliancePolicyStatus, ENFORCE_LABEL};
use crate::controller::model_deployment::MODEL_LABEL;
use crate::error::{Error, Result};
use crate::policy::{selector_matches, validate_policy};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "CompliancePolicy";
/// Ungoverned pods listed in status at most.
const MAX_LISTED: usize = 20;

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

/// Pods on this policy's GPU pool nodes that nothing governs: `namespace/name on node`.
async fn ungoverned_gpu_pods(
    policy: &CompliancePolicy,
    ctx: &Context,
) -> Result<(Vec<String>, usize)> {
    let pools = policy
        .spec
        .gpu
        .as_ref()
        .map(|g| g.pools.as_slice())
        .unwrap_or_default();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let mut found = Vec::new();
    let mut total = 0;
    for pool in pools.iter().filter(|p| !p.node_selector.is_empty()) {
        let selector: Vec<String> = pool
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let pool_nodes = nodes
            .list_metadata(&ListParams::default().labels(&selector.join(",")))
            .await?;
        for node in pool_nodes.items {
            let node_name = node.name_any();
            let on_node = pods
                .list(&ListParams::default().fields(&format!("spec.nodeName={node_name}")))
                .await?;
            for pod in on_node.items {
                let ns = pod.namespace().unwrap_or_default();
                let enforced = ctx
                    .state
                    .namespace_labels(&ns)
                    .is_some_and(|l| l.get(ENFORCE_LABEL).is_some_and(|v| v == "true"));
                if !governed(&pod, enforced) {
                    total += 1;
                    if found.len() < MAX_LISTED {
                        found.push(format!("{ns}/{} on {node_name}", pod.name_any()));
                    }
                }
            }
        }
    }
    Ok((found, total))
}

pub async fn reconcile(
    guard: Arc<DeserializeGuard<CompliancePolicy>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let policy = super::decoded(&guard)?;
    let started = std::time::Instant::now();
    let result = reconcile_inner(policy, &ctx).await;
    ctx.metrics.observe(KIND, started.elapsed().as_secs_f64());
    result
}

async fn reconcile_inner(policy: &CompliancePolicy, ctx: &Context) -> Result<Action> {
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
    let (ungoverned, total) = ungoverned_gpu_pods(policy, ctx).await?;
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
        if total == 0 {
            Desired::new(
                "GPUPoolsIsolated",
                true,
                "OnlyGovernedPods",
                "every pod on this policy's GPU pool nodes is governed",
            )
        } else {
            Desired::new(
                "GPUPoolsIsolated",
                false,
                "UngovernedPods",
                format!(
                    "A.8.22 Segregation of networks: {total} pod(s) on GPU pool nodes are not governed by Annexa: {}",
                    ungoverned.join(", ")
                ),
            )
        },
    ];
    let old = super::old_conditions(policy);
    let merged = conditions::merge(&old, &desired, policy.metadata.generation, now);
    for c in conditions::transitions(&old, &merged) {
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
        ungoverned_gpu_pods: ungoverned,
    };
    let api: Api<CompliancePolicy> = Api::all(ctx.client.clone());
    apply_status(
        &api,
        policy,
        serde_json::to_value(&status).map_err(|e| Error::Serialize(e.to_string()))?,
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(600)))
}

pub fn error_policy(
    policy: Arc<DeserializeGuard<CompliancePolicy>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.error(KIND, error.category());
    tracing::warn!(compliancepolicy = %policy.name_any(), error = %error, "reconcile failed");
    error_action(error, &policy.name_any())
}
