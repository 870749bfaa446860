//! An OpenAI-compatible fake provider for Keyplane's gateway tests and benchmarks.
//!
//! Start it in-process with [`spawn`] (tests) or as the `keyplane-mock-upstream` binary
//! (benchmarks, Python tests): `keyplane-mock-upstream [--listen 127.0.0.1:0] [--record 100]`
//! prints exactly one line, `listening on http://127.0.0.1:PORT`, then serves until SIGINT/SIGTERM.
//!
//! # Endpoints
//!
//! | Route | Answer |
//! |---|---|
//! | `POST /v1/chat/completions` | `chat.completion`, or SSE `chat.completion.chunk`s with `"stream": true` |
//! | `POST /v1/completions` | `text_completion`, or SSE chunks with `"stream": true` |
//! | `POST /v1/embeddings` | one deterministic vector per input (`float` or `base64`) |
//! | `POST /v1/moderations` | one unflagged result per input |
//! | `POST /v1/responses` | a `response`, or SSE `response.*` events with `"stream": true` |
//! | `POST /v1/images/generations` | `n` images, a 1×1 PNG as `b64_json` (or a `url`) |
//! | `GET /v1/models`, `GET /v1/models/{id}` | [`MODELS`]; an unknown id is a 404 `model_not_found` |
//! | anything else under `/v1`, any method | 200 `{"object":"mock.echo","method","path","query","body_bytes"}` |
//! | `GET /__mock/requests` | the last `--record` requests, oldest first (see [`RecordedRequest`]) |
//! | `DELETE /__mock/requests` | forgets the recorded requests |
//! | `GET /__mock/stats` | `{"object":"mock.stats","requests","recorded","record_limit"}` |
//!
//! Every answer's `model` echoes the request's `model`. Errors use OpenAI's envelope
//! `{"error":{"message","type","param","code"}}`; a body that is not the expected JSON is a 400.
//! Paths outside `/v1` and `/__mock` are 404s.
//!
//! # Token counting rule
//!
//! Tests compute expected usage with this rule; it is the contract of this crate.
//!
//! * A *word* is a maximal run of non-whitespace characters (`str::split_whitespace`).
//! * **Prompt tokens** (`prompt_tokens`, `input_tokens`) are `max(1, W)` where `W` is:
//!   * chat completions: the words of every message's `content`; a string content counts
//!     itself, an array content counts the `text` of each part (image/audio parts count 0).
//!     Roles, names, tool calls and every other field count 0;
//!   * completions (`prompt`), embeddings and moderations (`input`): a string counts its
//!     words, an array of strings the sum of their words, an array of integers (token ids)
//!     its length, an array of integer arrays the sum of their lengths; an absent prompt 0;
//!   * responses: the words of `instructions`, plus `input` as a string, or for an array of
//!     items the words of each item's `content` (string or parts, as for chat) and of its
//!     `output` string (tool results);
//!   * images: the words of `prompt`.
//! * **Completion tokens** (`completion_tokens`, `output_tokens`) are `min(limit, 16)`, where
//!   `limit` is `max_completion_tokens`, else `max_tokens` (chat), `max_tokens` (completions),
//!   `max_output_tokens` (responses), and 16 when none is given. Images: 16 per image.
//! * `total_tokens` is their sum; `cached_tokens` and `reasoning_tokens` are 0 (see the
//!   `x-mock-cached-tokens` header below).
//! * The generated text has exactly `completion_tokens` words, [`completion_text`]; `finish_reason`
//!   is `"length"` when a limit below 16 cut it short, else `"stop"`. A stream sends one chunk
//!   (or `response.output_text.delta`) per word; concatenated, they equal the non-streamed text.
//!
//! # Streams
//!
//! Chat and completions streams are `data: {chunk}` lines: one chunk per word (the first also
//! carries `role`; with 0 completion tokens chat still sends that chunk, with empty content), then a chunk with an empty delta and the `finish_reason`, then — only when
//! `stream_options.include_usage` is true — a chunk with `"choices": []` and `usage`, then
//! `data: [DONE]`. When usage is included every earlier chunk carries `"usage": null`, as OpenAI
//! does. Responses streams are `event: TYPE` / `data: {…}` pairs: `response.created`,
//! `response.in_progress`, `response.output_item.added`, `response.content_part.added`, one
//! `response.output_text.delta` per word, `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`, `response.completed` (whose
//! `response` carries `usage`); there is no `[DONE]`. When `max_output_tokens` < 16 cut the
//! text short, the response's `status` is `"incomplete"` and the last event is
//! `response.incomplete`, as OpenAI does. Each event is its own body frame.
//!
//! # Control headers (any request under `/v1`)
//!
//! * `x-mock-delay-ms: N` — sleep N ms before answering (timeout tests).
//! * `x-mock-status: S` — answer status S (≥ 400) with an OpenAI error envelope whose `type`
//!   and `code` match OpenAI's for that status (429 `rate_limit_exceeded`, …). Applied after
//!   the delay. The request is still counted and recorded.
//! * `x-mock-chunk-delay-ms: N` — sleep N ms between stream events.
//! * `x-mock-cached-tokens: N` — report `min(N, prompt tokens)` as `cached_tokens`.
//!
//! Every answer carries `x-request-id: req_mock_SEQ`, SEQ being the request's number.
//!
//! # Cost
//!
//! The per-request overhead is one atomic increment and a few header look-ups; with
//! `--record 0` the recorder takes no lock and buffers no body, so the mock can serve as the
//! baseline of throughput benchmarks. Nothing is logged per request.

mod chat;
mod completions;
mod embeddings;
mod error;
mod faults;
mod images;
mod input;
mod models;
mod moderations;
mod responses;
mod sse;
mod tokens;
mod traffic;

pub use error::MockError;
pub use models::MODELS;
pub use tokens::{completion_text, MAX_COMPLETION_TOKENS};
pub use traffic::RecordedRequest;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use traffic::Traffic;

/// Largest request body accepted (and recorded).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The default of `--record`: how many requests `GET /__mock/requests` remembers.
pub const DEFAULT_RECORD: usize = 100;

/// The mock's router, remembering the last `record` requests (0: none).
pub fn router(record: usize) -> Router {
    build(Arc::new(Traffic::new(record)))
}

fn build(traffic: Arc<Traffic>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::create))
        .route("/v1/completions", post(completions::create))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/moderations", post(moderations::create))
        .route("/v1/responses", post(responses::create))
        .route("/v1/images/generations", post(images::generate))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::retrieve))
        .route(
            "/__mock/requests",
            get(traffic::list_requests).delete(traffic::clear_requests),
        )
        .route("/__mock/stats", get(traffic::stats))
        // Unknown routes and other methods on known routes: forwarding checks, not errors.
        .fallback(traffic::echo)
        .method_not_allowed_fallback(traffic::echo)
        .layer(middleware::from_fn_with_state(
            traffic.clone(),
            traffic::intercept,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(traffic)
}

/// Serves on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    record: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(record))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Listens on `listen` with a deep accept queue, as a provider's front end has: a burst of new
/// connections from the proxy under test must not overflow the 128 that `TcpListener::bind`
/// asks for and stall in SYN retransmission.
pub fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match listen {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(4096)
}

/// A mock upstream running on the current Tokio runtime. Dropping it stops the server.
pub struct MockUpstream {
    addr: SocketAddr,
    traffic: Arc<Traffic>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Binds `listen` (port 0 picks a free port) and serves in a background task, remembering the
/// last `record` requests.
pub async fn spawn(listen: SocketAddr, record: usize) -> std::io::Result<MockUpstream> {
    let listener = bind(listen)?;
    let addr = listener.local_addr()?;
    let traffic = Arc::new(Traffic::new(record));
    let app = build(traffic.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    // Tracked by the returned handle: `shutdown` awaits it, dropping the handle stops it.
    #[allow(clippy::disallowed_methods)]
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // A dropped sender stops the server too.
                let _ = stopped.await;
            })
            .await
    });
    Ok(MockUpstream {
        addr,
        traffic,
        stop: Some(stop),
        task: Some(task),
    })
}

impl MockUpstream {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/v1`: what an OpenAI SDK takes as its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The recorded requests, oldest first (what `GET /__mock/requests` returns).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.traffic.recorded()
    }

    /// Forgets the recorded requests; returns how many there were.
    pub fn clear_requests(&self) -> usize {
        self.traffic.clear()
    }

    /// Requests served under `/v1` since start (what `GET /__mock/stats` returns).
    pub fn request_count(&self) -> u64 {
        self.traffic.count()
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A request's number (1, 2, …), set by the interception middleware; ids derive from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seq(pub u64);

/// Seconds since the Unix epoch, for `created`.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
