//! `MockError`: every failure the mock reports, in OpenAI's error envelope.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `{"error":{"message","type","param","code"}}` with a status.
#[derive(Debug, Clone)]
pub struct MockError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl MockError {
    /// 400 `invalid_request_error`.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        MockError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_owned),
            code: None,
        }
    }

    /// The error OpenAI answers with `status`, as injected by `x-mock-status`.
    pub fn injected(status: StatusCode) -> Self {
        let (kind, code, message) = match status.as_u16() {
            400 => ("invalid_request_error", None, "Invalid request."),
            401 => (
                "invalid_request_error",
                Some("invalid_api_key"),
                "Incorrect API key provided.",
            ),
            403 => (
                "invalid_request_error",
                Some("unsupported_country_region_territory"),
                "Country, region, or territory not supported.",
            ),
            404 => (
                "invalid_request_error",
                Some("model_not_found"),
                "The model does not exist or you do not have access to it.",
            ),
            413 => (
                "invalid_request_error",
                Some("request_too_large"),
                "Request too large.",
            ),
            429 => (
                "requests",
                Some("rate_limit_exceeded"),
                "Rate limit reached (injected by mock upstream).",
            ),
            503 => (
                "server_error",
                Some("service_unavailable"),
                "The server is overloaded or not ready yet.",
            ),
            s if s >= 500 => (
                "server_error",
                None,
                "The server had an error while processing your request.",
            ),
            _ => ("invalid_request_error", None, "Injected error."),
        };
        MockError {
            status,
            message: message.to_owned(),
            kind,
            param: None,
            code,
        }
    }

    pub fn not_found(message: impl Into<String>, code: Option<&'static str>) -> Self {
        MockError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code,
        }
    }
}

impl IntoResponse for MockError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        (self.status, Json(body)).into_response()
    }
}
