//! Opening the database, first-run initialization, and the server's life cycle.

use crate::config::Config;
use crate::gateway::alerts::AlertEvaluator;
use crate::gateway::metering::Meter;
use crate::gateway::policy::Policies;
use crate::gateway::Gateway;
use crate::keycache::KeyVerifier;
use crate::state::AppState;
use crate::workers::Workers;
use anyhow::Context;
use keyplane_core::ids::{InviteId, OrgId, UserId};
use keyplane_core::keys::{KeyHasher, KeyKind, PlaintextKey};
use keyplane_core::model::{AuditEvent, KeyOwnerId, NewApiKey, OrgRole, Organization, User};
use keyplane_core::people::{Invite, InviteToken, OwnerCredential, Password};
use keyplane_core::ports::{OrgStore, StoreError};
use keyplane_core::scopes::Permissions;
use keyplane_store::{Db, PoolSettings, Store};
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for them
/// (`MADV_HUGEPAGE`), and each first touch of a fresh 2 MB page is then zeroed in full on the
/// thread that faults: when a burst of connections grows the heap, the serving threads spent
/// 37% of their time in the kernel's `clear_page` and requests queued for seconds (measured at
/// 5,000 requests per second, docs/benchmarks.md). Keyplane's heap is small; 4 kB pages cost
/// it nothing measurable. Call before the runtime starts; the setting is process-wide.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        // Not fatal: some sandboxes refuse prctl; Keyplane runs as before.
        eprintln!("keyplane: could not turn off transparent huge pages: {e}");
    }
}

/// The most keys loaded into the cache at startup (the most recently used ones).
const KEY_WARM_LIMIT: u64 = 100_000;

/// How often `last_used_at` updates are written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let db = Db::connect(
        &config.database_url,
        &PoolSettings {
            max_connections: config.db_max_connections,
            acquire_timeout: config.db_acquire_timeout,
        },
    )
    .await
    .with_context(|| {
        format!(
            "cannot open database {}",
            keyplane_store::redact_url(&config.database_url)
        )
    })?;
    db.migrate().await?;
    let store = Store::new(db);
    store.backfill_audit_index().await?;
    Ok(store)
}

pub fn hasher(config: &Config) -> KeyHasher {
    KeyHasher::new(
        config
            .key_pepper
            .as_ref()
            .map(|p| SecretSlice::from(p.expose_secret().as_bytes().to_vec())),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("this database is already initialized (organization '{0}'); nothing was changed. Use an existing admin key, or point --database-url at an empty database.")]
    AlreadyInitialized(String),
    #[error("invalid owner email '{0}'")]
    InvalidEmail(String),
    #[error("invalid owner password (KEYPLANE_OWNER_PASSWORD): {0}")]
    Password(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the organization, its first owner and an admin key owned by that owner.
/// Returns the admin key's plaintext, which exists nowhere else.
pub async fn initialize(
    store: &Store,
    config: &Config,
    hasher: &KeyHasher,
) -> Result<PlaintextKey, InitError> {
    if let Some(org) = store.organization().await? {
        return Err(InitError::AlreadyInitialized(org.name));
    }
    let email = config.owner_email.trim().to_owned();
    if email.is_empty()
        || !email.contains('@')
        || email.len() > 320
        || email.chars().any(char::is_whitespace)
    {
        return Err(InitError::InvalidEmail(email));
    }
    let now = keyplane_core::time::now();
    let org = Organization {
        id: OrgId::generate().to_string(),
        name: config.org_name.clone(),
        created_at: now,
    };
    let owner = User {
        id: UserId::generate(),
        name: email.split('@').next().unwrap_or("owner").to_owned(),
        email,
        role: OrgRole::Owner,
        added_at: now,
    };
    let (plain, material) = hasher.generate(KeyKind::Admin);
    let key = NewApiKey {
        id: material.id,
        kind: KeyKind::Admin,
        project_id: None,
        name: "Initial admin key".to_owned(),
        redacted_value: material.redacted_value,
        hash: material.hash,
        permissions: Permissions::All,
        owner: KeyOwnerId::User(owner.id.clone()),
        created_at: now,
        expires_at: None,
    };
    // OpenAI's actor types are `session` and `api_key`; the first owner acting through
    // `keyplane init` is recorded as that user's session (`via` says how).
    let actor = json!({
        "type": "session",
        "session": {"user": {"id": owner.id.as_str(), "email": owner.email}, "ip_address": null},
        "via": "keyplane init",
    });
    let events = [
        AuditEvent::new(
            "user.added",
            None,
            actor.clone(),
            json!({"id": owner.id.as_str(), "data": {"role": "owner"}}),
        ),
        AuditEvent::new(
            "api_key.created",
            None,
            actor,
            json!({"id": key.id.as_str(), "data": {"scopes": null}}),
        ),
    ];
    // The owner signs in with KEYPLANE_OWNER_PASSWORD, or sets a password through a one-time
    // setup link (an invite for the owner, accepted at POST /v1/invites/accept).
    let (credential, setup_token) = match &config.owner_password {
        Some(raw) => {
            let password = Password::parse(raw.expose_secret())
                .map_err(|e| InitError::Password(e.to_string()))?;
            let hash = crate::password::hash_now(password.expose())
                .map_err(|e| InitError::Password(e.to_string()))?;
            (OwnerCredential::PasswordHash(hash), None)
        }
        None => {
            let token = InviteToken::generate();
            let invite = Invite {
                id: InviteId::generate(),
                email: owner.email.clone(),
                role: OrgRole::Owner,
                projects: Vec::new(),
                created_at: now,
                expires_at: now + Invite::LIFETIME,
                accepted_at: None,
            };
            let token_hash = token.hash();
            (
                OwnerCredential::SetupInvite { invite, token_hash },
                Some(token),
            )
        }
    };
    match store
        .initialize_with(&org, &owner, &credential, &key, &events)
        .await
    {
        Ok(()) => {
            if let Some(token) = setup_token {
                // stderr, like every other message of `init`: stdout carries the admin key only.
                eprintln!(
                    "Set the owner's password within 7 days with this one-time link: {}/setup/{}\n\
                     (or POST {{\"token\": \"{}\", \"password\": \"…\"}} to /v1/invites/accept)",
                    config.public_url.trim_end_matches('/'),
                    token.expose(),
                    token.expose()
                );
            }
            Ok(plain)
        }
        Err(StoreError::Conflict(_)) => Err(InitError::AlreadyInitialized(
            store
                .organization()
                .await?
                .map(|o| o.name)
                .unwrap_or_default(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn state(config: Arc<Config>, store: Store) -> anyhow::Result<AppState> {
    let store = Arc::new(store);
    let verifier = Arc::new(KeyVerifier::new(
        hasher(&config),
        store.clone(),
        config.key_cache_capacity,
        config.outage_grace,
    ));
    let policies = Arc::new(Policies::new(
        store.clone(),
        Arc::new(config.models.clone()),
    ));
    let changes = Arc::new(crate::changes::Changes::new(
        store.clone(),
        verifier.clone(),
        policies.clone(),
    ));
    let meter = Arc::new(Meter::new(store.clone()));
    let gateway = Arc::new(Gateway::new(&config, policies.clone(), meter)?);
    Ok(Arc::new(crate::state::Services {
        config,
        orgs: store.clone(),
        projects: store.clone(),
        keys: store.clone(),
        service_accounts: store.clone(),
        audit: store.clone(),
        people: store.clone(),
        policies: store.clone(),
        usage: store.clone(),
        alerts: store.clone(),
        sessions: store,
        login_throttle: Default::default(),
        verifier,
        gateway,
        changes,
    }))
}

/// How often expired dashboard sessions are deleted.
const SESSION_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// How often spend alerts are evaluated.
const ALERT_INTERVAL: Duration = Duration::from_secs(10);

/// Connections the kernel queues for Keyplane before they are accepted (it caps the figure at
/// `net.core.somaxconn`, 4096 by default). `TcpListener::bind` asks for 128: when clients opened
/// hundreds of connections at once (every pooled one busy during a hiccup), the queue
/// overflowed, the kernel dropped their handshakes, and their requests waited out 1–3 s of SYN
/// retransmission (`nstat` TcpExtListenOverflows, docs/benchmarks.md).
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with [`LISTEN_BACKLOG`] and `SO_REUSEADDR`, as `TcpListener::bind` does on
/// Unix (a restart does not wait for the old connections' TIME_WAIT).
fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// `keyplane serve`: open (and if empty, initialize) the database, then serve until
/// SIGINT/SIGTERM, flushing pending `last_used_at` updates on the way out.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    let listener =
        bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    // A default public URL names the address really bound (`--listen 127.0.0.1:0` included).
    if config.public_url == format!("http://{}", config.listen) {
        config.public_url = format!("http://{local}");
    }
    let config = Arc::new(config);
    let store = open_store(&config).await?;
    if store.organization().await?.is_none() {
        match initialize(&store, &config, &hasher(&config)).await {
            Ok(key) => {
                // The one place a key is displayed outside an API response: the first run's
                // admin key, on the operator's terminal.
                eprintln!(
                    "Keyplane initialized a new organization. Admin key (shown once, store it now):\n{}",
                    key.expose()
                );
            }
            // Another instance initialized the same database first.
            Err(InitError::AlreadyInitialized(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let state = state(config.clone(), store.clone())?;
    // Before anything is cached (the warm-up, the first requests).
    state.changes.start_empty().await;

    // Warm the key cache in the background: requests that come first load their key as usual.
    let warm_limit = u32::try_from(config.key_cache_capacity.min(KEY_WARM_LIMIT)).unwrap_or(0);
    let verifier = state.verifier.clone();
    // A read-only task: nothing for shutdown to wait for.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match verifier.warm(warm_limit).await {
            Ok(keys) => tracing::info!(
                keys,
                ms = started.elapsed().as_millis() as u64,
                "key cache warmed"
            ),
            Err(e) => tracing::warn!(error = %e, "could not warm the key cache"),
        }
    });

    let verifier = state.verifier.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // The flush task is awaited below before the process exits.
    #[allow(clippy::disallowed_methods)]
    let flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => verifier.flush_use().await,
                _ = stop_rx.changed() => break,
            }
        }
        verifier.flush_use().await;
    });

    #[allow(clippy::disallowed_methods)] // awaited below before the process exits
    let changes_task = tokio::spawn(
        state
            .changes
            .clone()
            .run(config.reconcile_interval, stop_tx.subscribe()),
    );
    #[allow(clippy::disallowed_methods)]
    let meter_task = tokio::spawn(state.gateway.meter.clone().run(stop_tx.subscribe()));
    let evaluator = AlertEvaluator {
        alerts: state.alerts.clone(),
        usage: state.usage.clone(),
        webhook_url: config.alert_webhook_url.clone(),
        webhook_secret: config.alert_webhook_secret.clone(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    };
    let mut alert_stop = stop_tx.subscribe();
    #[allow(clippy::disallowed_methods)]
    let alert_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(ALERT_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => evaluator.evaluate().await,
                _ = alert_stop.changed() => break,
            }
        }
    });

    // Cluster-wide counters (Redis): connect before serving; a Redis that is down only degrades
    // limits to this instance's share until the task's probe reconnects.
    let cluster_task = match state.gateway.cluster.clone() {
        Some(cluster) => {
            cluster.connect().await;
            #[allow(clippy::disallowed_methods)] // awaited below before the process exits
            Some(tokio::spawn(cluster.run(stop_tx.subscribe())))
        }
        None => None,
    };

    // Sessions past their idle or absolute expiry are deleted hourly (and at each sign-in).
    let sessions = state.sessions.clone();
    let mut prune_stop = stop_tx.subscribe();
    #[allow(clippy::disallowed_methods)] // awaited below before the process exits
    let prune_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(SESSION_PRUNE_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = keyplane_core::time::now();
                    let idle = now - keyplane_core::sessions::IDLE_SECONDS;
                    if let Err(e) = sessions.prune_sessions(idle, now).await {
                        tracing::warn!(error = %e, "could not prune expired sessions");
                    }
                }
                _ = prune_stop.changed() => break,
            }
        }
    });

    let retention_task = config.audit_retention_days.map(|days| {
        #[allow(clippy::disallowed_methods)] // awaited below before the process exits
        tokio::spawn(crate::retention::run(
            state.audit.clone(),
            days,
            stop_tx.subscribe(),
        ))
    });

    tracing::info!(listen = %local, database = store.db().backend(), "keyplane serving");
    let app = crate::router::build(state);
    let mut workers = Workers::start(config.workers, config.client_timeout, app)?;
    // Background work behind the requests; checked again every 10 s for threads created since.
    let priority_task = (config.background_nice > 0).then(|| {
        let by = config.background_nice;
        let mut stop = stop_tx.subscribe();
        #[allow(clippy::disallowed_methods)] // awaited below before the process exits
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let lowered = crate::workers::keep_background_behind(by);
                        if lowered > 0 {
                            tracing::debug!(lowered, by, "background threads put behind the serving threads");
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    });
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => workers.hand(tcp, remote),
                Err(e) => accept_failed(e).await,
            },
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    workers.drain().await;
    tracing::info!("shutting down: flushing pending writes");
    let _ = stop_tx.send(true);
    let _ = flusher.await;
    let _ = meter_task.await;
    let _ = changes_task.await;
    let _ = prune_task.await;
    let _ = alert_task.await;
    if let Some(task) = retention_task {
        let _ = task.await;
    }
    if let Some(task) = priority_task {
        let _ = task.await;
    }
    if let Some(task) = cluster_task {
        let _ = task.await;
    }
    store.db().close().await;
    // The workers' runtimes drive the database connections they opened: they end last.
    let _ = tokio::task::spawn_blocking(move || workers.exit()).await;
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is skipped; anything else
/// (out of file descriptors) waits a second before accepting again, as axum's own loop does.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_listener_queues_a_burst_of_connections_before_any_is_accepted() {
        // The kernel caps the queue at `net.core.somaxconn`; below 200 there is nothing to tell
        // apart from the standard library's 128.
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        let burst = somaxconn.min(600) - 8;
        if burst < 200 {
            return;
        }
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: every completed handshake waits in the queue. With a queue of 128,
        // the 130th connect gets no SYN-ACK and waits out a retransmission (1 s).
        let connected = tokio::task::spawn_blocking(move || {
            (0..burst)
                .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
                .take_while(Result::is_ok)
                .count()
        })
        .await
        .unwrap();
        assert_eq!(connected, burst);
        drop(listener);
    }
}
