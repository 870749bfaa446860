//! Usage metering off the request path: each request merges its [`UsageRow`] into an in-memory
//! tally per minute, family, project, key and model (no channel, no task to wake); one task
//! takes the tally every second (and once more at shutdown) and writes it in a batch. Rows that
//! cannot be written go back into the tally and are retried.
//!
//! The tally is double-buffered: the flush swaps the live table for a spare one under the lock
//! (a pointer swap, whatever the number of rows) and sorts, writes and recycles the taken table
//! with the lock released. Done under the lock, that work held every serving thread for 1–3 ms
//! twice a second at 5,000 requests per second (5,000 rows).
//! The meter also keeps each project's month-to-date spend in memory for spend limits.

use crate::{FastHash, FastMap};
use keyplane_core::ports::UsageStore;
use keyplane_core::usage::UsageRow;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request's usage: its ids borrowed from the request, its minute and counters in
/// `counts` (whose own ids stay empty). Merged into the tally without copying the ids unless
/// the tally has no row for them yet.
#[derive(Debug)]
pub struct Use<'a> {
    pub family: &'a str,
    pub project_id: &'a str,
    pub api_key_id: &'a str,
    pub user_id: Option<&'a str>,
    pub service_account_id: Option<&'a str>,
    pub model: &'a str,
    pub counts: UsageRow,
}

/// Rows by what identifies them (minute, family, key, model), held in place in one hash
/// table: a request's use is merged without building an owned key. A key belongs to one
/// project for life, so the key stands for the project in the identity.
///
/// Rows of the current minute outlive the flush that writes them (their counters zeroed, see
/// [`Tally::recycle`]): a key's next request that minute adds to its row instead of
/// allocating a new one, and rows whose counters are all zero are not written.
#[derive(Default)]
struct Tally {
    rows: hashbrown::HashTable<UsageRow>,
    hasher: FastHash,
}

fn same_identity(r: &UsageRow, minute: i64, family: &str, api_key_id: &str, model: &str) -> bool {
    r.minute == minute && r.api_key_id == api_key_id && r.model == model && r.family == family
}

fn identity_hash(
    hasher: &FastHash,
    minute: i64,
    family: &str,
    api_key_id: &str,
    model: &str,
) -> u64 {
    hasher.hash_one((minute, family, api_key_id, model))
}

fn row_hash(hasher: &FastHash, r: &UsageRow) -> u64 {
    identity_hash(hasher, r.minute, &r.family, &r.api_key_id, &r.model)
}

impl Tally {
    fn merge(&mut self, u: Use<'_>) {
        let c = &u.counts;
        let Tally { rows, hasher } = self;
        let h = identity_hash(hasher, c.minute, u.family, u.api_key_id, u.model);
        if let Some(row) = rows.find_mut(h, |r| {
            same_identity(r, c.minute, u.family, u.api_key_id, u.model)
        }) {
            row.absorb(c);
            return;
        }
        rows.insert_unique(
            h,
            UsageRow {
                family: u.family.to_owned(),
                project_id: u.project_id.to_owned(),
                api_key_id: u.api_key_id.to_owned(),
                user_id: u.user_id.map(str::to_owned),
                service_account_id: u.service_account_id.map(str::to_owned),
                model: u.model.to_owned(),
                ..u.counts
            },
            |r| row_hash(hasher, r),
        );
    }

    /// Merges an owned row (rows put back after a failed write, or recycled).
    fn merge_row(&mut self, row: UsageRow) {
        let Tally { rows, hasher } = self;
        let h = row_hash(hasher, &row);
        match rows.find_mut(h, |r| {
            same_identity(r, row.minute, &row.family, &row.api_key_id, &row.model)
        }) {
            Some(r) => r.absorb(&row),
            None => {
                rows.insert_unique(h, row, |r| row_hash(hasher, r));
            }
        }
    }

    /// How many rows are held, with usage to write or not.
    fn len(&self) -> usize {
        self.rows.len()
    }

    /// How many rows have usage to write.
    fn pending(&self) -> usize {
        self.rows.iter().filter(|r| !r.counts_are_zero()).count()
    }

    /// Takes the rows with usage to write; the idle ones stay in place.
    fn take(&mut self) -> Vec<UsageRow> {
        self.rows.extract_if(|r| !r.counts_are_zero()).collect()
    }

    /// Drops idle rows of minutes before `current`: no request adds to them any more.
    fn drop_idle_before(&mut self, current: i64) {
        self.rows
            .retain(|r| r.minute >= current || !r.counts_are_zero());
    }

    /// Puts written rows of minute `current` back with their counters zeroed, for that
    /// minute's next requests to add to (a row that a request made meanwhile keeps its place).
    fn recycle(&mut self, rows: Vec<UsageRow>, current: i64) {
        for mut row in rows.into_iter().filter(|r| r.minute >= current) {
            row.zero_counts();
            self.merge_row(row);
        }
    }

    /// Drops the rows of the oldest minute pending.
    fn drop_oldest_minute(&mut self) {
        let Some(oldest) = self.rows.iter().map(|r| r.minute).min() else {
            return;
        };
        self.rows.retain(|r| r.minute != oldest);
    }
}

/// Month-to-date spend per project, in nano-USD.
#[derive(Default)]
struct Spend {
    month_start: i64,
    loaded: FastMap<String, (i64, std::time::Instant)>,
}

pub struct Meter {
    /// The live tally that requests merge into.
    pending: Mutex<Tally>,
    /// The table the next flush swaps in: the last flush's rows of the current minute, zeroed,
    /// for their keys' next requests to add to. Only the flush touches it.
    spare: Mutex<Tally>,
    store: Arc<dyn UsageStore>,
    spend: Mutex<Spend>,
    /// Background spend refreshes run one at a time: a hundred projects going stale together
    /// must not take every pooled connection from the requests that need one.
    refreshing: tokio::sync::Semaphore,
}

/// How long a loaded month-to-date figure is trusted before it is re-read from the database.
const SPEND_REFRESH: Duration = Duration::from_secs(30);
/// The pause between two folded (minute, project) groups, see [`Meter::fold`].
const FOLD_PAUSE: Duration = Duration::from_millis(5);
/// The time a tick spends folding, pauses included (the next flush is due a second after
/// this one).
const FOLD_BUDGET: Duration = Duration::from_millis(400);
/// How far behind (seconds) folding may fall before it goes without pauses (the budget
/// still holds, so the flush stays on time).
const FOLD_LAG_SECONDS: i64 = 120;
/// Rows kept in memory while the database cannot take them.
const MAX_BUFFERED_ROWS: usize = 1_000_000;

impl Meter {
    pub fn new(store: Arc<dyn UsageStore>) -> Self {
        Self {
            pending: Mutex::new(Tally::default()),
            spare: Mutex::new(Tally::default()),
            store,
            spend: Mutex::new(Spend::default()),
            refreshing: tokio::sync::Semaphore::new(1),
        }
    }

    /// Records one request's usage (merged into the tally) and adds its cost to the project's
    /// spend.
    pub fn record(&self, u: Use<'_>) {
        if u.counts.cost_nano_usd != 0 {
            if let Ok(mut spend) = self.spend.lock() {
                if let Some((nano, _)) = spend.loaded.get_mut(u.project_id) {
                    *nano += u.counts.cost_nano_usd;
                }
            }
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.merge(u);
        }
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

    /// The flush loop: writes the tally every second until `stop` fires, then once more.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.flush().await;
                    self.fold().await;
                }
                _ = stop.changed() => break,
            }
        }
        // Shutdown: requests have finished; write what they left.
        for _ in 0..3 {
            if self.flush().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let left = self.pending.lock().map(|p| p.pending()).unwrap_or(0);
        if left > 0 {
            tracing::error!(rows = left, "usage rows could not be written at shutdown");
        }
    }

    /// Compacts the store's usage of past minutes ([`UsageStore::fold_usage`]) one (minute,
    /// project) group at a time, with a [`FOLD_PAUSE`] between groups and for at most
    /// [`FOLD_BUDGET`] a tick; without pauses when more than [`FOLD_LAG_SECONDS`] behind. A
    /// group costs a few milliseconds; folding a whole minute at once was a burst of tens of
    /// them each second after a minute ended, which delayed requests on the same core (see
    /// docs/benchmarks.md). Past minutes read the same folded or not, only more slowly.
    async fn fold(&self) {
        let now = keyplane_core::time::now();
        let current = now - now.rem_euclid(60);
        let started = std::time::Instant::now();
        loop {
            match self.store.fold_usage(current, 1).await {
                Ok(folded) if folded.groups == 0 => return,
                Ok(folded) => {
                    let behind = folded
                        .oldest_minute
                        .is_some_and(|m| m < current - FOLD_LAG_SECONDS);
                    if started.elapsed() >= FOLD_BUDGET {
                        return;
                    }
                    if behind {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(FOLD_PAUSE).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "usage fold failed; will retry");
                    return;
                }
            }
        }
    }

    /// Writes the tally; on failure its rows go back for the next attempt. True when nothing
    /// is left pending.
    ///
    /// The live table is swapped for the spare under the lock; everything else (finding the
    /// rows to write, the write, zeroing rows for reuse) happens on the taken table with the
    /// lock released, so a request never waits for more than the swap.
    async fn flush(&self) -> bool {
        let now = keyplane_core::time::now();
        let current = now - now.rem_euclid(60);
        let Ok(mut spare) = self.spare.lock().map(|mut s| std::mem::take(&mut *s)) else {
            return true;
        };
        spare.drop_idle_before(current);
        let mut taken = match self.pending.lock() {
            Ok(mut live) => std::mem::replace(&mut *live, spare),
            Err(_) => return true,
        };
        let rows = taken.take();
        taken.drop_idle_before(current);
        let result = if rows.is_empty() {
            Ok(())
        } else {
            self.store.add_usage(&rows).await
        };
        let written = result.is_ok();
        match result {
            Ok(()) => taken.recycle(rows, current),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    rows = rows.len(),
                    "usage flush failed; keeping rows buffered"
                );
                // Back into the live table, merged with what requests added meanwhile.
                if let Ok(mut live) = self.pending.lock() {
                    for row in rows {
                        live.merge_row(row);
                    }
                    let buffered = live.len();
                    if buffered > MAX_BUFFERED_ROWS {
                        tracing::error!(
                            rows = buffered,
                            "usage buffer full; dropping the oldest minute"
                        );
                        live.drop_oldest_minute();
                    }
                }
            }
        }
        if let Ok(mut s) = self.spare.lock() {
            *s = taken;
        }
        written
    }
}

#[cfg(test)]
mod spend_tests {
    use super::*;
    use keyplane_core::ids::ProjectId;
    use keyplane_core::ports::StoreResult;
    use keyplane_core::usage::{Folded, UsageFilter};
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
        async fn fold_usage(&self, _before: i64, _limit: usize) -> StoreResult<Folded> {
            Ok(Folded::default())
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

    /// A request's use with the ids and counters of `row`.
    fn use_of(row: &UsageRow) -> Use<'_> {
        Use {
            family: &row.family,
            project_id: &row.project_id,
            api_key_id: &row.api_key_id,
            user_id: row.user_id.as_deref(),
            service_account_id: row.service_account_id.as_deref(),
            model: &row.model,
            counts: row.clone(),
        }
    }

    fn row(minute: i64, key: &str, model: &str, requests: i64) -> UsageRow {
        UsageRow {
            minute,
            family: "completions".into(),
            project_id: "proj_1".into(),
            api_key_id: key.into(),
            model: model.into(),
            requests,
            input_tokens: 10 * requests,
            ..Default::default()
        }
    }

    #[test]
    fn the_tally_merges_rows_of_one_minute_key_and_model_only() {
        let mut tally = Tally::default();
        tally.merge(use_of(&row(60, "k1", "gpt-4o", 1)));
        tally.merge(use_of(&row(60, "k1", "gpt-4o", 2)));
        tally.merge(use_of(&row(60, "k1", "gpt-4o-mini", 1)));
        tally.merge(use_of(&row(60, "k2", "gpt-4o", 1)));
        tally.merge(use_of(&row(120, "k1", "gpt-4o", 4)));
        assert_eq!(tally.len(), 4);
        let mut rows: Vec<(i64, String, String, i64, i64)> = tally
            .take()
            .into_iter()
            .map(|r| (r.minute, r.api_key_id, r.model, r.requests, r.input_tokens))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                (60, "k1".into(), "gpt-4o".into(), 3, 30),
                (60, "k1".into(), "gpt-4o-mini".into(), 1, 10),
                (60, "k2".into(), "gpt-4o".into(), 1, 10),
                (120, "k1".into(), "gpt-4o".into(), 4, 40),
            ]
        );
        assert_eq!(tally.len(), 0);
        assert!(tally.take().is_empty());
    }

    #[tokio::test]
    async fn rows_of_the_current_minute_outlive_their_flush_without_being_written_twice() {
        let store = Arc::new(FlakyUsage::default());
        let meter = Meter::new(store.clone());
        let now = keyplane_core::time::now();
        let minute = now - now.rem_euclid(60);
        meter.record(use_of(&row(minute, "k1", "gpt-4o", 1)));
        meter.record(use_of(&row(minute, "k2", "gpt-4o", 2)));
        meter.record(use_of(&row(60, "k1", "gpt-4o", 1)));
        assert!(meter.flush().await);
        assert_eq!(store.written.lock().unwrap().len(), 3);
        // This minute's rows stay, zeroed, in the spare table (the old minute's is gone), and
        // are not written again.
        let held = |t: &Mutex<Tally>| {
            let t = t.lock().unwrap();
            (t.len(), t.pending())
        };
        assert_eq!(held(&meter.pending), (0, 0));
        assert_eq!(held(&meter.spare), (2, 0));
        assert!(meter.flush().await);
        assert_eq!(store.written.lock().unwrap().len(), 3);
        // The next flush swapped them in: a later use adds to its kept row (no new row), and
        // only that row is written.
        assert_eq!(held(&meter.pending), (2, 0));
        meter.record(use_of(&row(minute, "k1", "gpt-4o", 5)));
        assert_eq!(held(&meter.pending), (2, 1));
        assert!(meter.flush().await);
        let written = store.written.lock().unwrap().clone();
        assert_eq!(written.len(), 4);
        assert_eq!(
            (
                written[3].api_key_id.as_str(),
                written[3].requests,
                written[3].input_tokens
            ),
            ("k1", 5, 50)
        );
    }

    #[test]
    fn recycled_rows_merge_with_rows_made_during_the_write() {
        let mut tally = Tally::default();
        tally.merge(use_of(&row(120, "k1", "gpt-4o", 1)));
        tally.merge(use_of(&row(60, "k2", "gpt-4o", 1)));
        let taken = tally.take();
        assert_eq!((taken.len(), tally.len()), (2, 0));
        // A request during the write makes a new row for one of the identities.
        tally.merge(use_of(&row(120, "k1", "gpt-4o", 2)));
        tally.recycle(taken, 120);
        assert_eq!(tally.len(), 1, "the older minute's row is not kept");
        let rows = tally.take();
        assert_eq!((rows[0].requests, rows[0].input_tokens), (2, 20));
        // Idle rows stay until their minute is over.
        tally.recycle(rows, 120);
        assert_eq!((tally.len(), tally.pending()), (1, 0));
        tally.drop_idle_before(120);
        assert_eq!(tally.len(), 1);
        tally.drop_idle_before(180);
        assert_eq!(tally.len(), 0);
    }

    /// A usage store that fails its first `fail` writes, holds its writes until `release` while
    /// `hold` is set, and keeps what it was given.
    #[derive(Default)]
    struct FlakyUsage {
        fail: AtomicUsize,
        hold: std::sync::atomic::AtomicBool,
        writing: tokio::sync::Notify,
        release: tokio::sync::Notify,
        written: std::sync::Mutex<Vec<UsageRow>>,
    }

    #[async_trait::async_trait]
    impl UsageStore for FlakyUsage {
        async fn add_usage(&self, rows: &[UsageRow]) -> StoreResult<()> {
            if self.hold.load(Ordering::SeqCst) {
                self.writing.notify_one();
                self.release.notified().await;
            }
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err(keyplane_core::ports::StoreError::Unavailable("down".into()));
            }
            self.written.lock().unwrap().extend_from_slice(rows);
            Ok(())
        }
        async fn fold_usage(&self, _before: i64, _limit: usize) -> StoreResult<Folded> {
            Ok(Folded::default())
        }
        async fn usage(&self, _f: &UsageFilter, _b: i64) -> StoreResult<Vec<UsageRow>> {
            Ok(Vec::new())
        }
        async fn cost_since(&self, _p: Option<&ProjectId>, _since: i64) -> StoreResult<i64> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn uses_recorded_during_a_write_are_written_once_by_the_next_flush() {
        let store = Arc::new(FlakyUsage::default());
        let meter = Arc::new(Meter::new(store.clone()));
        let now = keyplane_core::time::now();
        let minute = now - now.rem_euclid(60);
        meter.record(use_of(&row(minute, "k1", "gpt-4o", 1)));
        assert!(meter.flush().await);
        // The next write stalls; requests go on recording meanwhile, into the live table.
        meter.record(use_of(&row(minute, "k1", "gpt-4o", 2)));
        store.hold.store(true, Ordering::SeqCst);
        let writing = store.writing.notified();
        let flush = tokio::spawn({
            let meter = meter.clone();
            async move { meter.flush().await }
        });
        writing.await;
        meter.record(use_of(&row(minute, "k1", "gpt-4o", 4)));
        meter.record(use_of(&row(minute, "k2", "gpt-4o", 8)));
        store.hold.store(false, Ordering::SeqCst);
        store.release.notify_one();
        assert!(flush.await.unwrap());
        assert!(meter.flush().await);
        assert!(meter.flush().await, "nothing left");
        let mut written: Vec<(String, i64, i64)> = store
            .written
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.api_key_id.clone(), r.requests, r.input_tokens))
            .collect();
        written.sort();
        assert_eq!(
            written,
            vec![
                ("k1".into(), 1, 10),
                ("k1".into(), 2, 20),
                ("k1".into(), 4, 40),
                ("k2".into(), 8, 80),
            ]
        );
    }

    #[tokio::test]
    async fn rows_of_a_failed_flush_are_kept_and_merged_with_newer_ones() {
        let store = Arc::new(FlakyUsage::default());
        store.fail.store(1, Ordering::SeqCst);
        let meter = Meter::new(store.clone());
        meter.record(use_of(&row(60, "k1", "gpt-4o", 1)));
        assert!(!meter.flush().await, "the database refused the rows");
        meter.record(use_of(&row(60, "k1", "gpt-4o", 2)));
        assert!(meter.flush().await);
        let written = store.written.lock().unwrap().clone();
        assert_eq!(written.len(), 1);
        assert_eq!((written[0].requests, written[0].input_tokens), (3, 30));
        assert!(meter.flush().await, "nothing left");
        assert_eq!(store.written.lock().unwrap().len(), 1);
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
