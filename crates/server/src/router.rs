//! The whole HTTP surface: one router, authenticated by default.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::trace::TraceLayer;

pub fn build(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/v1/invites/accept", post(crate::admin::accept_invite))
        .nest("/v1/organization", crate::admin::router())
        .merge(crate::dashboard::router(state.clone()))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(max_body));
    // The request span (method, path, route, key id) frames every event a request logs. When
    // the log filter records neither that span nor tower-http's debug events (`RUST_LOG=warn`),
    // the layer would only cost time (~4% of the gateway's throughput): it is left out, and 5xx
    // causes are still logged where their responses are made (`error::log_server_error`).
    let traced = tracing::span_enabled!(tracing::Level::INFO)
        || tracing::event_enabled!(target: "tower_http::trace", tracing::Level::DEBUG);
    let router = if traced {
        router.layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let matched = req
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            // The URI path may carry ids, never keys (keys travel in headers only).
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = %redacted_path(req.uri().path()),
                matched_path = matched,
                key_id = tracing::field::Empty,
            )
        }))
    } else {
        router
    };
    router.with_state(state)
}

/// The request path for logs: the token of an invite or setup link is a credential, so
/// `/invite/{token}` is logged as `/invite/…`.
pub fn redacted_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/invite/", "/setup/"] {
        if path.starts_with(prefix) && path.len() > prefix.len() {
            return format!("{prefix}…").into();
        }
    }
    path.into()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.orgs.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
    }
}

/// Prometheus text: whether the cluster-wide counters (Redis) are reachable, and how many
/// decisions fell back to this instance's share since it started.
async fn metrics(State(state): State<AppState>) -> Response {
    let (configured, up, fallbacks) = match &state.gateway.cluster {
        Some(c) => (1, u8::from(c.is_up()), c.fallback_total()),
        None => (0, 0, 0),
    };
    let body = format!(
        "# HELP keyplane_redis_configured Whether KEYPLANE_REDIS_URL is set.\n\
         # TYPE keyplane_redis_configured gauge\n\
         keyplane_redis_configured {configured}\n\
         # HELP keyplane_redis_up Whether Redis answered the last call.\n\
         # TYPE keyplane_redis_up gauge\n\
         keyplane_redis_up {up}\n\
         # HELP keyplane_redis_fallback_total Rate-limit and spend checks decided without Redis.\n\
         # TYPE keyplane_redis_fallback_total counter\n\
         keyplane_redis_fallback_total {fallbacks}\n"
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `/v1/*` outside the Admin API goes to the gateway; anything else is unknown.
async fn fallback(state: State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    let gateway_route = path.starts_with("/v1/")
        && !(path == "/v1/organization" || path.starts_with("/v1/organization/"));
    if gateway_route {
        crate::gateway::forward(state, req).await
    } else {
        not_found(req).await.into_response()
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "Invalid URL ({} {}).",
        req.method(),
        crate::error::shown(req.uri().path())
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "Method {} is not allowed for {}.",
        req.method(),
        crate::error::shown(req.uri().path())
    ))
}
