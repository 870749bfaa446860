//! `POST /v1/chat/completions`.

use crate::error::MockError;
use crate::input::{read_json, Content, StreamOptions};
use crate::tokens::{completion_text, completion_words, Counts};
use crate::{sse, Seq};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<Content>,
}

pub async fn create(
    Extension(Seq(seq)): Extension<Seq>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MockError> {
    let req: ChatRequest = read_json(body).await?;
    let prompt = req
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .map(Content::words)
        .sum();
    let counts = Counts::new(
        prompt,
        req.max_completion_tokens.or(req.max_tokens),
        &headers,
    );
    let id = format!("chatcmpl-mock{seq}");
    let created = crate::now();
    if req.stream.unwrap_or(false) {
        let include_usage = StreamOptions::include_usage(req.stream_options.as_ref());
        return Ok(stream(
            &id,
            created,
            &req.model,
            counts,
            include_usage,
            &headers,
        ));
    }
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": req.model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": completion_text(counts.completion),
                "refusal": null,
                "annotations": []
            },
            "logprobs": null,
            "finish_reason": counts.finish_reason()
        }],
        "usage": counts.chat_usage(),
        "service_tier": "default",
        "system_fingerprint": "fp_mock"
    }))
    .into_response())
}

fn stream(
    id: &str,
    created: u64,
    model: &str,
    counts: Counts,
    include_usage: bool,
    headers: &HeaderMap,
) -> Response {
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": choices,
        });
        if include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        sse::data(&chunk)
    };
    let choice = |delta: Value, finish_reason: Option<&str>| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]);
    let mut words = completion_words(counts.completion);
    if words.is_empty() {
        // No token to send: the role still arrives, as from OpenAI.
        words.push(String::new());
    }
    let mut events = Vec::with_capacity(words.len() + 3);
    for (i, word) in words.into_iter().enumerate() {
        let delta = if i == 0 {
            json!({"role": "assistant", "content": word, "refusal": null})
        } else {
            json!({"content": word})
        };
        events.push(chunk(choice(delta, None), None));
    }
    events.push(chunk(choice(json!({}), Some(counts.finish_reason())), None));
    if include_usage {
        events.push(chunk(json!([]), Some(counts.chat_usage())));
    }
    events.push(sse::done());
    sse::stream(events, headers)
}
