//! Per-project policies for the hot path, cached in memory, invalidated synchronously by the
//! Admin API handlers that change them (and on other instances through [`crate::changes`]).

use crate::FastMap;
use keyplane_core::catalog::{self, ModelSpec};
use keyplane_core::ids::ProjectId;
use keyplane_core::policy::{EffectiveLimits, ModelPermissions, RateLimitOverride, SpendLimit};
use keyplane_core::ports::{PolicyStore, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, Default)]
pub struct ProjectPolicy {
    pub overrides: FastMap<String, RateLimitOverride>,
    pub permissions: Option<ModelPermissions>,
    pub spend_limit: Option<SpendLimit>,
    /// What [`Policies::model`] built from `overrides`, by catalog name, so a request to an
    /// overridden model allocates nothing (at most one entry per override).
    overridden: RwLock<FastMap<String, Arc<Governed>>>,
}

/// The limiter's name for every model that is neither in the catalog nor overridden.
pub const OTHER_MODELS: &str = "(other models)";

/// Policies are cached per project in a plain map: one entry per project of the organization,
/// read on every request, so a read is a shared lock and one lookup (a bounded cache recording
/// every read for its eviction order cost several times that). Past [`MAX_CACHED`] projects the
/// map starts over.
pub struct Policies {
    store: Arc<dyn PolicyStore>,
    models: Arc<Vec<ModelSpec>>,
    cache: RwLock<FastMap<ProjectId, Arc<ProjectPolicy>>>,
    generation: AtomicU64,
    /// Reads in flight, one per project, with the generation they began at: the requests that
    /// miss a project together (all of them, after a restart under load) share one read.
    loading: Mutex<FastMap<ProjectId, (u64, Arc<Loading>)>>,
    /// What each model name requested so far resolves to without an override: the catalog
    /// is searched once per name, not once per request.
    resolved: RwLock<FastMap<String, Arc<Governed>>>,
}

/// One read of a project's policy, its outcome shared by everyone who waited for it.
type Loading = tokio::sync::OnceCell<Result<Arc<ProjectPolicy>, StoreError>>;

/// A model's catalog entry (prices) and the limits that govern it in one project.
#[derive(Debug, Clone)]
pub struct Governed {
    pub spec: ModelSpec,
    pub limits: EffectiveLimits,
}

/// The most model names whose resolution is remembered, and the longest name remembered
/// (names are the client's to choose).
const MAX_RESOLVED: usize = 4096;
const MAX_RESOLVED_NAME: usize = 256;

/// The most projects whose policies are kept in memory.
const MAX_CACHED: usize = 100_000;

impl Policies {
    pub fn new(store: Arc<dyn PolicyStore>, models: Arc<Vec<ModelSpec>>) -> Self {
        Self {
            store,
            models,
            cache: RwLock::new(FastMap::default()),
            generation: AtomicU64::new(0),
            loading: Mutex::new(FastMap::default()),
            resolved: RwLock::new(FastMap::default()),
        }
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    pub async fn get(&self, project: &ProjectId) -> Result<Arc<ProjectPolicy>, StoreError> {
        if let Some(p) = self.cached(project) {
            return Ok(p);
        }
        let generation = self.generation.load(Ordering::Acquire);
        // Join the read in flight for this project, unless it began before an invalidation
        // (it may predate the change): then start a new one.
        let loading = {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            match loading.get(project) {
                Some((began, cell)) if *began == generation => cell.clone(),
                _ => {
                    let cell = Arc::new(Loading::new());
                    loading.insert(project.clone(), (generation, cell.clone()));
                    cell
                }
            }
        };
        // A waiter whose request is dropped mid-read leaves the read to the next one.
        let outcome = loading
            .get_or_init(|| async {
                let outcome = self.load(project).await;
                if let Ok(policy) = &outcome {
                    self.store_if_current(project, policy, generation, false);
                }
                outcome
            })
            .await
            .clone();
        // Done: the next miss (say, after a failure) reads again.
        let mut inflight = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if inflight
            .get(project)
            .is_some_and(|(_, cell)| Arc::ptr_eq(cell, &loading))
        {
            inflight.remove(project);
        }
        outcome
    }

    fn cached(&self, project: &ProjectId) -> Option<Arc<ProjectPolicy>> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.get(project).cloned()
    }

    /// Caches a policy read at `generation`, unless an invalidation came since (the read may
    /// predate the change); `only_replace` leaves a project that is no longer cached out.
    fn store_if_current(
        &self,
        project: &ProjectId,
        policy: &Arc<ProjectPolicy>,
        generation: u64,
        only_replace: bool,
    ) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock that invalidations take too.
        if self.generation.load(Ordering::Acquire) != generation
            || (only_replace && !cache.contains_key(project))
        {
            return;
        }
        if cache.len() >= MAX_CACHED && !cache.contains_key(project) {
            cache.clear();
        }
        cache.insert(project.clone(), policy.clone());
    }

    /// Re-reads the policy of every cached project (a change another instance made whose
    /// message was missed). Stops at the first failure, leaving the rest as they were.
    pub async fn reconcile(&self) -> Result<(), StoreError> {
        let projects: Vec<ProjectId> = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            cache.keys().cloned().collect()
        };
        for project in projects {
            let generation = self.generation.load(Ordering::Acquire);
            let policy = self.load(&project).await?;
            self.store_if_current(&project, &policy, generation, true);
        }
        Ok(())
    }

    async fn load(&self, project: &ProjectId) -> Result<Arc<ProjectPolicy>, StoreError> {
        Ok(Arc::new(ProjectPolicy {
            overrides: self
                .store
                .rate_limit_overrides(project)
                .await?
                .into_iter()
                .map(|o| (o.model.clone(), o))
                .collect(),
            permissions: self.store.model_permissions(project).await?,
            spend_limit: self.store.spend_limit(project).await?,
            overridden: RwLock::default(),
        }))
    }

    pub fn invalidate(&self, project: &ProjectId) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        cache.remove(project);
    }

    /// The catalog entry governing `model` (a dated snapshot shares its family's entry) and the
    /// project's limits for it, from one catalog lookup.
    pub fn model(&self, policy: &ProjectPolicy, model: &str) -> Arc<Governed> {
        let default = self.resolve(model);
        let Some(o) = policy.overrides.get(&default.spec.name) else {
            return default;
        };
        let built = policy.overridden.read().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = built.get(&default.spec.name) {
            return g.clone();
        }
        drop(built);
        let g = Arc::new(Governed {
            spec: default.spec.clone(),
            limits: EffectiveLimits::new(&default.spec, Some(o)),
        });
        let mut built = policy.overridden.write().unwrap_or_else(|e| e.into_inner());
        built.insert(default.spec.name.clone(), g.clone());
        g
    }

    /// `model` resolved against the catalog, with its default limits.
    fn resolve(&self, model: &str) -> Arc<Governed> {
        let resolved = self.resolved.read().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = resolved.get(model) {
            return g.clone();
        }
        drop(resolved);
        let known = catalog::lookup(&self.models, model);
        let spec = known.cloned().unwrap_or_else(|| catalog::fallback(model));
        let mut limits = EffectiveLimits::new(&spec, None);
        // Models outside the catalog without an override of their own share one budget, so
        // made-up model names cannot grow the limiter without bound.
        if known.is_none() {
            limits.model = OTHER_MODELS.to_owned();
        }
        let g = Arc::new(Governed { spec, limits });
        let mut resolved = self.resolved.write().unwrap_or_else(|e| e.into_inner());
        if resolved.len() < MAX_RESOLVED && model.len() <= MAX_RESOLVED_NAME {
            resolved.insert(model.to_owned(), g.clone());
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyplane_core::model::AuditEvent;
    use keyplane_core::ports::StoreResult;
    use std::sync::atomic::AtomicUsize;

    /// A store whose spend limit is whatever `limit` holds when read; counts reads, and can hold
    /// a read until `release` is notified (to race it with an invalidation).
    #[derive(Default)]
    struct Limits {
        limit: Mutex<i64>,
        reads: AtomicUsize,
        hold: std::sync::atomic::AtomicBool,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl PolicyStore for Limits {
        async fn rate_limit_overrides(&self, _: &ProjectId) -> StoreResult<Vec<RateLimitOverride>> {
            Ok(Vec::new())
        }
        async fn set_rate_limit(
            &self,
            _: &ProjectId,
            _: &RateLimitOverride,
            _: &[AuditEvent],
        ) -> StoreResult<()> {
            Ok(())
        }
        async fn model_permissions(&self, _: &ProjectId) -> StoreResult<Option<ModelPermissions>> {
            Ok(None)
        }
        async fn set_model_permissions(
            &self,
            _: &ProjectId,
            _: Option<&ModelPermissions>,
            _: &[AuditEvent],
        ) -> StoreResult<()> {
            Ok(())
        }
        async fn spend_limit(&self, _: &ProjectId) -> StoreResult<Option<SpendLimit>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let threshold_amount = *self.limit.lock().unwrap();
            if self.hold.swap(false, Ordering::SeqCst) {
                self.release.notified().await;
            }
            Ok(Some(SpendLimit {
                threshold_amount,
                currency: "usd".into(),
                interval: "month".into(),
            }))
        }
        async fn set_spend_limit(
            &self,
            _: &ProjectId,
            _: Option<&SpendLimit>,
            _: &[AuditEvent],
        ) -> StoreResult<()> {
            Ok(())
        }
    }

    fn limit_of(p: &ProjectPolicy) -> i64 {
        p.spend_limit.as_ref().map_or(-1, |l| l.threshold_amount)
    }

    #[tokio::test]
    async fn a_policy_is_read_once_until_invalidated_and_a_racing_read_is_not_kept() {
        let store = Arc::new(Limits::default());
        *store.limit.lock().unwrap() = 100;
        let policies = Arc::new(Policies::new(store.clone(), Arc::new(Vec::new())));
        let project = ProjectId::generate();

        assert_eq!(limit_of(&policies.get(&project).await.unwrap()), 100);
        assert_eq!(limit_of(&policies.get(&project).await.unwrap()), 100);
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            1,
            "the second get is served from memory"
        );

        *store.limit.lock().unwrap() = 200;
        policies.invalidate(&project);
        assert_eq!(limit_of(&policies.get(&project).await.unwrap()), 200);
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);

        // A read that began before a change (it saw 200) finishes after the invalidation: it
        // answers its own request, but is not cached.
        policies.invalidate(&project);
        store.hold.store(true, Ordering::SeqCst);
        let racing = tokio::spawn({
            let policies = policies.clone();
            let project = project.clone();
            async move { limit_of(&policies.get(&project).await.unwrap()) }
        });
        while store.reads.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        *store.limit.lock().unwrap() = 300;
        policies.invalidate(&project);
        store.release.notify_one();
        assert_eq!(racing.await.unwrap(), 200);
        assert_eq!(limit_of(&policies.get(&project).await.unwrap()), 300);
        assert_eq!(store.reads.load(Ordering::SeqCst), 4);

        // Reconciliation re-reads what is cached.
        *store.limit.lock().unwrap() = 400;
        policies.reconcile().await.unwrap();
        assert_eq!(limit_of(&policies.get(&project).await.unwrap()), 400);
        assert_eq!(store.reads.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn requests_that_miss_a_project_together_share_one_read() {
        let store = Arc::new(Limits::default());
        *store.limit.lock().unwrap() = 100;
        let policies = Arc::new(Policies::new(store.clone(), Arc::new(Vec::new())));
        let project = ProjectId::generate();
        store.hold.store(true, Ordering::SeqCst);
        let waiting: Vec<_> = (0..50)
            .map(|_| {
                let policies = policies.clone();
                let project = project.clone();
                tokio::spawn(async move { limit_of(&policies.get(&project).await.unwrap()) })
            })
            .collect();
        while store.reads.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        store.release.notify_one();
        for w in waiting {
            assert_eq!(w.await.unwrap(), 100);
        }
        assert_eq!(store.reads.load(Ordering::SeqCst), 1, "one read for all 50");
        assert!(policies.loading.lock().unwrap().is_empty());

        // A read begun before an invalidation is not joined by a request after it.
        *store.limit.lock().unwrap() = 200;
        policies.invalidate(&project);
        store.hold.store(true, Ordering::SeqCst);
        let stale = tokio::spawn({
            let policies = policies.clone();
            let project = project.clone();
            async move { limit_of(&policies.get(&project).await.unwrap()) }
        });
        while store.reads.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        *store.limit.lock().unwrap() = 300;
        policies.invalidate(&project);
        assert_eq!(limit_of(&policies.get(&project).await.unwrap()), 300);
        store.release.notify_one();
        assert_eq!(stale.await.unwrap(), 200);
        assert_eq!(limit_of(&policies.get(&project).await.unwrap()), 300);
        assert_eq!(store.reads.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_model_resolves_once_and_overrides_stay_with_their_project() {
        let store = Arc::new(Limits::default());
        let policies = Policies::new(store, Arc::new(catalog::built_in()));
        let plain = ProjectPolicy::default();
        let gpt4o = policies.model(&plain, "gpt-4o-2024-08-06");
        assert_eq!(
            (gpt4o.spec.name.as_str(), gpt4o.limits.model.as_str()),
            ("gpt-4o", "gpt-4o")
        );
        let stranger = policies.model(&plain, "made-up-model");
        assert_eq!(stranger.limits.model, OTHER_MODELS);
        // Remembered per name: the same entry comes back.
        assert!(Arc::ptr_eq(
            &stranger,
            &policies.model(&plain, "made-up-model")
        ));

        let tight = ProjectPolicy {
            overrides: FastMap::from_iter([(
                "gpt-4o".to_owned(),
                RateLimitOverride {
                    model: "gpt-4o".into(),
                    max_requests_per_1_minute: Some(3),
                    max_tokens_per_1_minute: None,
                    max_requests_per_1_day: None,
                    max_images_per_1_minute: None,
                    max_audio_megabytes_per_1_minute: None,
                    batch_1_day_max_input_tokens: None,
                },
            )]),
            ..ProjectPolicy::default()
        };
        let overridden = policies.model(&tight, "gpt-4o-2024-08-06");
        assert_eq!(overridden.limits.requests_per_minute, 3);
        // Built once per project and catalog model: a dated name and its family share it.
        assert!(Arc::ptr_eq(&overridden, &policies.model(&tight, "gpt-4o")));
        assert_eq!(
            policies.model(&plain, "gpt-4o").limits.requests_per_minute,
            gpt4o.limits.requests_per_minute
        );
        assert_ne!(gpt4o.limits.requests_per_minute, 3);
        // Long names are resolved each time, not remembered.
        let long = "m".repeat(MAX_RESOLVED_NAME + 1);
        assert!(!Arc::ptr_eq(
            &policies.model(&plain, &long),
            &policies.model(&plain, &long)
        ));
    }
}
