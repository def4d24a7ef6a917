//! No confused deputy: before admitting an object whose controller will act for its author
//! (grant a Secret, delete a PVC, grant an agent's rules), the webhook asks the API server,
//! with a SubjectAccessReview as the requesting user (username, uid, groups, extra), whether
//! that user may do it ([`crate::policy::delegation`] says what to ask).
//!
//! - Nothing is cached: every review is asked again (permissions change between requests).
//! - The questions are asked concurrently and time-boxed inside the webhook's deadline.
//! - Fail closed: a review that errors or times out refuses the object, naming what could not
//!   be verified (the user retries; nothing was granted).
//! - Only `annexa run` asks (it has a client). `annexa webhook` (stand-alone, no client, no
//!   controllers) and `annexa check` (offline) act for nobody, so they have nothing to verify.

use super::admission::Decision;
use super::review::{Request, Response};
use crate::policy::delegation::{Delegated, Delegation};
use futures::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use std::collections::BTreeMap;
use std::time::Duration;

/// The requesting user, as the API server authenticated them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requester {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Requester {
    pub fn of(request: &Request<'_>) -> Self {
        let info = &request.user_info;
        Self {
            username: info.username.as_deref().unwrap_or_default().to_string(),
            uid: info.uid.as_deref().map(str::to_string),
            groups: info
                .groups
                .iter()
                .flatten()
                .map(|g| g.to_string())
                .collect(),
            extra: info.extra.clone().unwrap_or_default(),
        }
    }
}

/// Asks whether a user may do something. The real one posts a SubjectAccessReview; tests use a
/// table.
pub trait AccessReviewer: Send + Sync {
    /// `Ok(true)`: allowed; `Ok(false)`: not allowed; `Err`: could not tell (refused).
    fn allowed<'a>(
        &'a self,
        user: &'a Requester,
        check: &'a crate::policy::delegation::AccessCheck,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// SubjectAccessReview through the API server (needs `create` on
/// `subjectaccessreviews.authorization.k8s.io`).
pub struct KubeAccessReviewer {
    api: Api<SubjectAccessReview>,
}

impl KubeAccessReviewer {
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }
}

/// The SubjectAccessReview asking whether `user` may do `check`.
pub fn subject_access_review(
    user: &Requester,
    check: &crate::policy::delegation::AccessCheck,
) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.username.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(check.namespace.clone()),
                verb: Some(check.verb.clone()),
                group: Some(check.group.clone()),
                resource: Some(check.resource.clone()),
                subresource: check.subresource.clone(),
                name: check.name.clone(),
                ..ResourceAttributes::default()
            }),
            non_resource_attributes: None,
        },
        ..SubjectAccessReview::default()
    }
}

impl AccessReviewer for KubeAccessReviewer {
    fn allowed<'a>(
        &'a self,
        user: &'a Requester,
        check: &'a crate::policy::delegation::AccessCheck,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let review = subject_access_review(user, check);
            let answer = self
                .api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer
                .status
                .is_some_and(|s| s.allowed && !s.denied.unwrap_or(false)))
        })
    }
}

enum Verdict {
    Allowed,
    Missing(Vec<Delegated>),
    Unknown(Delegated, String),
}

async fn ask_all<'a>(
    reviewer: &'a dyn AccessReviewer,
    user: &'a Requester,
    each: &'a [Delegated],
) -> Verdict {
    let answers = futures::future::join_all(
        each.iter()
            .map(|d| async move { (d, reviewer.allowed(user, &d.check).await) }),
    )
    .await;
    let mut missing = Vec::new();
    for (delegated, answer) in answers {
        match answer {
            Ok(true) => {}
            Ok(false) => missing.push(delegated.clone()),
            Err(e) => return Verdict::Unknown(delegated.clone(), e),
        }
    }
    if missing.is_empty() {
        Verdict::Allowed
    } else {
        Verdict::Missing(missing)
    }
}

async fn verdict(
    reviewer: &dyn AccessReviewer,
    user: &Requester,
    delegation: &Delegation,
) -> Verdict {
    let Some(alternative) = &delegation.or_else else {
        return ask_all(reviewer, user, &delegation.each).await;
    };
    // The alternative first: one question instead of many for users who may escalate.
    match reviewer.allowed(user, &alternative.check).await {
        Ok(true) => return Verdict::Allowed,
        Ok(false) => {}
        Err(e) => return Verdict::Unknown(alternative.clone(), e),
    }
    if delegation.each.len() > crate::policy::delegation::MAX_CHECKS {
        return Verdict::Missing(vec![alternative.clone()]);
    }
    ask_all(reviewer, user, &delegation.each).await
}

/// Verifies a decision's delegation as the requesting user within `budget`; returns the
/// decision unchanged when the user holds everything, else a denial naming the control and the
/// missing permission (or what could not be verified).
pub async fn confirm(
    request: &Request<'_>,
    mut decision: Decision,
    reviewer: &dyn AccessReviewer,
    budget: Duration,
) -> Decision {
    if decision.delegation.is_empty() || !decision.response.allowed {
        return decision;
    }
    let user = Requester::of(request);
    let delegation = std::mem::take(&mut decision.delegation);
    let object = format!(
        "{} {:?}",
        decision.kind,
        request.name.as_deref().unwrap_or_default()
    );
    let verdict = match tokio::time::timeout(budget, verdict(reviewer, &user, &delegation)).await {
        Ok(verdict) => verdict,
        Err(_) => {
            let first = delegation
                .or_else
                .clone()
                .or_else(|| delegation.each.first().cloned());
            match first {
                Some(d) => {
                    Verdict::Unknown(d, format!("no answer within {} ms", budget.as_millis()))
                }
                None => Verdict::Allowed,
            }
        }
    };
    let (message, control) = match verdict {
        Verdict::Allowed => return decision,
        Verdict::Missing(missing) => {
            let reasons: Vec<String> = missing
                .iter()
                .map(|d| {
                    format!(
                        "{} {}: user {:?} may not {} ({}), so Annexa will not {} on their behalf",
                        d.control.id,
                        d.control.title,
                        user.username,
                        d.check.describe(),
                        d.path,
                        d.purpose
                    )
                })
                .collect();
            let control = missing.first().map_or("none", |d| d.control.id);
            let mut message = format!("{object} is not compliant: {}", reasons.join("; "));
            if let Some(alternative) = &delegation.or_else
                && !missing.iter().any(|m| m.check == alternative.check)
            {
                message.push_str(&format!(
                    " (or the user needs {})",
                    alternative.check.describe()
                ));
            }
            (message, control)
        }
        Verdict::Unknown(d, error) => (
            format!(
                "{object} is not compliant: {} {}: could not verify that user {:?} may {} ({}): {error}; refused until it can be verified",
                d.control.id,
                d.control.title,
                user.username,
                d.check.describe(),
                d.path
            ),
            d.control.id,
        ),
    };
    decision.response = Response::deny(&request.uid, 403, "Forbidden", message);
    decision.counts = vec![(control, "deny")];
    decision
}
