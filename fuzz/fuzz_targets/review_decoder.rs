//! Feeds arbitrary bytes to the AdmissionReview decoder and, when they decode, to both
//! handlers. Any panic is a bug: the webhook must answer every input with a decision or 400.
#![no_main]

use annexa::webhook::{StaticContext, admission, review};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let context = StaticContext::default();
    if let Ok(request) = review::decode(data) {
        let _ = admission::validate(&request, &context, jiff::Timestamp::UNIX_EPOCH);
        let _ = admission::mutate(&request);
    }
});
