//! End-to-end harness for Annexa: a stand-in Kubernetes API server and test support.

pub mod docs;
pub mod harness;
pub mod standin;
pub mod tls;
pub mod tour;
