//! The example manifests: (a) every Annexa object validates against its CRD's OpenAPI schema
//! with an independent JSON-schema validator; (b) the engine finds nothing in
//! `examples/compliant` and fails every catalogue control in `examples/noncompliant`,
//! evaluated the way `annexa check` evaluates a set of files.

// Test code: a panic with the offending file is the clearest failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use annexa::api::{CompliancePolicy, ControlOutcome, ENFORCE_LABEL, crds};
use annexa::decode::Object;
use annexa::manifest::{Document, load};
use annexa::policy::{
    CATALOGUE, Context, Detail, Evaluation, Governed, Inventory, Profile, evaluate, validate_policy,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// (a) Schema validation

/// Turns a CRD's structural OpenAPI v3 schema into a JSON schema (draft 4) with the same
/// meaning for an API server:
/// - `nullable: true` admits null;
/// - objects with declared properties reject unknown fields (the API server would prune them
///   silently, which in a manifest is a typo the user needs to hear about) unless
///   `x-kubernetes-preserve-unknown-fields` says otherwise;
/// - the CEL rules we know are translated (`has(self.a) != has(self.b)`: exactly one of the
///   two; `size(self.metadata.name) <= N && self.metadata.name.matches(RE)`: the name's length
///   and pattern); transition rules (`oldSelf`) do not apply to a single manifest; any other rule
///   fails the test so that it gets translated here;
/// - other `x-kubernetes-*` keywords are dropped.
fn to_json_schema(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.remove("nullable") == Some(Value::Bool(true)) {
        if let Some(Value::String(t)) = map.get("type").cloned() {
            map.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(values)) = map.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    if map.remove("x-kubernetes-int-or-string") == Some(Value::Bool(true)) {
        map.remove("type");
        map.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    let preserve = map.remove("x-kubernetes-preserve-unknown-fields") == Some(Value::Bool(true));
    if let Some(Value::Array(rules)) = map.remove("x-kubernetes-validations") {
        let mut all_of = Vec::new();
        for rule in rules {
            let text = rule["rule"].as_str().unwrap().to_string();
            if text.contains("oldSelf") {
                continue;
            }
            let exactly_one = text
                .strip_prefix("has(self.")
                .and_then(|rest| rest.split_once(") != has(self."))
                .and_then(|(a, b)| Some((a, b.strip_suffix(')')?)));
            // `size(self.metadata.name) <= N && self.metadata.name.matches('RE')`: the name's
            // length and pattern.
            let name_rule = text
                .strip_prefix("size(self.metadata.name) <= ")
                .and_then(|rest| rest.split_once(" && self.metadata.name.matches('"))
                .and_then(|(max, re)| Some((max.parse::<u64>().ok()?, re.strip_suffix("')")?)));
            match (exactly_one, name_rule) {
                (Some((a, b)), _) => {
                    all_of.push(json!({"oneOf": [{"required": [a]}, {"required": [b]}]}))
                }
                (None, Some((max, pattern))) => all_of.push(json!({"properties": {"metadata": {
                    "properties": {"name": {"type": "string", "maxLength": max, "pattern": pattern}}
                }}})),
                (None, None) => {
                    panic!("CEL rule {text:?} has no JSON-schema translation in this test")
                }
            }
        }
        if !all_of.is_empty() {
            map.insert("allOf".into(), Value::Array(all_of));
        }
    }
    map.retain(|k, _| !k.starts_with("x-kubernetes-"));
    let is_object = map
        .get("type")
        .is_some_and(|t| t == "object" || t == &json!(["object", "null"]));
    if is_object
        && map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !preserve
    {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            props.values_mut().for_each(to_json_schema);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub @ Value::Object(_)) = map.get_mut(key) {
            to_json_schema(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            subs.iter_mut().for_each(to_json_schema);
        }
    }
}

/// A validator per Annexa kind, for whole objects (the CRD schema describes spec and status;
/// the API server checks apiVersion, kind and metadata itself).
fn validators() -> BTreeMap<String, jsonschema::Validator> {
    crds()
        .into_iter()
        .map(|(_, crd)| {
            let kind = crd.spec.names.kind.clone();
            assert_eq!(crd.spec.versions.len(), 1);
            let version = &crd.spec.versions[0];
            let mut schema = serde_json::to_value(
                version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap(),
            )
            .unwrap();
            to_json_schema(&mut schema);
            let root = schema.as_object_mut().unwrap();
            let props = root["properties"].as_object_mut().unwrap();
            props.insert("apiVersion".into(), json!({"enum": [format!("{}/{}", crd.spec.group, version.name)]}));
            props.insert("kind".into(), json!({"enum": [kind]}));
            props.insert(
                "metadata".into(),
                json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}),
            );
            root["required"].as_array_mut().unwrap().extend([json!("apiVersion"), json!("kind"), json!("metadata")]);
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("schema of {kind} does not compile: {e}"));
            (kind, validator)
        })
        .collect()
}

/// Validation errors of one object, as `path: message` lines.
fn schema_errors(
    validators: &BTreeMap<String, jsonschema::Validator>,
    object: &Value,
) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let validator = validators
        .get(kind)
        .unwrap_or_else(|| panic!("no CRD for annexa.dev kind {kind:?}"));
    validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

#[test]
fn every_annexa_object_in_examples_matches_its_crd_schema() {
    let validators = validators();
    let mut failures = Vec::new();
    let mut validated: BTreeMap<String, usize> = BTreeMap::new();
    for file in yaml_files(&examples()) {
        for (i, doc) in documents(&file).iter().enumerate() {
            if !doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("annexa.dev/"))
            {
                continue;
            }
            *validated
                .entry(doc["kind"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
            for error in schema_errors(&validators, doc) {
                failures.push(format!("{} (document {}): {error}", file.display(), i + 1));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "schema violations:\n{}",
        failures.join("\n")
    );
    // Every kind is shown in the examples.
    assert_eq!(
        validated.keys().collect::<Vec<_>>(),
        [
            "AgentPolicy",
            "CompliancePolicy",
            "ModelApproval",
            "ModelDeployment",
            "TrainingDataset"
        ]
    );
}

/// What the translated schema (see `to_json_schema`) refuses, each violation reported at the
/// field that breaks the CRD's schema. This is the test's own translation of the CRD schema,
/// not the API server: it is stricter on unknown fields, which the API server prunes (and
/// `kubectl`'s default strict field validation refuses).
#[test]
fn the_schema_check_reports_each_crd_schema_violation_at_its_field() {
    let validators = validators();
    let dataset = |spec: Value| {
        json!({"apiVersion": "annexa.dev/v1alpha1", "kind": "TrainingDataset",
               "metadata": {"name": "claims"}, "spec": spec})
    };
    let valid = dataset(
        json!({"source": {"uri": "s3://x/"}, "classification": "Internal",
        "retention": {"until": "2026-01-01T00:00:00Z"}, "personalData": null}),
    );
    assert_eq!(schema_errors(&validators, &valid), Vec::<String>::new());

    let invalid = [
        (
            "unknown field",
            "/spec",
            json!({"source": {"uri": "s3://x/"}, "classification": "Internal", "owners": "x"}),
        ),
        (
            "unknown nested field",
            "/spec/source",
            json!({"source": {"uri": "s3://x/", "bucket": "x"}, "classification": "Internal"}),
        ),
        (
            "closed enum",
            "/spec/classification",
            json!({"source": {"uri": "s3://x/"}, "classification": "Secret"}),
        ),
        (
            "digest pattern",
            "/spec/source/sha256",
            json!({"source": {"uri": "s3://x/", "sha256": "sha256:ABC"}, "classification": "Internal"}),
        ),
        (
            "both uri and pvc (CEL rule)",
            "/spec/source",
            json!({"source": {"uri": "s3://x/", "pvc": "p"}, "classification": "Internal"}),
        ),
        (
            "neither uri nor pvc (CEL rule)",
            "/spec/source",
            json!({"source": {}, "classification": "Internal"}),
        ),
        (
            "date-time format",
            "/spec/retention/until",
            json!({"source": {"uri": "s3://x/"}, "classification": "Internal", "retention": {"until": "next year"}}),
        ),
        (
            "duration pattern",
            "/spec/retention/period",
            json!({"source": {"uri": "s3://x/"}, "classification": "Internal", "retention": {"period": "6 months"}}),
        ),
        (
            "null where not nullable",
            "/spec/classification",
            json!({"source": {"uri": "s3://x/"}, "classification": null}),
        ),
        (
            "wrong type",
            "/spec/derivedFrom",
            json!({"source": {"uri": "s3://x/"}, "classification": "Internal", "derivedFrom": "claims-raw"}),
        ),
        (
            "missing required field",
            "/spec",
            json!({"source": {"uri": "s3://x/"}}),
        ),
    ];
    // The fields at which errors are reported (one violation may give several errors).
    let error_paths = |object: &Value| {
        validators[object["kind"].as_str().unwrap()]
            .iter_errors(object)
            .map(|e| e.instance_path().to_string())
            .collect::<BTreeSet<String>>()
    };
    for (name, path, spec) in invalid {
        assert_eq!(
            error_paths(&dataset(spec.clone())),
            BTreeSet::from([path.to_string()]),
            "{name}: {:?}",
            schema_errors(&validators, &dataset(spec))
        );
    }
    let mut wrong_version = valid.clone();
    wrong_version["apiVersion"] = json!("annexa.dev/v1");
    assert_eq!(
        error_paths(&wrong_version),
        BTreeSet::from(["/apiVersion".to_string()])
    );
}

// ---------------------------------------------------------------------------------------------
// (b) Evaluation, the way `annexa check` does it

struct Checked {
    file: String,
    evaluation: Evaluation,
}

/// Loads the paths, builds the inventory and a profile per namespace (from the Namespace
/// objects' labels and every CompliancePolicy in the set), and evaluates every governed
/// object. Workloads are evaluated in namespaces labelled `annexa.dev/enforce=true`, or
/// whose Namespace object is not in the set.
fn check(paths: &[PathBuf]) -> Vec<Checked> {
    let (docs, errors) = load(paths);
    assert!(errors.is_empty(), "examples do not load: {errors:#?}");
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut policies: Vec<CompliancePolicy> = Vec::new();
    let mut inventory = Inventory::default();
    for Document { object, .. } in &docs {
        match object {
            Object::Namespace { name, labels } => {
                namespaces.insert(name.clone(), labels.clone());
            }
            Object::Policy(p) => policies.push(p.clone()),
            Object::Dataset(d) => inventory.add_dataset(d.clone()),
            Object::Model(m) => inventory.add_model(m.clone()),
            Object::Approval(a) => inventory.add_approval(a.clone()),
            Object::Agent(a) => inventory.add_agent(a.clone()),
            Object::Related(r) => inventory.add_related(r.clone()),
            Object::Workload(_) | Object::Skipped { .. } => {}
        }
    }
    for p in &policies {
        assert_eq!(
            validate_policy(p),
            Vec::<String>::new(),
            "policy {:?}",
            p.metadata.name
        );
    }
    let profile_for = |namespace: &str| {
        Profile::for_namespace(
            &namespaces.get(namespace).cloned().unwrap_or_default(),
            &policies,
        )
    };
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for doc in &docs {
        let (namespace, governed) = match &doc.object {
            Object::Dataset(d) => (d.metadata.namespace.clone(), Governed::Dataset(d)),
            Object::Model(m) => (m.metadata.namespace.clone(), Governed::Model(m)),
            Object::Approval(a) => (a.metadata.namespace.clone(), Governed::Approval(a)),
            Object::Agent(a) => (a.metadata.namespace.clone(), Governed::Agent(a)),
            Object::Workload(w) => {
                let enforced = namespaces
                    .get(&w.namespace)
                    .is_none_or(|labels| labels.get(ENFORCE_LABEL).is_some_and(|v| v == "true"));
                if !enforced {
                    continue;
                }
                (Some(w.namespace.clone()), Governed::Workload(w))
            }
            _ => continue,
        };
        let profile = profile_for(namespace.as_deref().unwrap_or("default"));
        let ctx = Context {
            profile: &profile,
            lookup: &inventory,
            now,
            detail: Detail::Outcomes,
        };
        let evaluation = evaluate(governed, &ctx);
        // Admission records findings only; it must conclude exactly the same.
        let admission = evaluate(
            governed,
            &Context {
                detail: Detail::Findings,
                ..ctx
            },
        );
        assert_eq!(admission.findings, evaluation.findings, "{}", doc.origin);
        out.push(Checked {
            file: doc.origin.file.clone(),
            evaluation,
        });
    }
    out
}

fn describe(checked: &[Checked]) -> String {
    checked
        .iter()
        .flat_map(|c| {
            c.evaluation
                .findings
                .iter()
                .map(move |f| format!("{}: {:?} {}", c.file, f.action, f.message))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn compliant_examples_have_no_findings() {
    let checked = check(&[examples().join("compliant")]);
    assert!(
        checked.iter().all(|c| c.evaluation.findings.is_empty()),
        "findings in examples/compliant:\n{}",
        describe(&checked)
    );
    // Not vacuous: every object kind was evaluated, and every control passed somewhere.
    let kinds: BTreeSet<&str> = checked
        .iter()
        .map(|c| c.evaluation.object.kind.as_str())
        .collect();
    for kind in [
        "TrainingDataset",
        "ModelDeployment",
        "ModelApproval",
        "AgentPolicy",
        "Deployment",
        "Job",
        "CronJob",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} evaluated in examples/compliant"
        );
    }
    for control in CATALOGUE {
        assert!(
            checked.iter().any(|c| c
                .evaluation
                .outcome(control.id)
                .is_some_and(|o| o.result == ControlOutcome::Pass)),
            "{} never passes in examples/compliant (only not applicable?)",
            control.id
        );
    }
}

/// The controls named (`A.x.y`) in the comment lines a file starts with.
fn controls_in_header(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.')))
        .filter(|w| w.starts_with("A.") && w.len() > 3)
        .map(|w| w.trim_end_matches('.').to_string())
        .collect()
}

#[test]
fn noncompliant_examples_fail_every_control_and_say_which() {
    let checked = check(&[examples().join("noncompliant")]);
    let failed = |c: &Checked| -> BTreeSet<String> {
        c.evaluation
            .outcomes
            .iter()
            .filter(|o| o.result == ControlOutcome::Fail)
            .map(|o| o.control.id.to_string())
            .collect()
    };
    for control in CATALOGUE {
        assert!(
            checked.iter().any(|c| failed(c).contains(control.id)),
            "no example in examples/noncompliant fails {}",
            control.id
        );
    }
    assert!(
        checked
            .iter()
            .any(|c| c.evaluation.denials().next().is_some()),
        "annexa check would exit 0"
    );

    // Each file's header names exactly the controls its objects fail.
    let mut by_file: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in yaml_files(&examples().join("noncompliant")) {
        by_file.insert(file.display().to_string(), BTreeSet::new());
    }
    for c in &checked {
        by_file.get_mut(&c.file).unwrap().extend(failed(c));
    }
    for (file, failed) in &by_file {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.starts_with("# "),
            "{file} does not start with a comment"
        );
        assert_eq!(
            &controls_in_header(file),
            failed,
            "{file}: header vs failing controls"
        );
    }
}

#[test]
fn compliant_and_noncompliant_sets_do_not_select_each_other() {
    // Checked together (`annexa check examples/`), the compliant objects are still clean: no
    // policy of one set selects a namespace of the other.
    let checked = check(&[examples()]);
    let compliant = examples().join("compliant").display().to_string();
    let in_compliant: Vec<&Checked> = checked
        .iter()
        .filter(|c| c.file.starts_with(&compliant))
        .collect();
    assert!(!in_compliant.is_empty());
    assert!(
        in_compliant
            .iter()
            .all(|c| c.evaluation.findings.is_empty()),
        "{}",
        describe(&checked)
    );
    assert!(
        checked
            .iter()
            .any(|c| c.evaluation.denials().next().is_some())
    );
}
