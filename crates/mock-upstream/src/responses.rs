//! `POST /v1/responses` (the Responses API), plain or streamed as `response.*` events.

use crate::error::MockError;
use crate::input::{read_json, Content};
use crate::tokens::{completion_text, completion_words, words, Counts};
use crate::{sse, Seq};
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    model: String,
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    previous_response_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<Item>),
}

/// A message (`content`) or a tool result (`output`); other fields do not count.
#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    output: Option<Value>,
}

impl Input {
    fn words(&self) -> u64 {
        match self {
            Input::Text(s) => words(s),
            Input::Items(items) => items
                .iter()
                .map(|item| {
                    item.content.as_ref().map_or(0, Content::words)
                        + item
                            .output
                            .as_ref()
                            .and_then(Value::as_str)
                            .map_or(0, words)
                })
                .sum(),
        }
    }
}

pub async fn create(
    Extension(Seq(seq)): Extension<Seq>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MockError> {
    let req: ResponsesRequest = read_json(body).await?;
    let prompt =
        req.instructions.as_deref().map_or(0, words) + req.input.as_ref().map_or(0, Input::words);
    let counts = Counts::new(prompt, req.max_output_tokens, &headers);
    let shape = Shape {
        id: format!("resp_mock{seq}"),
        message_id: format!("msg_mock{seq}"),
        created_at: crate::now(),
        req: &req,
        counts,
    };
    if req.stream.unwrap_or(false) {
        return Ok(stream(&shape, &headers));
    }
    Ok(Json(shape.response(true)).into_response())
}

/// What the plain answer and the stream events are built from.
struct Shape<'a> {
    id: String,
    message_id: String,
    created_at: u64,
    req: &'a ResponsesRequest,
    counts: Counts,
}

impl Shape<'_> {
    fn message(&self, done: bool) -> Value {
        let content = if done {
            json!([self.part(&completion_text(self.counts.completion))])
        } else {
            json!([])
        };
        json!({
            "id": self.message_id,
            "type": "message",
            "status": if done { "completed" } else { "in_progress" },
            "role": "assistant",
            "content": content
        })
    }

    fn part(&self, text: &str) -> Value {
        json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    }

    /// The `response` object, finished (with output and usage) or just started.
    fn response(&self, done: bool) -> Value {
        let (status, incomplete) = match (done, self.counts.truncated) {
            (false, _) => ("in_progress", Value::Null),
            (true, false) => ("completed", Value::Null),
            (true, true) => ("incomplete", json!({"reason": "max_output_tokens"})),
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": self.req.instructions,
            "max_output_tokens": self.req.max_output_tokens,
            "model": self.req.model,
            "output": if done { json!([self.message(true)]) } else { json!([]) },
            "parallel_tool_calls": true,
            "previous_response_id": self.req.previous_response_id,
            "reasoning": {"effort": null, "summary": null},
            "store": true,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": if done { self.counts.responses_usage() } else { Value::Null },
            "user": null,
            "metadata": self.req.metadata.clone().unwrap_or_else(|| json!({}))
        })
    }
}

fn stream(shape: &Shape<'_>, headers: &HeaderMap) -> Response {
    let deltas = completion_words(shape.counts.completion);
    let text = completion_text(shape.counts.completion);
    let mut events = Vec::with_capacity(deltas.len() + 8);
    let mut push = |kind: &str, mut body: Value| {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(events.len());
        events.push(sse::event(kind, &body));
    };
    let at = |more: Value| {
        let mut v = json!({"item_id": shape.message_id, "output_index": 0, "content_index": 0});
        if let (Some(v), Value::Object(more)) = (v.as_object_mut(), more) {
            v.extend(more);
        }
        v
    };
    push(
        "response.created",
        json!({"response": shape.response(false)}),
    );
    push(
        "response.in_progress",
        json!({"response": shape.response(false)}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": shape.message(false)}),
    );
    push(
        "response.content_part.added",
        at(json!({"part": shape.part("")})),
    );
    for delta in &deltas {
        push(
            "response.output_text.delta",
            at(json!({"delta": delta, "logprobs": []})),
        );
    }
    push(
        "response.output_text.done",
        at(json!({"text": text, "logprobs": []})),
    );
    push(
        "response.content_part.done",
        at(json!({"part": shape.part(&text)})),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": shape.message(true)}),
    );
    let last = if shape.counts.truncated {
        "response.incomplete"
    } else {
        "response.completed"
    };
    push(last, json!({"response": shape.response(true)}));
    sse::stream(events, headers)
}
