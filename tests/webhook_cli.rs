//! `annexa webhook` and `annexa run` flags.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use annexa::cli;

use clap::Parser;
use std::time::Duration;

#[derive(Parser)]
struct Top {
    #[command(flatten)]
    args: cli::webhook::Args,
}

#[derive(Parser)]
struct RunTop {
    #[command(flatten)]
    args: cli::run::Args,
}

#[test]
fn run_defaults_to_self_managed_certificates() {
    use annexa::webhook::cluster::CertificateSource;
    let top = RunTop::try_parse_from([
        "annexa",
        "--namespace",
        "annexa",
        "--validating-webhook-configuration",
        "a",
        "--validating-webhook-configuration",
        "b",
    ])
    .unwrap();
    let config = top.args.webhook_config();
    let CertificateSource::Secret(certs) = config.certificates else {
        panic!("expected the Secret mode")
    };
    assert_eq!(certs.namespace, "annexa");
    assert_eq!(certs.service_name, "annexa-webhook");
    // The chart's name for release `annexa`, so that `annexa run` without flags finds its Secret.
    assert_eq!(certs.secret_name, "annexa-webhook-tls");
    assert_eq!(certs.validating_configurations, ["a", "b"]);
    assert_eq!(certs.mutating_configurations, ["annexa"]);
    let top =
        RunTop::try_parse_from(["annexa", "--tls-cert-file", "c", "--tls-key-file", "k"]).unwrap();
    assert!(matches!(
        top.args.webhook_config().certificates,
        CertificateSource::Files { .. }
    ));
    assert!(
        RunTop::try_parse_from(["annexa", "--tls-cert-file", "c"]).is_err(),
        "cert without key"
    );
}

#[test]
fn flags_map_to_the_standalone_config() {
    let top = Top::try_parse_from([
        "annexa",
        "--addr",
        "127.0.0.1:9443",
        "--tls-cert-file",
        "c.pem",
        "--tls-key-file",
        "k.pem",
        "--metrics-addr",
        "127.0.0.1:9090",
        "--policy",
        "p.yaml",
        "--policy",
        "policies/",
        "--context",
        "ctx.yaml",
        "--max-body-bytes",
        "1024",
        "--deadline-ms",
        "1500",
    ])
    .unwrap();
    let config = top.args.config();
    assert_eq!(config.addr.to_string(), "127.0.0.1:9443");
    assert_eq!(config.metrics_addr.unwrap().to_string(), "127.0.0.1:9090");
    assert_eq!(config.policy_files.len(), 2);
    assert_eq!(config.context_files.len(), 1);
    assert_eq!(config.limits.max_body_bytes, 1024);
    assert_eq!(config.limits.deadline, Duration::from_millis(1500));
    assert_eq!(config.cert_reload_interval, Duration::from_secs(5));
}

#[test]
fn defaults_and_required_flags() {
    let top =
        Top::try_parse_from(["annexa", "--tls-cert-file", "c", "--tls-key-file", "k"]).unwrap();
    let config = top.args.config();
    assert_eq!(config.addr.to_string(), "0.0.0.0:8443");
    assert_eq!(config.limits.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(config.limits.deadline, Duration::from_secs(4));
    assert!(config.metrics_addr.is_none());
    let err = Top::try_parse_from(["annexa", "--tls-key-file", "k"])
        .err()
        .unwrap();
    assert!(err.to_string().contains("--tls-cert-file"), "{err}");
}

#[tokio::test]
async fn unreadable_files_are_named() {
    let top = Top::try_parse_from([
        "annexa",
        "--addr",
        "127.0.0.1:0",
        "--tls-cert-file",
        "/nonexistent/c.pem",
        "--tls-key-file",
        "/nonexistent/k.pem",
    ])
    .unwrap();
    let err = annexa::webhook::run_standalone(top.args.config(), std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: [").unwrap();
    let top = Top::try_parse_from([
        "annexa",
        "--tls-cert-file",
        "c",
        "--tls-key-file",
        "k",
        "--context",
        bad.to_str().unwrap(),
    ])
    .unwrap();
    let err = annexa::webhook::run_standalone(top.args.config(), std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad.yaml"), "{err}");
}

/// The entry points `dispatch` calls (`block_on(webhook::run(&args))`, `block_on(run::run(&args))`);
/// compiled, not run (`run` would serve until SIGTERM).
#[allow(dead_code)]
async fn entry_points_take_args_by_reference(
    webhook: cli::webhook::Args,
    run: cli::run::Args,
) -> annexa::error::Result<()> {
    cli::webhook::run(&webhook).await?;
    cli::run::run(&run).await
}
