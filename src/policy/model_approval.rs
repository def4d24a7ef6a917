//! Rules for ModelApproval (A.5.3, A.8.32): the object itself, and the admission checks that
//! need the requesting user (who may not approve on someone else's behalf).

use super::catalogue::{A_5_3, A_8_32};
use super::model_deployment::requester;
use super::{Context, Evaluation, ObjectRef, Recorder};
use crate::api::{ApprovalDecision, ModelApproval};

pub const KIND: &str = "ModelApproval";

pub fn evaluate(approval: &ModelApproval, ctx: &Context<'_>) -> Evaluation {
    evaluate_request(approval, None, ctx)
}

/// Evaluates an approval as the API server would admit it: `requesting_user` is the user of the
/// admission request (None outside admission, e.g. in `annexa check`).
pub fn evaluate_request(
    approval: &ModelApproval,
    requesting_user: Option<&str>,
    ctx: &Context<'_>,
) -> Evaluation {
    let name = approval.metadata.name.as_deref().unwrap_or_default();
    let namespace = approval.metadata.namespace.as_deref().unwrap_or("default");
    let mut rec = Recorder::new(KIND, ObjectRef::new(KIND, Some(namespace), name), ctx);
    let spec = &approval.spec;
    let approver = spec.approver.username.as_str();

    // A.5.3: nobody approves on someone else's behalf, nor their own change.
    if let Some(user) = requesting_user
        && user != approver
    {
        rec.fail(
                &A_5_3,
                "spec.approver.username",
                format_args!("approval {name:?} names approver {approver:?} but was submitted by {user:?}; approvals can only be made in one's own name"),
            );
    }
    if let Some(model) = ctx.lookup.model(namespace, &spec.model_deployment)
        && model.spec.model.digest == spec.digest
        && requester(&model) == Some(approver)
    {
        rec.fail(
            &A_5_3,
            "spec.approver.username",
            format_args!(
                "{approver:?} requested digest {} of model {:?} and cannot approve it",
                spec.digest.get(..19).unwrap_or(&spec.digest),
                spec.model_deployment
            ),
        );
    }

    // A.8.32: rejections say why; approvers belong to the allowed groups.
    if spec.decision == ApprovalDecision::Reject
        && spec.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        rec.fail(
            &A_8_32,
            "spec.reason",
            format_args!("rejection {name:?} gives no reason"),
        );
    }
    if let Some(groups) = &ctx.profile.approver_groups
        && !spec.approver.groups.iter().any(|g| groups.contains(g))
    {
        rec.fail(
            &A_8_32,
            "spec.approver.groups",
            format_args!("approver {approver:?} is in none of the approver groups {groups:?}"),
        );
    }
    rec.finish()
}

/// Whether an update changes `spec` (approvals are immutable; the CRD's CEL rule says the same).
pub fn spec_changed(old: &ModelApproval, new: &ModelApproval) -> bool {
    old.spec != new.spec
}
