//! `annexa check`: the engine over manifests, offline. The same `policy` functions the
//! webhook and the controllers call, over the objects found in the given files.
//!
//! Namespaces: a namespace's labels come from a Namespace object in the input; one without a
//! Namespace object has only `kubernetes.io/metadata.name`. Workloads are evaluated in
//! namespaces labelled `annexa.dev/enforce=true`, and in namespaces the input has no
//! Namespace object for (a CI check sees manifests, not the cluster).

use super::{CheckArgs, OutputFormat};
use crate::api::{Action, CompliancePolicy, ControlOutcome, ENFORCE_LABEL};
use crate::manifest::{self, Document, Object, Origin};
use crate::policy::{self, Context, Evaluation, Governed, Inventory, Profile};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;

/// One evaluated object.
#[derive(Debug, Serialize)]
pub struct Checked {
    #[serde(skip)]
    pub origin: Origin,
    pub file: String,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// An object of a kind Annexa does not govern, or a workload outside an enforced namespace.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub file: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub objects: usize,
    pub compliant: usize,
    pub enforce: usize,
    pub warn: usize,
    pub audit: usize,
    pub skipped: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub objects: Vec<Checked>,
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// 0: no Enforce finding; 1: at least one.
    pub fn exit_code(&self) -> i32 {
        if self.summary.enforce > 0 { 1 } else { 0 }
    }
}

/// Evaluates decoded documents. Errors (invalid CompliancePolicies) make the input bad.
pub fn evaluate_documents(docs: &[Document], now: Timestamp) -> Result<Report, Vec<String>> {
    let mut inventory = Inventory::default();
    let mut policies: Vec<CompliancePolicy> = Vec::new();
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut errors = Vec::new();
    for doc in docs {
        match &doc.object {
            Object::Policy(p) => {
                for e in policy::validate_policy(p) {
                    errors.push(format!(
                        "{}: CompliancePolicy {:?}: {e}",
                        doc.origin,
                        p.metadata.name.as_deref().unwrap_or_default()
                    ));
                }
                policies.push(p.clone());
            }
            Object::Dataset(d) => inventory.add_dataset(d.clone()),
            Object::Model(m) => inventory.add_model(m.clone()),
            Object::Approval(a) => inventory.add_approval(a.clone()),
            Object::Agent(a) => inventory.add_agent(a.clone()),
            Object::Namespace { name, labels } => {
                let mut labels = labels.clone();
                labels.insert("kubernetes.io/metadata.name".to_string(), name.clone());
                namespaces.insert(name.clone(), labels);
            }
            Object::Related(r) => inventory.add_related(r.clone()),
            Object::Workload(_) | Object::Skipped { .. } => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut profiles: BTreeMap<String, std::rc::Rc<Profile>> = BTreeMap::new();
    let mut profile_for = |ns: &str| -> std::rc::Rc<Profile> {
        profiles
            .entry(ns.to_string())
            .or_insert_with(|| {
                let labels = namespaces.get(ns).cloned().unwrap_or_else(|| {
                    BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())])
                });
                std::rc::Rc::new(Profile::for_namespace(&labels, &policies))
            })
            .clone()
    };

    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for doc in docs {
        let namespace = match &doc.object {
            Object::Dataset(o) => o.metadata.namespace.clone(),
            Object::Model(o) => o.metadata.namespace.clone(),
            Object::Approval(o) => o.metadata.namespace.clone(),
            Object::Agent(o) => o.metadata.namespace.clone(),
            Object::Workload(w) => Some(w.namespace.clone()),
            _ => None,
        }
        .unwrap_or_else(|| "default".to_string());
        let governed = match &doc.object {
            Object::Dataset(o) => Governed::Dataset(o),
            Object::Model(o) => Governed::Model(o),
            Object::Approval(o) => Governed::Approval(o),
            Object::Agent(o) => Governed::Agent(o),
            Object::Workload(w) => {
                let enforced = namespaces
                    .get(&w.namespace)
                    .is_none_or(|labels| labels.get(ENFORCE_LABEL).is_some_and(|v| v == "true"));
                if !enforced {
                    skipped.push(Skipped {
                        file: doc.origin.to_string(),
                        kind: w.kind.clone(),
                        name: format!("{}/{}", w.namespace, w.name),
                        reason: format!(
                            "namespace {:?} is not labelled {ENFORCE_LABEL}=true",
                            w.namespace
                        ),
                    });
                    continue;
                }
                Governed::Workload(w)
            }
            Object::Skipped { kind, name } => {
                skipped.push(Skipped {
                    file: doc.origin.to_string(),
                    kind: kind.clone(),
                    name: name.clone(),
                    reason: NOT_GOVERNED.to_string(),
                });
                continue;
            }
            // Policies, namespaces, and the claims and nodes the GPU rules resolve configure
            // the evaluation; they are not evaluated.
            Object::Policy(_) | Object::Namespace { .. } | Object::Related(_) => continue,
        };
        let profile = profile_for(&namespace);
        let ctx = Context {
            profile: &profile,
            lookup: &inventory,
            now,
            detail: crate::policy::Detail::Outcomes,
        };
        objects.push(Checked {
            origin: doc.origin.clone(),
            file: doc.origin.to_string(),
            evaluation: policy::evaluate(governed, &ctx),
        });
    }

    let mut summary = Summary {
        objects: objects.len(),
        skipped: skipped.len(),
        ..Summary::default()
    };
    for o in &objects {
        if o.evaluation.is_compliant() {
            summary.compliant += 1;
        }
        for f in &o.evaluation.findings {
            match f.action {
                Action::Enforce => summary.enforce += 1,
                Action::Warn => summary.warn += 1,
                Action::Audit => summary.audit += 1,
            }
        }
    }
    Ok(Report {
        summary,
        objects,
        skipped,
    })
}

/// Runs `annexa check`; returns the exit code.
pub fn run(args: &CheckArgs) -> i32 {
    let now = match &args.at {
        None => Timestamp::now(),
        Some(text) => match text.parse::<Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: --at {text:?} is not an RFC 3339 instant: {e}");
                return 2;
            }
        },
    };
    let mut paths = args.paths.clone();
    paths.extend(args.policies.iter().cloned());
    if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        eprintln!("error: `-` (stdin) can be given only once");
        return 2;
    }
    let (docs, errors) = manifest::load(&paths);
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!(
            "annexa check: {} input error(s); nothing was evaluated",
            errors.len()
        );
        return 2;
    }
    let report = match evaluate_documents(&docs, now) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "annexa check: {} invalid policy setting(s); nothing was evaluated",
                errors.len()
            );
            return 2;
        }
    };
    let text = match args.output {
        OutputFormat::Table => Ok(table(&report, args.failures_only)),
        OutputFormat::Json => serde_json::to_string_pretty(&report).map(|s| s + "\n"),
        OutputFormat::Junit => Ok(junit(&report)),
        OutputFormat::Sarif => {
            serde_json::to_string_pretty(&crate::evidence::sarif::sarif(&report)).map(|s| s + "\n")
        }
    };
    match text {
        Ok(text) => {
            if let Err(e) = super::info::print(&text) {
                eprintln!("error: {e}");
                return 2;
            }
        }
        Err(e) => {
            eprintln!("error: cannot serialize the report: {e}");
            return 2;
        }
    }
    let ungoverned = report
        .skipped
        .iter()
        .filter(|s| s.reason == NOT_GOVERNED)
        .count();
    if args.fail_on_ungoverned && ungoverned > 0 {
        eprintln!(
            "annexa check: {ungoverned} object(s) of kinds Annexa does not govern (--fail-on-ungoverned)"
        );
        return 1;
    }
    report.exit_code()
}

/// Why an object of a kind Annexa does not govern is skipped.
const NOT_GOVERNED: &str = "not a kind Annexa governs";

fn label(result: ControlOutcome) -> &'static str {
    match result {
        ControlOutcome::Pass => "PASS",
        ControlOutcome::Fail => "FAIL",
        ControlOutcome::NotApplicable => "N/A ",
        ControlOutcome::Excepted => "EXC ",
    }
}

/// Human-readable report: per object, each control's result; failures with their action.
pub fn table(report: &Report, failures_only: bool) -> String {
    let mut out = String::new();
    for o in &report.objects {
        let e = &o.evaluation;
        if failures_only && e.is_compliant() {
            continue;
        }
        let verdict = if e.denials().next().is_some() {
            "DENY"
        } else if e.is_compliant() {
            "OK"
        } else {
            "WARN"
        };
        out.push_str(&format!("{verdict:<5}{}  ({})\n", e.object, o.file));
        for outcome in &e.outcomes {
            let c = outcome.control;
            if outcome.result == ControlOutcome::Fail {
                for f in e.findings.iter().filter(|f| f.control == c.id) {
                    out.push_str(&format!(
                        "  FAIL {:<8}{}  [{}]\n",
                        f.action.to_string(),
                        f.message,
                        f.path
                    ));
                }
            } else {
                let note = if outcome.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", outcome.message)
                };
                out.push_str(&format!(
                    "  {} {:<8}{} {}{note}\n",
                    label(outcome.result),
                    "",
                    c.id,
                    c.title
                ));
            }
        }
        out.push('\n');
    }
    for s in &report.skipped {
        out.push_str(&format!(
            "SKIP {} {}  ({}): {}\n",
            s.kind, s.name, s.file, s.reason
        ));
    }
    let sum = &report.summary;
    out.push_str(&format!(
        "\n{} objects checked: {} compliant, {} not; findings: {} Enforce, {} Warn, {} Audit; {} skipped\n",
        sum.objects,
        sum.compliant,
        sum.objects - sum.compliant,
        sum.enforce,
        sum.warn,
        sum.audit,
        sum.skipped
    ));
    out
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one test suite per object, one test case per control. Enforce findings are
/// failures; Warn and Audit findings are reported in the case's output; not-applicable and
/// excepted controls are skipped cases.
pub fn junit(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures: usize = report.summary.enforce;
    let tests: usize = report
        .objects
        .iter()
        .map(|o| o.evaluation.outcomes.len())
        .sum();
    out.push_str(&format!(
        "<testsuites name=\"annexa check\" tests=\"{tests}\" failures=\"{failures}\">\n"
    ));
    for o in &report.objects {
        let e = &o.evaluation;
        let suite_failures = e
            .outcomes
            .iter()
            .filter(|oc| {
                e.findings
                    .iter()
                    .any(|f| f.control == oc.control.id && f.action == Action::Enforce)
            })
            .count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{suite_failures}\" file=\"{}\">\n",
            xml_escape(&e.object.to_string()),
            e.outcomes.len(),
            xml_escape(&o.origin.file)
        ));
        for oc in &e.outcomes {
            let name = format!("{} {}", oc.control.id, oc.control.title);
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">",
                xml_escape(&e.object.to_string()),
                xml_escape(&name)
            ));
            match oc.result {
                ControlOutcome::Pass => {}
                ControlOutcome::NotApplicable | ControlOutcome::Excepted => {
                    out.push_str(&format!(
                        "<skipped message=\"{}\"/>",
                        xml_escape(&oc.message)
                    ));
                }
                ControlOutcome::Fail => {
                    let findings: Vec<_> = e
                        .findings
                        .iter()
                        .filter(|f| f.control == oc.control.id)
                        .collect();
                    let enforce = findings.iter().any(|f| f.action == Action::Enforce);
                    let text: Vec<String> = findings
                        .iter()
                        .map(|f| format!("[{}] {} ({})", f.action, f.message, f.path))
                        .collect();
                    if enforce {
                        out.push_str(&format!(
                            "<failure type=\"Enforce\" message=\"{}\">{}</failure>",
                            xml_escape(&oc.message),
                            xml_escape(&text.join("\n"))
                        ));
                    } else {
                        out.push_str(&format!(
                            "<system-out>{}</system-out>",
                            xml_escape(&text.join("\n"))
                        ));
                    }
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
