//! Watches: initial events, history replay from a resourceVersion, bookmarks, timeouts,
//! 410 Gone for a compacted resourceVersion, and fault-injected drops.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Server;
use super::api::{ApiError, Body, Req, Target, selectors};
use super::registry::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{Event, EventType};
use super::table;

struct Filter {
    rt: ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    table: bool,
    include_object: Option<String>,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }

    fn render(&self, obj: &Value) -> Value {
        let mut obj = obj.clone();
        obj["apiVersion"] = json!(self.rt.api_version());
        obj["kind"] = json!(self.rt.kind);
        if self.table {
            let rv = obj["metadata"]["resourceVersion"].clone();
            table::to_table(
                &self.rt,
                &[obj],
                json!({"resourceVersion": rv}),
                self.include_object.as_deref(),
            )
        } else {
            obj
        }
    }

    /// The event a watcher with this filter sees for a store event, if any.
    fn translate(&self, e: &Event) -> Option<Value> {
        if e.gr != self.rt.group_resource() {
            return None;
        }
        if self.namespace.as_ref().is_some_and(|ns| *ns != e.namespace) {
            return None;
        }
        let now = self.matches(&e.object);
        let type_ = match e.type_ {
            EventType::Added | EventType::Deleted if now => e.type_.as_str(),
            EventType::Modified => {
                let before = e.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            _ => return None,
        };
        Some(json!({"type": type_, "object": self.render(&e.object)}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

pub fn expired(rv: u64, oldest: u64) -> Value {
    json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {rv} ({oldest})"),
        "reason": "Expired", "code": 410,
    }})
}

pub fn serve(server: &Arc<Server>, req: &Req, target: &Target) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(req)?;
    let filter = Filter {
        rt: target.rt.clone(),
        namespace: target.namespace.clone(),
        labels,
        fields,
        table: req.wants_table(),
        include_object: req.q("includeObject").map(str::to_string),
    };
    let bookmarks = matches!(req.q("allowWatchBookmarks"), Some("true" | "1"));
    let send_initial = matches!(req.q("sendInitialEvents"), Some("true" | "1"));
    let timeout = match req.q("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        // kube-apiserver picks 30-60 minutes when the client does not ask.
        None => Duration::from_secs(1800 + super::store::random_u64() % 1800),
    };
    let requested_rv = req.q("resourceVersion").map(str::to_string);

    let mut initial: Vec<Value> = Vec::new();
    let (rx, start_rv) = {
        let st = server.state();
        let rx = st.subscribe();
        let current = st.current_rv();
        let snapshot = |initial: &mut Vec<Value>| {
            for (_, obj) in st.list(&target.rt.group_resource(), target.namespace.as_deref()) {
                if filter.matches(obj) {
                    initial.push(json!({"type": "ADDED", "object": filter.render(obj)}));
                }
            }
        };
        match requested_rv.as_deref() {
            _ if send_initial => {
                snapshot(&mut initial);
                if bookmarks {
                    initial.push(bookmark(&filter.rt, current, true));
                }
            }
            None | Some("0") => snapshot(&mut initial),
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv:?}"))
                })?;
                match st.events_since(rv) {
                    None => initial.push(expired(rv, st.oldest_watchable())),
                    Some(events) => {
                        initial.extend(events.iter().filter_map(|e| filter.translate(e)))
                    }
                }
            }
        }
        (rx, current)
    };
    let gone = initial.iter().any(|e| e["type"] == "ERROR");

    let (tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let mut drop_rx = server.drop_watches.subscribe();
    let mut shutdown_rx = server.shutdown.subscribe();
    let interval = server.bookmark_interval;
    tokio::spawn(async move {
        for e in &initial {
            if tx.send(Ok(line(e))).await.is_err() {
                return;
            }
        }
        if gone {
            return;
        }
        let mut rx: broadcast::Receiver<Arc<Event>> = rx;
        let mut last_rv = start_rv;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = drop_rx.changed() => {
                    // An abrupt drop: the stream ends with an error, as a cut connection would.
                    let _ = tx.send(Err(std::io::Error::other("watch dropped by fault injection"))).await;
                    return;
                }
                _ = shutdown_rx.changed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(Ok(line(&bookmark(&filter.rt, last_rv, false)))).await.is_err() {
                        return;
                    }
                }
                received = rx.recv() => match received {
                    Ok(e) => {
                        if e.rv <= start_rv {
                            continue;
                        }
                        last_rv = last_rv.max(e.rv);
                        if let Some(out) = filter.translate(&e)
                            && tx.send(Ok(line(&out))).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher too slow to keep up is closed; it resumes from its last
                    // resourceVersion (or relists after 410), as with a real server.
                    Err(_) => return,
                }
            }
        }
    });
    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    })
    .boxed();
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": meta}})
}
