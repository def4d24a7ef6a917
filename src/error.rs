//! The crate's error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest could not be read or decoded; the message names the file, document and field.
    #[error("{0}")]
    Input(String),

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot serialize output: {0}")]
    Serialize(String),

    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),

    #[error("{0}")]
    Config(String),

    /// The object cannot be reconciled as written; retried when it changes.
    #[error("invalid object: {0}")]
    Invalid(String),
}

impl Error {
    /// A low-cardinality label for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Input(_) => "input",
            Error::Io { .. } => "io",
            Error::Serialize(_) => "serialize",
            Error::Kube(_) => "kube",
            Error::Config(_) => "config",
            Error::Invalid(_) => "invalid",
        }
    }
}
