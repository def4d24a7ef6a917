//! The stand-in Kubernetes API server.

pub mod admission;
pub mod api;
pub mod authz;
pub mod builtin;
pub mod cel;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selectors;
pub mod smp;
pub mod ssa;
pub mod ssa_schema;
pub mod store;
pub mod table;
pub mod vap;
pub mod watch;
pub mod webhookconfig;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::tls;

/// An authenticated identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// A user line of a kube-apiserver `--token-auth-file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUser {
    pub token: String,
    pub user: User,
}

#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    #[error("token file line {line}: {message}")]
    TokenFile { line: usize, message: String },
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid webhook host override {0:?}: expected SERVICE.NAMESPACE:PORT=HOST:PORT")]
    Override(String),
    #[error("{0}")]
    Config(String),
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    fields.push(current);
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Parses a kube-apiserver token file: `token,user,uid[,"group1,group2"]` per line.
pub fn parse_token_file(text: &str) -> Result<Vec<TokenUser>, StandinError> {
    let mut out: Vec<TokenUser> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv_line(line);
        if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
            return Err(StandinError::TokenFile {
                line: idx + 1,
                message: "expected at least 3 columns: token,user,uid".into(),
            });
        }
        if out.iter().any(|u| u.token == fields[0]) {
            return Err(StandinError::TokenFile {
                line: idx + 1,
                message: "duplicate token".into(),
            });
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        out.push(TokenUser {
            token: fields[0].clone(),
            user: User {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
            },
        });
    }
    Ok(out)
}

/// Injected faults; see `POST /_standin/faults`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Added to every resource request (not discovery, not `/_standin`).
    pub latency_ms: u64,
    /// Fraction (0.0..=1.0) of resource requests answered with an error instead.
    pub error_rate: f64,
    /// Status codes the errors are drawn from (409, 429 or 500; default 500).
    pub error_codes: Vec<u16>,
    /// Only requests with these methods (e.g. `["PATCH"]`); empty means all.
    pub methods: Vec<String>,
    /// Only requests whose path and query contain this string (e.g. `watch=true`);
    /// empty means all.
    pub path_contains: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub address: std::net::IpAddr,
    pub port: u16,
    pub users: Vec<TokenUser>,
    pub kubeconfig: Option<PathBuf>,
    pub ready_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// `service.namespace:port` -> `host:port` for webhook service references.
    pub webhook_overrides: HashMap<String, String>,
    pub watch_history: usize,
    pub max_objects: usize,
    pub bookmark_interval: Duration,
    pub max_body_bytes: usize,
    pub faults: Faults,
    pub first_resource_version: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            address: std::net::IpAddr::from([127, 0, 0, 1]),
            port: 0,
            users: Vec::new(),
            kubeconfig: None,
            ready_file: None,
            ca_file: None,
            webhook_overrides: HashMap::new(),
            watch_history: 10_000,
            max_objects: 100_000,
            bookmark_interval: Duration::from_secs(5),
            max_body_bytes: 3 * 1024 * 1024,
            faults: Faults::default(),
            first_resource_version: 1000,
        }
    }
}

/// Parses `svc.ns:port=host:port`.
pub fn parse_override(text: &str) -> Result<(String, String), StandinError> {
    let (from, to) = text
        .split_once('=')
        .ok_or_else(|| StandinError::Override(text.to_string()))?;
    let valid = |s: &str| {
        s.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    };
    if !valid(from) || !valid(to) || !from.contains('.') {
        return Err(StandinError::Override(text.to_string()));
    }
    Ok((from.to_string(), to.to_string()))
}

/// A token minted by the TokenRequest API for a ServiceAccount.
#[derive(Clone, Debug)]
pub struct ServiceAccountToken {
    pub namespace: String,
    pub name: String,
    /// The ServiceAccount's uid: the token dies with the object it was minted for.
    pub uid: String,
    pub expires: jiff::Timestamp,
}

/// One authorisation decision the stand-in made: who, what, and the answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRecord {
    pub user: String,
    #[serde(flatten)]
    pub attributes: authz::Attributes,
    pub allowed: bool,
}

/// Shared state of a running stand-in.
pub struct Server {
    pub state: Mutex<store::State>,
    pub tokens: HashMap<String, User>,
    pub service_account_tokens: Mutex<HashMap<String, ServiceAccountToken>>,
    /// Every distinct resource-request decision (see `GET /_standin/authorizations`).
    pub authorizations: Mutex<std::collections::BTreeSet<AuthorizationRecord>>,
    pub faults: Mutex<Faults>,
    pub webhook_overrides: Mutex<HashMap<String, String>>,
    pub drop_watches: tokio::sync::watch::Sender<u64>,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub bookmark_interval: Duration,
    pub max_body_bytes: usize,
}

impl Server {
    /// Locks the state; a poisoned lock (a panic elsewhere) still yields the data.
    pub fn state(&self) -> MutexGuard<'_, store::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    pub fn webhook_override(&self, key: &str) -> Option<String> {
        self.webhook_overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    pub fn record_authorization(&self, record: AuthorizationRecord) {
        self.authorizations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record);
    }

    pub fn add_webhook_override(&self, from: String, to: String) {
        self.webhook_overrides
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(from, to);
    }
}

/// What a started stand-in reports (also written as JSON to `--ready-file`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    pub url: String,
    pub port: u16,
    pub ca_pem: String,
    pub kubeconfig: Option<PathBuf>,
}

/// Writes a kubeconfig with one context per user (named after the user).
pub fn kubeconfig_text(
    url: &str,
    ca_pem: &str,
    users: &[TokenUser],
    current: Option<&str>,
) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let contexts: Vec<serde_json::Value> = users
        .iter()
        .map(|u| json!({"name": u.user.name, "context": {"cluster": "standin", "user": u.user.name}}))
        .collect();
    let kusers: Vec<serde_json::Value> = users
        .iter()
        .map(|u| json!({"name": u.user.name, "user": {"token": u.token}}))
        .collect();
    let current = current
        .map(str::to_string)
        .or_else(|| users.first().map(|u| u.user.name.clone()))
        .unwrap_or_default();
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": {"server": url, "certificate-authority-data": ca}}],
        "users": kusers,
        "contexts": contexts,
        "current-context": current,
        "preferences": {},
    });
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

fn write_file(path: &PathBuf, text: &str) -> Result<(), StandinError> {
    // Write then rename so a reader never sees a half-written file.
    let tmp = path.with_extension("tmp-standin");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| StandinError::Io {
            what: format!("writing {}", path.display()),
            source,
        })
}

/// Binds, writes the kubeconfig and ready file, then serves until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), StandinError> {
    let pki = tls::generate_pki(
        "annexa-standin",
        &["localhost", "127.0.0.1", &config.address.to_string()],
    )?;
    let tls_config = Arc::new(tls::server_config(&pki.cert_pem, &pki.key_pem)?);
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.address, config.port))
        .await
        .map_err(|source| StandinError::Io {
            what: format!("binding {}:{}", config.address, config.port),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| StandinError::Io {
            what: "reading the bound address".into(),
            source,
        })?
        .port();
    let url = format!("https://{}:{port}", config.address);

    let (drop_watches, _) = tokio::sync::watch::channel(0u64);
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let server = Arc::new(Server {
        state: Mutex::new(store::State::new(
            config.first_resource_version,
            config.watch_history,
            config.max_objects,
        )),
        tokens: config
            .users
            .iter()
            .map(|u| (u.token.clone(), u.user.clone()))
            .collect(),
        service_account_tokens: Mutex::new(HashMap::new()),
        authorizations: Mutex::new(std::collections::BTreeSet::new()),
        faults: Mutex::new(config.faults.clone()),
        webhook_overrides: Mutex::new(config.webhook_overrides.clone()),
        drop_watches,
        shutdown,
        bookmark_interval: config.bookmark_interval,
        max_body_bytes: config.max_body_bytes,
    });
    api::bootstrap(&server);

    if let Some(path) = &config.kubeconfig {
        write_file(
            path,
            &kubeconfig_text(&url, &pki.ca_pem, &config.users, None),
        )?;
    }
    if let Some(path) = &config.ca_file {
        write_file(path, &pki.ca_pem)?;
    }
    let ready = Ready {
        url: url.clone(),
        port,
        ca_pem: pki.ca_pem.clone(),
        kubeconfig: config.kubeconfig.clone(),
    };
    if let Some(path) = &config.ready_file {
        write_file(
            path,
            &serde_json::to_string_pretty(&ready).unwrap_or_default(),
        )?;
    }
    println!("annexa-standin ready: {url} (port {port})");

    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
    let mut shutdown_rx = server.shutdown.subscribe();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| StandinError::Io {
            what: "installing the SIGTERM handler".into(),
            source,
        })?;
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = shutdown_rx.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let server = server.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, std::convert::Infallible>(api::handle(server, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        }
    }
    // Ends open watches so clients see the stream close rather than hang.
    let _ = server.shutdown.send(true);
    println!("annexa-standin stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file() {
        let users =
            parse_token_file("# comment\nt1,alice,uid-1,\"dev,ops\"\nt2,bob,uid-2\n").unwrap();
        assert_eq!(users[0].user.groups, vec!["dev", "ops"]);
        assert!(users[1].user.groups.is_empty());
        assert!(parse_token_file("t1,alice").is_err());
    }

    #[test]
    fn overrides() {
        assert!(parse_override("svc.ns:443=127.0.0.1:8443").is_ok());
        assert!(parse_override("svc:443=127.0.0.1:8443").is_err());
        assert!(parse_override("svc.ns:443").is_err());
    }
}
