//! Users, invites, project members, role enforcement and the audit log's filters.

use crate::helpers::{assert_error, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

/// Invites `email` (with `projects`) and accepts; returns (user, invite id, token).
async fn invite_and_accept(
    app: &TestApp,
    email: &str,
    role: &str,
    projects: Value,
) -> (Value, String, String) {
    let body = json!({"email": email, "role": role, "projects": projects}).to_string();
    let (s, invite) = app
        .admin(Method::POST, "/v1/organization/invites", Some(&body))
        .await;
    assert_eq!(s, StatusCode::OK, "{invite}");
    let url = invite["accept_url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap().to_owned();
    assert!(url.contains("/invite/kpinv_"), "{url}");
    let accept = json!({"token": token, "name": "New Person", "password": PASSWORD}).to_string();
    let (s, user) = app
        .call(Method::POST, "/v1/invites/accept", None, Some(&accept))
        .await;
    assert_eq!(s, StatusCode::OK, "{user}");
    (user, invite["id"].as_str().unwrap().to_owned(), token)
}

async fn project(app: &TestApp) -> String {
    let (s, p) = app
        .admin(
            Method::POST,
            "/v1/organization/projects",
            Some(r#"{"name":"people"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    p["id"].as_str().unwrap().to_owned()
}

/// A data-plane request with `key`: 401 when the key is refused; anything else (the test
/// upstream refuses connections: 502) means the key was accepted.
async fn gateway_status(app: &TestApp, key: &str) -> StatusCode {
    app.call(
        Method::POST,
        "/v1/chat/completions",
        Some(key),
        Some(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#),
    )
    .await
    .0
}

#[tokio::test]
async fn invites_create_members_once() {
    let app = TestApp::spawn().await;
    let pid = project(&app).await;
    let (user, invite_id, token) = invite_and_accept(
        &app,
        "Ana@Example.com",
        "reader",
        json!([{"id": pid, "role": "owner"}]),
    )
    .await;
    assert_eq!(user["object"], "organization.user");
    assert_eq!(user["role"], "reader");
    assert_eq!(user["email"], "Ana@Example.com");
    let uid = user["id"].as_str().unwrap();

    // The invite is accepted; only the create response carried the link.
    let (s, inv) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/invites/{invite_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(inv["status"], "accepted");
    assert!(inv.get("accept_url").is_none(), "{inv}");
    assert_eq!(inv["projects"], json!([{"id": pid, "role": "owner"}]));
    let (_, list) = app
        .admin(Method::GET, "/v1/organization/invites", None)
        .await;
    assert!(!list.to_string().contains("kpinv_"), "{list}");

    // The member is in the project with the invite's role.
    let (s, member) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/projects/{pid}/users/{uid}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{member}");
    assert_eq!(member["object"], "organization.project.user");
    assert_eq!(member["role"], "owner");

    // Used, unknown and withdrawn tokens create nothing.
    let again = json!({"token": token, "name": "x", "password": PASSWORD}).to_string();
    let (s, body) = app
        .call(Method::POST, "/v1/invites/accept", None, Some(&again))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body);
    let unknown = json!({"token": "kpinv_nope", "name": "x", "password": PASSWORD}).to_string();
    let (s, _) = app
        .call(Method::POST, "/v1/invites/accept", None, Some(&unknown))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = app
        .admin(
            Method::DELETE,
            &format!("/v1/organization/invites/{invite_id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "accepted invites stay: {body}");

    let (_, pending) = app
        .admin(
            Method::POST,
            "/v1/organization/invites",
            Some(r#"{"email":"bo@example.com","role":"owner"}"#),
        )
        .await;
    assert_eq!(pending["projects"], json!([]));
    assert_eq!(pending["status"], "pending");
    let bo_token = pending["accept_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let short = json!({"token": bo_token, "name": "Bo", "password": "short"}).to_string();
    let (s, body) = app
        .call(Method::POST, "/v1/invites/accept", None, Some(&short))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "password");
    let (s, deleted) = app
        .admin(
            Method::DELETE,
            &format!(
                "/v1/organization/invites/{}",
                pending["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(deleted["object"], "organization.invite.deleted");
    let withdrawn = json!({"token": bo_token, "name": "Bo", "password": PASSWORD}).to_string();
    let (s, _) = app
        .call(Method::POST, "/v1/invites/accept", None, Some(&withdrawn))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, users) = app.admin(Method::GET, "/v1/organization/users", None).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 2);

    // Already a member: no invite.
    let (s, _) = app
        .admin(
            Method::POST,
            "/v1/organization/invites",
            Some(r#"{"email":"ana@example.com","role":"reader"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_accepts_create_one_member() {
    let app = TestApp::spawn().await;
    let (_, invite) = app
        .admin(
            Method::POST,
            "/v1/organization/invites",
            Some(r#"{"email":"race@example.com","role":"reader","projects":[]}"#),
        )
        .await;
    let token = invite["accept_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let body = json!({"token": token, "name": "Racer", "password": PASSWORD}).to_string();
    let accept = || app.call(Method::POST, "/v1/invites/accept", None, Some(&body));
    let (a, b, c, d) = tokio::join!(accept(), accept(), accept(), accept());
    let results = [a, b, c, d];
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    for (s, body) in &results {
        if *s != StatusCode::OK {
            assert_eq!(*s, StatusCode::BAD_REQUEST, "{body}");
        }
    }
    let (_, users) = app
        .admin(
            Method::GET,
            "/v1/organization/users?emails[]=race@example.com",
            None,
        )
        .await;
    assert_eq!(users["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn membership_and_deletion_switch_keys_off_at_once() {
    let app = TestApp::spawn().await;
    let pid = project(&app).await;
    let (user, _, _) = invite_and_accept(
        &app,
        "member@example.com",
        "reader",
        json!([{"id": pid, "role": "member"}]),
    )
    .await;
    let uid = user["id"].as_str().unwrap().to_owned();
    let body = json!({"name": "theirs", "user_id": uid}).to_string();
    let (s, key) = app
        .admin(
            Method::POST,
            &format!("/v1/organization/projects/{pid}/api_keys"),
            Some(&body),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{key}");
    assert_eq!(key["owner"]["user"]["id"], uid.as_str());
    assert_eq!(key["owner"]["user"]["role"], "member");
    let value = key["value"].as_str().unwrap().to_owned();
    let kid = key["id"].as_str().unwrap().to_owned();
    assert_ne!(gateway_status(&app, &value).await, StatusCode::UNAUTHORIZED);

    // Removed from the project: the cached key stops working on the next request.
    let member_path = format!("/v1/organization/projects/{pid}/users/{uid}");
    let (s, removed) = app.admin(Method::DELETE, &member_path, None).await;
    assert_eq!(s, StatusCode::OK, "{removed}");
    assert_eq!(removed["object"], "organization.project.user.deleted");
    assert_eq!(gateway_status(&app, &value).await, StatusCode::UNAUTHORIZED);
    let (_, k) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/projects/{pid}/api_keys/{kid}"),
            None,
        )
        .await;
    assert_eq!(k["owner_project_access"], "inactive");
    let (_, inactive) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/projects/{pid}/api_keys?owner_project_access=inactive"),
            None,
        )
        .await;
    assert_eq!(inactive["data"][0]["id"], kid.as_str());

    // Added back (by email): the key works again.
    let (s, added) = app
        .admin(
            Method::POST,
            &format!("/v1/organization/projects/{pid}/users"),
            Some(r#"{"email":"MEMBER@example.com","role":"owner"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{added}");
    assert_eq!(added["role"], "owner");
    assert_ne!(gateway_status(&app, &value).await, StatusCode::UNAUTHORIZED);
    let (s, changed) = app
        .admin(Method::POST, &member_path, Some(r#"{"role":"member"}"#))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(changed["role"], "member");
    let (_, members) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/projects/{pid}/users"),
            None,
        )
        .await;
    assert_eq!(members["data"].as_array().unwrap().len(), 2);

    // Deleting the user switches every key of theirs off.
    let (s, deleted) = app
        .admin(
            Method::DELETE,
            &format!("/v1/organization/users/{uid}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["object"], "organization.user.deleted");
    assert_eq!(gateway_status(&app, &value).await, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .admin(Method::GET, &format!("/v1/organization/users/{uid}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A key for someone outside the project is refused.
    let (outsider, _, _) =
        invite_and_accept(&app, "outsider@example.com", "reader", json!([])).await;
    let body = json!({"name": "x", "user_id": outsider["id"]}).to_string();
    let (s, body) = app
        .admin(
            Method::POST,
            &format!("/v1/organization/projects/{pid}/api_keys"),
            Some(&body),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "user_id");
}

#[tokio::test]
async fn readers_read_and_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let (_, me) = app.admin(Method::GET, "/v1/organization/users", None).await;
    let owner_id = me["data"][0]["id"].as_str().unwrap().to_owned();
    let owner_path = format!("/v1/organization/users/{owner_id}");
    let (s, body) = app
        .admin(Method::POST, &owner_path, Some(r#"{"role":"reader"}"#))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("last one"));
    let (s, _) = app.admin(Method::DELETE, &owner_path, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .admin(Method::POST, &owner_path, Some(r#"{"role":"admin"}"#))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // With a second owner, the first steps down: their admin key now only reads.
    let (other, _, _) = invite_and_accept(&app, "second@example.com", "owner", json!([])).await;
    assert_eq!(other["role"], "owner");
    let (s, me) = app
        .admin(Method::POST, &owner_path, Some(r#"{"role":"reader"}"#))
        .await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "reader");
    let (s, _) = app
        .admin(Method::GET, "/v1/organization/projects", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for (method, path, body) in [
        (Method::POST, "/v1/organization/projects", r#"{"name":"x"}"#),
        (
            Method::POST,
            "/v1/organization/admin_api_keys",
            r#"{"name":"x"}"#,
        ),
        (
            Method::POST,
            "/v1/organization/invites",
            r#"{"email":"c@example.com","role":"reader"}"#,
        ),
        (Method::POST, owner_path.as_str(), r#"{"role":"owner"}"#),
    ] {
        let (s, err) = app.admin(method, path, Some(body)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {err}");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Missing scopes: api.management.write"));
    }
}

#[tokio::test]
async fn audit_filters_in_both_array_styles() {
    let app = TestApp::spawn().await;
    let p1 = project(&app).await;
    let p2 = project(&app).await;
    let (_, key) = app
        .admin(
            Method::POST,
            &format!("/v1/organization/projects/{p1}/api_keys"),
            Some(r#"{"name":"k"}"#),
        )
        .await;
    let kid = key["id"].as_str().unwrap();
    let (user, invite_id, token) =
        invite_and_accept(&app, "joiner@example.com", "reader", json!([])).await;
    let list = |q: String| {
        let app = &app;
        async move {
            let (s, body) = app
                .admin(
                    Method::GET,
                    &format!("/v1/organization/audit_logs?{q}"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{q}: {body}");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    for style in ["project_ids[]", "project_ids"] {
        assert_eq!(
            list(format!("{style}={p1}")).await,
            vec!["api_key.created", "project.created"]
        );
        let both = list(format!("{style}={p1}&{style}={p2}")).await;
        assert_eq!(both.len(), 3, "{both:?}");
    }
    assert_eq!(
        list("event_types%5B%5D=api_key.created&event_types%5B%5D=invite.sent".into()).await,
        vec!["invite.sent", "api_key.created", "api_key.created"]
    );
    assert_eq!(
        list(format!("resource_ids={kid}")).await,
        vec!["api_key.created"]
    );
    assert_eq!(
        list(format!("resource_ids[]={invite_id}")).await,
        vec!["invite.accepted", "invite.sent"]
    );
    // The accept was done by the new user (a session actor), the rest by the owner's key.
    let uid = user["id"].as_str().unwrap();
    assert_eq!(
        list(format!("actor_ids={uid}")).await,
        vec!["invite.accepted"]
    );
    assert_eq!(
        list("actor_emails[]=JOINER@example.com".into()).await,
        vec!["invite.accepted"]
    );
    let (_, accepted) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/audit_logs?actor_ids={uid}"),
            None,
        )
        .await;
    assert_eq!(accepted["data"][0]["actor"]["type"], "session");
    assert_eq!(accepted["data"][0]["actor"]["session"]["user"]["id"], uid);
    let owner_events = list("actor_emails=owner@localhost&limit=100".into()).await;
    assert!(
        owner_events.contains(&"invite.sent".to_owned()),
        "{owner_events:?}"
    );
    assert!(!owner_events.contains(&"invite.accepted".to_owned()));
    let now = keyplane_core::time::now();
    assert!(list(format!("effective_at[gt]={}", now + 100))
        .await
        .is_empty());
    assert_eq!(
        list(format!(
            "effective_at[gte]={}&effective_at[lte]={}&event_types=invite.accepted",
            now - 100,
            now + 100
        ))
        .await,
        vec!["invite.accepted"]
    );
    assert!(list(format!("effective_at[lt]={}", now - 100))
        .await
        .is_empty());
    assert!(list("tenant_only=true".into()).await.is_empty());

    // Pages: newest first, `after` then `before` back.
    let (_, first) = app
        .admin(Method::GET, "/v1/organization/audit_logs?limit=2", None)
        .await;
    assert_eq!(first["has_more"], true);
    let last = first["last_id"].as_str().unwrap();
    let (_, second) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/audit_logs?limit=2&after={last}"),
            None,
        )
        .await;
    let second_first = second["first_id"].as_str().unwrap();
    let (_, back) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/audit_logs?limit=2&before={second_first}"),
            None,
        )
        .await;
    assert_eq!(back["data"], first["data"]);

    for bad in [
        "effective_at[gt]=soon",
        "after=audit_log-nope",
        "before=audit_log-nope",
        "after=a&before=b",
        "limit=0",
    ] {
        let (s, body) = app
            .admin(
                Method::GET,
                &format!("/v1/organization/audit_logs?{bad}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_error(&body);
    }

    // No event holds a secret: the admin key, the invite token or the password.
    let (_, all) = app
        .admin(Method::GET, "/v1/organization/audit_logs?limit=100", None)
        .await;
    let text = all.to_string();
    for secret in [
        app.admin_key.as_str(),
        token.as_str(),
        PASSWORD,
        key["value"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret leaked into the audit log");
    }
}
