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
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Default cap on request bodies. The API server sends at most object + oldObject of ~1.5 MiB
/// each (etcd's limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default server-side deadline, inside the configurations' `timeoutSeconds: 5`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(4);
/// Time kept back from the deadline for the answer after access reviews.
const ACCESS_REVIEW_MARGIN: Duration = Duration::from_millis(250);
/// Default cap on open connections (below a container's usual 1024 open files).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default cap on open connections from one address (the API server's replicas and the
/// kubelet's probes each come from their own).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 128;
/// Default cap on reviews being read or decided at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default cap on the body bytes of the reviews in flight (see BENCHMARKS.md, "Hostile input":
/// the process stays under the chart's 256 MiB limit with this much in flight).
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 16 * 1024 * 1024;
/// Default time a connection may stay open without a request in flight.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a TLS handshake, and then the first request's headers, may take.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Bodies larger than this are decided on the blocking pool, off the threads that serve I/O
/// and health checks; smaller ones take microseconds and are decided in place.
const INLINE_DECISION_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Reading and deciding one review, CPU-bound work included.
    pub deadline: Duration,
    /// Open connections; at the cap the connection idle the longest is closed to make room,
    /// and a new connection is refused when none is idle.
    pub max_connections: usize,
    /// Open connections from one IP address; more are closed before the TLS handshake. At
    /// the overall cap, the address holding the most connections gives one up.
    pub max_connections_per_peer: usize,
    /// Reviews being decided at once (counted once the body is read); more are answered 429.
    pub max_in_flight: usize,
    /// Body bytes of the reviews in flight (a chunked body counts as `max_body_bytes`); more
    /// are answered 429 at once.
    pub max_in_flight_bytes: usize,
    /// A connection with no request in flight for this long is closed (HTTP/1 and HTTP/2).
    /// Longer than the API server's own idle timeout (90 s), so that it closes first.
    pub idle_timeout: Duration,
    /// TLS handshake, then the first request's headers (HTTP/1 header read timeout).
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            deadline: DEFAULT_DEADLINE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
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

/// Admission of reviews into reading and deciding: a cap on their number and on the body
/// bytes they hold, so that memory and CPU in flight stay bounded. Both are taken without
/// waiting: over a cap the answer is a fast 429.
struct Gate {
    requests: Arc<Semaphore>,
    /// Large decisions running on the blocking pool: one fewer than the cores (at least one),
    /// so that a thread is always left for I/O and health checks. Waiting for a place counts
    /// against the deadline.
    heavy: Arc<Semaphore>,
    /// In KiB.
    bytes: Arc<Semaphore>,
}

/// What a review holds while it is read and decided.
struct Admitted {
    _request: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// What the routes share.
struct Served {
    state: Arc<WebhookState>,
    gate: Gate,
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The webhook's HTTPS routes. `/healthz` and `/readyz` pass no cap.
pub fn router(state: Arc<WebhookState>) -> Router {
    let limits = state.limits;
    let served = Arc::new(Served {
        gate: Gate {
            requests: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            heavy: Arc::new(Semaphore::new(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get().saturating_sub(1))
                    .max(1),
            )),
            bytes: Arc::new(Semaphore::new(kib(limits
                .max_in_flight_bytes
                .max(limits.max_body_bytes))
                as usize)),
        },
        state,
    });
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(served)
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

async fn readyz(State(served): State<Arc<Served>>) -> Response {
    if served.state.context.ready() {
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
    /// A cap was full: `bytes` or `requests`.
    Shed(&'static str),
    TooLarge(u64),
    Read(String),
    Bad(ReviewError),
    Deadline,
}

/// Bytes of the body beyond the limit that are still read and dropped so the client gets the
/// 413 instead of a reset connection; past this the connection is closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Reads the body, holding its bytes against the in-flight budget as they arrive (in KiB): a
/// client trickling a body holds only what it sent.
///
/// Hand-written rather than axum's `to_bytes` / http-body-util's `Limited`, which cannot keep
/// this behaviour: they answer an oversized body with an opaque length-limit error (not the
/// number of bytes announced or seen, which the 413 message names), stop reading at once (the
/// client then gets a reset connection instead of the 413; here up to `DRAIN_LIMIT` more bytes
/// are read and dropped), and collect the whole body before anything is counted, whereas the
/// in-flight byte budget must grow frame by frame and shed (503) while the body is arriving.
async fn read_body(
    body: Body,
    limit: usize,
    declared: Option<u64>,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Failure> {
    if let Some(len) = declared.filter(|l| *l > limit as u64) {
        drain(body, DRAIN_LIMIT).await;
        return Err(Failure::TooLarge(len));
    }
    let mut body = body;
    // Grown as bytes arrive, not sized from the announced length.
    let mut buf: Vec<u8> =
        Vec::with_capacity(declared.map_or(16 * 1024, |l| l.min(64 * 1024) as usize));
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut held_kib = 0u32;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::Read(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                let seen = (buf.len() + data.len()) as u64;
                drop(held);
                drain(body, DRAIN_LIMIT).await;
                return Err(Failure::TooLarge(seen));
            }
            let wanted = kib(buf.len() + data.len());
            if wanted > held_kib {
                let more = budget
                    .clone()
                    .try_acquire_many_owned(wanted - held_kib)
                    .map_err(|_| Failure::Shed("bytes"))?;
                match held.as_mut() {
                    Some(permit) => permit.merge(more),
                    None => held = Some(more),
                }
                held_kib = wanted;
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((Bytes::from(buf), held))
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

async fn validate(State(served): State<Arc<Served>>, request: Request<Body>) -> Response {
    handle(&served, "validate", request, |review, state| {
        admission::validate(review, state.context.as_ref(), jiff::Timestamp::now())
    })
    .await
}

async fn mutate(State(served): State<Arc<Served>>, request: Request<Body>) -> Response {
    handle(&served, "mutate", request, |review, _| {
        admission::mutate(review)
    })
    .await
}

type Decide = fn(&review::Request<'_>, &WebhookState) -> Result<Decision, ReviewError>;

/// Decodes and decides a body; returns the decision and how long that took.
fn decide_body(
    body: &[u8],
    state: &WebhookState,
    decide: Decide,
) -> Result<(Decision, Duration), Failure> {
    let start = Instant::now();
    let review = review::decode(body).map_err(Failure::Bad)?;
    let decision = decide(&review, state).map_err(Failure::Bad)?;
    Ok((decision, start.elapsed()))
}

/// Verifies, as the requesting user, what Annexa would do for them if the decision admits an
/// object (see [`access`]), within what is left of the deadline less a margin to answer.
async fn confirm_access(
    body: &[u8],
    state: &WebhookState,
    decision: Decision,
    start: Instant,
) -> Result<Decision, Failure> {
    let Some(reviewer) = &state.access else {
        return Ok(decision);
    };
    if decision.delegation.is_empty() || !decision.response.allowed {
        return Ok(decision);
    }
    let review = review::decode(body).map_err(Failure::Bad)?;
    let budget = state
        .limits
        .deadline
        .saturating_sub(start.elapsed())
        .saturating_sub(ACCESS_REVIEW_MARGIN);
    Ok(access::confirm(&review, decision, reviewer.as_ref(), budget).await)
}

/// A fast 429 naming the cap that was full.
fn shed_response(cap: &str, limits: &Limits) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        &format!(
            "the webhook is at its cap of {}; retry shortly",
            match cap {
                "requests" => format!("{} reviews being decided", limits.max_in_flight),
                _ => format!("{} body bytes in flight", limits.max_in_flight_bytes),
            }
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn handle(
    served: &Served,
    webhook: &'static str,
    request: Request<Body>,
    decide: Decide,
) -> Response {
    let start = Instant::now();
    let state = &served.state;
    let limits = state.limits;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let work = async {
        let (body, bytes) = read_body(
            request.into_body(),
            limits.max_body_bytes,
            declared,
            &served.gate.bytes,
        )
        .await?;
        // The count caps decisions, not reads: a slow sender holds no place.
        let admitted = Admitted {
            _request: served
                .gate
                .requests
                .clone()
                .try_acquire_owned()
                .map_err(|_| Failure::Shed("requests"))?,
            _bytes: bytes,
        };
        let (decision, decided_in) = if body.len() <= INLINE_DECISION_BYTES {
            drop(admitted);
            decide_body(&body, state, decide)?
        } else {
            // Large bodies: decided on the blocking pool, so a slow decision never holds the
            // threads that answer health checks and other reviews. The permits travel with the
            // work: what a review holds is released when its decision ends, even past the
            // deadline.
            let heavy = served
                .gate
                .heavy
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| Failure::Read(format!("the decision did not start: {e}")))?;
            let state = served.state.clone();
            let body = body.clone();
            tokio::task::spawn_blocking(move || {
                let outcome = decide_body(&body, &state, decide);
                drop(admitted);
                drop(heavy);
                outcome
            })
            .await
            .map_err(|e| Failure::Read(format!("the decision did not complete: {e}")))??
        };
        // Access reviews (network calls) after the decision, outside the gate.
        let decision = confirm_access(&body, state, decision, start).await?;
        Ok::<_, Failure>((decision, decided_in))
    };
    let outcome = match tokio::time::timeout(limits.deadline, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::Deadline),
    };
    match outcome {
        Ok((decision, decided_in)) => {
            let body = decision.response.to_json();
            state.metrics.record(webhook, &decision, start.elapsed());
            state.metrics.observe_decision(decision.kind, decided_in);
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
        Err(Failure::Shed(cap)) => {
            state.metrics.record_shed(cap);
            tracing::debug!(webhook, cap, "review shed");
            shed_response(cap, &limits)
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
                Failure::Shed(cap) => shed_response(cap, &limits),
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

fn connection_builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Dead peers are found by PING; idle ones are closed by the connection's own timer.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_concurrent_streams(
            u32::try_from(limits.max_in_flight)
                .unwrap_or(u32::MAX)
                .max(1),
        )
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(Some(32))
        .max_local_error_reset_streams(Some(32));
    builder
}

/// One open connection, as the accept loop and its idle timer see it.
struct Connection {
    /// Requests being served on it.
    in_flight: AtomicUsize,
    /// When a request last started or ended (or the connection was accepted).
    last_active: std::sync::Mutex<tokio::time::Instant>,
    /// Asked to close: idle the longest when the connection cap was reached.
    evict: tokio::sync::Notify,
    evicting: AtomicBool,
    /// Whether a request has started on it (the idle timeout replaces the first-request one).
    served: AtomicBool,
}

impl Connection {
    fn touch(&self) {
        if let Ok(mut last) = self.last_active.lock() {
            *last = tokio::time::Instant::now();
        }
    }

    fn last_active(&self) -> tokio::time::Instant {
        self.last_active
            .lock()
            .map_or_else(|_| tokio::time::Instant::now(), |last| *last)
    }

    /// Resolves when the connection has had no request in flight for `idle` (or, before its
    /// first request, for `first`), or when it is evicted.
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let wait = if self.served.load(Ordering::Acquire) {
                idle
            } else {
                first
            };
            let until = if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::Instant::now() + wait
            } else {
                self.last_active() + wait
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.evict.notified() => return,
            }
            if self.in_flight.load(Ordering::Acquire) == 0
                && tokio::time::Instant::now() >= self.last_active() + wait
            {
                return;
            }
        }
    }
}

/// Ends a request on its connection when dropped (answered or cancelled).
struct InFlight(Arc<Connection>);

impl InFlight {
    fn start(connection: Arc<Connection>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        connection.served.store(true, Ordering::Release);
        connection.touch();
        Self(connection)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections.
#[derive(Default)]
struct Connections {
    open: std::sync::Mutex<Open>,
    next: AtomicU64,
    closed: tokio::sync::Notify,
}

#[derive(Default)]
struct Open {
    by_id: HashMap<u64, (IpAddr, Arc<Connection>)>,
    per_peer: HashMap<IpAddr, usize>,
}

impl Connections {
    fn count(&self) -> usize {
        self.open.lock().map_or(0, |open| open.by_id.len())
    }

    /// Registers a new connection from `peer` unless that address is at its own cap, or the
    /// overall cap is reached and no connection is idle to make room. At the overall cap, the
    /// connection idle the longest among those of the address holding the most is asked to
    /// close: one client cannot crowd out the others.
    fn admit(&self, peer: IpAddr, cap: usize, per_peer: usize) -> Option<(u64, Arc<Connection>)> {
        let mut open = self.open.lock().ok()?;
        if open.per_peer.get(&peer).copied().unwrap_or(0) >= per_peer {
            return None;
        }
        if open.by_id.len() >= cap {
            let idle = |c: &Connection| {
                c.in_flight.load(Ordering::Acquire) == 0 && !c.evicting.load(Ordering::Acquire)
            };
            let mut peers: Vec<(IpAddr, usize)> =
                open.per_peer.iter().map(|(ip, n)| (*ip, *n)).collect();
            peers.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            let victim = peers.iter().find_map(|(ip, _)| {
                open.by_id
                    .values()
                    .filter(|(from, c)| from == ip && idle(c))
                    .min_by_key(|(_, c)| c.last_active())
                    .map(|(_, c)| c.clone())
            })?;
            victim.evicting.store(true, Ordering::Release);
            victim.evict.notify_one();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            last_active: std::sync::Mutex::new(tokio::time::Instant::now()),
            evict: tokio::sync::Notify::new(),
            evicting: AtomicBool::new(false),
            served: AtomicBool::new(false),
        });
        open.by_id.insert(id, (peer, connection.clone()));
        *open.per_peer.entry(peer).or_default() += 1;
        Some((id, connection))
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock()
            && let Some((peer, _)) = open.by_id.remove(&id)
            && let Some(n) = open.per_peer.get_mut(&peer)
        {
            *n -= 1;
            if *n == 0 {
                open.per_peer.remove(&peer);
            }
        }
        self.closed.notify_waiters();
    }
}

/// Removes a connection from the open set when its task ends, whatever the way.
struct Registered {
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.remove(self.id);
        self.metrics
            .set_connections_open(self.connections.count() as i64);
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then stops accepting, asks
/// every connection to close after its current request (idle keep-alive connections close at
/// once) and waits up to 10 s for them. Each connection has a handshake timeout, an HTTP/1
/// header read timeout, an idle timeout (HTTP/1 and HTTP/2) and the connection cap of `limits`.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let builder = Arc::new(connection_builder(&limits));
    let connections = Arc::new(Connections::default());
    let (closing, _) = tokio::sync::watch::channel(false);
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
        let Some((id, connection)) = connections.admit(
            peer.ip(),
            limits.max_connections,
            limits.max_connections_per_peer,
        ) else {
            metrics.record_shed("connections");
            tracing::debug!(%peer, "connection refused: at the connection cap with none idle");
            drop(stream);
            continue;
        };
        metrics.set_connections_open(connections.count() as i64);
        let registered = Registered {
            connections: connections.clone(),
            metrics: metrics.clone(),
            id,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let mut closing = closing.subscribe();
        tokio::spawn(async move {
            let _registered = registered;
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
            let tls = tokio::select! {
                tls = handshake => match tls {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = connection.evict.notified() => return,
                _ = closing.wait_for(|c| *c) => return,
            };
            let on_connection = connection.clone();
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let in_flight = InFlight::start(on_connection.clone());
                    let response = app.clone().oneshot(request.map(Body::new));
                    async move {
                        let response = response.await;
                        drop(in_flight);
                        response
                    }
                });
            let served = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(served);
            let mut hard_stop = None;
            loop {
                tokio::select! {
                    result = served.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = closing.wait_for(|c| *c), if hard_stop.is_none() => {
                        served.as_mut().graceful_shutdown();
                        hard_stop = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                    }
                    _ = connection.idle(limits.handshake_timeout, limits.idle_timeout), if hard_stop.is_none() => {
                        tracing::debug!(%peer, "closing an idle connection");
                        served.as_mut().graceful_shutdown();
                        hard_stop = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                    }
                    _ = tokio::time::sleep_until(hard_stop.unwrap_or_else(tokio::time::Instant::now)), if hard_stop.is_some() => {
                        tracing::debug!(%peer, "connection did not close in time; dropped");
                        break;
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = async {
        loop {
            let notified = connections.closed.notified();
            if connections.count() == 0 {
                return;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), drained)
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
