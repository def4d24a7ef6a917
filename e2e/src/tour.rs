//! Annexa on the stand-in the way a new user meets it: the chart installed as the e2e suite
//! installs it, `annexa run` as the chart's ServiceAccount, and the people the examples name
//! (alice writes models, bob and carol review them). Shared by the executed-docs test
//! (`e2e/tests/docs.rs`) and the local tour (`annexa-tour`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{
    Background, Cluster, HarnessError, StandinOptions, TestUser, eventually, free_port,
};

/// Release name and namespace the README installs into.
pub const RELEASE: &str = "annexa";
pub const NAMESPACE: &str = "annexa-system";

/// The people of the README and the examples: a cluster administrator, an ML engineer who
/// writes models, and reviewers in the `ml-reviewers` group the production policy names.
pub fn doc_users() -> Vec<TestUser> {
    vec![
        TestUser::new("admin", &["system:masters"]),
        TestUser::new("alice@example.com", &["ml-engineers"]),
        TestUser::new("bob@example.com", &["ml-reviewers"]),
        TestUser::new("carol@example.com", &["ml-reviewers", "risk-office"]),
        TestUser::new("dave@example.com", &["ml-reviewers"]),
    ]
}

fn other(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Other(e.to_string())
}

/// Renders the chart as `helm template` would (`charts/tests/render.sh`), with `values` (JSON
/// objects, as `--set-json`), one JSON value per object, CRDs first.
pub fn render_chart(repo: &Path, values: &[Value]) -> Result<Vec<Value>, HarnessError> {
    let mut command = Command::new("bash");
    command.arg(repo.join("charts/tests/render.sh")).args([
        "--name",
        RELEASE,
        "--namespace",
        NAMESPACE,
    ]);
    for v in values {
        command.arg("--set-json").arg(v.to_string());
    }
    let out = command.output().map_err(|source| HarnessError::Io {
        what: "running charts/tests/render.sh".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(other(format!(
            "charts/tests/render.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut objects = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(other)?;
        if !v.is_null() {
            objects.push(v);
        }
    }
    Ok(objects)
}

/// What `helm install`/`helm upgrade` of the chart does on the stand-in: the rendered chart
/// (with `values`) applied server-side as Helm's field manager, without the Deployment (the
/// stand-in runs no pods; `annexa run` runs as a local process instead).
pub fn apply_chart(
    cluster: &Cluster,
    repo: &Path,
    values: &[Value],
) -> Result<Vec<Value>, HarnessError> {
    // The OpenReports CRDs too, so that `kubectl get reports` works as the docs show it.
    let mut all = vec![json!({"reports": {"installCRDs": true}})];
    all.extend_from_slice(values);
    let rendered = render_chart(repo, &all)?;
    let stream: Vec<String> = rendered
        .iter()
        .filter(|o| o["kind"] != "Deployment")
        .map(Value::to_string)
        .collect();
    cluster
        .kubectl()
        .args(["apply", "--server-side", "--field-manager=helm", "-f", "-"])
        .stdin(stream.join("\n"))
        .ok()?;
    Ok(rendered)
}

/// What `helm upgrade` does on the stand-in: [`apply_chart`] taking over conflicting fields.
/// kube-apiserver merges a webhook configuration's `webhooks` by name, so Helm's apply leaves
/// the `caBundle` Annexa patched in place; the stand-in treats that list as one value, so the
/// bundles are put back as they were.
pub fn upgrade_chart(
    cluster: &Cluster,
    repo: &Path,
    values: &[Value],
) -> Result<Vec<Value>, HarnessError> {
    let kinds = [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ];
    let bundles = |kind: &str| -> Option<Vec<Value>> {
        let out = cluster
            .kubectl()
            .args(["get", kind, RELEASE, "-o", "json"])
            .ok()
            .ok()?;
        let object: Value = serde_json::from_str(&out).ok()?;
        Some(
            object["webhooks"]
                .as_array()?
                .iter()
                .map(|w| w["clientConfig"]["caBundle"].clone())
                .collect(),
        )
    };
    let before: Vec<Option<Vec<Value>>> = kinds.iter().map(|k| bundles(k)).collect();
    let mut all = vec![json!({"reports": {"installCRDs": true}})];
    all.extend_from_slice(values);
    let rendered = render_chart(repo, &all)?;
    let stream: Vec<String> = rendered
        .iter()
        .filter(|o| o["kind"] != "Deployment")
        .map(Value::to_string)
        .collect();
    cluster
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=helm",
            "-f",
            "-",
        ])
        .stdin(stream.join("\n"))
        .ok()?;
    for (kind, before) in kinds.iter().zip(before) {
        let (Some(before), Some(after)) = (before, bundles(kind)) else {
            continue;
        };
        let ops: Vec<Value> = before
            .iter()
            .zip(after.iter())
            .enumerate()
            .filter(|(_, (b, a))| b.is_string() && !a.is_string())
            .map(|(i, (b, _))| {
                json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": b})
            })
            .collect();
        if !ops.is_empty() {
            cluster
                .kubectl()
                .args([
                    "patch",
                    kind,
                    RELEASE,
                    "--type=json",
                    "--field-manager=annexa",
                    "-p",
                    &Value::Array(ops).to_string(),
                ])
                .ok()?;
        }
    }
    Ok(rendered)
}

/// Turns Helm's `--set a.b=c` into the JSON object `{"a": {"b": "c"}}` (strings, true/false
/// and integers, as Helm reads them).
pub fn set_to_json(set: &str) -> Result<Value, HarnessError> {
    let (path, value) = set
        .split_once('=')
        .ok_or_else(|| other(format!("--set {set}: expected KEY=VALUE")))?;
    let value = match value {
        "true" => json!(true),
        "false" => json!(false),
        v => v.parse::<i64>().map(|n| json!(n)).unwrap_or(json!(v)),
    };
    Ok(path
        .rsplit('.')
        .fold(value, |inner, key| json!({ key: inner })))
}

/// Annexa installed on a stand-in of its own, with `annexa run` serving.
pub struct Tour {
    pub cluster: Cluster,
    pub annexa: Background,
    /// The folder holding the `annexa` binary (put first on PATH for the docs' commands).
    pub bin_dir: PathBuf,
    pub repo: PathBuf,
    /// Where `annexa run` writes its log.
    pub annexa_log: PathBuf,
    /// Scratch folder (the log, the docs' working folder); removed with the tour.
    pub dir: tempfile::TempDir,
}

impl Tour {
    /// Starts the stand-in with [`doc_users`], installs the chart into `annexa-system` and
    /// starts `annexa run` with the Deployment's arguments, as the chart's ServiceAccount.
    pub fn start(
        repo: &Path,
        annexa_bin: &Path,
        standin_bin: Option<PathBuf>,
    ) -> Result<Tour, HarnessError> {
        let cluster = Cluster::start_standin(StandinOptions {
            binary: standin_bin,
            users: doc_users(),
            args: Vec::new(),
        })?;
        cluster
            .kubectl()
            .args(["create", "namespace", NAMESPACE])
            .ok()?;
        let rendered = apply_chart(&cluster, repo, &[])?;
        let find = |kind: &str| rendered.iter().find(|o| o["kind"] == kind);
        let service_account = find("ServiceAccount")
            .and_then(|sa| sa["metadata"]["name"].as_str())
            .ok_or_else(|| other("the chart renders no ServiceAccount"))?
            .to_string();
        // What the kubelet mounts into the Deployment's pods: a token of its ServiceAccount.
        let token = cluster
            .kubectl()
            .args([
                "create",
                "token",
                &service_account,
                "-n",
                NAMESPACE,
                "--duration=24h",
            ])
            .ok()?;
        let kubeconfig =
            cluster.kubeconfig_with_token(&format!("sa-{service_account}"), token.trim())?;
        let service = rendered
            .iter()
            .find(|o| {
                o["kind"] == "Service"
                    && o["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
            })
            .ok_or_else(|| other("the chart renders no webhook Service"))?;
        let webhook_port = free_port()?;
        let metrics_port = free_port()?;
        cluster.add_webhook_override(
            &format!(
                "{}.{NAMESPACE}:{}",
                service["metadata"]["name"].as_str().unwrap_or_default(),
                service["spec"]["ports"][0]["port"].as_u64().unwrap_or(443)
            ),
            &format!("127.0.0.1:{webhook_port}"),
        )?;
        let deployment =
            find("Deployment").ok_or_else(|| other("the chart renders no Deployment"))?;
        let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|a| {
                        if a.starts_with("--webhook-addr=") {
                            format!("--webhook-addr=127.0.0.1:{webhook_port}")
                        } else if a.starts_with("--metrics-addr=") {
                            format!("--metrics-addr=127.0.0.1:{metrics_port}")
                        } else if a.starts_with("--log-format=") {
                            // A log file a person reads, not a log collector's input.
                            "--log-format=text".to_string()
                        } else {
                            a.replace("$(POD_NAMESPACE)", NAMESPACE)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut command = Command::new(annexa_bin);
        command
            .args(&args)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("HOSTNAME", "annexa-0")
            .env("RUST_LOG", "info");
        let dir = tempfile::tempdir().map_err(|source| HarnessError::Io {
            what: "creating a scratch folder".into(),
            source,
        })?;
        command.env("KUBECONFIG", &kubeconfig);
        let log = dir.path().join("annexa-run.log");
        let mut annexa = Background::spawn(command, log.clone())?;
        annexa.wait_for_log("admission context synced", Duration::from_secs(120))?;
        annexa.wait_for_log("serving the admission webhook", Duration::from_secs(60))?;
        // The API server can call the webhook once its caBundle is in the configuration.
        eventually(Duration::from_secs(60), "the webhook's caBundle", || {
            let out = cluster
                .kubectl()
                .args([
                    "get",
                    "validatingwebhookconfiguration",
                    RELEASE,
                    "-o",
                    "jsonpath={.webhooks[0].clientConfig.caBundle}",
                ])
                .ok()
                .ok()?;
            (!out.trim().is_empty()).then_some(())
        })?;
        let bin_dir = annexa_bin
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(Tour {
            cluster,
            annexa,
            bin_dir,
            repo: repo.to_path_buf(),
            annexa_log: log,
            dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_set_flags_become_values() {
        assert_eq!(
            set_to_json("webhook.workloads.failurePolicy=Ignore").unwrap(),
            json!({"webhook": {"workloads": {"failurePolicy": "Ignore"}}})
        );
        assert_eq!(
            set_to_json("replicaCount=1").unwrap(),
            json!({"replicaCount": 1})
        );
        assert!(set_to_json("nothing").is_err());
    }
}
