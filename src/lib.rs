//! Annexa: enforces ISO/IEC 27001:2022 Annex A controls on AI workloads in Kubernetes.
//! `ARCHITECTURE.md` draws the layers and follows a request and a reconcile through them;
//! `tests/layers.rs` proves the imports keep them.
//!
//! - [`api`]: the custom resource types and the table of kinds (`api::Kind`).
//! - [`policy`]: the pure rule engine shared by the webhook, the controllers and `annexa check`
//!   (imports only [`api`]).
//! - [`decode`]: raw objects (JSON/YAML values, JSON text) to typed ones, the one decoder of
//!   the webhook, `annexa check` and the cache (imports only [`api`] and [`policy`]).
//! - [`manifest`]: files and folders of YAML/JSON documents, decoded through [`decode`].
//! - [`cluster`]: the shared cache (reflector stores, indexes, namespace profiles) the webhook
//!   and the controllers read; each kind watched once.
//! - [`controller`]: one reconciler per kind, each file building its own Controller; reconcile
//!   is read -> pure plan -> server-side apply -> status, with typed errors (`controller::error`).
//! - [`cli`]: the subcommands of the `annexa` binary.
//! - [`evidence`]: the records of what was checked and observed (`evidence::records`) and the
//!   formats auditors' and platform teams' tools read (SARIF, OSCAL, SoA, OpenReports).
//! - [`permissions`]: every API call Annexa makes, the table the chart's RBAC is tested against.
//! - [`error`]: the command line's error, wrapping each area's typed error.
//! - [`webhook`]: the admission webhook (HTTPS server, AdmissionReview <-> [`policy`]) and its
//!   serving certificates (`webhook::certs`: generated, hot-swapped, kept in a Secret).

pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod decode;
pub mod error;
pub mod evidence;
pub mod manifest;
pub mod permissions;
pub mod policy;
pub mod webhook;
