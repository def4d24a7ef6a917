//! The subcommands of the `annexa` binary.

pub mod approve;
pub mod check;
pub mod info;
pub mod report;
pub mod run;
pub mod soa;
pub mod webhook;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "annexa",
    version,
    about = "Enforces ISO/IEC 27001:2022 Annex A controls on AI workloads in Kubernetes",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format of `run` and `webhook` (filter with RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the tracing subscriber: RUST_LOG-style filter, text or JSON lines on stderr.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Evaluate manifests offline, as the webhook and controllers would (for CI, before merge).
    ///
    /// Exit codes: 0 no Enforce finding, 1 at least one Enforce finding (with --strict, also
    /// anything not checked: an AI or GPU kind Annexa does not read, a --policy that selects
    /// nothing, an input with nothing to evaluate), 2 bad input (nothing evaluated).
    Check(CheckArgs),
    /// Print the CustomResourceDefinitions of every Annexa kind as multi-document YAML.
    Crd(CrdArgs),
    /// Print the catalogue of Annex A controls Annexa evaluates.
    Controls(ControlsArgs),
    /// Print, as JSON, every permission Annexa uses in the cluster and why (the chart grants
    /// exactly these).
    Permissions,
    /// Show policy profiles.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Approve (or reject) a model digest as the current user: creates a ModelApproval.
    Approve(approve::ApproveArgs),
    /// Print, from the cluster, each control with how many objects pass and fail it, and where.
    Report(report::ReportArgs),
    /// Print the Statement of Applicability: all 93 Annex A controls, Annexa's with live status.
    ///
    /// Exit codes: 0 no contradiction, 1 a control marked not applicable is enforced, 2 bad input.
    Soa(soa::SoaArgs),
    /// Run the operator in the cluster: admission webhook, controllers, metrics and health.
    Run(run::Args),
    /// Serve the admission webhook stand-alone, from policy and context files (no API server).
    Webhook(webhook::Args),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Files or folders of YAML/JSON manifests (folders are searched recursively); `-` reads stdin.
    #[arg(required_unless_present = "filenames", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The same as PATH, as `kubectl apply -f` takes it (may be repeated).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub filenames: Vec<PathBuf>,
    /// Extra files or folders of CompliancePolicies (and Namespaces) to evaluate against.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// The namespace of objects whose manifest names none (default `default`); an object that
    /// names another is bad input, as with `kubectl apply -n`.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Labels of the namespaces the input has no Namespace object for, as the cluster has them
    /// (`annexa.dev/environment=production,annexa.dev/enforce=true`): they decide which
    /// CompliancePolicies select those namespaces, and whether their workloads are checked
    /// (only with annexa.dev/enforce=true, as in the cluster).
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub namespace_labels: Vec<String>,
    /// A gate for CI: exit 1 when anything was not checked that could hide a failure: an
    /// AI-serving or GPU kind Annexa does not read (KServe, LeaderWorkerSet, Ray...), a policy
    /// given with --policy that selects none of the checked namespaces, an input with no object
    /// Annexa evaluates. Without it each is printed and the exit code is unchanged.
    #[arg(long)]
    pub strict: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Evaluate as of this instant (RFC 3339) instead of now: approval and exception expiry.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Only print objects with findings (table output).
    #[arg(long)]
    pub failures_only: bool,
    /// A strict gate: exit 1 when the input holds an object of a kind Annexa does not govern
    /// (by default such objects are listed as skipped and do not change the exit code).
    #[arg(long)]
    pub fail_on_ungoverned: bool,
}

#[derive(clap::Args, Debug)]
pub struct CrdArgs {
    /// Write one file per kind into this folder (how `crds/` is regenerated) instead of printing.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Junit,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
}

#[derive(clap::Args, Debug)]
pub struct ControlsArgs {
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
    Markdown,
    /// OSCAL 1.1.3 component-definition (JSON).
    Oscal,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print the built-in baseline profile as a CompliancePolicy (YAML).
    Default,
}

fn block_on<T, F: std::future::Future<Output = crate::error::Result<T>>>(
    future: F,
) -> crate::error::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(crate::error::Error::Runtime)?;
    runtime.block_on(future)
}

/// Runs a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Check(args) => return check::run(&args),
        Command::Crd(args) => info::crd(args.output_dir.as_deref()),
        Command::Controls(args) => info::controls(args.output),
        Command::Permissions => info::permissions(),
        Command::Policy(PolicyCommand::Default) => info::policy_default(),
        Command::Approve(args) => block_on(approve::run(&args)),
        Command::Report(args) => block_on(report::run(&args)),
        Command::Soa(args) => return soa::run(&args),
        Command::Run(args) => {
            init_logging(cli.log_format);
            block_on(run::run(&args))
        }
        Command::Webhook(args) => {
            init_logging(cli.log_format);
            block_on(webhook::run(&args))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
