//! The webhook over real TLS on 127.0.0.1 with rcgen certificates: trust, certificate
//! rotation without dropping connections, file reload, bad input, metrics and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod webhook_support;

use annexa::webhook::certs::{self, CertStore, PemPair};
use annexa::webhook::{Limits, Metrics, StandaloneConfig, WebhookState};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::Request;
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use webhook_support::*;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn ca() -> PemPair {
    certs::generate_ca(now(), certs::CA_LIFETIME).unwrap()
}

fn serving(ca: &PemPair) -> PemPair {
    certs::issue_serving(
        ca,
        &["localhost".to_string()],
        now(),
        certs::SERVING_LIFETIME,
    )
    .unwrap()
}

fn loaded(pair: &PemPair) -> certs::LoadedCert {
    certs::load_pem(pair.cert.as_bytes(), pair.key.as_bytes()).unwrap()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

struct Server {
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    store: Arc<CertStore>,
    ca: PemPair,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<annexa::error::Result<()>>,
}

async fn start() -> Server {
    start_with(Limits::default()).await
}

async fn start_with(limits: Limits) -> Server {
    let ca = ca();
    let metrics = Arc::new(Metrics::new());
    let store = CertStore::new(loaded(&serving(&ca)), Some(metrics.clone()));
    let state = Arc::new(WebhookState {
        context: Arc::new(context()),
        metrics,
        limits,
        access: None,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(annexa::webhook::serve(
        listener,
        Some(metrics_listener),
        state,
        store.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        metrics_addr,
        store,
        ca,
        stop: Some(stop),
        task,
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Opens one TLS connection trusting only `roots`; returns the HTTP/1.1 sender bound to it
/// and the certificate the server presented.
async fn connect(
    addr: SocketAddr,
    roots: &[&PemPair],
) -> Result<(Sender, CertificateDer<'static>), String> {
    let mut store = RootCertStore::empty();
    for ca in roots {
        store.add(der(&ca.cert)).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok((sender, peer))
}

async fn send(sender: &mut Sender, path: &str, body: Vec<u8>) -> (u16, Value) {
    sender.ready().await.unwrap();
    let request = Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn good_review() -> Vec<u8> {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml-dev"},
        "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}});
    serde_json::to_vec(&review("CREATE", "alice", &pod, None)).unwrap()
}

/// The review is decided: a GPU pod without its pool placement is denied.
async fn assert_decides(sender: &mut Sender) {
    let (status, body) = send(sender, "/validate", good_review()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["allowed"], false, "{body}");
    assert!(
        body["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("A.8.22")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_trusting_the_ca_connect() {
    let server = start().await;
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut sender).await;
    let stranger = ca();
    let Err(err) = connect(server.addr, &[&stranger]).await else {
        panic!("a client that does not trust the CA must fail");
    };
    assert!(
        err.contains("invalid peer certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reaches_new_connections_and_spares_open_ones() {
    let server = start().await;
    let (mut old_connection, first) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut old_connection).await;

    // Rotate to a certificate from a new CA; clients trust both during the switch.
    let new_ca = ca();
    let next = serving(&new_ca);
    server.store.replace(loaded(&next));

    let (mut new_connection, second) = connect(server.addr, &[&server.ca, &new_ca]).await.unwrap();
    assert_eq!(
        second,
        der(&next.cert),
        "a new connection gets the new certificate"
    );
    assert_ne!(first, second);
    assert_decides(&mut new_connection).await;
    // The keep-alive connection opened before the rotation still completes requests.
    assert_decides(&mut old_connection).await;
    // A client that only knows the old CA can no longer connect.
    assert!(connect(server.addr, &[&server.ca]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let server = start().await;
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    let good = String::from_utf8(good_review()).unwrap();
    let no_uid = {
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["request"].as_object_mut().unwrap().remove("uid");
        v.to_string()
    };
    let wrong_shape = {
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["request"]["object"]["spec"] = json!({"containers": {"name": "not a list"}});
        v.to_string()
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            vec![0xff, 0x00, 0x13, 0x37, 0xde, 0xad],
            400,
            "malformed AdmissionReview JSON",
        ),
        (
            good.as_bytes()[..good.len() / 2].to_vec(),
            400,
            "truncated AdmissionReview",
        ),
        (
            good.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
                .into_bytes(),
            400,
            "apiVersion \"admission.k8s.io/v1beta1\" is not served",
        ),
        (
            no_uid.into_bytes(),
            400,
            "invalid AdmissionReview: field request: missing field `uid`",
        ),
        (
            wrong_shape.into_bytes(),
            400,
            "request.object: Pod \"p\": spec: invalid type: map, expected a sequence",
        ),
        (
            vec![b' '; 10 * 1024 * 1024],
            413,
            "AdmissionReview body of 10485760 bytes is larger than the limit of 4194304 bytes",
        ),
    ];
    for (body, code, message) in cases {
        let (status, answer) = send(&mut sender, "/validate", body).await;
        assert_eq!(status, code, "{answer}");
        assert_eq!(answer["kind"], "Status", "{answer}");
        assert_eq!(answer["code"], code);
        let text = answer["message"].as_str().unwrap();
        assert!(text.starts_with(message), "{text}");
        // Still serving, on a fresh connection too.
        let (mut fresh, _) = connect(server.addr, &[&server.ca]).await.unwrap();
        assert_decides(&mut fresh).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_chunked_body_is_refused() {
    let server = start().await;
    let mut store = RootCertStore::empty();
    store.add(der(&server.ca.cert)).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    // No content-length: the limit is enforced while reading.
    let chunks = (0..6).map(|_| {
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b' '; 1024 * 1024])))
    });
    let body = StreamBody::new(futures::stream::iter(chunks));
    let request = Request::post("/validate")
        .header("host", "localhost")
        .body(body)
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("larger than the limit of 4194304 bytes"));
}

/// The metrics text from the plain-HTTP metrics address.
async fn scrape(server: &Server) -> String {
    let tcp = TcpStream::connect(server.metrics_addr).await.unwrap();
    let (mut plain, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/metrics")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = plain.send_request(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_plain_http_address() {
    let server = start().await;
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut sender).await;
    let tcp = TcpStream::connect(server.metrics_addr).await.unwrap();
    let (mut plain, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/metrics")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = plain.send_request(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            r#"annexa_admission_decisions_total{kind="Pod",control="A.8.22",result="deny"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"annexa_admission_reviews_total{webhook="validate",kind="Pod",result="denied"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"annexa_admission_duration_seconds_count{webhook="validate"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"annexa_admission_decision_seconds_count{kind="Pod"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("annexa_webhook_connections_open 1\n"),
        "{text}"
    );
    let expiry = format!(
        "annexa_webhook_certificate_expiry_timestamp_seconds {}",
        server.store.not_after()
    );
    assert!(text.contains(&expiry), "{text}");
    // The metrics address does not serve the webhook. (Wait until the keep-alive connection
    // can take the next request: sending earlier fails with "connection was not ready".)
    plain.ready().await.unwrap();
    let request = Request::post("/validate")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(good_review())))
        .unwrap();
    assert_eq!(
        plain.send_request(request).await.unwrap().status().as_u16(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_keep_alive_connections_and_returns() {
    let mut server = start().await;
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut sender).await;
    server.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(15), server.task).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "the server did not stop: {result:?}"
    );
    // The idle keep-alive connection was closed by the server, not left open.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while !sender.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the idle keep-alive connection is still open"
    );
    assert!(
        TcpStream::connect(server.addr).await.is_err()
            || connect(server.addr, &[&server.ca]).await.is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_mode_reloads_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let ca = ca();
    let first = serving(&ca);
    std::fs::write(&cert_file, &first.cert).unwrap();
    std::fs::write(&key_file, &first.key).unwrap();
    let context_file = dir.path().join("context.yaml");
    std::fs::write(&context_file, CONTEXT).unwrap();
    // Find a free port for the stand-alone server.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let config = StandaloneConfig {
        addr,
        tls_cert_file: cert_file.clone(),
        tls_key_file: key_file.clone(),
        metrics_addr: None,
        policy_files: vec![],
        context_files: vec![context_file],
        limits: Limits::default(),
        cert_reload_interval: Duration::from_millis(100),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(annexa::webhook::run_standalone(config, async move {
        let _ = stopped.await;
    }));
    let mut attempt = 0;
    let (mut sender, presented) = loop {
        match connect(addr, &[&ca]).await {
            Ok(c) => break c,
            Err(_) if attempt < 100 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("stand-alone server did not come up: {e}"),
        }
    };
    assert_eq!(presented, der(&first.cert));
    assert_decides(&mut sender).await;

    // cert-manager renews: both files change.
    let second = serving(&ca);
    std::fs::write(&key_file, &second.key).unwrap();
    std::fs::write(&cert_file, &second.cert).unwrap();
    let mut seen = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, cert) = connect(addr, &[&ca]).await.unwrap();
        if cert == der(&second.cert) {
            seen = Some(cert);
            break;
        }
    }
    assert!(seen.is_some(), "the renewed certificate was never served");
    assert_decides(&mut sender).await;
    stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(15), task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

/// An address already taken stops the stand-alone webhook at start with a message naming it,
/// and bad certificate files with one naming both files.
#[tokio::test]
async fn an_address_in_use_or_bad_certificate_files_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let pair = serving(&ca());
    std::fs::write(&cert_file, &pair.cert).unwrap();
    std::fs::write(&key_file, &pair.key).unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let config = StandaloneConfig {
        addr,
        tls_cert_file: cert_file.clone(),
        tls_key_file: key_file.clone(),
        metrics_addr: None,
        policy_files: vec![],
        context_files: vec![],
        limits: Limits::default(),
        cert_reload_interval: Duration::from_secs(5),
    };
    let err = annexa::webhook::run_standalone(config.clone(), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {addr}: ")),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());

    std::fs::write(&key_file, "junk").unwrap();
    let err = annexa::webhook::run_standalone(config, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{} / {}: private key PEM: ",
            cert_file.display(),
            key_file.display()
        )),
        "{err}"
    );
    drop(taken);
}

type Chunks = futures::channel::mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>;

/// Starts a POST whose body arrives in chunks the test sends when it wants.
async fn open_request(server: &Server) -> (Chunks, tokio::task::JoinHandle<(u16, String)>) {
    let mut roots = RootCertStore::empty();
    roots.add(der(&server.ca.cert)).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let (chunks, rx) = futures::channel::mpsc::channel(4);
    let request = Request::post("/validate")
        .header("host", "localhost")
        .body(StreamBody::new(rx))
        .unwrap();
    let response = tokio::spawn(async move {
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    });
    (chunks, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_is_cut_at_the_deadline() {
    let server = start_with(Limits {
        deadline: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let (mut chunks, response) = open_request(&server).await;
    let body = good_review();
    chunks
        .try_send(Ok(Frame::data(Bytes::copy_from_slice(&body[..100]))))
        .unwrap();
    // The rest never comes; the server answers on its own deadline.
    let (status, text) = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 408, "{text}");
    assert!(
        text.contains("was not received and decided within 300 ms"),
        "{text}"
    );
    drop(chunks);
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut sender).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut server = start().await;
    let (mut chunks, response) = open_request(&server).await;
    let body = good_review();
    chunks
        .try_send(Ok(Frame::data(Bytes::copy_from_slice(&body[..100]))))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.take().unwrap().send(()).unwrap();
    // New connections are refused while the request in flight completes.
    let mut refused = false;
    for _ in 0..50 {
        if connect(server.addr, &[&server.ca]).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the listener still accepts after shutdown");
    chunks
        .try_send(Ok(Frame::data(Bytes::copy_from_slice(&body[100..]))))
        .unwrap();
    drop(chunks);
    let (status, text) = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("A.8.22"), "{text}");
    let stopped = tokio::time::timeout(Duration::from_secs(15), server.task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

/// A TLS connection that completes its handshake and then sends nothing.
async fn silent_tls(server: &Server) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(der(&server.ca.cert)).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes the connection; true when it did within 10 s.
async fn closed_by_server(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed_by_the_server() {
    let server = start_with(Limits {
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    // TLS done, then nothing: closed after the first-request timeout.
    let mut silent = silent_tls(&server).await;
    assert!(
        closed_by_server(&mut silent).await,
        "a silent connection stayed open"
    );
    // HTTP/1 keep-alive after a request: closed after the idle timeout.
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut sender).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while !sender.is_closed() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle keep-alive connection stayed open");
    // The server still serves new connections.
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut sender).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_longest_idle_connection_makes_room() {
    let server = start_with(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let mut oldest = silent_tls(&server).await;
    let (mut second, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut second).await;
    // A third connection is served; the connection idle the longest was closed for it.
    let (mut third, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut third).await;
    assert!(
        closed_by_server(&mut oldest).await,
        "the oldest idle connection stayed open"
    );
    assert!(
        scrape(&server)
            .await
            .contains("annexa_webhook_connections_open 2\n"),
        "{}",
        scrape(&server).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_over_the_in_flight_bytes_are_shed_at_once_with_429() {
    let server = start_with(Limits {
        max_body_bytes: 64 * 1024,
        max_in_flight_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    // One review holds the whole 64 KiB budget, less a few bytes, while the rest of its body
    // never comes.
    let (mut chunks, stalled) = open_request(&server).await;
    chunks
        .try_send(Ok(Frame::data(Bytes::from(vec![b' '; 64 * 1024 - 16]))))
        .unwrap();
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    // Health passes no cap.
    sender.ready().await.unwrap();
    let health = sender
        .send_request(
            Request::get("/healthz")
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let mut shed = None;
    for _ in 0..100 {
        let (status, answer) = send(&mut sender, "/validate", good_review()).await;
        if status == 429 {
            shed = Some(answer);
            break;
        }
        // The stalled chunk may not have been read yet.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = shed.expect("a review over the bytes budget was not shed");
    assert_eq!(shed["reason"], "TooManyRequests", "{shed}");
    assert!(
        shed["message"]
            .as_str()
            .unwrap()
            .contains("at its cap of 65536 body bytes in flight"),
        "{shed}"
    );
    assert!(
        scrape(&server)
            .await
            .contains(r#"annexa_webhook_shed_total{cap="bytes"} "#),
        "{}",
        scrape(&server).await
    );
    // The stalled review ends (its client goes away): its bytes are released.
    drop(chunks);
    let _ = stalled.await;
    assert_decides(&mut sender).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sender_holds_no_decision_place() {
    // One place for decisions; a client trickling its body does not take it.
    let server = start_with(Limits {
        max_in_flight: 1,
        ..Limits::default()
    })
    .await;
    let (mut chunks, stalled) = open_request(&server).await;
    let body = good_review();
    chunks
        .try_send(Ok(Frame::data(Bytes::copy_from_slice(&body[..100]))))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut sender, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    assert_decides(&mut sender).await;
    chunks
        .try_send(Ok(Frame::data(Bytes::copy_from_slice(&body[100..]))))
        .unwrap();
    drop(chunks);
    let (status, text) = stalled.await.unwrap();
    assert_eq!(status, 200, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let server = start_with(Limits {
        max_connections_per_peer: 1,
        ..Limits::default()
    })
    .await;
    let (mut first, _) = connect(server.addr, &[&server.ca]).await.unwrap();
    // The second connection from the same address is closed before its TLS handshake.
    assert!(connect(server.addr, &[&server.ca]).await.is_err());
    assert!(
        scrape(&server)
            .await
            .contains(r#"annexa_webhook_shed_total{cap="connections"} 1"#)
    );
    assert_decides(&mut first).await;
}
