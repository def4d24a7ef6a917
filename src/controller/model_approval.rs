//! ModelApproval: `Counted` says whether the approval counts for its model's current digest,
//! and why not (Expired, Superseded, SelfApproval, NotInApproverGroup, Duplicate).

use super::conditions::{self, Desired};
use super::{Context, apply_status, error_action, requeue_until};
use crate::api::{ApprovalDecision, CommonStatus, ModelApproval, ModelApprovalStatus};
use crate::error::{Error, Result};
use crate::policy::model_deployment::promotion;
use crate::policy::{self, Context as PolicyContext, Governed, Lookup};
use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;

pub const KIND: &str = "ModelApproval";

/// Whether and why an approval counts (pure). Returns the condition and when it stops counting.
pub fn counted(
    approval: &ModelApproval,
    lookup: &dyn Lookup,
    profile: &crate::policy::Profile,
    now: Timestamp,
) -> (Desired, Option<Timestamp>) {
    let namespace = approval.namespace().unwrap_or_default();
    let name = approval.name_any();
    let Some(model) = lookup.model(&namespace, &approval.spec.model_deployment) else {
        return (
            Desired::new(
                "Counted",
                false,
                "ModelNotFound",
                format!(
                    "ModelDeployment {:?} does not exist",
                    approval.spec.model_deployment
                ),
            ),
            None,
        );
    };
    if model.spec.model.digest != approval.spec.digest {
        return (
            Desired::new(
                "Counted",
                false,
                "Superseded",
                format!("the model now requests {}", model.spec.model.digest),
            ),
            None,
        );
    }
    let gate = promotion(
        &model,
        &lookup.approvals(&namespace, &approval.spec.model_deployment),
        profile,
        now,
    );
    if gate.self_approvals.contains(&name) {
        return (
            Desired::new(
                "Counted",
                false,
                "SelfApproval",
                "A.5.3 Segregation of duties: the approver requested this digest",
            ),
            None,
        );
    }
    if approval.spec.decision == ApprovalDecision::Reject {
        return (
            Desired::new(
                "Counted",
                true,
                "Rejecting",
                "this rejection blocks the digest",
            ),
            None,
        );
    }
    if let Some(c) = gate.counted.iter().find(|c| c.name == name) {
        return (
            Desired::new(
                "Counted",
                true,
                "Counted",
                format!("{} for {}", gate.summary(), gate.digest),
            ),
            c.expires_at,
        );
    }
    let why = gate
        .ignored
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| why.clone())
        .unwrap_or_else(|| "not counted".to_string());
    let reason = if why.contains("expired") {
        "Expired"
    } else if why.contains("approver groups") {
        "NotInApproverGroup"
    } else if why.contains("already approved") {
        "Duplicate"
    } else {
        "NotCounted"
    };
    (Desired::new("Counted", false, reason, why), None)
}

pub async fn reconcile(approval: Arc<ModelApproval>, ctx: Arc<Context>) -> Result<Action> {
    let approval = &*approval;
    let started = std::time::Instant::now();
    let result = reconcile_inner(approval, &ctx).await;
    ctx.metrics.observe(KIND, started.elapsed().as_secs_f64());
    result
}

async fn reconcile_inner(approval: &ModelApproval, ctx: &Context) -> Result<Action> {
    let namespace = approval
        .namespace()
        .ok_or_else(|| Error::Invalid("ModelApproval without namespace".into()))?;
    let now = Timestamp::now();
    let profile = ctx.state.profile(&namespace);
    let eval = policy::evaluate(
        Governed::Approval(approval),
        &PolicyContext {
            profile: &profile,
            lookup: &*ctx.state,
            now,
            detail: policy::Detail::Outcomes,
        },
    );
    let (counted, expires) = counted(approval, &*ctx.state, &profile, now);
    let desired = vec![
        counted,
        Desired::new("Ready", true, "Reconciled", "evaluated"),
        if eval.is_compliant() {
            Desired::new("Compliant", true, "AllControlsPass", "every control passes")
        } else {
            let messages: Vec<&str> = eval.findings.iter().map(|f| f.message.as_str()).collect();
            Desired::new("Compliant", false, "ControlsFailed", messages.join("; "))
        },
    ];
    let old = super::old_conditions(approval);
    let merged = conditions::merge(&old, &desired, approval.metadata.generation, now);
    let status = ModelApprovalStatus {
        common: CommonStatus {
            observed_generation: approval.metadata.generation,
            conditions: merged,
            controls: eval.control_results(),
        },
    };
    let api: Api<ModelApproval> = Api::namespaced(ctx.client.clone(), &namespace);
    apply_status(
        &api,
        approval,
        serde_json::to_value(&status).map_err(|e| Error::Serialize(e.to_string()))?,
    )
    .await?;
    Ok(requeue_until(expires, now))
}

pub fn error_policy(approval: Arc<ModelApproval>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(KIND, error.category());
    tracing::warn!(modelapproval = %approval.name_any(), error = %error, "reconcile failed");
    error_action(error, &approval.name_any())
}
