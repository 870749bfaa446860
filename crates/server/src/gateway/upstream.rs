//! The gateway's client for its upstreams: hyper's pooled client over rustls (HTTP/1.1, and
//! HTTP/2 where the provider offers it), one per serving thread so each upstream connection is
//! driven by the thread whose requests use it.
//!
//! When the environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, any case),
//! reqwest, which honours it (and `NO_PROXY`), sends the requests instead. hyper's own client
//! costs a third less per request than reqwest's (no URL re-parse, no per-request client
//! clone), which is why it is the default.

use crate::silence::Silence;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

type HyperClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why a request got no response from the upstream.
#[derive(Debug)]
pub enum SendError {
    /// Nothing came back within the upstream timeout.
    Timeout,
    /// The connection could not be made or broke (the cause, for the log).
    Failed(String),
}

pub struct UpstreamClient {
    inner: Inner,
    /// The longest the upstream may stay silent: before its response head, and between two
    /// parts of its body.
    idle: Duration,
}

enum Inner {
    Hyper(Box<HyperClient>),
    Proxied(reqwest::Client),
}

/// The proxy variables reqwest reads.
const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

impl UpstreamClient {
    pub fn new(connect_timeout: Duration, idle: Duration) -> anyhow::Result<Self> {
        let proxied = PROXY_VARS
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        let inner = if proxied {
            Inner::Proxied(
                reqwest::Client::builder()
                    .connect_timeout(connect_timeout)
                    .read_timeout(idle)
                    .pool_max_idle_per_host(1024)
                    .tcp_nodelay(true)
                    .build()?,
            )
        } else {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(connect_timeout));
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_all_versions()
                .wrap_connector(http);
            Inner::Hyper(Box::new(
                hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                    // As reqwest: idle pooled connections are closed after 90 s.
                    .timer(TokioTimer::new())
                    .pool_timer(TokioTimer::new())
                    .pool_max_idle_per_host(1024)
                    .build(https),
            ))
        };
        Ok(Self { inner, idle })
    }

    /// Sends the request; the response's body is the upstream's as it arrives, failing with
    /// `TimedOut` when the upstream stalls. One timer serves both waits (the head, then each
    /// silence in the body): a second one per request cost as much as the rest of this.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<IdleLimited>, SendError> {
        match &self.inner {
            Inner::Hyper(client) => {
                let mut timer = Box::pin(tokio::time::sleep(self.idle));
                let answered = tokio::select! {
                    biased;
                    answer = client.request(req.map(Full::new)) => Some(answer),
                    () = &mut timer => None,
                };
                match answered {
                    None => Err(SendError::Timeout),
                    Some(Err(e)) => Err(SendError::Failed(error_chain(&e))),
                    Some(Ok(resp)) => {
                        Ok(resp
                            .map(|body| IdleLimited::with_timer(Body::new(body), self.idle, timer)))
                    }
                }
            }
            Inner::Proxied(client) => {
                let req = reqwest::Request::try_from(req)
                    .map_err(|e| SendError::Failed(error_chain(&e)))?;
                match client.execute(req).await {
                    Ok(resp) => Ok(Response::from(resp)
                        .map(|body| IdleLimited::new(Body::new(body), self.idle))),
                    Err(e) if e.is_timeout() => Err(SendError::Timeout),
                    Err(e) => Err(SendError::Failed(error_chain(&e))),
                }
            }
        }
    }

    /// The whole body, or [`SendError::Timeout`] if the upstream stalls for the idle timeout.
    /// A body in one part (the usual JSON answer) is passed on without a copy.
    pub async fn read_all(body: IdleLimited) -> Result<Bytes, SendError> {
        let parts: Vec<Bytes> = body.try_collect().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => SendError::Timeout,
            _ => SendError::Failed(error_chain(&e)),
        })?;
        Ok(match <[Bytes; 1]>::try_from(parts) {
            Ok([one]) => one,
            Err(parts) => Bytes::from(parts.concat()),
        })
    }
}

/// A response body that ends in a `TimedOut` error when no part arrives for the idle timeout.
pub struct IdleLimited {
    inner: axum::body::BodyDataStream,
    silence: Silence,
}

impl IdleLimited {
    fn new(body: Body, idle: Duration) -> Self {
        Self::with_timer(body, idle, Box::pin(tokio::time::sleep(idle)))
    }

    /// With a timer already armed for a deadline no later than `idle` from now, which is
    /// moved on when it fires early.
    fn with_timer(body: Body, idle: Duration, timer: Pin<Box<tokio::time::Sleep>>) -> Self {
        Self {
            inner: body.into_data_stream(),
            silence: Silence::armed(idle, timer),
        }
    }
}

impl Stream for IdleLimited {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            self.silence.part();
            return Poll::Ready(item.map(|r| r.map_err(std::io::Error::other)));
        }
        if self.silence.expired(cx) {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the upstream sent nothing for the upstream timeout",
            ))));
        }
        Poll::Pending
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within a millisecond (the timer's resolution) of `expected`.
    fn about(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected && elapsed <= expected + Duration::from_millis(2)
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_counts_from_the_last_part() {
        let idle = Duration::from_secs(10);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        // Five parts 6 s apart (30 s in all, three times the timeout), then silence.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                tx.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let parts = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|part| (part, rx))
        });
        let start = tokio::time::Instant::now();
        let mut body = IdleLimited::new(Body::from_stream(parts), idle);
        for i in 1..=5 {
            let part = body.next().await.unwrap().unwrap();
            assert_eq!(&part[..], b"part");
            assert!(
                about(start.elapsed(), Duration::from_secs(6 * i)),
                "{:?}",
                start.elapsed()
            );
        }
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        // The timeout after the last part, not after the first or the start.
        assert!(
            about(start.elapsed(), Duration::from_secs(40)),
            "{:?}",
            start.elapsed()
        );
    }
}
