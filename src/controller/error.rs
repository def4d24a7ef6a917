//! The controllers' errors: what Annexa was doing (reading, listing, applying, patching or
//! deleting which object, writing whose status) with kube's error kept as the source, and a
//! low-cardinality [`Error::category`] for metrics and logs. [`super::error_policy`] waits for
//! a change after [`Error::Invalid`] and backs off after anything else.

use crate::error::kube_message;
use kube::Resource;
use std::borrow::Cow;
use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The object an API call was about: `Deployment "ml/fraud"`, `Pod in namespace "ml"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Cow<'static, str>,
    pub namespace: Option<String>,
    /// None: a list.
    pub name: Option<String>,
}

impl Target {
    /// An object of kind `K`.
    pub fn new<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind: K::kind(&()),
            namespace: namespace.map(str::to_string),
            name: Some(name.to_string()),
        }
    }

    /// The object itself.
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        let meta = object.meta();
        Self::new::<K>(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or_default(),
        )
    }

    /// The objects of kind `K` (in `namespace`, or everywhere).
    pub fn list<K: Resource<DynamicType = ()>>(namespace: Option<&str>) -> Self {
        Self {
            kind: K::kind(&()),
            namespace: namespace.map(str::to_string),
            name: None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(name)) => write!(f, "{} {:?}", self.kind, format!("{ns}/{name}")),
            (None, Some(name)) => write!(f, "{} {name:?}", self.kind),
            (Some(ns), None) => write!(f, "{}s in namespace {ns:?}", self.kind),
            (None, None) => write!(f, "{}s", self.kind),
        }
    }
}

/// What Annexa was doing when the API server refused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doing {
    Get,
    List,
    Apply,
    Patch,
    Delete,
    WriteStatus,
}

impl fmt::Display for Doing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Doing::Get => "read",
            Doing::List => "list",
            Doing::Apply => "apply",
            Doing::Patch => "patch",
            Doing::Delete => "delete",
            Doing::WriteStatus => "write the status of",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object cannot be reconciled as written; retried when it changes.
    #[error("invalid object: {0}")]
    Invalid(String),

    /// An API call that failed (other than a 403): `cannot read`, `cannot list`, `cannot
    /// apply` (server-side apply of a child), `cannot patch` (a merge patch of drift
    /// server-side apply cannot remove), `cannot delete`, `cannot write the status of`.
    #[error("cannot {doing} {target}: {}", kube_message(.source))]
    Api {
        doing: Doing,
        target: Target,
        #[source]
        source: Box<kube::Error>,
    },

    /// The API server refused Annexa's own ServiceAccount (HTTP 403): its RBAC lacks the
    /// permission the message names.
    #[error("not allowed to {doing} {target}: {}", kube_message(.source))]
    Forbidden {
        doing: Doing,
        target: Target,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("cannot serialize the status of {target}: {source}")]
    Serialize {
        target: Target,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The error of a failed API call: [`Error::Forbidden`] for a 403, else [`Error::Api`] saying what
    /// Annexa was doing.
    pub fn api(doing: Doing, target: Target, source: kube::Error) -> Self {
        // Boxed: kube's error is large, and every reconcile returns this type.
        let source = Box::new(source);
        if matches!(&*source, kube::Error::Api(status) if status.code == 403) {
            return Error::Forbidden {
                doing,
                target,
                source,
            };
        }
        Error::Api {
            doing,
            target,
            source,
        }
    }

    /// A low-cardinality label for metrics and logs: `invalid` (the object as written),
    /// `forbidden` (Annexa's own RBAC), `kube` (any other refusal or failure of the API
    /// server), `serialize`.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid",
            Error::Forbidden { .. } => "forbidden",
            Error::Api { .. } => "kube",
            Error::Serialize { .. } => "serialize",
        }
    }

    /// The API server's refusal (its Status), when the error is one.
    pub fn status(&self) -> Option<&kube::core::Status> {
        match self {
            Error::Api { source, .. } | Error::Forbidden { source, .. } => match &**source {
                kube::Error::Api(status) => Some(status),
                _ => None,
            },
            Error::Invalid(_) | Error::Serialize { .. } => None,
        }
    }
}

/// Adds what Annexa was doing, and on which object, to a failed API call.
pub trait Context<T> {
    fn doing(self, doing: Doing, target: impl FnOnce() -> Target) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, kube::Error> {
    fn doing(self, doing: Doing, target: impl FnOnce() -> Target) -> Result<T> {
        self.map_err(|source| Error::api(doing, target(), source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ModelDeployment;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::runtime::controller::Action;

    fn refused(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn errors_say_what_annexa_was_doing_and_keep_the_api_servers_message() {
        let target = || Target::new::<Deployment>(Some("ml"), "fraud");
        let conflict = Error::api(
            Doing::Apply,
            target(),
            refused(409, "Conflict", "the object has been modified"),
        );
        assert_eq!(
            conflict.to_string(),
            "cannot apply Deployment \"ml/fraud\": the object has been modified (Conflict, HTTP 409)"
        );
        assert!(matches!(
            conflict,
            Error::Api {
                doing: Doing::Apply,
                ..
            }
        ));
        assert_eq!(conflict.category(), "kube");
        // The source is kept for whoever walks the chain.
        let source = std::error::Error::source(&conflict).map(ToString::to_string);
        assert!(
            source.is_some_and(|s| s.contains("the object has been modified")),
            "{conflict:?}"
        );
        let status = Error::api(
            Doing::WriteStatus,
            Target::new::<ModelDeployment>(Some("ml"), "fraud"),
            refused(500, "", "etcd is down"),
        );
        assert_eq!(
            status.to_string(),
            "cannot write the status of ModelDeployment \"ml/fraud\": etcd is down (HTTP 500)"
        );
        let listed = Error::api(
            Doing::List,
            Target::list::<k8s_openapi::api::core::v1::Pod>(Some("ml")),
            refused(500, "", "etcd is down"),
        );
        assert!(
            listed
                .to_string()
                .starts_with("cannot list Pods in namespace \"ml\": "),
            "{listed}"
        );
    }

    #[test]
    fn a_403_is_forbidden_to_annexa_and_reported_with_the_servers_message() {
        let forbidden = Error::api(
            Doing::Apply,
            Target::new::<Deployment>(Some("ml"), "fraud"),
            refused(403, "Forbidden", "deployments.apps \"fraud\" is forbidden"),
        );
        assert!(matches!(
            forbidden,
            Error::Forbidden {
                doing: Doing::Apply,
                ..
            }
        ));
        assert_eq!(forbidden.category(), "forbidden");
        assert_eq!(
            super::super::forbidden_to_annexa(&forbidden).as_deref(),
            Some("deployments.apps \"fraud\" is forbidden")
        );
        // Any other refusal is an error, not a condition.
        let conflict = Error::api(
            Doing::Apply,
            Target::new::<Deployment>(Some("ml"), "fraud"),
            refused(409, "Conflict", "modified"),
        );
        assert_eq!(super::super::forbidden_to_annexa(&conflict), None);
    }

    #[test]
    fn an_invalid_object_waits_for_a_change_and_an_api_error_backs_off() {
        let invalid = Error::Invalid("ModelDeployment without namespace".into());
        assert_eq!(invalid.category(), "invalid");
        assert_eq!(
            super::super::error_action(&invalid, "fraud"),
            Action::await_change()
        );
        let transient = Error::api(
            Doing::Get,
            Target::new::<Deployment>(Some("ml"), "fraud"),
            refused(500, "", "etcd is down"),
        );
        let action = super::super::error_action(&transient, "fraud");
        assert_ne!(action, Action::await_change());
        // Retried within 10 to 19 seconds (jitter by name).
        assert!(
            (10..20).any(|s| action == Action::requeue(std::time::Duration::from_secs(s))),
            "{action:?}"
        );
    }
}
