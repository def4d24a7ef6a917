//! CompliancePolicy: `Ready` says whether the policy is valid, `status.matchedNamespaces` how
//! many namespaces it selects. Changes re-evaluate every governed object (see `run`).

use super::conditions::{self, Desired};
use super::{Context, apply_status, error_action};
use crate::api::{CommonStatus, CompliancePolicy, CompliancePolicyStatus};
use crate::error::{Error, Result};
use crate::policy::{selector_matches, validate_policy};
use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const KIND: &str = "CompliancePolicy";

pub async fn reconcile(policy: Arc<CompliancePolicy>, ctx: Arc<Context>) -> Result<Action> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&policy, &ctx).await;
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
    let desired = vec![if errors.is_empty() {
        Desired::new(
            "Ready",
            true,
            "Valid",
            format!("selects {matched} namespaces"),
        )
    } else {
        Desired::new("Ready", false, "Invalid", errors.join("; "))
    }];
    let old = policy
        .status
        .as_ref()
        .map(|s| s.common.conditions.clone())
        .unwrap_or_default();
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
        ungoverned_gpu_pods: Vec::new(),
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

pub fn error_policy(policy: Arc<CompliancePolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(KIND, error.category());
    tracing::warn!(compliancepolicy = %policy.name_any(), error = %error, "reconcile failed");
    error_action(error, &policy.name_any())
}
