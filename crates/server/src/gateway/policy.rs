//! Per-project policies for the hot path, cached in memory and invalidated synchronously by the
//! Admin API handlers that change them.

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
        let policy = Arc::new(ProjectPolicy {
            overrides: self
                .store
                .rate_limit_overrides(project)
                .await?
                .into_iter()
                .map(|o| (o.model.clone(), o))
                .collect(),
            permissions: self.store.model_permissions(project).await?,
            spend_limit: self.store.spend_limit(project).await?,
        });
        if self.generation.load(Ordering::Acquire) == generation {
            self.cache.insert(project.clone(), policy.clone());
        }
        Ok(policy)
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
