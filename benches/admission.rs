//! One admission decision on a 9.5 KB GPU-pod AdmissionReview (2 containers, env,
//! managedFields) against the bare parse of the same bytes into kube's typed review.
//! DESIGN target: decision <= 1.3x the bare parse.
//!
//! `cargo bench --bench admission -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use annexa::manifest;
use annexa::webhook::{StaticContext, admission, review};
use criterion::{Criterion, criterion_group, criterion_main};
use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;
use std::hint::black_box;

const REVIEW: &[u8] = include_bytes!("fixtures/gpu-pod-review.json");
const CONTEXT: &str = include_str!("fixtures/context.yaml");

fn bench(c: &mut Criterion) {
    let (documents, errors) = manifest::parse_documents("context.yaml", CONTEXT);
    assert!(errors.is_empty(), "{errors:?}");
    let context = StaticContext::from_documents(documents);
    let now = jiff::Timestamp::now();

    // The decision under measurement evaluates the pod and admits it.
    let request = review::decode(REVIEW).unwrap();
    let decision = admission::validate(&request, &context, now).unwrap();
    assert!(decision.response.allowed, "{:?}", decision.response);
    assert_eq!(decision.counts, [("none", "admit")]);

    let mut group = c.benchmark_group(format!("admission ({} byte GPU-pod review)", REVIEW.len()));
    group.bench_function("bare parse into AdmissionReview<DynamicObject>", |b| {
        b.iter(|| {
            let review: AdmissionReview<DynamicObject> =
                serde_json::from_slice(black_box(REVIEW)).unwrap();
            review
        })
    });
    group.bench_function("decision: decode, evaluate, encode the answer", |b| {
        b.iter(|| {
            let request = review::decode(black_box(REVIEW)).unwrap();
            let decision = admission::validate(&request, &context, now).unwrap();
            decision.response.to_json()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
