use crate::helpers::{post, spawn};
use keyplane_mock_upstream::completion_text;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn non_streamed_chat_reports_usage_by_the_documented_rule() {
    let mock = spawn(0).await;
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are  terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "hello there world"},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
            ]}
        ],
        "max_tokens": 5
    });
    let reply = post(mock.addr(), "/v1/chat/completions", &body, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(v["created"].as_u64().unwrap() > 0);
    // 3 + 3 words; min(5, 16) completion tokens.
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 11);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content, completion_text(5));
    assert_eq!(content.split_whitespace().count(), 5);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn defaults_to_sixteen_tokens_and_counts_at_least_one_prompt_token() {
    let mock = spawn(0).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": ""}],
                      "max_completion_tokens": 100});
    let v = post(
        mock.addr(),
        "/v1/chat/completions",
        &body,
        &[("x-mock-cached-tokens", "9")],
    )
    .await
    .json();
    assert_eq!(v["usage"]["prompt_tokens"], 1);
    assert_eq!(v["usage"]["completion_tokens"], 16);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

fn chunks(data: &[String]) -> Vec<Value> {
    data.iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn stream_with_include_usage_ends_with_a_usage_chunk_then_done() {
    let mock = spawn(0).await;
    let body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "one two three four"}],
        "max_tokens": 3,
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let reply = post(mock.addr(), "/v1/chat/completions", &body, &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let data = reply.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data);
    // 3 word chunks, the finish chunk, the usage chunk.
    assert_eq!(chunks.len(), 5, "{data:?}");
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gpt-4o"));
    let text: String = chunks[..3]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, completion_text(3));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert!(chunks[..4].iter().all(|c| c["usage"].is_null()));
    let last = &chunks[4];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 4);
    assert_eq!(last["usage"]["completion_tokens"], 3);
    assert_eq!(last["usage"]["total_tokens"], 7);
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage_chunk() {
    let mock = spawn(0).await;
    let body = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true
    });
    let data = post(mock.addr(), "/v1/chat/completions", &body, &[])
        .await
        .sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data);
    assert_eq!(chunks.len(), 16 + 1);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert!(chunks
        .iter()
        .all(|c| !c["choices"].as_array().unwrap().is_empty()));
}

#[tokio::test]
async fn paced_stream_sends_each_chunk_as_it_is_produced() {
    let mock = spawn(0).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 2, "stream": true});
    let reply = post(
        mock.addr(),
        "/v1/chat/completions",
        &body,
        &[("x-mock-chunk-delay-ms", "150")],
    )
    .await;
    // 2 words, the finish chunk and [DONE]: 4 events, 3 pauses.
    assert_eq!(reply.sse_data().len(), 4);
    let first = reply.chunk_times[0];
    let last = *reply.chunk_times.last().unwrap();
    assert!(
        last >= Duration::from_millis(450),
        "{:?}",
        reply.chunk_times
    );
    assert!(
        last - first >= Duration::from_millis(300),
        "{:?}",
        reply.chunk_times
    );
}
