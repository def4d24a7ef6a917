//! ModelApproval: A.5.3 (nobody approves for someone else or their own change) and A.8.32
//! (rejections give a reason; approvers are in the allowed groups).

use super::fixtures::*;
use super::model_deployment::{FRAUD, approval, approve, dataset};
use crate::api::Action::Enforce;
use crate::api::ControlOutcome::Pass;
use crate::policy::model_approval::{
    NAMESPACE_CONTROLLER, RequestUser, deletion_refused, evaluate_request,
};

fn world() -> World {
    World::production()
        .with(&dataset("claims", "Confidential"))
        .with(FRAUD)
}

#[test]
fn a_reviewers_approval_passes() {
    let e = world().eval(&approve("bob"));
    assert_clean(&e, &["A.5.3", "A.8.32"]);
    assert_outcome(&e, "A.5.3", Pass);
    assert_outcome(&e, "A.8.32", Pass);
}

fn self_approval_message() -> String {
    format!(
        r#"A.5.3 Segregation of duties: "alice" requested release {} of model "fraud-detection" and cannot approve it"#,
        &fraud_release(DIGEST)[..19]
    )
}

#[test]
fn failing_approvals() {
    let self_message = self_approval_message();
    let cases: Vec<(&str, String, Vec<Expected<'_>>)> = vec![
        (
            "the requester approves their own digest",
            approve("alice"),
            vec![("A.5.3", "spec.approver.username", Enforce, &self_message)],
        ),
        (
            "a rejection without a reason",
            approval(
                "fraud-detection-dave",
                "dave",
                &["ml-reviewers"],
                DIGEST,
                "Reject",
                Some(1),
                None,
            ),
            vec![(
                "A.8.32",
                "spec.reason",
                Enforce,
                r#"A.8.32 Change management: rejection "fraud-detection-dave" gives no reason"#,
            )],
        ),
        (
            "a rejection with a blank reason",
            approval(
                "fraud-detection-dave",
                "dave",
                &["ml-reviewers"],
                DIGEST,
                "Reject",
                Some(1),
                Some("\" \""),
            ),
            vec![(
                "A.8.32",
                "spec.reason",
                Enforce,
                r#"A.8.32 Change management: rejection "fraud-detection-dave" gives no reason"#,
            )],
        ),
        (
            "an approver outside the approver groups",
            approval(
                "fraud-detection-erin",
                "erin",
                &["data-science"],
                DIGEST,
                "Approve",
                Some(1),
                None,
            ),
            vec![(
                "A.8.32",
                "spec.approver.groups",
                Enforce,
                r#"A.8.32 Change management: approver "erin" is in none of the approver groups ["ml-reviewers"]"#,
            )],
        ),
    ];
    let world = world();
    for (name, yaml, expected) in &cases {
        let e = world.eval(yaml);
        assert_eq!(e.outcomes.len(), 2, "{name}");
        assert_findings(&e, expected);
    }
}

#[test]
fn the_requester_may_decide_on_other_digests() {
    let e = world().eval(&approval(
        "old-alice",
        "alice",
        &["ml-reviewers"],
        OTHER_DIGEST,
        "Approve",
        Some(1),
        None,
    ));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
}

#[test]
fn admission_checks_the_submitting_user() {
    let world = world();
    let Object::Approval(bob) = object(&approve("bob")) else {
        panic!("not an approval")
    };
    let user = |username| RequestUser {
        username,
        groups: &["ml-reviewers", "system:authenticated"],
    };
    let e = evaluate_request(&bob, Some(user("bob")), &world.context());
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    let e = evaluate_request(&bob, Some(user("mallory")), &world.context());
    assert_findings(
        &e,
        &[(
            "A.5.3",
            "spec.approver.username",
            Enforce,
            r#"A.5.3 Segregation of duties: approval "fraud-detection-bob" names approver "bob" but was submitted by "mallory"; approvals can only be made in one's own name"#,
        )],
    );
}
/// Groups are verified against the request, not taken from the approval (A.5.3).
#[test]
fn a_claimed_group_must_be_the_requesting_users() {
    let world = world();
    let Object::Approval(bob) = object(&approve("bob")) else {
        panic!("not an approval")
    };
    let e = evaluate_request(
        &bob,
        Some(RequestUser {
            username: "bob",
            groups: &["system:authenticated"],
        }),
        &world.context(),
    );
    assert_findings(
        &e,
        &[(
            "A.5.3",
            "spec.approver.groups[0]",
            Enforce,
            r#"A.5.3 Segregation of duties: approval "fraud-detection-bob" claims group "ml-reviewers", which "bob" is not in"#,
        )],
    );
}

/// A ServiceAccount is not a second person (A.5.3), unless a CompliancePolicy names it.
#[test]
fn service_accounts_cannot_approve_unless_a_policy_names_them() {
    let sa = "system:serviceaccount:ci:deployer";
    let yaml = approval(
        "fraud-detection-ci",
        sa,
        &["ml-reviewers"],
        DIGEST,
        "Approve",
        Some(1),
        None,
    );
    let e = world().eval(&yaml);
    assert_findings(
        &e,
        &[(
            "A.5.3",
            "spec.approver.username",
            Enforce,
            r#"A.5.3 Segregation of duties: "system:serviceaccount:ci:deployer" is a ServiceAccount: approvals are made by people, unless a CompliancePolicy names the account in spec.promotion.serviceAccountApprovers"#,
        )],
    );
    let allowing = edit(
        PRODUCTION,
        &[(
            "    approverGroups: [ml-reviewers]",
            "    approverGroups: [ml-reviewers]\n    serviceAccountApprovers: [\"system:serviceaccount:ci:deployer\"]",
        )],
    );
    let world = World::with_policies(&[&allowing])
        .with(&dataset("claims", "Confidential"))
        .with(FRAUD);
    assert!(world.eval(&yaml).findings.is_empty());
    // A second policy that does not name it takes the permission away (strictest wins).
    let world = World::with_policies(&[&allowing, PRODUCTION])
        .with(&dataset("claims", "Confidential"))
        .with(FRAUD);
    assert_eq!(world.eval(&yaml).findings.len(), 1);
}

/// An approval bound to another object that had the model's name is refused at admission.
#[test]
fn an_approval_names_the_models_uid() {
    let yaml = approve("bob").replace(
        "modelUID: 6f1c2a4e-fraud-detection",
        "modelUID: deleted-model-uid",
    );
    assert_findings(
        &world().eval(&yaml),
        &[(
            "A.8.32",
            "spec.modelUID",
            Enforce,
            r#"A.8.32 Change management: approval "fraud-detection-bob" is bound to ModelDeployment UID "deleted-model-uid", but "fraud-detection" has UID "6f1c2a4e-fraud-detection""#,
        )],
    );
}

/// Only its author withdraws a rejection; anyone may delete an approval of theirs or others'.
#[test]
fn a_rejection_is_deleted_only_by_its_author() {
    let Object::Approval(reject) = object(&approval(
        "fraud-detection-dave",
        "dave",
        &["ml-reviewers"],
        DIGEST,
        "Reject",
        Some(1),
        Some("drift"),
    )) else {
        panic!("not an approval")
    };
    assert_eq!(deletion_refused(&reject, "dave"), None);
    assert_eq!(
        deletion_refused(&reject, "alice").as_deref(),
        Some(
            r#"A.8.32 Change management: rejection "fraud-detection-dave" by "dave" can only be withdrawn by its author, not by "alice""#
        )
    );
    assert_eq!(deletion_refused(&reject, NAMESPACE_CONTROLLER), None);
    let Object::Approval(approve) = object(&approve("bob")) else {
        panic!("not an approval")
    };
    assert_eq!(deletion_refused(&approve, "alice"), None);
}
