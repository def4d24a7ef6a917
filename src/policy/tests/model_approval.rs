//! ModelApproval: A.5.3 (nobody approves for someone else or their own change) and A.8.32
//! (rejections give a reason; approvers are in the allowed groups).

use super::fixtures::*;
use super::model_deployment::{FRAUD, approval, approve, dataset};
use crate::api::Action::Enforce;
use crate::api::ControlOutcome::Pass;
use crate::manifest::Object;
use crate::policy::model_approval::evaluate_request;

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

#[test]
fn failing_approvals() {
    let cases: Vec<(&str, String, Vec<Expected<'_>>)> = vec![
        (
            "the requester approves their own digest",
            approve("alice"),
            vec![(
                "A.5.3",
                "spec.approver.username",
                Enforce,
                r#"A.5.3 Segregation of duties: "alice" requested digest sha256:a1b2c3d4a1b2 of model "fraud-detection" and cannot approve it"#,
            )],
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
    let e = evaluate_request(&bob, Some("bob"), &world.context());
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    let e = evaluate_request(&bob, Some("mallory"), &world.context());
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
