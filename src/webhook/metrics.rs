//! Prometheus metrics of the webhook (prometheus-client), served on the plain-HTTP metrics
//! address. Label values are bounded: kinds are the governed kinds or `other`, controls come
//! from the catalogue.

use super::admission::Decision;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    kind: &'static str,
    control: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    webhook: &'static str,
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    cap: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: &'static str,
}

/// The webhook's metrics and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    reviews: Family<ReviewLabels, Counter>,
    duration: Family<WebhookLabels, Histogram>,
    decision: Family<KindLabels, Histogram>,
    shed: Family<ShedLabels, Counter>,
    connections_open: Gauge,
    certificate_expiry: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The webhook's metrics plus more collectors registered by `extra` (the controllers').
    pub fn with(extra: impl FnOnce(&mut Registry)) -> Self {
        let mut metrics = Self::new();
        extra(&mut metrics.registry);
        metrics
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("annexa");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "admission_decisions",
            "Admission findings by kind, Annex A control and result (deny, warn, audit; control none with result admit for objects without findings)",
            decisions.clone(),
        );
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "AdmissionReviews answered, by webhook (validate, mutate), kind and result (allowed, denied, patched, invalid)",
            reviews.clone(),
        );
        let duration = Family::<WebhookLabels, Histogram>::new_with_constructor(|| {
            // 25µs .. ~0.8s
            Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
        });
        registry.register(
            "admission_duration_seconds",
            "Time to answer an AdmissionReview, from the first body byte to the encoded answer",
            duration.clone(),
        );
        let decision = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            // 5µs .. ~5s
            Histogram::new(exponential_buckets(0.000_005, 2.5, 16))
        });
        registry.register(
            "admission_decision_seconds",
            "CPU time to decode and decide an AdmissionReview, by kind, without reading the body or writing the answer",
            decision.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "webhook_shed",
            "Connections and reviews refused at once because a cap was reached, by cap (connections, requests, bytes)",
            shed.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "webhook_connections_open",
            "TLS connections open on the webhook address",
            connections_open.clone(),
        );
        let certificate_expiry = Gauge::default();
        registry.register(
            "webhook_certificate_expiry_timestamp_seconds",
            "When the serving certificate expires (unix seconds)",
            certificate_expiry.clone(),
        );
        Self {
            registry,
            decisions,
            reviews,
            duration,
            decision,
            shed,
            connections_open,
            certificate_expiry,
        }
    }

    /// Counts one answered review.
    pub fn record(&self, webhook: &'static str, decision: &Decision, elapsed: Duration) {
        let result = if !decision.response.allowed {
            "denied"
        } else if decision.response.patch.is_some() {
            "patched"
        } else {
            "allowed"
        };
        self.reviews
            .get_or_create(&ReviewLabels {
                webhook,
                kind: decision.kind,
                result,
            })
            .inc();
        for (control, result) in &decision.counts {
            self.decisions
                .get_or_create(&DecisionLabels {
                    kind: decision.kind,
                    control,
                    result,
                })
                .inc();
        }
        self.observe(webhook, elapsed);
    }

    /// Counts a review that could not be read (answered 4xx).
    pub fn record_invalid(&self, webhook: &'static str, elapsed: Duration) {
        self.reviews
            .get_or_create(&ReviewLabels {
                webhook,
                kind: "other",
                result: "invalid",
            })
            .inc();
        self.observe(webhook, elapsed);
    }

    fn observe(&self, webhook: &'static str, elapsed: Duration) {
        self.duration
            .get_or_create(&WebhookLabels { webhook })
            .observe(elapsed.as_secs_f64());
    }

    /// Time spent decoding and deciding one review of `kind`.
    pub fn observe_decision(&self, kind: &'static str, elapsed: Duration) {
        self.decision
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a connection or review refused at a cap (`connections`, `requests`, `bytes`).
    pub fn record_shed(&self, cap: &'static str) {
        self.shed.get_or_create(&ShedLabels { cap }).inc();
    }

    pub fn set_connections_open(&self, open: i64) {
        self.connections_open.set(open);
    }

    pub fn set_certificate_expiry(&self, unix_seconds: i64) {
        self.certificate_expiry.set(unix_seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
