#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Helm chart (`charts/annexa`) and the Argo CD health checks
//! (`examples/gitops/argocd-cm.yaml`), as CI sees them: `charts/tests/run.sh` renders the chart
//! with Helm v4 (helm-python-sdk) for each values combination, decodes every object against the
//! Kubernetes schemas and runs the Lua health checks in Lua 5.1. The first run installs the
//! pinned tools from PyPI into `charts/tests/.venv`.

use std::path::Path;
use std::process::Command;

#[test]
fn chart_renders_and_argocd_health_checks_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join("charts/tests/run.sh"))
        .current_dir(root)
        // The RBAC tests compare the chart with `annexa permissions` of this build.
        .env("ANNEXA_BIN", env!("CARGO_BIN_EXE_annexa"))
        .output()
        .expect("run charts/tests/run.sh (needs bash and python3)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chart tests failed ({}); rerun with `bash charts/tests/run.sh`\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    // pytest exits 5 when it collected nothing; make sure the suite really ran.
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("failed"),
        "unexpected pytest summary: {summary}"
    );
}
