//! The Statement of Applicability (ISO/IEC 27001:2022 clause 6.1.3 d): every one of the 93
//! Annex A controls, whether it applies and why, who owns it and how it is implemented.
//!
//! Annexa fills the rows of the controls it implements with their live status (objects
//! passing and failing, and the action each CompliancePolicy sets); the organisation fills
//! the rest from a decisions file kept in git ([`Decisions`]). A contradiction is a control
//! the file marks not applicable while a CompliancePolicy (or, with none, the built-in
//! baseline) enforces it.

use crate::api::{Action, CompliancePolicy, ControlOutcome};
use crate::evidence::annex_a::{ANNEX_A, annex_control, theme_name};
use crate::evidence::records::Observed;
use crate::policy::Profile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The decisions file: what the organisation decided for each control it has considered.
///
/// ```yaml
/// apiVersion: config.annexa.dev/v1alpha1   # optional; names the file's format
/// kind: StatementOfApplicability
/// organisation: Example Insurance Ltd
/// scope: ML platform (training and serving) in eu-west-1
/// controls:
///   - control: A.7.1
///     applicable: false
///     justification: No premises of our own; the cloud provider's data centres (A.5.23).
///     owner: Head of IT operations
///   - control: A.5.1
///     applicable: true
///     justification: Required by the ISMS scope.
///     owner: CISO
///     implementation: Information security policy v3, approved 2026-02-01.
/// ```
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Decisions {
    #[serde(default, rename = "apiVersion")]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub organisation: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub controls: Vec<Decision>,
}

/// The format marker a decisions file may carry (so `annexa check` over the same folder skips it).
pub const DECISIONS_API_VERSION: &str = "config.annexa.dev/v1alpha1";
pub const DECISIONS_KIND: &str = "StatementOfApplicability";

/// The organisation's decision about one Annex A control.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Annex A identifier, `A.5.1` to `A.8.34`.
    pub control: String,
    pub applicable: bool,
    /// Why the control is included or excluded (clause 6.1.3 d asks for both).
    pub justification: String,
    #[serde(default)]
    pub owner: Option<String>,
    /// How the control is implemented (documents, tools, processes) and its state.
    #[serde(default)]
    pub implementation: Option<String>,
}

impl Decisions {
    /// Parses and checks a decisions file; errors name the file, the entry and the field.
    pub fn parse(file: &str, text: &str) -> Result<Self, Vec<String>> {
        let decisions: Decisions = serde_yaml_ng::from_str(text).map_err(|e| {
            vec![format!(
                "{file}: not a Statement of Applicability decisions file: {e}"
            )]
        })?;
        let mut errors = Vec::new();
        if decisions
            .api_version
            .as_deref()
            .is_some_and(|v| v != DECISIONS_API_VERSION)
            || decisions
                .kind
                .as_deref()
                .is_some_and(|k| k != DECISIONS_KIND)
        {
            errors.push(format!(
                "{file}: apiVersion/kind: expected {DECISIONS_API_VERSION} {DECISIONS_KIND} (a Statement of Applicability decisions file), found {} {}",
                decisions.api_version.as_deref().unwrap_or("-"),
                decisions.kind.as_deref().unwrap_or("-")
            ));
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, d) in decisions.controls.iter().enumerate() {
            let at = format!("{file}: controls[{index}]");
            if annex_control(&d.control).is_none() {
                errors.push(format!(
                    "{at}.control: {:?} is not an ISO/IEC 27001:2022 Annex A control (A.5.1 to A.5.37, A.6.1 to A.6.8, A.7.1 to A.7.14, A.8.1 to A.8.34)",
                    d.control
                ));
            }
            if let Some(first) = seen.insert(&d.control, index) {
                errors.push(format!(
                    "{at}.control: {} is already decided in controls[{first}]",
                    d.control
                ));
            }
            if d.justification.trim().is_empty() {
                errors.push(format!(
                    "{at}.justification: {} needs a justification, whether included or excluded",
                    d.control
                ));
            }
        }
        if errors.is_empty() {
            Ok(decisions)
        } else {
            Err(errors)
        }
    }

    fn get(&self, id: &str) -> Option<&Decision> {
        self.controls.iter().find(|d| d.control == id)
    }
}

/// Live results of a control Annexa implements.
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LiveStatus {
    pub pass: usize,
    pub fail: usize,
    pub not_applicable: usize,
    pub excepted: usize,
    /// The action each CompliancePolicy sets for the control (`baseline` when none exists).
    pub actions: BTreeMap<String, Action>,
}

/// Whether a control applies.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applicability {
    Yes,
    No,
    /// Not in the decisions file (and not implemented by Annexa).
    Undecided,
}

/// One row of the Statement of Applicability.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub id: &'static str,
    pub title: &'static str,
    pub theme: &'static str,
    pub applicable: Applicability,
    pub justification: String,
    pub owner: String,
    pub implementation: String,
    /// Set for the controls Annexa implements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annexa: Option<LiveStatus>,
    /// Why this row contradicts the cluster's policies, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contradiction: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    pub generated_at: String,
    /// Where the live status comes from: `cluster` or the manifests checked offline.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub controls: Vec<Row>,
}

impl Statement {
    pub fn contradictions(&self) -> impl Iterator<Item = &Row> {
        self.controls.iter().filter(|r| r.contradiction.is_some())
    }
    pub fn undecided(&self) -> impl Iterator<Item = &Row> {
        self.controls
            .iter()
            .filter(|r| r.applicable == Applicability::Undecided)
    }
}

/// Builds the statement (pure): the decisions, the policies in force and the observed results.
pub fn statement(
    decisions: &Decisions,
    policies: &[CompliancePolicy],
    observed: &[Observed],
    source: &str,
    generated_at: &str,
) -> Statement {
    let controls = ANNEX_A
        .iter()
        .map(|c| {
            let decision = decisions.get(c.id);
            let annexa = c.implemented().map(|control| {
                let mut live = LiveStatus::default();
                for o in observed.iter().filter(|o| o.current) {
                    for r in o.controls.iter().filter(|r| r.id == control.id) {
                        match r.result {
                            ControlOutcome::Pass => live.pass += 1,
                            ControlOutcome::Fail => live.fail += 1,
                            ControlOutcome::NotApplicable => live.not_applicable += 1,
                            ControlOutcome::Excepted => live.excepted += 1,
                        }
                    }
                }
                if policies.is_empty() {
                    live.actions.insert(
                        "baseline".to_string(),
                        Profile::baseline().action(control.id),
                    );
                }
                for p in policies {
                    live.actions.insert(
                        p.metadata.name.clone().unwrap_or_default(),
                        Profile::merge(&[p]).action(control.id),
                    );
                }
                live
            });
            let applicable = match (decision, &annexa) {
                (Some(d), _) if d.applicable => Applicability::Yes,
                (Some(_), _) => Applicability::No,
                (None, Some(_)) => Applicability::Yes,
                (None, None) => Applicability::Undecided,
            };
            let contradiction = match (applicable, &annexa) {
                (Applicability::No, Some(live)) => {
                    let enforcing: Vec<&str> = live
                        .actions
                        .iter()
                        .filter(|(_, a)| **a == Action::Enforce)
                        .map(|(name, _)| name.as_str())
                        .collect();
                    if enforcing.is_empty() {
                        None
                    } else if policies.is_empty() {
                        Some(format!(
                            "{} is marked not applicable, but the built-in baseline enforces it (no CompliancePolicy exists)",
                            c.id
                        ))
                    } else {
                        Some(format!(
                            "{} is marked not applicable, but CompliancePolicy {} enforces it",
                            c.id,
                            enforcing.join(", ")
                        ))
                    }
                }
                _ => None,
            };
            let implementation = match (decision.and_then(|d| d.implementation.clone()), &annexa) {
                (Some(text), _) => text,
                (None, Some(_)) => {
                    "Annexa (admission webhook, controllers, annexa check)".to_string()
                }
                (None, None) => String::new(),
            };
            let justification = match (decision, &annexa) {
                (Some(d), _) => d.justification.clone(),
                (None, Some(_)) => format!(
                    "Implemented for AI workloads by Annexa: {}",
                    c.implemented().map(|i| i.checks).unwrap_or_default()
                ),
                (None, None) => String::new(),
            };
            Row {
                id: c.id,
                title: c.title,
                theme: theme_name(c.theme),
                applicable,
                justification,
                owner: decision.and_then(|d| d.owner.clone()).unwrap_or_default(),
                implementation,
                annexa,
                contradiction,
            }
        })
        .collect();
    Statement {
        generated_at: generated_at.to_string(),
        source: source.to_string(),
        organisation: decisions.organisation.clone(),
        scope: decisions.scope.clone(),
        controls,
    }
}

fn applicable_text(a: Applicability) -> &'static str {
    match a {
        Applicability::Yes => "Yes",
        Applicability::No => "No",
        Applicability::Undecided => "Undecided",
    }
}

/// The live status column: results and actions of an Annexa control.
fn status_text(live: &LiveStatus) -> String {
    let actions: Vec<String> = live
        .actions
        .iter()
        .map(|(policy, action)| format!("{action} ({policy})"))
        .collect();
    format!(
        "{} pass, {} fail, {} n/a, {} excepted; {}",
        live.pass,
        live.fail,
        live.not_applicable,
        live.excepted,
        actions.join(", ")
    )
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(s: &Statement) -> String {
    let mut out = String::from("# Statement of Applicability (ISO/IEC 27001:2022, Annex A)\n\n");
    if let Some(o) = &s.organisation {
        out.push_str(&format!("Organisation: {}  \n", cell(o)));
    }
    if let Some(scope) = &s.scope {
        out.push_str(&format!("Scope: {}  \n", cell(scope)));
    }
    out.push_str(&format!(
        "Generated {} from {}. {} of 93 controls applicable, {} excluded, {} undecided, {} contradiction(s).\n",
        s.generated_at,
        s.source,
        s.controls.iter().filter(|r| r.applicable == Applicability::Yes).count(),
        s.controls.iter().filter(|r| r.applicable == Applicability::No).count(),
        s.undecided().count(),
        s.contradictions().count()
    ));
    let mut theme = "";
    for r in &s.controls {
        if r.theme != theme {
            theme = r.theme;
            out.push_str(&format!(
                "\n## {theme}\n\n| Control | Title | Applicable | Justification | Owner | Implementation | Annexa status |\n|---|---|---|---|---|---|---|\n"
            ));
        }
        let mut applicable = applicable_text(r.applicable).to_string();
        if r.contradiction.is_some() {
            applicable.push_str(" ⚠ contradiction");
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            cell(r.title),
            applicable,
            cell(&r.justification),
            cell(&r.owner),
            cell(&r.implementation),
            r.annexa.as_ref().map(status_text).unwrap_or_default()
        ));
    }
    let contradictions: Vec<&Row> = s.contradictions().collect();
    if !contradictions.is_empty() {
        out.push_str("\n## Contradictions\n\n");
        for r in contradictions {
            out.push_str(&format!(
                "- {}\n",
                cell(r.contradiction.as_deref().unwrap_or_default())
            ));
        }
    }
    out
}

/// CSV with a header row, one row per control (for spreadsheets and GRC imports).
pub fn csv(s: &Statement) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "control",
        "title",
        "theme",
        "applicable",
        "justification",
        "owner",
        "implementation",
        "annexa_pass",
        "annexa_fail",
        "annexa_not_applicable",
        "annexa_excepted",
        "annexa_actions",
        "contradiction",
    ])?;
    for r in &s.controls {
        let (pass, fail, na, exc, actions) = match &r.annexa {
            Some(l) => (
                l.pass.to_string(),
                l.fail.to_string(),
                l.not_applicable.to_string(),
                l.excepted.to_string(),
                l.actions
                    .iter()
                    .map(|(p, a)| format!("{p}={a}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            None => Default::default(),
        };
        writer.write_record([
            r.id,
            r.title,
            r.theme,
            applicable_text(r.applicable),
            &r.justification,
            &r.owner,
            &r.implementation,
            &pass,
            &fail,
            &na,
            &exc,
            &actions,
            r.contradiction.as_deref().unwrap_or_default(),
        ])?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_name_the_file_entry_and_field_of_every_mistake() {
        let text = "controls:\n  - control: A.9.1\n    applicable: true\n    justification: x\n  - control: A.7.1\n    applicable: false\n    justification: ' '\n  - control: A.7.1\n    applicable: false\n    justification: again\n";
        let errors = Decisions::parse("soa.yaml", text).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("soa.yaml: controls[0].control: \"A.9.1\" is not"))
        );
        assert!(errors.iter().any(|e| {
            e.starts_with("soa.yaml: controls[1].justification: A.7.1 needs a justification")
        }));
        assert!(errors.iter().any(|e| e.starts_with(
            "soa.yaml: controls[2].control: A.7.1 is already decided in controls[1]"
        )));
        let unknown = Decisions::parse(
            "soa.yaml",
            "controls:\n  - control: A.7.1\n    applicable: false\n    justification: x\n    ownr: me\n",
        )
        .unwrap_err();
        assert!(
            unknown[0].contains("soa.yaml") && unknown[0].contains("ownr"),
            "{unknown:?}"
        );
    }
}
