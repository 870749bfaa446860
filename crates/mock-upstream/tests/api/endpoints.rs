use crate::helpers::{get, post, send, spawn};
use serde_json::{json, Value};

#[tokio::test]
async fn completions_count_prompt_words_or_token_ids() {
    let mock = spawn(0).await;
    for (prompt, expected) in [
        (json!("say this is a test"), 5),
        (json!(["a b", "c"]), 3),
        (json!([1, 2, 3, 4]), 4),
        (json!([[1, 2], [3]]), 3),
    ] {
        let v = post(
            mock.addr(),
            "/v1/completions",
            &json!({"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "max_tokens": 7}),
            &[],
        )
        .await
        .json();
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["usage"]["prompt_tokens"], expected);
        assert_eq!(v["usage"]["completion_tokens"], 7);
        assert_eq!(
            v["choices"][0]["text"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .count(),
            7
        );
    }
}

#[tokio::test]
async fn embeddings_return_one_vector_per_input() {
    let mock = spawn(0).await;
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"]});
    let v = post(mock.addr(), "/v1/embeddings", &body, &[]).await.json();
    assert_eq!(v["model"], "text-embedding-3-small");
    assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8);
    // Deterministic.
    let again = post(mock.addr(), "/v1/embeddings", &body, &[]).await.json();
    assert_eq!(again["data"], v["data"]);
    // base64: 8 little-endian f32 = 32 bytes = 44 characters.
    let b64 = json!({"model": "m", "input": "hello world", "encoding_format": "base64"});
    let v = post(mock.addr(), "/v1/embeddings", &b64, &[]).await.json();
    assert_eq!(v["data"][0]["embedding"].as_str().unwrap().len(), 44);
}

#[tokio::test]
async fn responses_plain_and_streamed_carry_usage() {
    let mock = spawn(0).await;
    let body = json!({
        "model": "gpt-4o",
        "instructions": "be brief",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "tell me a joke"}]}]
    });
    let v = post(mock.addr(), "/v1/responses", &body, &[]).await.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["usage"]["input_tokens"], 6);
    assert_eq!(v["usage"]["output_tokens"], 16);
    assert_eq!(v["usage"]["total_tokens"], 22);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["input"] = json!("hi");
    let reply = post(mock.addr(), "/v1/responses", &streamed, &[]).await;
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.sse_events();
    assert_eq!(events.first().map(String::as_str), Some("response.created"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("response.completed")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "response.output_text.delta")
            .count(),
        16
    );
    let data = reply.sse_data();
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["usage"]["input_tokens"], 3);
    assert_eq!(last["response"]["usage"]["output_tokens"], 16);
}

#[tokio::test]
async fn models_images_moderations_and_echo() {
    let mock = spawn(0).await;
    let models = get(mock.addr(), "/v1/models").await.json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"] {
        assert!(ids.contains(&id));
    }
    assert_eq!(
        get(mock.addr(), "/v1/models/gpt-4o").await.json()["object"],
        "model"
    );
    let missing = get(mock.addr(), "/v1/models/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "model_not_found");

    let images = post(
        mock.addr(),
        "/v1/images/generations",
        &json!({"prompt": "a cat", "n": 2}),
        &[],
    )
    .await
    .json();
    assert_eq!(images["data"].as_array().unwrap().len(), 2);
    assert!(images["data"][0]["b64_json"].is_string());

    let moderation = post(
        mock.addr(),
        "/v1/moderations",
        &json!({"input": ["a", "b"]}),
        &[],
    )
    .await
    .json();
    assert_eq!(moderation["results"].as_array().unwrap().len(), 2);
    assert_eq!(moderation["results"][0]["flagged"], false);

    let echo = send(
        mock.addr(),
        "DELETE",
        "/v1/files/file-abc?purge=1",
        &[],
        Some(&json!({"k": "v"})),
    )
    .await;
    assert_eq!(echo.status, 200);
    assert_eq!(
        echo.json(),
        json!({"object": "mock.echo", "method": "DELETE", "path": "/v1/files/file-abc",
               "query": "purge=1", "body_bytes": 9})
    );
    assert_eq!(get(mock.addr(), "/elsewhere").await.status, 404);
}
