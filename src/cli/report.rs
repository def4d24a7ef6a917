//! `annexa report`: what auditors ask for. From the cluster, each control with how many
//! objects pass and fail it, and where it fails, from the results the controllers wrote into
//! `status.controls`.

use crate::api::{
    AgentPolicy, ControlOutcome, ENFORCE_LABEL, HasCommonStatus, ModelApproval, ModelDeployment,
    TrainingDataset,
};
use crate::error::{Error, Result};
use crate::evidence::records::Observed;
use crate::policy::{CATALOGUE, ObjectRef};
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,
    /// Only objects in this namespace (default: every namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
    /// OSCAL 1.1.3 assessment-results (JSON).
    Oscal,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlSummary {
    pub id: &'static str,
    pub title: &'static str,
    pub pass: usize,
    pub fail: usize,
    pub not_applicable: usize,
    pub excepted: usize,
    /// Failing objects (at most 50 listed).
    pub failing: Vec<String>,
}

/// The workloads Annexa governs: Pods and the pod-template kinds in namespaces labelled
/// `annexa.dev/enforce=true`. They carry no status of Annexa's (they are checked at admission,
/// and GPU pods again by the background audit), so the controls above do not count them.
#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GovernedWorkloads {
    /// The enforced namespaces.
    pub namespaces: Vec<String>,
    /// How many of each kind (`Pod`, `Deployment`...), every kind listed.
    pub kinds: BTreeMap<String, usize>,
    pub total: usize,
}

impl GovernedWorkloads {
    /// `3 governed workloads (2 Pod, 1 Deployment) in 1 namespace labelled annexa.dev/enforce=true`.
    pub fn sentence(&self) -> String {
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        format!(
            "{} governed workload{}{} in {} namespace{} labelled {ENFORCE_LABEL}=true",
            self.total,
            if self.total == 1 { "" } else { "s" },
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            },
            self.namespaces.len(),
            if self.namespaces.len() == 1 { "" } else { "s" },
        )
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub generated_at: String,
    /// Annexa objects (TrainingDataset, ModelDeployment, ModelApproval, AgentPolicy).
    pub objects: usize,
    /// Workloads governed at admission (not in the per-control counts); None when they could
    /// not be listed (the user may not list namespaces or workloads).
    pub governed_workloads: Option<GovernedWorkloads>,
    /// Objects whose status does not (yet) reflect their spec.
    pub not_yet_evaluated: Vec<String>,
    pub controls: Vec<ControlSummary>,
}

const MAX_LISTED: usize = 50;

/// Aggregates observed results per control of the catalogue (pure).
pub fn aggregate(observed: &[Observed], generated_at: String) -> AuditReport {
    let controls = CATALOGUE
        .iter()
        .map(|c| {
            let mut s = ControlSummary {
                id: c.id,
                title: c.title,
                pass: 0,
                fail: 0,
                not_applicable: 0,
                excepted: 0,
                failing: Vec::new(),
            };
            for o in observed.iter().filter(|o| o.current) {
                for r in o.controls.iter().filter(|r| r.id == c.id) {
                    match r.result {
                        ControlOutcome::Pass => s.pass += 1,
                        ControlOutcome::NotApplicable => s.not_applicable += 1,
                        ControlOutcome::Excepted => s.excepted += 1,
                        ControlOutcome::Fail => {
                            s.fail += 1;
                            if s.failing.len() < MAX_LISTED {
                                s.failing.push(o.object.to_string());
                            }
                        }
                    }
                }
            }
            s
        })
        .collect();
    AuditReport {
        generated_at,
        objects: observed.len(),
        governed_workloads: Some(GovernedWorkloads::default()),
        not_yet_evaluated: observed
            .iter()
            .filter(|o| !o.current)
            .map(|o| o.object.to_string())
            .collect(),
        controls,
    }
}

fn governed_sentence(report: &AuditReport) -> String {
    report.governed_workloads.as_ref().map_or_else(
        || "governed workloads not counted".to_string(),
        GovernedWorkloads::sentence,
    )
}

pub fn table(report: &AuditReport) -> String {
    let mut out = format!(
        "{:<7} {:<58} {:>5} {:>5} {:>5} {:>5}  FAILING\n",
        "CONTROL", "TITLE", "PASS", "FAIL", "N/A", "EXC"
    );
    for c in &report.controls {
        let title: String = c.title.chars().take(58).collect();
        out.push_str(&format!(
            "{:<7} {:<58} {:>5} {:>5} {:>5} {:>5}  {}\n",
            c.id,
            title,
            c.pass,
            c.fail,
            c.not_applicable,
            c.excepted,
            c.failing.join(", ")
        ));
    }
    out.push_str(&format!(
        "\n{} objects; {} (checked at admission, not counted above); generated {}\n",
        report.objects,
        governed_sentence(report),
        report.generated_at
    ));
    if !report.not_yet_evaluated.is_empty() {
        out.push_str(&format!(
            "not yet evaluated: {}\n",
            report.not_yet_evaluated.join(", ")
        ));
    }
    out
}

pub fn markdown(report: &AuditReport) -> String {
    let mut out = format!(
        "# Annexa compliance report\n\nGenerated {} over {} objects; {} (checked at admission, not counted below).\n\n| Control | Title | Pass | Fail | N/A | Excepted | Failing objects |\n|---|---|---|---|---|---|---|\n",
        report.generated_at,
        report.objects,
        governed_sentence(report)
    );
    for c in &report.controls {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            c.id,
            c.title,
            c.pass,
            c.fail,
            c.not_applicable,
            c.excepted,
            c.failing.join("<br>")
        ));
    }
    if !report.not_yet_evaluated.is_empty() {
        out.push_str(&format!(
            "\nNot yet evaluated: {}\n",
            report.not_yet_evaluated.join(", ")
        ));
    }
    out
}

/// Lists one kind and reads each object's evaluated controls from its status.
async fn observe<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<Observed>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + HasCommonStatus
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|o| {
            let status = o.common_status();
            let controls = status.map(|s| s.controls.clone()).unwrap_or_default();
            Observed {
                object: ObjectRef::new(&K::kind(&()), o.namespace().as_deref(), &o.name_any()),
                current: !controls.is_empty()
                    && status.and_then(|s| s.observed_generation) == o.meta().generation,
                controls,
                since: status
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Compliant"))
                    .map(|c| c.last_transition_time.0.to_string()),
            }
        })
        .collect())
}

/// Every governed object of the Annexa kinds in the cluster (or one namespace), read back.
pub async fn observe_all(client: &Client, ns: Option<&str>) -> Result<Vec<Observed>> {
    let mut observed = observe::<TrainingDataset>(client, ns).await?;
    observed.extend(observe::<ModelDeployment>(client, ns).await?);
    observed.extend(observe::<ModelApproval>(client, ns).await?);
    observed.extend(observe::<AgentPolicy>(client, ns).await?);
    Ok(observed)
}

/// How many objects of one workload kind a namespace holds.
async fn count<K>(client: &Client, namespace: &str) -> Result<usize>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.list(&ListParams::default()).await?.items.len())
}

/// The workloads in the enforced namespaces (or in `namespace` only, if it is enforced).
pub async fn governed_workloads(
    client: &Client,
    namespace: Option<&str>,
) -> Result<GovernedWorkloads> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    let api: Api<Namespace> = Api::all(client.clone());
    let selector = format!("{ENFORCE_LABEL}=true");
    let mut namespaces: Vec<String> = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .filter(|n| namespace.is_none_or(|only| only == n))
        .collect();
    namespaces.sort();
    let mut governed = GovernedWorkloads {
        namespaces,
        ..GovernedWorkloads::default()
    };
    for ns in &governed.namespaces {
        let counts = [
            ("Pod", count::<Pod>(client, ns).await?),
            ("Deployment", count::<Deployment>(client, ns).await?),
            ("StatefulSet", count::<StatefulSet>(client, ns).await?),
            ("DaemonSet", count::<DaemonSet>(client, ns).await?),
            ("ReplicaSet", count::<ReplicaSet>(client, ns).await?),
            ("Job", count::<Job>(client, ns).await?),
            ("CronJob", count::<CronJob>(client, ns).await?),
        ];
        for (kind, n) in counts {
            *governed.kinds.entry(kind.to_string()).or_default() += n;
            governed.total += n;
        }
    }
    Ok(governed)
}

pub async fn run(args: &ReportArgs) -> Result<()> {
    let client = Client::try_default().await?;
    let observed = observe_all(&client, args.namespace.as_deref()).await?;
    let now = jiff::Timestamp::now().to_string();
    let mut report = aggregate(&observed, now.clone());
    if args.output != ReportFormat::Oscal {
        // Someone who may read Annexa's objects but not list namespaces or workloads still
        // gets the control counts.
        match governed_workloads(&client, args.namespace.as_deref()).await {
            Ok(governed) => report.governed_workloads = Some(governed),
            Err(e) => {
                eprintln!("warning: governed workloads not counted: {e}");
                report.governed_workloads = None;
            }
        }
    }
    let text = match args.output {
        ReportFormat::Oscal => {
            let document = crate::evidence::oscal::assessment_results(&observed, &now);
            serde_json::to_string_pretty(&document).map_err(Error::output)? + "\n"
        }
        ReportFormat::Table => table(&report),
        ReportFormat::Markdown => markdown(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report).map_err(Error::output)? + "\n",
    };
    super::info::print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlResult;

    fn result(id: &str, r: ControlOutcome) -> ControlResult {
        ControlResult {
            id: id.into(),
            title: String::new(),
            result: r,
            message: String::new(),
        }
    }

    #[test]
    fn aggregates_per_control_and_skips_stale_objects() {
        let observed = vec![
            Observed {
                object: ObjectRef::new("TrainingDataset", Some("ml"), "claims"),
                current: true,
                controls: vec![
                    result("A.8.24", ControlOutcome::Fail),
                    result("A.8.11", ControlOutcome::Pass),
                ],
                since: None,
            },
            Observed {
                object: ObjectRef::new("TrainingDataset", Some("ml"), "logs"),
                current: true,
                controls: vec![
                    result("A.8.24", ControlOutcome::Pass),
                    result("A.8.11", ControlOutcome::NotApplicable),
                ],
                since: None,
            },
            Observed {
                object: ObjectRef::new("TrainingDataset", Some("ml"), "new"),
                current: false,
                controls: vec![result("A.8.24", ControlOutcome::Fail)],
                since: None,
            },
        ];
        let report = aggregate(&observed, "now".into());
        let crypto = report.controls.iter().find(|c| c.id == "A.8.24").unwrap();
        assert_eq!((crypto.pass, crypto.fail), (1, 1));
        assert_eq!(crypto.failing, vec!["TrainingDataset/ml/claims"]);
        let masking = report.controls.iter().find(|c| c.id == "A.8.11").unwrap();
        assert_eq!((masking.pass, masking.not_applicable), (1, 1));
        assert_eq!(report.not_yet_evaluated, vec!["TrainingDataset/ml/new"]);
        assert!(markdown(&report).contains(
            "| A.8.24 | Use of cryptography | 1 | 1 | 0 | 0 | TrainingDataset/ml/claims |"
        ));
    }

    #[test]
    fn governed_workloads_are_counted_beside_the_annexa_objects() {
        let mut report = aggregate(&[], "now".into());
        assert!(
            table(&report).contains("\n0 objects; 0 governed workloads in 0 namespaces labelled annexa.dev/enforce=true (checked at admission, not counted above); generated now\n"),
            "{}",
            table(&report)
        );
        report.governed_workloads = Some(GovernedWorkloads {
            namespaces: vec!["fraud-prod".into()],
            kinds: [("Pod", 3), ("Deployment", 1), ("Job", 0)]
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            total: 4,
        });
        assert!(
            table(&report).contains("\n0 objects; 4 governed workloads (1 Deployment, 3 Pod) in 1 namespace labelled annexa.dev/enforce=true (checked at admission, not counted above); generated now\n"),
            "{}",
            table(&report)
        );
        assert!(
            markdown(&report).contains(
                "over 0 objects; 4 governed workloads (1 Deployment, 3 Pod) in 1 namespace"
            )
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["governedWorkloads"]["total"], 4);
        assert_eq!(json["governedWorkloads"]["kinds"]["Pod"], 3);
    }
}
