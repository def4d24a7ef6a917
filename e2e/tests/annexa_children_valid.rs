//! Every object Annexa's controllers build, for every example in `examples/`, is a valid
//! Kubernetes object: decoded strictly into its type (no unknown field, no wrong type) and
//! passing kube-apiserver's validation as the stand-in applies it (`src/standin/builtin.rs`).
//! The builders are pure, so this runs without a server; the e2e scenarios additionally have
//! the stand-in refuse any invalid child Annexa writes.
// Test helpers: panicking on a broken precondition is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use annexa_e2e::standin::builtin;
use annexa_operator::api::{Classification, ModelDeployment};
use annexa_operator::controller::{agent_policy, model_deployment, training_dataset};
use annexa_operator::decode::Object;
use annexa_operator::manifest;
use annexa_operator::policy::Profile;
use annexa_operator::policy::model_deployment::Promotion;
use serde::Serialize;

fn examples() -> Vec<manifest::Document> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let (docs, errors) = manifest::load(&[root]);
    assert!(errors.is_empty(), "examples decode: {errors:?}");
    docs
}

/// Checks one built object as `kubectl create` (Strict) would send it; returns a line per
/// problem.
fn problems<T: Serialize>(what: &str, object: &T) -> Vec<String> {
    let value = serde_json::to_value(object).unwrap();
    match builtin::check_object(&value, Some("Strict")) {
        Ok(warnings) if warnings.is_empty() => Vec::new(),
        Ok(warnings) => vec![format!("{what}: {warnings:?}")],
        Err(e) => vec![format!("{what}: {} {}", e.code, e.message)],
    }
}

fn model_children(m: &ModelDeployment, profiles: &[(String, Profile)]) -> (usize, Vec<String>) {
    let name = format!(
        "ModelDeployment {}",
        m.metadata.name.as_deref().unwrap_or("")
    );
    let mut checked = 3;
    let mut found = Vec::new();
    found.extend(problems(
        &format!("{name}: ServiceAccount"),
        &model_deployment::build_service_account(m),
    ));
    found.extend(problems(
        &format!("{name}: Service"),
        &model_deployment::build_service(m, &m.spec.release()),
    ));
    found.extend(problems(
        &format!("{name}: NetworkPolicy"),
        &model_deployment::build_network_policy(m, &m.spec.release()),
    ));
    // The Deployment as it is written once the release is served, under every profile of the
    // examples and every classification (they choose the GPU pool placement).
    let Some(release) = model_deployment::decide_serving(
        m,
        &Promotion::default(),
        true,
        None,
        jiff::Timestamp::now(),
    ) else {
        return (checked, found);
    };
    for (profile_name, profile) in profiles {
        for classification in Classification::ALL {
            let inputs = model_deployment::Inputs {
                model: m,
                profile,
                classification,
                release: Some(&release),
            };
            if let Some(d) = model_deployment::build_deployment(&inputs) {
                checked += 1;
                found.extend(problems(
                    &format!("{name}: Deployment ({profile_name}, {classification:?})"),
                    &d,
                ));
            }
        }
    }
    (checked, found)
}

#[test]
fn every_child_annexa_builds_for_the_examples_is_a_valid_kubernetes_object() {
    let docs = examples();
    let mut profiles = vec![("baseline".to_string(), Profile::baseline())];
    for d in &docs {
        if let Object::Policy(p) = &d.object {
            profiles.push((
                format!(
                    "CompliancePolicy {}",
                    p.metadata.name.as_deref().unwrap_or("")
                ),
                Profile::merge(&[p]),
            ));
        }
    }
    let (mut models, mut agents, mut datasets, mut checked) = (0, 0, 0, 0);
    let mut found = Vec::new();
    for d in &docs {
        match &d.object {
            Object::Model(m) => {
                models += 1;
                let (n, f) = model_children(m, &profiles);
                checked += n;
                found.extend(f);
            }
            Object::Agent(a) => {
                agents += 1;
                let name = format!("AgentPolicy {}", a.metadata.name.as_deref().unwrap_or(""));
                let (role, binding) = agent_policy::build_grant(a);
                checked += 5;
                found.extend(problems(
                    &format!("{name}: ServiceAccount"),
                    &agent_policy::build_service_account(a),
                ));
                found.extend(problems(&format!("{name}: Role"), &role));
                found.extend(problems(&format!("{name}: RoleBinding"), &binding));
                found.extend(problems(
                    &format!("{name}: NetworkPolicy"),
                    &agent_policy::build_network_policy(a),
                ));
                found.extend(problems(
                    &format!("{name}: NetworkPolicy (withheld)"),
                    &agent_policy::build_withheld_network_policy(a),
                ));
            }
            Object::Dataset(t) => {
                datasets += 1;
                if let Some((role, binding)) = training_dataset::build_access(t) {
                    let name = format!(
                        "TrainingDataset {}",
                        t.metadata.name.as_deref().unwrap_or("")
                    );
                    checked += 2;
                    found.extend(problems(&format!("{name}: Role"), &role));
                    found.extend(problems(&format!("{name}: RoleBinding"), &binding));
                }
            }
            _ => {}
        }
    }
    // The examples hold models, agents and datasets with credentials: nothing passes by
    // being empty.
    assert!(
        models >= 4 && agents >= 2 && datasets >= 4,
        "{models} {agents} {datasets}"
    );
    assert!(checked >= 40, "only {checked} objects built");
    assert!(found.is_empty(), "invalid children:\n{}", found.join("\n"));
}

/// The check itself refuses what kube-apiserver refuses, so the test above can fail.
#[test]
fn the_check_refuses_an_invalid_child() {
    let docs = examples();
    let m = docs
        .iter()
        .find_map(|d| match &d.object {
            Object::Model(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    let release = model_deployment::decide_serving(
        &m,
        &Promotion::default(),
        true,
        None,
        jiff::Timestamp::now(),
    )
    .unwrap();
    let profile = Profile::baseline();
    let d = model_deployment::build_deployment(&model_deployment::Inputs {
        model: &m,
        profile: &profile,
        classification: Classification::Internal,
        release: Some(&release),
    })
    .unwrap();
    let mut value = serde_json::to_value(&d).unwrap();
    value["spec"]["template"]["metadata"]["labels"] = serde_json::json!({"other": "labels"});
    let err = builtin::check_object(&value, Some("Strict")).unwrap_err();
    assert_eq!(err.code, 422, "{}", err.message);
    assert!(
        err.message
            .contains("spec.template.metadata.labels: Invalid value: {\"other\":\"labels\"}: `selector` does not match template `labels`"),
        "{}",
        err.message
    );
    let mut value = serde_json::to_value(&d).unwrap();
    value["spec"]["template"]["spec"]["containers"][0]["sidecar"] = serde_json::json!(true);
    let err = builtin::check_object(&value, Some("Strict")).unwrap_err();
    assert_eq!(err.code, 400, "{}", err.message);
    assert!(
        err.message.ends_with(
            "strict decoding error: unknown field \"spec.template.spec.containers[0].sidecar\""
        ),
        "{}",
        err.message
    );
}

/// A model version with build metadata (`2.1.0+cuda12`) is free text in the ModelDeployment,
/// but not a valid label value: the Deployment must still be one the API server accepts.
#[test]
fn a_model_version_that_is_no_label_value_still_builds_a_valid_deployment() {
    let docs = examples();
    let mut m = docs
        .iter()
        .find_map(|d| match &d.object {
            Object::Model(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    m.spec.model.version = "2.1.0+cuda12".to_string();
    m.spec.model.name = "fraud detection (EU)".to_string();
    let (checked, found) = model_children(&m, &[("baseline".to_string(), Profile::baseline())]);
    assert!(checked >= 4, "{checked}");
    assert!(found.is_empty(), "invalid children:\n{}", found.join("\n"));
}
