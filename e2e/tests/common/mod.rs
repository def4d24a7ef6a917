//! Helpers shared by the self-tests.
#![allow(dead_code)]
// Test-only helpers: panicking on a broken precondition is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annexa_e2e::harness::{self, Cluster, Kubectl, StandinOptions, eventually};
use serde_json::{Value, json};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster for portable cases: the stand-in, or the real cluster in ANNEXA_E2E_KUBECONFIG.
pub fn cluster() -> Cluster {
    Cluster::start().expect("start the cluster under test")
}

/// Always a stand-in (for cases only the stand-in can run: fault injection, local webhooks).
pub fn standin(args: &[&str]) -> Cluster {
    Cluster::start_standin(StandinOptions {
        binary: Some(env!("CARGO_BIN_EXE_annexa-standin").into()),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..StandinOptions::default()
    })
    .expect("start the stand-in")
}

pub fn random() -> String {
    annexa_e2e::standin::store::random_suffix()
}

pub fn get_json(k: Kubectl) -> Value {
    let out = k.args(["-o", "json"]).ok().expect("kubectl get");
    serde_json::from_str(&out).expect("kubectl printed JSON")
}

pub fn apply_json(k: Kubectl, doc: &Value) -> String {
    k.args(["apply", "-f", "-"])
        .stdin(doc.to_string())
        .ok()
        .expect("kubectl apply")
}

pub fn configmap(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data})
}

/// A namespaced CRD with a unique group, short name and category; deleted on drop.
pub struct TestCrd {
    pub group: String,
    pub plural: String,
    pub short: String,
    pub category: String,
    pub kind: String,
    kubectl: Kubectl,
}

impl TestCrd {
    pub fn install(cluster: &Cluster) -> TestCrd {
        Self::install_with_spec_schema(
            cluster,
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        )
    }

    /// A CRD whose `spec` has the given schema.
    pub fn install_with_spec_schema(cluster: &Cluster, spec_schema: Value) -> TestCrd {
        let id = random();
        let crd = TestCrd {
            group: format!("t{id}.e2e.annexa.dev"),
            plural: "widgets".into(),
            short: format!("wd{id}"),
            category: format!("e2e{id}"),
            kind: "Widget".into(),
            kubectl: cluster.kubectl(),
        };
        let doc = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": crd.name()},
            "spec": {
                "group": crd.group, "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                          "shortNames": [crd.short], "categories": [crd.category]},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    ],
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": spec_schema,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    }}},
                }],
            },
        });
        apply_json(cluster.kubectl(), &doc);
        cluster
            .kubectl()
            .args([
                "wait",
                "--for=condition=Established",
                &format!("crd/{}", crd.name()),
                "--timeout=60s",
            ])
            .ok()
            .expect("CRD established");
        crd
    }

    pub fn name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    pub fn resource(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    pub fn widget(&self, ns: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": format!("{}/v1", self.group), "kind": "Widget",
               "metadata": {"name": name, "namespace": ns}, "spec": spec})
    }
}

impl Drop for TestCrd {
    fn drop(&mut self) {
        let _ = self
            .kubectl
            .clone()
            .args([
                "delete",
                "crd",
                &self.name(),
                "--wait=false",
                "--ignore-not-found",
            ])
            .run();
    }
}

/// Collects the stdout lines of a long-running kubectl (e.g. `get -w`); killed on drop.
pub struct Streaming {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Streaming {
    pub fn start(k: Kubectl) -> Streaming {
        let mut child = k.spawn().expect("start kubectl");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Streaming { child, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a line satisfies `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        eventually(TIMEOUT, what, || self.lines().into_iter().find(|l| pred(l)))
            .unwrap_or_else(|e| panic!("{e}; lines so far: {:?}", self.lines()))
    }

    /// Waits for the process to exit and returns whether it succeeded.
    pub fn wait_exit(&mut self) -> bool {
        let status = eventually(TIMEOUT, "kubectl to exit", || {
            self.child.try_wait().ok().flatten()
        })
        .expect("kubectl exited");
        status.success()
    }

    pub fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw request to the stand-in as `user` (no token for None): (status, body).
pub fn raw(cluster: &Cluster, user: Option<&str>, method: &str, path: &str) -> (u16, String) {
    let (url, ca) = cluster.standin_endpoint().unwrap();
    let token = user.and_then(|u| cluster.token(u)).unwrap_or("");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (code, body, _) = rt
        .block_on(harness::raw_request(
            url,
            ca,
            token,
            method,
            path,
            None,
            &[],
        ))
        .unwrap();
    (code, body)
}

/// A raw POST with any body and content type: (status, body).
pub async fn raw_body(
    url: &str,
    ca: &str,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
    content_type: &str,
) -> (u16, String) {
    let hostport = url.trim_start_matches("https://").to_string();
    let config = annexa_e2e::tls::client_config(ca.as_bytes()).unwrap();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", hostport.clone())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap();
    let response = annexa_e2e::tls::https_request(
        Arc::new(config),
        &hostport,
        "127.0.0.1",
        request,
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}
