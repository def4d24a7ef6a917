#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The documentation, executed: every `sh` block of README.md and docs/operating.md runs, in
//! order, against the stand-in with Annexa installed from the chart, as the people each step
//! names (see `annexa_e2e::docs` for the conventions). What cannot run on the stand-in is
//! listed by name with its reason. And the local tour (`annexa-tour`) reaches its ready point.

mod annexa;

use annexa::{annexa_binary, repo_root};
use annexa_e2e::docs::{Runner, Step, Transcript, sh_blocks, steps};
use annexa_e2e::tour::Tour;

fn doc_steps(file: &str) -> Vec<Step> {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    let blocks = sh_blocks(&text, file);
    assert!(!blocks.is_empty(), "{file} has no sh block");
    blocks
        .iter()
        .flat_map(|b| steps(b).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn readme_and_operating_guide_run_as_written() {
    let tour = Tour::start(
        &repo_root(),
        &annexa_binary(),
        Some(env!("CARGO_BIN_EXE_annexa-standin").into()),
    )
    .unwrap();
    let work = tour.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let runner = Runner::new(&tour, &work).unwrap();
    let mut transcript = Transcript::default();
    let mut failure = None;
    for file in ["README.md", "docs/operating.md"] {
        if let Err(e) = runner.run(&doc_steps(file), &mut transcript) {
            failure = Some(e.to_string());
            break;
        }
    }
    println!("{}", transcript.text);
    println!(
        "Not run on the stand-in ({}):\n{}",
        transcript.skipped.len(),
        transcript.skipped_list()
    );
    if let Some(failure) = failure {
        panic!(
            "{failure}\n--- annexa run's log (last 4000 bytes) ---\n{}",
            tail(&tour.annexa.log(), 4000)
        );
    }

    // The walkthrough's people did what the README says, each as themselves.
    let ran = |user: &str, needle: &str| {
        transcript
            .ran
            .iter()
            .any(|(at, u, c)| at.starts_with("README.md") && u == user && c.contains(needle))
    };
    for reviewer in ["bob@example.com", "carol@example.com"] {
        assert!(
            ran(reviewer, "annexa approve md/fraud-detection -n fraud-prod"),
            "{reviewer} did not approve in the README: {:#?}",
            transcript.ran
        );
    }
    assert!(ran("alice@example.com", "kubectl apply"));
    assert!(ran(
        "admin",
        "kubectl wait --for=condition=Compliant md/fraud-detection"
    ));
    // Nothing is skipped without a reason, and most of the docs ran.
    assert!(transcript.skipped.iter().all(|(_, _, why)| !why.is_empty()));
    assert!(
        transcript.ran.len() > 3 * transcript.skipped.len(),
        "ran {}, skipped {}",
        transcript.ran.len(),
        transcript.skipped.len()
    );
    // The approvals were made by bob and carol, with the identities the API server verified.
    let approvals = tour
        .cluster
        .kubectl()
        .args([
            "get",
            "modelapprovals",
            "-n",
            "fraud-prod",
            "-o",
            "jsonpath={.items[*].spec.approver.username}",
        ])
        .ok()
        .unwrap();
    assert!(
        approvals.contains("bob@example.com") && approvals.contains("carol@example.com"),
        "{approvals}"
    );
}

/// `annexa ARGS` as `user` on the tour's cluster: (exit code, stdout, stderr).
fn annexa_as(tour: &Tour, user: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(annexa_binary())
        .args(args)
        .env("KUBECONFIG", tour.cluster.kubeconfig_for(user).unwrap())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_readable_error(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        !stderr.contains("Status {") && !stderr.contains("ApiError"),
        "{stderr}"
    );
    errors[0]
}

#[test]
fn annexa_approve_refusals_are_one_readable_line() {
    let tour = Tour::start(
        &repo_root(),
        &annexa_binary(),
        Some(env!("CARGO_BIN_EXE_annexa-standin").into()),
    )
    .unwrap();
    let work = tour.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let runner = Runner::new(&tour, &work).unwrap();
    let text = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let walkthrough: Vec<Step> = sh_blocks(&text, "README.md")
        .iter()
        .filter(|b| b.section == "Running in a cluster")
        .flat_map(|b| steps(b).unwrap())
        .collect();
    let mut transcript = Transcript::default();
    runner
        .run(&walkthrough, &mut transcript)
        .unwrap_or_else(|e| panic!("{e}\n{}", transcript.text));

    // alice wrote the model and holds no approver role: the API server refuses, said once.
    let (code, _, stderr) = annexa_as(
        &tour,
        "alice@example.com",
        &["approve", "md/fraud-detection", "-n", "fraud-prod"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    let line = one_readable_error(&stderr);
    assert!(
        line.contains(r#"modelapprovals.annexa.dev is forbidden: User "alice@example.com" cannot create resource "modelapprovals""#)
            && line.contains("(Forbidden, HTTP 403)"),
        "{line}"
    );
    // dave reviewed the weights by their first digits: enough when they name the release
    // requested now.
    let (code, stdout, stderr) = annexa_as(
        &tour,
        "dave@example.com",
        &[
            "approve",
            "md/fraud-detection",
            "-n",
            "fraud-prod",
            "--digest",
            "7fb5bb02",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("approves md/fraud-detection sha256:41b16c89bd72")
            && stdout.contains("as dave@example.com"),
        "{stdout}"
    );
    // bob and carol's approvals already rolled it out: dave is told nothing was pending.
    assert!(
        stdout.contains(
            "note:    this release already serves (approved by bob@example.com, carol@example.com); nothing is pending"
        ),
        "{stdout}"
    );
    // A prefix no release has: the candidates are listed, nothing is created.
    let (code, _, stderr) = annexa_as(
        &tour,
        "carol@example.com",
        &[
            "approve",
            "md/fraud-detection",
            "-n",
            "fraud-prod",
            "--release",
            "sha256:0000",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    let line = one_readable_error(&stderr);
    assert!(
        line.contains(
            "no release of md/fraud-detection has a release fingerprint starting with sha256:0000"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("requested now") && stderr.contains("sha256:41b16c89bd72"),
        "{stderr}"
    );
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[test]
fn the_tour_reaches_its_ready_point_and_cleans_up() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_annexa-tour"))
        .arg("--exit-after-setup")
        .arg("--annexa")
        .arg(annexa_binary())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("annexa-tour: ready"), "{stdout}");
    assert!(stdout.contains("kubectl get annexa -A"), "{stdout}");
    assert!(stdout.contains("annexa report"), "{stdout}");
    // The walkthrough ran, approvals by the reviewers included.
    assert!(
        stdout.contains("[as bob@example.com] $ annexa approve md/fraud-detection"),
        "{stdout}"
    );
    // A kubeconfig per person was printed; they are gone once the tour exits.
    let kubeconfig = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("export KUBECONFIG="))
        .expect("the tour prints a kubeconfig")
        .to_string();
    assert!(
        !std::path::Path::new(&kubeconfig).exists(),
        "{kubeconfig} left behind"
    );
}

#[test]
fn the_tour_stays_up_until_sigterm_then_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_annexa-tour"));
    command.arg("--annexa").arg(annexa_binary());
    let mut tour =
        annexa_e2e::harness::Background::spawn(command, dir.path().join("tour.log")).unwrap();
    tour.wait_for_log("annexa-tour: ready", std::time::Duration::from_secs(180))
        .unwrap();
    let log = tour.log();
    let kubeconfig = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("export KUBECONFIG="))
        .expect("the tour prints a kubeconfig")
        .to_string();
    // It is up: the kubeconfig it printed reaches the stand-in, with the examples in it.
    let models = std::process::Command::new("kubectl")
        .args(["get", "md", "-A", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&models.stdout)
            .contains("modeldeployment.annexa.dev/fraud-detection"),
        "{}{}",
        String::from_utf8_lossy(&models.stdout),
        String::from_utf8_lossy(&models.stderr)
    );
    assert!(tour.is_running());
    let status = tour.terminate(std::time::Duration::from_secs(60)).unwrap();
    let log = tour.log();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(log.contains("annexa-tour: stopped"), "{log}");
    assert!(!log.contains("did not stop cleanly"), "{log}");
    assert!(
        !std::path::Path::new(&kubeconfig).exists(),
        "{kubeconfig} left behind"
    );
}
