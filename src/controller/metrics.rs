//! Controller metrics: reconciles and errors by kind, reconcile latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub category: String,
}

pub struct ControllerMetrics {
    /// Compliance reports written, by report kind.
    pub reports_written: Family<KindLabel, Counter>,
    /// Report passes skipped because the report CRD is not installed, by report kind.
    pub reports_skipped: Family<KindLabel, Counter>,
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<KindLabel, Histogram>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self {
            reports_written: Family::default(),
            reports_skipped: Family::default(),
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
            }),
        }
    }
}

impl ControllerMetrics {
    /// Registers under the registry's `annexa` prefix (`annexa_reconciles_total`, ...).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "reports_written",
            "Compliance reports (OpenReports or PolicyReport) written, by report kind",
            self.reports_written.clone(),
        );
        registry.register(
            "reports_skipped",
            "Compliance report passes skipped because the report CRD is not installed",
            self.reports_skipped.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciliations by kind",
            self.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliation errors by kind and category",
            self.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconciliation latency by kind",
            self.duration.clone(),
        );
    }

    pub fn report_written(&self, kind: &str) {
        self.reports_written
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn report_skipped(&self, kind: &str) {
        self.reports_skipped
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn observe(&self, kind: &str, seconds: f64) {
        let label = KindLabel {
            kind: kind.to_string(),
        };
        self.reconciles.get_or_create(&label).inc();
        self.duration.get_or_create(&label).observe(seconds);
    }

    pub fn error(&self, kind: &str, category: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                category: category.to_string(),
            })
            .inc();
    }
}
