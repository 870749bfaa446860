//! The dashboard's sessions, CSRF protection, sign-in throttling and escaping, through the
//! real router.

use crate::helpers::TestApp;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::HashMap;
use tower::ServiceExt;

const OWNER: &str = "owner@localhost";
const PASSWORD: &str = "correct horse battery";

/// A browser in miniature: a cookie jar and form posts.
struct Client<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first hidden `csrf_token` field.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

impl<'a> Client<'a> {
    fn new(app: &'a TestApp) -> Self {
        Client {
            app,
            cookies: HashMap::new(),
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, jar.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match form {
            Some(f) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(f).unwrap())
            }
            None => Body::empty(),
        };
        let resp = self
            .app
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for c in headers.get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, &[]).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form), &[]).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let csrf = self.get("/login").await.csrf();
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }

    /// The session's CSRF token, read from a signed-in page.
    async fn session_csrf(&mut self) -> String {
        self.get("/projects").await.csrf()
    }
}

async fn audit_types(app: &TestApp) -> Vec<(String, Value)> {
    let (status, body) = app
        .admin(Method::GET, "/v1/organization/audit_logs?limit=100", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap_or_default().to_owned(), e.clone()))
        .collect()
}

#[tokio::test]
async fn sign_in_sets_a_hardened_cookie_rotates_it_and_sign_out_ends_it() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    assert_eq!(c.get("/projects").await.location(), "/login");

    let refused = c.sign_in(OWNER, "wrong password!").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("do not match"), "{}", refused.body);

    let ok = c.sign_in(OWNER, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/projects");
    let set: Vec<&str> = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("keyplane_session="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain-HTTP public URL: {session}"
    );
    let first = c.cookies["keyplane_session"].clone();
    assert_eq!(c.get("/projects").await.status, StatusCode::OK);

    // Signing in again (the login page itself sends a signed-in visitor on) rotates the
    // token; the old one is gone.
    assert_eq!(c.get("/login").await.location(), "/projects");
    c.cookies.remove("keyplane_session");
    let csrf = c.get("/login").await.csrf();
    c.cookies.insert("keyplane_session".into(), first.clone());
    let again = c
        .post(
            "/login",
            &[
                ("email", OWNER),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let second = c.cookies["keyplane_session"].clone();
    assert_ne!(first, second);
    let mut replay = Client::new(&app);
    replay.cookies.insert("keyplane_session".into(), first);
    assert_eq!(replay.get("/projects").await.location(), "/login");

    // Sign out, then replay the signed-out cookie.
    let csrf = c.session_csrf().await;
    let out = c.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(out.location(), "/login");
    let mut replay = Client::new(&app);
    replay.cookies.insert("keyplane_session".into(), second);
    assert_eq!(replay.get("/projects").await.location(), "/login");
    let post = replay
        .post("/projects", &[("name", "x"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);

    let types = audit_types(&app).await;
    for t in ["login.failed", "login.succeeded", "logout.succeeded"] {
        assert!(types.iter().any(|(k, _)| k == t), "{t} missing");
    }
    let failed = &types.iter().find(|(k, _)| k == "login.failed").unwrap().1;
    assert!(!failed.to_string().contains("wrong password"), "{failed}");
    assert!(failed.to_string().contains(OWNER), "{failed}");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    c.sign_in(OWNER, PASSWORD).await;
    let missing = c.post("/projects", &[("name", "no token")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = c
        .post(
            "/projects",
            &[("name", "bad token"), ("csrf_token", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let csrf = c.session_csrf().await;
    let by_header = c
        .send(
            Method::POST,
            "/projects",
            Some(&[("name", "by header")]),
            &[("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(by_header.status, StatusCode::SEE_OTHER);
    let page = c.get("/projects").await;
    assert!(page.body.contains("by header"));
    assert!(!page.body.contains("no token") && !page.body.contains("bad token"));

    // The sign-in form has its own (double-submit) token.
    let mut fresh = Client::new(&app);
    fresh.get("/login").await;
    let login = fresh
        .post(
            "/login",
            &[
                ("email", OWNER),
                ("password", PASSWORD),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn names_render_as_text_and_another_projects_key_cannot_be_revoked() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    c.sign_in(OWNER, PASSWORD).await;
    let csrf = c.session_csrf().await;
    let mut ids = Vec::new();
    for name in ["Mine", "Theirs"] {
        let r = c
            .post("/projects", &[("name", name), ("csrf_token", &csrf)])
            .await;
        ids.push(r.location().trim_start_matches("/projects/").to_owned());
    }
    let (mine, theirs) = (&ids[0], &ids[1]);
    let created = c
        .post(
            &format!("/projects/{mine}/keys"),
            &[
                ("name", "<script>alert(1)</script>"),
                ("owner", "me"),
                ("permissions", "all"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(
        created.headers.get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    assert!(created.body.contains("sk-proj-"));
    let page = c.get(&format!("/projects/{mine}")).await;
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "escaped name"
    );
    assert!(!page.body.contains("sk-proj-") || !created.body.is_empty());

    let (_, key) = app
        .admin(
            Method::POST,
            &format!("/v1/organization/projects/{theirs}/api_keys"),
            Some(r#"{"name":"theirs"}"#),
        )
        .await;
    let key_id = key["id"].as_str().unwrap();
    let crafted = c
        .post(
            &format!("/projects/{mine}/keys/{key_id}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(crafted.status, StatusCode::NOT_FOUND, "{}", crafted.body);
    let (status, _) = app
        .admin(
            Method::GET,
            &format!("/v1/organization/projects/{theirs}/api_keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the other project's key is still live"
    );
    let ok = c
        .post(
            &format!("/projects/{theirs}/keys/{key_id}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_slowed_then_refused() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    for _ in 0..10 {
        assert_eq!(
            c.sign_in(OWNER, "not the password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = c.sign_in(OWNER, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.body.contains("Too many failed sign-ins"));
    let failures = audit_types(&app)
        .await
        .into_iter()
        .filter(|(t, _)| t == "login.failed")
        .count();
    assert_eq!(failures, 11);
}

#[test]
fn invite_and_setup_tokens_are_redacted_in_logs() {
    use keyplane_server::router::redacted_path;
    assert_eq!(redacted_path("/invite/kpinv_secret"), "/invite/…");
    assert_eq!(redacted_path("/setup/kpinv_secret"), "/setup/…");
    assert_eq!(redacted_path("/projects/proj_1"), "/projects/proj_1");
}

#[tokio::test]
async fn audit_log_pages_and_filters() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    c.sign_in(OWNER, PASSWORD).await;
    let csrf = c.session_csrf().await;
    for i in 0..30 {
        let name = format!("project {i}");
        c.post("/projects", &[("name", &name), ("csrf_token", &csrf)])
            .await;
    }
    let first = c.get("/audit?event_type=project.created").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first
            .body
            .matches("<td data-label=\"Event\" class=\"event-type\">project.created</td>")
            .count(),
        25
    );
    assert!(first.body.contains("project 29") && !first.body.contains("project 4\\\""));
    assert!(!first.body.contains("Newer"));
    let older = first
        .body
        .split("href=\"/audit?")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    assert!(older.contains("after="), "{older}");
    let second = c.get(&format!("/audit?{older}")).await;
    assert_eq!(
        second
            .body
            .matches("class=\"event-type\">project.created<")
            .count(),
        5
    );
    assert!(second.body.contains("Newer") && !second.body.contains("Older"));
    let none = c.get("/audit?actor=nobody%40example.com").await;
    assert!(none.body.contains("No events match."));
    let bad = c.get("/audit?from=yesterday").await;
    assert!(bad.body.contains("Dates look like"));
}

#[tokio::test]
async fn a_service_account_key_is_shown_once_and_readers_are_refused() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    c.sign_in(OWNER, PASSWORD).await;
    let csrf = c.session_csrf().await;
    let p = c
        .post("/projects", &[("name", "svc"), ("csrf_token", &csrf)])
        .await;
    let project = p.location().to_owned();
    let created = c
        .post(
            &format!("{project}/service-accounts"),
            &[("name", "deployer"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    assert!(created.body.contains("sk-svcacct-"), "{}", created.body);
    let listed = c.get(&format!("{project}/service-accounts")).await;
    assert!(listed.body.contains("deployer") && !listed.body.contains("sk-svcacct-"));
    let account = listed
        .body
        .split("/service-accounts/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_owned();
    let role = c
        .post(
            &format!("{project}/service-accounts/{account}/role"),
            &[("role", "owner"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(role.status, StatusCode::SEE_OTHER);
    assert!(c
        .get(&format!("{project}/service-accounts"))
        .await
        .body
        .contains("value=\"owner\" selected"));
    let usage = c.get(&format!("{project}/usage?range=month")).await;
    assert!(usage.body.contains("No usage in this period yet"));
    let limits = c.get(&format!("{project}/limits")).await;
    assert!(limits.body.contains("No spend limit is set"));
    let bad = c
        .post(
            &format!("{project}/limits/spend"),
            &[("amount_usd", "lots"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("must be an amount in US dollars"));
}

#[tokio::test]
async fn every_page_but_the_public_ones_needs_a_session() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    for path in [
        "/",
        "/projects",
        "/members",
        "/audit",
        "/projects/proj_x",
        "/projects/proj_x/usage",
    ] {
        assert_eq!(c.get(path).await.location(), "/login", "{path}");
    }
    for path in ["/projects", "/logout", "/invites", "/projects/proj_x/keys"] {
        assert_eq!(
            c.post(path, &[]).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(c.get("/login").await.status, StatusCode::OK);
    let css = c.get("/static/dashboard.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age"));
    assert_eq!(
        c.get("/invite/kpinv_nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get("/setup/kpinv_nope").await.status,
        StatusCode::NOT_FOUND
    );
    // The Admin API is unaffected: a bearer key, no cookie.
    let (status, _) = app
        .admin(Method::GET, "/v1/organization/projects", None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let app = TestApp::spawn_configured(Some(PASSWORD), |c| {
        c.public_url = "https://keys.example.com".to_owned();
    })
    .await;
    let mut c = Client::new(&app);
    let ok = c.sign_in(OWNER, PASSWORD).await;
    let session = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("keyplane_session="))
        .unwrap();
    assert!(session.contains("; Secure"), "{session}");
}

#[tokio::test]
async fn a_project_with_more_keys_than_a_page_is_paged() {
    let app = TestApp::spawn_with(Some(PASSWORD)).await;
    let mut c = Client::new(&app);
    c.sign_in(OWNER, PASSWORD).await;
    let csrf = c.session_csrf().await;
    let project = c
        .post("/projects", &[("name", "Busy"), ("csrf_token", &csrf)])
        .await
        .location()
        .trim_start_matches("/projects/")
        .to_owned();
    for i in 0..101 {
        let (status, _) = app
            .admin(
                Method::POST,
                &format!("/v1/organization/projects/{project}/api_keys"),
                Some(&format!(r#"{{"name":"key-{i:03}"}}"#)),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let first = c.get(&format!("/projects/{project}")).await;
    assert!(first.body.contains("key-000") && first.body.contains("key-099"));
    assert!(!first.body.contains("key-100"));
    let marker = "?after=";
    let at = first.body.find(marker).expect("a next-page link") + marker.len();
    let after: String = first.body[at..].chars().take_while(|c| *c != '"').collect();
    let second = c.get(&format!("/projects/{project}?after={after}")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.body.contains("key-100") && !second.body.contains("key-099"));
    assert!(second.body.contains("First page") && !second.body.contains("Next page"));
}
