//! Test support: start the stand-in (or use a real cluster), write a kubeconfig per user, run
//! `kubectl`, make throwaway namespaces, and serve test admission webhooks.
//!
//! ```no_run
//! use annexa_e2e::harness::Cluster;
//! let cluster = Cluster::start().unwrap(); // stand-in, or ANNEXA_E2E_KUBECONFIG
//! let ns = cluster.namespace("demo").unwrap();
//! cluster.kubectl_as("alice").args(["-n", &ns.name, "get", "configmaps"]).ok().unwrap();
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::standin::{self, Faults, Ready, TokenUser, User};
use crate::tls;

/// Environment variable naming a kubeconfig of a real cluster to test against.
pub const KUBECONFIG_ENV: &str = "ANNEXA_E2E_KUBECONFIG";
/// Environment variable overriding where the `annexa-standin` binary is.
pub const STANDIN_BIN_ENV: &str = "ANNEXA_STANDIN_BIN";

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the stand-in did not become ready within {0:?}: {1}")]
    NotReady(Duration, String),
    #[error("kubectl {args} failed ({status}):\n{stderr}")]
    Kubectl {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("{0} only works against the stand-in")]
    StandinOnly(&'static str),
    #[error("{0}")]
    Other(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// A user the tests act as: name and groups.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub name: String,
    pub groups: Vec<String>,
}

impl TestUser {
    pub fn new(name: &str, groups: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// The default users: `admin` (system:masters), `alice` (dev), `bob` (dev, approvers),
/// `carol` (approvers) and `mallory` (no group). Only `admin` holds any permission until a
/// test grants one (see [`Cluster::grant`]).
pub fn default_users() -> Vec<TestUser> {
    vec![
        TestUser::new("admin", &["system:masters"]),
        TestUser::new("alice", &["dev"]),
        TestUser::new("bob", &["dev", "approvers"]),
        TestUser::new("carol", &["approvers"]),
        TestUser::new("mallory", &[]),
    ]
}

/// How to start the stand-in.
#[derive(Clone, Debug)]
pub struct StandinOptions {
    /// The `annexa-standin` binary; default: `$ANNEXA_STANDIN_BIN`, else next to the test binary.
    pub binary: Option<PathBuf>,
    /// Users (the first one is the default kubeconfig user).
    pub users: Vec<TestUser>,
    /// Extra command-line flags, e.g. `--watch-history=10` or
    /// `--webhook-host-override=svc.ns:443=127.0.0.1:8443`.
    pub args: Vec<String>,
}

impl Default for StandinOptions {
    fn default() -> Self {
        Self {
            binary: None,
            users: default_users(),
            args: Vec::new(),
        }
    }
}

/// Finds the `annexa-standin` binary (see [`StandinOptions::binary`]).
pub fn standin_binary() -> Result<PathBuf, HarnessError> {
    if let Ok(p) = std::env::var(STANDIN_BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(io("locating the test binary"))?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join("annexa-standin");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Err(HarnessError::Other(format!(
        "annexa-standin not found next to {}; build it (cargo build -p annexa-e2e) or set {STANDIN_BIN_ENV}",
        exe.display()
    )))
}

/// Picks a free loopback port (bind to 0, then release it).
pub fn free_port() -> Result<u16, HarnessError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(l.local_addr().map_err(io("reading a free port"))?.port())
}

fn random_token() -> String {
    format!(
        "{:016x}{:016x}",
        standin::store::random_u64(),
        standin::store::random_u64()
    )
}

struct StandinProcess {
    child: Child,
    ready: Ready,
}

/// An API server under test: a stand-in process started for the test, or a real cluster.
///
/// Every method blocks (kubectl runs as a child process); from async tests call them through
/// `tokio::task::spawn_blocking`.
pub struct Cluster {
    dir: tempfile::TempDir,
    standin: Option<StandinProcess>,
    admin_kubeconfig: PathBuf,
    users: Vec<TestUser>,
    tokens: BTreeMap<String, String>,
}

impl Cluster {
    /// A real cluster when `ANNEXA_E2E_KUBECONFIG` is set, else a fresh stand-in.
    pub fn start() -> Result<Self, HarnessError> {
        match std::env::var(KUBECONFIG_ENV) {
            Ok(path) if !path.is_empty() => Self::real(PathBuf::from(path), default_users()),
            _ => Self::start_standin(StandinOptions::default()),
        }
    }

    /// Uses a real cluster; users are impersonated (`as`/`as-groups` in their kubeconfig), so
    /// the kubeconfig's own user must be allowed to impersonate.
    pub fn real(kubeconfig: PathBuf, users: Vec<TestUser>) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
        Ok(Self {
            dir,
            standin: None,
            admin_kubeconfig: kubeconfig,
            users,
            tokens: BTreeMap::new(),
        })
    }

    /// Starts a stand-in on a free loopback port and waits until it is ready.
    pub fn start_standin(options: StandinOptions) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
        let binary = match options.binary.clone() {
            Some(b) => b,
            None => standin_binary()?,
        };
        let mut tokens = BTreeMap::new();
        let mut token_file = String::new();
        for u in &options.users {
            let token = random_token();
            token_file.push_str(&format!(
                "{token},{},uid-{},\"{}\"\n",
                u.name,
                u.name,
                u.groups.join(",")
            ));
            tokens.insert(u.name.clone(), token);
        }
        let token_path = dir.path().join("tokens.csv");
        std::fs::write(&token_path, token_file).map_err(io("writing the token file"))?;
        let ready_path = dir.path().join("ready.json");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = std::fs::File::create(dir.path().join("standin.log"))
            .map_err(io("creating the stand-in log"))?;
        let log2 = log.try_clone().map_err(io("creating the stand-in log"))?;
        let child = Command::new(&binary)
            .arg("--port=0")
            .arg(format!("--token-file={}", token_path.display()))
            .arg(format!("--ready-file={}", ready_path.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;
        let mut process = StandinProcess {
            child,
            ready: Ready {
                url: String::new(),
                port: 0,
                ca_pem: String::new(),
                kubeconfig: None,
            },
        };
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready_path)
                && let Ok(ready) = serde_json::from_str::<Ready>(&text)
            {
                process.ready = ready;
                break;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                let log =
                    std::fs::read_to_string(dir.path().join("standin.log")).unwrap_or_default();
                return Err(HarnessError::NotReady(
                    timeout,
                    format!("exited with {status}: {log}"),
                ));
            }
            if start.elapsed() > timeout {
                let _ = process.child.kill();
                return Err(HarnessError::NotReady(timeout, "no ready file".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            dir,
            standin: Some(process),
            admin_kubeconfig: kubeconfig,
            users: options.users,
            tokens,
        })
    }

    pub fn is_standin(&self) -> bool {
        self.standin.is_some()
    }

    /// The stand-in's URL and CA (PEM), for raw HTTPS clients.
    pub fn standin_endpoint(&self) -> Option<(&str, &str)> {
        self.standin
            .as_ref()
            .map(|s| (s.ready.url.as_str(), s.ready.ca_pem.as_str()))
    }

    /// The kubeconfig of the first (admin) user.
    pub fn kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The stand-in's log so far (empty for a real cluster).
    pub fn standin_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("standin.log")).unwrap_or_default()
    }

    /// A bearer token of a stand-in user.
    pub fn token(&self, user: &str) -> Option<&str> {
        self.tokens.get(user).map(String::as_str)
    }

    /// Writes (once) and returns a kubeconfig that acts as `user`: its token on the stand-in,
    /// impersonation of the user and its groups on a real cluster.
    pub fn kubeconfig_for(&self, user: &str) -> Result<PathBuf, HarnessError> {
        let u = self
            .users
            .iter()
            .find(|u| u.name == user)
            .ok_or_else(|| HarnessError::UnknownUser(user.to_string()))?;
        let path = self.dir.path().join(format!("kubeconfig-{user}"));
        if path.exists() {
            return Ok(path);
        }
        let text = match &self.standin {
            Some(s) => {
                let token = self.tokens.get(user).cloned().unwrap_or_default();
                standin::kubeconfig_text(
                    &s.ready.url,
                    &s.ready.ca_pem,
                    &[TokenUser {
                        token,
                        user: User {
                            name: u.name.clone(),
                            uid: format!("uid-{}", u.name),
                            groups: u.groups.clone(),
                        },
                    }],
                    None,
                )
            }
            None => {
                let out = Command::new("kubectl")
                    .arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()))
                    .args([
                        "config",
                        "view",
                        "--raw",
                        "--minify",
                        "--flatten",
                        "-o",
                        "json",
                    ])
                    .output()
                    .map_err(io("running kubectl config view"))?;
                let mut config: Value = serde_json::from_slice(&out.stdout)
                    .map_err(|e| HarnessError::Other(format!("reading the kubeconfig: {e}")))?;
                if let Some(auth) = config["users"][0]["user"].as_object_mut() {
                    auth.insert("as".into(), json!(u.name));
                    auth.insert("as-groups".into(), json!(u.groups));
                }
                serde_yaml_ng::to_string(&config).map_err(|e| HarnessError::Other(e.to_string()))?
            }
        };
        std::fs::write(&path, text).map_err(io("writing a kubeconfig"))?;
        Ok(path)
    }

    /// `kubectl` as the admin user.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(
            self.admin_kubeconfig.clone(),
            self.dir.path().join("kube-cache"),
        )
    }

    /// `kubectl` as `user` (see [`Cluster::kubeconfig_for`]); an unknown user panics in tests
    /// through the returned error when run.
    pub fn kubectl_as(&self, user: &str) -> Kubectl {
        let mut k = self.kubectl();
        match self.kubeconfig_for(user) {
            Ok(path) => k.kubeconfig = path,
            Err(e) => k.setup_error = Some(e.to_string()),
        }
        k
    }

    /// Creates a namespace `<prefix>-<random>` (labelled `annexa.dev/e2e=true` plus `labels`),
    /// deleted again when the returned guard is dropped.
    pub fn namespace_with_labels(
        &self,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> Result<TestNamespace, HarnessError> {
        let name = format!("{prefix}-{}", standin::store::random_suffix());
        let mut label_map = serde_json::Map::new();
        label_map.insert("annexa.dev/e2e".into(), json!("true"));
        for (k, v) in labels {
            label_map.insert(k.to_string(), json!(v));
        }
        let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": label_map}});
        self.kubectl()
            .args(["create", "-f", "-"])
            .stdin(doc.to_string())
            .ok()?;
        Ok(TestNamespace {
            name,
            kubectl: self.kubectl(),
        })
    }

    pub fn namespace(&self, prefix: &str) -> Result<TestNamespace, HarnessError> {
        self.namespace_with_labels(prefix, &[])
    }

    /// Grants ClusterRole `cluster_role` (as admin) to `subjects` (kubectl flags such as
    /// `--group=dev`, `--user=alice`, `--serviceaccount=NS:NAME`): in `namespace` with a
    /// RoleBinding, or cluster-wide with a ClusterRoleBinding when `namespace` is None (the
    /// caller deletes that one). Returns the binding's name.
    pub fn grant(
        &self,
        namespace: Option<&str>,
        cluster_role: &str,
        subjects: &[&str],
    ) -> Result<String, HarnessError> {
        let name = format!(
            "e2e-{}-{}",
            cluster_role.replace(':', "-"),
            standin::store::random_suffix()
        );
        let mut k = self.kubectl();
        k = match namespace {
            Some(ns) => k.args(["create", "rolebinding", &name, "-n", ns]),
            None => k.args(["create", "clusterrolebinding", &name]),
        };
        k.arg(format!("--clusterrole={cluster_role}"))
            .args(subjects.iter().copied())
            .ok()?;
        Ok(name)
    }

    /// A kubeconfig for this cluster that authenticates with a bearer `token` only (e.g. one
    /// minted with `kubectl create token`), written as `kubeconfig-<name>`.
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> Result<PathBuf, HarnessError> {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()))
            .args([
                "config",
                "view",
                "--raw",
                "--minify",
                "--flatten",
                "-o",
                "json",
            ])
            .output()
            .map_err(io("running kubectl config view"))?;
        let mut config: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| HarnessError::Other(format!("reading the kubeconfig: {e}")))?;
        config["users"][0]["user"] = json!({"token": token});
        let text =
            serde_yaml_ng::to_string(&config).map_err(|e| HarnessError::Other(e.to_string()))?;
        let path = self.dir.path().join(format!("kubeconfig-{name}"));
        std::fs::write(&path, text).map_err(io("writing a kubeconfig"))?;
        Ok(path)
    }

    /// `kubectl` with the kubeconfig at `path` (see [`Cluster::kubeconfig_with_token`]).
    pub fn kubectl_with(&self, path: &Path) -> Kubectl {
        let mut k = self.kubectl();
        k.kubeconfig = path.to_path_buf();
        k
    }

    fn admin_call(&self, method: &str, path: &str, body: Value) -> Result<Value, HarnessError> {
        let s = self
            .standin
            .as_ref()
            .ok_or(HarnessError::StandinOnly("the admin endpoint"))?;
        let token = self.tokens.values().next().cloned().unwrap_or_default();
        let response = block_on(raw_request(
            &s.ready.url,
            &s.ready.ca_pem,
            &token,
            method,
            path,
            Some(body),
            &[],
        ))??;
        if response.0 >= 300 {
            return Err(HarnessError::Other(format!(
                "{method} {path}: {} {}",
                response.0, response.1
            )));
        }
        serde_json::from_str(&response.1).map_err(|e| HarnessError::Other(e.to_string()))
    }

    /// Every distinct authorisation decision the stand-in made for `user`'s resource requests
    /// (see `GET /_standin/authorizations`), stand-in only.
    pub fn authorizations(
        &self,
        user: &str,
    ) -> Result<Vec<standin::AuthorizationRecord>, HarnessError> {
        let s = self
            .standin
            .as_ref()
            .ok_or(HarnessError::StandinOnly("the admin endpoint"))?;
        let token = self.tokens.values().next().cloned().unwrap_or_default();
        let query: String = user
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let (code, body, _) = block_on(raw_request(
            &s.ready.url,
            &s.ready.ca_pem,
            &token,
            "GET",
            &format!("/_standin/authorizations?user={query}"),
            None,
            &[],
        ))??;
        if code != 200 {
            return Err(HarnessError::Other(format!(
                "GET /_standin/authorizations: {code} {body}"
            )));
        }
        let v: Value =
            serde_json::from_str(&body).map_err(|e| HarnessError::Other(e.to_string()))?;
        serde_json::from_value(v["items"].clone()).map_err(|e| HarnessError::Other(e.to_string()))
    }

    /// Replaces the injected faults (stand-in only).
    pub fn set_faults(&self, faults: &Faults) -> Result<(), HarnessError> {
        self.admin_call("POST", "/_standin/faults", json!(faults))
            .map(|_| ())
    }

    /// Cuts every open watch (stand-in only).
    pub fn drop_watches(&self) -> Result<(), HarnessError> {
        self.admin_call("POST", "/_standin/drop-watches", json!({}))
            .map(|_| ())
    }

    /// Routes webhook calls for service `svc.ns:port` to `address` (stand-in only).
    pub fn add_webhook_override(&self, service: &str, address: &str) -> Result<(), HarnessError> {
        self.admin_call(
            "POST",
            "/_standin/webhook-overrides",
            json!({"service": service, "address": address}),
        )
        .map(|_| ())
    }

    /// Starts a process (e.g. `annexa run`) with `KUBECONFIG` set to the kubeconfig of `user`;
    /// its output goes to `<name>.log` in the cluster's temporary directory.
    pub fn spawn_as(
        &self,
        user: &str,
        name: &str,
        mut command: Command,
    ) -> Result<Background, HarnessError> {
        let kubeconfig = match self.standin {
            Some(_) => self.kubeconfig_for(user)?,
            // On a real cluster the first user is the kubeconfig's own identity.
            None if self.users.first().is_some_and(|u| u.name == user) => {
                self.admin_kubeconfig.clone()
            }
            None => self.kubeconfig_for(user)?,
        };
        command.env("KUBECONFIG", kubeconfig);
        Background::spawn(command, self.dir.path().join(format!("{name}.log")))
    }

    /// Starts a process with `KUBECONFIG` set to `kubeconfig` (e.g. one from
    /// [`Cluster::kubeconfig_with_token`]); its output goes to `<name>.log`.
    pub fn spawn_with_kubeconfig(
        &self,
        kubeconfig: &Path,
        name: &str,
        mut command: Command,
    ) -> Result<Background, HarnessError> {
        command.env("KUBECONFIG", kubeconfig);
        Background::spawn(command, self.dir.path().join(format!("{name}.log")))
    }

    /// Makes the stand-in and this cluster's temporary directory go away with the test
    /// process, also when this `Cluster` is never dropped (a `static` fixture shared by the
    /// tests of one file) or the test process is killed.
    pub fn clean_up_with_test_process(&self) -> Result<(), HarnessError> {
        reap_with_test_process(
            self.standin.as_ref().map(|s| s.child.id()),
            Some(self.dir.path()),
        )
    }

    /// Stops the stand-in with SIGTERM and returns whether it exited cleanly (status 0).
    pub fn stop(&mut self) -> Result<bool, HarnessError> {
        let Some(s) = self.standin.as_mut() else {
            return Ok(true);
        };
        let _ = Command::new("kill")
            .args(["-TERM", &s.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = s.child.try_wait().map_err(io("waiting for the stand-in"))? {
                return Ok(status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = s.child.kill();
        Ok(false)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(s) = self.standin.as_mut() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

/// A child process such as `annexa run`, with stdout and stderr in a log file; killed when
/// dropped.
pub struct Background {
    child: Child,
    log: PathBuf,
}

impl Background {
    /// Starts `command` with its output appended to `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> Result<Self, HarnessError> {
        let out = std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("duplicating the log file"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("starting {:?}", command.get_program())))?;
        Ok(Self { child, log })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; fails early if the process exits.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<(), HarnessError> {
        let start = Instant::now();
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::Other(format!(
                    "the process exited ({status}) before logging {needle:?}:\n{}",
                    self.log()
                )));
            }
            if start.elapsed() > timeout {
                return Err(HarnessError::Other(format!(
                    "timed out after {timeout:?} waiting for {needle:?} in the log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process when the test process exits (see
    /// [`Cluster::clean_up_with_test_process`]).
    pub fn stop_with_test_process(&self) -> Result<(), HarnessError> {
        reap_with_test_process(Some(self.child.id()), None)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `timeout`; returns the exit status (None if it had to be
    /// killed).
    pub fn terminate(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>, HarnessError> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(io("waiting for the process"))?
            {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(None)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a small `sh` watchdog that waits for the test process to exit, then kills `pid`
/// and removes `dir`. Statics are never dropped, so this is how a fixture shared through a
/// `OnceLock` cleans up; it also works when the test process is killed.
fn reap_with_test_process(pid: Option<u32>, dir: Option<&Path>) -> Result<(), HarnessError> {
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
[ -n "$2" ] && kill "$2" 2>/dev/null
[ -n "$3" ] && rm -rf -- "$3"
exit 0"#;
    Command::new("sh")
        .args(["-c", script, "annexa-e2e-reaper"])
        .arg(std::process::id().to_string())
        .arg(pid.map(|p| p.to_string()).unwrap_or_default())
        .arg(dir.map(|d| d.as_os_str().to_owned()).unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("starting the clean-up watchdog"))?;
    Ok(())
}

/// A namespace that is deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
    kubectl: Kubectl,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = self
            .kubectl
            .clone()
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .run();
    }
}

/// The result of a kubectl run.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A kubectl invocation builder.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    args: Vec<String>,
    stdin: Option<String>,
    timeout: Duration,
    setup_error: Option<String>,
}

impl Kubectl {
    pub fn new(kubeconfig: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            kubeconfig,
            cache_dir,
            args: Vec::new(),
            stdin: None,
            timeout: Duration::from_secs(60),
            setup_error: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Text fed to kubectl's stdin (for `-f -`).
    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// Kills kubectl after this long (default 60s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts kubectl without waiting (for `get -w`); stdout/stderr are piped.
    pub fn spawn(self) -> Result<Child, HarnessError> {
        if let Some(e) = self.setup_error {
            return Err(HarnessError::Other(e));
        }
        let mut cmd = Command::new("kubectl");
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--cache-dir={}", self.cache_dir.display()))
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(io("starting kubectl"))?;
        if let (Some(text), Some(mut pipe)) = (self.stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())
                .map_err(io("writing kubectl's stdin"))?;
        }
        Ok(child)
    }

    /// Runs kubectl to completion (or until the timeout) and returns its output.
    pub fn run(self) -> Result<KubectlOutput, HarnessError> {
        let timeout = self.timeout;
        let mut child = self.spawn()?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let read = |pipe: Option<std::process::ChildStdout>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut p) = pipe {
                    use std::io::Read;
                    let _ = p.read_to_string(&mut s);
                }
                s
            })
        };
        let out_thread = read(stdout);
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = stderr {
                use std::io::Read;
                let _ = p.read_to_string(&mut s);
            }
            s
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io("waiting for kubectl"))? {
                break Some(status);
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = out_thread.join().unwrap_or_default();
        let mut stderr = err_thread.join().unwrap_or_default();
        if status.is_none() {
            stderr.push_str(&format!("\n[killed after {timeout:?}]"));
        }
        Ok(KubectlOutput {
            success: status.is_some_and(|s| s.success()),
            code: status.and_then(|s| s.code()),
            stdout,
            stderr,
        })
    }

    /// Runs kubectl and returns stdout, or an error carrying stderr when it fails.
    pub fn ok(self) -> Result<String, HarnessError> {
        let args = self.args.join(" ");
        let out = self.run()?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(HarnessError::Kubectl {
                args,
                status: format!("{:?}", out.code),
                stderr: out.stderr,
            })
        }
    }

    /// Runs kubectl expecting failure; returns stderr (an error if it succeeded).
    pub fn fails(self) -> Result<String, HarnessError> {
        let args = self.args.join(" ");
        let out = self.run()?;
        if out.success {
            Err(HarnessError::Other(format!(
                "kubectl {args} succeeded but was expected to fail:\n{}",
                out.stdout
            )))
        } else {
            Ok(out.stderr)
        }
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, HarnessError> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(HarnessError::Other(format!(
                "timed out after {timeout:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, HarnessError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting a runtime"))?;
    Ok(rt.block_on(f))
}

/// One HTTPS request to the stand-in (bearer token); returns (status, body, headers).
pub async fn raw_request(
    url: &str,
    ca_pem: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Result<(u16, String, http::HeaderMap), HarnessError> {
    let hostport = url.trim_start_matches("https://").to_string();
    let config =
        tls::client_config(ca_pem.as_bytes()).map_err(|e| HarnessError::Other(e.to_string()))?;
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, hostport.clone())
        .header(http::header::CONTENT_TYPE, "application/json");
    if !token.is_empty() {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(bytes::Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))
        .map_err(|e| HarnessError::Other(e.to_string()))?;
    let response = tls::https_request(
        Arc::new(config),
        &hostport,
        "127.0.0.1",
        request,
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| HarnessError::Other(e.to_string()))?;
    Ok((
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
        response.headers,
    ))
}

type Handler = dyn Fn(&Value) -> Value + Send + Sync + 'static;

/// An HTTPS admission webhook for tests. The handler gets the AdmissionReview `request` and
/// returns the `response` (its `uid` is filled in). Use [`allow`], [`deny`] and [`patch`].
pub struct TestWebhook {
    pub port: u16,
    pub ca_pem: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestWebhook {
    /// Serves on a free loopback port with a certificate for `127.0.0.1`, `localhost` and the
    /// `extra_names` (e.g. `my-webhook.my-ns.svc` for a service reference).
    pub fn start(
        extra_names: &[&str],
        handler: impl Fn(&Value) -> Value + Send + Sync + 'static,
    ) -> Result<Self, HarnessError> {
        let mut names = vec!["127.0.0.1", "localhost"];
        names.extend_from_slice(extra_names);
        let pki = tls::generate_pki("test-webhook", &names)
            .map_err(|e| HarnessError::Other(e.to_string()))?;
        let config = Arc::new(
            tls::server_config(&pki.cert_pem, &pki.key_pem)
                .map_err(|e| HarnessError::Other(e.to_string()))?,
        );
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(io("binding the webhook"))?;
        listener
            .set_nonblocking(true)
            .map_err(io("configuring the webhook socket"))?;
        let port = listener
            .local_addr()
            .map_err(io("reading the webhook port"))?
            .port();
        let handler: Arc<Handler> = Arc::new(handler);
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let acceptor = acceptor.clone();
                            let handler = handler.clone();
                            tokio::spawn(async move {
                                let Ok(tls) = acceptor.accept(tcp).await else { return };
                                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                                    let handler = handler.clone();
                                    async move {
                                        use http_body_util::BodyExt;
                                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                        let mut response = handler(&review["request"]);
                                        response["uid"] = review["request"]["uid"].clone();
                                        let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
                                        let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(out.to_string())));
                                        resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                                        Ok::<_, std::convert::Infallible>(resp)
                                    }
                                });
                                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Ok(Self {
            port,
            ca_pem: pki.ca_pem,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The CA as a webhook configuration's `caBundle` (base64 of the PEM).
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

impl Drop for TestWebhook {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An allowing admission response.
pub fn allow() -> Value {
    json!({"allowed": true})
}

/// A denying admission response with a status code and message.
pub fn deny(code: u16, message: &str) -> Value {
    json!({"allowed": false, "status": {"code": code, "message": message}})
}

/// An allowing response carrying a JSONPatch.
pub fn patch(ops: Value) -> Value {
    json!({
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(ops.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_processes_log_and_terminate() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.05; done",
        ]);
        let mut p = Background::spawn(command, dir.path().join("p.log")).unwrap();
        p.wait_for_log("started", Duration::from_secs(10)).unwrap();
        assert!(p.is_running());
        let status = p.terminate(Duration::from_secs(10)).unwrap();
        assert!(status.is_some_and(|s| s.success()));
        assert!(p.log().contains("bye"));
    }
}
