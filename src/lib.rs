//! Annexa: enforces ISO/IEC 27001:2022 Annex A controls on AI workloads in Kubernetes.
//!
//! - [`api`]: the custom resource types.
//! - [`policy`]: the pure rule engine shared by the webhook, the controllers and `annexa check`
//!   (imports only [`api`]).
//! - [`decode`]: raw objects (JSON/YAML values, JSON text) to typed ones, the one decoder of
//!   the webhook, `annexa check` and the cache (imports only [`api`] and [`policy`]).
//! - [`manifest`]: files and folders of YAML/JSON documents, decoded through [`decode`].
//! - [`controller`]: one reconciler per kind, each file building its own Controller; reconcile
//!   is read -> pure plan -> server-side apply -> status, with typed errors (`controller::error`).
//! - [`cli`]: the subcommands of the `annexa` binary.
//! - [`evidence`]: evidence in the formats auditors' and platform teams' tools read.
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
