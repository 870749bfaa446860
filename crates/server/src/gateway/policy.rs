//! Per-project policies for the hot path, cached in memory, invalidated synchronously by the
//! Admin API handlers that change them (and on other instances through [`crate::changes`]).

use keyplane_core::catalog::{self, ModelSpec};
use keyplane_core::ids::ProjectId;
use keyplane_core::policy::{EffectiveLimits, ModelPermissions, RateLimitOverride, SpendLimit};
use keyplane_core::ports::{PolicyStore, StoreError};
use moka::sync::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct ProjectPolicy {
    pub overrides: HashMap<String, RateLimitOverride>,
    pub permissions: Option<ModelPermissions>,
    pub spend_limit: Option<SpendLimit>,
}

/// The limiter's name for every model that is neither in the catalog nor overridden.
pub const OTHER_MODELS: &str = "(other models)";

pub struct Policies {
    store: Arc<dyn PolicyStore>,
    models: Arc<Vec<ModelSpec>>,
    cache: Cache<ProjectId, Arc<ProjectPolicy>>,
    generation: AtomicU64,
}

impl Policies {
    pub fn new(store: Arc<dyn PolicyStore>, models: Arc<Vec<ModelSpec>>) -> Self {
        Self {
            store,
            models,
            cache: Cache::new(100_000),
            generation: AtomicU64::new(0),
        }
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    pub async fn get(&self, project: &ProjectId) -> Result<Arc<ProjectPolicy>, StoreError> {
        if let Some(p) = self.cache.get(project) {
            return Ok(p);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let policy = self.load(project).await?;
        if self.generation.load(Ordering::Acquire) == generation {
            self.cache.insert(project.clone(), policy.clone());
        }
        Ok(policy)
    }

    /// Re-reads the policy of every cached project (a change another instance made whose
    /// message was missed). Stops at the first failure, leaving the rest as they were.
    pub async fn reconcile(&self) -> Result<(), StoreError> {
        let projects: Vec<ProjectId> = self.cache.iter().map(|(p, _)| (*p).clone()).collect();
        for project in projects {
            let generation = self.generation.load(Ordering::Acquire);
            let policy = self.load(&project).await?;
            if self.generation.load(Ordering::Acquire) == generation
                && self.cache.contains_key(&project)
            {
                self.cache.insert(project, policy);
            }
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
        }))
    }

    pub fn invalidate(&self, project: &ProjectId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(project);
    }

    /// The catalog entry governing `model` (a dated snapshot shares its family's entry) and the
    /// project's limits for it, from one catalog lookup.
    pub fn model(&self, policy: &ProjectPolicy, model: &str) -> (ModelSpec, EffectiveLimits) {
        let known = catalog::lookup(&self.models, model);
        let spec = known.cloned().unwrap_or_else(|| catalog::fallback(model));
        let overridden = policy.overrides.get(&spec.name);
        let mut limits = EffectiveLimits::new(&spec, overridden);
        // Models outside the catalog without an override of their own share one budget, so
        // made-up model names cannot grow the limiter without bound.
        if known.is_none() && overridden.is_none() {
            limits.model = OTHER_MODELS.to_owned();
        }
        (spec, limits)
    }
}
