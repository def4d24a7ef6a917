//! The peers encode the same rules: on every workload fixture, Annexa, the Rego policy and the
//! CEL policy reach the verdict the fixture's name says, and no expression errs.
#![allow(clippy::unwrap_used)]

use annexa_peers::{Annexa, Cel, Rego, WORKLOAD_FIXTURES, expected_allowed, fixture};

#[test]
fn every_engine_reaches_the_expected_verdict_on_every_fixture() {
    let annexa = Annexa::default();
    let mut rego = Rego::default();
    let cel = Cel::default();
    for stem in WORKLOAD_FIXTURES {
        let bytes = fixture(stem);
        let expected = expected_allowed(stem);
        assert_eq!(annexa.allowed(&bytes), expected, "annexa on {stem}");
        let rego_allowed = rego.allowed_from_bytes(&bytes).unwrap();
        assert_eq!(
            rego_allowed,
            expected,
            "rego on {stem}: {:?}",
            rego.violations()
        );
        assert_eq!(
            rego.allowed(&Rego::input(&bytes)).unwrap(),
            expected,
            "rego (pre-converted input) on {stem}"
        );
        let failures = cel.failures(Cel::object(&bytes).unwrap()).unwrap();
        assert_eq!(failures.is_empty(), expected, "cel on {stem}: {failures:?}");
        assert_eq!(
            cel.allowed(&Cel::object(&bytes).unwrap()).unwrap(),
            expected,
            "cel (pre-converted input) on {stem}"
        );
    }
}

/// The deny fixtures break several rules: each engine reports more than one violation, so a
/// deny is not reached by a single broken rule that fails everything.
#[test]
fn deny_fixtures_break_several_rules_in_every_engine() {
    let mut rego = Rego::default();
    let cel = Cel::default();
    for stem in ["gpu-pod-deny", "deployment-deny"] {
        let bytes = fixture(stem);
        rego.allowed_from_bytes(&bytes).unwrap();
        let violations = rego.violations().unwrap();
        assert!(violations.len() >= 5, "rego on {stem}: {violations:?}");
        let failures = cel.failures(Cel::object(&bytes).unwrap()).unwrap();
        assert!(failures.len() >= 5, "cel on {stem}: {failures:?}");
    }
}
