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

    /// The whole AdmissionReview answer, written by `serde_json` from [`ReviewOut`], a borrowed
    /// view. A hand-written encoder of the same bytes was measured against it and removed: the
    /// whole decision was at most a few per cent faster with it (BENCHMARKS.md, "The answer's
    /// encoder").
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, a bool, a u16 and string maps: serializing cannot fail.
        serde_json::to_vec(&ReviewOut {
            api_version: REVIEW_API_VERSION,
            kind: REVIEW_KIND,
            response: self,
        })
        .unwrap_or_default()
    }
}

/// The AdmissionReview answer around a borrowed [`Response`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a Response,
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

    /// The answer's bytes, as the API server reads them: field names, what is left out, escapes.
    #[test]
    fn answers_are_written_as_the_api_server_reads_them() {
        assert_eq!(
            String::from_utf8(Response::allow("u1").to_json()).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u1","allowed":true}}"#
        );
        let mut deny = Response::deny(
            "u2",
            403,
            "Forbidden",
            "Model \"m\" is not compliant:\tA.8.9 \\ é\u{1}".to_string(),
        );
        deny.warnings = vec!["first".to_string(), "second".to_string()];
        assert_eq!(
            String::from_utf8(deny.to_json()).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u2","allowed":false,"status":{"code":403,"reason":"Forbidden","message":"Model \"m\" is not compliant:\tA.8.9 \\ é\u0001"},"warnings":["first","second"]}}"#
        );
        let mut patched = Response::allow("u3");
        patched.patch = Some("W10=".to_string());
        patched.patch_type = Some("JSONPatch");
        patched.audit_annotations = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), String::new()),
        ]);
        assert_eq!(
            String::from_utf8(patched.to_json()).unwrap(),
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u3","allowed":true,"patch":"W10=","patchType":"JSONPatch","auditAnnotations":{"a":"","b":"2"}}}"#
        );
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
