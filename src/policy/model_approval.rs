//! Rules for ModelApproval (A.5.3, A.8.32): the object itself, and the admission checks that
//! need the requesting user (who may not approve on someone else's behalf).

use super::catalogue::{A_5_3, A_8_32};
use super::duration::format_duration;
use super::model_deployment::{requester, service_account_barred};
use super::{Context, Evaluation, ObjectRef, Recorder};
use crate::api::{ApprovalDecision, Kind, ModelApproval};

pub const KIND: &str = Kind::ModelApproval.name();

pub fn evaluate(approval: &ModelApproval, ctx: &Context<'_>) -> Evaluation {
    evaluate_request(approval, None, ctx)
}

/// The identity of an admission request, as the API server authenticated it.
#[derive(Clone, Copy, Debug)]
pub struct RequestUser<'a> {
    pub username: &'a str,
    pub groups: &'a [&'a str],
}

/// Evaluates an approval as the API server would admit it: `user` is the authenticated user of
/// the admission request (None outside admission, e.g. in `annexa check`).
pub fn evaluate_request(
    approval: &ModelApproval,
    user: Option<RequestUser<'_>>,
    ctx: &Context<'_>,
) -> Evaluation {
    let name = approval.metadata.name.as_deref().unwrap_or_default();
    let namespace = approval.metadata.namespace.as_deref().unwrap_or("default");
    let mut rec = Recorder::new(KIND, ObjectRef::new(KIND, Some(namespace), name), ctx);
    let spec = &approval.spec;
    let approver = spec.approver.username.as_str();
    let release = spec.release.fingerprint.as_str();
    let short_release = release.get(..19).unwrap_or(release);

    // A.5.3: nobody approves on someone else's behalf, nor claims a group they are not in.
    if let Some(user) = user {
        if user.username != approver {
            rec.fail(
                &A_5_3,
                "spec.approver.username",
                format_args!("approval {name:?} names approver {approver:?} but was submitted by {:?}; approvals can only be made in one's own name", user.username),
            );
        }
        for (i, group) in spec.approver.groups.iter().enumerate() {
            if !user.groups.contains(&group.as_str()) {
                rec.fail(
                    &A_5_3,
                    format!("spec.approver.groups[{i}]"),
                    format_args!(
                        "approval {name:?} claims group {group:?}, which {:?} is not in",
                        user.username
                    ),
                );
            }
        }
    }
    if service_account_barred(approver, ctx.profile) {
        rec.fail(
            &A_5_3,
            "spec.approver.username",
            format_args!("{approver:?} is a ServiceAccount: approvals are made by people, unless a CompliancePolicy names the account in spec.promotion.serviceAccountApprovers"),
        );
    }
    if let Some(model) = ctx.lookup.model(namespace, &spec.model_deployment) {
        if let Some(uid) = model.metadata.uid.as_deref()
            && uid != spec.model_uid
        {
            rec.fail(
                &A_8_32,
                "spec.modelUID",
                format_args!(
                    "approval {name:?} is bound to ModelDeployment UID {:?}, but {:?} has UID {uid:?}",
                    spec.model_uid, spec.model_deployment
                ),
            );
        }
        if spec.decision == ApprovalDecision::Approve
            && model.spec.release().fingerprint() == release
            && requester(&model) == Some(approver)
        {
            rec.fail(
                &A_5_3,
                "spec.approver.username",
                format_args!(
                    "{approver:?} requested release {short_release} of model {:?} and cannot approve it",
                    spec.model_deployment
                ),
            );
        }
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
    // Expiry (A.8.32): an approval counts for the policy's TTL from its creation.
    let ttl = ctx.profile.approval_ttl;
    let what = match spec.decision {
        ApprovalDecision::Approve => "approval",
        ApprovalDecision::Reject => "rejection",
    };
    match approval.metadata.creation_timestamp.as_ref().map(|t| t.0) {
        Some(created) => match created.checked_add(ttl) {
            Ok(expires) if expires <= ctx.now => rec.not_applicable(
                &A_8_32,
                format_args!(
                    "{what} {name:?} expired at {expires} (approvals are valid for {}): it no longer counts towards any release",
                    format_duration(ttl)
                ),
            ),
            Ok(expires) => rec.pass_note(&A_8_32, format_args!("valid until {expires}")),
            Err(_) => {}
        },
        None => rec.pass_note(
            &A_8_32,
            format_args!(
                "no creationTimestamp: counted as fresh (valid for {} from when the API server creates it)",
                format_duration(ttl)
            ),
        ),
    }
    rec.finish()
}

/// Whether `user` may delete `approval`: a rejection is withdrawn only by its author (A.8.32),
/// so that nobody, the requester included, unblocks a release by deleting someone's Reject.
/// The namespace controller may delete everything in a namespace being deleted.
pub fn deletion_refused(approval: &ModelApproval, user: &str) -> Option<String> {
    if approval.spec.decision != ApprovalDecision::Reject
        || user == approval.spec.approver.username
        || user == NAMESPACE_CONTROLLER
    {
        return None;
    }
    let name = approval.metadata.name.as_deref().unwrap_or_default();
    Some(format!(
        "A.8.32 Change management: rejection {name:?} by {:?} can only be withdrawn by its author, not by {user:?}",
        approval.spec.approver.username
    ))
}

/// The identity kube-controller-manager deletes a terminating namespace's content with.
pub const NAMESPACE_CONTROLLER: &str = "system:serviceaccount:kube-system:namespace-controller";

/// Whether an update changes `spec` (approvals are immutable; the CRD's CEL rule says the same).
pub fn spec_changed(old: &ModelApproval, new: &ModelApproval) -> bool {
    old.spec != new.spec
}
