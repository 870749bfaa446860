//! `keyplane-mock-upstream [--listen 127.0.0.1:0] [--record N]`: prints
//! `listening on http://ADDR`, then serves until SIGINT/SIGTERM.

use anyhow::Context;
use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use tracing_subscriber::EnvFilter;

/// An OpenAI-compatible fake provider for Keyplane's tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "keyplane-mock-upstream", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// How many requests `GET /__mock/requests` remembers; 0 disables recording.
    #[arg(long, default_value_t = keyplane_mock_upstream::DEFAULT_RECORD)]
    record: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let listener = keyplane_mock_upstream::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    announce(addr)?;
    tracing::info!(listen = %addr, record = args.record, "mock upstream serving");
    keyplane_mock_upstream::serve(listener, args.record, shutdown_signal()).await?;
    Ok(())
}

/// The one line on stdout, which scripts read to learn the port.
#[allow(clippy::print_stdout)]
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
