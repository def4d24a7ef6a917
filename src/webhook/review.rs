//! Decoding `admission.k8s.io/v1` AdmissionReview requests and encoding responses.
//!
//! The review is decoded once into a borrowed view: the object and old object stay raw JSON
//! (`&RawValue`) until a handler knows it governs the kind, so requests for kinds Annexa does
//! not govern never pay for decoding the object. Every error names the field and is answered
//! with HTTP 400; nothing here panics on any input.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The only AdmissionReview version Annexa serves (`admissionReviewVersions: [v1]`).
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
pub const REVIEW_KIND: &str = "AdmissionReview";

/// A request the webhook cannot read: answered with HTTP 400 and this message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReviewError {
    pub message: String,
}

impl ReviewError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(borrow, default)]
    request: Option<Request<'a>>,
}

/// The operation of an admission request.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

// Strings borrow from the request body (`Cow` owns only those with escapes): a review is
// decoded once per request and mostly read, so copying every field would be wasted.

/// Group, version and kind of the object under review.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Gvk<'a> {
    #[serde(borrow, default)]
    pub group: Cow<'a, str>,
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo<'a> {
    #[serde(borrow, default)]
    pub username: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub groups: Option<Vec<Cow<'a, str>>>,
    /// Read only to ask the API server what the user may do (SubjectAccessReview).
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
    #[serde(default)]
    pub extra: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// The fields of `request` the webhook reads. `object` and `oldObject` are kept raw.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Gvk<'a>,
    #[serde(borrow, default)]
    pub sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    pub operation: Operation,
    #[serde(borrow, default)]
    pub user_info: UserInfo<'a>,
    #[serde(borrow, default)]
    pub object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub old_object: Option<&'a RawValue>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl Request<'_> {
    pub fn username(&self) -> Option<&str> {
        self.user_info.username.as_deref()
    }
}

/// Decodes an AdmissionReview request body. Errors name the field that is wrong.
pub fn decode(body: &[u8]) -> Result<Request<'_>, ReviewError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ReviewError::new(
            "empty body: expected an admission.k8s.io/v1 AdmissionReview",
        ));
    }
    let review: ReviewIn<'_> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return Err(describe(body, e)),
    };
    match review.kind.as_deref() {
        Some(REVIEW_KIND) => {}
        Some(other) => {
            return Err(ReviewError::new(format!(
                "kind {other:?} is not an AdmissionReview"
            )));
        }
        None => {
            return Err(ReviewError::new(
                "kind is missing: expected AdmissionReview",
            ));
        }
    }
    match review.api_version.as_deref() {
        Some(REVIEW_API_VERSION) => {}
        Some(other) => {
            return Err(ReviewError::new(format!(
                "apiVersion {other:?} is not served: Annexa reads {REVIEW_API_VERSION} only (set admissionReviewVersions: [v1])"
            )));
        }
        None => {
            return Err(ReviewError::new(format!(
                "apiVersion is missing: expected {REVIEW_API_VERSION}"
            )));
        }
    }
    let Some(request) = review.request else {
        return Err(ReviewError::new(
            "request is missing from the AdmissionReview",
        ));
    };
    if request.uid.trim().is_empty() {
        return Err(ReviewError::new("request.uid is empty"));
    }
    Ok(request)
}

/// Turns a JSON error into a message naming the field (decoded a second time with path
/// tracking: only bad requests pay for it).
fn describe(body: &[u8], error: serde_json::Error) -> ReviewError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Eof => ReviewError::new(format!(
            "truncated AdmissionReview: the JSON ends early ({} bytes received)",
            body.len()
        )),
        Category::Syntax | Category::Io => {
            ReviewError::new(format!("malformed AdmissionReview JSON: {error}"))
        }
        Category::Data => {
            let mut de = serde_json::Deserializer::from_slice(body);
            match serde_path_to_error::deserialize::<_, ReviewIn<'_>>(&mut de) {
                Err(e) if !e.path().to_string().is_empty() && e.path().to_string() != "." => {
                    ReviewError::new(format!(
                        "invalid AdmissionReview: field {}: {}",
                        e.path(),
                        strip_position(&e.inner().to_string())
                    ))
                }
                _ => ReviewError::new(format!(
                    "invalid AdmissionReview: {}",
                    strip_position(&error.to_string())
                )),
            }
        }
    }
}

fn strip_position(message: &str) -> &str {
    message.find(" at line ").map_or(message, |i| &message[..i])
}

/// `metav1.Status` inside a response (and the body of 4xx answers).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

/// The `response` of an AdmissionReview.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of the JSONPatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

impl Response {
    /// Admits the request, unchanged.
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_string(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    /// Refuses the request with a message for the user.
    pub fn deny(uid: &str, code: u16, reason: &'static str, message: String) -> Self {
        Self {
            allowed: false,
            status: Some(Status {
                code,
                reason,
                message,
            }),
            ..Self::allow(uid)
        }
    }

    /// The whole AdmissionReview answer: exactly the bytes `serde_json` writes for it (a test
    /// compares them), written into one buffer sized up front, with strings escaped eight bytes
    /// at a time where nothing needs escaping (denials can run to kilobytes).
    pub fn to_json(&self) -> Vec<u8> {
        let strings = self.uid.len()
            + self.status.as_ref().map_or(0, |s| s.message.len())
            + self.patch.as_ref().map_or(0, String::len)
            + self.warnings.iter().map(|w| w.len() + 3).sum::<usize>()
            + self
                .audit_annotations
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>();
        // Fixed text, plus room for a few escapes.
        let mut out = Vec::with_capacity(256 + strings + strings / 16);
        out.extend_from_slice(b"{\"apiVersion\":");
        write_json_string(&mut out, REVIEW_API_VERSION);
        out.extend_from_slice(b",\"kind\":");
        write_json_string(&mut out, REVIEW_KIND);
        out.extend_from_slice(b",\"response\":{\"uid\":");
        write_json_string(&mut out, &self.uid);
        out.extend_from_slice(if self.allowed {
            b",\"allowed\":true"
        } else {
            b",\"allowed\":false"
        });
        if let Some(status) = &self.status {
            out.extend_from_slice(b",\"status\":{\"code\":");
            write_decimal(&mut out, status.code);
            out.extend_from_slice(b",\"reason\":");
            write_json_string(&mut out, status.reason);
            out.extend_from_slice(b",\"message\":");
            write_json_string(&mut out, &status.message);
            out.push(b'}');
        }
        if let Some(patch) = &self.patch {
            out.extend_from_slice(b",\"patch\":");
            write_json_string(&mut out, patch);
        }
        if let Some(patch_type) = self.patch_type {
            out.extend_from_slice(b",\"patchType\":");
            write_json_string(&mut out, patch_type);
        }
        if !self.warnings.is_empty() {
            out.extend_from_slice(b",\"warnings\":[");
            for (i, warning) in self.warnings.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(&mut out, warning);
            }
            out.push(b']');
        }
        if !self.audit_annotations.is_empty() {
            out.extend_from_slice(b",\"auditAnnotations\":{");
            for (i, (key, value)) in self.audit_annotations.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(&mut out, key);
                out.push(b':');
                write_json_string(&mut out, value);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"}}");
        out
    }
}

/// The AdmissionReview answer as `serde_json` writes it from a derived `Serialize` on a borrowed
/// view: the reference [`Response::to_json`] must equal byte for byte, and the alternative its
/// speed is measured against (BENCHMARKS.md, "The answer's encoder").
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a Response,
}

impl Response {
    /// [`Response::to_json`]'s bytes, written by `serde_json` (see [`ReviewOut`]).
    pub fn to_json_serde(&self) -> Vec<u8> {
        serde_json::to_vec(&ReviewOut {
            api_version: REVIEW_API_VERSION,
            kind: REVIEW_KIND,
            response: self,
        })
        .unwrap_or_default()
    }
}

fn write_decimal(out: &mut Vec<u8>, number: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    let mut rest = number;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// How `serde_json` escapes each byte in a string: 0 for not at all, `u` for `\u00xx`, else the
/// letter after the backslash.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Writes a JSON string as `serde_json` does: `"` and `\` and control characters escaped,
/// everything else (non-ASCII too) as is.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW_BITS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    /// The high bit of each of eight bytes that needs escaping: below 0x20, a quote or a
    /// backslash. Exact: no sum carries from one byte into the next.
    fn escapes(chunk: u64) -> u64 {
        let zero = |x: u64| !(((x & LOW_BITS) + LOW_BITS) | x) & HIGH_BITS;
        let at_least_space = ((chunk & LOW_BITS) + ONES * (0x80 - 0x20)) | chunk;
        (!at_least_space & HIGH_BITS)
            | zero(chunk ^ (ONES * u64::from(b'"')))
            | zero(chunk ^ (ONES * u64::from(b'\\')))
    }
    fn escape(out: &mut Vec<u8>, byte: u8) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match ESCAPES[usize::from(byte)] {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            letter => out.extend_from_slice(&[b'\\', letter]),
        }
    }
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut at = 0;
    // Eight bytes at a time: copied whole when clean (a fixed-size copy, no call), else up to
    // the first byte to escape.
    while let Some(chunk) = bytes[at..].first_chunk::<8>() {
        let mask = escapes(u64::from_le_bytes(*chunk));
        if mask == 0 {
            out.extend_from_slice(chunk);
            at += 8;
            continue;
        }
        let clean = (mask.trailing_zeros() / 8) as usize;
        for &byte in &chunk[..clean] {
            out.push(byte);
        }
        escape(out, chunk[clean]);
        at += clean + 1;
    }
    for &byte in &bytes[at..] {
        if ESCAPES[usize::from(byte)] == 0 {
            out.push(byte);
        } else {
            escape(out, byte);
        }
    }
    out.push(b'"');
}

/// A `metav1.Status` body for an HTTP error answer (the API server shows its message).
pub fn error_status_json(code: u16, reason: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","userInfo":{"username":"alice"},"object":{"kind":"Pod"}}}"#;

    #[test]
    fn decodes_a_minimal_review() {
        let r = decode(MINIMAL.as_bytes()).unwrap();
        assert_eq!(r.uid, "u1");
        assert_eq!(r.kind.kind, "Pod");
        assert_eq!(r.operation, Operation::Create);
        assert_eq!(r.username(), Some("alice"));
        assert_eq!(r.object.unwrap().get(), r#"{"kind":"Pod"}"#);
        assert!(r.old_object.is_none());
    }

    #[test]
    fn null_old_object_is_none() {
        let body = MINIMAL.replace(r#""object""#, r#""oldObject":null,"object""#);
        assert!(decode(body.as_bytes()).unwrap().old_object.is_none());
    }

    /// What `to_json` must write: `serde_json` encoding the derived `Serialize`.
    fn reference_json(response: &Response) -> Vec<u8> {
        response.to_json_serde()
    }

    #[test]
    fn responses_are_encoded_as_serde_json_encodes_them() {
        let texts = [
            String::new(),
            "plain text longer than eight bytes, twice over".to_string(),
            r#"Model "m" is not compliant: A.8.9 "x\y"; tab	end"#.to_string(),
            (0u8..0x80).map(char::from).collect(),
            "unicode é ☃ 😀 \u{7f} \u{80} \u{2028}\"".to_string(),
            "\"\"\"\"\"\"\"\"\"".to_string(),
        ];
        let mut responses = vec![Response::allow("u1")];
        for text in &texts {
            let mut deny = Response::deny(text, 403, "Forbidden", text.clone());
            deny.warnings = vec![text.clone(), "second".to_string()];
            responses.push(deny);
            let mut patched = Response::allow(text);
            patched.patch = Some(text.clone());
            patched.patch_type = Some("JSONPatch");
            patched.audit_annotations = BTreeMap::from([
                (text.clone(), text.clone()),
                ("a".to_string(), String::new()),
            ]);
            responses.push(patched);
        }
        responses.push(Response::deny("u", 0, "Invalid", String::new()));
        responses.push(Response::deny("u", 65535, "Invalid", String::new()));
        for response in responses {
            assert_eq!(
                String::from_utf8(response.to_json()).unwrap(),
                String::from_utf8(reference_json(&response)).unwrap()
            );
        }
    }

    #[test]
    fn every_ascii_character_is_escaped_as_serde_json_escapes_it_wherever_it_falls() {
        for byte in 0u8..0x80 {
            for before in 0..17 {
                let text = format!(
                    "{}{}{}",
                    "a".repeat(before),
                    char::from(byte),
                    "é".repeat(9)
                );
                let mut out = Vec::new();
                write_json_string(&mut out, &text);
                assert_eq!(out, serde_json::to_vec(&text).unwrap(), "{text:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(
            text in "(\\PC|[\\x00-\\x1f\"\\\\]){0,64}",
            other in proptest::prelude::any::<String>(),
        ) {
            for text in [&text, &other] {
                let mut out = Vec::new();
                write_json_string(&mut out, text);
                proptest::prop_assert_eq!(out, serde_json::to_vec(text).unwrap());
            }
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("", "empty body"),
            ("garbage", "malformed AdmissionReview JSON"),
            (&MINIMAL[..40], "truncated AdmissionReview"),
            (
                &MINIMAL.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1"),
                "apiVersion \"admission.k8s.io/v1beta1\" is not served",
            ),
            (
                &MINIMAL.replace("\"AdmissionReview\"", "\"Pod\""),
                "kind \"Pod\" is not an AdmissionReview",
            ),
            (
                &MINIMAL.replace("\"uid\":\"u1\",", ""),
                "field request: missing field `uid`",
            ),
            (
                &MINIMAL.replace("\"uid\":\"u1\"", "\"uid\":\"\""),
                "request.uid is empty",
            ),
            (
                &MINIMAL.replace("\"CREATE\"", "\"PATCH\""),
                "field request.operation: unknown variant `PATCH`",
            ),
            (
                &MINIMAL.replace("\"uid\":\"u1\"", "\"uid\":7"),
                "field request.uid: invalid type: integer `7`",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "request is missing",
            ),
            ("[1,2]", "invalid AdmissionReview"),
        ];
        for (body, expected) in cases {
            let err = decode(body.as_bytes()).unwrap_err();
            assert!(err.message.contains(expected), "{body:?}: {err}");
        }
    }
}
