//! `POST /v1/completions` (legacy text completions).

use crate::error::MockError;
use crate::input::{read_json, Prompt, StreamOptions};
use crate::tokens::{completion_text, completion_words, Counts};
use crate::{sse, Seq};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    #[serde(default)]
    prompt: Option<Prompt>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

pub async fn create(
    Extension(Seq(seq)): Extension<Seq>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MockError> {
    let req: CompletionRequest = read_json(body).await?;
    let prompt = req.prompt.as_ref().map_or(0, Prompt::tokens);
    let counts = Counts::new(prompt, req.max_tokens, &headers);
    let id = format!("cmpl-mock{seq}");
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
        "object": "text_completion",
        "created": created,
        "model": req.model,
        "choices": [{
            "text": completion_text(counts.completion),
            "index": 0,
            "logprobs": null,
            "finish_reason": counts.finish_reason()
        }],
        "usage": counts.chat_usage(),
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
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": choices,
        });
        if include_usage {
            chunk["usage"] = usage.unwrap_or(Value::Null);
        }
        sse::data(&chunk)
    };
    let choice = |text: &str, finish_reason: Option<&str>| json!([{"text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason}]);
    let words = completion_words(counts.completion);
    let mut events = Vec::with_capacity(words.len() + 3);
    for word in &words {
        events.push(chunk(choice(word, None), None));
    }
    events.push(chunk(choice("", Some(counts.finish_reason())), None));
    if include_usage {
        events.push(chunk(json!([]), Some(counts.chat_usage())));
    }
    events.push(sse::done());
    sse::stream(events, headers)
}
