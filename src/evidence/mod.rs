//! Evidence in the formats the tools auditors and platform teams already use can read:
//! SARIF for code scanning, OSCAL for GRC tools, a Statement of Applicability for the ISO
//! audit, and OpenReports `Report`s for cluster UIs.

pub mod annex_a;
pub mod sarif;
