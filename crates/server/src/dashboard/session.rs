//! Sessions: sign-in, sign-out, the sign-up pages of invite and setup links, and the
//! middleware that turns the session cookie into a [`Viewer`] (and checks CSRF).

use super::throttle::Verdict;
use super::{csrf, html, refusal, DashError, Form};
use crate::auth::{session_actor, ClientInfo, Principal};
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use keyplane_api_types::AcceptInvite;
use keyplane_core::ids::random_base62;
use keyplane_core::model::{AuditEvent, User};
use keyplane_core::people::{hash_token, InviteStatus, Password};
use keyplane_core::sessions::{Session, ABSOLUTE_SECONDS, IDLE_SECONDS};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The session cookie.
pub const COOKIE: &str = "keyplane_session";
/// The double-submit token of the sign-in and sign-up forms (no session exists yet).
const FORM_COOKIE: &str = "keyplane_form";
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: i64 = 60;

/// The signed-in person of a dashboard request.
pub struct Viewer {
    pub user: User,
    pub principal: Principal,
    pub csrf: String,
    pub token_hash: String,
}

/// Extractor for the [`Viewer`] that [`require`] attached.
#[derive(Clone)]
pub struct Me(pub Arc<Viewer>);

impl<S: Send + Sync> FromRequestParts<S> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Me>()
            .cloned()
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure(state: &AppState) -> &'static str {
    if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    same_site: &str,
    max_age: i64,
) -> HeaderValue {
    let raw = format!(
        "{name}={value}; HttpOnly; SameSite={same_site}; Path=/; Max-Age={max_age}{}",
        secure(state)
    );
    HeaderValue::from_str(&raw).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A well-formed token from a cookie (base62, bounded), or none.
fn token_of<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookie(headers, name)
        .filter(|t| !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The live session of the request's cookie, with its user.
pub async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientInfo,
) -> Result<Option<Viewer>, ApiError> {
    let Some(token) = token_of(headers, COOKIE) else {
        return Ok(None);
    };
    let hash = hash_token(token);
    let Some((session, user)) = state.sessions.session(&hash).await? else {
        return Ok(None);
    };
    let now = keyplane_core::time::now();
    if !session.is_live(now) {
        state.sessions.delete_session(&hash, &[]).await?;
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        state.sessions.touch_session(&hash, now).await?;
    }
    Ok(Some(Viewer {
        principal: Principal::session(&user, client.ip, client.user_agent),
        user,
        csrf: session.csrf_token,
        token_hash: hash,
    }))
}

fn client_of(req: &Request) -> ClientInfo {
    ClientInfo {
        ip: req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

/// Every dashboard route but [`super::PUBLIC_PATHS`]: no session → the sign-in page (or 401 for a form post); every
/// state-changing request must carry the session's CSRF token (403 otherwise).
pub async fn require(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if super::is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let client = client_of(&req);
    let viewer = match resolve(&state, req.headers(), client).await {
        Ok(v) => v,
        Err(e) => return DashError(e).into_response(),
    };
    let reading = req.method() == Method::GET || req.method() == Method::HEAD;
    let Some(viewer) = viewer else {
        if reading {
            return Redirect::to("/login").into_response();
        }
        return refusal(
            StatusCode::UNAUTHORIZED,
            "Your session has ended. Sign in again to continue.",
        );
    };
    let mut req = req;
    if !reading {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, state.config.max_body_bytes).await else {
            return refusal(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
        };
        let presented = csrf::presented(&parts.headers, &bytes);
        if !csrf::matches(presented.as_deref(), &viewer.csrf) {
            return refusal(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this dashboard. Reload the page and try again.",
            );
        }
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    req.extensions_mut().insert(Me(Arc::new(viewer)));
    next.run(req).await
}

/// The double-submit token of the public forms: the cookie's, or a new one.
fn form_token(headers: &HeaderMap) -> (String, bool) {
    match token_of(headers, FORM_COOKIE) {
        Some(t) => (t.to_owned(), false),
        None => (random_base62(32), true),
    }
}

fn with_form_cookie(
    state: &AppState,
    mut response: Response,
    token: &str,
    fresh: bool,
) -> Response {
    if fresh {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, FORM_COOKIE, token, "Strict", 3600),
        );
    }
    response
}

fn form_token_ok(headers: &HeaderMap, presented: &str) -> bool {
    token_of(headers, FORM_COOKIE).is_some_and(|expected| csrf::matches(Some(presented), expected))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    error: String,
}

pub async fn login_form(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    if resolve(&state, &headers, client).await?.is_some() {
        return Ok(Redirect::to("/projects").into_response());
    }
    let (token, fresh) = form_token(&headers);
    let page = LoginPage {
        csrf: token.clone(),
        email: String::new(),
        error: String::new(),
    };
    Ok(with_form_cookie(
        &state,
        html(StatusCode::OK, &page),
        &token,
        fresh,
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

fn anonymous_actor(client: &ClientInfo) -> serde_json::Value {
    json!({"type": "session", "session": {
        "ip_address": client.ip,
        "user_agent": client.user_agent,
    }})
}

/// Starts a session for `user` (replacing the request's old one), audited as
/// `login.succeeded`, and sends them to the projects page.
async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
    client: ClientInfo,
) -> Result<Response, DashError> {
    let now = keyplane_core::time::now();
    let (token, session) = Session::start(user.id.clone(), now);
    let old = token_of(headers, COOKIE).map(hash_token);
    let event = AuditEvent::new(
        "login.succeeded",
        None,
        session_actor(user, client.ip, client.user_agent),
        json!({"id": user.id.as_str()}),
    );
    state
        .sessions
        .create_session(&session, old.as_deref(), &[event])
        .await?;
    // Housekeeping: sign-ins are rare enough to prune ended sessions here.
    let _ = state.sessions.prune_sessions(now - IDLE_SECONDS, now).await;
    let mut response = Redirect::to("/projects").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(state, COOKIE, token.expose(), "Lax", ABSOLUTE_SECONDS),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(state, FORM_COOKIE, "", "Strict", 0),
    );
    Ok(response)
}

pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, DashError> {
    if !form_token_ok(&headers, &form.csrf_token) {
        return Ok(refusal(
            StatusCode::FORBIDDEN,
            "This sign-in form has expired. Reload the page and try again.",
        ));
    }
    let email: String = form.email.trim().chars().take(320).collect();
    let now = keyplane_core::time::now();
    let retry = |status: StatusCode, message: &str| {
        html(
            status,
            &LoginPage {
                csrf: form.csrf_token.clone(),
                email: email.clone(),
                error: message.to_owned(),
            },
        )
    };
    let failed = |reason: &str| {
        AuditEvent::new(
            "login.failed",
            None,
            anonymous_actor(&client),
            json!({"data": {"email": email, "error_code": reason}}),
        )
    };
    match state
        .login_throttle
        .check(client.ip.as_deref(), &email, now)
    {
        Verdict::Refuse => {
            state
                .sessions
                .record_events(&[failed("too_many_attempts")])
                .await?;
            return Ok(retry(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins. Wait 15 minutes, then try again.",
            ));
        }
        Verdict::Delay(d) => tokio::time::sleep(d).await,
        Verdict::Allow => {}
    }
    let found = state.sessions.user_credentials(&email).await?;
    let verified = match Password::parse(&form.password) {
        Ok(password) => {
            let stored = found.as_ref().and_then(|(_, h)| h.clone());
            crate::password::verify(stored, password).await
        }
        Err(_) => false,
    };
    match found {
        Some((user, _)) if verified => {
            state.login_throttle.succeed(&email);
            sign_in(&state, &headers, &user, client).await
        }
        _ => {
            state.login_throttle.fail(client.ip.as_deref(), &email, now);
            state
                .sessions
                .record_events(&[failed("invalid_credentials")])
                .await?;
            Ok(retry(
                StatusCode::UNAUTHORIZED,
                "That email and password do not match. Check both and try again.",
            ))
        }
    }
}

pub async fn logout(
    State(state): State<AppState>,
    me: super::session::Me,
) -> Result<Response, DashError> {
    let event = AuditEvent::new(
        "logout.succeeded",
        None,
        me.0.principal.actor().clone(),
        json!({"id": me.0.user.id.as_str()}),
    );
    state
        .sessions
        .delete_session(&me.0.token_hash, &[event])
        .await?;
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, COOKIE, "", "Lax", 0));
    Ok(response)
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    csrf: String,
    action: String,
    email: String,
    setup: bool,
    name: String,
    error: String,
}

/// `/setup/{token}` (the first owner's link) rather than `/invite/{token}`.
fn is_setup(uri_path: &str) -> bool {
    uri_path.starts_with("/setup/")
}

async fn pending_invite_email(state: &AppState, token: &str) -> Result<String, DashError> {
    let gone = || {
        DashError(ApiError::NotFound(
            "This link is not valid any more. Ask an owner of the organization for a new invite."
                .to_owned(),
        ))
    };
    if token.is_empty() || token.len() > 128 {
        return Err(gone());
    }
    let found = state
        .people
        .invite_by_token(&hash_token(token))
        .await?
        .ok_or_else(gone)?;
    match found.invite.status(keyplane_core::time::now()) {
        InviteStatus::Pending if !found.deleted => Ok(found.invite.email),
        InviteStatus::Accepted => Err(DashError(ApiError::invalid(
            None,
            "This link has been used already. Sign in with your email and password.",
        ))),
        _ => Err(gone()),
    }
}

pub async fn signup_form(
    State(state): State<AppState>,
    Path(token): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    let email = pending_invite_email(&state, &token).await?;
    let (csrf, fresh) = form_token(&headers);
    let setup = is_setup(uri.path());
    let page = SignupPage {
        csrf: csrf.clone(),
        action: uri.path().to_owned(),
        email,
        setup,
        name: String::new(),
        error: String::new(),
    };
    Ok(with_form_cookie(
        &state,
        html(StatusCode::OK, &page),
        &csrf,
        fresh,
    ))
}

#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn signup(
    State(state): State<AppState>,
    Path(token): Path<String>,
    uri: axum::http::Uri,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<SignupForm>,
) -> Result<Response, DashError> {
    if !form_token_ok(&headers, &form.csrf_token) {
        return Ok(refusal(
            StatusCode::FORBIDDEN,
            "This form has expired. Reload the page and try again.",
        ));
    }
    let email = pending_invite_email(&state, &token).await?;
    let setup = is_setup(uri.path());
    let retry = |message: String| {
        html(
            StatusCode::BAD_REQUEST,
            &SignupPage {
                csrf: form.csrf_token.clone(),
                action: uri.path().to_owned(),
                email: email.clone(),
                setup,
                name: form.name.clone(),
                error: message,
            },
        )
    };
    if form.password != form.password_again {
        return Ok(retry(
            "The two passwords differ. Type the same password twice.".to_owned(),
        ));
    }
    let body = AcceptInvite {
        token: token.clone(),
        name: if form.name.trim().is_empty() && setup {
            None
        } else {
            Some(form.name.clone())
        },
        password: form.password.clone(),
    };
    let info = ClientInfo {
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    };
    match crate::admin::invites::accept_with(&state, info, body).await {
        Ok(user) => sign_in(&state, &headers, &user, client).await,
        Err(e) if e.status().is_client_error() => Ok(retry(super::message_of(&e))),
        Err(e) => Err(DashError(e)),
    }
}
