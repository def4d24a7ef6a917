//! The HTTP side: an axum router for `/validate`, `/mutate`, `/healthz`, `/readyz`, a separate
//! router for `/metrics`, and the TLS accept loop with graceful shutdown.

use super::access::{self, AccessReviewer};
use super::admission::{self, Decision};
use super::context::AdmissionContext;
use super::metrics::Metrics;
use super::review::{self, ReviewError};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Default cap on request bodies. The API server sends at most object + oldObject of ~1.5 MiB
/// each (etcd's limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default server-side deadline, inside the configurations' `timeoutSeconds: 5`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(4);
/// Time kept back from the deadline for the answer after access reviews.
const ACCESS_REVIEW_MARGIN: Duration = Duration::from_millis(250);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            deadline: DEFAULT_DEADLINE,
        }
    }
}

/// What the handlers share.
pub struct WebhookState {
    pub context: Arc<dyn AdmissionContext>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Verifies, as the requesting user, what Annexa will do on their behalf (SubjectAccessReview
    /// in `annexa run`); None where no controller acts (stand-alone webhook).
    pub access: Option<Arc<dyn AccessReviewer>>,
}

/// The webhook's HTTPS routes.
pub fn router(state: Arc<WebhookState>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The plain-HTTP metrics routes.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(metrics): State<Arc<Metrics>>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(metrics)
}

async fn readyz(State(state): State<Arc<WebhookState>>) -> Response {
    if state.context.ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "context not synced yet").into_response()
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An HTTP error answered with a `metav1.Status` body, whose message the API server shows.
fn error(status: StatusCode, reason: &str, message: &str) -> Response {
    json(
        status,
        review::error_status_json(status.as_u16(), reason, message),
    )
}

enum Failure {
    TooLarge(u64),
    Read(String),
    Bad(ReviewError),
    Deadline,
}

/// Bytes of the body beyond the limit that are still read and dropped so the client gets the
/// 413 instead of a reset connection; past this the connection is closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

async fn read_body(body: Body, limit: usize, declared: Option<u64>) -> Result<Bytes, Failure> {
    if let Some(len) = declared.filter(|l| *l > limit as u64) {
        drain(body, DRAIN_LIMIT).await;
        return Err(Failure::TooLarge(len));
    }
    let mut body = body;
    let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(16 * 1024, |l| l as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::Read(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                let seen = (buf.len() + data.len()) as u64;
                drain(body, DRAIN_LIMIT).await;
                return Err(Failure::TooLarge(seen));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

async fn drain(mut body: Body, mut budget: u64) {
    while let Some(Ok(frame)) = body.frame().await {
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        if len >= budget {
            return;
        }
        budget -= len;
    }
}

async fn validate(State(state): State<Arc<WebhookState>>, request: Request<Body>) -> Response {
    handle(&state, "validate", request, |review, state| {
        admission::validate(review, state.context.as_ref(), jiff::Timestamp::now())
    })
    .await
}

async fn mutate(State(state): State<Arc<WebhookState>>, request: Request<Body>) -> Response {
    handle(&state, "mutate", request, |review, _| {
        admission::mutate(review)
    })
    .await
}

async fn handle(
    state: &WebhookState,
    webhook: &'static str,
    request: Request<Body>,
    decide: impl Fn(&review::Request<'_>, &WebhookState) -> Result<Decision, ReviewError>,
) -> Response {
    let start = Instant::now();
    let limits = state.limits;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let work = async {
        let body = read_body(request.into_body(), limits.max_body_bytes, declared).await?;
        let review = review::decode(&body).map_err(Failure::Bad)?;
        let mut decision = decide(&review, state).map_err(Failure::Bad)?;
        if let Some(reviewer) = &state.access {
            // Leave a margin inside the deadline to write the answer.
            let budget = limits
                .deadline
                .saturating_sub(start.elapsed())
                .saturating_sub(ACCESS_REVIEW_MARGIN);
            decision = access::confirm(&review, decision, reviewer.as_ref(), budget).await;
        }
        Ok::<_, Failure>(decision)
    };
    let outcome = match tokio::time::timeout(limits.deadline, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::Deadline),
    };
    match outcome {
        Ok(decision) => {
            let body = decision.response.to_json();
            state.metrics.record(webhook, &decision, start.elapsed());
            if !decision.response.allowed {
                tracing::info!(
                    webhook,
                    uid = %decision.response.uid,
                    kind = decision.kind,
                    message = decision.response.status.as_ref().map(|s| s.message.as_str()).unwrap_or_default(),
                    "denied"
                );
            }
            json(StatusCode::OK, body)
        }
        Err(failure) => {
            state.metrics.record_invalid(webhook, start.elapsed());
            let response = match failure {
                Failure::TooLarge(len) => error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    &format!(
                        "AdmissionReview body of {len} bytes is larger than the limit of {} bytes (--max-body-bytes)",
                        limits.max_body_bytes
                    ),
                ),
                Failure::Read(e) => error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("cannot read the request body: {e}"),
                ),
                Failure::Bad(e) => error(StatusCode::BAD_REQUEST, "BadRequest", &e.message),
                Failure::Deadline => error(
                    StatusCode::REQUEST_TIMEOUT,
                    "Timeout",
                    &format!(
                        "the AdmissionReview was not received and decided within {} ms",
                        limits.deadline.as_millis()
                    ),
                ),
            };
            tracing::debug!(webhook, status = %response.status(), "bad admission request");
            response
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

fn connection_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then stops accepting, asks
/// every connection to close after its current request (idle keep-alive connections close at
/// once) and waits up to 10 s for them.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let builder = Arc::new(connection_builder());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    app.clone().oneshot(request.map(Body::new))
                });
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

/// Serves `app` over plain HTTP (the metrics address) until `shutdown` resolves.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
