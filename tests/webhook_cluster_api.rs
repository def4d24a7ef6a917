//! Self-managed certificates against an in-memory fake of the API server's REST surface
//! (Secrets and webhook configurations: GET, POST, PUT with resourceVersion conflicts):
//! creation, adoption when another replica wins the race, renewal, caBundle patching.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use annexa::webhook::certs::{self, CertificateConfig, Lifetimes, secret};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRETS: &str = "/api/v1/namespaces/annexa-system/secrets";
const VALIDATING: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
const MUTATING: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";

#[derive(Default)]
struct Fake {
    objects: HashMap<String, Value>,
    /// Writes seen, as `METHOD path`.
    writes: Vec<String>,
    /// On the next create, store this object instead and answer 409 (another replica won).
    lose_next_create_to: Option<Value>,
    /// Before the next PATCH, someone else reverses the order of the object's webhooks.
    reorder_before_next_patch: bool,
    /// Bodies of the PATCH requests.
    patches: Vec<Value>,
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "code": code, "message": reason})
}

fn client(fake: Arc<Mutex<Fake>>) -> kube::Client {
    let service = tower::service_fn(move |request: Request<kube::client::Body>| {
        let fake = fake.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let path = parts.uri.path().to_string();
            let mut fake = fake.lock().unwrap();
            let (code, value) = match parts.method {
                Method::GET => match fake.objects.get(&path) {
                    Some(v) => (200, v.clone()),
                    None => (404, status(404, "NotFound")),
                },
                Method::POST => {
                    let mut object: Value = serde_json::from_slice(&bytes).unwrap();
                    let key = format!("{path}/{}", object["metadata"]["name"].as_str().unwrap());
                    fake.writes.push(format!("POST {key}"));
                    if let Some(mut winner) = fake.lose_next_create_to.take() {
                        winner["metadata"]["resourceVersion"] = json!("1");
                        fake.objects.insert(key, winner);
                        (409, status(409, "AlreadyExists"))
                    } else if let std::collections::hash_map::Entry::Vacant(slot) =
                        fake.objects.entry(key)
                    {
                        object["metadata"]["resourceVersion"] = json!("1");
                        slot.insert(object.clone());
                        (201, object)
                    } else {
                        (409, status(409, "AlreadyExists"))
                    }
                }
                Method::PUT => {
                    let mut object: Value = serde_json::from_slice(&bytes).unwrap();
                    fake.writes.push(format!("PUT {path}"));
                    let current = fake.objects.get(&path).cloned();
                    match current {
                        None => (404, status(404, "NotFound")),
                        Some(c)
                            if c["metadata"]["resourceVersion"]
                                != object["metadata"]["resourceVersion"] =>
                        {
                            (409, status(409, "Conflict"))
                        }
                        Some(c) => {
                            let version: u64 = c["metadata"]["resourceVersion"]
                                .as_str()
                                .unwrap()
                                .parse()
                                .unwrap();
                            object["metadata"]["resourceVersion"] =
                                json!((version + 1).to_string());
                            fake.objects.insert(path, object.clone());
                            (200, object)
                        }
                    }
                }
                Method::PATCH => {
                    fake.writes.push(format!("PATCH {path}"));
                    assert_eq!(
                        parts.headers["content-type"], "application/json-patch+json",
                        "a targeted JSON patch"
                    );
                    let ops: Value = serde_json::from_slice(&bytes).unwrap();
                    fake.patches.push(ops.clone());
                    if std::mem::take(&mut fake.reorder_before_next_patch)
                        && let Some(object) = fake.objects.get_mut(&path)
                    {
                        object["webhooks"].as_array_mut().unwrap().reverse();
                    }
                    match fake.objects.get(&path).cloned() {
                        None => (404, status(404, "NotFound")),
                        Some(mut object) => {
                            let ops: json_patch::Patch = serde_json::from_value(ops).unwrap();
                            match json_patch::patch(&mut object, &ops) {
                                Err(_) => (422, status(422, "Invalid")),
                                Ok(()) => {
                                    fake.objects.insert(path, object.clone());
                                    (200, object)
                                }
                            }
                        }
                    }
                }
                _ => (405, status(405, "MethodNotAllowed")),
            };
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    kube::Client::new(service, "annexa-system")
}

fn config() -> CertificateConfig {
    CertificateConfig {
        namespace: "annexa-system".into(),
        service_name: "annexa-webhook".into(),
        secret_name: "annexa-webhook-certs".into(),
        validating_configurations: vec!["annexa".into(), "not-installed".into()],
        mutating_configurations: vec!["annexa".into()],
        lifetimes: Lifetimes::default(),
        check_interval: Duration::from_secs(600),
    }
}

const NOW: i64 = 1_760_000_000;
const DAY: i64 = 86_400;

fn secret_path() -> String {
    format!("{SECRETS}/annexa-webhook-certs")
}

#[tokio::test]
async fn creates_the_secret_once_and_reuses_it() {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let client = client(fake.clone());
    let first = secret::ensure_certificates(&client, &config(), NOW)
        .await
        .unwrap();
    assert_eq!(
        fake.lock().unwrap().writes,
        [format!("POST {}", secret_path())]
    );
    let stored: Secret =
        serde_json::from_value(fake.lock().unwrap().objects[&secret_path()].clone()).unwrap();
    assert_eq!(stored.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(secret::bundle_from_secret(&stored), Some(first.clone()));
    // A second replica (or the next check) adopts it without writing.
    let again = secret::ensure_certificates(&client, &config(), NOW + DAY)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(fake.lock().unwrap().writes.len(), 1);
}

#[tokio::test]
async fn the_replica_that_loses_the_race_adopts_the_winners_certificates() {
    let names = certs::service_dns_names("annexa-webhook", "annexa-system");
    let winner = certs::renew(None, &names, NOW, Lifetimes::default())
        .unwrap()
        .unwrap();
    let winner_secret = serde_json::to_value(Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("annexa-webhook-certs".into()),
            ..Default::default()
        },
        data: Some(secret::secret_data(&winner)),
        ..Secret::default()
    })
    .unwrap();
    let fake = Arc::new(Mutex::new(Fake {
        lose_next_create_to: Some(winner_secret),
        ..Fake::default()
    }));
    let adopted = secret::ensure_certificates(&client(fake.clone()), &config(), NOW)
        .await
        .unwrap();
    assert_eq!(adopted, winner);
}

#[tokio::test]
async fn a_serving_certificate_due_is_renewed_under_the_same_ca() {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let client = client(fake.clone());
    let old = secret::ensure_certificates(&client, &config(), NOW)
        .await
        .unwrap();
    let renewed = secret::ensure_certificates(&client, &config(), NOW + 250 * DAY)
        .await
        .unwrap();
    assert_eq!(renewed.ca, old.ca);
    assert_ne!(renewed.serving, old.serving);
    assert_eq!(
        fake.lock().unwrap().writes.last().unwrap(),
        &format!("PUT {}", secret_path())
    );
    let stored: Secret =
        serde_json::from_value(fake.lock().unwrap().objects[&secret_path()].clone()).unwrap();
    assert_eq!(secret::bundle_from_secret(&stored), Some(renewed));
}

#[tokio::test]
async fn ca_bundle_is_patched_into_annexas_webhook_configurations() {
    let webhook = |name: &str| json!({"name": name, "clientConfig": {"service": {"name": "annexa-webhook", "namespace": "annexa-system", "path": "/validate"}}, "admissionReviewVersions": ["v1"], "sideEffects": "None"});
    let mut fake = Fake::default();
    fake.objects.insert(
        format!("{VALIDATING}/annexa"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "annexa", "resourceVersion": "7"}, "webhooks": [webhook("kinds.annexa.dev"), webhook("workloads.annexa.dev")]}),
    );
    fake.objects.insert(
        format!("{MUTATING}/annexa"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "annexa", "resourceVersion": "3"}, "webhooks": [webhook("digest.annexa.dev")]}),
    );
    let fake = Arc::new(Mutex::new(fake));
    let client = client(fake.clone());
    let bundle = secret::ensure_certificates(&client, &config(), NOW)
        .await
        .unwrap();
    secret::patch_ca_bundles(&client, &config(), &bundle.ca_bundle)
        .await
        .unwrap();
    {
        let fake = fake.lock().unwrap();
        for path in [format!("{VALIDATING}/annexa"), format!("{MUTATING}/annexa")] {
            for hook in fake.objects[&path]["webhooks"].as_array().unwrap() {
                let encoded = hook["clientConfig"]["caBundle"].as_str().unwrap();
                use base64::Engine as _;
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap();
                assert_eq!(pem, bundle.ca_bundle.as_bytes(), "{path}");
            }
        }
        // One targeted patch per configuration, never a PUT of the whole object: it touches
        // caBundle and nothing else, each guarded by the webhook's name.
        assert_eq!(
            fake.writes,
            [
                format!("POST {}", secret_path()),
                format!("PATCH {VALIDATING}/annexa"),
                format!("PATCH {MUTATING}/annexa"),
            ]
        );
        let paths: Vec<String> = fake.patches[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| {
                format!(
                    "{} {}",
                    op["op"].as_str().unwrap(),
                    op["path"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            paths,
            [
                "test /webhooks/0/name",
                "add /webhooks/0/clientConfig/caBundle",
                "test /webhooks/1/name",
                "add /webhooks/1/clientConfig/caBundle"
            ]
        );
    }
    // Already current: nothing written.
    secret::patch_ca_bundles(&client, &config(), &bundle.ca_bundle)
        .await
        .unwrap();
    assert_eq!(
        fake.lock()
            .unwrap()
            .writes
            .iter()
            .filter(|w| w.starts_with("PATCH"))
            .count(),
        2
    );
}

#[tokio::test]
async fn a_ca_bundle_patch_that_races_another_writer_is_re_read_and_retried() {
    let webhook = |name: &str, bundle: Option<&str>| {
        let mut hook = json!({"name": name, "clientConfig": {"service": {"name": "annexa-webhook", "namespace": "annexa-system", "path": "/validate"}}, "admissionReviewVersions": ["v1"], "sideEffects": "None"});
        if let Some(b) = bundle {
            hook["clientConfig"]["caBundle"] = json!(b);
        }
        hook
    };
    let mut fake = Fake::default();
    // The first webhook already carries the current bundle (another replica got there first),
    // the second does not; a third party reorders them before our patch lands.
    let bundle_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle_pem);
    fake.objects.insert(
        format!("{VALIDATING}/annexa"),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "annexa", "resourceVersion": "7"}, "webhooks": [webhook("kinds.annexa.dev", Some(&encoded)), webhook("workloads.annexa.dev", None)]}),
    );
    fake.reorder_before_next_patch = true;
    let fake = Arc::new(Mutex::new(fake));
    let client = client(fake.clone());
    secret::patch_ca_bundles(&client, &config(), bundle_pem)
        .await
        .unwrap();
    let fake = fake.lock().unwrap();
    assert_eq!(
        fake.writes,
        [
            format!("PATCH {VALIDATING}/annexa"),
            format!("PATCH {VALIDATING}/annexa")
        ],
        "the guarded patch failed once (422) and was retried after re-reading"
    );
    for hook in fake.objects[&format!("{VALIDATING}/annexa")]["webhooks"]
        .as_array()
        .unwrap()
    {
        assert_eq!(hook["clientConfig"]["caBundle"], encoded, "{hook}");
    }
    // The retry wrote only the webhook that lacked the bundle, at its new index.
    let retry: Vec<&str> = fake.patches[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        retry,
        ["/webhooks/0/name", "/webhooks/0/clientConfig/caBundle"]
    );
}
