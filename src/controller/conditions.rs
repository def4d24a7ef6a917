//! Conditions in the `metav1.Condition` shape, merged so that `lastTransitionTime` moves only
//! when a condition's status really changes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as a reconciler computes it, before merging with what the status holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Longest message kept in a condition (the API server's limit is 32768).
const MAX_MESSAGE: usize = 4096;

fn bounded(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// Merges desired conditions into the existing ones. A condition whose status is unchanged
/// keeps its `lastTransitionTime`; conditions not desired any more are dropped.
pub fn merge(
    existing: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let last_transition_time = existing
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.clone(),
                message: bounded(&d.message),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Conditions worth an Event: those whose status or reason changed. On an object's first
/// reconcile (no condition of that type yet) only the failing ones and the `Compliant` summary
/// are: a new object passing every control says so once, not once per condition (thousands of
/// "passed" Events would bury the ones that matter, and cost the API server).
pub fn transitions<'a>(old: &[Condition], new: &'a [Condition]) -> Vec<&'a Condition> {
    new.iter()
        .filter(|n| match old.iter().find(|o| o.type_ == n.type_) {
            Some(o) => o.status != n.status || o.reason != n.reason,
            None => n.status == "False" || n.type_ == "Compliant",
        })
        .collect()
}

/// The transitions this process has already published an Event for, per object (by uid) and
/// condition type. The cache a reconcile reads can lag behind the status it just wrote, so
/// the next reconcile would find the same transition again: it is published once. After a
/// restart the cache is listed afresh and holds the written status, so [`transitions`] alone
/// is right. Bounded: past [`Published::CAPACITY`] entries the memory starts over.
#[derive(Debug, Default)]
pub struct Published {
    seen: std::sync::Mutex<std::collections::HashMap<(String, String), (String, String)>>,
}

impl Published {
    pub const CAPACITY: usize = 50_000;

    /// The transitions not yet published for the object `uid`, recorded as published.
    pub fn unpublished<'a>(
        &self,
        uid: &str,
        transitions: Vec<&'a Condition>,
    ) -> Vec<&'a Condition> {
        let Ok(mut seen) = self.seen.lock() else {
            return transitions;
        };
        if seen.len() > Self::CAPACITY {
            seen.clear();
        }
        transitions
            .into_iter()
            .filter(|c| {
                let key = (uid.to_string(), c.type_.clone());
                let value = (c.status.clone(), c.reason.clone());
                if seen.get(&key) == Some(&value) {
                    return false;
                }
                seen.insert(key, value);
                true
            })
            .collect()
    }
}

/// Whether a condition of this type is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let first = merge(
            &[],
            &[Desired::new("Ready", true, "Reconciled", "ok")],
            Some(1),
            at(100),
        );
        assert_eq!(first[0].last_transition_time, Time(at(100)));
        // Same status, new message and generation: the transition time stays.
        let second = merge(
            &first,
            &[Desired::new("Ready", true, "Reconciled", "still ok")],
            Some(2),
            at(200),
        );
        assert_eq!(second[0].last_transition_time, Time(at(100)));
        assert_eq!(second[0].message, "still ok");
        assert_eq!(second[0].observed_generation, Some(2));
        // A real transition moves it.
        let third = merge(
            &second,
            &[Desired::new("Ready", false, "Failed", "broken")],
            Some(2),
            at(300),
        );
        assert_eq!(third[0].last_transition_time, Time(at(300)));
        assert_eq!(third[0].status, "False");
    }

    #[test]
    fn transitions_report_new_and_changed_conditions_only() {
        let old = merge(
            &[],
            &[
                Desired::new("Ready", true, "Reconciled", ""),
                Desired::new("Compliant", true, "AllControlsPass", ""),
            ],
            None,
            at(1),
        );
        let new = merge(
            &old,
            &[
                Desired::new("Ready", true, "Reconciled", "x"),
                Desired::new("Compliant", false, "ControlsFailed", "A.8.24"),
            ],
            None,
            at(2),
        );
        let changed: Vec<_> = transitions(&old, &new)
            .into_iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(changed, vec!["Compliant"]);
    }

    #[test]
    fn first_reconcile_reports_failures_and_the_summary_only() {
        let new = merge(
            &[],
            &[
                Desired::new("Ready", true, "Reconciled", ""),
                Desired::new("Encrypted", true, "KmsKeySet", ""),
                Desired::new("Approved", false, "AwaitingApproval", "1 of 2"),
                Desired::new("Compliant", true, "AllControlsPass", ""),
            ],
            None,
            at(1),
        );
        let reported: Vec<_> = transitions(&[], &new)
            .into_iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(reported, vec!["Approved", "Compliant"]);
    }

    #[test]
    fn a_transition_found_again_in_a_stale_cache_is_published_once() {
        let published = Published::default();
        let stale = merge(
            &[],
            &[Desired::new("Compliant", true, "AllControlsPass", "")],
            None,
            at(1),
        );
        let failing = merge(
            &stale,
            &[Desired::new("Compliant", false, "ControlsFailed", "A.8.24")],
            None,
            at(2),
        );
        // Three reconciles read the same stale status: one Event.
        for expected in [1, 0, 0] {
            let fresh = published.unpublished("uid-1", transitions(&stale, &failing));
            assert_eq!(fresh.len(), expected);
        }
        // Another object's identical transition is its own.
        assert_eq!(
            published
                .unpublished("uid-2", transitions(&stale, &failing))
                .len(),
            1
        );
        // A real transition back, then failing again: each is published.
        let passing = merge(
            &failing,
            &[Desired::new("Compliant", true, "AllControlsPass", "")],
            None,
            at(3),
        );
        assert_eq!(
            published
                .unpublished("uid-1", transitions(&failing, &passing))
                .len(),
            1
        );
        assert_eq!(
            published
                .unpublished("uid-1", transitions(&passing, &failing))
                .len(),
            1
        );
    }

    #[test]
    fn long_messages_are_bounded() {
        let long = "é".repeat(5000);
        let merged = merge(
            &[],
            &[Desired::new("Compliant", false, "ControlsFailed", long)],
            None,
            at(1),
        );
        assert!(merged[0].message.len() <= MAX_MESSAGE + 3);
        assert!(merged[0].message.ends_with('…'));
    }
}
