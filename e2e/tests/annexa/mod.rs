//! Support for the Annexa end-to-end scenarios: install Annexa from the rendered Helm chart,
//! run `annexa run` as a child process the way the chart's Deployment would, and small helpers
//! to read what a user reads (`kubectl get -o json`, conditions, stderr).
#![allow(dead_code)]
// Test-only helpers: panicking on a broken precondition is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use annexa_e2e::harness::{Background, Cluster, HarnessError, Kubectl, TestNamespace, eventually};
use base64::Engine;
use serde_json::{Value, json};

/// Environment variable overriding where the `annexa` binary is.
pub const ANNEXA_BIN_ENV: &str = "ANNEXA_BIN";
/// On a real cluster: the namespace Annexa was installed into with Helm (release `annexa`).
pub const RELEASE_NAMESPACE_ENV: &str = "ANNEXA_E2E_NAMESPACE";
/// Release name and namespace of the chart rendered for the stand-in.
pub const RELEASE: &str = "annexa";
pub const STANDIN_NAMESPACE: &str = "annexa-system";

/// Generous: 2 shared cores, several `annexa run` and stand-in processes at once.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub const DIGEST_1: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const DIGEST_2: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";
pub const IMAGE: &str = "registry.example.com/ml/triton-serving@sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// The repository root (the e2e crate is one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives in the repository")
        .to_path_buf()
}

/// The `annexa` binary: `$ANNEXA_BIN`, else `target/<profile>/annexa` next to the test
/// executable (`cargo test --workspace` builds it). Missing is a failure, never a skip.
pub fn annexa_binary() -> PathBuf {
    if let Ok(p) = std::env::var(ANNEXA_BIN_ENV) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{ANNEXA_BIN_ENV}={} is not a file",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("locating the test binary");
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join("annexa");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    panic!(
        "the annexa binary was not found next to {}: build it first (`cargo build -p annexa`, \
         or run `cargo test --workspace`), or set {ANNEXA_BIN_ENV}",
        exe.display()
    )
}

/// The chart rendered as `helm template` would (charts/tests/render.sh), one JSON value per
/// object, CRDs first.
pub fn render_chart(namespace: &str) -> Vec<Value> {
    render_chart_with(namespace, &json!({}))
}

/// The chart rendered with `values` (as `helm template --set-json`).
pub fn render_chart_with(namespace: &str, values: &Value) -> Vec<Value> {
    let root = repo_root();
    let out = Command::new("bash")
        .arg(root.join("charts/tests/render.sh"))
        .args(["--name", RELEASE, "--namespace", namespace])
        .arg(format!("--set-json={values}"))
        .output()
        .expect("running charts/tests/render.sh");
    assert!(
        out.status.success(),
        "charts/tests/render.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("rendered chart is UTF-8");
    serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|doc| {
            let v: Value = serde::Deserialize::deserialize(doc).expect("rendered YAML parses");
            (!v.is_null()).then_some(v)
        })
        .collect()
}

/// The arguments the chart's Deployment passes to `annexa run` (after `run`), with the pod
/// environment substituted and the listen addresses moved to loopback ports.
pub fn chart_run_args(
    rendered: &[Value],
    namespace: &str,
    webhook_port: u16,
    metrics_port: u16,
) -> Vec<String> {
    let deployment = rendered
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    args[1..]
        .iter()
        .map(|a| {
            if a.starts_with("--webhook-addr=") {
                format!("--webhook-addr=127.0.0.1:{webhook_port}")
            } else if a.starts_with("--metrics-addr=") {
                format!("--metrics-addr=127.0.0.1:{metrics_port}")
            } else {
                a.replace("$(POD_NAMESPACE)", namespace)
            }
        })
        .collect()
}

/// Annexa installed on a cluster. On the stand-in: CRDs, RBAC, Service, webhook configurations
/// and the rest from the rendered chart, but no Deployment (the stand-in runs no pods):
/// `annexa run` runs as a child process with the Deployment's arguments, and the stand-in sends
/// calls for the webhook Service to its loopback port.
pub struct Annexa {
    pub cluster: Cluster,
    pub namespace: String,
    pub rendered: Vec<Value>,
    /// The `annexa run` children by name (none on a real cluster).
    pub processes: Mutex<Vec<(String, Background)>>,
    pub webhook_port: u16,
    /// A kubeconfig with a token of the chart's ServiceAccount: `annexa run` acts as the
    /// Deployment's pods would, with exactly the chart's RBAC (stand-in only).
    pub service_account_kubeconfig: Option<PathBuf>,
}

impl Annexa {
    /// One installation shared by the tests of a file: the real cluster named by
    /// ANNEXA_E2E_KUBECONFIG (Annexa installed there with Helm), else a stand-in with Annexa
    /// installed from the chart and one `annexa run` child.
    pub fn shared() -> &'static Annexa {
        static SHARED: OnceLock<Result<Annexa, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            std::panic::catch_unwind(Annexa::start_shared).map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
        });
        match shared {
            Ok(annexa) => annexa,
            // Every test of the file fails with the first one's reason, without retrying.
            Err(reason) => panic!("installing Annexa failed: {reason}"),
        }
    }

    fn start_shared() -> Annexa {
        {
            let cluster = Cluster::start().expect("start the cluster under test");
            if cluster.is_standin() {
                let annexa = Annexa::install(cluster);
                annexa.cluster.clean_up_with_test_process().unwrap();
                let process = annexa.start("annexa-0", &[]);
                process.stop_with_test_process().unwrap();
                annexa.keep("annexa-0", process);
                annexa
            } else {
                let namespace = std::env::var(RELEASE_NAMESPACE_ENV)
                    .unwrap_or_else(|_| STANDIN_NAMESPACE.to_string());
                Annexa {
                    cluster,
                    namespace,
                    rendered: Vec::new(),
                    processes: Mutex::new(Vec::new()),
                    webhook_port: 0,
                    service_account_kubeconfig: None,
                }
            }
        }
    }

    /// A stand-in of its own with Annexa installed from the chart, no `annexa run` yet (for
    /// scenarios that stop, restart or duplicate the operator or inject faults).
    pub fn own_standin() -> Annexa {
        Annexa::own_standin_with(&json!({}), &[])
    }

    /// [`Annexa::own_standin`] with chart `values` and `namespaces` created first.
    pub fn own_standin_with(values: &Value, namespaces: &[&str]) -> Annexa {
        let cluster = Cluster::start_standin(annexa_e2e::harness::StandinOptions {
            binary: Some(env!("CARGO_BIN_EXE_annexa-standin").into()),
            ..Default::default()
        })
        .expect("start the stand-in");
        Annexa::install_with(cluster, values, namespaces)
    }

    /// Installs the rendered chart (without its Deployment) into `annexa-system` and points
    /// the webhook Service at a free loopback port.
    pub fn install(cluster: Cluster) -> Annexa {
        Annexa::install_with(cluster, &json!({}), &[])
    }

    /// Like [`Annexa::install`] with chart `values`, after creating `namespaces` (those the
    /// chart renders objects into, e.g. `rbac.namespaces`).
    pub fn install_with(cluster: Cluster, values: &Value, namespaces: &[&str]) -> Annexa {
        let namespace = STANDIN_NAMESPACE.to_string();
        let rendered = render_chart_with(&namespace, values);
        for ns in std::iter::once(namespace.as_str()).chain(namespaces.iter().copied()) {
            cluster
                .kubectl()
                .args(["create", "namespace", ns])
                .ok()
                .unwrap();
        }
        // A stream of JSON documents, CRDs first, as `helm template` orders them.
        let stream: Vec<String> = rendered
            .iter()
            .filter(|o| o["kind"] != "Deployment")
            .map(Value::to_string)
            .collect();
        cluster
            .kubectl()
            .args(["apply", "--server-side", "--field-manager=helm", "-f", "-"])
            .stdin(stream.join("\n"))
            .ok()
            .expect("the rendered chart applies");
        let webhook_port = annexa_e2e::harness::free_port().unwrap();
        let service_account = rendered
            .iter()
            .find(|o| o["kind"] == "ServiceAccount")
            .and_then(|sa| sa["metadata"]["name"].as_str())
            .expect("the chart renders a ServiceAccount")
            .to_string();
        // What the kubelet mounts into the Deployment's pods: a token of the chart's
        // ServiceAccount from the TokenRequest API.
        let token = cluster
            .kubectl()
            .args([
                "create",
                "token",
                &service_account,
                "-n",
                &namespace,
                "--duration=24h",
            ])
            .ok()
            .expect("a token for the chart's ServiceAccount");
        let service_account_kubeconfig = cluster
            .kubeconfig_with_token(&format!("sa-{service_account}"), token.trim())
            .unwrap();
        let annexa = Annexa {
            cluster,
            namespace,
            rendered,
            processes: Mutex::new(Vec::new()),
            webhook_port,
            service_account_kubeconfig: Some(service_account_kubeconfig),
        };
        annexa.route_webhook_service_to(webhook_port);
        annexa
    }

    /// The name of the chart's ServiceAccount (Annexa's identity).
    pub fn service_account_name(&self) -> String {
        self.rendered
            .iter()
            .find(|o| o["kind"] == "ServiceAccount")
            .and_then(|sa| sa["metadata"]["name"].as_str())
            .expect("the chart renders a ServiceAccount")
            .to_string()
    }

    /// Sends the stand-in's calls for the chart's webhook Service to a loopback port (what the
    /// Service's endpoints do on a real cluster).
    pub fn route_webhook_service_to(&self, webhook_port: u16) {
        let service = self
            .rendered
            .iter()
            .find(|o| {
                o["kind"] == "Service"
                    && o["metadata"]["labels"]["app.kubernetes.io/component"] == "webhook"
            })
            .expect("the chart renders the webhook Service");
        let service_name = service["metadata"]["name"].as_str().unwrap();
        let port = service["spec"]["ports"][0]["port"].as_u64().unwrap();
        self.cluster
            .add_webhook_override(
                &format!("{service_name}.{}:{port}", self.namespace),
                &format!("127.0.0.1:{webhook_port}"),
            )
            .unwrap();
    }

    /// Starts `annexa run` as the chart's Deployment would, as pod `identity` (its HOSTNAME),
    /// serving the webhook on the port the Service maps to, and waits until /readyz is OK.
    pub fn start(&self, identity: &str, extra: &[&str]) -> Background {
        self.start_on(identity, self.webhook_port, extra)
    }

    /// Like [`Annexa::start`] on another webhook port (a second replica).
    pub fn start_on(&self, identity: &str, webhook_port: u16, extra: &[&str]) -> Background {
        let metrics_port = annexa_e2e::harness::free_port().unwrap();
        let mut command = Command::new(annexa_binary());
        command
            .arg("run")
            .args(chart_run_args(
                &self.rendered,
                &self.namespace,
                webhook_port,
                metrics_port,
            ))
            .args(extra)
            .env("POD_NAMESPACE", &self.namespace)
            .env("HOSTNAME", identity)
            .env("RUST_LOG", "info");
        let log_name = format!("{identity}-{}", annexa_e2e::standin::store::random_suffix());
        let mut process = match &self.service_account_kubeconfig {
            Some(kubeconfig) => self
                .cluster
                .spawn_with_kubeconfig(kubeconfig, &log_name, command)
                .unwrap(),
            None => self.cluster.spawn_as("admin", &log_name, command).unwrap(),
        };
        process
            .wait_for_log("serving the admission webhook", TIMEOUT)
            .unwrap();
        let ca = self.ca_bundle_pem();
        eventually(TIMEOUT, "annexa /readyz", || {
            (self.readyz(webhook_port, &ca).as_deref() == Some("ok")).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", process.log()));
        // Metrics port for later reads.
        METRICS_PORTS
            .lock()
            .unwrap()
            .push((process.id(), metrics_port));
        process
    }

    /// Keeps a process alive for the rest of the test process.
    pub fn keep(&self, name: &str, process: Background) {
        self.processes
            .lock()
            .unwrap()
            .push((name.to_string(), process));
    }

    /// The log of a kept process (for failure messages).
    pub fn log(&self, name: &str) -> String {
        self.processes
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.log())
            .unwrap_or_default()
    }

    /// The caBundle Annexa patched into the ValidatingWebhookConfiguration, as PEM.
    pub fn ca_bundle_pem(&self) -> String {
        let b64 = eventually(
            TIMEOUT,
            "caBundle patched into the webhook configuration",
            || {
                let out = self
                    .cluster
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
                (!out.trim().is_empty()).then(|| out.trim().to_string())
            },
        )
        .unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("caBundle is base64"),
        )
        .expect("caBundle is PEM")
    }

    /// GET /readyz on the webhook port over HTTPS, verified against `ca_pem` for the Service's
    /// DNS name, as the API server and kubelet would see it.
    pub fn readyz(&self, webhook_port: u16, ca_pem: &str) -> Option<String> {
        let server_name = format!("{RELEASE}-webhook.{}.svc", self.namespace);
        https_get(webhook_port, &server_name, ca_pem, "/readyz")
    }

    pub fn kubectl(&self) -> Kubectl {
        self.cluster.kubectl()
    }

    pub fn kubectl_as(&self, user: &str) -> Kubectl {
        self.cluster.kubectl_as(user)
    }
}

static METRICS_PORTS: Mutex<Vec<(u32, u16)>> = Mutex::new(Vec::new());

/// The metrics port of a process started by [`Annexa::start`].
pub fn metrics_port(process: &Background) -> u16 {
    METRICS_PORTS
        .lock()
        .unwrap()
        .iter()
        .find(|(pid, _)| *pid == process.id())
        .map(|(_, port)| *port)
        .expect("started through Annexa::start")
}

/// GET over HTTPS on loopback with a server name and CA; the body when the status is 200.
pub fn https_get(port: u16, server_name: &str, ca_pem: &str, path: &str) -> Option<String> {
    let config = annexa_e2e::tls::client_config(ca_pem.as_bytes()).ok()?;
    let hostport = format!("127.0.0.1:{port}");
    let request = http::Request::builder()
        .method("GET")
        .uri(path)
        .header("host", server_name)
        .body(bytes::Bytes::new())
        .ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let response = rt
        .block_on(annexa_e2e::tls::https_request(
            Arc::new(config),
            &hostport,
            server_name,
            request,
            Duration::from_secs(5),
        ))
        .ok()?;
    (response.status == 200).then(|| String::from_utf8_lossy(&response.body).trim().to_string())
}

/// GET over plain HTTP on loopback (the metrics port).
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// Sum of the samples of a Prometheus counter (all label sets).
pub fn counter_total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A test case's namespace, labelled `e2e.annexa.dev/case=<id>` so that a CompliancePolicy of
/// its own selects it and nothing else; the policy is deleted with the namespace.
pub struct Case {
    pub ns: TestNamespace,
    pub id: String,
    kubectl: Kubectl,
}

impl Case {
    /// A namespace (workload checks opted in) and a CompliancePolicy `e2e-<id>` with `spec`
    /// (its namespaceSelector is filled in).
    pub fn new(annexa: &Annexa, prefix: &str, mut policy_spec: Value) -> Case {
        let id = annexa_e2e::standin::store::random_suffix();
        let ns = annexa
            .cluster
            .namespace_with_labels(
                prefix,
                &[("annexa.dev/enforce", "true"), ("e2e.annexa.dev/case", &id)],
            )
            .unwrap();
        // The RBAC a team has: developers hold `edit` in their namespace (which covers the
        // Annexa kinds through the chart's aggregated ClusterRoles), approvers the chart's
        // approver role. mallory holds nothing.
        annexa
            .cluster
            .grant(Some(&ns.name), "edit", &["--group=dev"])
            .unwrap();
        annexa
            .cluster
            .grant(
                Some(&ns.name),
                &format!("{RELEASE}-approver"),
                &["--group=approvers"],
            )
            .unwrap();
        // `edit` in Kubernetes 1.32 covers neither DRA claims nor ephemeral containers: a team
        // that uses them is granted them, here with a Role of their own.
        apply(
            annexa.kubectl(),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "e2e-gpu-and-debug", "namespace": ns.name},
                    "rules": [
                        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims", "resourceclaimtemplates"],
                         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                        {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["get", "patch", "update"]}]}),
        );
        apply(
            annexa.kubectl(),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "e2e-gpu-and-debug", "namespace": ns.name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-gpu-and-debug"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "dev"}]}),
        );
        policy_spec["namespaceSelector"] = json!({"matchLabels": {"e2e.annexa.dev/case": id}});
        let policy = json!({
            "apiVersion": "annexa.dev/v1alpha1", "kind": "CompliancePolicy",
            "metadata": {"name": format!("e2e-{id}")},
            "spec": policy_spec,
        });
        apply(annexa.kubectl(), &policy);
        Case {
            ns,
            id,
            kubectl: annexa.kubectl(),
        }
    }

    pub fn name(&self) -> &str {
        &self.ns.name
    }

    pub fn policy_name(&self) -> String {
        format!("e2e-{}", self.id)
    }

    /// Merge-patches the spec of the case's CompliancePolicy, as the cluster administrator.
    pub fn patch_policy(&self, spec: Value) {
        self.kubectl
            .clone()
            .args([
                "patch",
                "compliancepolicy",
                &self.policy_name(),
                "--type=merge",
                "-p",
                &json!({ "spec": spec }).to_string(),
            ])
            .ok()
            .unwrap();
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = self
            .kubectl
            .clone()
            .args([
                "delete",
                "compliancepolicy",
                &self.policy_name(),
                "--wait=false",
                "--ignore-not-found",
            ])
            .run();
    }
}

/// A staging-like policy: GPU pools for Internal and Confidential data, no approvals.
pub fn staging_policy(action: &str) -> Value {
    json!({
        "environment": "Staging",
        "enforcement": {"action": action},
        "gpu": {
            "resourceNames": ["nvidia.com/gpu"],
            "pools": [
                {"classification": "Internal",
                 "nodeSelector": {"gpu.example.com/pool": "e2e-internal"},
                 "taint": {"key": "gpu.example.com/pool", "value": "e2e-internal", "effect": "NoSchedule"}},
                {"classification": "Confidential",
                 "nodeSelector": {"gpu.example.com/pool": "e2e-confidential"},
                 "taint": {"key": "gpu.example.com/pool", "value": "e2e-confidential", "effect": "NoSchedule"},
                 "runtimeClassName": "nvidia"},
            ],
        },
        "promotion": {"requiredApprovals": 0},
    })
}

/// A production policy: two approvals from the `approvers` group, pinned images.
pub fn production_policy() -> Value {
    let mut p = staging_policy("Enforce");
    p["environment"] = json!("Production");
    p["images"] = json!({"allowedRegistries": ["registry.example.com/"], "requireDigest": true});
    p["promotion"] =
        json!({"requiredApprovals": 2, "approvalTTL": "7d", "approverGroups": ["approvers"]});
    p
}

/// An Internal dataset without personal data.
pub fn dataset(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "TrainingDataset",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "source": {"uri": format!("s3://e2e-datasets/{name}/"),
                       "sha256": "sha256:ca150bd50c376842bc72630b2dd7fb3c1ad1410b2bee1b2e61d9635daf46b22e"},
            "classification": "Internal",
            "owner": "e2e-team",
            "personalData": {"contains": false},
            "residency": {"region": "eu-west-1"},
            "retention": {"period": "90d", "onExpiry": "Retain"},
            "access": {"allowedServiceAccounts": ["trainer"]},
        },
    })
}

/// A ModelDeployment serving one GPU, trained on `datasets`.
pub fn model(ns: &str, name: &str, digest: &str, datasets: &[&str]) -> Value {
    json!({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "model": {"name": name, "version": "1.0.0",
                      "uri": format!("s3://e2e-models/{name}/1.0.0/"), "digest": digest},
            "image": IMAGE,
            "trainingDatasets": datasets,
            "replicas": 1,
            "resources": {"gpus": 1},
            "serving": {"port": 8080},
            "network": {"allowedFrom": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "e2e-client"}}}]},
        },
    })
}

/// `kubectl apply -f -` of one object; panics with stderr on failure.
pub fn apply(k: Kubectl, doc: &Value) -> String {
    k.args(["apply", "-f", "-"])
        .stdin(doc.to_string())
        .ok()
        .unwrap_or_else(|e| panic!("kubectl apply {}: {e}", doc["metadata"]["name"]))
}

/// `kubectl create -f -` expected to fail; returns stderr.
pub fn create_fails(k: Kubectl, doc: &Value) -> String {
    k.args(["create", "-f", "-"])
        .stdin(doc.to_string())
        .fails()
        .unwrap()
}

/// `kubectl get ... -o json`, or None when it fails (e.g. not found).
pub fn get(k: Kubectl, ns: &str, what: &str) -> Option<Value> {
    let out = k.args(["-n", ns, "get", what, "-o", "json"]).ok().ok()?;
    serde_json::from_str(&out).ok()
}

/// A condition of an object's status (by type).
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Waits until `what` in `ns` has condition `kind` with `status`; returns the object.
pub fn wait_condition(annexa: &Annexa, ns: &str, what: &str, kind: &str, status: &str) -> Value {
    let mut last = Value::Null;
    eventually(TIMEOUT, &format!("{what} {kind}={status}"), || {
        let object = get(annexa.kubectl(), ns, what)?;
        let found = condition(&object, kind).is_some_and(|c| c["status"] == status);
        last = object.clone();
        found.then_some(object)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; last seen status: {}",
            serde_json::to_string_pretty(&last["status"]).unwrap()
        )
    })
}

/// Waits until `check` holds for the object (None while it does not exist).
pub fn wait_for(
    annexa: &Annexa,
    ns: &str,
    what: &str,
    description: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    eventually(TIMEOUT, description, || {
        let object = get(annexa.kubectl(), ns, what)?;
        last = object.clone();
        check(&object).then_some(object)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; last seen: {}",
            serde_json::to_string_pretty(&last).unwrap()
        )
    })
}

/// Waits until `what` does not exist.
pub fn wait_gone(annexa: &Annexa, ns: &str, what: &str) {
    eventually(TIMEOUT, &format!("{what} to be gone"), || {
        get(annexa.kubectl(), ns, what).is_none().then_some(())
    })
    .unwrap();
}

/// Names of the objects of `resource` in `ns` matching `selector`.
pub fn names(annexa: &Annexa, ns: &str, resource: &str, selector: &str) -> Vec<String> {
    let list =
        get(annexa.kubectl().args(["-l", selector]), ns, resource).expect("kubectl get list");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `annexa ARGS` with `user`'s kubeconfig; (success, stdout, stderr).
pub fn annexa_cli(annexa: &Annexa, user: &str, args: &[&str]) -> (bool, String, String) {
    let kubeconfig = annexa.cluster.kubeconfig_for(user).unwrap();
    let out = Command::new(annexa_binary())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("running annexa");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn unwrap_harness<T>(r: Result<T, HarnessError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}
