//! Serving threads: one single-threaded runtime per thread, each serving the connections handed
//! to it, as nginx's worker processes do.
//!
//! The main runtime accepts connections and hands them out in turn. A connection's requests,
//! its upstream connections (each worker has its own upstream client, see
//! [`current`]) and the tasks they spawn then stay on one thread: no work stealing and no
//! cross-thread wakeup per request, which on a multi-threaded runtime cost about what a second
//! thread brings. Background work (metering, reconciliation, the change feed, alerts) stays on
//! the main runtime.
//!
//! A worker's runtime lives until [`Workers::exit`], after the final flushes: database
//! connections it opened are driven by its reactor, and the main runtime still uses them then.
//!
//! Every other thread (the main runtime's, its blocking pool's, SQLite's) runs a few nice
//! levels below the serving threads ([`keep_background_behind`]): when the cores are busy, a
//! metering flush waits for the requests instead of the requests for the flush. The main
//! thread, which accepts connections, keeps its priority.

use crate::silence::SilenceLimited;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The prefix of the serving threads' names, as the kernel keeps them (15 bytes at most).
const WORKER_THREAD: &str = "keyplane-worker";

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The serving thread this code runs on (`0..n`), or `None` off them (the main runtime, tests).
pub fn current() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// What the serving threads do with a request, given the address it came from. (It takes
/// `self`, a cheap clone, so the future borrows nothing.)
pub trait Serve: Clone + Send + 'static {
    fn serve(
        self,
        req: Request,
        remote: SocketAddr,
    ) -> impl Future<Output = Response> + Send + 'static;
}

/// A router gets the client's address as the [`ConnectInfo`] extension, as with
/// `axum::serve` and `into_make_service_with_connect_info`.
impl Serve for Router {
    fn serve(
        mut self,
        mut req: Request,
        remote: SocketAddr,
    ) -> impl Future<Output = Response> + Send + 'static {
        req.extensions_mut().insert(ConnectInfo(remote));
        // A router is always ready.
        let called = tower::Service::call(&mut self, req);
        async move { called.await.unwrap_or_else(|e| match e {}) }
    }
}

/// The running serving threads.
pub struct Workers {
    senders: Vec<mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>,
    next: usize,
    stop: watch::Sender<bool>,
    served: Vec<oneshot::Receiver<()>>,
    exit: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` serving threads for `app`. An HTTP/1 connection that takes longer than
    /// `client_timeout` to send a request's headers, or stays idle that long between
    /// requests, is closed; a request body that stays silent that long ends in
    /// [`crate::silence::ClientTimedOut`].
    pub fn start(n: usize, client_timeout: Duration, app: impl Serve) -> anyhow::Result<Self> {
        let (stop, _) = watch::channel(false);
        let (exit, _) = watch::channel(false);
        let mut workers = Self {
            senders: Vec::with_capacity(n),
            next: 0,
            stop,
            served: Vec::with_capacity(n),
            exit,
            threads: Vec::with_capacity(n),
        };
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            let (served_tx, served_rx) = oneshot::channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let app = app.clone();
            let stop = workers.stop.subscribe();
            let mut exit = workers.exit.subscribe();
            let thread = std::thread::Builder::new()
                .name(format!("{WORKER_THREAD}-{i}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(Some(i)));
                    runtime.block_on(async move {
                        serve_handed(rx, app, client_timeout, stop).await;
                        let _ = served_tx.send(());
                        let _ = exit.wait_for(|e| *e).await;
                    });
                })?;
            workers.senders.push(tx);
            workers.served.push(served_rx);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Hands an accepted connection to the next worker in turn.
    pub fn hand(&mut self, stream: tokio::net::TcpStream, remote: SocketAddr) {
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand over an accepted connection");
                return;
            }
        };
        let i = self.next;
        self.next = (i + 1) % self.senders.len();
        let _ = self.senders[i].send((stream, remote));
    }

    /// Stops accepting and waits until every connection has finished its requests.
    pub async fn drain(&mut self) {
        self.senders.clear();
        self.stop.send_replace(true);
        for served in self.served.drain(..) {
            let _ = served.await;
        }
    }

    /// Ends the workers' runtimes, once nothing on the main runtime needs their reactors.
    pub fn exit(self) {
        self.exit.send_replace(true);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Serves the connections handed to this thread until `stop`, then waits for their requests
/// in flight (each connection closes once its current request is answered). hyper's
/// connection loop calls `app` directly: no router in front of it and no extension per request
/// (`axum::serve` with `ConnectInfo` and a router in front cost 1–4k instructions per gateway
/// request, up to 4% of a serving thread's work).
async fn serve_handed(
    mut handed: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    app: impl Serve,
    client_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper counts the header timeout from when a connection is ready for its next request,
    // so it also closes kept-alive connections left idle that long (as nginx's
    // `keepalive_timeout` does). Without a timer hyper sets no timeout at all.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(client_timeout);
    loop {
        let next = tokio::select! {
            next = handed.recv() => next,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some((stream, remote)) = next else {
            // No more connections: wait for the stop signal.
            let _ = stop.wait_for(|s| *s).await;
            break;
        };
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take over an accepted connection");
                continue;
            }
        };
        // Without TCP_NODELAY, small SSE chunks wait for delayed ACKs (~40 ms each).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let req = req.map(|body| Body::new(SilenceLimited::new(body, client_timeout)));
                let served = app.clone().serve(req, remote);
                async move { Ok::<_, Infallible>(served.await) }
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        #[allow(clippy::disallowed_methods)] // the graceful shutdown below waits for it
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

/// Puts every thread of this process except the serving threads and the main thread `by` nice
/// levels below the main thread (at most 19), and returns how many it lowered. Threads are
/// never raised, so a thread already lower stays so. Run again from time to time: threads
/// created since (a new database connection's, the blocking pool's) inherit their creator's
/// priority, which may be a serving thread's. Linux only; elsewhere it does nothing.
pub fn keep_background_behind(by: i32) -> usize {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process, Pid};
        // The main thread's id is the process's; its priority is the base (the calling thread
        // may be one already lowered).
        let Some(main) = i32::try_from(std::process::id())
            .ok()
            .and_then(Pid::from_raw)
        else {
            return 0;
        };
        let Ok(base) = getpriority_process(Some(main)) else {
            return 0;
        };
        let target = (base + by).min(19);
        let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        let mut lowered = 0;
        for thread in threads.flatten() {
            let Some(pid) = thread
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
                .and_then(Pid::from_raw)
            else {
                continue;
            };
            if pid == main {
                continue;
            }
            let name = std::fs::read_to_string(thread.path().join("comm")).unwrap_or_default();
            if name.starts_with(WORKER_THREAD) {
                continue;
            }
            // On Linux the nice value is per thread: a thread id names one thread here.
            if getpriority_process(Some(pid)).is_ok_and(|nice| nice < target)
                && setpriority_process(Some(pid), target).is_ok()
            {
                lowered += 1;
            }
        }
        lowered
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = by;
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::process::{getpriority_process, Pid};

    fn nice_of(tid: i32) -> i32 {
        getpriority_process(Pid::from_raw(tid)).unwrap_or(i32::MIN)
    }

    #[test]
    fn background_threads_go_below_the_serving_threads_and_stay_there() {
        let base = nice_of(std::process::id() as i32);
        let spawn = |name: &str| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
            let handle = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let _ = tx.send(rustix::thread::gettid().as_raw_nonzero().get());
                    let _ = stop_rx.recv();
                })
                .unwrap();
            (rx.recv().unwrap(), stop_tx, handle)
        };
        let serving = spawn(&format!("{WORKER_THREAD}-0"));
        let background = spawn("sqlx-sqlite-worker-0");
        assert!(keep_background_behind(10) >= 1);
        assert_eq!(nice_of(serving.0), base);
        assert_eq!(nice_of(background.0), (base + 10).min(19));
        // Never raised: asking for less changes nothing.
        keep_background_behind(3);
        assert_eq!(nice_of(background.0), (base + 10).min(19));
        for (_, stop, handle) in [serving, background] {
            drop(stop);
            handle.join().unwrap();
        }
    }
}
