//! When to retry a request and how long to wait: exponential backoff with jitter, or what the
//! server asks for in `retry-after-ms` / `retry-after`, as the official SDKs do.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::{Duration, SystemTime};

/// Retries after the first attempt unless `--max-retries` says otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 4;

/// The longest wait a server may ask for; beyond it the client gives up rather than hang.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);

const BASE_DELAY: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Whether an answer with this status is worth another attempt (`x-should-retry` overrides).
pub fn retryable_status(status: StatusCode, headers: &HeaderMap) -> bool {
    match headers
        .get("x-should-retry")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// `0.5 s · 2^retry`, capped at 8 s, minus up to 25 % jitter so clients do not retry in step.
pub fn backoff(retry: u32) -> Duration {
    let exp = BASE_DELAY.saturating_mul(2u32.saturating_pow(retry.min(16)));
    let capped = exp.min(MAX_BACKOFF);
    let jitter: f64 = rand::random::<f64>() * 0.25;
    capped.mul_f64(1.0 - jitter)
}

/// The wait the server asked for: `retry-after-ms` (milliseconds), then `retry-after`
/// (seconds, possibly fractional, or an HTTP date).
pub fn server_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for retry in 0..10 {
            let d = backoff(retry);
            let full = BASE_DELAY.saturating_mul(2u32.pow(retry)).min(MAX_BACKOFF);
            assert!(d <= full && d >= full.mul_f64(0.75), "{retry}: {d:?}");
        }
    }

    #[test]
    fn server_delay_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            server_delay(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            server_delay(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            server_delay(
                &headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:10 GMT")]),
                now
            ),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            server_delay(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(server_delay(&HeaderMap::new(), now), None);
    }

    #[test]
    fn which_statuses_retry() {
        let none = HeaderMap::new();
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS, &none));
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE, &none));
        assert!(retryable_status(StatusCode::INTERNAL_SERVER_ERROR, &none));
        assert!(!retryable_status(StatusCode::NOT_FOUND, &none));
        assert!(!retryable_status(StatusCode::CONFLICT, &none));
        let no = headers(&[("x-should-retry", "false")]);
        assert!(!retryable_status(StatusCode::SERVICE_UNAVAILABLE, &no));
        let yes = headers(&[("x-should-retry", "true")]);
        assert!(retryable_status(StatusCode::BAD_REQUEST, &yes));
    }
}
