use crate::helpers::{post, spawn};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn x_mock_status_answers_with_an_openai_error_envelope() {
    let mock = spawn(10).await;
    let body = json!({"model": "gpt-4o", "messages": []});
    for (status, code) in [
        (429, json!("rate_limit_exceeded")),
        (500, json!(null)),
        (503, json!("service_unavailable")),
    ] {
        let reply = post(
            mock.addr(),
            "/v1/chat/completions",
            &body,
            &[("x-mock-status", &status.to_string())],
        )
        .await;
        assert_eq!(reply.status, status);
        let v = reply.json();
        let error = v["error"].as_object().unwrap();
        assert!(error["message"].is_string());
        assert!(error["type"].is_string());
        assert!(error.contains_key("param"));
        assert_eq!(error["code"], code);
    }
    // Faulted requests are still seen.
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn x_mock_delay_ms_delays_the_answer() {
    let mock = spawn(0).await;
    let start = Instant::now();
    let reply = post(
        mock.addr(),
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "a b"}),
        &[("x-mock-delay-ms", "200")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_malformed_body_is_a_400_in_openai_shape() {
    let mock = spawn(0).await;
    let reply = post(
        mock.addr(),
        "/v1/chat/completions",
        &json!({"messages": []}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
}
