use clap::Parser;

fn main() {
    // kube and the webhook use rustls; pick the process-wide provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = annexa::cli::Cli::parse();
    std::process::exit(annexa::cli::dispatch(cli));
}
