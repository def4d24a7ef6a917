//! OpenReports (`openreports.io/v1alpha1` `Report` / `ClusterReport`, or the older
//! `wgpolicyk8s.io/v1alpha2` `PolicyReport` / `ClusterPolicyReport`, which has the same shape):
//! the report CRDs Policy Reporter, Headlamp and other cluster UIs read. Pure: the controller
//! (`controller::reports`) gathers the evaluations and writes what this builds.
//!
//! One report per namespace, named `annexa`, with one result per governed object and
//! evaluated control: `policy` the CompliancePolicies selecting the namespace (or
//! `annexa-baseline`), `rule` the control id, `category` the Annex A theme, `result` from the
//! outcome and the action, `resources` the object, `properties` the control title and action.
//! Bounded: at most [`MAX_RESULTS`] results per report (failures first); the summary always
//! counts every result, and the annotation `annexa.dev/results-omitted` says how many were
//! left out.

use crate::api::{Action, ControlOutcome};
use crate::evidence::annex_a::theme_name;
use crate::policy::{CATALOGUE, Evaluation};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The name of every report Annexa writes.
pub const REPORT_NAME: &str = "annexa";
/// Results kept per report: about 400 bytes each, so a full report stays near 400 KiB, far
/// below the API server's 1.5 MiB object limit.
pub const MAX_RESULTS: usize = 1000;
/// Annotation counting the results left out of a full report.
pub const OMITTED_ANNOTATION: &str = "annexa.dev/results-omitted";
/// The policy name of results in namespaces no CompliancePolicy selects.
pub const BASELINE_POLICY: &str = "annexa-baseline";

/// Which report API to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportApi {
    /// `openreports.io/v1alpha1` Report and ClusterReport.
    Openreports,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport and ClusterPolicyReport.
    Wgpolicy,
}

impl ReportApi {
    pub fn group(self) -> &'static str {
        match self {
            ReportApi::Openreports => "openreports.io",
            ReportApi::Wgpolicy => "wgpolicyk8s.io",
        }
    }
    pub fn version(self) -> &'static str {
        match self {
            ReportApi::Openreports => "v1alpha1",
            ReportApi::Wgpolicy => "v1alpha2",
        }
    }
    pub fn api_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }
    /// The namespaced kind and its plural.
    pub fn namespaced(self) -> (&'static str, &'static str) {
        match self {
            ReportApi::Openreports => ("Report", "reports"),
            ReportApi::Wgpolicy => ("PolicyReport", "policyreports"),
        }
    }
    /// The cluster-scoped kind and its plural.
    pub fn cluster(self) -> (&'static str, &'static str) {
        match self {
            ReportApi::Openreports => ("ClusterReport", "clusterreports"),
            ReportApi::Wgpolicy => ("ClusterPolicyReport", "clusterpolicyreports"),
        }
    }
}

/// The report result of a control outcome: Pass -> `pass`; a failure -> `fail` when its action
/// is Enforce, `warn` when Warn or Audit (admitted, reported only); NotApplicable and Excepted
/// -> `skip`.
pub fn result_of(outcome: ControlOutcome, action: Action) -> &'static str {
    match (outcome, action) {
        (ControlOutcome::Pass, _) => "pass",
        (ControlOutcome::Fail, Action::Enforce) => "fail",
        (ControlOutcome::Fail, _) => "warn",
        (ControlOutcome::NotApplicable | ControlOutcome::Excepted, _) => "skip",
    }
}

fn severity(action: Action) -> &'static str {
    match action {
        Action::Enforce => "high",
        Action::Warn => "medium",
        Action::Audit => "low",
    }
}

/// One evaluated object of a namespace.
pub struct Entry<'a> {
    pub evaluation: &'a Evaluation,
    pub api_version: String,
    pub uid: Option<String>,
    /// The CompliancePolicies selecting its namespace (empty: the baseline).
    pub policies: &'a [String],
    /// The action of each control in the namespace's profile.
    pub action: &'a dyn Fn(&str) -> Action,
}

fn rank(result: &str) -> u8 {
    match result {
        "fail" => 0,
        "warn" => 1,
        "skip" => 3,
        _ => 2,
    }
}

/// The action of a control on an evaluated object: a failure's action is the one its findings
/// carry (the engine may cap it), else the namespace's.
fn action_of(entry: &Entry<'_>, control: &str) -> Action {
    entry
        .evaluation
        .findings
        .iter()
        .filter(|f| f.control == control)
        .map(|f| f.action)
        .max()
        .unwrap_or_else(|| (entry.action)(control))
}

/// One result as the report holds it.
fn result_value(entry: &Entry<'_>, outcome: &crate::policy::Outcome, policy: &str) -> Value {
    let e = entry.evaluation;
    let control = outcome.control;
    let action = action_of(entry, control.id);
    let result = result_of(outcome.result, action);
    let mut resource = json!({
        "apiVersion": entry.api_version,
        "kind": e.object.kind,
        "name": e.object.name,
    });
    if let Some(ns) = &e.object.namespace {
        resource["namespace"] = json!(ns);
    }
    if let Some(uid) = &entry.uid {
        resource["uid"] = json!(uid);
    }
    let message = if outcome.result == ControlOutcome::Fail {
        let messages: Vec<&str> = e
            .findings
            .iter()
            .filter(|f| f.control == control.id)
            .map(|f| f.message.as_str())
            .collect();
        messages.join("; ")
    } else if outcome.message.is_empty() {
        format!("{} {}: {}", control.id, control.title, outcome.result)
    } else {
        format!("{} {}: {}", control.id, control.title, outcome.message)
    };
    let mut value = json!({
        "source": "annexa",
        "policy": policy,
        "rule": control.id,
        "category": theme_name(control.theme),
        "result": result,
        "scored": true,
        "message": message.chars().take(1024).collect::<String>(),
        "resources": [resource],
        "properties": {
            "title": control.title,
            "action": action.to_string(),
            "outcome": outcome.result.to_string(),
        },
    });
    if outcome.result == ControlOutcome::Fail {
        value["severity"] = json!(severity(action));
    }
    value
}

/// The results and summary of some entries, bounded; returns (summary, results, omitted).
/// Every outcome is counted, but only the results kept are built (a namespace of thousands of
/// objects costs a sort of small keys, not thousands of JSON values).
fn results(entries: &[Entry<'_>]) -> (Value, Vec<Value>, usize) {
    let mut summary: BTreeMap<&str, u64> = ["pass", "fail", "warn", "error", "skip"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    // (rank, name, kind, control index, entry, outcome)
    let mut keys: Vec<(u8, &str, &str, usize, usize, usize)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let e = entry.evaluation;
        for (j, outcome) in e.outcomes.iter().enumerate() {
            let result = result_of(outcome.result, action_of(entry, outcome.control.id));
            if let Some(count) = summary.get_mut(result) {
                *count += 1;
            }
            let index = CATALOGUE
                .iter()
                .position(|c| c.id == outcome.control.id)
                .unwrap_or(usize::MAX);
            keys.push((rank(result), &e.object.name, &e.object.kind, index, i, j));
        }
    }
    // Failures first, then by object and control (a stable order: unchanged input, unchanged
    // report, no write).
    keys.sort_unstable();
    let omitted = keys.len().saturating_sub(MAX_RESULTS);
    keys.truncate(MAX_RESULTS);
    let kept = keys
        .into_iter()
        .map(|(_, _, _, _, i, j)| {
            let entry = &entries[i];
            let policy = if entry.policies.is_empty() {
                BASELINE_POLICY.to_string()
            } else {
                entry.policies.join(",")
            };
            result_value(entry, &entry.evaluation.outcomes[j], &policy)
        })
        .collect();
    (json!(summary), kept, omitted)
}

fn report(
    api: ReportApi,
    kind: &str,
    namespace: Option<&str>,
    owner: Option<Value>,
    entries: &[Entry<'_>],
) -> Value {
    let (summary, results, omitted) = results(entries);
    let mut metadata = json!({
        "name": REPORT_NAME,
        "labels": { crate::api::MANAGED_BY.0: crate::api::MANAGED_BY.1 },
        "annotations": { OMITTED_ANNOTATION: omitted.to_string() },
    });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    json!({
        "apiVersion": api.api_version(),
        "kind": kind,
        "metadata": metadata,
        "source": "annexa",
        "summary": summary,
        "results": results,
    })
}

/// The report of one namespace, owned by the Namespace (deleted with it).
pub fn namespace_report(
    api: ReportApi,
    namespace: &str,
    namespace_uid: Option<&str>,
    entries: &[Entry<'_>],
) -> Value {
    let owner = namespace_uid.map(
        |uid| json!({ "apiVersion": "v1", "kind": "Namespace", "name": namespace, "uid": uid }),
    );
    report(api, api.namespaced().0, Some(namespace), owner, entries)
}

/// The cluster report: one A.8.22 result per CompliancePolicy from its scan of the GPU pool
/// nodes (`pass` when every pod there is governed, else `warn`, naming the pods).
pub fn cluster_report(api: ReportApi, policies: &[(String, Option<String>, Vec<String>)]) -> Value {
    let mut summary: BTreeMap<&str, u64> = ["pass", "fail", "warn", "error", "skip"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    let control = CATALOGUE.iter().find(|c| c.id == "A.8.22");
    let title = control.map(|c| c.title).unwrap_or_default();
    let results: Vec<Value> = policies
        .iter()
        .take(MAX_RESULTS)
        .map(|(name, uid, ungoverned)| {
            let result = if ungoverned.is_empty() {
                "pass"
            } else {
                "warn"
            };
            if let Some(count) = summary.get_mut(result) {
                *count += 1;
            }
            let message = if ungoverned.is_empty() {
                format!("A.8.22 {title}: every pod on the policy's GPU pool nodes is governed")
            } else {
                format!(
                    "A.8.22 {title}: pods on GPU pool nodes are not governed by Annexa: {}",
                    ungoverned.join(", ")
                )
            };
            let mut resource = json!({
                "apiVersion": "annexa.dev/v1alpha1",
                "kind": "CompliancePolicy",
                "name": name,
            });
            if let Some(uid) = uid {
                resource["uid"] = json!(uid);
            }
            json!({
                "source": "annexa",
                "policy": name,
                "rule": "A.8.22",
                "category": theme_name(crate::policy::Theme::Technological),
                "result": result,
                "scored": true,
                "message": message.chars().take(1024).collect::<String>(),
                "resources": [resource],
                "properties": { "title": title, "check": "GPU pool nodes run only governed pods" },
            })
        })
        .collect();
    json!({
        "apiVersion": api.api_version(),
        "kind": api.cluster().0,
        "metadata": {
            "name": REPORT_NAME,
            "labels": { crate::api::MANAGED_BY.0: crate::api::MANAGED_BY.1 },
            "annotations": { OMITTED_ANNOTATION: policies.len().saturating_sub(MAX_RESULTS).to_string() },
        },
        "source": "annexa",
        "summary": summary,
        "results": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Finding, ObjectRef, Outcome};
    use std::sync::Arc;

    fn evaluation(name: &str, failing: &[(&'static str, Action)]) -> Evaluation {
        let object = Arc::new(ObjectRef::new("TrainingDataset", Some("ml"), name));
        let outcomes = crate::policy::catalogue::controls_for("TrainingDataset")
            .map(|c| Outcome {
                control: c,
                result: if failing.iter().any(|(id, _)| *id == c.id) {
                    ControlOutcome::Fail
                } else if c.id == "A.8.11" {
                    ControlOutcome::NotApplicable
                } else {
                    ControlOutcome::Pass
                },
                message: String::new(),
            })
            .collect();
        let findings = failing
            .iter()
            .map(|(id, action)| Finding {
                control: id,
                action: *action,
                object: object.clone(),
                path: "spec".into(),
                message: format!("{id} broken"),
            })
            .collect();
        Evaluation {
            object,
            outcomes,
            findings,
        }
    }

    #[test]
    fn results_map_outcome_and_action_and_the_summary_counts_them() {
        let bad = evaluation(
            "bad",
            &[("A.8.24", Action::Enforce), ("A.5.9", Action::Audit)],
        );
        let good = evaluation("good", &[]);
        let policies = vec!["prod".to_string()];
        let action = |_: &str| Action::Enforce;
        let entries: Vec<Entry<'_>> = [&bad, &good]
            .into_iter()
            .map(|e| Entry {
                evaluation: e,
                api_version: "annexa.dev/v1alpha1".into(),
                uid: Some(format!("uid-{}", e.object.name)),
                policies: &policies,
                action: &action,
            })
            .collect();
        let report = namespace_report(ReportApi::Openreports, "ml", Some("ns-uid"), &entries);
        assert_eq!(report["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(report["kind"], "Report");
        assert_eq!(report["metadata"]["ownerReferences"][0]["uid"], "ns-uid");
        let per_object = crate::policy::catalogue::controls_for("TrainingDataset").count() as u64;
        assert_eq!(report["summary"]["fail"], 1);
        assert_eq!(report["summary"]["warn"], 1);
        assert_eq!(report["summary"]["skip"], 2);
        assert_eq!(report["summary"]["pass"], 2 * per_object - 4);
        let first = &report["results"][0];
        assert_eq!(first["rule"], "A.8.24");
        assert_eq!(first["result"], "fail");
        assert_eq!(first["severity"], "high");
        assert_eq!(first["policy"], "prod");
        assert_eq!(first["category"], "Technological controls");
        assert_eq!(first["properties"]["title"], "Use of cryptography");
        assert_eq!(first["properties"]["action"], "Enforce");
        assert_eq!(first["resources"][0]["uid"], "uid-bad");
        assert_eq!(report["results"][1]["result"], "warn");
        assert_eq!(report["results"][1]["properties"]["action"], "Audit");

        let wg = namespace_report(ReportApi::Wgpolicy, "ml", None, &entries);
        assert_eq!(wg["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(wg["kind"], "PolicyReport");
        assert!(wg["metadata"]["ownerReferences"].is_null());
    }

    #[test]
    fn a_report_never_holds_more_than_the_bound_and_says_how_many_it_left_out() {
        let many: Vec<Evaluation> = (0..300)
            .map(|i| evaluation(&format!("d{i:03}"), &[("A.8.24", Action::Enforce)]))
            .collect();
        let action = |_: &str| Action::Enforce;
        let entries: Vec<Entry<'_>> = many
            .iter()
            .map(|e| Entry {
                evaluation: e,
                api_version: "annexa.dev/v1alpha1".into(),
                uid: None,
                policies: &[],
                action: &action,
            })
            .collect();
        let total: usize = many.iter().map(|e| e.outcomes.len()).sum();
        assert!(total > MAX_RESULTS);
        let report = namespace_report(ReportApi::Openreports, "ml", None, &entries);
        let results = report["results"].as_array().unwrap();
        assert_eq!(results.len(), MAX_RESULTS);
        assert_eq!(
            report["metadata"]["annotations"][OMITTED_ANNOTATION],
            (total - MAX_RESULTS).to_string()
        );
        // Every failure is kept; the summary counts everything.
        assert_eq!(
            results.iter().filter(|r| r["result"] == "fail").count(),
            300
        );
        let counted: u64 = ["pass", "fail", "warn", "skip"]
            .iter()
            .map(|k| report["summary"][k].as_u64().unwrap())
            .sum();
        assert_eq!(counted as usize, total);
        assert_eq!(results[0]["policy"], BASELINE_POLICY);
        assert!(serde_json::to_vec(&report).unwrap().len() < 1024 * 1024);
    }
}
