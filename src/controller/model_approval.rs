//! ModelApproval: `Counted` says whether the approval counts for its model's requested release,
//! and why not (Expired, Superseded, NotRequested, OtherModel, SelfApproval, NotInApproverGroup,
//! ServiceAccount, Duplicate).

use super::conditions::{self, Desired};
use super::error::Result;
use super::{Context, Watches, apply_status, drive, refs, requeue_until};
use crate::api::{ApprovalDecision, CommonStatus, ModelApproval, ModelApprovalStatus};
use crate::policy::model_deployment::promotion;
use crate::policy::{Governed, Lookup};
use futures::Future;
use jiff::Timestamp;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;

/// Whether and why an approval counts (pure). Returns the condition and when it stops counting.
pub fn counted(
    approval: &ModelApproval,
    lookup: &dyn Lookup,
    profile: &crate::policy::Profile,
    now: Timestamp,
) -> (Desired, Option<Timestamp>) {
    let namespace = approval.namespace().unwrap_or_default();
    let name = approval.name_any();
    let fingerprint = approval.spec.release.fingerprint.as_str();
    let short = |f: &str| f.get(..19).unwrap_or(f).to_string();
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
    let requested = model.spec.release().fingerprint();
    let status = model.status.as_ref();
    if model.metadata.uid.as_deref() == Some(approval.spec.model_uid.as_str())
        && fingerprint != requested
    {
        // Which release it was for, from the model's own records: the one serving, an earlier
        // promotion, or one this model never requested (as far as its records go).
        let serving = status
            .and_then(|s| s.serving_release.as_ref())
            .is_some_and(|s| s.record.fingerprint == fingerprint);
        let promoted =
            status.is_some_and(|s| s.promotions.iter().any(|p| p.fingerprint == fingerprint));
        let (reason, message) = if serving {
            (
                "Serving",
                format!(
                    "release {} serves; the model now requests {}",
                    short(fingerprint),
                    short(&requested)
                ),
            )
        } else if promoted {
            (
                "Superseded",
                format!(
                    "release {} was promoted earlier and has been superseded; the model now requests {}",
                    short(fingerprint),
                    short(&requested)
                ),
            )
        } else {
            (
                "NotRequested",
                format!(
                    "release {} is not the model's pending release ({}) nor one it served: this approval never counts",
                    short(fingerprint),
                    short(&requested)
                ),
            )
        };
        return (Desired::new("Counted", false, reason, message), None);
    }
    let gate = promotion(
        &model,
        &lookup.approvals(&namespace, &approval.spec.model_deployment),
        profile,
        now,
    );
    if let Some(c) = gate.counted.iter().find(|c| c.name == name) {
        let message = if gate.requester.is_none() {
            format!(
                "{} for release {}; the gate stays closed until the release's requester is re-established",
                gate.summary(),
                short(&gate.release)
            )
        } else {
            format!("{} for release {}", gate.summary(), short(&gate.release))
        };
        return (
            Desired::new("Counted", true, "Counted", message),
            c.expires_at,
        );
    }
    if let Some((_, why, message)) = gate.ignored.iter().find(|(n, _, _)| *n == name) {
        return (
            Desired::new("Counted", false, why.reason(), message.clone()),
            None,
        );
    }
    if approval.spec.decision == ApprovalDecision::Reject {
        return (
            Desired::new(
                "Counted",
                true,
                "Rejecting",
                format!("this rejection blocks release {}", short(&gate.release)),
            ),
            None,
        );
    }
    (
        Desired::new("Counted", false, "NotCounted", "not counted"),
        None,
    )
}

/// The ModelApproval Controller: its own kind and the model each approval is for.
pub fn controller(ctx: Arc<Context>, watches: &Watches) -> impl Future<Output = ()> + use<> {
    let feeds = &watches.state.feeds;
    let s = watches.state.clone();
    let controller =
        Controller::for_shared_stream(feeds.approvals.changes(), feeds.approvals.store())
            .with_config(watches.config.clone())
            .watches_shared_stream(feeds.models.updates(), move |m| {
                let ns = m.namespace().unwrap_or_default();
                let name = m.name_any();
                refs(s.approvals.state_filter(|a| {
                    a.metadata.namespace.as_deref() == Some(ns.as_str())
                        && a.spec.model_deployment == name
                }))
            });
    drive(controller, reconcile, ctx, watches)
}

pub async fn reconcile(approval: Arc<ModelApproval>, ctx: Arc<Context>) -> Result<Action> {
    let (approval, ctx) = (&*approval, &*ctx);
    let namespace = super::namespace_of(approval)?;
    let now = Timestamp::now();
    let profile = ctx.state.profile(&namespace);
    let eval = ctx.evaluate(Governed::Approval(approval), &profile, now);
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
    apply_status(&api, approval, &status).await?;
    Ok(requeue_until(expires, now))
}
