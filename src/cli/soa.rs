//! `annexa soa`: the Statement of Applicability, from the cluster (status written by the
//! controllers, CompliancePolicies in force) or offline from manifests like `annexa check`,
//! with the organisation's decisions file for the controls Annexa does not implement.

use crate::api::CompliancePolicy;
use crate::decode::Object;
use crate::error::{Error, Result};
use crate::evidence::soa::{self, Decisions, Statement};
use crate::manifest;
use kube::Client;
use kube::api::{Api, ListParams};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SoaArgs {
    /// The organisation's decisions (YAML, kept in git): applicability, justification, owner
    /// and implementation per Annex A control. See examples/soa/.
    #[arg(long, value_name = "FILE")]
    pub decisions: Option<PathBuf>,
    /// Evaluate these manifests offline (files or folders, like `annexa check`) instead of
    /// reading the cluster.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Evaluate as of this instant (RFC 3339) instead of now (offline only).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = SoaFormat::Markdown)]
    pub output: SoaFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoaFormat {
    Markdown,
    Csv,
    Json,
}

fn read_decisions(path: &std::path::Path) -> std::result::Result<Decisions, Vec<String>> {
    let (file, text) = manifest::read_source(path).map_err(|e| vec![e.to_string()])?;
    Decisions::parse(&file, &text)
}

/// The statement from manifests, evaluated as `annexa check` does.
fn offline(
    args: &SoaArgs,
    decisions: &Decisions,
    now: jiff::Timestamp,
) -> std::result::Result<Statement, Vec<String>> {
    let (docs, errors) = manifest::load(&args.paths);
    if !errors.is_empty() {
        return Err(errors);
    }
    let report = super::check::evaluate_documents(&docs, now)?;
    let policies: Vec<CompliancePolicy> = docs
        .iter()
        .filter_map(|d| match &d.object {
            Object::Policy(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let sources: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
    Ok(soa::statement(
        decisions,
        &policies,
        &crate::evidence::observed_from_check(&report),
        &format!("manifests ({})", sources.join(", ")),
        &now.to_string(),
    ))
}

async fn live(decisions: &Decisions) -> Result<Statement> {
    let client = Client::try_default().await?;
    let policies = Api::<CompliancePolicy>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let observed = super::report::observe_all(&client, None).await?;
    Ok(soa::statement(
        decisions,
        &policies,
        &observed,
        "cluster",
        &jiff::Timestamp::now().to_string(),
    ))
}

fn render(statement: &Statement, format: SoaFormat) -> Result<String> {
    match format {
        SoaFormat::Markdown => Ok(soa::markdown(statement)),
        SoaFormat::Csv => soa::csv(statement).map_err(Error::output),
        SoaFormat::Json => serde_json::to_string_pretty(statement)
            .map(|s| s + "\n")
            .map_err(Error::output),
    }
}

/// Runs `annexa soa`; returns the exit code.
pub fn run(args: &SoaArgs) -> i32 {
    let fail = |errors: Vec<String>| {
        for e in &errors {
            eprintln!("error: {e}");
        }
        2
    };
    let decisions = match &args.decisions {
        Some(path) => match read_decisions(path) {
            Ok(d) => d,
            Err(errors) => return fail(errors),
        },
        None => Decisions::default(),
    };
    let statement = if args.paths.is_empty() {
        if args.at.is_some() {
            return fail(vec![
                "--at applies to manifests checked offline (-f)".into(),
            ]);
        }
        match super::block_on(live(&decisions)) {
            Ok(s) => s,
            Err(e) => return fail(vec![e.to_string()]),
        }
    } else {
        let now = match &args.at {
            None => jiff::Timestamp::now(),
            Some(text) => match text.parse() {
                Ok(t) => t,
                Err(e) => {
                    return fail(vec![format!(
                        "--at {text:?} is not an RFC 3339 instant: {e}"
                    )]);
                }
            },
        };
        match offline(args, &decisions, now) {
            Ok(s) => s,
            Err(errors) => return fail(errors),
        }
    };
    let text = match render(&statement, args.output) {
        Ok(t) => t,
        Err(e) => return fail(vec![e.to_string()]),
    };
    if let Err(e) = super::info::print(&text) {
        return fail(vec![e.to_string()]);
    }
    let contradictions: Vec<&str> = statement
        .contradictions()
        .filter_map(|r| r.contradiction.as_deref())
        .collect();
    for c in &contradictions {
        eprintln!("contradiction: {c}");
    }
    if contradictions.is_empty() { 0 } else { 1 }
}
