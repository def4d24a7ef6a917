//! `annexa check`: the engine over manifests, offline. The same `policy` functions the
//! webhook and the controllers call, over the objects found in the given files.
//!
//! Namespaces: a namespace's labels come from a Namespace object in the input, else from
//! `--namespace-labels`, else it has only `kubernetes.io/metadata.name`; every evaluated object
//! says which policies applied and why. Workloads are evaluated in namespaces labelled
//! `annexa.dev/enforce=true`, and in namespaces whose labels the input does not give (a CI
//! check sees manifests, not the cluster).
//!
//! What could pass unseen is said, never skipped silently: AI-serving and GPU kinds Annexa
//! does not read, a policy given with `--policy` that selects nothing, an input with nothing to
//! evaluate. `--strict` makes each of them fail the check (exit 1).

use super::{CheckArgs, OutputFormat};
use crate::api::{Action, CompliancePolicy, ControlOutcome, ENFORCE_LABEL};
use crate::decode::{DeviceRequest, Object};
use crate::error::SerializeError;
use crate::evidence::records::{Applied, Checked, Gap, GapKind, Report, Skipped, Summary};
use crate::manifest::{self, Document, Origin};
use crate::policy::workload::is_workload_kind;
use crate::policy::{self, Context, Governed, Inventory, Profile};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::rc::Rc;

/// What the command line adds to the manifests.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-n`: the namespace of namespaced objects whose manifest names none (else `default`).
    pub namespace: Option<String>,
    /// `--namespace-labels`: the labels of namespaces the input has no Namespace object for.
    pub namespace_labels: BTreeMap<String, String>,
    /// CompliancePolicies read from `--policy` paths (name, where): each must select something.
    pub given_policies: Vec<(String, String)>,
}

/// Where a namespace's labels came from.
#[derive(Clone, Debug)]
enum LabelSource {
    Namespace(Origin),
    Flag,
    NameOnly,
}

/// AI-serving and training kinds by API group: they run models on GPUs, and Annexa does not read
/// them (the Pods they create are checked at admission).
const AI_GROUPS: [(&str, &str); 10] = [
    ("serving.kserve.io", "KServe"),
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"),
    ("ray.io", "KubeRay"),
    ("kubeflow.org", "Kubeflow"),
    ("trainer.kubeflow.org", "Kubeflow Trainer"),
    ("jobset.x-k8s.io", "JobSet"),
    ("machinelearning.seldon.io", "Seldon Core"),
    ("mlops.seldon.io", "Seldon Core 2"),
    ("batch.volcano.sh", "Volcano"),
    ("workload.codeflare.dev", "CodeFlare"),
];

/// Sets the namespace of a namespaced object (for `-n`).
fn set_namespace(object: &mut Object, namespace: &str) {
    let ns = Some(namespace.to_string());
    match object {
        Object::Dataset(o) => o.metadata.namespace = ns,
        Object::Model(o) => o.metadata.namespace = ns,
        Object::Approval(o) => o.metadata.namespace = ns,
        Object::Agent(o) => o.metadata.namespace = ns,
        Object::Workload(w) => w.namespace = namespace.to_string(),
        Object::Related(policy::Related::Claim(c)) => c.metadata.namespace = ns,
        Object::Related(policy::Related::ClaimTemplate(t)) => t.metadata.namespace = ns,
        Object::Skipped { namespace: n, .. } => *n = ns,
        Object::Related(policy::Related::Node(_))
        | Object::Policy(_)
        | Object::Namespace { .. } => {}
    }
}

/// The namespace of a namespaced object as decoded.
fn namespace_of(object: &Object) -> Option<&str> {
    match object {
        Object::Dataset(o) => o.metadata.namespace.as_deref(),
        Object::Model(o) => o.metadata.namespace.as_deref(),
        Object::Approval(o) => o.metadata.namespace.as_deref(),
        Object::Agent(o) => o.metadata.namespace.as_deref(),
        Object::Workload(w) => Some(&w.namespace),
        Object::Related(policy::Related::Claim(c)) => c.metadata.namespace.as_deref(),
        Object::Related(policy::Related::ClaimTemplate(t)) => t.metadata.namespace.as_deref(),
        Object::Skipped { namespace, .. } => namespace.as_deref(),
        Object::Related(policy::Related::Node(_))
        | Object::Policy(_)
        | Object::Namespace { .. } => None,
    }
}

/// Applies `-n` as `kubectl apply -n` does: objects that name no namespace take it, and one
/// that names another is an error.
fn apply_namespace(
    docs: &[Document],
    namespace: Option<&str>,
) -> Result<Vec<Document>, Vec<String>> {
    let Some(namespace) = namespace else {
        return Ok(docs.to_vec());
    };
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let mut doc = doc.clone();
        match namespace_of(&doc.object) {
            Some(_) if doc.namespace_omitted => set_namespace(&mut doc.object, namespace),
            Some(named) if named != namespace => errors.push(format!(
                "{}: the namespace of the object ({named:?}) does not match the namespace given with -n ({namespace:?})",
                doc.origin
            )),
            _ => {}
        }
        out.push(doc);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Evaluates decoded documents. Errors (invalid CompliancePolicies) make the input bad.
pub fn evaluate_documents(docs: &[Document], now: Timestamp) -> Result<Report, Vec<String>> {
    evaluate_with(docs, now, &Options::default())
}

/// Evaluates decoded documents with the command line's namespace and policy options.
pub fn evaluate_with(
    docs: &[Document],
    now: Timestamp,
    options: &Options,
) -> Result<Report, Vec<String>> {
    let docs = apply_namespace(docs, options.namespace.as_deref())?;
    let mut inventory = Inventory::default();
    let mut policies: Vec<CompliancePolicy> = Vec::new();
    let mut namespaces: BTreeMap<String, (BTreeMap<String, String>, Origin)> = BTreeMap::new();
    let mut errors = Vec::new();
    for doc in &docs {
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
                namespaces.insert(name.clone(), (labels, doc.origin.clone()));
            }
            Object::Related(r) => inventory.add_related(r.clone()),
            Object::Workload(_) | Object::Skipped { .. } => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let labels_of = |ns: &str| -> (BTreeMap<String, String>, LabelSource) {
        if let Some((labels, origin)) = namespaces.get(ns) {
            return (labels.clone(), LabelSource::Namespace(origin.clone()));
        }
        let mut labels = options.namespace_labels.clone();
        labels.insert("kubernetes.io/metadata.name".to_string(), ns.to_string());
        let source = if options.namespace_labels.is_empty() {
            LabelSource::NameOnly
        } else {
            LabelSource::Flag
        };
        (labels, source)
    };
    let mut profiles: BTreeMap<String, (Rc<Profile>, LabelSource)> = BTreeMap::new();
    let mut profile_for = |ns: &str| -> (Rc<Profile>, LabelSource) {
        profiles
            .entry(ns.to_string())
            .or_insert_with(|| {
                let (labels, source) = labels_of(ns);
                (Rc::new(Profile::for_namespace(&labels, &policies)), source)
            })
            .clone()
    };

    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    let mut not_checked = Vec::new();
    for doc in &docs {
        let namespace = namespace_of(&doc.object).unwrap_or("default").to_string();
        let governed = match &doc.object {
            Object::Dataset(o) => Governed::Dataset(o),
            Object::Model(o) => Governed::Model(o),
            Object::Approval(o) => Governed::Approval(o),
            Object::Agent(o) => Governed::Agent(o),
            Object::Workload(w) => {
                let enforced = match labels_of(&w.namespace) {
                    (_, LabelSource::NameOnly) => true,
                    (labels, _) => labels.get(ENFORCE_LABEL).is_some_and(|v| v == "true"),
                };
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
            Object::Skipped {
                kind,
                api_version,
                name,
                namespace: object_namespace,
                devices,
            } => {
                let subject = match object_namespace {
                    Some(ns) => format!("{kind}/{ns}/{name}"),
                    None => format!("{kind}/{name}"),
                };
                let (profile, _) = profile_for(&namespace);
                let gpu = devices.iter().find(|d| match d {
                    DeviceRequest::Resource { name, .. } => profile.is_gpu_resource(name),
                    DeviceRequest::Claim { .. } => true,
                });
                let asks = match gpu {
                    Some(DeviceRequest::Resource { path, name }) => {
                        format!(" It asks for GPUs ({name} at {path}).")
                    }
                    Some(DeviceRequest::Claim { path }) => format!(
                        " It asks for devices through a resource claim at {path}, which may be GPUs."
                    ),
                    None => String::new(),
                };
                let group = api_version.split_once('/').map_or("", |(g, _)| g);
                let gap = if let Some((_, project)) = AI_GROUPS.iter().find(|(g, _)| *g == group) {
                    Some((
                        GapKind::AiKind,
                        format!(
                            "{kind} ({project}, {api_version}) runs AI workloads, and Annexa does not read this kind: nothing in it was checked.{asks} The Pods it creates are checked at admission, in namespaces labelled {ENFORCE_LABEL}=true."
                        ),
                    ))
                } else if is_workload_kind(kind) {
                    Some((
                        GapKind::WorkloadVersion,
                        format!(
                            "{kind} in {api_version} is not read by Annexa (it reads v1, apps/v1 and batch/v1): nothing in it was checked.{asks}"
                        ),
                    ))
                } else if gpu.is_some() {
                    Some((
                        GapKind::GpuRequest,
                        format!(
                            "{kind} ({api_version}) is a kind Annexa does not read, so its GPU placement was not checked.{asks} The Pods it creates are checked at admission, in namespaces labelled {ENFORCE_LABEL}=true."
                        ),
                    ))
                } else {
                    None
                };
                match gap {
                    Some((kind, message)) => not_checked.push(Gap {
                        kind,
                        subject,
                        file: Some(doc.origin.to_string()),
                        origin: Some(doc.origin.clone()),
                        message,
                    }),
                    None => skipped.push(Skipped {
                        file: doc.origin.to_string(),
                        kind: kind.clone(),
                        name: name.clone(),
                        reason: NOT_GOVERNED.to_string(),
                    }),
                }
                continue;
            }
            // Policies, namespaces, and the claims and nodes the GPU rules resolve configure
            // the evaluation; they are not evaluated.
            Object::Policy(_) | Object::Namespace { .. } | Object::Related(_) => continue,
        };
        let (profile, source) = profile_for(&namespace);
        let applied = applied(
            &namespace,
            &profile,
            &source,
            !policies.is_empty(),
            doc.namespace_omitted && options.namespace.is_none(),
        );
        let ctx = Context {
            profile: &profile,
            lookup: &inventory,
            now,
            detail: crate::policy::Detail::Outcomes,
        };
        objects.push(Checked {
            origin: doc.origin.clone(),
            file: doc.origin.to_string(),
            applied,
            evaluation: policy::evaluate(governed, &ctx),
        });
    }

    // A policy the user pointed at that governs nothing is a gate that checked nothing.
    for (name, file) in &options.given_policies {
        if objects.iter().any(|o| o.applied.policies.contains(name)) {
            continue;
        }
        let mut seen: Vec<String> = Vec::new();
        for o in &objects {
            let ns = &o.applied.namespace;
            let entry = match profile_for(ns).1 {
                LabelSource::Namespace(_) => format!("{ns:?} (labels of its Namespace)"),
                LabelSource::Flag => format!("{ns:?} (labels from --namespace-labels)"),
                LabelSource::NameOnly => format!("{ns:?} (no Namespace in the input)"),
            };
            if !seen.contains(&entry) {
                seen.push(entry);
            }
        }
        let namespaces = if seen.is_empty() {
            "no object was evaluated".to_string()
        } else {
            format!("namespaces checked: {}", seen.join(", "))
        };
        not_checked.push(Gap {
            kind: GapKind::PolicySelectsNothing,
            subject: format!("CompliancePolicy/{name}"),
            file: Some(file.clone()),
            origin: None,
            message: format!(
                "CompliancePolicy {name:?} (given with --policy {file}) selects none of the checked objects' namespaces, so its rules were applied to nothing ({namespaces}). Add the Namespace objects (a namespaces file with --policy), give their labels with --namespace-labels, or the namespace with -n."
            ),
        });
    }
    if objects.is_empty() {
        let message = if docs.is_empty() {
            "the input holds no manifest (no .yaml, .yml or .json document): nothing was checked"
                .to_string()
        } else {
            format!(
                "the input holds no object Annexa evaluates ({} document(s) read, none a TrainingDataset, ModelDeployment, ModelApproval, AgentPolicy or workload in an enforced namespace): nothing was checked",
                docs.len()
            )
        };
        not_checked.push(Gap {
            kind: GapKind::NothingEvaluated,
            subject: "input".to_string(),
            file: None,
            origin: None,
            message,
        });
    }

    let mut summary = Summary {
        objects: objects.len(),
        skipped: skipped.len(),
        not_checked: not_checked.len(),
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
        not_checked,
        strict: false,
    })
}

/// The sentence that says which policies applied to an object and why.
fn applied(
    namespace: &str,
    profile: &Profile,
    source: &LabelSource,
    any_policy: bool,
    defaulted: bool,
) -> Applied {
    let by = match source {
        LabelSource::Namespace(origin) => {
            format!("the labels of its Namespace ({origin})")
        }
        LabelSource::Flag => "the labels given with --namespace-labels".to_string(),
        LabelSource::NameOnly => {
            format!("its name alone (no Namespace {namespace:?} in the input)")
        }
    };
    let mut reason = if !profile.policies.is_empty() {
        format!(
            "{} select{} namespace {namespace:?} by {by}",
            profile.policies.join(", "),
            if profile.policies.len() == 1 { "s" } else { "" }
        )
    } else if !any_policy {
        "baseline applied: no CompliancePolicy in the input (--policy adds policies kept elsewhere)"
            .to_string()
    } else {
        match source {
            LabelSource::NameOnly => format!(
                "baseline applied: no Namespace {namespace:?} in the input, so no CompliancePolicy selects it by its labels (add the Namespace, give its labels with --namespace-labels, or the namespace with -n)"
            ),
            _ => format!(
                "baseline applied: no CompliancePolicy selects namespace {namespace:?} by {by}"
            ),
        }
    };
    if defaulted {
        reason.push_str("; the manifest names no namespace, so it is \"default\" (-n sets one)");
    }
    Applied {
        namespace: namespace.to_string(),
        policies: profile.policies.clone(),
        reason,
    }
}

/// Parses `--namespace-labels key=value,key=value`.
fn parse_labels(texts: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for text in texts {
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    labels.insert(k.trim().to_string(), v.trim().to_string());
                }
                _ => {
                    return Err(format!(
                        "--namespace-labels {text:?}: {pair:?} is not key=value"
                    ));
                }
            }
        }
    }
    Ok(labels)
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
    let namespace_labels = match parse_labels(&args.namespace_labels) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let paths: Vec<std::path::PathBuf> =
        args.paths.iter().chain(&args.filenames).cloned().collect();
    let stdin_uses = paths
        .iter()
        .chain(&args.policies)
        .filter(|p| p.as_os_str() == "-")
        .count();
    if stdin_uses > 1 {
        eprintln!("error: `-` (stdin) can be given only once");
        return 2;
    }
    let (mut docs, mut errors) = manifest::load(&paths);
    let (policy_docs, policy_errors) = manifest::load(&args.policies);
    errors.extend(policy_errors);
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
    let given_policies = policy_docs
        .iter()
        .filter_map(|d| match &d.object {
            Object::Policy(p) => Some((
                p.metadata.name.clone().unwrap_or_default(),
                d.origin.file.clone(),
            )),
            _ => None,
        })
        .collect();
    docs.extend(policy_docs);
    let options = Options {
        namespace: args.namespace.clone(),
        namespace_labels,
        given_policies,
    };
    let mut report = match evaluate_with(&docs, now, &options) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!(
                "annexa check: {} input error(s); nothing was evaluated",
                errors.len()
            );
            return 2;
        }
    };
    report.strict = args.strict;
    let text: Result<String, SerializeError> = match args.output {
        OutputFormat::Table => Ok(table(&report, args.failures_only)),
        OutputFormat::Json => serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(SerializeError::from),
        OutputFormat::Junit => junit(&report).map_err(SerializeError::from),
        OutputFormat::Sarif => {
            serde_json::to_string_pretty(&crate::evidence::sarif::sarif(&report))
                .map(|s| s + "\n")
                .map_err(SerializeError::from)
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
    // The table says it on stdout; machine formats keep stdout parseable.
    if args.output != OutputFormat::Table {
        let level = if args.strict { "error" } else { "warning" };
        for gap in &report.not_checked {
            eprintln!("{level}: not checked: {}: {}", gap.subject, gap.message);
        }
    }
    if args.strict && !report.not_checked.is_empty() {
        eprintln!(
            "annexa check: {} thing(s) not checked (--strict)",
            report.not_checked.len()
        );
        return 1;
    }
    let ungoverned = report
        .skipped
        .iter()
        .filter(|s| s.reason == NOT_GOVERNED)
        .count()
        + report
            .not_checked
            .iter()
            .filter(|g| {
                matches!(
                    g.kind,
                    GapKind::AiKind | GapKind::WorkloadVersion | GapKind::GpuRequest
                )
            })
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
        out.push_str(&format!("  policy: {}\n", o.applied.reason));
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
    for g in &report.not_checked {
        let at = g
            .file
            .as_deref()
            .map(|f| format!("  ({f})"))
            .unwrap_or_default();
        out.push_str(&format!("NOT CHECKED {}{at}: {}\n", g.subject, g.message));
    }
    let sum = &report.summary;
    out.push_str(&format!(
        "\n{} objects checked: {} compliant, {} not; findings: {} Enforce, {} Warn, {} Audit; {} skipped",
        sum.objects,
        sum.compliant,
        sum.objects - sum.compliant,
        sum.enforce,
        sum.warn,
        sum.audit,
        sum.skipped
    ));
    if sum.not_checked > 0 {
        out.push_str(&format!(
            "; {} not checked ({})",
            sum.not_checked,
            if report.strict {
                "--strict: the check fails"
            } else {
                "--strict would fail the check"
            }
        ));
    }
    out.push('\n');
    out
}

/// JUnit XML, written by `quick-junit`: one test suite per object, one test case per control.
/// Enforce findings are failures; Warn and Audit findings are reported in the case's output;
/// not-applicable and excepted controls are skipped cases. Each suite's properties say which
/// policies applied, and its `file` attribute where the object was read. What was not checked
/// is a last suite, one case each: a failure with `--strict`, skipped otherwise. The `failures`
/// counts are the `<failure>` elements written (the crate counts them from the cases).
pub fn junit(report: &Report) -> Result<String, quick_junit::SerializeError> {
    use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
    let mut junit = quick_junit::Report::new("annexa check");
    for o in &report.objects {
        let e = &o.evaluation;
        let object = e.object.to_string();
        let mut suite = TestSuite::new(object.as_str());
        suite
            .extra
            .insert("file".into(), o.origin.file.as_str().into());
        suite.add_property(Property::new("annexa.policies", o.applied.reason.as_str()));
        for oc in &e.outcomes {
            let name = format!("{} {}", oc.control.id, oc.control.title);
            let mut output = None;
            let status = match oc.result {
                ControlOutcome::Pass => TestCaseStatus::success(),
                ControlOutcome::NotApplicable | ControlOutcome::Excepted => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(oc.message.as_str());
                    status
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
                        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        status
                            .set_message(oc.message.as_str())
                            .set_type("Enforce")
                            .set_description(text.join("\n"));
                        status
                    } else {
                        output = Some(text.join("\n"));
                        TestCaseStatus::success()
                    }
                }
            };
            let mut case = TestCase::new(name, status);
            case.set_classname(object.as_str());
            if let Some(output) = output {
                case.set_system_out(output);
            }
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    if !report.not_checked.is_empty() {
        let mut suite = TestSuite::new("not checked");
        for g in &report.not_checked {
            let mut status = if report.strict {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_type("NotChecked");
                status
            } else {
                TestCaseStatus::skipped()
            };
            status.set_message(g.message.as_str());
            let mut case = TestCase::new(g.subject.as_str(), status);
            case.set_classname("not checked");
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit.to_string()
}
