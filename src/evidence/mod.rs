//! Evidence in the formats the tools auditors and platform teams already use can read:
//! SARIF for code scanning, OSCAL for GRC tools, a Statement of Applicability for the ISO
//! audit, and OpenReports `Report`s for cluster UIs.

pub mod annex_a;
pub mod openreports;
pub mod oscal;
pub mod records;
pub mod sarif;
pub mod soa;

use records::{Observed, Report};

/// The objects `annexa check` evaluated, as if read back from their status in the cluster
/// (how the offline Statement of Applicability and tests feed the same writers).
pub fn observed_from_check(report: &Report) -> Vec<Observed> {
    report
        .objects
        .iter()
        .map(|o| Observed {
            object: o.evaluation.object.as_ref().clone(),
            current: true,
            controls: o.evaluation.control_results(),
            since: None,
        })
        .collect()
}
