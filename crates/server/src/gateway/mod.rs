//! The data plane: every `/v1/*` request outside `/v1/organization` is authenticated (by the
//! auth layer), checked against the key's scopes, the project's model permissions, spend limit
//! and rate limits, forwarded to an upstream with the organization's credential, and metered.

pub mod alerts;
pub mod cluster;
pub mod limiter;
pub mod metering;
pub mod policy;
pub mod upstream;
pub mod usage;

use crate::config::{Config, Upstream};
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cluster::{ClusterCounters, Via};
use futures_util::{Stream, StreamExt};
use keyplane_core::catalog;
use keyplane_core::endpoints::{self, Endpoint};
use keyplane_core::ids::ProjectId;
use keyplane_core::model::{ApiKey, KeyOwnerId};
use keyplane_core::policy::EffectiveLimits;
use keyplane_core::ratelimit::{format_reset, retry_after_secs};
use keyplane_core::usage::UsageRow;
use limiter::{Decision, Limiter};
use metering::Meter;
use policy::{Governed, Policies};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use upstream::{SendError, UpstreamClient};
use usage::{SseObserver, Usage};

use crate::state::AppState;

/// The gateway's shared parts.
pub struct Gateway {
    /// One upstream client per serving thread (see `workers.rs`), so an upstream connection is
    /// driven by the thread whose requests use it; the last serves every other thread.
    clients: Vec<UpstreamClient>,
    routes: Vec<Route>,
    pub limiter: Limiter,
    pub policies: Arc<Policies>,
    pub meter: Arc<Meter>,
    /// Cluster-wide counters in Redis, when `KEYPLANE_REDIS_URL` is set.
    pub cluster: Option<Arc<ClusterCounters>>,
    max_body: usize,
}

impl Gateway {
    pub fn new(
        config: &Config,
        policies: Arc<Policies>,
        meter: Arc<Meter>,
    ) -> anyhow::Result<Self> {
        let clients = (0..=config.workers)
            .map(|_| UpstreamClient::new(config.upstream_connect_timeout, config.upstream_timeout))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let routes = config
            .upstreams
            .iter()
            .map(|u| Route {
                host: host_header(&u.url),
                auth: u.api_key.as_ref().and_then(|key| {
                    let mut v =
                        HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).ok()?;
                    v.set_sensitive(true);
                    Some(v)
                }),
                upstream: u.clone(),
            })
            .collect();
        let cluster = match &config.redis_url {
            Some(url) => Some(Arc::new(ClusterCounters::new(
                url,
                &config.redis_prefix,
                config.redis_timeout,
                config.instances,
            )?)),
            None => None,
        };
        Ok(Self {
            clients,
            routes,
            limiter: Limiter::new(),
            policies,
            meter,
            cluster,
            max_body: config.gateway_max_body_bytes,
        })
    }

    /// Admits a request on the cluster-wide counters when configured, else in process.
    async fn admit(
        &self,
        project: &str,
        limits: &EffectiveLimits,
        tokens: u64,
        images: u64,
    ) -> (Decision, Via) {
        match &self.cluster {
            Some(c) => c.admit(project, limits, tokens, images).await,
            None => (
                self.limiter.admit(project, limits, tokens, images),
                Via::Local,
            ),
        }
    }

    fn settle(&self, via: Via, project: &str, limits: &EffectiveLimits, delta: i64) {
        match (&self.cluster, via) {
            (Some(c), Via::Redis | Via::Fallback) => c.settle(via, project, limits, delta),
            _ => self.limiter.settle(project, limits, delta),
        }
    }

    /// The project's month-to-date spend (nano-USD): Redis' cluster-wide figure when reachable,
    /// else this instance's in-memory one.
    pub async fn month_spend(&self, project: &str, month_start: i64) -> Option<i64> {
        if let Some(c) = &self.cluster {
            if let Some(v) = c.month_spend(project, month_start, &self.meter).await {
                return Some(v);
            }
        }
        self.meter.month_spend(project, month_start).await
    }

    /// The upstream client of the serving thread this runs on.
    fn client(&self) -> &UpstreamClient {
        let last = self.clients.len() - 1;
        let i = crate::workers::current().map_or(last, |w| w.min(last));
        &self.clients[i]
    }

    /// The upstream that serves `model` (the last one without a model).
    fn upstream_for(&self, model: Option<&str>) -> Option<&Route> {
        match model {
            Some(m) => self.routes.iter().find(|r| r.upstream.serves(m)),
            None => self.routes.last(),
        }
    }
}

/// An upstream and its `authorization` and `host` headers, built once.
struct Route {
    upstream: Upstream,
    auth: Option<HeaderValue>,
    /// What hyper's client would otherwise format for every request.
    host: Option<HeaderValue>,
}

/// The `host` header for requests to `url`: its host, and its port unless the scheme's default
/// (as hyper's client writes it).
fn host_header(url: &str) -> Option<HeaderValue> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    match uri.port_u16() {
        Some(port) if Some(port) != default_port => {
            HeaderValue::from_str(&format!("{host}:{port}")).ok()
        }
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// What the gateway reads from a JSON request body. Only these fields are deserialized; the
/// rest is skipped without building a JSON tree.
#[derive(Debug, Default, serde::Deserialize)]
struct WireRequest<'a> {
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    stream: Option<bool>,
    stream_options: Option<WireStreamOptions>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    n: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct WireStreamOptions {
    include_usage: Option<bool>,
}

/// What the gateway learned from a request body.
#[derive(Debug, Default)]
struct RequestFacts {
    model: Option<String>,
    stream: bool,
    /// The client asked for the usage chunk itself.
    client_wants_usage: bool,
    max_output: u64,
    images: u64,
}

fn facts(body: &[u8], endpoint: &Endpoint) -> Result<RequestFacts, ApiError> {
    let w: WireRequest<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            None,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    Ok(RequestFacts {
        model: w.model.map(|m| m.into_owned()),
        stream: w.stream.unwrap_or(false),
        client_wants_usage: w
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_output: w
            .max_completion_tokens
            .or(w.max_tokens)
            .or(w.max_output_tokens)
            .unwrap_or(0),
        images: if endpoint.family == endpoints::UsageFamily::Images {
            w.n.unwrap_or(1)
        } else {
            0
        },
    })
}

/// The body with `stream_options.include_usage: true`, the one rewrite the gateway makes. Most
/// bodies have no `stream_options`: the field is spliced in after the opening brace without
/// re-encoding the request; otherwise the JSON is rewritten.
fn with_include_usage(body: &Bytes) -> Result<Bytes, ApiError> {
    const FIELD: &[u8] = br#""stream_options":{"include_usage":true},"#;
    let open = body.iter().position(|b| !b.is_ascii_whitespace());
    let has_options = body.windows(16).any(|w| w == b"\"stream_options\"");
    if let (Some(i), false) = (open, has_options) {
        let next = body[i + 1..].iter().find(|b| !b.is_ascii_whitespace());
        if body[i] == b'{' && next.is_some_and(|b| *b != b'}') {
            let mut out = Vec::with_capacity(body.len() + FIELD.len());
            out.extend_from_slice(&body[..=i]);
            out.extend_from_slice(FIELD);
            out.extend_from_slice(&body[i + 1..]);
            return Ok(Bytes::from(out));
        }
    }
    let mut json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("Invalid request body: {e}")))?;
    if let Value::Object(obj) = &mut json {
        let opts = obj
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(o) = opts {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&json).unwrap_or_default()))
}

/// A path with dot segments (plain or percent-encoded) could leave the upstream's base path once
/// the URL is normalized (`/v1/../admin`): such paths are refused, never forwarded.
fn escapes_base(path: &str) -> bool {
    // Each case needs a dot, a percent sign or a backslash: most paths have none.
    if !path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\')) {
        return false;
    }
    path.split('/').any(|segment| {
        let bytes = segment.as_bytes();
        // A segment of dots only, each written `.` or `%2e`.
        let mut dots = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'.' {
                i += 1;
            } else if bytes[i..].len() >= 3 && bytes[i..i + 3].eq_ignore_ascii_case(b"%2e") {
                i += 3;
            } else {
                break;
            }
            dots += 1;
        }
        let dot_segment = i == bytes.len() && (dots == 1 || dots == 2);
        dot_segment
            || segment.contains('\\')
            || bytes
                .windows(3)
                .any(|w| w.eq_ignore_ascii_case(b"%2f") || w.eq_ignore_ascii_case(b"%5c"))
    })
}

/// A path whose first segment is `organization` once an upstream normalizes it: repeated
/// slashes merged (`/v1//organization`, as nginx does), percent-encoding decoded
/// (`/v1/%6Frganization`) or case folded (`/v1/ORGANIZATION`). The Admin API is Keyplane's own
/// (`/v1/organization/*` never reaches the gateway), and its look-alikes are refused rather
/// than sent upstream with the organization's credential.
fn reaches_admin_api(path: &str) -> bool {
    path.split('/')
        .find(|segment| !segment.is_empty())
        .is_some_and(|first| {
            // Compared byte by byte as it decodes: nothing is allocated on the request path.
            let mut decoded = percent_encoding::percent_decode_str(first);
            b"organization"
                .iter()
                .all(|c| decoded.next().is_some_and(|d| d.eq_ignore_ascii_case(c)))
                && decoded.next().is_none()
        })
}

/// The `model` field of a multipart form body, if any.
fn multipart_model(body: &[u8]) -> Option<String> {
    const FIELD: &[u8] = b"name=\"model\"";
    let at = body.windows(FIELD.len()).position(|w| w == FIELD)?;
    let rest = &body[at + FIELD.len()..];
    let start = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let value = &rest[start..];
    let end = value.windows(2).position(|w| w == b"\r\n")?;
    let model = std::str::from_utf8(&value[..end]).ok()?.trim();
    (!model.is_empty() && model.len() <= 256).then(|| model.to_owned())
}

/// Headers about the connection, not the message (and the ones hyper writes itself). A
/// `match`, which compares lengths first: these run for every header of every request.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// Removes every header `keep` refuses, in place: the map is passed on, not copied.
fn keep_only(headers: &mut HeaderMap, keep: fn(&str) -> bool) {
    while let Some(name) = headers.keys().find(|n| !keep(n.as_str())).cloned() {
        headers.remove(&name);
    }
}

/// Whether a client header may reach the provider (hop-by-hop headers, the client's
/// credentials and cookies, Keyplane's own headers may not).
fn forwardable_request_header(name: &str) -> bool {
    !(hop_by_hop(name)
        || matches!(
            name,
            "authorization"
                | "openai-organization"
                | "openai-project"
                | "accept-encoding"
                | "cookie"
        )
        || name.starts_with("x-keyplane-"))
}

/// Whether a provider header may reach the client (hop-by-hop headers, the provider's rate
/// limits and organization, cookies may not).
fn forwardable_response_header(name: &str) -> bool {
    !(hop_by_hop(name)
        || name.starts_with("x-ratelimit-")
        || matches!(
            name,
            "openai-organization" | "openai-project" | "set-cookie"
        ))
}

fn missing_scope(key: &ApiKey, scope: &str) -> ApiError {
    let held = match key.permissions.to_list() {
        None => "all".to_owned(),
        Some(list) if list.is_empty() => "none".to_owned(),
        Some(list) => list.join(", "),
    };
    ApiError::Unauthorized(format!(
        "You have insufficient permissions for this operation. Missing scopes: {scope}. This key \
         has: {held}. Ask a project owner for a key with the scope, or use a key with All permissions."
    ))
}

/// Serves a `/v1/*` request whose `key` [`crate::auth::authenticate_gateway`] verified.
pub async fn forward(state: AppState, key: Arc<ApiKey>, req: Request) -> Response {
    match forward_inner(&state, key, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn forward_inner(
    state: &AppState,
    key: Arc<ApiKey>,
    req: Request,
) -> Result<Response, ApiError> {
    let gw = &state.gateway;
    let project_id = key
        .project_id
        .as_ref()
        .ok_or_else(|| ApiError::Internal("project key without a project".into()))?;
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path()
        .strip_prefix("/v1")
        .unwrap_or(parts.uri.path());
    if escapes_base(path) || reaches_admin_api(path) {
        return Err(ApiError::NotFound(format!(
            "Invalid URL ({} {}).",
            parts.method,
            crate::error::shown(parts.uri.path())
        )));
    }
    let endpoint = endpoints::classify(parts.method.as_str(), path);
    // Read the body before any refusal: answering before it arrived would cost the client its
    // kept-alive connection.
    let body = axum::body::to_bytes(body, gw.max_body)
        .await
        .map_err(|e| ApiError::unreadable_body(&e))?;
    if !key.permissions.allows(endpoint.scope) {
        return Err(missing_scope(&key, endpoint.scope));
    }
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    // Any body that looks like a JSON object is read, whatever its content type, so a missing
    // header cannot skip the model checks; multipart forms (audio, files) yield their `model`.
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let facts = if first == Some(b'{') {
        facts(&body, &endpoint)?
    } else if is_json
        && first.is_some()
        && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err()
    {
        return Err(ApiError::invalid(
            None,
            "We could not parse the JSON body of your request.",
        ));
    } else {
        RequestFacts {
            model: multipart_model(&body),
            ..RequestFacts::default()
        }
    };

    let policy = gw.policies.get(project_id).await?;
    let model = facts
        .model
        .as_deref()
        .map(|m| gw.policies.model(&policy, m));
    if let (Some(model), Some(perms)) = (facts.model.as_deref(), &policy.permissions) {
        if !perms.allows(model) {
            return Err(ApiError::Forbidden {
                message: format!(
                    "Project {project_id} does not have access to model `{}` ({}).",
                    crate::error::shown(model),
                    perms.mode.as_str().replace('_', " ")
                ),
                code: "model_not_allowed",
            });
        }
    }
    if let Some(limit) = &policy.spend_limit {
        let month = keyplane_core::policy::month_start(keyplane_core::time::now());
        if let Some(spent) = gw.month_spend(project_id.as_str(), month).await {
            if keyplane_core::usage::threshold_reached(limit.threshold_amount, spent) {
                return Err(ApiError::QuotaExceeded(format!(
                    "You exceeded your current quota: project {project_id} has reached its spend \
                     limit of ${:.2} for this month. Raise or remove the limit at \
                     /v1/organization/projects/{project_id}/spend_limit.",
                    limit.threshold_amount as f64 / 100.0
                )));
            }
        }
    }

    // Rate limits apply per model. As OpenAI documents it, a request counts the larger of its
    // `max_tokens` and its estimated size (≈ 4 bytes per token); real usage settles it later.
    let reserved = facts.max_output.max(body.len() as u64 / 4);
    let mut decision: Option<Decision> = None;
    let mut via = Via::Local;
    if let Some(g) = &model {
        let (spec, l) = (&g.spec, &g.limits);
        let (d, admitted_by) = gw
            .admit(project_id.as_str(), l, reserved, facts.images)
            .await;
        via = admitted_by;
        if let Some((kind, adm, requested)) = d.refused {
            let (what, kind_str) = kind.describe();
            // A request larger than the whole limit can never pass: say so.
            let never_fits = requested > adm.limit;
            let message = if never_fits {
                format!(
                    "Request too large for {} in project {project_id} on {what}: Limit {}, \
                     Requested {requested}. The input or output tokens must be reduced in order \
                     to run successfully.",
                    spec.name, adm.limit
                )
            } else {
                format!(
                    "Rate limit reached for {} in project {project_id} on {what}: Limit {}, \
                     Remaining {}, Requested {requested}. Please try again in {}.",
                    spec.name,
                    adm.limit,
                    adm.remaining,
                    format_reset(adm.retry_after)
                )
            };
            let mut resp = ApiError::RateLimited {
                message,
                kind: kind_str,
            }
            .into_response();
            rate_headers(resp.headers_mut(), &d);
            // Every 429 carries `retry-after`; for a request that can never fit it is the time
            // until the budget is full again.
            let wait = if never_fits {
                adm.reset
            } else {
                adm.retry_after
            };
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs(wait).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(resp);
        }
        decision = Some(d);
    }

    // Ask for usage on streams so they are never metered as zero.
    let strip_usage = facts.stream
        && !facts.client_wants_usage
        && endpoint.family == endpoints::UsageFamily::Completions
        && !path.starts_with("/responses");
    let outgoing: Bytes = if strip_usage {
        with_include_usage(&body)?
    } else {
        body
    };
    let route = gw
        .upstream_for(facts.model.as_deref())
        .ok_or_else(|| ApiError::Internal("no upstream configured".into()))?;
    let upstream = &route.upstream;
    let mut url = String::with_capacity(upstream.url.len() + path.len() + 64);
    url.push_str(&upstream.url);
    url.push_str(path);
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let uri: axum::http::Uri = url.parse().map_err(|_| {
        ApiError::invalid(
            None,
            format!(
                "Invalid URL ({} {}).",
                parts.method,
                crate::error::shown(parts.uri.path())
            ),
        )
    })?;
    let mut outgoing_req = axum::http::Request::new(outgoing);
    *outgoing_req.method_mut() = parts.method.clone();
    *outgoing_req.uri_mut() = uri;
    let mut out_headers = std::mem::take(&mut parts.headers);
    keep_only(&mut out_headers, forwardable_request_header);
    if let Some(auth) = &route.auth {
        out_headers.insert(header::AUTHORIZATION, auth.clone());
    }
    if let Some(host) = &route.host {
        out_headers.insert(header::HOST, host.clone());
    }
    *outgoing_req.headers_mut() = out_headers;
    let client = gw.client();
    let upstream_resp = client
        .send(outgoing_req)
        .await
        .map_err(|e| upstream_error(e, upstream))?;

    let ctx = MeterCtx {
        meter: gw.meter.clone(),
        key,
        family: endpoint.family,
        model: facts.model.unwrap_or_default(),
        governed: model,
        state: state.clone(),
        reserved,
        via,
        images: facts.images,
    };
    let status = upstream_resp.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        ctx.finish(None, false);
        tracing::error!(upstream = %upstream.name, status = status.as_u16(), "upstream rejected Keyplane's credential");
        return Err(ApiError::BadGateway {
            message: format!(
                "The upstream provider '{}' rejected the organization's credential ({}). An \
                 administrator must fix the upstream API key.",
                upstream.name,
                status.as_u16()
            ),
            code: "upstream_auth_failed",
        });
    }
    let (head, upstream_body) = upstream_resp.into_parts();
    let content_type = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_sse = content_type.starts_with("text/event-stream");
    let upstream_json = content_type.starts_with("application/json");
    let mut headers = head.headers;
    keep_only(&mut headers, forwardable_response_header);
    if let Some(d) = &decision {
        rate_headers(&mut headers, d);
    }

    if is_sse {
        let stream = MeteredStream::new(
            upstream_body,
            SseObserver::new(strip_usage),
            ctx,
            status.is_success(),
        );
        let mut resp = Response::new(Body::from_stream(stream));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        return Ok(resp);
    }
    if upstream_json {
        let bytes = UpstreamClient::read_all(upstream_body)
            .await
            .map_err(|e| upstream_error(e, upstream))?;
        let mut usage = usage::from_body(&bytes);
        if ctx.images > 0 {
            usage.get_or_insert_with(Usage::default);
        }
        ctx.finish(usage, status.is_success());
        let mut resp = Response::new(Body::from(bytes));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        return Ok(resp);
    }
    // Anything else (audio, file contents): stream through, metered as a request.
    ctx.finish(None, status.is_success());
    let mut resp = Response::new(Body::from_stream(upstream_body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

fn upstream_error(e: SendError, upstream: &Upstream) -> ApiError {
    match e {
        SendError::Timeout => ApiError::GatewayTimeout(format!(
            "The upstream provider '{}' did not answer in time.",
            upstream.name
        )),
        SendError::Failed(cause) => {
            tracing::warn!(upstream = %upstream.name, error = %cause, "upstream request failed");
            ApiError::BadGateway {
                message: format!(
                    "The upstream provider '{}' could not be reached. Please retry shortly.",
                    upstream.name
                ),
                code: "upstream_unreachable",
            }
        }
    }
}

/// OpenAI's rate-limit headers, in their order. (A `static`: a `const` array would be built and
/// dropped at each use.)
static RATE_HEADERS: [HeaderName; 6] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

/// Adds the rate-limit headers. Their six values are written into one buffer and each header
/// gets a slice of it: one allocation per response, not one per header.
fn rate_headers(headers: &mut HeaderMap, d: &Decision) {
    let mut text = String::with_capacity(96);
    let mut ends = [0usize; 6];
    let mut n = itoa::Buffer::new();
    for (i, adm) in [d.requests, d.tokens].iter().enumerate() {
        text.push_str(n.format(adm.limit));
        ends[3 * i] = text.len();
        text.push_str(n.format(adm.remaining));
        ends[3 * i + 1] = text.len();
        keyplane_core::ratelimit::write_reset(&mut text, adm.reset);
        ends[3 * i + 2] = text.len();
    }
    let all = Bytes::from(text);
    headers.reserve(RATE_HEADERS.len());
    let mut start = 0;
    for (name, end) in RATE_HEADERS.iter().zip(ends) {
        if let Ok(v) = HeaderValue::from_maybe_shared(all.slice(start..end)) {
            headers.insert(name.clone(), v);
        }
        start = end;
    }
}

/// Everything needed to settle the rate limiter and meter a request once its usage is known.
struct MeterCtx {
    meter: Arc<Meter>,
    /// A project or service-account key: its project is the request's.
    key: Arc<ApiKey>,
    family: endpoints::UsageFamily,
    model: String,
    /// The catalog entry (prices) and rate limits of the request's model, if it named one.
    governed: Option<Arc<Governed>>,
    state: AppState,
    reserved: u64,
    /// The counters that admitted the request, which its settlement corrects.
    via: Via,
    images: u64,
}

impl MeterCtx {
    fn finish(self, usage: Option<Usage>, success: bool) {
        let project_id = self.key.project_id.as_ref().map_or("", ProjectId::as_str);
        let used = usage.map(|u| u.input + u.output).unwrap_or(0);
        if let Some(g) = &self.governed {
            self.state.gateway.settle(
                self.via,
                project_id,
                &g.limits,
                used as i64 - self.reserved as i64,
            );
        }
        if !success {
            return;
        }
        let u = usage.unwrap_or_default();
        let cost = self
            .governed
            .as_ref()
            .map(|g| catalog::cost_usd(&g.spec, u.input, u.cached, u.output, self.images))
            .unwrap_or(0.0);
        let now = keyplane_core::time::now();
        let cost_nano_usd = (cost * keyplane_core::usage::NANO_USD_PER_USD).round() as i64;
        if let Some(c) = &self.state.gateway.cluster {
            c.add_spend(
                project_id,
                keyplane_core::policy::month_start(now),
                cost_nano_usd,
            );
        }
        let (user_id, service_account_id) = match &self.key.owner.id {
            KeyOwnerId::User(u) => (Some(u.as_str()), None),
            KeyOwnerId::ServiceAccount(s) => (None, Some(s.as_str())),
        };
        self.meter.record(metering::Use {
            family: self.family.as_str(),
            project_id,
            api_key_id: self.key.id.as_str(),
            user_id,
            service_account_id,
            model: &self.model,
            counts: UsageRow {
                minute: now - now.rem_euclid(60),
                requests: 1,
                input_tokens: u.input as i64,
                output_tokens: u.output as i64,
                cached_tokens: u.cached as i64,
                images: self.images as i64,
                cost_nano_usd,
                ..UsageRow::default()
            },
        });
    }
}

/// An SSE body passed through as it arrives; meters on completion or client disconnect.
///
/// The upstream connection's task hands the response over one event at a time, so passing each
/// on at once costs one write to the client per event. Events that are ready together are sent
/// together instead: with an event held, the stream yields (up to [`HANDOVER_YIELDS`] times) to
/// let that task hand over the next one it has already read, and passes the held events on when
/// nothing more came (or [`COALESCE_LIMIT`] bytes are held). An upstream that sends events
/// slowly sees each passed on after those few turns of the scheduler.
struct MeteredStream {
    inner: upstream::IdleLimited,
    observer: SseObserver,
    ctx: Option<MeterCtx>,
    ok: bool,
    done: bool,
    held: bytes::BytesMut,
    yields: u8,
    failed: Option<std::io::Error>,
}

/// Turns of the scheduler a held event waits for the next one: the upstream connection's task
/// takes two to hand over an event it has already read.
const HANDOVER_YIELDS: u8 = 2;

/// The most a stream holds back before passing it on.
const COALESCE_LIMIT: usize = 16 * 1024;

impl MeteredStream {
    fn new(inner: upstream::IdleLimited, observer: SseObserver, ctx: MeterCtx, ok: bool) -> Self {
        Self {
            inner,
            observer,
            ctx: Some(ctx),
            ok,
            done: false,
            held: bytes::BytesMut::new(),
            yields: 0,
            failed: None,
        }
    }

    fn release(&mut self) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        self.yields = 0;
        Poll::Ready(Some(Ok(self.held.split().freeze())))
    }
}

impl Stream for MeteredStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                if !self.held.is_empty() {
                    return self.release();
                }
                return Poll::Ready(self.failed.take().map(Err));
            }
            match self.inner.poll_next_unpin(cx) {
                Poll::Pending if self.held.is_empty() => return Poll::Pending,
                Poll::Pending if self.yields < HANDOVER_YIELDS => {
                    self.yields += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return self.release(),
                Poll::Ready(Some(Ok(chunk))) => {
                    let this = &mut *self;
                    this.observer.feed(&chunk, &mut this.held);
                    self.yields = 0;
                    if self.held.len() >= COALESCE_LIMIT {
                        return self.release();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    self.settle();
                    self.failed = Some(e);
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let this = &mut *self;
                    this.observer.finish(&mut this.held);
                    self.settle();
                }
            }
        }
    }
}

impl MeteredStream {
    fn settle(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            ctx.finish(self.observer.usage, self.ok);
        }
    }
}

impl Drop for MeteredStream {
    /// A client that disconnects mid-stream drops the body: the upstream request is cancelled
    /// with it, and what was seen so far is metered.
    fn drop(&mut self) {
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_usage_is_added_either_way() {
        let read = |b: Bytes| serde_json::from_slice::<Value>(&b).unwrap();
        let spliced =
            with_include_usage(&Bytes::from_static(br#" {"model":"m","stream":true}"#)).unwrap();
        let v = read(spliced);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "m");
        let rewritten = with_include_usage(&Bytes::from_static(
            br#"{"stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
        ))
        .unwrap();
        let v = read(rewritten);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
    }

    #[test]
    fn dot_segments_never_reach_the_upstream() {
        for bad in [
            "/../organization",
            "/models/..",
            "/%2e%2E/x",
            "/a/./b",
            "/a%2F..%2Fb",
            "/a\\..\\b",
        ] {
            assert!(escapes_base(bad), "{bad}");
        }
        for good in [
            "/chat/completions",
            "/files/file-abc/content",
            "/models/gpt-4o",
            "/a..b",
        ] {
            assert!(!escapes_base(good), "{good}");
        }
    }

    #[test]
    fn admin_api_look_alikes_never_reach_the_upstream() {
        for bad in [
            "//organization/projects",
            "/%6Frganization/projects",
            "/ORGANIZATION/admin_api_keys",
            "/Organization",
            "///%6f%72%67anization",
        ] {
            assert!(reaches_admin_api(bad), "{bad}");
        }
        for good in [
            "/chat/completions",
            "/organizations/x",
            "/files/organization",
            "/",
            "",
        ] {
            assert!(!reaches_admin_api(good), "{good}");
        }
    }

    #[test]
    fn refused_headers_are_all_removed_however_many() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-proj-x"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for i in 0..12 {
            let name = HeaderName::try_from(format!("x-keyplane-{i}")).unwrap();
            headers.append(name, HeaderValue::from_static("v"));
        }
        headers.append("x-custom", HeaderValue::from_static("a"));
        headers.append("x-custom", HeaderValue::from_static("b"));
        keep_only(&mut headers, forwardable_request_header);
        let mut left: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        // Removal may reorder the names; the values of one name keep their order.
        left.sort_by_key(|(n, _)| *n);
        assert_eq!(
            left,
            [
                ("content-type", &b"application/json"[..]),
                ("x-custom", b"a"),
                ("x-custom", b"b")
            ]
        );
    }

    #[test]
    fn the_host_header_is_the_upstreams_authority() {
        let host = |url| host_header(url).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            host("https://api.openai.com/v1").as_deref(),
            Some("api.openai.com")
        );
        assert_eq!(
            host("http://127.0.0.1:8090/v1").as_deref(),
            Some("127.0.0.1:8090")
        );
        assert_eq!(
            host("https://example.com:443/v1").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host("http://[::1]:11434/v1").as_deref(),
            Some("[::1]:11434")
        );
        assert_eq!(host("not a url"), None);
    }

    #[test]
    fn multipart_model_is_found() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n";
        assert_eq!(multipart_model(body).as_deref(), Some("whisper-1"));
        assert_eq!(multipart_model(b"--b\r\n--b--"), None);
    }

    #[test]
    fn request_facts_skip_unknown_fields_and_refuse_ambiguity() {
        let e = endpoints::classify("POST", "/chat/completions");
        let f = facts(br#"{"messages":[{"role":"user","content":"x"}],"model":"gpt-4o","max_tokens":7,"stream":true}"#, &e).unwrap();
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            (f.max_output, f.stream, f.client_wants_usage),
            (7, true, false)
        );
        // Two `model` fields could send one model upstream and have another checked: refused.
        assert!(facts(br#"{"model":"gpt-4o-mini","model":"o1"}"#, &e).is_err());
        assert!(facts(br#"{"model":5}"#, &e).is_err());
        let img = endpoints::classify("POST", "/images/generations");
        assert_eq!(
            facts(br#"{"model":"gpt-image-1","n":3}"#, &img)
                .unwrap()
                .images,
            3
        );
    }
}
