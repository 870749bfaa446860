//! The floor of Keyplane's HTTP stack, for `bench_gateway`: the same server (axum on
//! Keyplane's serving threads) and upstream client (reqwest, one per thread), forwarding every
//! request as it is, with none of Keyplane's checks. What Keyplane costs beyond it is the
//! gateway's own work; what it costs beyond nginx and short of it is the stack's.
//!
//! ```sh
//! target/release/examples/bare_proxy --listen 127.0.0.1:8091 --upstream http://127.0.0.1:8090
//! ```

#[path = "common/mod.rs"]
mod common;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use common::arg;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type HyperClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

struct Proxy {
    upstream: String,
    clients: Vec<reqwest::Client>,
    /// `--client hyper`: hyper's pooled client instead of reqwest.
    hyper: Option<Vec<HyperClient>>,
}

async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let mut url = format!("{}{}", proxy.upstream, parts.uri.path());
    if let Some(q) = parts.uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let worker = keyplane_server::workers::current().unwrap_or(0);
    if let Some(clients) = &proxy.hyper {
        let Ok(uri) = url.parse::<axum::http::Uri>() else {
            return status(StatusCode::BAD_REQUEST);
        };
        let mut out = axum::http::Request::new(http_body_util::Full::new(body));
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        for (name, value) in parts.headers.iter() {
            if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                out.headers_mut().append(name.clone(), value.clone());
            }
        }
        let Ok(upstream) = clients[worker].request(out).await else {
            return status(StatusCode::BAD_GATEWAY);
        };
        let (mut head, body) = upstream.into_parts();
        for hop in ["content-length", "connection", "transfer-encoding"] {
            head.headers.remove(hop);
        }
        // `BARE_PROXY_BUFFER=1`: the whole upstream body first, as Keyplane reads a JSON
        // response's `usage` before answering.
        if std::env::var_os("BARE_PROXY_BUFFER").is_some() {
            let Ok(bytes) = axum::body::to_bytes(Body::new(body), 64 << 20).await else {
                return status(StatusCode::BAD_GATEWAY);
            };
            return Response::from_parts(head, Body::from(bytes));
        }
        return Response::from_parts(head, Body::new(body));
    }
    let client = &proxy.clients[worker];
    let mut builder = client.request(parts.method, &url);
    for (name, value) in parts.headers.iter() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            builder = builder.header(name, value);
        }
    }
    let Ok(upstream) = builder.body(body).send().await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let mut headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            headers.append(name.clone(), value.clone());
        }
    }
    let code = upstream.status();
    let mut resp = Response::new(Body::from_stream(upstream.bytes_stream()));
    *resp.status_mut() = code;
    *resp.headers_mut() = headers;
    resp
}

fn status(code: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = code;
    resp
}

fn main() -> anyhow::Result<()> {
    // As `keyplane serve` does, so the floor runs on the same memory settings.
    keyplane_server::startup::disable_transparent_huge_pages();
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:8091".into());
    let upstream = arg("--upstream").unwrap_or_else(|| "http://127.0.0.1:8090".into());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let proxy = Arc::new(Proxy {
        upstream,
        clients: (0..workers)
            .map(|_| {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(1024)
                    .tcp_nodelay(true)
                    .build()
            })
            .collect::<Result<_, _>>()?,
        hyper: (arg("--client").as_deref() == Some("hyper")).then(|| {
            (0..workers)
                .map(|_| {
                    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
                    connector.set_nodelay(true);
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .pool_max_idle_per_host(1024)
                    .build(connector)
                })
                .collect()
        }),
    });
    let app = Router::new().fallback(forward).with_state(proxy);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            // The same serving loop as Keyplane's, with its default header timeout.
            let mut workers = keyplane_server::workers::Workers::start(
                workers,
                std::time::Duration::from_secs(30),
                app,
            )?;
            loop {
                if let Ok((tcp, remote)) = listener.accept().await {
                    workers.hand(tcp, remote);
                }
            }
        })
}
