//! Annexa's decision vs the same rules in Rego (regorus) and CEL (cel crate), on the same
//! AdmissionReview bytes. "from bytes" includes getting the input into the engine (regorus:
//! `set_input_json` of the review; cel: serde_json parse and conversion of `request.object`);
//! "pre-converted" times the evaluation alone. Annexa always starts from the bytes.
#![allow(clippy::unwrap_used)]

use annexa_peers::{Annexa, Cel, Rego, WORKLOAD_FIXTURES, expected_allowed, fixture};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let annexa = Annexa::default();
    let mut rego = Rego::default();
    let cel = Cel::default();
    for stem in WORKLOAD_FIXTURES {
        let bytes = fixture(stem);
        let expected = expected_allowed(stem);
        assert_eq!(annexa.allowed(&bytes), expected, "{stem}");
        assert_eq!(rego.allowed_from_bytes(&bytes), Ok(expected), "{stem}");
        assert_eq!(cel.allowed_from_bytes(&bytes), Ok(expected), "{stem}");
        let rego_input = Rego::input(&bytes);
        let cel_object = Cel::object(&bytes).unwrap();

        let mut group = c.benchmark_group(format!("peers/{stem} ({} B)", bytes.len()));
        group.bench_function("annexa: decode, evaluate, encode", |b| {
            b.iter(|| annexa.answer(black_box(&bytes)))
        });
        group.bench_function("regorus: from bytes", |b| {
            b.iter(|| rego.allowed_from_bytes(black_box(&bytes)).unwrap())
        });
        group.bench_function("regorus: pre-converted input", |b| {
            b.iter(|| rego.allowed(black_box(&rego_input)).unwrap())
        });
        group.bench_function("cel: from bytes", |b| {
            b.iter(|| cel.allowed_from_bytes(black_box(&bytes)).unwrap())
        });
        group.bench_function("cel: pre-converted object", |b| {
            b.iter(|| cel.allowed(black_box(&cel_object)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
