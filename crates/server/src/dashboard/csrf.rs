//! CSRF: every state-changing dashboard request carries the session's token, as the hidden
//! form field `csrf_token` or the `x-csrf-token` header (the script helper). Forms used before
//! a session exists (sign-in, sign-up) use a double-submit cookie instead.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";

/// Constant-time comparison of a presented token with the expected one.
pub fn matches(presented: Option<&str>, expected: &str) -> bool {
    match presented {
        Some(p) if !expected.is_empty() => p.as_bytes().ct_eq(expected.as_bytes()).into(),
        _ => false,
    }
}

/// The token of a request: the header, or the form field of a URL-encoded body.
pub fn presented(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(h) = headers.get(HEADER).and_then(|v| v.to_str().ok()) {
        return Some(h.to_owned());
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v)
}
