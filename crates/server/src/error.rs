//! `ApiError`: every failure the server reports, in OpenAI's error envelope.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyplane_api_types::{ErrorBody, ErrorDetail};
use keyplane_core::ports::StoreError;
use keyplane_core::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or names an invalid value.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: Option<String>,
    },
    /// 401 `invalid_api_key`: missing, unknown, revoked or expired credential.
    #[error("{0}")]
    InvalidApiKey(String),
    /// 401: the key is valid but may not do this (wrong kind of key, missing scope).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the project's policy forbids this (e.g. a model outside its allow list).
    #[error("{message}")]
    Forbidden { message: String, code: &'static str },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 429 `rate_limit_exceeded`; `kind` is OpenAI's error type (`requests`, `tokens`).
    #[error("{message}")]
    RateLimited { message: String, kind: &'static str },
    /// 429 `insufficient_quota`: the spend limit is reached.
    #[error("{0}")]
    QuotaExceeded(String),
    /// 502: the upstream provider failed; the message is safe to show.
    #[error("{message}")]
    BadGateway { message: String, code: &'static str },
    /// 504: the upstream provider timed out.
    #[error("{0}")]
    GatewayTimeout(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 408: the client stopped sending its request body (see `silence::SilenceLimited`).
    #[error("{0}")]
    RequestTimeout(String),
    /// 503: the key could not be checked (the database is unreachable and the key is not
    /// cached, or the cache is older than its grace). Not "invalid key": the key may be fine.
    #[error("key verification unavailable: {0}")]
    KeyUnverifiable(String),
    /// 503: a dependency (the database) is unavailable. The cause is logged, not returned.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500: our bug. The cause is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A request body that could not be read: the client went silent (408) or sent more than
    /// the limit (413).
    pub fn unreadable_body(e: &(dyn std::error::Error + 'static)) -> Self {
        if crate::silence::client_timed_out(e) {
            ApiError::RequestTimeout(
                "The request body did not arrive in time: the client sent nothing of it for \
                 the client timeout."
                    .to_owned(),
            )
        } else {
            ApiError::PayloadTooLarge("The request body is too large.".to_owned())
        }
    }

    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_owned),
            code: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidApiKey(_) | ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::KeyUnverifiable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorDetail {
        let (message, kind, param, code) = match self {
            ApiError::InvalidRequest {
                message,
                param,
                code,
            } => (
                message.clone(),
                "invalid_request_error",
                param.clone(),
                code.clone(),
            ),
            ApiError::InvalidApiKey(m) => (
                m.clone(),
                "invalid_request_error",
                None,
                Some("invalid_api_key".to_owned()),
            ),
            ApiError::Unauthorized(m) | ApiError::NotFound(m) | ApiError::MethodNotAllowed(m) => {
                (m.clone(), "invalid_request_error", None, None)
            }
            ApiError::Forbidden { message, code } => (
                message.clone(),
                "invalid_request_error",
                None,
                Some((*code).to_owned()),
            ),
            ApiError::RateLimited { message, kind } => (
                message.clone(),
                *kind,
                None,
                Some("rate_limit_exceeded".to_owned()),
            ),
            ApiError::QuotaExceeded(m) => (
                m.clone(),
                "insufficient_quota",
                None,
                Some("insufficient_quota".to_owned()),
            ),
            ApiError::BadGateway { message, code } => (
                message.clone(),
                "server_error",
                None,
                Some((*code).to_owned()),
            ),
            ApiError::GatewayTimeout(m) => (
                m.clone(),
                "server_error",
                None,
                Some("upstream_timeout".to_owned()),
            ),
            ApiError::PayloadTooLarge(m) => (
                m.clone(),
                "invalid_request_error",
                None,
                Some("request_too_large".to_owned()),
            ),
            ApiError::RequestTimeout(m) => (
                m.clone(),
                "invalid_request_error",
                None,
                Some("request_timeout".to_owned()),
            ),
            ApiError::KeyUnverifiable(_) => (
                "Your API key could not be verified right now: Keyplane cannot reach its database. \
                 This does not mean the key is invalid; please retry shortly."
                    .to_owned(),
                "server_error",
                None,
                Some("key_verification_unavailable".to_owned()),
            ),
            ApiError::Unavailable(_) => (
                "Keyplane cannot reach its database right now. Please retry shortly.".to_owned(),
                "server_error",
                None,
                Some("service_unavailable".to_owned()),
            ),
            ApiError::Internal(_) => (
                "The server had an error while processing your request.".to_owned(),
                "server_error",
                None,
                None,
            ),
        };
        ErrorDetail {
            message,
            kind: kind.to_owned(),
            param,
            code,
        }
    }
}

/// Logs the cause of a 5xx when its response is made (the body stays opaque to the client).
/// It is logged in the request's span, which names the route and the key.
pub fn log_server_error(status: StatusCode, cause: &dyn std::fmt::Display) {
    tracing::error!(status = status.as_u16(), cause = %cause, "request failed");
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody { error: self.body() };
        let mut response = (status, axum::Json(body)).into_response();
        if status.is_server_error() {
            log_server_error(status, &self);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidInput { param, message } => ApiError::InvalidRequest {
                message,
                param,
                code: None,
            },
            e @ DomainError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            // OpenAI answers state conflicts (archived project, …) with 400; 409 would also make
            // the SDKs retry a request that can never succeed.
            DomainError::Conflict(m) => ApiError::invalid(None, m),
            DomainError::Forbidden(m) => ApiError::Unauthorized(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownCursor(id) => ApiError::invalid(
                Some("after"),
                format!(
                    "Invalid 'after': '{}' is not an id from this list.",
                    shown(&id)
                ),
            ),
            StoreError::Conflict(m) => ApiError::invalid(None, m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
        }
    }
}

/// A client-supplied value, shortened for an error message.
pub fn shown(raw: &str) -> String {
    let mut s: String = raw.chars().filter(|c| !c.is_control()).take(80).collect();
    if raw.chars().count() > 80 {
        s.push('…');
    }
    s
}
