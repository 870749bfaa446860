//! Fault injection: `x-mock-delay-ms` and `x-mock-status`.

use crate::error::MockError;
use crate::input::header_u64;
use axum::http::{HeaderMap, StatusCode};
use std::time::Duration;

/// Sleeps `x-mock-delay-ms`, then returns the error `x-mock-status` asks for, if any.
/// A status below 400, or one that is not a number, is ignored.
pub async fn inject(headers: &HeaderMap) -> Option<MockError> {
    if let Some(ms) = header_u64(headers, "x-mock-delay-ms").filter(|&ms| ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = header_u64(headers, "x-mock-status")
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| s.as_u16() >= 400)?;
    Some(MockError::injected(status))
}
