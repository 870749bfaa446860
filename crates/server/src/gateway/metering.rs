//! Usage metering off the request path: requests send a [`UsageRow`] down a channel; one task
//! merges rows per minute, project, key and model and writes them in a batch every second (and
//! once more at shutdown). Rows that cannot be written stay buffered and are retried.
//! The meter also keeps each project's month-to-date spend in memory for spend limits.

use keyplane_core::ports::UsageStore;
use keyplane_core::usage::UsageRow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

type RowKey = (i64, String, String, String, String);

/// Month-to-date spend per project, in nano-USD.
#[derive(Default)]
struct Spend {
    month_start: i64,
    loaded: HashMap<String, (i64, std::time::Instant)>,
}

pub struct Meter {
    tx: mpsc::UnboundedSender<UsageRow>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<UsageRow>>>,
    store: Arc<dyn UsageStore>,
    spend: Mutex<Spend>,
    /// Background spend refreshes run one at a time: a hundred projects going stale together
    /// must not take every pooled connection from the requests that need one.
    refreshing: tokio::sync::Semaphore,
}

/// How long a loaded month-to-date figure is trusted before it is re-read from the database.
const SPEND_REFRESH: Duration = Duration::from_secs(30);
/// Rows kept in memory while the database cannot take them.
const MAX_BUFFERED_ROWS: usize = 1_000_000;

impl Meter {
    pub fn new(store: Arc<dyn UsageStore>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            store,
            spend: Mutex::new(Spend::default()),
            refreshing: tokio::sync::Semaphore::new(1),
        }
    }

    /// Records one request's usage (a channel send) and adds its cost to the project's spend.
    pub fn record(&self, row: UsageRow) {
        if row.cost_nano_usd != 0 {
            if let Ok(mut spend) = self.spend.lock() {
                if let Some((nano, _)) = spend.loaded.get_mut(&row.project_id) {
                    *nano += row.cost_nano_usd;
                }
            }
        }
        let _ = self.tx.send(row);
    }

    /// The project's spend since `month_start` (nano-USD), from memory once known. A figure
    /// older than [`SPEND_REFRESH`] is still served while one background read refreshes it
    /// (stale-while-revalidate): only a project's first check waits on the database.
    pub async fn month_spend(self: &Arc<Self>, project: &str, month_start: i64) -> Option<i64> {
        let mut stale = None;
        if let Ok(mut spend) = self.spend.lock() {
            if spend.month_start == month_start {
                if let Some((nano, at)) = spend.loaded.get_mut(project) {
                    if at.elapsed() < SPEND_REFRESH {
                        return Some(*nano);
                    }
                    // Claims the refresh: the next ones keep serving this figure meanwhile.
                    *at = std::time::Instant::now();
                    stale = Some(*nano);
                }
            }
        }
        if let Some(nano) = stale {
            let meter = self.clone();
            let project = project.to_owned();
            // A read-only refresh: nothing for shutdown to wait for.
            #[allow(clippy::disallowed_methods)]
            tokio::spawn(async move {
                let Ok(_permit) = meter.refreshing.acquire().await else {
                    return;
                };
                if let Some(fresh) = meter.stored_spend(&project, month_start).await {
                    meter.remember_spend(&project, month_start, fresh);
                }
            });
            return Some(nano);
        }
        let nano = self.stored_spend(project, month_start).await?;
        self.remember_spend(project, month_start, nano);
        Some(nano)
    }

    /// The project's spend since `month_start` as the database has it now.
    pub async fn stored_spend(&self, project: &str, month_start: i64) -> Option<i64> {
        let pid = keyplane_core::ids::ProjectId::from_trusted(project.to_owned());
        self.store.cost_since(Some(&pid), month_start).await.ok()
    }

    fn remember_spend(&self, project: &str, month_start: i64, nano: i64) {
        if let Ok(mut spend) = self.spend.lock() {
            if month_start < spend.month_start {
                return; // a late refresh of last month
            }
            if spend.month_start != month_start {
                spend.month_start = month_start;
                spend.loaded.clear();
            }
            spend
                .loaded
                .insert(project.to_owned(), (nano, std::time::Instant::now()));
        }
    }

    /// The flush loop: runs until `stop` fires and the channel is drained.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let mut pending: HashMap<RowKey, UsageRow> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                Some(row) = rx.recv() => merge(&mut pending, row),
                _ = tick.tick() => self.flush(&mut pending).await,
                _ = stop.changed() => break,
            }
        }
        // Shutdown: take what is already queued, then write it all.
        while let Ok(row) = rx.try_recv() {
            merge(&mut pending, row);
        }
        for _ in 0..3 {
            self.flush(&mut pending).await;
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !pending.is_empty() {
            tracing::error!(
                rows = pending.len(),
                "usage rows could not be written at shutdown"
            );
        }
    }

    async fn flush(&self, pending: &mut HashMap<RowKey, UsageRow>) {
        if pending.is_empty() {
            return;
        }
        let rows: Vec<UsageRow> = pending.values().cloned().collect();
        match self.store.add_usage(&rows).await {
            Ok(()) => pending.clear(),
            Err(e) => {
                tracing::warn!(error = %e, rows = rows.len(), "usage flush failed; keeping rows buffered");
                if pending.len() > MAX_BUFFERED_ROWS {
                    tracing::error!(
                        rows = pending.len(),
                        "usage buffer full; dropping the oldest minute"
                    );
                    if let Some(oldest) = pending.keys().map(|k| k.0).min() {
                        pending.retain(|k, _| k.0 != oldest);
                    }
                }
            }
        }
    }
}

fn merge(pending: &mut HashMap<RowKey, UsageRow>, row: UsageRow) {
    let key = (
        row.minute,
        row.family.clone(),
        row.project_id.clone(),
        row.api_key_id.clone(),
        row.model.clone(),
    );
    match pending.get_mut(&key) {
        Some(existing) => existing.absorb(&row),
        None => {
            pending.insert(key, row);
        }
    }
}

#[cfg(test)]
mod spend_tests {
    use super::*;
    use keyplane_core::ids::ProjectId;
    use keyplane_core::ports::StoreResult;
    use keyplane_core::usage::UsageFilter;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    /// A usage store whose spend reads count and, once `hold` is set, wait for `release`.
    #[derive(Default)]
    struct SlowSpend {
        figure: AtomicI64,
        reads: AtomicUsize,
        hold: std::sync::atomic::AtomicBool,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl UsageStore for SlowSpend {
        async fn add_usage(&self, _rows: &[UsageRow]) -> StoreResult<()> {
            Ok(())
        }
        async fn usage(&self, _f: &UsageFilter, _b: i64) -> StoreResult<Vec<UsageRow>> {
            Ok(Vec::new())
        }
        async fn cost_since(&self, _p: Option<&ProjectId>, _since: i64) -> StoreResult<i64> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.hold.load(Ordering::SeqCst) {
                self.release.notified().await;
            }
            Ok(self.figure.load(Ordering::SeqCst))
        }
    }

    #[tokio::test]
    async fn a_stale_spend_figure_is_served_while_it_is_refreshed() {
        let store = Arc::new(SlowSpend::default());
        store.figure.store(5, Ordering::SeqCst);
        let meter = Arc::new(Meter::new(store.clone()));
        // The first check of a project waits on the database; the next ones do not.
        assert_eq!(meter.month_spend("p", 100).await, Some(5));
        assert_eq!(meter.month_spend("p", 100).await, Some(5));
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);

        // The figure goes stale while the database is slow: it is still served at once, and
        // only one refresh starts.
        if let Ok(mut spend) = meter.spend.lock() {
            let entry = spend.loaded.get_mut("p").unwrap();
            entry.1 = std::time::Instant::now() - SPEND_REFRESH - Duration::from_secs(1);
        }
        store.hold.store(true, Ordering::SeqCst);
        store.figure.store(9, Ordering::SeqCst);
        for _ in 0..3 {
            let got = tokio::time::timeout(Duration::from_millis(200), meter.month_spend("p", 100))
                .await
                .expect("a known figure never waits on the database");
            assert_eq!(got, Some(5));
        }
        store.release.notify_one();
        for _ in 0..100 {
            if meter.month_spend("p", 100).await == Some(9) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(meter.month_spend("p", 100).await, Some(9));
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    }
}
