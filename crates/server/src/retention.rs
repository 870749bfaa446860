//! Audit-log retention: with `audit_retention_days` set, events older than that are pruned
//! once at startup and then hourly. Nothing else ever deletes or changes an audit event.

use keyplane_core::ports::AuditStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Prunes until `stop` changes. Runs as a tracked task that shutdown awaits.
pub async fn run(audit: Arc<dyn AuditStore>, days: u32, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => prune(audit.as_ref(), days).await,
            _ = stop.changed() => break,
        }
    }
}

/// Deletes the events older than `days` days.
pub async fn prune(audit: &dyn AuditStore, days: u32) {
    let cutoff = keyplane_core::time::now() - i64::from(days) * 86_400;
    match audit.prune_audit_events(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, days, "pruned audit events past retention"),
        Err(e) => tracing::warn!(error = %e, "could not prune audit events; will retry"),
    }
}
