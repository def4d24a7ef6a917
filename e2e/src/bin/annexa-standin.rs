//! `annexa-standin`: a stand-in Kubernetes API server for end-to-end tests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use annexa_e2e::standin::{self, Config, Faults, StandinError, TokenUser, User};
use clap::Parser;

/// A stand-in Kubernetes API server for Annexa's end-to-end tests (HTTPS on loopback,
/// objects in memory, no controllers). See e2e/README.md for what it does and does not prove.
#[derive(Parser, Debug)]
#[command(name = "annexa-standin", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: std::net::IpAddr,
    /// Port to listen on; 0 picks a free port (reported on stdout and in --ready-file).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Users in kube-apiserver --token-auth-file format: token,user,uid,"group1,group2".
    /// Without it, one user `admin` (group system:masters) gets a random token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Write a kubeconfig here: one cluster, one user and one context per token-file user.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Write a JSON ready file here once listening: {url, port, caPem, kubeconfig}.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Write the server's CA certificate (PEM) here.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Send webhook calls for service SVC.NS:PORT to HOST:PORT (TLS name stays SVC.NS.svc).
    /// Repeatable. Example: annexa-webhook.annexa-system:443=127.0.0.1:8443
    #[arg(long = "webhook-host-override", value_name = "SVC.NS:PORT=HOST:PORT")]
    webhook_host_overrides: Vec<String>,
    /// Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// Upper bound on stored objects (bounded memory).
    #[arg(long, default_value_t = 100_000)]
    max_objects: usize,
    /// Interval between watch bookmarks (for watches that allow them).
    #[arg(long, default_value_t = 5)]
    bookmark_interval_seconds: u64,
    /// Fault injection: latency added to every resource request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_latency_ms: u64,
    /// Fault injection: fraction (0.0-1.0) of resource requests answered with an error.
    #[arg(long, default_value_t = 0.0)]
    fault_error_rate: f64,
    /// Fault injection: status codes to answer with (comma separated: 409, 429, 500).
    #[arg(long, value_delimiter = ',', default_value = "500")]
    fault_error_codes: Vec<u16>,
    /// Fault injection: only requests with these methods (comma separated).
    #[arg(long, value_delimiter = ',')]
    fault_methods: Vec<String>,
    /// Fault injection: only requests whose path and query contain this text.
    #[arg(long, default_value = "")]
    fault_path_contains: String,
}

fn config(cli: Cli) -> Result<Config, StandinError> {
    let users = match &cli.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| StandinError::Io {
                what: format!("reading {}", path.display()),
                source,
            })?;
            standin::parse_token_file(&text)?
        }
        None => vec![TokenUser {
            token: format!(
                "{:016x}{:016x}",
                standin::store::random_u64(),
                standin::store::random_u64()
            ),
            user: User {
                name: "admin".into(),
                uid: "admin".into(),
                groups: vec!["system:masters".into()],
            },
        }],
    };
    if users.is_empty() {
        return Err(StandinError::Config(
            "the token file defines no users".into(),
        ));
    }
    if !(0.0..=1.0).contains(&cli.fault_error_rate) {
        return Err(StandinError::Config(
            "--fault-error-rate must be within 0.0..=1.0".into(),
        ));
    }
    let webhook_overrides = cli
        .webhook_host_overrides
        .iter()
        .map(|o| standin::parse_override(o))
        .collect::<Result<_, _>>()?;
    Ok(Config {
        address: cli.address,
        port: cli.port,
        users,
        kubeconfig: cli.kubeconfig,
        ready_file: cli.ready_file,
        ca_file: cli.ca_file,
        webhook_overrides,
        watch_history: cli.watch_history,
        max_objects: cli.max_objects,
        bookmark_interval: Duration::from_secs(cli.bookmark_interval_seconds.max(1)),
        faults: Faults {
            latency_ms: cli.fault_latency_ms,
            error_rate: cli.fault_error_rate,
            error_codes: cli.fault_error_codes,
            methods: cli.fault_methods,
            path_contains: cli.fault_path_contains,
        },
        ..Config::default()
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = config(cli).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| StandinError::Io {
                what: "starting the runtime".into(),
                source,
            })?;
        runtime.block_on(standin::run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annexa-standin: {e}");
            ExitCode::FAILURE
        }
    }
}
