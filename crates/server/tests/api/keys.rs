use crate::helpers::{assert_error, TestApp};
use axum::http::{Method, StatusCode};

#[tokio::test]
async fn a_deleted_admin_key_fails_on_its_very_next_request() {
    let app = TestApp::spawn().await;
    let (s, created) = app
        .admin(
            Method::POST,
            "/v1/organization/admin_api_keys",
            Some(r#"{"name":"second"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let second = created["value"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    // Warm the cache with the new key.
    let (s, _) = app
        .call(
            Method::GET,
            "/v1/organization/projects",
            Some(&second),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, deleted) = app
        .admin(
            Method::DELETE,
            &format!("/v1/organization/admin_api_keys/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(deleted["deleted"], true);
    let (s, body) = app
        .call(
            Method::GET,
            "/v1/organization/projects",
            Some(&second),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(!body.to_string().contains(&second));
}

#[tokio::test]
async fn keys_of_an_archived_project_stop_working_at_once() {
    let app = TestApp::spawn().await;
    let (pid, value) = app.project_with_key().await;
    assert!(value.starts_with("sk-proj-"));
    // A project key is refused on the Admin API, with a message naming the key it needs.
    let (s, body) = app
        .call(Method::GET, "/v1/organization/projects", Some(&value), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("admin key"));
    // On the data plane the key is accepted (the upstream in this test is unreachable: 502).
    let (s, body) = app
        .call(Method::GET, "/v1/models", Some(&value), None)
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{body}");
    assert_error(&body);
    let (s, _) = app
        .admin(
            Method::POST,
            &format!("/v1/organization/projects/{pid}/archive"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = app
        .call(Method::GET, "/v1/models", Some(&value), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("archived"));
}

#[tokio::test]
async fn client_mistakes_get_the_envelope_and_the_right_status() {
    let app = TestApp::spawn().await;
    type Case<'a> = (
        Method,
        &'a str,
        Option<&'a str>,
        StatusCode,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/organization/projects",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            Method::POST,
            "/v1/organization/projects",
            Some(r#"{"name":5}"#),
            StatusCode::BAD_REQUEST,
            Some("name"),
        ),
        (
            Method::POST,
            "/v1/organization/projects",
            Some(r#"{}"#),
            StatusCode::BAD_REQUEST,
            Some("name"),
        ),
        (
            Method::POST,
            "/v1/organization/projects",
            Some(r#"{"name":"  "}"#),
            StatusCode::BAD_REQUEST,
            Some("name"),
        ),
        (
            Method::GET,
            "/v1/organization/projects?limit=0",
            None,
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/organization/projects?limit=101",
            None,
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/organization/projects?limit=x",
            None,
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/organization/projects?after=proj_nope",
            None,
            StatusCode::BAD_REQUEST,
            Some("after"),
        ),
        (
            Method::GET,
            "/v1/organization/projects/proj_nope",
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::GET,
            "/v1/organization/projects/..%2F..%2Fetc",
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::PUT,
            "/v1/organization/projects",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
        (
            Method::GET,
            "/v1/organization/nothing",
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::GET,
            "/v1/organization/admin_api_keys/key_x",
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
    ];
    for (method, path, body, status, param) in cases {
        let (s, json) = app.admin(method.clone(), path, body).await;
        assert_eq!(s, status, "{method} {path} {body:?}: {json}");
        assert_error(&json);
        if let Some(p) = param {
            assert_eq!(json["error"]["param"], p, "{method} {path}: {json}");
        }
    }
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let (s, json) = app
        .admin(Method::POST, "/v1/organization/projects", Some(&big))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&json);
    let (s, json) = app
        .call(Method::GET, "/v1/organization/projects", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "invalid_api_key");
    // Nothing was created by any of the above.
    let (_, list) = app
        .admin(Method::GET, "/v1/organization/projects", None)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_read_only_admin_key_cannot_change_anything() {
    let app = TestApp::spawn().await;
    let (s, created) = app
        .admin(
            Method::POST,
            "/v1/organization/admin_api_keys",
            Some(r#"{"name":"ro","scopes":["api.management.read"]}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let ro = created["value"].as_str().unwrap().to_owned();
    let (s, _) = app
        .call(Method::GET, "/v1/organization/projects", Some(&ro), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = app
        .call(
            Method::POST,
            "/v1/organization/projects",
            Some(&ro),
            Some(r#"{"name":"x"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Missing scopes: api.management.write"));
}

#[tokio::test]
async fn public_routes_need_no_key() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = app.call(Method::GET, path, None, None).await;
        assert_eq!(resp.0, StatusCode::OK, "{path}");
    }
    let (s, doc) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc.is_object());
}

#[tokio::test]
async fn the_gateway_entrance_takes_gateway_paths_only() {
    let app = TestApp::spawn().await;
    let (_, value) = app.project_with_key().await;
    // Keyplane's own /v1 routes stay the router's: no key needed, the method checked there.
    let (s, _) = app.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = app
        .call(Method::GET, "/v1/invites/accept", None, None)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_error(&body);
    // Gateway paths: the key is verified and must be a project key.
    let (s, body) = app.call(Method::GET, "/v1/models", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let (s, body) = app.admin(Method::GET, "/v1/models", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("project key"));
    let (s, body) = app
        .call(
            Method::GET,
            "/v1//organization/projects",
            Some(&value),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body);
    // Outside /v1, an unknown path is the router's 404, whatever the key.
    let (s, body) = app
        .call(Method::GET, "/v2/chat/completions", Some(&value), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body);
}

#[tokio::test]
async fn reconciliation_reads_the_caches_again_only_when_the_store_moved() {
    use keyplane_server::changes::Reconciled;
    let app = TestApp::spawn().await;
    let (_, value) = app.project_with_key().await;
    // The key passes and is cached (the test's upstream refuses connections: 502).
    let works = || async {
        app.call(Method::GET, "/v1/models", Some(&value), None)
            .await
            .0
    };
    assert_eq!(works().await, StatusCode::BAD_GATEWAY);
    assert_eq!(app.changes.reconcile().await, Reconciled::Full);
    assert_eq!(app.changes.reconcile().await, Reconciled::Unchanged);

    // A write around Keyplane does not move the revision: the cache is confirmed as it is,
    // not read again (until the periodic full pass).
    let url = format!("sqlite://{}", app.database_file().display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let revoked = sqlx::query("UPDATE api_keys SET deleted_at = 1 WHERE kind = 'project'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(revoked.rows_affected(), 1);
    assert_eq!(app.changes.reconcile().await, Reconciled::Unchanged);
    assert_eq!(works().await, StatusCode::BAD_GATEWAY);

    // Any audited write moves it: the next pass reads every cached key and drops the revoked one.
    let (s, body) = app
        .admin(
            Method::POST,
            "/v1/organization/projects",
            Some(r#"{"name":"another"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(app.changes.reconcile().await, Reconciled::Full);
    assert_eq!(works().await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.changes.reconcile().await, Reconciled::Unchanged);
    pool.close().await;
}

#[tokio::test]
async fn the_first_pass_after_startup_reads_nothing_again_unless_the_store_moved() {
    use keyplane_server::changes::Reconciled;
    let app = TestApp::spawn().await;
    let (_, value) = app.project_with_key().await;
    // As `keyplane serve` does at startup, before the key is cached.
    app.changes.start_empty().await;
    let works = || async {
        app.call(Method::GET, "/v1/models", Some(&value), None)
            .await
            .0
    };
    assert_eq!(works().await, StatusCode::BAD_GATEWAY);
    // Nothing written since: the key just loaded is not read again.
    assert_eq!(app.changes.reconcile().await, Reconciled::Unchanged);
    let (s, body) = app
        .admin(
            Method::POST,
            "/v1/organization/projects",
            Some(r#"{"name":"another"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(app.changes.reconcile().await, Reconciled::Full);
}
