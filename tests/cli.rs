#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `annexa` binary as users run it: generated CRDs in sync, `check` exit codes and error
//! messages on good and bad input, and the informational subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn annexa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annexa"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run annexa")
}

fn annexa_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_annexa"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn annexa");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn model(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: annexa.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: {name}
  namespace: ml
spec:
  model:
    name: fraud
    version: 1.0.0
    uri: s3://models/fraud/1.0.0/
    digest: {DIGEST}
    kmsKey: arn:aws:kms:eu-west-1:111122223333:key/fraud
  image: registry.example.com/ml/serve@{DIGEST}
  serving:
    tlsSecret: fraud-tls
{extra_spec}"
    )
}

#[test]
fn crds_folder_matches_the_rust_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, crd) in annexa::api::crds() {
        let expected = annexa::cli::info::crd_file(&crd).unwrap();
        for dir in ["crds", "charts/annexa/crds"] {
            let dir = root.join(dir);
            let path = dir.join(file);
            let actual = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}); run `annexa crd --output-dir {}`",
                    path.display(),
                    dir.display()
                )
            });
            assert!(
                actual == expected,
                "{} differs from the Rust types; regenerate with `cargo run -- crd --output-dir {}`",
                path.display(),
                dir.display()
            );
        }
    }
    // The printed stream holds every CRD.
    let out = annexa(&["crd"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out)
            .matches("kind: CustomResourceDefinition")
            .count(),
        5
    );
}

#[test]
fn compliant_model_passes_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "md.yaml", &model("fraud", ""));
    let out = annexa(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("OK   ModelDeployment/ml/fraud"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("1 objects checked: 1 compliant"));
}

#[test]
fn enforce_finding_exits_1_and_names_the_control() {
    let dir = tempfile::tempdir().unwrap();
    let text = model(
        "leaky",
        "  network:\n    allowedFrom:\n    - namespaceSelector: {}\n",
    );
    write(dir.path(), "md.yaml", &text);
    let out = annexa(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL Enforce A.8.22 Segregation of networks: model \"leaky\" admits traffic from every pod in every namespace  [spec.network.allowedFrom[0]]"),
        "{text}"
    );
}

#[test]
fn warn_and_audit_findings_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata:
  name: relaxed
spec:
  enforcement:
    action: Warn
    overrides:
    - control: A.8.19
      action: Audit
  images:
    allowedRegistries: [registry.internal.example/]
";
    write(dir.path(), "policy.yaml", policy);
    let text = model(
        "fraud",
        "  network:\n    allowedFrom:\n    - namespaceSelector: {}\n",
    );
    write(dir.path(), "md.yaml", &text);
    let out = annexa(&["check", dir.path().to_str().unwrap(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["enforce"], 0);
    assert_eq!(report["summary"]["warn"], 1);
    assert_eq!(report["summary"]["audit"], 1);
    let findings = report["objects"][0]["findings"].as_array().unwrap();
    let controls: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f["control"].as_str().unwrap(),
                f["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(controls.contains(&("A.8.22", "Warn")), "{controls:?}");
    assert!(controls.contains(&("A.8.19", "Audit")), "{controls:?}");
}

/// The `type` of each `<failure>` element of a JUnit report, in order.
fn failure_types(xml: &str) -> Vec<&str> {
    xml.split("<failure ")
        .skip(1)
        .map(|element| {
            let attributes = element.split('>').next().unwrap_or_default();
            attributes
                .split(" type=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("(no type)")
        })
        .collect()
}

#[test]
fn junit_output_marks_enforce_findings_as_failures() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "md.yaml",
        &model(
            "leaky",
            "  network:\n    allowedFrom:\n    - namespaceSelector: {}\n",
        ),
    );
    let out = annexa(&["check", dir.path().to_str().unwrap(), "-o", "junit"]);
    assert_eq!(out.status.code(), Some(1));
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml"));
    assert!(
        xml.contains("<testsuite name=\"ModelDeployment/ml/leaky\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"A.8.22 Segregation of networks: model &quot;leaky&quot;"),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure").count(), 1);
    assert_eq!(failure_types(&xml), ["Enforce"], "{xml}");
}

#[test]
fn ungoverned_kinds_are_listed_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    let out = annexa(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("SKIP ConfigMap settings"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("not a kind Annexa governs"));
}

#[test]
fn stdin_is_read_with_dash() {
    let out = annexa_stdin(&["check", "-"], model("fraud", "").as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("ModelDeployment/ml/fraud  (<stdin>"));
}

/// Runs check on one file with the given content; expects exit 2 and returns stderr.
fn bad_input(name: &str, content: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    let out = annexa(&["check", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "nothing is evaluated on bad input");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(name), "the error names the file: {err}");
    err
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let err = bad_input(
        "broken.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
    );
    assert!(err.contains("broken.yaml: line "), "{err}");
    assert!(err.contains("malformed YAML"), "{err}");
}

#[test]
fn document_without_kind_is_bad_input() {
    let err = bad_input("nokind.yaml", b"apiVersion: v1\nmetadata:\n  name: x\n");
    assert!(err.contains("document has no kind"), "{err}");
}

#[test]
fn unknown_field_is_named() {
    let text = model("fraud", "  replicaz: 3\n");
    let err = bad_input("unknown.yaml", text.as_bytes());
    assert!(
        err.contains("ModelDeployment \"fraud\": unknown field spec.replicaz"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_named() {
    let text = model("fraud", "  replicas: three\n");
    let err = bad_input("wrongtype.yaml", text.as_bytes());
    assert!(
        err.contains("ModelDeployment \"fraud\": field spec.replicas: invalid type"),
        "{err}"
    );
}

#[test]
fn wrong_enum_value_is_named() {
    let text = "apiVersion: annexa.dev/v1alpha1
kind: TrainingDataset
metadata: {name: claims, namespace: ml}
spec:
  source: {uri: s3://data/claims/}
  classification: TopSecret
";
    let err = bad_input("enum.yaml", text.as_bytes());
    assert!(
        err.contains("field spec.classification: unknown variant `TopSecret`"),
        "{err}"
    );
}

#[test]
fn second_document_error_names_the_document() {
    let text = format!("{}---\napiVersion: v1\nkind: 42\n", model("fraud", ""));
    let err = bad_input("multi.yaml", text.as_bytes());
    assert!(err.contains("multi.yaml:"), "{err}");
    assert!(err.contains("(document 2)"), "{err}");
    assert!(err.contains("kind must be a non-empty string"), "{err}");
}

#[test]
fn empty_file_is_bad_input() {
    let err = bad_input("empty.yaml", b"");
    assert!(err.contains("empty.yaml: file is empty"), "{err}");
}

#[test]
fn unserved_annexa_version_is_bad_input() {
    let text = model("fraud", "").replace("annexa.dev/v1alpha1", "annexa.dev/v2");
    let err = bad_input("version.yaml", text.as_bytes());
    assert!(
        err.contains("apiVersion \"annexa.dev/v2\" is not served"),
        "{err}"
    );
}

#[test]
fn invalid_policy_setting_is_bad_input() {
    let text = "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: typo}
spec:
  enforcement:
    overrides:
    - control: A.9.99
      action: Audit
";
    let err = bad_input("policy.yaml", text.as_bytes());
    assert!(
        err.contains(
            "spec.enforcement.overrides[0].control: \"A.9.99\" is not a control Annexa evaluates"
        ),
        "{err}"
    );
}

#[test]
fn fifty_megabyte_file_is_refused_cleanly() {
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n");
    let line = format!("  k: {}\n", "x".repeat(1000));
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(&line);
    }
    let err = bad_input("big.yaml", text.as_bytes());
    assert!(
        err.contains("big.yaml: file is larger than 16 MiB"),
        "{err}"
    );
}

#[test]
fn binary_garbage_is_bad_input() {
    let err = bad_input("garbage.yaml", &[0xff, 0xfe, 0x00, 0x12, 0x80, 0x81]);
    assert!(err.contains("not UTF-8"), "{err}");
}

#[test]
fn missing_path_is_bad_input() {
    let out = annexa(&["check", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("does/not/exist.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn examples_give_the_documented_exit_codes() {
    let compliant = annexa(&["check", "examples/compliant"]);
    assert_eq!(
        compliant.status.code(),
        Some(0),
        "{}{}",
        stdout(&compliant),
        stderr(&compliant)
    );
    assert!(
        stdout(&compliant).contains("0 Enforce, 0 Warn, 0 Audit"),
        "{}",
        stdout(&compliant)
    );
    let noncompliant = annexa(&["check", "examples/noncompliant"]);
    assert_eq!(
        noncompliant.status.code(),
        Some(1),
        "{}",
        stderr(&noncompliant)
    );
    let all = annexa(&["check", "examples"]);
    assert_eq!(all.status.code(), Some(1), "{}", stderr(&all));
    // The compliant set is a strict gate's pass: nothing in it goes unchecked.
    let strict = annexa(&["check", "--strict", "examples/compliant"]);
    assert_eq!(strict.status.code(), Some(0), "{}", stdout(&strict));
    assert!(
        !stdout(&strict).contains("NOT CHECKED"),
        "{}",
        stdout(&strict)
    );
}

#[test]
fn controls_lists_the_catalogue() {
    let out = annexa(&["controls", "-o", "json"]);
    assert!(out.status.success());
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list.iter().map(|c| c["id"].as_str().unwrap()).collect();
    for id in [
        "A.5.3", "A.5.9", "A.5.12", "A.5.15", "A.5.18", "A.5.34", "A.8.2", "A.8.3", "A.8.9",
        "A.8.10", "A.8.11", "A.8.12", "A.8.19", "A.8.20", "A.8.22", "A.8.24", "A.8.31", "A.8.32",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let table = stdout(&annexa(&["controls"]));
    assert!(
        table.contains("A.8.24  Technological  Use of cryptography"),
        "{table}"
    );
}

#[test]
fn policy_default_round_trips_to_the_baseline() {
    let out = annexa(&["policy", "default"]);
    assert!(out.status.success());
    // The dangerous agent permissions are printed, so a platform team can copy and trim them.
    let text = String::from_utf8_lossy(&out.stdout);
    // The baseline pools are labels to add: the commands are printed with them.
    assert!(
        text.contains("#   kubectl label node NODE annexa.dev/gpu-pool=internal\n#   kubectl taint node NODE annexa.dev/gpu-pool=internal:NoSchedule\n"),
        "{text}"
    );
    for permission in [
        "serviceaccounts/token",
        "pods/exec",
        "nodes/proxy",
        "signers",
    ] {
        assert!(text.contains(permission), "{permission} missing:\n{text}");
    }
    let policy: annexa::api::CompliancePolicy = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let profile = annexa::policy::Profile::merge(&[&policy]);
    let mut baseline = annexa::policy::Profile::baseline();
    baseline.policies = vec!["annexa-baseline".to_string()];
    assert_eq!(profile, baseline);
}

#[test]
fn readme_control_table_matches_the_catalogue() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("<!-- controls:begin")
        .expect("controls:begin marker");
    let start = start + readme[start..].find("-->\n").expect("end of marker") + 4;
    let end = readme
        .find("<!-- controls:end -->")
        .expect("controls:end marker");
    assert_eq!(
        readme[start..end].trim(),
        annexa::cli::info::controls_markdown().trim(),
        "README control table is stale; paste `annexa controls -o markdown`"
    );
}

/// A model that `check` denies (A.8.22: traffic from every pod in every namespace).
fn leaky_model(name: &str) -> String {
    model(
        name,
        "  network:\n    allowedFrom:\n    - namespaceSelector: {}\n",
    )
}

/// Indents a manifest as an item of a YAML list.
fn as_item(manifest: &str) -> String {
    let mut out = String::new();
    for (i, line) in manifest.lines().enumerate() {
        out.push_str(if i == 0 { "- " } else { "  " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn a_list_wrapping_a_non_compliant_object_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}",
        as_item(&model("fine", "")),
        as_item(&leaky_model("leaky"))
    );
    let path = write(dir.path(), "list.yaml", &list);
    let out = annexa(&["check", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("DENY ModelDeployment/ml/leaky") && text.contains("(document 1, item 2)"),
        "{text}"
    );
    assert!(text.contains("2 objects checked: 1 compliant"), "{text}");
    assert!(!text.contains("SKIP List"), "{text}");
}

#[test]
fn items_of_a_typed_list_take_the_lists_kind() {
    let dir = tempfile::tempdir().unwrap();
    // As the API server writes a list: items without kind and apiVersion.
    let item = leaky_model("leaky")
        .replace("apiVersion: annexa.dev/v1alpha1\n", "")
        .replace("kind: ModelDeployment\n", "");
    let list = format!(
        "apiVersion: annexa.dev/v1alpha1\nkind: ModelDeploymentList\nmetadata: {{}}\nitems:\n{}",
        as_item(&item)
    );
    let path = write(dir.path(), "list.yaml", &list);
    let out = annexa(&["check", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("DENY ModelDeployment/ml/leaky"));
}

#[test]
fn a_list_with_a_bad_item_is_bad_input() {
    let err = bad_input(
        "list.yaml",
        b"apiVersion: v1\nkind: List\nitems:\n- apiVersion: annexa.dev/v1alpha1\n  kind: ModelDeployment\n  metadata: {name: m}\n  spec: {bogus: 1}\n",
    );
    assert!(err.contains("(document 1, item 1)"), "{err}");
    assert!(
        err.contains("ModelDeployment \"m\": field spec: missing field `model`"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn symlinked_folders_are_followed_and_loops_end() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    write(&real, "md.yaml", &leaky_model("leaky"));
    // A loop back to the top and a second way into the same folder.
    std::os::unix::fs::symlink(&real, real.join("again")).unwrap();
    let top = dir.path().join("top");
    std::fs::create_dir(&top).unwrap();
    std::os::unix::fs::symlink(&real, top.join("linked")).unwrap();
    let out = annexa(&["check", top.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Read once, not once per way in.
    assert!(
        stdout(&out).contains("1 objects checked: 0 compliant"),
        "{}",
        stdout(&out)
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Named directly and found in a folder: both refused, neither hangs.
    for target in [fifo.to_str().unwrap(), dir.path().to_str().unwrap()] {
        let out = annexa(&["check", target]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("pipe.yaml: not a regular file (a FIFO, socket or device)"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_byte_order_mark_is_read_past() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = "\u{feff}".to_string();
    text.push_str(&leaky_model("leaky"));
    let path = write(dir.path(), "bom.yaml", &text);
    let out = annexa(&["check", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("DENY ModelDeployment/ml/leaky"));
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: ");
    text.push_str(&"{a: ".repeat(100_000));
    text.push_str(&"}".repeat(100_000));
    let err = bad_input("deep.yaml", text.as_bytes());
    assert!(
        err.contains("deep.yaml: line 4: nesting deeper than 256 levels"),
        "{err}"
    );
}

#[test]
fn too_many_documents_is_bad_input() {
    let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n".repeat(10_001);
    let err = bad_input("many.yaml", text.as_bytes());
    assert!(
        err.contains("many.yaml: more than 10000 documents and list items; split the file"),
        "{err}"
    );
}

#[test]
fn fail_on_ungoverned_makes_ungoverned_kinds_fail_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "md.yaml", &model("fine", ""));
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
    );
    let lenient = annexa(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(lenient.status.code(), Some(0), "{}", stderr(&lenient));
    let strict = annexa(&[
        "check",
        "--fail-on-ungoverned",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(strict.status.code(), Some(1), "{}", stderr(&strict));
    assert!(stdout(&strict).contains("SKIP ConfigMap settings"));
    assert!(
        stderr(&strict).contains("1 object(s) of kinds Annexa does not govern"),
        "{}",
        stderr(&strict)
    );
}

/// A policy kept outside the checked folder that allows only another registry.
const OTHER_REGISTRY_ONLY: &str = "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: other-registry-only}
spec:
  images: {allowedRegistries: [ghcr.io/acme/]}
";

#[test]
fn policy_flag_adds_a_policy_from_outside_the_checked_folder() {
    let manifests = tempfile::tempdir().unwrap();
    let policies = tempfile::tempdir().unwrap();
    write(manifests.path(), "md.yaml", &model("fraud", ""));
    let policy = write(policies.path(), "policy.yaml", OTHER_REGISTRY_ONLY);
    // Without the flag the baseline applies: compliant.
    let out = annexa(&["check", manifests.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // With it, the outside policy governs the namespace.
    let out = annexa(&[
        "check",
        manifests.path().to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "FAIL Enforce A.8.19 Installation of software on operational systems: model \"fraud\" serves image \"registry.example.com/ml/serve@{DIGEST}\", which is not from an allowed registry [\"ghcr.io/acme/\"]  [spec.image]"
        )),
        "{text}"
    );
}

#[test]
fn at_flag_evaluates_as_of_another_instant() {
    // An exception that expires on 2026-01-01 turns the registry failure into Excepted before
    // that instant, and no longer after it.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "md.yaml", &model("fraud", ""));
    write(
        dir.path(),
        "policy.yaml",
        &format!(
            "{OTHER_REGISTRY_ONLY}  exceptions:
  - {{control: A.8.19, kind: ModelDeployment, name: fraud, reason: migrating registries, expires: '2026-01-01T00:00:00Z'}}
"
        ),
    );
    let path = dir.path().to_str().unwrap();
    let before = annexa(&["check", path, "--at", "2025-12-31T23:59:59Z"]);
    assert_eq!(
        before.status.code(),
        Some(0),
        "{}{}",
        stdout(&before),
        stderr(&before)
    );
    assert!(
        stdout(&before).contains(&format!(
            "  EXC          A.8.19 Installation of software on operational systems: excepted by policy (migrating registries): A.8.19 Installation of software on operational systems: model \"fraud\" serves image \"registry.example.com/ml/serve@{DIGEST}\", which is not from an allowed registry [\"ghcr.io/acme/\"]\n"
        )),
        "{}",
        stdout(&before)
    );
    let after = annexa(&["check", path, "--at", "2026-01-01T00:00:01Z"]);
    assert_eq!(after.status.code(), Some(1), "{}", stdout(&after));
    assert!(
        stdout(&after).contains("FAIL Enforce A.8.19"),
        "{}",
        stdout(&after)
    );
    // A malformed instant is bad input (exit 2), named.
    let bad = annexa(&["check", path, "--at", "tomorrow"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).starts_with("error: --at \"tomorrow\" is not an RFC 3339 instant"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_list_over_its_crd_bound_is_bad_input_naming_the_field() {
    let datasets: String = (0..65).map(|i| format!("  - d{i}\n")).collect();
    let text = model("big", &format!("  trainingDatasets:\n{datasets}"));
    let err = bad_input("big.yaml", text.as_bytes());
    assert!(
        err.contains(
            "ModelDeployment \"big\": spec.trainingDatasets: Too many: must have at most 64 items"
        ),
        "{err}"
    );
}

/// A KServe InferenceService, a LeaderWorkerSet and a RayService asking for GPUs: kinds Annexa
/// does not read.
const AI_KINDS: &str = "apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: llm, namespace: ml}
spec:
  predictor:
    model:
      modelFormat: {name: huggingface}
      resources: {limits: {nvidia.com/gpu: '1'}}
---
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: vllm, namespace: ml}
spec:
  leaderWorkerTemplate:
    workerTemplate:
      spec:
        containers: [{name: w, image: vllm/vllm-openai, resources: {limits: {nvidia.com/gpu: '8'}}}]
---
apiVersion: ray.io/v1
kind: RayService
metadata: {name: serve, namespace: ml}
spec: {}
";

#[test]
fn ai_serving_kinds_are_never_skipped_silently() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "md.yaml", &model("fraud", ""));
    write(dir.path(), "serving.yaml", AI_KINDS);
    let path = dir.path().to_str().unwrap();
    // Default: a clear line for each, the exit code of the evaluated objects.
    let out = annexa(&["check", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for (subject, what) in [
        (
            "InferenceService/ml/llm",
            "InferenceService (KServe, serving.kserve.io/v1beta1) runs AI workloads, and Annexa does not read this kind: nothing in it was checked. It asks for GPUs (nvidia.com/gpu at spec.predictor.model.resources.limits[nvidia.com/gpu]).",
        ),
        (
            "LeaderWorkerSet/ml/vllm",
            "LeaderWorkerSet (LeaderWorkerSet, leaderworkerset.x-k8s.io/v1) runs AI workloads",
        ),
        (
            "RayService/ml/serve",
            "RayService (KubeRay, ray.io/v1) runs AI workloads",
        ),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("NOT CHECKED {subject}  (")))
            .unwrap_or_else(|| panic!("no line for {subject}:\n{text}"));
        assert!(line.contains(what), "{line}");
    }
    assert!(!text.contains("SKIP InferenceService"), "{text}");
    assert!(
        text.contains("; 3 not checked (--strict would fail the check)"),
        "{text}"
    );
    // Strict: exit 1, in every format.
    let strict = annexa(&["check", "--strict", path]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
    assert!(
        stderr(&strict).contains("annexa check: 3 thing(s) not checked (--strict)"),
        "{}",
        stderr(&strict)
    );
    let json = annexa(&["check", "--strict", path, "-o", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["summary"]["notChecked"], 3);
    assert_eq!(report["notChecked"][0]["kind"], "aiKind");
    assert!(
        stderr(&json).contains("error: not checked: InferenceService/ml/llm: "),
        "{}",
        stderr(&json)
    );
    let junit = annexa(&["check", "--strict", path, "-o", "junit"]);
    assert_eq!(junit.status.code(), Some(1));
    let xml = stdout(&junit);
    assert_eq!(
        failure_types(&xml),
        ["NotChecked", "NotChecked", "NotChecked"],
        "{xml}"
    );
    assert!(
        xml.contains(
            "<testsuites name=\"annexa check\" tests=\"13\" skipped=\"3\" failures=\"3\" errors=\"0\">"
        ),
        "{xml}"
    );
    let sarif = annexa(&["check", "--strict", path, "-o", "sarif"]);
    assert_eq!(sarif.status.code(), Some(1));
    let log: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let not_checked: Vec<_> = results
        .iter()
        .filter(|r| r["ruleId"] == "annexa/not-checked")
        .collect();
    assert_eq!(not_checked.len(), 3, "{results:?}");
    assert!(not_checked.iter().all(|r| r["level"] == "error"));
    // Without --strict the same results are warnings and the check passes.
    let lenient = annexa(&["check", path, "-o", "sarif"]);
    assert_eq!(lenient.status.code(), Some(0));
    let log: serde_json::Value = serde_json::from_slice(&lenient.stdout).unwrap();
    assert!(
        log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["ruleId"] == "annexa/not-checked")
            .all(|r| r["level"] == "warning")
    );
}

#[test]
fn gpu_requests_through_kinds_annexa_cannot_read_are_not_checked_silently() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "md.yaml", &model("fraud", ""));
    write(
        dir.path(),
        "other.yaml",
        "apiVersion: example.com/v1
kind: GpuRunner
metadata: {name: runner, namespace: ml}
spec:
  template:
    spec:
      containers: [{name: c, image: r/c, resources: {requests: {nvidia.com/mig-1g.10gb: 1}}}]
---
apiVersion: apps/v1beta1
kind: Deployment
metadata: {name: legacy, namespace: ml}
spec:
  template:
    spec:
      containers: [{name: c, image: r/c}]
---
apiVersion: example.com/v1
kind: CpuRunner
metadata: {name: cpu, namespace: ml}
spec:
  containers: [{name: c, image: r/c, resources: {requests: {cpu: 1}}}]
",
    );
    let path = dir.path().to_str().unwrap();
    let out = annexa(&["check", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("NOT CHECKED GpuRunner/ml/runner  ("),
        "{text}"
    );
    assert!(
        text.contains("GpuRunner (example.com/v1) is a kind Annexa does not read, so its GPU placement was not checked. It asks for GPUs (nvidia.com/mig-1g.10gb at spec.template.spec.containers[0].resources.requests[nvidia.com/mig-1g.10gb])."),
        "{text}"
    );
    assert!(
        text.contains("NOT CHECKED Deployment/ml/legacy  (") &&
        text.contains("Deployment in apps/v1beta1 is not read by Annexa (it reads v1, apps/v1 and batch/v1)"),
        "{text}"
    );
    // A kind without a GPU request stays an ordinary skip.
    assert!(text.contains("SKIP CpuRunner cpu"), "{text}");
    let strict = annexa(&["check", "--strict", path]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
    assert!(stderr(&strict).contains("2 thing(s) not checked (--strict)"));
}

const PRODUCTION_POLICY: &str = "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: production}
spec:
  namespaceSelector: {matchLabels: {annexa.dev/environment: production}}
  environment: Production
";

#[test]
fn a_policy_given_with_the_flag_that_selects_nothing_is_said_and_fails_strict() {
    let manifests = tempfile::tempdir().unwrap();
    let policies = tempfile::tempdir().unwrap();
    // A manifest without a namespace, as many are kept in git.
    let text = model("fraud", "").replace("  namespace: ml\n", "");
    write(manifests.path(), "md.yaml", &text);
    let policy = write(policies.path(), "production.yaml", PRODUCTION_POLICY);
    let (path, policy) = (manifests.path().to_str().unwrap(), policy.to_str().unwrap());
    let out = annexa(&["check", path, "--policy", policy]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("OK   ModelDeployment/default/fraud"),
        "{text}"
    );
    assert!(
        text.contains("  policy: baseline applied: no Namespace \"default\" in the input, so no CompliancePolicy selects it by its labels (add the Namespace, give its labels with --namespace-labels, or the namespace with -n); the manifest names no namespace, so it is \"default\" (-n sets one)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("NOT CHECKED CompliancePolicy/production  ({policy}): CompliancePolicy \"production\" (given with --policy {policy}) selects none of the checked objects' namespaces, so its rules were applied to nothing (namespaces checked: \"default\" (no Namespace in the input))")),
        "{text}"
    );
    let strict = annexa(&["check", "--strict", path, "--policy", policy]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
    // With the namespace and its labels, the policy governs: Production requires digests.
    let governed = annexa(&[
        "check",
        "--strict",
        path,
        "--policy",
        policy,
        "-n",
        "fraud-prod",
        "--namespace-labels",
        "annexa.dev/environment=production",
    ]);
    let text = stdout(&governed);
    assert!(
        text.contains("ModelDeployment/fraud-prod/fraud"),
        "{text}{}",
        stderr(&governed)
    );
    assert!(
        text.contains("  policy: production selects namespace \"fraud-prod\" by the labels given with --namespace-labels\n"),
        "{text}"
    );
    assert!(!text.contains("NOT CHECKED"), "{text}");
    // A Namespace object in a namespaces file given with --policy does the same.
    let namespaces = write(
        policies.path(),
        "namespaces.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fraud-prod\n  labels: {annexa.dev/environment: production}\n",
    );
    let out = annexa(&[
        "check",
        "--strict",
        path,
        "--policy",
        policy,
        "--policy",
        namespaces.to_str().unwrap(),
        "-n",
        "fraud-prod",
    ]);
    assert!(
        stdout(&out).contains(&format!(
            "  policy: production selects namespace \"fraud-prod\" by the labels of its Namespace ({}:1 (document 1))\n",
            namespaces.display()
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_namespace_flag_that_contradicts_the_manifest_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "md.yaml", &model("fraud", ""));
    let out = annexa(&["check", dir.path().to_str().unwrap(), "-n", "other"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the namespace of the object (\"ml\") does not match the namespace given with -n (\"other\")"),
        "{}",
        stderr(&out)
    );
    let bad = annexa(&[
        "check",
        dir.path().to_str().unwrap(),
        "--namespace-labels",
        "justakey",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("\"justakey\" is not key=value"));
}

#[test]
fn an_input_with_nothing_to_evaluate_is_said_and_fails_strict() {
    let empty = tempfile::tempdir().unwrap();
    let out = annexa(&["check", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("NOT CHECKED input: the input holds no manifest (no .yaml, .yml or .json document): nothing was checked"),
        "{}",
        stdout(&out)
    );
    let strict = annexa(&["check", "--strict", empty.path().to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(1));
    // Only kinds Annexa does not evaluate.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
    );
    let out = annexa(&[
        "check",
        "--strict",
        dir.path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["notChecked"][0]["kind"], "nothingEvaluated");
    assert!(
        stderr(&out).contains("error: not checked: input: the input holds no object Annexa evaluates (1 document(s) read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn junit_failures_attribute_counts_the_failure_elements() {
    let out = annexa(&["check", "examples/noncompliant", "-o", "junit"]);
    assert_eq!(out.status.code(), Some(1));
    let xml = stdout(&out);
    let elements = xml.matches("<failure").count();
    assert!(elements > 1, "{xml}");
    let header = xml.lines().nth(1).unwrap();
    assert!(
        header.contains(&format!("failures=\"{elements}\"")),
        "{header} but {elements} <failure> elements"
    );
    // Each suite's count is its own elements.
    for suite in xml.split("<testsuite ").skip(1) {
        let declared: usize = suite
            .split("failures=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        let body = &suite[..suite.find("</testsuite>").unwrap()];
        assert_eq!(declared, body.matches("<failure").count(), "{body}");
    }
}

#[test]
fn a_missing_field_beside_its_typo_is_named_with_a_suggestion() {
    let text = model("fraud", "").replace("  image: ", "  imgae: ");
    let err = bad_input("typo.yaml", text.as_bytes());
    assert!(
        err.contains("typo.yaml:1 (document 1): ModelDeployment \"fraud\": field spec: missing field `image`; unknown field spec.imgae (did you mean `image`?)"),
        "{err}"
    );
}

#[test]
fn unknown_fields_in_lists_and_optional_sections_name_the_index() {
    let text = "apiVersion: annexa.dev/v1alpha1
kind: CompliancePolicy
metadata: {name: typo}
spec:
  exceptions:
  - {control: A.8.19, reason: migrating, nmae: fraud}
  gpu:
    pools:
    - {classification: Internal, nodeSelector: {pool: internal}, tiant: {}}
";
    let err = bad_input("lists.yaml", text.as_bytes());
    assert!(
        err.contains("CompliancePolicy \"typo\": unknown fields spec.exceptions[0].nmae, spec.gpu.pools[0].tiant"),
        "{err}"
    );
}

#[test]
fn at_flag_past_an_approvals_ttl_shows_it_expired() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "approval.yaml",
        "apiVersion: annexa.dev/v1alpha1
kind: ModelApproval
metadata:
  name: fraud-bob
  namespace: ml
  creationTimestamp: '2026-01-01T00:00:00Z'
spec:
  modelDeployment: fraud
  modelUID: 9b2f6c1e-5d4a-4c3b-8e7f-0a1b2c3d4e5f
  release:
    fingerprint: sha256:41b16c89bd7294ee2a94b0aa41848186dff9f15c9e084d58af2aa245f0f826d0
    digest: sha256:7fb5bb020e3bfad34de1b8118c7b25e743f9fcf34b413b5cf474973c672acfe5
  decision: Approve
  approver: {username: bob@example.com, groups: [ml-reviewers]}
",
    );
    let path = dir.path().to_str().unwrap();
    let within = annexa(&["check", path, "--at", "2026-01-07T23:59:59Z"]);
    assert_eq!(within.status.code(), Some(0), "{}", stderr(&within));
    assert!(
        stdout(&within).contains(
            "  PASS         A.8.32 Change management: valid until 2026-01-08T00:00:00Z\n"
        ),
        "{}",
        stdout(&within)
    );
    let past = annexa(&["check", path, "--at", "2026-01-08T00:00:01Z"]);
    assert_eq!(past.status.code(), Some(0), "{}", stderr(&past));
    let text = stdout(&past);
    assert!(
        text.contains("  N/A          A.8.32 Change management: approval \"fraud-bob\" expired at 2026-01-08T00:00:00Z (approvals are valid for 7d): it no longer counts towards any release\n"),
        "{text}"
    );
    assert!(!text.contains("PASS         A.8.32"), "{text}");
}

#[test]
fn dash_f_names_the_input_as_kubectl_does() {
    let dir = tempfile::tempdir().unwrap();
    let leaky = write(
        dir.path(),
        "md.yaml",
        &model(
            "leaky",
            "  network:\n    allowedFrom:\n    - namespaceSelector: {}\n",
        ),
    );
    let out = annexa(&["check", "-f", leaky.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("DENY ModelDeployment/ml/leaky"));
    // Neither a PATH nor -f: a usage error.
    let none = annexa(&["check"]);
    assert_eq!(none.status.code(), Some(2));
}
