//! The whole HTTP surface: one router, authenticated by default.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::future::Either;
use futures_util::FutureExt;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use tower::util::BoxCloneSyncService;
use tower_http::trace::TraceLayer;

pub fn build(state: AppState) -> App {
    let max_body = state.config.max_body_bytes;
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/v1/invites/accept", post(crate::admin::accept_invite))
        .nest("/v1/organization", crate::admin::router())
        .merge(crate::dashboard::router(state.clone()))
        // Gateway paths never get here (`App` sends them to the gateway first).
        .fallback(not_found)
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
    if !traced {
        return App(Arc::new(AppParts {
            router: router.with_state(state.clone()),
            state,
            traced_gateway: None,
        }));
    }
    let trace = TraceLayer::new_for_http().make_span_with(request_span as fn(&Request) -> _);
    let gateway_state = state.clone();
    let gateway = tower::service_fn(move |req: Request| {
        let state = gateway_state.clone();
        async move { Ok::<_, Infallible>(crate::auth::authenticate_gateway(state, req).await) }
    });
    App(Arc::new(AppParts {
        router: router.layer(trace.clone()).with_state(state.clone()),
        traced_gateway: Some(BoxCloneSyncService::new(
            tower::ServiceBuilder::new()
                .map_response(IntoResponse::into_response)
                .layer(trace)
                .service(gateway),
        )),
        state,
    }))
}

/// Keyplane's HTTP surface: gateway requests go straight to the gateway
/// ([`crate::auth::authenticate_gateway`]), everything else to the router. The routing,
/// middleware and fallback handler a gateway request would pass through in the router cost
/// about a fifth of its own work.
#[derive(Clone)]
pub struct App(Arc<AppParts>);

struct AppParts {
    state: AppState,
    router: Router,
    /// The gateway behind the trace layer, when requests are traced.
    traced_gateway: Option<BoxCloneSyncService<Request, Response, Infallible>>,
}

impl App {
    /// Where a request goes: a gateway path to the gateway, the rest to the router, with the
    /// client's address when it came over a connection.
    fn dispatch(
        self,
        mut req: Request,
        remote: Option<SocketAddr>,
    ) -> impl Future<Output = Response> + Send + 'static {
        if !is_gateway_path(req.uri().path()) {
            if let Some(remote) = remote {
                req.extensions_mut().insert(ConnectInfo(remote));
            }
            // A router is always ready.
            let routed = tower::Service::call(&mut self.0.router.clone(), req);
            return Either::Right(routed.map(|r| r.unwrap_or_else(|e| match e {})));
        }
        match &self.0.traced_gateway {
            None => Either::Left(Either::Left(crate::auth::authenticate_gateway(
                self.0.state.clone(),
                req,
            ))),
            Some(traced) => Either::Left(Either::Right(
                tower::ServiceExt::oneshot(traced.clone(), req)
                    .map(|r| r.unwrap_or_else(|e| match e {})),
            )),
        }
    }
}

impl crate::workers::Serve for App {
    fn serve(
        self,
        req: Request,
        remote: SocketAddr,
    ) -> impl Future<Output = Response> + Send + 'static {
        self.dispatch(req, Some(remote))
    }
}

/// For tests, which call the app without a connection (so no client address).
impl tower::Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.clone().dispatch(req, None).map(Ok).boxed()
    }
}

/// The span of one request.
fn request_span(req: &Request) -> tracing::Span {
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
}

/// Keyplane's own routes under `/v1/` outside the Admin API, which are not the gateway's.
const OWN_V1_ROUTES: &[&str] = &["/v1/openapi.json", "/v1/invites/accept"];

/// Whether a path is the gateway's: under `/v1/`, outside the Admin API and Keyplane's own
/// `/v1` routes.
pub fn is_gateway_path(path: &str) -> bool {
    path.starts_with("/v1/")
        && !(path == "/v1/organization" || path.starts_with("/v1/organization/"))
        && !OWN_V1_ROUTES.contains(&path)
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

#[cfg(test)]
mod tests {
    use super::is_gateway_path;

    #[test]
    fn the_gateway_gets_v1_paths_outside_keyplanes_own() {
        for gateway in [
            "/v1/chat/completions",
            "/v1/models",
            "/v1/organizations",
            "/v1/openapi.json/x",
            "/v1//organization",
            "/v1/",
        ] {
            assert!(is_gateway_path(gateway), "{gateway}");
        }
        for own in [
            "/v1/organization",
            "/v1/organization/projects",
            "/v1/openapi.json",
            "/v1/invites/accept",
            "/v1",
            "/healthz",
            "/login",
            "/v2/chat/completions",
        ] {
            assert!(!is_gateway_path(own), "{own}");
        }
    }
}
