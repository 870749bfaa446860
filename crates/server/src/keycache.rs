//! Key verification: parse and checksum (no I/O), then an in-memory cache of stored keys,
//! falling back to the store on a miss. Invalidation is synchronous on this instance: a
//! deleted key fails on its very next request (other instances hear of it through
//! [`crate::changes`]).
//!
//! When the database is unreachable, cached keys keep working for [`KeyVerifier`]'s `grace`
//! after the cache was last confirmed against the database (`reconcile`); a key that is not
//! cached cannot be verified and is refused with a 503 that says so, never "invalid key".

use crate::error::ApiError;
use crate::FastHash;
use keyplane_core::keys::{self, KeyHasher, KeyId, KeyKind};
use keyplane_core::model::ApiKey;
use keyplane_core::ports::KeyStore;
use keyplane_core::time::UnixSeconds;
use quick_cache::sync::Cache;
use quick_cache::UnitWeighter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct KeyVerifier {
    hasher: KeyHasher,
    store: Arc<dyn KeyStore>,
    /// quick_cache rather than moka: a hit is one shard's read lock and one lookup, where
    /// moka's also records the read for its eviction order and reads the clock; on the
    /// gateway's path that bookkeeping cost ~4% of the throughput.
    cache: Cache<KeyId, Arc<Cached>, UnitWeighter, FastHash>,
    /// Bumped by every invalidation, so a load that raced with one is not cached.
    generation: AtomicU64,
    /// `last_used_at` updates waiting for the background flush.
    pending_use: Mutex<HashMap<KeyId, UnixSeconds>>,
    /// When every cached entry was last known to match the database.
    confirmed_at: AtomicI64,
    /// How long cached keys are honoured past `confirmed_at` (the database being unreachable).
    grace: UnixSeconds,
    /// When a key could last not be read because the database failed (0: never).
    load_failed_at: AtomicI64,
}

/// A cached key, and when its use was last queued for `last_used_at`: a busy key is written at
/// most once per [`LAST_USED_PRECISION`] (Unkey-style), not once per request. The time lives in
/// the entry, not in a second cache: a cache write per key and minute came in bursts (every
/// key used in one busy minute falls due in the same second), and a burst of cache writes makes
/// moka's writers sleep-wait on a full queue, on the runtime's threads.
struct Cached {
    key: Arc<ApiKey>,
    noted: AtomicI64,
}

impl Cached {
    fn new(key: Arc<ApiKey>, noted: UnixSeconds) -> Arc<Self> {
        Arc::new(Self {
            key,
            noted: AtomicI64::new(noted),
        })
    }
}

/// Keys re-read per query (and between yields) during reconciliation: the store's largest
/// fixed statement size, so each chunk is one statement.
const RECONCILE_CHUNK: usize = 256;

/// Precision of `last_used_at`, in seconds.
pub const LAST_USED_PRECISION: UnixSeconds = 60;

impl KeyVerifier {
    pub fn new(
        hasher: KeyHasher,
        store: Arc<dyn KeyStore>,
        capacity: u64,
        grace: std::time::Duration,
    ) -> Self {
        Self {
            hasher,
            store,
            cache: Cache::with(
                usize::try_from(capacity).unwrap_or(usize::MAX),
                capacity,
                UnitWeighter,
                FastHash::default(),
                Default::default(),
            ),
            generation: AtomicU64::new(0),
            pending_use: Mutex::new(HashMap::new()),
            confirmed_at: AtomicI64::new(keyplane_core::time::now()),
            grace: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
            load_failed_at: AtomicI64::new(0),
        }
    }

    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// Resolves a presented credential to a live, unexpired key whose owner still has access.
    pub async fn verify(&self, raw: &str, now: UnixSeconds) -> Result<Arc<ApiKey>, ApiError> {
        let invalid = || {
            ApiError::InvalidApiKey(format!(
                "Incorrect API key provided: {}. You can find your API keys in the Keyplane dashboard.",
                keys::mask_for_display(raw)
            ))
        };
        let parsed = keys::parse(raw).map_err(|_| invalid())?;
        let id = parsed.id();
        // Past the grace (the database unreachable for that long), a cached entry is not
        // trusted: the key is read again, which succeeds as soon as the database is back.
        let fresh_enough =
            now.saturating_sub(self.confirmed_at.load(Ordering::Relaxed)) <= self.grace;
        let entry = match self.cache.get(&id).filter(|_| fresh_enough) {
            Some(entry) => entry,
            None => {
                // While the database is failing, one request per second probes it; the others
                // are refused at once instead of each waiting for a connection.
                let failed_at = self.load_failed_at.load(Ordering::Relaxed);
                if failed_at != 0
                    && (now.saturating_sub(failed_at) < 1
                        || self
                            .load_failed_at
                            .compare_exchange(failed_at, now, Ordering::AcqRel, Ordering::Relaxed)
                            .is_err())
                {
                    return Err(ApiError::KeyUnverifiable("database failing".into()));
                }
                let generation = self.generation.load(Ordering::Acquire);
                let found = match self.store.key(&id).await {
                    Ok(found) => {
                        self.load_failed_at.store(0, Ordering::Relaxed);
                        found
                    }
                    Err(e) => {
                        self.load_failed_at.store(now, Ordering::Relaxed);
                        return Err(ApiError::KeyUnverifiable(e.to_string()));
                    }
                };
                let entry = Cached::new(Arc::new(found.ok_or_else(invalid)?), 0);
                self.insert_if_current(&id, &entry, generation);
                entry
            }
        };
        let key = entry.key.clone();
        if key.kind != parsed.kind || !key.hash.matches(&self.hasher.hash(raw)) {
            return Err(invalid());
        }
        if key.is_expired(now) {
            return Err(ApiError::InvalidApiKey(format!(
                "The API key {} expired at {}. Create a new key.",
                key.redacted_value,
                key.expires_at.unwrap_or_default()
            )));
        }
        if key.project_archived {
            return Err(ApiError::InvalidApiKey(format!(
                "The API key {} belongs to an archived project.",
                key.redacted_value
            )));
        }
        if !key.owner_active {
            return Err(ApiError::InvalidApiKey(format!(
                "The API key {} is inactive: its owner no longer has access to the project.",
                key.redacted_value
            )));
        }
        self.note_use(&entry, now);
        Ok(key)
    }

    fn note_use(&self, entry: &Cached, now: UnixSeconds) {
        let noted = entry.noted.load(Ordering::Relaxed);
        // Of the requests that find the key due, one queues it.
        if now - noted < LAST_USED_PRECISION
            || entry
                .noted
                .compare_exchange(noted, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Ok(mut pending) = self.pending_use.lock() {
            pending.insert(entry.key.id.clone(), now);
        }
    }

    /// Takes the `last_used_at` updates gathered since the last call.
    pub fn take_pending_use(&self) -> Vec<(KeyId, UnixSeconds)> {
        match self.pending_use.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Writes gathered `last_used_at` values to the store.
    pub async fn flush_use(&self) {
        let batch = self.take_pending_use();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_key_use(&batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "could not record key use; will retry");
            if let Ok(mut pending) = self.pending_use.lock() {
                for (id, at) in batch {
                    let slot = pending.entry(id).or_insert(at);
                    *slot = (*slot).max(at);
                }
            }
        }
    }

    /// Re-reads every cached key in batches: changed ones are replaced, revoked ones dropped.
    /// On success the whole cache counts as confirmed at `now`; on failure nothing changes.
    pub async fn reconcile(
        &self,
        now: UnixSeconds,
    ) -> Result<usize, keyplane_core::ports::StoreError> {
        let ids: Vec<KeyId> = self.cache.iter().map(|(id, _)| id).collect();
        let mut changed = 0;
        // In chunks, yielding between them: a pass over a large cache never holds a runtime
        // worker for long.
        for chunk in ids.chunks(RECONCILE_CHUNK) {
            let generation = self.generation.load(Ordering::Acquire);
            let mut fresh: HashMap<KeyId, ApiKey> = self
                .store
                .keys_by_ids(chunk)
                .await?
                .into_iter()
                .map(|k| (k.id.clone(), k))
                .collect();
            let mut replaced = Vec::new();
            let mut gone = Vec::new();
            for id in chunk {
                let Some(cached) = self.cache.get(id) else {
                    continue;
                };
                match fresh.remove(id) {
                    None => gone.push(id.clone()),
                    Some(mut stored) => {
                        // `last_used_at` moves all the time and decides nothing.
                        stored.last_used_at = cached.key.last_used_at;
                        if stored != *cached.key {
                            replaced.push((stored, cached.noted.load(Ordering::Relaxed)));
                        }
                    }
                }
            }
            changed += replaced.len() + gone.len();
            // A newer invalidation than our read wins: drop instead of replace.
            for (key, noted) in replaced {
                let id = key.id.clone();
                if !self.insert_if_current(&id, &Cached::new(Arc::new(key), noted), generation) {
                    gone.push(id);
                }
            }
            for id in &gone {
                self.invalidate(id);
            }
            tokio::task::yield_now().await;
        }
        if changed > 0 {
            tracing::info!(changed, "reconciliation corrected cached keys");
        }
        self.confirm(now);
        Ok(changed)
    }

    /// Records that every cached entry was known at `now` to match the database: read again,
    /// or nothing written since they were ([`crate::changes`]).
    pub fn confirm(&self, now: UnixSeconds) {
        self.confirmed_at.fetch_max(now, Ordering::Relaxed);
        self.load_failed_at.store(0, Ordering::Relaxed);
    }

    /// Loads up to `limit` of the most recently used keys into the cache, so a restart under
    /// load does not send every request's first use of a key to the database. Keys already
    /// cached are kept; once an invalidation happens, nothing more is inserted (keys then load
    /// on first use, as they always can). Returns how many keys were added.
    pub async fn warm(&self, limit: u32) -> Result<usize, keyplane_core::ports::StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let keys = self.store.recently_used_keys(limit).await?;
        let mut added = 0;
        for (i, key) in keys.into_iter().enumerate() {
            // In chunks, yielding between them, like reconciliation.
            if i > 0 && i % RECONCILE_CHUNK == 0 {
                tokio::task::yield_now().await;
            }
            if self.cache.contains_key(&key.id) {
                continue;
            }
            let id = key.id.clone();
            if !self.insert_if_current(&id, &Cached::new(Arc::new(key), 0), generation) {
                break;
            }
            added += 1;
        }
        Ok(added)
    }

    /// Caches `entry`, read from the store when the generation was `generation`, unless an
    /// invalidation came since: its key may be the one revoked. The generation is checked again
    /// after the insert, so an invalidation landing between check and insert cannot leave the
    /// stale entry behind: either its removal comes after the insert, or this second check sees
    /// it and takes the entry out again. Returns whether the entry stayed.
    fn insert_if_current(&self, id: &KeyId, entry: &Arc<Cached>, generation: u64) -> bool {
        if self.generation.load(Ordering::Acquire) != generation {
            return false;
        }
        self.cache.insert(id.clone(), entry.clone());
        if self.generation.load(Ordering::Acquire) != generation {
            self.cache
                .remove_if(id, |cached| Arc::ptr_eq(cached, entry));
            return false;
        }
        true
    }

    pub fn invalidate(&self, id: &KeyId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.remove(id);
    }

    /// Drops every cached key matching `pred` (a project archived, an owner removed).
    pub fn invalidate_where(&self, pred: impl Fn(&ApiKey) -> bool + Send + Sync + 'static) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.retain(|_, entry| !pred(&entry.key));
    }

    /// Checks a key of the expected kind and explains which kind a route needs.
    pub fn require_kind(
        key: &ApiKey,
        allowed: &[KeyKind],
        route_needs: &str,
    ) -> Result<(), ApiError> {
        if allowed.contains(&key.kind) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(format!(
                "This route needs {route_needs}; you provided {}.",
                key.kind.description()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyplane_core::ids::{ProjectId, UserId};
    use keyplane_core::model::{AuditEvent, KeyOwner, KeyOwnerId, KeyUpdate, NewApiKey};
    use keyplane_core::pagination::{Page, PageRequest};
    use keyplane_core::ports::{KeyListFilter, StoreResult};
    use keyplane_core::scopes::Permissions;

    /// A store holding one key; counts reads.
    struct OneKey {
        key: ApiKey,
        reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl KeyStore for OneKey {
        async fn insert_key(&self, _: &NewApiKey, _: &[AuditEvent]) -> StoreResult<()> {
            Ok(())
        }
        async fn key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok((*id == self.key.id).then(|| self.key.clone()))
        }
        async fn recently_used_keys(&self, limit: u32) -> StoreResult<Vec<ApiKey>> {
            Ok(vec![self.key.clone()]
                .into_iter()
                .take(limit as usize)
                .collect())
        }
        async fn list_keys(&self, _: &KeyListFilter, _: &PageRequest) -> StoreResult<Page<ApiKey>> {
            Ok(Page {
                items: Vec::new(),
                has_more: false,
            })
        }
        async fn update_key(&self, _: &KeyId, _: &KeyUpdate, _: &[AuditEvent]) -> StoreResult<()> {
            Ok(())
        }
        async fn delete_key(
            &self,
            _: &KeyId,
            _: UnixSeconds,
            _: &[AuditEvent],
        ) -> StoreResult<bool> {
            Ok(false)
        }
        async fn record_key_use(&self, _: &[(KeyId, UnixSeconds)]) -> StoreResult<()> {
            Ok(())
        }
        async fn keys_by_ids(&self, ids: &[KeyId]) -> StoreResult<Vec<ApiKey>> {
            Ok(ids
                .iter()
                .filter(|id| **id == self.key.id)
                .map(|_| self.key.clone())
                .collect())
        }
    }

    /// A verifier over a store holding one project key; the key's plaintext.
    fn one_key() -> (KeyVerifier, Arc<OneKey>, String, KeyId) {
        let hasher = KeyHasher::new(None);
        let (plain, material) = hasher.generate(KeyKind::Project);
        let store = Arc::new(OneKey {
            key: ApiKey {
                id: material.id.clone(),
                kind: KeyKind::Project,
                project_id: Some(ProjectId::generate()),
                name: "k".into(),
                redacted_value: material.redacted_value,
                hash: material.hash,
                permissions: Permissions::All,
                created_at: 0,
                expires_at: None,
                last_used_at: None,
                owner: KeyOwner {
                    id: KeyOwnerId::User(UserId::generate()),
                    name: "u".into(),
                    email: None,
                    created_at: 0,
                    role: "owner".into(),
                },
                owner_active: true,
                project_archived: false,
            },
            reads: Default::default(),
        });
        let verifier = KeyVerifier::new(
            hasher,
            store.clone(),
            100,
            std::time::Duration::from_secs(600),
        );
        (verifier, store, plain.expose().to_owned(), material.id)
    }

    #[tokio::test]
    async fn a_warmed_cache_verifies_without_reading_the_store() {
        let (verifier, store, plain, _) = one_key();
        assert_eq!(verifier.warm(10).await.unwrap(), 1);
        verifier.verify(&plain, 1_000_000).await.unwrap();
        assert_eq!(store.reads.load(Ordering::SeqCst), 0);
        // Warming again adds nothing; an empty limit loads nothing.
        assert_eq!(verifier.warm(10).await.unwrap(), 0);
        let (cold, cold_store, plain, _) = one_key();
        assert_eq!(cold.warm(0).await.unwrap(), 0);
        cold.verify(&plain, 1_000_000).await.unwrap();
        assert_eq!(cold_store.reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_busy_key_is_queued_for_last_used_at_once_per_minute() {
        let (verifier, store, plain, id) = one_key();
        let t = 1_000_000;
        let uses = |at| {
            let verifier = &verifier;
            let plain = plain.clone();
            async move {
                for _ in 0..5 {
                    verifier.verify(&plain, at).await.unwrap();
                }
                verifier.take_pending_use()
            }
        };
        assert_eq!(uses(t).await, vec![(id.clone(), t)]);
        assert_eq!(uses(t + LAST_USED_PRECISION - 1).await, vec![]);
        assert_eq!(
            uses(t + LAST_USED_PRECISION).await,
            vec![(id.clone(), t + LAST_USED_PRECISION)]
        );
        // Reconciliation that finds the key unchanged keeps its throttle.
        verifier.reconcile(t + LAST_USED_PRECISION).await.unwrap();
        assert_eq!(uses(t + LAST_USED_PRECISION + 1).await, vec![]);
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            1,
            "one read, then the cache"
        );
    }
}
