#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Evidence outputs as their consumers read them: `annexa check -o sarif` against the official
//! SARIF 2.1.0 schema, `annexa controls -o oscal` and the OSCAL assessment results against the
//! official OSCAL 1.1.3 schema, and `annexa soa` over the examples. The schemas are vendored
//! under `tests/schemas/` (see its README).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn annexa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annexa"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run annexa")
}

fn schema(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn violations(validator: &jsonschema::Validator, document: &Value) -> Vec<String> {
    validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(20)
        .collect()
}

fn sarif_validator() -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema("sarif-schema-2.1.0.json"))
        .unwrap()
}

fn sarif_of(args: &[&str]) -> (Output, Value) {
    let mut all = vec!["check", "-o", "sarif"];
    all.extend_from_slice(args);
    let out = annexa(&all);
    let log: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, log)
}

#[test]
fn sarif_log_of_the_noncompliant_examples_is_valid_and_locates_every_finding() {
    let (out, log) = sarif_of(&["examples/noncompliant"]);
    assert_eq!(out.status.code(), Some(1), "Enforce findings exit 1");
    let errors = violations(&sarif_validator(), &log);
    assert!(errors.is_empty(), "SARIF 2.1.0 schema: {errors:#?}");
    // The schema does reject a result with a level SARIF does not know.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "critical".into();
    assert!(!violations(&sarif_validator(), &broken).is_empty());

    // The same findings as the JSON report, each at its file and line.
    let json: Value =
        serde_json::from_slice(&annexa(&["check", "-o", "json", "examples/noncompliant"]).stdout)
            .unwrap();
    let mut expected = Vec::new();
    for object in json["objects"].as_array().unwrap() {
        let origin = object["file"].as_str().unwrap();
        let (file, rest) = origin.split_once(':').unwrap();
        let line: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
        for f in object["findings"].as_array().unwrap() {
            expected.push((
                f["control"].as_str().unwrap().to_string(),
                file.to_string(),
                line,
                f["path"].as_str().unwrap().to_string(),
                match f["action"].as_str().unwrap() {
                    "Enforce" => "error",
                    "Warn" => "warning",
                    _ => "note",
                },
            ));
        }
    }
    assert!(expected.len() > 20, "the examples fail many controls");

    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 18, "one rule per control of the catalogue");
    let results = run["results"].as_array().unwrap();
    let mut seen = Vec::new();
    for r in results {
        let rule = &rules[r["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], r["ruleId"]);
        let location = &r["locations"][0]["physicalLocation"];
        let field = r["properties"]["field"].as_str().unwrap().to_string();
        assert!(
            r["message"]["text"].as_str().unwrap().contains(&field),
            "message names the field: {r}"
        );
        seen.push((
            r["ruleId"].as_str().unwrap().to_string(),
            location["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .to_string(),
            location["region"]["startLine"].as_u64().unwrap(),
            field,
            r["level"].as_str().unwrap(),
        ));
    }
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);

    let crypto = rules.iter().find(|r| r["id"] == "A.8.24").unwrap();
    assert_eq!(crypto["name"], "Use of cryptography");
    assert!(
        crypto["help"]["text"]
            .as_str()
            .unwrap()
            .contains("KMS key with an allowed prefix")
    );
}

#[test]
fn sarif_levels_follow_the_policy_action_and_a_clean_run_has_no_results() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: agents
  labels: {team: agents}
---
apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: agents
spec:
  namespaceSelector:
    matchLabels: {team: agents}
  enforcement:
    action: Audit
    overrides:
      - control: A.8.12
        action: Warn
---
apiVersion: annexa.dev/v1alpha1
kind: AgentPolicy
metadata:
  name: triage
  namespace: agents
spec:
  serviceAccountName: triage
  permissions:
    - apiGroups: ["*"]
      resources: ["*"]
      verbs: ["get"]
  egress:
    - cidr: 0.0.0.0/0
      ports: [443]
"#,
    )
    .unwrap();
    let (out, log) = sarif_of(&[file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(violations(&sarif_validator(), &log).is_empty());
    let results = log["runs"][0]["results"].as_array().unwrap();
    let level_of = |id: &str| -> Vec<&str> {
        results
            .iter()
            .filter(|r| r["ruleId"] == id)
            .map(|r| r["level"].as_str().unwrap())
            .collect()
    };
    assert!(level_of("A.8.12").iter().all(|l| *l == "warning"));
    assert!(!level_of("A.8.12").is_empty(), "{results:#?}");
    assert!(!level_of("A.5.15").is_empty(), "{results:#?}");
    assert!(level_of("A.5.15").iter().all(|l| *l == "note"));

    let (out, log) = sarif_of(&["examples/compliant"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(violations(&sarif_validator(), &log).is_empty());
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
}

fn oscal_validator() -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema("oscal_complete_schema-1.1.3.json"))
        .unwrap()
}

#[test]
fn oscal_component_definition_is_valid_and_names_every_implemented_control() {
    let out = annexa(&["controls", "-o", "oscal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = violations(&oscal_validator(), &document);
    assert!(errors.is_empty(), "OSCAL 1.1.3 schema: {errors:#?}");
    let definition = &document["component-definition"];
    assert_eq!(definition["metadata"]["oscal-version"], "1.1.3");
    let implementation = &definition["components"][0]["control-implementations"][0];
    let ids: Vec<&str> = implementation["implemented-requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["control-id"].as_str().unwrap())
        .collect();
    let catalogue: Vec<&str> = annexa::policy::CATALOGUE.iter().map(|c| c.id).collect();
    assert_eq!(ids, catalogue);
    let crypto = &implementation["implemented-requirements"]
        [ids.iter().position(|id| *id == "A.8.24").unwrap()];
    assert!(crypto["description"].as_str().unwrap().contains("KMS key"));
    // Stable identifiers: a second run names the same component and requirements.
    let again: Value =
        serde_json::from_slice(&annexa(&["controls", "-o", "oscal"]).stdout).unwrap();
    assert_eq!(
        again["component-definition"]["components"],
        definition["components"]
    );
}

fn evaluated(dir: &str) -> annexa::evidence::records::Report {
    let (docs, errors) = annexa::manifest::load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)]);
    assert!(errors.is_empty(), "{errors:?}");
    let now = "2026-11-30T00:00:00Z".parse().unwrap();
    annexa::cli::check::evaluate_documents(&docs, now).unwrap()
}

#[test]
fn oscal_assessment_results_are_valid_with_an_observation_per_object_and_control() {
    let report = evaluated("examples/noncompliant");
    let mut observed = annexa::evidence::observed_from_check(&report);
    // One object whose status is older than its spec: left out, and said so.
    observed[0].current = false;
    let stale = observed[0].object.to_string();
    let document = annexa::evidence::oscal::assessment_results(&observed, "2026-11-30T10:00:00Z");
    let errors = violations(&oscal_validator(), &document);
    assert!(errors.is_empty(), "OSCAL 1.1.3 schema: {errors:#?}");
    // The schema does reject a document without its assessment plan reference.
    let mut broken = document.clone();
    broken["assessment-results"]
        .as_object_mut()
        .unwrap()
        .remove("import-ap");
    assert!(!violations(&oscal_validator(), &broken).is_empty());

    let result = &document["assessment-results"]["results"][0];
    assert_eq!(result["end"], "2026-11-30T10:00:00Z");
    let expected: usize = observed
        .iter()
        .filter(|o| o.current)
        .map(|o| o.controls.len())
        .sum();
    let observations = result["observations"].as_array().unwrap();
    assert_eq!(observations.len(), expected);
    assert!(result["remarks"].as_str().unwrap().contains(&stale));

    // Every control a current object fails is a not-satisfied finding pointing at a failure;
    // the others are satisfied.
    let findings = result["findings"].as_array().unwrap();
    let mut not_satisfied = 0;
    for c in annexa::policy::CATALOGUE {
        let fails = observed.iter().filter(|o| o.current).any(|o| {
            o.controls
                .iter()
                .any(|r| r.id == c.id && r.result == annexa::api::ControlOutcome::Fail)
        });
        let finding = findings
            .iter()
            .find(|f| f["target"]["target-id"] == c.id)
            .unwrap_or_else(|| panic!("no finding for {}", c.id));
        let state = if fails { "not-satisfied" } else { "satisfied" };
        assert_eq!(finding["target"]["status"]["state"], state, "{}", c.id);
        if !fails {
            continue;
        }
        not_satisfied += 1;
        let related: Vec<&str> = finding["related-observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["observation-uuid"].as_str().unwrap())
            .collect();
        let failing = observations.iter().find(|o| {
            related.contains(&o["uuid"].as_str().unwrap())
                && o["description"].as_str().unwrap().contains(": Fail")
        });
        assert!(failing.is_some(), "{} relates a failing observation", c.id);
    }
    assert!(not_satisfied >= 15, "the examples fail most controls");

    // The compliant examples satisfy every finding.
    let compliant = annexa::evidence::observed_from_check(&evaluated("examples/compliant"));
    let document = annexa::evidence::oscal::assessment_results(&compliant, "2026-11-30T10:00:00Z");
    assert!(violations(&oscal_validator(), &document).is_empty());
    let findings = document["assessment-results"]["results"][0]["findings"]
        .as_array()
        .unwrap();
    assert!(!findings.is_empty());
    assert!(
        findings
            .iter()
            .all(|f| f["target"]["status"]["state"] == "satisfied")
    );
}

fn soa(args: &[&str]) -> Output {
    let mut all = vec!["soa"];
    all.extend_from_slice(args);
    annexa(&all)
}

#[test]
fn soa_lists_all_93_controls_with_live_status_and_the_teams_decisions() {
    let out = soa(&[
        "-f",
        "examples/noncompliant",
        "--decisions",
        "examples/soa/decisions.yaml",
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statement: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = statement["controls"].as_array().unwrap();
    assert_eq!(rows.len(), 93);
    for (theme, count) in [
        ("Organizational controls", 37),
        ("People controls", 8),
        ("Physical controls", 14),
        ("Technological controls", 34),
    ] {
        assert_eq!(rows.iter().filter(|r| r["theme"] == theme).count(), count);
    }
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(row("A.8.32")["title"], "Change management");
    assert_eq!(
        row("A.6.3")["title"],
        "Information security awareness, education and training"
    );

    // Annexa's controls: live results from the manifests and the action of each policy.
    let crypto = row("A.8.24");
    assert_eq!(crypto["applicable"], "Yes");
    assert_eq!(crypto["owner"], "Head of Platform");
    assert!(crypto["annexa"]["fail"].as_u64().unwrap() > 0);
    assert_eq!(
        crypto["annexa"]["actions"],
        serde_json::json!({"claims-legacy-production": "Enforce"})
    );
    assert_eq!(
        rows.iter().filter(|r| !r["annexa"].is_null()).count(),
        annexa::policy::CATALOGUE.len()
    );
    // The rest: the team's decisions.
    let utilities = row("A.7.11");
    assert_eq!(utilities["applicable"], "No");
    assert!(
        utilities["justification"]
            .as_str()
            .unwrap()
            .contains("cloud provider")
    );
    assert!(utilities["annexa"].is_null());
    assert!(rows.iter().all(|r| r["applicable"] != "Undecided"));

    // Without a decisions file the controls Annexa does not implement are left undecided.
    let bare: Value =
        serde_json::from_slice(&soa(&["-f", "examples/compliant", "-o", "json"]).stdout).unwrap();
    let undecided = bare["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["applicable"] == "Undecided")
        .count();
    assert_eq!(undecided, 93 - annexa::policy::CATALOGUE.len());
}

#[test]
fn soa_flags_an_excluded_control_that_a_policy_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let decisions = dir.path().join("decisions.yaml");
    std::fs::write(
        &decisions,
        "controls:\n  - control: A.8.12\n    applicable: false\n    justification: Agents never leave the cluster.\n  - control: A.7.4\n    applicable: false\n    justification: No premises.\n",
    )
    .unwrap();
    let decisions = decisions.to_str().unwrap();
    // compliant/: production enforces A.8.12, staging only warns.
    let out = soa(&[
        "-f",
        "examples/compliant",
        "--decisions",
        decisions,
        "-o",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("contradiction: A.8.12 is marked not applicable, but CompliancePolicy production enforces it"),
        "{stderr}"
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 93);
    let a812 = records.iter().find(|r| &r[0] == "A.8.12").unwrap();
    assert_eq!(&a812[3], "No");
    assert!(a812[12].contains("production"));
    let a74 = records.iter().find(|r| &r[0] == "A.7.4").unwrap();
    assert_eq!(
        (&a74[3], &a74[12]),
        ("No", ""),
        "not Annexa's: no contradiction"
    );

    // The same exclusion where every policy only audits is no contradiction.
    let manifests = dir.path().join("audit.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: annexa.dev/v1alpha1\nkind: CompliancePolicy\nmetadata:\n  name: audit-only\nspec:\n  enforcement:\n    action: Audit\n",
    )
    .unwrap();
    let out = soa(&["-f", manifests.to_str().unwrap(), "--decisions", decisions]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let markdown = String::from_utf8_lossy(&out.stdout);
    assert!(markdown.contains("0 contradiction(s)"), "{markdown}");
    assert!(
        markdown
            .contains("| A.8.12 | Data leakage prevention | No | Agents never leave the cluster.")
    );
}

#[test]
fn soa_refuses_a_bad_decisions_file_naming_file_entry_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let decisions = dir.path().join("decisions.yaml");
    std::fs::write(
        &decisions,
        "controls:\n  - control: A.7.15\n    applicable: false\n    justification: x\n",
    )
    .unwrap();
    let out = soa(&[
        "-f",
        "examples/compliant",
        "--decisions",
        decisions.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("decisions.yaml: controls[0].control: \"A.7.15\" is not an ISO/IEC 27001:2022 Annex A control"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing printed from bad input");
}
