//! HTTP routing and the REST verbs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::registry::{GroupResource, ResourceType, Special, types_from_crd};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{self, State, StoreError, meta_str, now_rfc3339};
use super::{
    Faults, Server, User, admission, authz, builtin, protobuf, schema, smp, ssa, ssa_schema, table,
    watch, webhookconfig,
};

mod scale;

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An error answered as a `metav1.Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            v["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }
}

pub fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": rt.plural});
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d
}

pub fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", qualified(rt)),
    )
    .with_details(details(rt, name))
}

fn namespace_not_found(ns: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        .with_details(json!({"name": ns, "kind": "namespaces"}))
}

fn already_exists(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::new(
        409,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", qualified(rt)),
    )
    .with_details(details(rt, name))
}

pub fn conflict(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(rt)
        ),
    )
    .with_details(details(rt, name))
}

fn invalid(rt: &ResourceType, name: &str, field: &str, message: &str) -> ApiError {
    let kind = if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    ApiError::new(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {field}: {message}"),
    )
    .with_details(json!({
        "name": name, "kind": rt.kind, "group": rt.group,
        "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
    }))
}

fn json_response(code: u16, value: &Value, warnings: &[String]) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        // Warning header per RFC 7234 as kube-apiserver sends it: a quoted-string with `"`
        // and `\` escaped, which kubectl unescapes before printing.
        let text = format!(
            "299 - \"{}\"",
            w.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace(['\n', '\r'], " ")
        );
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = json_response(err.code, &err.status(), &[]);
    if let Some(secs) = err.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    resp
}

/// The query string as the API server reads it (`application/x-www-form-urlencoded`: `+` is a
/// space, `%XX` a byte, a malformed escape is kept as written); the last of repeated keys wins.
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A request after authentication.
pub struct Req {
    pub method: Method,
    pub path: String,
    /// Path and query as sent (fault injection matches on it).
    pub target: String,
    pub query: HashMap<String, String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub user: User,
}

impl Req {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    fn accept(&self) -> &str {
        self.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn wants_table(&self) -> bool {
        self.accept().contains("as=Table")
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.q("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// The field manager: `fieldManager`, else the User-Agent up to its first '/'.
    fn manager(&self) -> String {
        if let Some(m) = self.q("fieldManager") {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        ua.split('/')
            .next()
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect()
    }
}

/// A parsed resource path.
pub struct Target {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    fn gr(&self) -> GroupResource {
        self.rt.group_resource()
    }
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
    fn sub(&self) -> &str {
        self.subresource.as_deref().unwrap_or_default()
    }
}

/// The user a bearer token names: a `--token-file` user, or a ServiceAccount whose token was
/// minted by the TokenRequest API (valid while unexpired and while that ServiceAccount exists).
fn authenticate(server: &Server, headers: &http::HeaderMap) -> Option<User> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ")?.trim();
    if let Some(user) = server.tokens.get(token) {
        let mut user = user.clone();
        if !user.groups.iter().any(|g| g == "system:authenticated") {
            user.groups.push("system:authenticated".into());
        }
        return Some(user);
    }
    let minted = server
        .service_account_tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(token)
        .cloned()?;
    if minted.expires <= jiff::Timestamp::now() {
        return None;
    }
    let st = server.state();
    let sa = st.get(&sa_gr(), &minted.namespace, &minted.name)?;
    (meta_str(sa, "uid") == minted.uid)
        .then(|| authz::service_account_user(&minted.namespace, &minted.name, &minted.uid))
}

fn sa_gr() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "serviceaccounts".into(),
    }
}

/// The `Impersonate-*` headers of a request.
fn impersonation(headers: &http::HeaderMap) -> authz::Impersonation {
    let text = |v: &HeaderValue| v.to_str().ok().map(str::to_string);
    authz::Impersonation {
        user: headers.get("impersonate-user").and_then(text),
        groups: headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(text)
            .collect(),
        uid: headers.get("impersonate-uid").and_then(text),
        extra: headers
            .iter()
            .filter_map(|(k, v)| {
                let key = k.as_str().strip_prefix("impersonate-extra-")?;
                Some((key.to_string(), text(v)?))
            })
            .collect(),
    }
}

/// Keeps a resource-request decision for `GET /_standin/authorizations`.
fn record(server: &Server, user: &User, attributes: authz::Attributes, allowed: bool) {
    if attributes.resource_request {
        server.record_authorization(super::AuthorizationRecord {
            user: user.name.clone(),
            attributes,
            allowed,
        });
    }
}

/// Creates the namespaces every cluster has.
pub fn bootstrap(server: &Server) {
    let mut st = server.state();
    let gr = store::ns_gr();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": store::new_uid(), "creationTimestamp": now_rfc3339(),
                         "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let _ = st.put(&gr, obj, true);
    }
    authz::bootstrap(&mut st);
}

/// Reads a request body up to `limit` bytes. A larger body is read on and discarded (up to a
/// hard cap) so the client gets a clean 413 instead of a reset connection.
async fn read_body(mut body: hyper::body::Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let cap = limit.saturating_mul(16).max(64 * 1024 * 1024);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > cap {
                break;
            }
        }
    }
    if seen > limit {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        ));
    }
    Ok(buf.freeze())
}

pub async fn handle(server: Arc<Server>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query());
    let public = matches!(
        path.as_str(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    let user = match authenticate(&server, &parts.headers) {
        Some(u) => u,
        None if public && !parts.headers.contains_key(http::header::AUTHORIZATION) => User {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
        },
        None => return error_response(&ApiError::new(401, "Unauthorized", "Unauthorized")),
    };
    let user = {
        let st = server.state();
        match authz::impersonate(&st, &user, &impersonation(&parts.headers)) {
            Ok(u) => u,
            Err(e) => return error_response(&e),
        }
    };
    // Every request but the stand-in's own test endpoint is authorised, as kube-apiserver
    // authorises before it routes (a denied request to an unknown path is a 403, not a 404).
    if !path.starts_with("/_standin/") {
        let attributes = authz::request_info(parts.method.as_str(), &path, &query);
        let decision = authz::authorize(&server.state(), &user, &attributes);
        record(&server, &user, attributes.clone(), decision.allowed);
        if !decision.allowed {
            return error_response(&authz::forbidden(&user, &attributes, &decision.reason));
        }
    }
    let body = match read_body(body, server.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let req = Req {
        method: parts.method,
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        path,
        query,
        headers: parts.headers,
        body,
        user,
    };
    // A bug must cost one request, never the server (or the connection).
    let routed = std::panic::AssertUnwindSafe(route(&server, &req));
    match futures::FutureExt::catch_unwind(routed).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => error_response(&e),
        Err(_) => error_response(&ApiError::internal(
            "the stand-in failed to handle this request",
        )),
    }
}

async fn route(server: &Arc<Server>, req: &Req) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    match segs.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            return Ok(r);
        }
        ["version"] => return Ok(json_response(200, &version(), &[])),
        ["_standin", rest @ ..] => return admin(server, req, rest),
        // kubectl only accepts OpenAPI v2 as protobuf; without it kubectl uses v3 (below).
        ["openapi", "v2"] => return Err(page_not_found()),
        ["openapi", "v3"] => return Ok(json_response(200, &openapi_v3_root(server), &[])),
        ["openapi", "v3", "api", "v1"] => return openapi_v3_doc(server, "", "v1"),
        ["openapi", "v3", "apis", group, version] => return openapi_v3_doc(server, group, version),
        ["api"] => {
            return Ok(json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}),
                &[],
            ));
        }
        ["api", "v1"] => return discovery_list(server, "", "v1"),
        ["apis"] => {
            return Ok(json_response(
                200,
                &server.state().registry.group_list(),
                &[],
            ));
        }
        ["apis", group] => {
            let list = server.state().registry.group_list();
            let found = list["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|g| g["name"] == *group).cloned());
            return match found {
                Some(mut g) => {
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    Ok(json_response(200, &g, &[]))
                }
                None => Err(page_not_found()),
            };
        }
        ["apis", group, version] => return discovery_list(server, group, version),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(page_not_found()),
    };
    let target = parse_target(server, group, version, rest)?;
    inject_faults(server, req).await?;
    dispatch(server, req, target).await
}

fn page_not_found() -> ApiError {
    ApiError::new(404, "NotFound", "the server could not find the requested resource")
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0+annexa-standin",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn discovery_list(server: &Server, group: &str, version: &str) -> Result<Response<Body>, ApiError> {
    match server.state().registry.resource_list(group, version) {
        Some(list) => Ok(json_response(200, &list, &[])),
        None => Err(page_not_found()),
    }
}

fn openapi_v3_root(server: &Server) -> Value {
    let st = server.state();
    // The hash changes whenever CRDs change what is served, so clients refetch.
    let hash = st.registry.all().len();
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={hash:x}")}),
    );
    for (group, versions) in st.registry.group_versions() {
        for v in versions {
            paths.insert(
                format!("apis/{group}/{v}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{group}/{v}?hash={hash:x}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// An OpenAPI v3 document per group/version with one PATCH operation per kind, declaring
/// the `fieldValidation` parameter (kubectl then validates server-side instead of downloading
/// schemas) and no schemas: the stand-in does not validate against schemas.
fn openapi_v3_doc(server: &Server, group: &str, version: &str) -> Result<Response<Body>, ApiError> {
    let st = server.state();
    let mut paths = serde_json::Map::new();
    for rt in st
        .registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/{version}")
        };

        let path = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("{prefix}/{}/{{name}}", rt.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": rt.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]);
        paths.insert(
            path,
            json!({
                "get": {"operationId": format!("read{}", rt.kind), "x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get"},
                "put": {"operationId": format!("replace{}", rt.kind), "x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "put", "parameters": params},
                "patch": {"operationId": format!("patch{}", rt.kind), "x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", "parameters": params},
            }),
        );
    }
    if paths.is_empty() {
        return Err(page_not_found());
    }
    Ok(json_response(
        200,
        &json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths, "components": {"schemas": {}}}),
        &[],
    ))
}

fn parse_target(
    server: &Server,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let st = server.state();
    let reg = &st.registry;
    let lookup = |plural: &str| reg.lookup(group, version, plural).cloned();
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|t| t.namespaced) => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let Some(plural) = rest.first() else {
        return Err(page_not_found());
    };
    let rt = lookup(plural).ok_or_else(page_not_found)?;
    if rt.namespaced && namespace.is_none() && rest.len() > 1 {
        return Err(page_not_found());
    }
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return Err(page_not_found());
    }
    if let Some(sub) = &subresource
        && !(sub == "status" && rt.status_subresource)
        && !(sub == EPHEMERAL_CONTAINERS && rt.group.is_empty() && rt.plural == "pods")
        && !is_token_request(&rt, sub)
        && !scale::serves(&rt, sub)
    {
        return Err(page_not_found());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        subresource,
    })
}

/// `serviceaccounts/token`: the TokenRequest subresource.
fn is_token_request(rt: &ResourceType, subresource: &str) -> bool {
    rt.group.is_empty() && rt.plural == "serviceaccounts" && subresource == "token"
}

fn is_resource_fault_target(req: &Req, faults: &Faults) -> bool {
    (faults.methods.is_empty()
        || faults
            .methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(req.method.as_str())))
        && (faults.path_contains.is_empty() || req.target.contains(&faults.path_contains))
}

async fn inject_faults(server: &Server, req: &Req) -> Result<(), ApiError> {
    let faults = server.faults();
    if !is_resource_fault_target(req, &faults) {
        return Ok(());
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms.min(120_000))).await;
    }
    if faults.error_rate > 0.0 {
        let roll = (store::random_u64() % 1_000_000) as f64 / 1_000_000.0;
        if roll < faults.error_rate {
            let codes = if faults.error_codes.is_empty() {
                vec![500]
            } else {
                faults.error_codes.clone()
            };
            let code = codes[(store::random_u64() % codes.len() as u64) as usize];
            return Err(match code {
                409 => ApiError::new(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected fault)",
                ),
                429 => {
                    let mut e = ApiError::new(
                        429,
                        "TooManyRequests",
                        "Too many requests, please try again later. (injected fault)",
                    );
                    e.retry_after = Some(1);
                    e
                }
                _ => ApiError::internal("injected fault"),
            });
        }
    }
    Ok(())
}

fn admin(server: &Server, req: &Req, rest: &[&str]) -> Result<Response<Body>, ApiError> {
    match (&req.method, rest) {
        (&Method::GET, ["faults"]) => Ok(json_response(200, &json!(server.faults()), &[])),
        (&Method::POST | &Method::PUT, ["faults"]) => {
            let faults: Faults = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("faults: {e}")))?;
            if !(0.0..=1.0).contains(&faults.error_rate) {
                return Err(ApiError::bad_request(
                    "faults: errorRate must be within 0.0..=1.0",
                ));
            }
            server.set_faults(faults.clone());
            Ok(json_response(200, &json!(faults), &[]))
        }
        (&Method::DELETE, ["faults"]) => {
            server.set_faults(Faults::default());
            Ok(json_response(200, &json!(Faults::default()), &[]))
        }
        (&Method::GET, ["authorizations"]) => {
            let records: Vec<super::AuthorizationRecord> = server
                .authorizations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|r| req.q("user").is_none_or(|u| u == r.user))
                .cloned()
                .collect();
            Ok(json_response(200, &json!({"items": records}), &[]))
        }
        (&Method::POST, ["drop-watches"]) => {
            server.drop_watches.send_modify(|n| *n += 1);
            Ok(json_response(200, &json!({"dropped": true}), &[]))
        }
        (&Method::POST, ["webhook-overrides"]) => {
            let v: Value = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("webhook-overrides: {e}")))?;
            let (from, to) = match (v["service"].as_str(), v["address"].as_str()) {
                (Some(f), Some(t)) => (f, t),
                _ => {
                    return Err(ApiError::bad_request(
                        "webhook-overrides: expected {\"service\": \"svc.ns:port\", \"address\": \"host:port\"}",
                    ));
                }
            };
            let (from, to) = super::parse_override(&format!("{from}={to}"))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            server.add_webhook_override(from, to);
            Ok(json_response(200, &v, &[]))
        }
        _ => Err(page_not_found()),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

async fn dispatch(
    server: &Arc<Server>,
    req: &Req,
    target: Target,
) -> Result<Response<Body>, ApiError> {
    if target.rt.create_only() {
        return match (&req.method, &target.name) {
            (&Method::POST, None) => review(server, &target, req),
            _ => Err(method_not_allowed()),
        };
    }
    if is_token_request(&target.rt, target.sub()) {
        return match &req.method {
            &Method::POST => token_request(server, req, &target),
            _ => Err(method_not_allowed()),
        };
    }
    if scale::serves(&target.rt, target.sub()) {
        return scale::handle(server, req, &target).await;
    }
    if target.rt.namespaced && target.namespace.is_none() && !matches!(req.method, Method::GET) {
        return Err(method_not_allowed());
    }
    match (&req.method, target.name.is_some()) {
        (&Method::GET, true) => get(server, req, &target),
        (&Method::GET, false) if req.flag("watch") => watch::serve(server, req, &target),
        (&Method::GET, false) => list(server, req, &target),
        (&Method::POST, false) => write(server, req, &target, WriteKind::Create).await,
        (&Method::PUT, true) => write(server, req, &target, WriteKind::Update).await,
        (&Method::PATCH, true) => {
            let kind = match req
                .content_type()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
            {
                "application/json-patch+json" => PatchKind::Json,
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply,
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                        ),
                    ));
                }
            };
            write(server, req, &target, WriteKind::Patch(kind)).await
        }
        (&Method::DELETE, true) => delete(server, req, &target).await,
        (&Method::DELETE, false) => delete_collection(server, req, &target).await,
        _ => Err(method_not_allowed()),
    }
}

fn review(server: &Server, target: &Target, req: &Req) -> Result<Response<Body>, ApiError> {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        parse_body(req)?
    };
    let user = &req.user;
    let out = match target.rt.special {
        Special::SelfSubjectReview => json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": now_rfc3339()},
            "status": {"userInfo": {"username": user.name, "uid": user.uid, "groups": user.groups}},
        }),
        _ => authz::review(&server.state(), user, &target.rt.plural, target.ns(), &body)?,
    };
    Ok(json_response(201, &out, &[]))
}

/// TokenRequest (`POST .../serviceaccounts/NAME/token`): mints a token for the ServiceAccount
/// that the stand-in accepts until it expires or the ServiceAccount is deleted. Only the API
/// server's own audience is accepted here, as kube-apiserver's authenticator does.
fn token_request(server: &Server, req: &Req, target: &Target) -> Result<Response<Body>, ApiError> {
    let name = target.name.clone().unwrap_or_default();
    let body: Value = parse_body(req)?;
    let sa = server
        .state()
        .get(&sa_gr(), target.ns(), &name)
        .cloned()
        .ok_or_else(|| not_found(&target.rt, &name))?;
    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    if seconds < 600 {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            ),
        ));
    }
    let audiences = match body["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!([API_AUDIENCE]),
    };
    let token = format!(
        "standin-sa.{:016x}{:016x}{:016x}",
        store::random_u64(),
        store::random_u64(),
        store::random_u64()
    );
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // A token for another audience is minted but not accepted by this API server.
    if audiences
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == API_AUDIENCE))
    {
        server
            .service_account_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                token.clone(),
                super::ServiceAccountToken {
                    namespace: target.ns().to_string(),
                    name: name.clone(),
                    uid: meta_str(&sa, "uid").to_string(),
                    expires,
                },
            );
    }
    let out = json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": target.ns(), "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": body["spec"]["boundObjectRef"]},
        "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
    });
    Ok(json_response(201, &out, &[]))
}

/// The audience of the stand-in's own tokens (kube-apiserver's default issuer audience).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Sets apiVersion/kind to the version the request used (storage is version independent).
fn for_version(rt: &ResourceType, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj
}

fn get(server: &Server, req: &Req, target: &Target) -> Result<Response<Body>, ApiError> {
    let name = target.name.as_deref().unwrap_or_default();
    let obj = server
        .state()
        .get(&target.gr(), target.ns(), name)
        .cloned()
        .ok_or_else(|| not_found(&target.rt, name))?;
    let obj = for_version(&target.rt, obj);
    if req.wants_table() {
        let rv = meta_str(&obj, "resourceVersion").to_string();
        return Ok(json_response(
            200,
            &table::to_table(
                &target.rt,
                &[obj],
                json!({"resourceVersion": rv}),
                req.q("includeObject"),
            ),
            &[],
        ));
    }
    Ok(json_response(200, &obj, &[]))
}

pub fn selectors(req: &Req) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn list(server: &Server, req: &Req, target: &Target) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(req)?;
    let limit = match req.q("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let (start_after, token_rv) = match req.q("continue") {
        Some(token) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("continue key is not valid: illegal base64 data")
                })?;
            let key = (
                raw["ns"].as_str().unwrap_or_default().to_string(),
                raw["name"].as_str().unwrap_or_default().to_string(),
            );
            (Some(key), raw["rv"].as_u64())
        }
        None => (None, None),
    };
    let st = server.state();
    let rv = token_rv.unwrap_or_else(|| st.current_rv());
    let mut items = Vec::new();
    let mut last_key = None;
    let mut remaining = 0usize;
    for (key, obj) in st.list(&target.gr(), target.namespace.as_deref()) {
        if start_after.as_ref().is_some_and(|s| key <= s) {
            continue;
        }
        if !labels.matches_object(obj) || !fields.matches(obj) {
            continue;
        }
        if limit > 0 && items.len() >= limit {
            remaining += 1;
            continue;
        }
        last_key = Some(key.clone());
        items.push(for_version(&target.rt, obj.clone()));
    }
    drop(st);
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if remaining > 0
        && let Some((ns, name)) = last_key
    {
        let token =
            serde_json::to_vec(&json!({"rv": rv, "ns": ns, "name": name})).unwrap_or_default();
        meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        meta["remainingItemCount"] = json!(remaining);
    }
    if req.wants_table() {
        return Ok(json_response(
            200,
            &table::to_table(&target.rt, &items, meta, req.q("includeObject")),
            &[],
        ));
    }
    Ok(json_response(
        200,
        &json!({"apiVersion": target.rt.api_version(), "kind": format!("{}List", target.rt.kind),
                "metadata": meta, "items": items}),
        &[],
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteKind {
    Create,
    Update,
    Patch(PatchKind),
}

struct Prepared {
    old: Option<Value>,
    new: Value,
}

fn parse_body(req: &Req) -> Result<Value, ApiError> {
    let content_type = req
        .content_type()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let v: Value = match content_type {
        "" | "application/json" | "*/*" => serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        "application/yaml" => serde_yaml_ng::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as YAML: {e}"
            ))
        })?,
        "application/vnd.kubernetes.protobuf" => match protobuf::decode(&req.body) {
            Some(v) => v,
            None => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (the stand-in decodes protobuf only for v1 Namespace, ConfigMap, Secret and ServiceAccount, RBAC roles and bindings, and TokenRequest)",
                ));
            }
        },
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other:?}; the stand-in does not speak protobuf)"
                ),
            ));
        }
    };
    check_shape(&v)?;
    Ok(v)
}

/// Rejects objects whose metadata does not have the ObjectMeta shape (as decoding into the Go
/// types would), so later code can rely on it.
pub fn check_shape(v: &Value) -> Result<(), ApiError> {
    let bad = |what: &str| {
        Err(ApiError::bad_request(format!(
            "the object could not be decoded: {what}"
        )))
    };
    let Some(obj) = v.as_object() else {
        return bad("expected a JSON object");
    };
    for f in ["apiVersion", "kind"] {
        if obj.get(f).is_some_and(|x| !x.is_string()) {
            return bad(&format!("{f} must be a string"));
        }
    }
    let Some(meta) = obj.get("metadata") else {
        return Ok(());
    };
    let Some(meta) = meta.as_object() else {
        return bad("metadata must be an object");
    };
    for f in [
        "name",
        "namespace",
        "generateName",
        "resourceVersion",
        "uid",
    ] {
        if meta.get(f).is_some_and(|x| !x.is_string() && !x.is_null()) {
            return bad(&format!("metadata.{f} must be a string"));
        }
    }
    for f in ["labels", "annotations"] {
        match meta.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
            Some(_) => return bad(&format!("metadata.{f} must map strings to strings")),
        }
    }
    match meta.get("finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => return bad("metadata.finalizers must be a list of strings"),
    }
    for f in ["ownerReferences", "managedFields"] {
        match meta.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_object) => {}
            Some(_) => return bad(&format!("metadata.{f} must be a list of objects")),
        }
    }
    Ok(())
}

fn valid_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn valid_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && valid_dns_subdomain(name)
}

fn check_identity(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    let kind = body["kind"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    if api_version != rt.api_version() || kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({}) or kind {kind} is not {}",
            rt.api_version(),
            rt.kind
        )));
    }
    Ok(())
}

/// Prepares a new object for creation (`record`: manager recorded as an Update).
fn prepare_create(
    st: &State,
    target: &Target,
    mut obj: Value,
    record: Option<&str>,
) -> Result<Value, ApiError> {
    let rt = &target.rt;
    check_identity(rt, &obj)?;
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let body_ns = meta_str(&obj, "namespace").to_string();
    if rt.namespaced {
        if !body_ns.is_empty() && body_ns != target.ns() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        obj["metadata"]["namespace"] = json!(target.ns());
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let mut name = meta_str(&obj, "name").to_string();
    if name.is_empty() {
        let prefix = meta_str(&obj, "generateName").to_string();
        if prefix.is_empty() {
            return Err(invalid(
                rt,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        name = format!("{prefix}{}", store::random_suffix());
        obj["metadata"]["name"] = json!(name);
    }
    let valid = if rt.special == Special::Namespace {
        valid_dns_label(&name)
    } else {
        valid_dns_subdomain(&name)
    };
    if !valid {
        return Err(invalid(
            rt,
            &name,
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    if rt.namespaced {
        if !st.namespace_exists(target.ns()) {
            return Err(namespace_not_found(target.ns()));
        }
        if st.namespace_terminating(target.ns()) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    qualified(rt),
                    target.ns()
                ),
            ));
        }
    }
    if st.get(&target.gr(), target.ns(), &name).is_some() {
        return Err(already_exists(rt, &name));
    }
    let meta = obj["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for f in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(f);
    }
    meta.insert("uid".into(), json!(store::new_uid()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    if rt.has_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    // The one built-in default clients commonly rely on.
    if rt.group.is_empty()
        && rt.plural == "secrets"
        && obj["type"].as_str().is_none_or(str::is_empty)
    {
        obj["type"] = json!("Opaque");
    }
    match rt.special {
        Special::Namespace => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["status"] = json!({"phase": "Active"});
        }
        Special::Crd => {
            let names = crd_names(st, &name, &obj).map_err(|m| invalid(rt, &name, "spec", &m))?;
            obj["status"] = crd_status(&obj, names);
        }
        _ if rt.status_subresource => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
    if let Some(manager) = record {
        ssa::record_update(
            &ssa_schema::for_type(st, rt),
            None,
            &mut obj,
            manager,
            &rt.api_version(),
            "",
            &now_rfc3339(),
        );
    }
    Ok(obj)
}

fn crd_names(st: &State, name: &str, crd: &Value) -> Result<Value, String> {
    let types = types_from_crd(name, crd)?;
    for t in &types {
        if let Some(other) = st
            .registry
            .any_version(&t.group_resource())
            .filter(|o| o.crd.as_deref() != Some(name))
        {
            return Err(format!(
                "spec.names.plural: Invalid value: \"{}\": already served by {}",
                other.plural, other.kind
            ));
        }
    }
    Ok(crd["spec"]["names"].clone())
}

/// CRD status: the stand-in establishes every accepted CRD at once.
fn crd_status(crd: &Value, names: Value) -> Value {
    let now = now_rfc3339();
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let mut accepted = names;
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(
            accepted["kind"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
        );
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!(
            "{}List",
            accepted["kind"].as_str().unwrap_or_default()
        ));
    }
    json!({
        "acceptedNames": accepted,
        "storedVersions": storage,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    })
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

/// The subresource `kubectl debug` writes: only `spec.ephemeralContainers` of the candidate is
/// kept, as kube-apiserver's ephemeral-containers strategy does.
const EPHEMERAL_CONTAINERS: &str = "ephemeralcontainers";

/// Applies the update rules to a candidate: immutable metadata, status subresource split,
/// generation, managedFields (`record`) for non-apply writes.
fn finish_update(
    st: &State,
    target: &Target,
    current: &Value,
    mut new: Value,
    record: Option<&str>,
) -> Result<Value, ApiError> {
    let rt = &target.rt;
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    new = for_version(rt, new);
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match current["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
    let sub = target.sub();
    if sub == EPHEMERAL_CONTAINERS {
        let ephemeral = new["spec"].get("ephemeralContainers").cloned();
        let managed = new["metadata"].get("managedFields").cloned();
        new = current.clone();
        match ephemeral {
            Some(e) => new["spec"]["ephemeralContainers"] = e,
            None => {
                if let Some(spec) = new["spec"].as_object_mut() {
                    spec.remove("ephemeralContainers");
                }
            }
        }
        if let Some(mf) = managed {
            new["metadata"]["managedFields"] = mf;
        }
    } else if sub == "status" {
        let status = new.get("status").cloned();
        let managed = new["metadata"].get("managedFields").cloned();
        new = current.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        if let Some(mf) = managed {
            new["metadata"]["managedFields"] = mf;
        }
    } else if rt.status_subresource {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if rt.has_generation() && sub != "status" {
        let ignored: &[&str] = if rt.status_subresource {
            &["metadata", "status"]
        } else {
            &["metadata"]
        };
        if without(current, ignored) != without(&new, ignored) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(generation + 1);
        }
    }
    if rt.special == Special::Crd && sub != "status" {
        let name = meta_str(current, "name").to_string();
        let names = crd_names(st, &name, &new).map_err(|m| invalid(rt, &name, "spec", &m))?;
        new["status"] = crd_status(&new, names);
    }
    if let Some(manager) = record {
        ssa::record_update(
            &ssa_schema::for_type(st, rt),
            Some(current),
            &mut new,
            manager,
            &rt.api_version(),
            sub,
            &now_rfc3339(),
        );
    }
    Ok(new)
}

fn prepare(st: &State, req: &Req, target: &Target, kind: WriteKind) -> Result<Prepared, ApiError> {
    let rt = &target.rt;
    let name = target.name.clone().unwrap_or_default();
    let current = st.get(&target.gr(), target.ns(), &name).cloned();
    let manager = req.manager();
    match kind {
        WriteKind::Create => {
            if target.subresource.is_some() {
                return Err(method_not_allowed());
            }
            let body = parse_body(req)?;
            let new = prepare_create(st, target, body, Some(&manager))?;
            Ok(Prepared { old: None, new })
        }
        WriteKind::Update => {
            let current = current.ok_or_else(|| not_found(rt, &name))?;
            let body = parse_body(req)?;
            check_identity(rt, &body)?;
            let body_name = meta_str(&body, "name");
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let body_rv = meta_str(&body, "resourceVersion");
            if !body_rv.is_empty() && body_rv != meta_str(&current, "resourceVersion") {
                return Err(conflict(rt, &name));
            }
            let new = finish_update(st, target, &current, body, Some(&manager))?;
            Ok(Prepared {
                old: Some(current),
                new,
            })
        }
        WriteKind::Patch(PatchKind::Apply) => {
            let Some(manager) = req.q("fieldManager") else {
                return Err(invalid_patch_options(
                    "fieldManager: Required value: is required for apply patch",
                ));
            };
            let applied: Value = serde_yaml_ng::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            check_shape(&applied)?;
            check_identity(rt, &applied)?;
            let mut applied = applied;
            // An apply patch may leave the name out; the URL names the object.
            if meta_str(&applied, "name").is_empty() {
                if !applied["metadata"].is_object() {
                    applied["metadata"] = json!({});
                }
                applied["metadata"]["name"] = json!(name);
            }
            let applied_name = meta_str(&applied, "name");
            if applied_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                )));
            }
            // A resourceVersion in the configuration is a precondition, as on any update.
            let applied_rv = meta_str(&applied, "resourceVersion");
            if let Some(current) = &current
                && !applied_rv.is_empty()
                && applied_rv != meta_str(current, "resourceVersion")
            {
                return Err(conflict(rt, &name));
            }
            let force = req.flag("force");
            let sub = target.sub();
            let now = now_rfc3339();
            let schema = ssa_schema::for_type(st, rt);
            let apply = |live: Option<&Value>| {
                ssa::apply(
                    &schema,
                    live,
                    &applied,
                    manager,
                    &rt.api_version(),
                    sub,
                    force,
                    &now,
                )
                .map_err(|e| apply_error(rt, target.ns(), &name, e))
            };
            match current {
                None => {
                    if sub == "status" {
                        return Err(not_found(rt, &name));
                    }
                    let merged = apply(None)?;
                    let new = prepare_create(st, target, merged, None)?;
                    Ok(Prepared { old: None, new })
                }
                Some(current) => {
                    let merged = apply(Some(&current))?;
                    let new = finish_update(st, target, &current, merged, None)?;
                    Ok(Prepared {
                        old: Some(current),
                        new,
                    })
                }
            }
        }
        WriteKind::Patch(patch) => {
            let current = current.ok_or_else(|| not_found(rt, &name))?;
            let mut doc = current.clone();
            match patch {
                PatchKind::Json => {
                    let ops: json_patch::Patch = serde_json::from_slice(&req.body)
                        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    // kube-apiserver answers a patch that does not apply (a failed `test`, a
                    // missing path) with a generic 422 that does not say which operation.
                    json_patch::patch(&mut doc, &ops).map_err(|_| {
                        ApiError::new(
                            422,
                            "Invalid",
                            "the server rejected our request due to an error in our request",
                        )
                    })?;
                }
                PatchKind::Merge => {
                    let p: Value = serde_json::from_slice(&req.body)
                        .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
                    json_patch::merge(&mut doc, &p);
                }
                PatchKind::Strategic => {
                    if rt.crd.is_some() {
                        return Err(ApiError::new(
                            415,
                            "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                        ));
                    }
                    let p: Value = serde_json::from_slice(&req.body).map_err(|e| {
                        ApiError::bad_request(format!("invalid strategic merge patch: {e}"))
                    })?;
                    smp::apply(&mut doc, &p);
                }
                PatchKind::Apply => {}
            }
            check_shape(&doc)?;
            let patched_rv = meta_str(&doc, "resourceVersion");
            if !patched_rv.is_empty() && patched_rv != meta_str(&current, "resourceVersion") {
                return Err(conflict(rt, &name));
            }
            let new = finish_update(st, target, &current, doc, Some(&manager))?;
            Ok(Prepared {
                old: Some(current),
                new,
            })
        }
    }
}

fn invalid_patch_options(message: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("PatchOptions.meta.k8s.io \"\" is invalid: {message}"),
    )
}

/// kube-apiserver's answers to a refused apply: 409 with a cause per conflicting field, or 500
/// for a configuration its schema cannot type (duplicate keys).
fn apply_error(rt: &ResourceType, ns: &str, name: &str, error: ssa::ApplyError) -> ApiError {
    match error {
        ssa::ApplyError::Conflicts(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager_text()), "field": c.path}))
                .collect();
            ApiError::new(409, "Conflict", ssa::conflict_message(&conflicts)).with_details(
                json!({"name": name, "kind": rt.plural, "group": rt.group, "causes": causes}),
            )
        }
        // A plain error in kube-apiserver's patch handler: 500 without a reason, the object
        // named as `ns/name; group/version, Kind=K` (`/name` and `/v1` when empty).
        ssa::ApplyError::Invalid(message) => ApiError::new(
            500,
            "",
            format!(
                "failed to create typed patch object ({ns}/{name}; {}/{}, Kind={}): {message}",
                rt.group, rt.version, rt.kind
            ),
        ),
    }
}

/// Equal apart from managedFields timestamps: such a write is a no-op.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(list) = v["metadata"]["managedFields"].as_array_mut() {
            for e in list {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

fn operation_options(kind: WriteKind, req: &Req) -> Value {
    let mut options = match kind {
        WriteKind::Create => json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}),
        WriteKind::Update => json!({"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"}),
        WriteKind::Patch(_) => json!({"apiVersion": "meta.k8s.io/v1", "kind": "PatchOptions"}),
    };
    if let Some(m) = req.q("fieldManager") {
        options["fieldManager"] = json!(m);
    }
    if req.q("dryRun").is_some() {
        options["dryRun"] = json!(["All"]);
    }
    if matches!(kind, WriteKind::Patch(PatchKind::Apply)) && req.flag("force") {
        options["force"] = json!(true);
    }
    options
}

async fn write(
    server: &Arc<Server>,
    req: &Req,
    target: &Target,
    kind: WriteKind,
) -> Result<Response<Body>, ApiError> {
    let dry_run = req.dry_run()?;
    let rt = &target.rt;
    for _attempt in 0..8 {
        let prepared = prepare(&server.state(), req, target, kind)?;
        let created = prepared.old.is_none();
        if created && matches!(kind, WriteKind::Patch(_)) {
            // A patch that creates (server-side apply) needs `create` as well, with
            // kube-apiserver's terse message for this case.
            let mut a = authz::request_info(req.method.as_str(), &req.path, &req.query);
            a.verb = "create".into();
            let allowed = authz::authorize(&server.state(), &req.user, &a).allowed;
            record(server, &req.user, a.clone(), allowed);
            if !allowed {
                return Err(authz::new_forbidden(&a.group, &a.resource, &a.name, ""));
            }
        }
        let name = meta_str(&prepared.new, "name").to_string();
        let operation = if created { "CREATE" } else { "UPDATE" };
        let attributes = |object: Option<Value>| admission::Attributes {
            rt,
            subresource: target.sub(),
            operation,
            name: &name,
            namespace: target.ns(),
            object,
            old_object: prepared.old.clone(),
            user: &req.user,
            dry_run,
            options: operation_options(kind, req),
        };
        let (mutated, mut warnings) = admission::admit(
            server,
            attributes(Some(prepared.new)),
            admission::Phase::Mutating,
        )
        .await?;
        let Some(mutated) = mutated else {
            return Err(ApiError::internal("admission removed the object"));
        };
        check_shape(&mutated).map_err(|e| {
            ApiError::internal(format!(
                "a mutating webhook produced an invalid object: {}",
                e.message
            ))
        })?;
        let (new, schema_warnings) = schema_check(
            &server.state(),
            rt,
            mutated,
            prepared.old.as_ref(),
            req,
            &name,
        )?;
        warnings.extend(schema_warnings);
        let (_, validating_warnings) = admission::admit(
            server,
            attributes(Some(new.clone())),
            admission::Phase::Validating,
        )
        .await?;
        warnings.extend(validating_warnings);
        if rt.group == "rbac.authorization.k8s.io" {
            let mut decided = Vec::new();
            let checked = authz::check_rbac_write(
                &server.state(),
                &req.user,
                &rt.plural,
                target.ns(),
                &new,
                prepared.old.as_ref(),
                &mut decided,
            );
            for (a, allowed) in decided {
                record(server, &req.user, a, allowed);
            }
            checked?;
        }
        let code = if created { 201 } else { 200 };
        if dry_run {
            return Ok(json_response(code, &new, &warnings));
        }
        let mut st = server.state();
        let gr = target.gr();
        let live = st.get(&gr, target.ns(), &name).cloned();
        let live_rv = live
            .as_ref()
            .map(|o| meta_str(o, "resourceVersion").to_string());
        let old_rv = prepared
            .old
            .as_ref()
            .map(|o| meta_str(o, "resourceVersion").to_string());
        if live_rv != old_rv {
            // Changed while webhooks ran: retry like the apiserver's GuaranteedUpdate.
            if kind == WriteKind::Update && meta_str(&new, "resourceVersion").is_empty() {
                continue;
            }
            if kind == WriteKind::Update {
                return Err(conflict(rt, &name));
            }
            continue;
        }
        if let Some(old) = &prepared.old
            && same_content(old, &new)
        {
            return Ok(json_response(200, &for_version(rt, old.clone()), &warnings));
        }
        let finalized = !new["metadata"]["deletionTimestamp"].is_null()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            && rt.special != Special::Namespace;
        if finalized {
            let removed = st.remove_as(&gr, target.ns(), &name, new);
            return Ok(json_response(200, &removed.unwrap_or_default(), &warnings));
        }
        let stored = st.put(&gr, new, created).map_err(|e| match e {
            StoreError::TooManyObjects => ApiError::new(
                507,
                "InsufficientStorage",
                "the stand-in holds its maximum number of objects (--max-objects)",
            ),
        })?;
        if rt.special == Special::Crd {
            st.registry
                .register_crd(&name, &stored)
                .map_err(|m| invalid(rt, &name, "spec", &m))?;
        }
        if rt.special == Special::Namespace {
            st.remove_if_finalized(&gr, &stored);
        }
        if is_cluster_role(rt) {
            authz::aggregate(&mut st);
        }
        st.collect_if_owners_gone(&gr, target.ns(), &name);
        return Ok(json_response(code, &for_version(rt, stored), &warnings));
    }
    Err(conflict(rt, target.name.as_deref().unwrap_or_default()))
}

fn is_cluster_role(rt: &ResourceType) -> bool {
    rt.group == "rbac.authorization.k8s.io" && rt.plural == "clusterroles"
}

/// Prunes, defaults and validates a custom resource against its CRD's schema, honouring
/// `fieldValidation` (Strict: unknown fields are an error; Warn, the default: a warning).
fn schema_check(
    st: &State,
    rt: &ResourceType,
    mut obj: Value,
    old: Option<&Value>,
    req: &Req,
    name: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    if rt.group == "admissionregistration.k8s.io" {
        let mutating = rt.plural == "mutatingwebhookconfigurations";
        webhookconfig::default(&mut obj, mutating);
        let errors = webhookconfig::validate(&obj);
        if !errors.is_empty() {
            return Err(invalid_many(rt, name, &errors));
        }
        return Ok((obj, Vec::new()));
    }
    let Some(crd_name) = &rt.crd else {
        let warnings = builtin::check(rt, &mut obj, old, req.q("fieldValidation"))?;
        return Ok((obj, warnings));
    };
    let crd_gr = GroupResource {
        group: "apiextensions.k8s.io".into(),
        resource: "customresourcedefinitions".into(),
    };
    let schema = st.get(&crd_gr, "", crd_name).and_then(|crd| {
        crd["spec"]["versions"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == rt.version.as_str())
            .map(|v| v["schema"]["openAPIV3Schema"].clone())
    });
    let Some(schema) = schema.filter(Value::is_object) else {
        return Ok((obj, Vec::new()));
    };
    let unknown = schema::prune_and_default(&schema, &mut obj);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        let listed: Vec<String> = unknown
            .iter()
            .map(|u| format!("unknown field \"{u}\""))
            .collect();
        match req.q("fieldValidation") {
            Some("Strict") => {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                    listed.join(", "),
                    kind = rt.kind,
                    version = rt.version
                )));
            }
            Some("Ignore") => {}
            _ => warnings.extend(listed),
        }
    }
    let errors = schema::validate(&schema, &obj, old);
    if !errors.is_empty() {
        return Err(invalid_many(rt, name, &errors));
    }
    Ok((obj, warnings))
}

fn invalid_many(rt: &ResourceType, name: &str, errors: &[schema::FieldError]) -> ApiError {
    let kind = if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    let texts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let joined = if texts.len() == 1 {
        texts.join("")
    } else {
        format!("[{}]", texts.join(", "))
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": "FieldValueInvalid", "message": e.message, "field": e.field}))
        .collect();
    ApiError::new(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {joined}"),
    )
    .with_details(json!({"name": name, "kind": rt.kind, "group": rt.group, "causes": causes}))
}

fn delete_options(req: &Req) -> Value {
    serde_json::from_slice::<Value>(&req.body).unwrap_or_else(|_| json!({}))
}

async fn delete(
    server: &Arc<Server>,
    req: &Req,
    target: &Target,
) -> Result<Response<Body>, ApiError> {
    let rt = &target.rt;
    let name = target.name.clone().unwrap_or_default();
    let options = delete_options(req);
    let dry_run = req.dry_run()?
        || options["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let current = server
        .state()
        .get(&target.gr(), target.ns(), &name)
        .cloned()
        .ok_or_else(|| not_found(rt, &name))?;
    let pre = &options["preconditions"];
    if let Some(uid) = pre["uid"].as_str()
        && uid != meta_str(&current, "uid")
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                qualified(rt),
                meta_str(&current, "uid")
            ),
        ));
    }
    if let Some(rv) = pre["resourceVersion"].as_str()
        && rv != meta_str(&current, "resourceVersion")
    {
        return Err(conflict(rt, &name));
    }
    let mut warnings = Vec::new();
    for phase in [admission::Phase::Mutating, admission::Phase::Validating] {
        let attributes = admission::Attributes {
            rt,
            subresource: "",
            operation: "DELETE",
            name: &name,
            namespace: target.ns(),
            object: None,
            old_object: Some(current.clone()),
            user: &req.user,
            dry_run,
            options: json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"}),
        };
        warnings.extend(admission::admit(server, attributes, phase).await?.1);
    }
    if dry_run {
        return Ok(json_response(200, &current, &warnings));
    }
    let policy = req
        .q("propagationPolicy")
        .or(options["propagationPolicy"].as_str());
    let orphan = policy == Some("Orphan") || options["orphanDependents"].as_bool() == Some(true);
    if let Some(p) = policy
        && !matches!(p, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    let result = {
        let mut st = server.state();
        let result = if policy == Some("Foreground") && !orphan {
            st.delete_foreground(&target.gr(), target.ns(), &name)
        } else {
            st.delete(&target.gr(), target.ns(), &name, orphan)
        }
        .ok_or_else(|| not_found(rt, &name))?;
        if is_cluster_role(rt) {
            authz::aggregate(&mut st);
        }
        result
    };
    Ok(json_response(200, &for_version(rt, result), &warnings))
}

async fn delete_collection(
    server: &Arc<Server>,
    req: &Req,
    target: &Target,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(req)?;
    let names: Vec<String> = server
        .state()
        .list(&target.gr(), target.namespace.as_deref())
        .filter(|(_, o)| labels.matches_object(o) && fields.matches(o))
        .map(|((_, n), _)| n.clone())
        .collect();
    let mut items = Vec::new();
    for name in names {
        let t = Target {
            rt: target.rt.clone(),
            namespace: target.namespace.clone(),
            name: Some(name),
            subresource: None,
        };
        if let Ok(resp) = Box::pin(delete(server, req, &t)).await
            && resp.status().is_success()
        {
            items.push(json!({"metadata": {"name": t.name}}));
        }
    }
    Ok(json_response(
        200,
        &json!({"apiVersion": target.rt.api_version(), "kind": format!("{}List", target.rt.kind),
                "metadata": {"resourceVersion": server.state().current_rv().to_string()}, "items": items}),
        &[],
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_query;

    #[test]
    fn query_strings_decode_as_the_api_server_reads_them() {
        let q = parse_query(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=1&allowWatchBookmarks&&fieldSelector=metadata.name%3D%C3%A9t%C3%A9",
        ));
        assert_eq!(q["labelSelector"], "app=web,tier in (a,b)");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["allowWatchBookmarks"], "");
        assert_eq!(q["fieldSelector"], "metadata.name=été");
        assert_eq!(q.len(), 4);
        // Malformed escapes stay as written; the last of repeated keys wins.
        let q = parse_query(Some("a=100%25&b=%zz%4&b=50%"));
        assert_eq!(q["a"], "100%");
        assert_eq!(q["b"], "50%");
        assert!(parse_query(None).is_empty());
    }
}
