#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Compliance reports end to end: the real `annexa run` keeps an OpenReports `Report` per
//! namespace on the stand-in API server. Annexa starts before the report CRD exists (and keeps
//! working), then the CRD is installed from the chart's copy, the examples are applied and each
//! namespace's report holds exactly the counts the same engine gives offline over the objects
//! read back from the cluster; a change to an object updates its rows and deleting the
//! objects empties the report.

mod annexa;

use annexa::*;
use annexa_e2e::harness::eventually;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn report(a: &Annexa, ns: &str) -> Option<Value> {
    get(a.kubectl(), ns, "reports.openreports.io/annexa")
}

/// Applies every file of `examples/compliant` but the ModelApprovals (the webhook accepts an
/// approval only from its approver, and the examples' approvers are not users here) and the
/// workloads (reports cover the Annexa kinds).
fn apply_examples(a: &Annexa) {
    let dir = repo_root().join("examples/compliant");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.contains("approvals") && !name.contains("workloads")
        })
        .collect();
    files.sort();
    for file in files {
        a.kubectl()
            .args(["apply", "-f", file.to_str().unwrap()])
            .ok()
            .unwrap_or_else(|e| panic!("kubectl apply {}: {e}", file.display()));
    }
}

/// The summary `annexa check` gives over the objects of `ns` as the cluster holds them now
/// (with the policies and the namespace): what the report must say.
fn expected_summary(a: &Annexa, ns: &str) -> BTreeMap<String, u64> {
    let mut docs = Vec::new();
    for kind in [
        "trainingdatasets",
        "modeldeployments",
        "modelapprovals",
        "agentpolicies",
    ] {
        let list = get(a.kubectl(), ns, kind).unwrap();
        docs.extend(list["items"].as_array().unwrap().iter().cloned());
    }
    let policies = get(a.kubectl(), ns, "compliancepolicies").unwrap();
    docs.extend(policies["items"].as_array().unwrap().iter().cloned());
    docs.push(get(a.kubectl(), ns, &format!("namespace/{ns}")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let out = std::process::Command::new(annexa_binary())
        .args(["check", "-o", "json", file.to_str().unwrap()])
        .output()
        .unwrap();
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "annexa check over the cluster's objects: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut summary: BTreeMap<String, u64> = ["pass", "fail", "warn", "error", "skip"]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect();
    for object in checked["objects"].as_array().unwrap() {
        if object["object"]["namespace"] != ns {
            continue;
        }
        for outcome in object["outcomes"].as_array().unwrap() {
            let id = &outcome["control"]["id"];
            let result = match outcome["result"].as_str().unwrap() {
                "Pass" => "pass",
                "Fail" => {
                    let enforce = object["findings"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| &f["control"] == id && f["action"] == "Enforce");
                    if enforce { "fail" } else { "warn" }
                }
                _ => "skip",
            };
            *summary.get_mut(result).unwrap() += 1;
        }
    }
    summary
}

fn summary_of(report: &Value) -> BTreeMap<String, u64> {
    ["pass", "fail", "warn", "error", "skip"]
        .iter()
        .map(|k| (k.to_string(), report["summary"][k].as_u64().unwrap_or(0)))
        .collect()
}

#[test]
fn reports_per_namespace_follow_the_objects_and_annexa_works_without_the_crd() {
    let a = Annexa::own_standin();
    let process = a.start("annexa-0", &[]);
    let metrics = metrics_port(&process);
    let mut process = process;

    // 1. No report CRD: a log line, a metric, and Annexa keeps reconciling.
    process
        .wait_for_log("compliance reports are skipped", TIMEOUT)
        .unwrap();
    let skipped = http_get(metrics, "/metrics").unwrap();
    assert!(
        counter_total(&skipped, "annexa_reports_skipped_total") >= 1.0,
        "{skipped}"
    );
    let case = Case::new(&a, "rep", staging_policy("Audit"));
    let ns = case.name().to_string();
    apply(a.kubectl_as("alice"), &dataset(&ns, "data"));
    wait_condition(&a, &ns, "td/data", "Ready", "True");

    // 2. The CRD appears (the chart's copy): reports for every namespace with objects.
    for file in [
        "openreports.io_reports.yaml",
        "openreports.io_clusterreports.yaml",
    ] {
        a.kubectl()
            .args([
                "apply",
                "--server-side",
                "-f",
                repo_root()
                    .join("charts/annexa/files/openreports")
                    .join(file)
                    .to_str()
                    .unwrap(),
            ])
            .ok()
            .unwrap();
    }
    apply_examples(&a);
    for example_ns in ["fraud-prod", "fraud-staging", "support-prod"] {
        let expected = expected_summary(&a, example_ns);
        assert!(expected["pass"] > 0, "{example_ns}: {expected:?}");
        let mut last = None;
        eventually(TIMEOUT, &format!("report of {example_ns}"), || {
            let r = report(&a, example_ns)?;
            let summary = summary_of(&r);
            last = Some(summary.clone());
            (summary == expected).then_some(r)
        })
        .unwrap_or_else(|e| panic!("{e}: expected {expected:?}, last {last:?}"));
    }
    let prod = report(&a, "fraud-prod").unwrap();
    assert_eq!(prod["metadata"]["ownerReferences"][0]["kind"], "Namespace");
    assert_eq!(prod["metadata"]["ownerReferences"][0]["name"], "fraud-prod");
    let results = prod["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .all(|r| r["source"] == "annexa" && r["policy"] == "production")
    );
    let crypto = results
        .iter()
        .find(|r| r["rule"] == "A.8.24" && r["resources"][0]["name"] == "claims")
        .expect("a row for A.8.24 on dataset claims");
    assert_eq!(crypto["category"], "Technological controls");
    assert_eq!(crypto["properties"]["title"], "Use of cryptography");
    assert_eq!(crypto["resources"][0]["kind"], "TrainingDataset");
    let cluster_report = get(
        a.kubectl(),
        "default",
        "clusterreports.openreports.io/annexa",
    )
    .expect("a ClusterReport");
    assert!(
        cluster_report["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["policy"] == "production" && r["rule"] == "A.8.22")
    );

    // The same results as OSCAL assessment results and in the Statement of Applicability,
    // read live from the cluster.
    let (ok, stdout, stderr) = annexa_cli(&a, "admin", &["report", "-o", "oscal"]);
    assert!(ok, "{stderr}");
    let oscal: Value = serde_json::from_str(&stdout).unwrap();
    let result = &oscal["assessment-results"]["results"][0];
    assert_eq!(
        oscal["assessment-results"]["metadata"]["oscal-version"],
        "1.1.3"
    );
    assert!(
        result["observations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["title"]
                .as_str()
                .unwrap()
                .starts_with("A.8.24 Use of cryptography on TrainingDataset/fraud-prod/claims")),
        "{result}"
    );
    // `annexa report` also counts the workloads Annexa governs (checked at admission, no status
    // of Annexa's): every Pod and pod-template object of the namespaces labelled
    // annexa.dev/enforce=true, as kubectl lists them.
    let (ok, stdout, stderr) = annexa_cli(&a, "admin", &["report", "-o", "json"]);
    assert!(ok, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let governed = &json["governedWorkloads"];
    let namespaces = get(a.kubectl(), "default", "namespaces").unwrap();
    let enforced: Vec<&str> = namespaces["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["metadata"]["labels"]["annexa.dev/enforce"] == "true")
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(enforced.contains(&"fraud-prod"), "{enforced:?}");
    let mut listed: Vec<&str> = governed["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected_namespaces = enforced.clone();
    expected_namespaces.sort();
    assert_eq!(listed, expected_namespaces, "{governed}");
    let mut total = 0;
    for (kind, resource) in [
        ("Pod", "pods"),
        ("Deployment", "deployments.apps"),
        ("StatefulSet", "statefulsets.apps"),
        ("DaemonSet", "daemonsets.apps"),
        ("ReplicaSet", "replicasets.apps"),
        ("Job", "jobs.batch"),
        ("CronJob", "cronjobs.batch"),
    ] {
        let count: u64 = enforced
            .iter()
            .map(|ns| {
                get(a.kubectl(), ns, resource)
                    .and_then(|l| l["items"].as_array().map(|i| i.len() as u64))
                    .unwrap_or_else(|| panic!("kubectl get {resource} -n {ns}"))
            })
            .sum();
        assert_eq!(governed["kinds"][kind], count, "{kind}: {governed}");
        total += count;
    }
    assert!(total > 0, "the examples hold workloads: {governed}");
    assert_eq!(governed["total"], total, "{governed}");
    let (ok, table, stderr) = annexa_cli(&a, "admin", &["report"]);
    assert!(ok, "{stderr}");
    let kinds: Vec<String> = governed["kinds"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, n)| n.as_u64() > Some(0))
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let sentence = format!(
        " {total} governed workload{} ({}) in {} namespaces labelled annexa.dev/enforce=true (checked at admission, not counted above); generated ",
        if total == 1 { "" } else { "s" },
        kinds.join(", "),
        enforced.len()
    );
    assert!(table.contains(&sentence), "{sentence}\n{table}");

    let (ok, stdout, stderr) = annexa_cli(&a, "admin", &["soa", "-o", "json"]);
    assert!(ok, "{stderr}");
    let soa: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(soa["source"], "cluster");
    assert_eq!(soa["controls"].as_array().unwrap().len(), 93);
    let crypto_row = soa["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "A.8.24")
        .unwrap();
    assert!(
        crypto_row["annexa"]["pass"].as_u64().unwrap() > 0,
        "{crypto_row}"
    );
    assert_eq!(crypto_row["annexa"]["actions"]["production"], "Enforce");

    // 3. The dataset of the Audit namespace passes; breaking A.5.9 turns its row to warn.
    let row = |r: &Value, rule: &str| -> Option<String> {
        r["results"].as_array()?.iter().find_map(|x| {
            (x["rule"] == rule && x["resources"][0]["name"] == "data")
                .then(|| x["result"].as_str().unwrap().to_string())
        })
    };
    eventually(TIMEOUT, "A.5.9 passes on data", || {
        let r = report(&a, &ns)?;
        (row(&r, "A.5.9").as_deref() == Some("pass")).then_some(())
    })
    .unwrap();
    let mut broken = dataset(&ns, "data");
    broken["spec"].as_object_mut().unwrap().remove("owner");
    apply(a.kubectl_as("alice"), &broken);
    let r = eventually(TIMEOUT, "A.5.9 warns on data", || {
        let r = report(&a, &ns)?;
        (row(&r, "A.5.9").as_deref() == Some("warn")).then_some(r)
    })
    .unwrap();
    assert_eq!(r["summary"]["warn"], 1);
    let warned = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rule"] == "A.5.9")
        .unwrap();
    assert_eq!(warned["properties"]["action"], "Audit");
    assert_eq!(warned["policy"], json!(case.policy_name()));
    assert!(warned["message"].as_str().unwrap().starts_with("A.5.9"));

    // The same finding under Enforce (the policy tightened after the object was admitted) is a
    // `fail` row: the one result an auditor reads as a control not met.
    case.patch_policy(json!({"enforcement": {"action": "Enforce"}}));
    let r = eventually(TIMEOUT, "A.5.9 fails on data", || {
        let r = report(&a, &ns)?;
        (row(&r, "A.5.9").as_deref() == Some("fail")).then_some(r)
    })
    .unwrap();
    assert_eq!(
        (r["summary"]["fail"].clone(), r["summary"]["warn"].clone()),
        (json!(1), json!(0))
    );
    let failed = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rule"] == "A.5.9")
        .unwrap();
    assert_eq!(failed["properties"]["action"], "Enforce");

    // 4. Deleting the namespace's objects empties its report.
    a.kubectl()
        .args(["-n", &ns, "delete", "td/data"])
        .ok()
        .unwrap();
    eventually(TIMEOUT, "the report to be empty", || {
        let r = report(&a, &ns)?;
        let empty = r["results"].as_array().is_none_or(|x| x.is_empty())
            && summary_of(&r).values().all(|v| *v == 0);
        empty.then_some(())
    })
    .unwrap();
    let written = http_get(metrics, "/metrics").unwrap();
    assert!(counter_total(&written, "annexa_reports_written_total") >= 4.0);
    a.keep("annexa-0", process);
}
