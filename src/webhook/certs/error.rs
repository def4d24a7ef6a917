//! What can go wrong with the webhook's certificates: one variant per step (generating, signing,
//! decoding PEM, parsing, loading files, serving, the Secret and `caBundle` in the cluster), each
//! keeping the error it comes from as its source.

use crate::error::kube_message;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen could not generate a key or set up a certificate; `what` names which.
    #[error("{what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },

    /// rcgen could not sign a certificate; `what` names which.
    #[error("{what}: {source}")]
    Sign {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },

    /// A validity date outside what a certificate can hold.
    #[error("time out of range: {source}")]
    Time {
        #[source]
        source: time::error::ComponentRange,
    },

    /// A stored CA key or certificate that rcgen cannot read back; `what` names which.
    #[error("{what}: {source}")]
    ReadBack {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },

    /// Certificate PEM text whose blocks do not decode.
    #[error("certificate PEM: {source}")]
    Pem {
        #[source]
        source: pem::PemError,
    },

    /// Certificate PEM text without any certificate in it.
    #[error("certificate PEM holds no CERTIFICATE block")]
    NoCertificate,

    /// Private key PEM text without a usable key.
    #[error("private key PEM: {source}")]
    Key {
        #[source]
        source: rustls::pki_types::pem::Error,
    },

    /// A DER certificate that does not parse as X.509.
    #[error("cannot parse certificate: {source}")]
    Parse {
        #[source]
        source: x509_parser::nom::Err<x509_parser::error::X509Error>,
    },

    /// A key that does not belong to the certificate.
    #[error("certificate and key do not fit together: {source}")]
    Mismatch {
        #[source]
        source: rustls::Error,
    },

    /// A certificate or key file that cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A certificate and key file pair that was read but does not load.
    #[error("{} / {}: {source}", cert_file.display(), key_file.display())]
    Files {
        cert_file: PathBuf,
        key_file: PathBuf,
        #[source]
        source: Box<CertError>,
    },

    /// rustls refused the server configuration.
    #[error("TLS configuration: {source}")]
    Tls {
        #[source]
        source: rustls::Error,
    },

    /// Reading, creating or replacing the certificate Secret failed (shown as the API server's
    /// message, which names the Secret).
    #[error("{}", kube_message(.source))]
    Secret {
        #[source]
        source: kube::Error,
    },

    /// Replicas kept racing on the Secret.
    #[error(
        "could not settle the certificates in Secret {namespace}/{name} after {attempts} attempts"
    )]
    Unsettled {
        namespace: String,
        name: String,
        attempts: usize,
    },

    /// Reading or patching a webhook configuration's `caBundle` failed.
    #[error("{}", kube_message(.source))]
    CaBundle {
        #[source]
        source: kube::Error,
    },

    /// The `caBundle` JSON patch could not be built.
    #[error("caBundle patch: {source}")]
    CaBundlePatch {
        #[source]
        source: serde_json::Error,
    },
}

impl CertError {
    /// A low-cardinality label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            CertError::Generate { .. } | CertError::Time { .. } => "generate",
            CertError::Sign { .. } => "sign",
            CertError::ReadBack { .. }
            | CertError::Pem { .. }
            | CertError::NoCertificate
            | CertError::Key { .. }
            | CertError::Parse { .. }
            | CertError::Mismatch { .. } => "parse",
            CertError::Read { .. } => "io",
            CertError::Files { source, .. } => source.category(),
            CertError::Tls { .. } => "config",
            CertError::Secret { .. } | CertError::CaBundle { .. } | CertError::Unsettled { .. } => {
                "kube"
            }
            CertError::CaBundlePatch { .. } => "serialize",
        }
    }
}
