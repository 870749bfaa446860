//! Server-sent events, one body frame per event, optionally paced by `x-mock-chunk-delay-ms`.

use crate::input::header_u64;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;

/// `data: {json}`.
pub fn data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// `event: KIND` and `data: {json}`.
pub fn event(kind: &str, value: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {value}\n\n"))
}

/// The end of a chat or completions stream.
pub fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// A `text/event-stream` answer sending `events` as separate frames, sleeping
/// `x-mock-chunk-delay-ms` between two of them.
pub fn stream(events: Vec<Bytes>, headers: &HeaderMap) -> Response {
    let delay = header_u64(headers, "x-mock-chunk-delay-ms")
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    let frames = futures_util::stream::unfold(
        (events.into_iter(), true),
        move |(mut rest, first)| async move {
            let frame = rest.next()?;
            if let (false, Some(delay)) = (first, delay) {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, Infallible>(frame), (rest, false)))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}
