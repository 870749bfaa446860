use crate::helpers::{get, post, send, spawn};
use serde_json::json;

#[tokio::test]
async fn records_method_path_query_headers_and_body() {
    let mock = spawn(2).await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    post(
        mock.addr(),
        "/v1/chat/completions?x=1",
        &body,
        &[("authorization", "Bearer sk-upstream-123")],
    )
    .await;
    let v = get(mock.addr(), "/__mock/requests").await.json();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    let r = &data[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], "/v1/chat/completions");
    assert_eq!(r["query"], "x=1");
    assert_eq!(r["headers"]["authorization"], "Bearer sk-upstream-123");
    let recorded: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(recorded, body);

    // The ring keeps the last two; introspection is not recorded.
    for i in 0..3 {
        send(
            mock.addr(),
            "GET",
            &format!("/v1/files/file-{i}"),
            &[],
            None,
        )
        .await;
    }
    let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/files/file-1", "/v1/files/file-2"]);
    let stats = get(mock.addr(), "/__mock/stats").await.json();
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["recorded"], 2);
    assert_eq!(stats["record_limit"], 2);

    let cleared = send(mock.addr(), "DELETE", "/__mock/requests", &[], None).await;
    assert_eq!(cleared.json()["deleted"], 2);
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn record_zero_counts_but_keeps_nothing() {
    let mock = spawn(0).await;
    let reply = post(
        mock.addr(),
        "/v1/embeddings",
        &json!({"model": "m", "input": "x"}),
        &[],
    )
    .await;
    assert_eq!(reply.header("x-request-id"), Some("req_mock1"));
    assert!(mock.requests().is_empty());
    let stats = get(mock.addr(), "/__mock/stats").await.json();
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["record_limit"], 0);
    mock.shutdown().await.unwrap();
}
