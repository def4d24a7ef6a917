//! The crate's error type. Variants keep the error they wrap as their `#[source]` (serializers,
//! I/O with its path, kube) and say what the user sees; [`Error::category`] is derived from the
//! variant. Areas with errors of their own add one `#[from]` variant each.

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

    /// Output that could not be written as JSON, YAML, CSV or JUnit XML.
    #[error("cannot serialize output: {0}")]
    Output(#[from] SerializeError),

    /// A request to the API server failed; the message says what it was for and what to do.
    #[error("{message}")]
    Cluster {
        message: String,
        #[source]
        source: kube::Error,
    },

    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),

    /// Shown as the API server's own message, never kube's Debug dump of the Status.
    #[error("{}", kube_message(.0))]
    Kube(#[from] kube::Error),

    #[error("{0}")]
    Config(String),

    #[error(transparent)]
    Certificate(#[from] crate::webhook::certs::CertError),

    /// A server that cannot listen on its address; `server` names it when a process has two.
    #[error("cannot listen on {addr}{}: {source}", server.map(|s| format!(" ({s})")).unwrap_or_default())]
    Listen {
        addr: std::net::SocketAddr,
        server: Option<&'static str>,
        #[source]
        source: std::io::Error,
    },

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
            Error::Output(_) => "serialize",
            Error::Cluster { .. } => "kube",
            Error::Runtime(_) => "io",
            Error::Kube(_) => "kube",
            Error::Config(_) => "config",
            Error::Certificate(e) => e.category(),
            Error::Listen { .. } => "config",
            Error::Invalid(_) => "invalid",
        }
    }
}

/// Why a value could not be written out, with the serializer's own error as the source.
#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Junit(#[from] quick_junit::SerializeError),
}

impl Error {
    /// An error of any serializer, as [`Error::Output`]: `.map_err(Error::output)`.
    pub fn output(error: impl Into<SerializeError>) -> Self {
        Error::Output(error.into())
    }
}

/// A kube client error as one readable line: for an API error the API server's message with its
/// reason and HTTP code (kube's own Display appends a Debug dump of the Status).
pub fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status_message(status),
        other => format!("Kubernetes API: {other}"),
    }
}

/// An API server Status as `MESSAGE (REASON, HTTP CODE)`.
pub fn status_message(status: &kube::core::Status) -> String {
    let message = if status.message.is_empty() {
        "the API server refused the request"
    } else {
        status.message.as_str()
    };
    match (status.reason.is_empty(), status.code) {
        (true, 0) => message.to_string(),
        (true, code) => format!("{message} (HTTP {code})"),
        (false, 0) => format!("{message} ({})", status.reason),
        (false, code) => format!("{message} ({}, HTTP {code})", status.reason),
    }
}

/// A watch error as one readable line (see [`kube_message`]).
pub fn watch_message(error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(e) => format!("cannot list: {}", kube_message(e)),
        W::WatchStartFailed(e) => format!("cannot start watching: {}", kube_message(e)),
        W::WatchError(status) => format!("the watch failed: {}", status_message(status)),
        W::WatchFailed(e) => format!("the watch stream failed: {}", kube_message(e)),
        W::NoResourceVersion => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn wrapped_errors_keep_their_source_and_their_message() {
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let shown = json.to_string();
        let error = Error::output(json);
        assert_eq!(
            error.to_string(),
            format!("cannot serialize output: {shown}")
        );
        assert_eq!(error.category(), "serialize");
        let source = error.source().unwrap();
        assert!(
            source
                .downcast_ref::<SerializeError>()
                .is_some_and(|e| matches!(e, SerializeError::Json(_))),
            "{source:?}"
        );
        let status = kube::core::Status {
            code: 409,
            reason: "AlreadyExists".into(),
            message: "exists".into(),
            ..Default::default()
        };
        let error = Error::Cluster {
            message: "bob already recorded a decision".into(),
            source: kube::Error::Api(Box::new(status)),
        };
        assert_eq!(error.to_string(), "bob already recorded a decision");
        assert_eq!(error.category(), "kube");
        assert!(
            error
                .source()
                .unwrap()
                .downcast_ref::<kube::Error>()
                .is_some()
        );
        let runtime = Error::Runtime(std::io::Error::other("no threads"));
        assert_eq!(
            runtime.to_string(),
            "cannot start the async runtime: no threads"
        );
        assert_eq!(runtime.category(), "io");
    }

    #[test]
    fn api_errors_read_as_one_line_without_debug_dumps() {
        let status = kube::core::Status {
            code: 404,
            reason: "NotFound".into(),
            message: "the server could not find the requested resource".into(),
            ..Default::default()
        };
        let error = Error::Kube(kube::Error::Api(Box::new(status.clone())));
        assert_eq!(
            error.to_string(),
            "the server could not find the requested resource (NotFound, HTTP 404)"
        );
        let watch =
            kube::runtime::watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)));
        let line = watch_message(&watch);
        assert!(
            line.starts_with("cannot list: the server could not find"),
            "{line}"
        );
        assert!(!line.contains("Status {"), "{line}");
    }
}
