//! What happens to every request before its handler (counting, recording, fault injection),
//! the echo of unknown routes, and the `/__mock` introspection routes.

use crate::error::MockError;
use crate::{faults, Seq};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One request as the mock received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The request's number (1, 2, …), also in its `x-request-id` answer header.
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Every header, verbatim (including `authorization`), by lower-case name; a repeated
    /// header's values are joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The body as UTF-8 (invalid sequences replaced).
    pub body: String,
}

/// The request counter and, unless `--record 0`, the last requests.
pub struct Traffic {
    count: AtomicU64,
    recorder: Option<Recorder>,
}

struct Recorder {
    capacity: usize,
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl Traffic {
    pub fn new(record: usize) -> Self {
        Traffic {
            count: AtomicU64::new(0),
            recorder: (record > 0).then(|| Recorder {
                capacity: record,
                entries: Mutex::new(VecDeque::with_capacity(record.min(1024))),
            }),
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.recorder
            .as_ref()
            .map(|r| r.entries().iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn clear(&self) -> usize {
        self.recorder.as_ref().map_or(0, |r| {
            let mut entries = r.entries();
            let n = entries.len();
            entries.clear();
            n
        })
    }

    fn recorded_len(&self) -> usize {
        self.recorder.as_ref().map_or(0, |r| r.entries().len())
    }

    fn record_limit(&self) -> usize {
        self.recorder.as_ref().map_or(0, |r| r.capacity)
    }
}

impl Recorder {
    fn entries(&self) -> MutexGuard<'_, VecDeque<RecordedRequest>> {
        // A panic while holding the lock leaves a consistent queue: keep using it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Buffers the body, remembers the request, and hands back an equivalent one.
    async fn record(&self, seq: u64, req: Request) -> Result<Request, MockError> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, crate::MAX_BODY_BYTES)
            .await
            .map_err(|e| MockError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("Cannot read the request body: {e}"),
                kind: "invalid_request_error",
                param: None,
                code: Some("request_too_large"),
            })?;
        let entry = RecordedRequest {
            seq,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: headers(&parts.headers),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        {
            let mut entries = self.entries();
            if entries.len() >= self.capacity {
                entries.pop_front();
            }
            entries.push_back(entry);
        }
        Ok(Request::from_parts(parts, Body::from(bytes)))
    }
}

fn headers(map: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::<String, String>::new();
    for (name, value) in map {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// Counts and records every request under `/v1`, applies the `x-mock-delay-ms` and
/// `x-mock-status` headers, and numbers the answer with `x-request-id`.
pub async fn intercept(
    State(traffic): State<Arc<Traffic>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path.starts_with("/__mock/") {
        return next.run(req).await;
    }
    if path != "/v1" && !path.starts_with("/v1/") {
        return MockError::not_found(format!("Invalid URL ({} {}).", req.method(), path), None)
            .into_response();
    }
    let seq = traffic.count.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(recorder) = &traffic.recorder {
        req = match recorder.record(seq, req).await {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
    }
    let mut response = match faults::inject(req.headers()).await {
        Some(fault) => fault.into_response(),
        None => {
            req.extensions_mut().insert(Seq(seq));
            next.run(req).await
        }
    };
    if let Ok(id) = HeaderValue::try_from(format!("req_mock{seq}")) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// Any other route under `/v1`, any method: what arrived, so forwarding can be checked.
pub async fn echo(req: Request) -> Result<Json<Value>, MockError> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    if !path.starts_with("/v1") {
        // An unknown `/__mock/…` route.
        return Err(MockError::not_found(
            format!("Invalid URL ({method} {path})."),
            None,
        ));
    }
    // Counted frame by frame: an upload of any size is never held in memory.
    let mut body = req.into_body();
    let mut body_bytes = 0_u64;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| MockError::invalid(None, format!("Cannot read the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            body_bytes += data.len() as u64;
        }
    }
    Ok(Json(json!({
        "object": "mock.echo",
        "method": method,
        "path": path,
        "query": query,
        "body_bytes": body_bytes,
    })))
}

/// `GET /__mock/requests`.
pub async fn list_requests(State(traffic): State<Arc<Traffic>>) -> Json<Value> {
    Json(json!({"object": "list", "data": traffic.recorded()}))
}

/// `DELETE /__mock/requests`.
pub async fn clear_requests(State(traffic): State<Arc<Traffic>>) -> Json<Value> {
    let deleted = traffic.clear();
    Json(json!({"object": "mock.requests.deleted", "deleted": deleted}))
}

/// `GET /__mock/stats`.
pub async fn stats(State(traffic): State<Arc<Traffic>>) -> Json<Value> {
    Json(json!({
        "object": "mock.stats",
        "requests": traffic.count(),
        "recorded": traffic.recorded_len(),
        "record_limit": traffic.record_limit(),
    }))
}
