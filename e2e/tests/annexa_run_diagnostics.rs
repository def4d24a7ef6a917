#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `annexa run` in a broken environment says what is missing in one line, at start, and
//! exits: the CRDs not installed, the release namespace missing, RBAC forbidding a list; a
//! webhook configuration that does not exist is one clear warning while it keeps serving.
//! Logs are plain text off a terminal and never carry kube's Debug dumps.

mod annexa;

use std::process::Command;
use std::time::{Duration, Instant};

use annexa::*;
use annexa_e2e::harness::{Background, Cluster, StandinOptions, free_port};

fn standin() -> Cluster {
    Cluster::start_standin(StandinOptions {
        binary: Some(env!("CARGO_BIN_EXE_annexa-standin").into()),
        ..Default::default()
    })
    .unwrap()
}

fn run_command(extra: &[&str]) -> Command {
    let mut command = Command::new(annexa_binary());
    command
        .arg("run")
        .arg(format!("--webhook-addr=127.0.0.1:{}", free_port().unwrap()))
        .arg(format!("--metrics-addr=127.0.0.1:{}", free_port().unwrap()))
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("POD_NAMESPACE");
    command
}

/// Waits for `process` to exit on its own (failing if it keeps running); returns its exit
/// code and log.
fn exits(mut process: Background) -> (Option<i32>, String) {
    let start = Instant::now();
    while process.is_running() {
        if start.elapsed() > TIMEOUT {
            let log = process.log();
            process.terminate(TIMEOUT).unwrap();
            panic!("annexa run kept running instead of saying what is missing:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = process.terminate(TIMEOUT).unwrap();
    (status.and_then(|s| s.code()), process.log())
}

fn assert_readable(log: &str) {
    assert!(!log.contains("Status {"), "a Debug dump in the log:\n{log}");
    assert!(
        !log.contains("ApiError"),
        "kube's error text in the log:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes off a terminal:\n{log}"
    );
}

fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("error: ")).collect()
}

#[test]
fn without_the_crds_it_says_so_once_and_names_the_fix() {
    let cluster = standin();
    let process = cluster
        .spawn_as("admin", "no-crds", run_command(&[]))
        .unwrap();
    let (code, log) = exits(process);
    assert_eq!(code, Some(2), "{log}");
    assert_readable(&log);
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("the Annexa CRDs are not installed")
            && errors[0].contains("compliancepolicies.annexa.dev")
            && errors[0].contains("kubectl apply -f crds/"),
        "{log}"
    );
    assert!(!log.contains("watch error"), "{log}");
}

fn with_crds(cluster: &Cluster) {
    cluster
        .kubectl()
        .args(["apply", "-f", repo_root().join("crds").to_str().unwrap()])
        .ok()
        .unwrap();
}

#[test]
fn a_missing_release_namespace_is_reported_at_start() {
    let cluster = standin();
    with_crds(&cluster);
    let process = cluster
        .spawn_as(
            "admin",
            "no-namespace",
            run_command(&["--namespace=annexa-missing"]),
        )
        .unwrap();
    let (code, log) = exits(process);
    assert_eq!(code, Some(2), "{log}");
    assert_readable(&log);
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("the namespace \"annexa-missing\" does not exist")
            && errors[0].contains("kubectl create namespace annexa-missing"),
        "{log}"
    );
    // Said before anything started, not at shutdown.
    assert!(!log.contains("serving the admission webhook"), "{log}");
}

#[test]
fn rbac_forbidden_names_the_verb_and_the_resource() {
    let cluster = standin();
    with_crds(&cluster);
    cluster
        .kubectl()
        .args(["create", "namespace", "annexa-system"])
        .ok()
        .unwrap();
    // mallory holds no permission at all.
    let process = cluster
        .spawn_as(
            "mallory",
            "forbidden",
            run_command(&["--namespace=annexa-system"]),
        )
        .unwrap();
    let (code, log) = exits(process);
    assert_eq!(code, Some(2), "{log}");
    assert_readable(&log);
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("RBAC forbids Annexa to list compliancepolicies.annexa.dev")
            && errors[0].contains("cannot list resource \"compliancepolicies\""),
        "{log}"
    );
}

#[test]
fn a_missing_webhook_configuration_is_one_clear_warning_and_it_keeps_serving() {
    let a = Annexa::own_standin();
    a.kubectl()
        .args(["delete", "validatingwebhookconfiguration", RELEASE])
        .ok()
        .unwrap();
    // Text logs (the chart asks for JSON): what a person reads off `kubectl logs` or a file.
    let args: Vec<String> = chart_run_args(
        &a.rendered,
        &a.namespace,
        a.webhook_port,
        free_port().unwrap(),
    )
    .into_iter()
    .filter(|arg| !arg.starts_with("--log-format"))
    .collect();
    let mut command = Command::new(annexa_binary());
    command
        .arg("run")
        .args(args)
        .arg("--log-format=text")
        .env("POD_NAMESPACE", &a.namespace)
        .env("HOSTNAME", "annexa-0")
        .env("RUST_LOG", "info");
    let mut process = a
        .cluster
        .spawn_with_kubeconfig(
            a.service_account_kubeconfig.as_ref().unwrap(),
            "no-webhook-configuration",
            command,
        )
        .unwrap();
    process
        .wait_for_log(
            "does not exist: the API server sends no admission requests to Annexa",
            TIMEOUT,
        )
        .unwrap();
    // One line, plain text (no colours off a terminal), naming the kind and the name.
    let log = process.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not exist: the API server sends no admission requests"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains(" WARN ")
            && warnings[0].contains(r#"ValidatingWebhookConfiguration "annexa" does not exist"#),
        "{log}"
    );
    process
        .wait_for_log("serving the admission webhook", TIMEOUT)
        .unwrap();
    assert!(process.is_running(), "{}", process.log());
    let log = process.log();
    assert_readable(&log);
    // The mutating configuration exists and got its caBundle.
    assert!(log.contains("patched caBundle"), "{log}");
    let status = process.terminate(TIMEOUT).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{}", process.log());
}

/// The names `annexa run` uses without flags are the ones the chart gives release `annexa`:
/// every `--NAME=VALUE` of the rendered Deployment that names an object is also the default.
#[test]
fn run_defaults_are_the_charts_names_for_release_annexa() {
    let rendered = render_chart(STANDIN_NAMESPACE);
    let args = chart_run_args(&rendered, STANDIN_NAMESPACE, 8443, 8080);
    let help = Command::new(annexa_binary())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    // One block per option: its flag, aliases and default.
    let blocks: Vec<&str> = help.split("\n\n").collect();
    let mut compared = Vec::new();
    for arg in &args {
        let Some((flag, value)) = arg.split_once('=') else {
            continue;
        };
        if !matches!(
            flag,
            "--service-name"
                | "--cert-secret"
                | "--lease-name"
                | "--validating-webhook"
                | "--mutating-webhook"
        ) {
            continue;
        }
        let block = blocks
            .iter()
            .find(|b| {
                b.trim_start().starts_with(&format!("{flag} "))
                    || b.contains(&format!("[alias: {flag}]"))
            })
            .unwrap_or_else(|| panic!("annexa run --help has no {flag}:\n{help}"));
        assert!(
            block.contains(&format!("[default: {value}]")),
            "the chart passes {arg}, but annexa run's default differs:\n{block}"
        );
        compared.push(flag);
    }
    assert_eq!(compared.len(), 5, "{args:?}");
}
