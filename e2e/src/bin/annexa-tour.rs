//! `annexa-tour`: Annexa on a local stand-in API server, without a cluster. Starts the
//! stand-in, installs Annexa from the chart as the e2e suite does, runs the README's cluster
//! walkthrough as the people it names, prints what to look at and a kubeconfig per person,
//! and keeps running until Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use annexa_e2e::docs::{Runner, Transcript, sh_blocks, steps};
use annexa_e2e::tour::{Tour, doc_users};
use clap::Parser;

/// Annexa on a local stand-in API server: the chart installed, the README's walkthrough
/// applied, kubeconfigs to play with. Ctrl-C stops it and removes everything.
#[derive(Parser, Debug)]
#[command(name = "annexa-tour", version)]
struct Cli {
    /// Exit once everything is set up (for tests) instead of waiting for Ctrl-C.
    #[arg(long)]
    exit_after_setup: bool,
    /// The `annexa` binary (default: next to this one; `cargo build` builds both).
    #[arg(long, value_name = "PATH")]
    annexa: Option<PathBuf>,
}

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn next_to_me(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join(name);
    candidate.is_file().then_some(candidate)
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match tour(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annexa-tour: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tour(cli: &Cli) -> Result<(), String> {
    let annexa = match cli.annexa.clone().or_else(|| next_to_me("annexa")) {
        Some(path) => path,
        None => {
            return Err(
                "the annexa binary is not next to annexa-tour: build both first (bash scripts/tour.sh does), or pass --annexa PATH"
                    .into(),
            );
        }
    };
    let repo = repo_root();
    println!("Starting a stand-in API server and installing Annexa from charts/annexa ...");
    let tour =
        Tour::start(&repo, &annexa, next_to_me("annexa-standin")).map_err(|e| e.to_string())?;
    let readme = std::fs::read_to_string(repo.join("README.md"))
        .map_err(|e| format!("reading README.md: {e}"))?;
    let walkthrough: Vec<_> = sh_blocks(&readme, "README.md")
        .into_iter()
        .filter(|b| b.section == "Running in a cluster")
        .collect();
    if walkthrough.is_empty() {
        return Err("README.md has no `sh` block under \"Running in a cluster\"".into());
    }
    let work = tour.dir.path().join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let mut runner = Runner::new(&tour, &work).map_err(|e| e.to_string())?;
    runner.echo = true;
    println!("Running the README's walkthrough (\"Running in a cluster\") as the people it names:");
    let mut transcript = Transcript::default();
    for block in &walkthrough {
        let block_steps = steps(block)?;
        runner
            .run(&block_steps, &mut transcript)
            .map_err(|e| e.to_string())?;
    }

    let mut kubeconfigs = String::new();
    for user in doc_users() {
        let path = tour
            .cluster
            .kubeconfig_for(&user.name)
            .map_err(|e| e.to_string())?;
        kubeconfigs.push_str(&format!(
            "  {:<20} {:<28} {}\n",
            user.name,
            user.groups.join(","),
            path.display()
        ));
    }
    let admin = tour
        .cluster
        .kubeconfig_for("admin")
        .map_err(|e| e.to_string())?;
    println!(
        r#"
Annexa is ready on a local stand-in API server (no cluster, no pods: objects, admission,
controllers and status are real; Deployments are stored, not run).

Kubeconfigs, one per person (user, groups, file):
{kubeconfigs}
In another terminal:
  export KUBECONFIG={admin}
  export PATH={bin}:$PATH
  cd {repo}
  kubectl get annexa -A                                   # every Annexa object, with its columns
  kubectl get md -n fraud-prod fraud-detection -o jsonpath='{{range .status.conditions[*]}}{{.type}}={{.status}} {{.reason}}: {{.message}}{{"\n"}}{{end}}'
  kubectl get deployments,networkpolicies,roles -A -l app.kubernetes.io/managed-by=annexa
  annexa report                                           # each control: how many objects pass and fail
  kubectl apply -f examples/noncompliant/                 # refused by the webhook, naming each control
  KUBECONFIG={alice} kubectl -n fraud-prod edit md fraud-detection    # a new release, held for approval

Annexa's log: {log}
Ctrl-C stops Annexa and the stand-in and removes these files."#,
        admin = admin.display(),
        alice = tour
            .cluster
            .kubeconfig_for("alice@example.com")
            .map_err(|e| e.to_string())?
            .display(),
        bin = tour.bin_dir.display(),
        repo = repo.display(),
        log = tour.annexa_log.display(),
    );
    if transcript.skipped.is_empty() {
        println!("(every command of the walkthrough ran)");
    } else {
        println!("Not run on the stand-in:\n{}", transcript.skipped_list());
    }
    println!("annexa-tour: ready");
    if cli.exit_after_setup {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("installing a SIGTERM handler: {e}"))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), String>(())
    })?;
    println!("\nannexa-tour: stopping Annexa and the stand-in");
    let mut tour = tour;
    let stopped = tour
        .annexa
        .terminate(std::time::Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    if !stopped.is_some_and(|s| s.success()) {
        eprintln!("annexa-tour: annexa run did not stop cleanly: {stopped:?}");
    }
    let _ = tour.cluster.stop();
    drop(tour);
    println!("annexa-tour: stopped");
    Ok(())
}
