//! OSCAL (NIST Open Security Controls Assessment Language) 1.1.3, JSON:
//!
//! - [`component_definition`] (`annexa controls -o oscal`): Annexa as a software component
//!   and, per Annex A control it implements, how (generated from the catalogue);
//! - [`assessment_results`] (`annexa report -o oscal`): one observation per object and
//!   control as read from the cluster, one finding per evaluated control (not satisfied when
//!   any object fails it), over the time window the results cover.
//!
//! Identifiers are name-based UUIDs (v5) under an Annexa namespace, so the same object and
//! control get the same UUID in every document generated at the same instant, and the
//! component definition is stable from one run to the next. Tests validate both documents
//! against the official OSCAL 1.1.3 JSON schema.

use crate::api::ControlOutcome;
use crate::evidence::records::Observed;
use crate::policy::CATALOGUE;
use serde_json::{Value, json};
use uuid::Uuid;

/// The OSCAL version both documents declare (and are validated against).
pub const OSCAL_VERSION: &str = "1.1.3";

/// Where the controls are defined. There is no public OSCAL catalogue of ISO/IEC 27001:2022;
/// this names the standard itself.
pub const ISO_27001_SOURCE: &str = "https://www.iso.org/standard/27001";

/// The namespace of every name-based UUID Annexa writes.
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"annexa.dev")
}

fn uuid(name: &str) -> String {
    Uuid::new_v5(&namespace(), name.as_bytes()).to_string()
}

fn prop(name: &str, value: &str) -> Value {
    json!({ "name": name, "ns": "https://annexa.dev/ns/oscal", "value": value })
}

fn metadata(title: &str, last_modified: &str) -> Value {
    json!({
        "title": title,
        "last-modified": last_modified,
        "version": env!("CARGO_PKG_VERSION"),
        "oscal-version": OSCAL_VERSION,
    })
}

/// Annexa as an OSCAL component definition: which Annex A controls it implements and how.
pub fn component_definition(last_modified: &str) -> Value {
    let requirements: Vec<Value> = CATALOGUE
        .iter()
        .map(|c| {
            let mut props = vec![prop("theme", &format!("{:?}", c.theme))];
            props.extend(c.kinds.iter().map(|k| prop("evaluated-on", k)));
            json!({
                "uuid": uuid(&format!("implemented-requirement/{}", c.id)),
                "control-id": c.id,
                "description": format!("{} {}: {}", c.id, c.title, c.checks),
                "props": props,
            })
        })
        .collect();
    json!({
        "component-definition": {
            "uuid": uuid(&format!("component-definition/{}", env!("CARGO_PKG_VERSION"))),
            "metadata": metadata("Annexa: ISO/IEC 27001:2022 Annex A controls for AI workloads on Kubernetes", last_modified),
            "components": [{
                "uuid": uuid("component/annexa"),
                "type": "software",
                "title": "Annexa",
                "description": "Kubernetes operator that enforces ISO/IEC 27001:2022 Annex A controls on AI workloads: an admission webhook refuses (Enforce), warns (Warn) or admits and reports (Audit) what fails a control, and controllers write each object's control results into its status.",
                "purpose": "Policy enforcement and continuous compliance evidence for models, training datasets, AI agents and GPU workloads.",
                "props": [prop("version", env!("CARGO_PKG_VERSION"))],
                "control-implementations": [{
                    "uuid": uuid("control-implementation/iso27001-2022-annex-a"),
                    "source": ISO_27001_SOURCE,
                    "description": "The Annex A controls of ISO/IEC 27001:2022 Annexa evaluates, in the webhook, the controllers and `annexa check` alike, with the action (Enforce, Warn, Audit) each CompliancePolicy sets.",
                    "implemented-requirements": requirements,
                }],
            }],
        }
    })
}

fn state(observed: &[&Observed], control: &str) -> (usize, usize) {
    let mut pass = 0;
    let mut fail = 0;
    for o in observed {
        for r in o.controls.iter().filter(|r| r.id == control) {
            match r.result {
                ControlOutcome::Fail => fail += 1,
                _ => pass += 1,
            }
        }
    }
    (pass, fail)
}

/// The assessment results of the objects read from the cluster at `generated_at`. Objects
/// whose status does not reflect their spec yet are left out (and named in the remarks).
pub fn assessment_results(observed: &[Observed], generated_at: &str) -> Value {
    let current: Vec<&Observed> = observed.iter().filter(|o| o.current).collect();
    let stale: Vec<String> = observed
        .iter()
        .filter(|o| !o.current)
        .map(|o| o.object.to_string())
        .collect();
    let seed = |name: &str| uuid(&format!("{generated_at}/{name}"));
    // The window: from the oldest result still standing to the moment it was read.
    let start = current
        .iter()
        .filter_map(|o| o.since.as_deref())
        .min()
        .unwrap_or(generated_at)
        .to_string();

    let mut resources = Vec::new();
    let mut observations = Vec::new();
    for o in &current {
        let object = o.object.to_string();
        let subject = seed(&format!("subject/{object}"));
        resources.push(json!({
            "uuid": subject,
            "title": object,
            "props": [
                prop("kind", &o.object.kind),
                prop("name", &o.object.name),
            ],
        }));
        for r in &o.controls {
            let mut props = vec![
                prop("control-id", &r.id),
                prop("result", &r.result.to_string()),
            ];
            if let Some(since) = &o.since {
                props.push(prop("result-since", since));
            }
            let title = crate::policy::catalogue::control(&r.id)
                .map(|c| c.title)
                .unwrap_or(r.title.as_str());
            let message = if r.message.is_empty() {
                String::new()
            } else {
                format!(": {}", r.message)
            };
            observations.push(json!({
                "uuid": seed(&format!("observation/{object}/{}", r.id)),
                "title": format!("{} {title} on {object}", r.id),
                "description": format!("{} {title}: {}{message}", r.id, r.result),
                "props": props,
                "methods": ["TEST"],
                "types": ["control-objective"],
                "subjects": [{ "subject-uuid": subject, "type": "resource", "title": object }],
                "collected": generated_at,
            }));
        }
    }

    let mut findings = Vec::new();
    let mut reviewed = Vec::new();
    for c in CATALOGUE {
        let (pass, fail) = state(&current, c.id);
        if pass + fail == 0 {
            continue;
        }
        reviewed.push(json!({ "control-id": c.id }));
        let related: Vec<Value> = current
            .iter()
            .filter(|o| o.controls.iter().any(|r| r.id == c.id))
            .map(|o| json!({ "observation-uuid": seed(&format!("observation/{}/{}", o.object, c.id)) }))
            .collect();
        let (state, verdict) = if fail > 0 {
            ("not-satisfied", "fail")
        } else {
            ("satisfied", "pass")
        };
        findings.push(json!({
            "uuid": seed(&format!("finding/{}", c.id)),
            "title": format!("{} {}", c.id, c.title),
            "description": format!("{} of {} evaluated objects fail {} {}.", fail, pass + fail, c.id, c.title),
            "target": {
                "type": "objective-id",
                "target-id": c.id,
                "status": { "state": state, "reason": verdict },
            },
            "related-observations": related,
        }));
    }

    let plan = seed("assessment-plan");
    let mut result = json!({
        "uuid": seed("result"),
        "title": "Annexa continuous assessment",
        "description": format!("Control results the Annexa controllers wrote into the status of {} governed objects, read from the cluster.", current.len()),
        "start": start,
        "end": generated_at,
        "reviewed-controls": {
            "control-selections": [ if reviewed.is_empty() { json!({ "include-all": {} }) } else { json!({ "include-controls": reviewed }) } ],
        },
    });
    if !observations.is_empty() {
        result["observations"] = Value::Array(observations);
    }
    if !findings.is_empty() {
        result["findings"] = Value::Array(findings);
    }
    if !stale.is_empty() {
        result["remarks"] = json!(format!(
            "Not yet evaluated (status older than spec), left out: {}",
            stale.join(", ")
        ));
    }
    resources.push(json!({
        "uuid": plan,
        "title": "Annexa continuous assessment",
        "description": "No separate assessment plan: the Annexa controllers evaluate every governed object on each change against the CompliancePolicies that select its namespace, with the controls of `annexa controls -o oscal`.",
    }));
    json!({
        "assessment-results": {
            "uuid": seed("assessment-results"),
            "metadata": metadata("Annexa assessment results", generated_at),
            "import-ap": { "href": format!("#{plan}") },
            "results": [result],
            "back-matter": { "resources": resources },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_5_and_stable() {
        let a = uuid("component/annexa");
        assert_eq!(a, uuid("component/annexa"));
        assert_ne!(a, uuid("component/other"));
        assert_eq!(&a[14..15], "5");
    }
}
