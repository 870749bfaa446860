//! Key verification: parse and checksum (no I/O), then an in-memory cache of stored keys,
//! falling back to the store on a miss. Invalidation is synchronous on this instance: a
//! deleted key fails on its very next request.

use crate::error::ApiError;
use keyplane_core::keys::{self, KeyHasher, KeyId, KeyKind};
use keyplane_core::model::ApiKey;
use keyplane_core::ports::KeyStore;
use keyplane_core::time::UnixSeconds;
use moka::sync::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct KeyVerifier {
    hasher: KeyHasher,
    store: Arc<dyn KeyStore>,
    cache: Cache<KeyId, Arc<ApiKey>>,
    /// Bumped by every invalidation, so a load that raced with one is not cached.
    generation: AtomicU64,
    /// `last_used_at` updates waiting for the background flush.
    pending_use: Mutex<HashMap<KeyId, UnixSeconds>>,
    /// When each key's `last_used_at` was last queued: a busy key is written at most once per
    /// [`LAST_USED_PRECISION`] (Unkey-style), not once per request.
    last_noted: Cache<KeyId, UnixSeconds>,
}

/// Precision of `last_used_at`, in seconds.
pub const LAST_USED_PRECISION: UnixSeconds = 60;

impl KeyVerifier {
    pub fn new(hasher: KeyHasher, store: Arc<dyn KeyStore>, capacity: u64) -> Self {
        Self {
            hasher,
            store,
            cache: Cache::builder()
                .max_capacity(capacity)
                .support_invalidation_closures()
                .build(),
            generation: AtomicU64::new(0),
            pending_use: Mutex::new(HashMap::new()),
            last_noted: Cache::new(capacity),
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
        let key = match self.cache.get(&id) {
            Some(key) => key,
            None => {
                let generation = self.generation.load(Ordering::Acquire);
                let key = Arc::new(self.store.key(&id).await?.ok_or_else(invalid)?);
                if self.generation.load(Ordering::Acquire) == generation {
                    self.cache.insert(id.clone(), key.clone());
                }
                key
            }
        };
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
        self.note_use(&key.id, now);
        Ok(key)
    }

    fn note_use(&self, id: &KeyId, now: UnixSeconds) {
        if self
            .last_noted
            .get(id)
            .is_some_and(|at| now - at < LAST_USED_PRECISION)
        {
            return;
        }
        self.last_noted.insert(id.clone(), now);
        if let Ok(mut pending) = self.pending_use.lock() {
            pending.insert(id.clone(), now);
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

    pub fn invalidate(&self, id: &KeyId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(id);
    }

    /// Drops every cached key matching `pred` (a project archived, an owner removed).
    pub fn invalidate_where(&self, pred: impl Fn(&ApiKey) -> bool + Send + Sync + 'static) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if self
            .cache
            .invalidate_entries_if(move |_, key| pred(key))
            .is_err()
        {
            self.cache.invalidate_all();
        }
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
