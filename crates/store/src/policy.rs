use crate::{db_err, on_pool, write_events, BeginWrite, Store};
use async_trait::async_trait;
use keyplane_core::ids::ProjectId;
use keyplane_core::model::AuditEvent;
use keyplane_core::policy::{ModelPermissions, PermissionMode, RateLimitOverride, SpendLimit};
use keyplane_core::ports::{PolicyStore, StoreResult};

#[derive(sqlx::FromRow)]
struct RateLimitRow {
    model: String,
    max_requests_per_1_minute: Option<i64>,
    max_tokens_per_1_minute: Option<i64>,
    max_requests_per_1_day: Option<i64>,
    max_images_per_1_minute: Option<i64>,
    max_audio_megabytes_per_1_minute: Option<i64>,
    batch_1_day_max_input_tokens: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PermissionsRow {
    mode: String,
    model_ids: String,
}

#[derive(sqlx::FromRow)]
struct SpendLimitRow {
    threshold_amount: i64,
    currency: String,
    period: String,
}

#[async_trait]
impl PolicyStore for Store {
    async fn rate_limit_overrides(
        &self,
        project: &ProjectId,
    ) -> StoreResult<Vec<RateLimitOverride>> {
        let rows: Vec<RateLimitRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT model, max_requests_per_1_minute, max_tokens_per_1_minute, \
                 max_requests_per_1_day, max_images_per_1_minute, max_audio_megabytes_per_1_minute, \
                 batch_1_day_max_input_tokens FROM project_rate_limits WHERE project_id = $1 ORDER BY model",
            )
            .bind(project.as_str())
            .fetch_all(pool)
            .await
        })
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| RateLimitOverride {
                model: r.model,
                max_requests_per_1_minute: r.max_requests_per_1_minute,
                max_tokens_per_1_minute: r.max_tokens_per_1_minute,
                max_requests_per_1_day: r.max_requests_per_1_day,
                max_images_per_1_minute: r.max_images_per_1_minute,
                max_audio_megabytes_per_1_minute: r.max_audio_megabytes_per_1_minute,
                batch_1_day_max_input_tokens: r.batch_1_day_max_input_tokens,
            })
            .collect())
    }

    async fn set_rate_limit(
        &self,
        project: &ProjectId,
        l: &RateLimitOverride,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let now = keyplane_core::time::now();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO project_rate_limits (project_id, model, max_requests_per_1_minute, \
                 max_tokens_per_1_minute, max_requests_per_1_day, max_images_per_1_minute, \
                 max_audio_megabytes_per_1_minute, batch_1_day_max_input_tokens, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (project_id, model) DO UPDATE SET \
                 max_requests_per_1_minute = excluded.max_requests_per_1_minute, \
                 max_tokens_per_1_minute = excluded.max_tokens_per_1_minute, \
                 max_requests_per_1_day = excluded.max_requests_per_1_day, \
                 max_images_per_1_minute = excluded.max_images_per_1_minute, \
                 max_audio_megabytes_per_1_minute = excluded.max_audio_megabytes_per_1_minute, \
                 batch_1_day_max_input_tokens = excluded.batch_1_day_max_input_tokens, \
                 updated_at = excluded.updated_at",
            )
            .bind(project.as_str())
            .bind(&l.model)
            .bind(l.max_requests_per_1_minute)
            .bind(l.max_tokens_per_1_minute)
            .bind(l.max_requests_per_1_day)
            .bind(l.max_images_per_1_minute)
            .bind(l.max_audio_megabytes_per_1_minute)
            .bind(l.batch_1_day_max_input_tokens)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn model_permissions(
        &self,
        project: &ProjectId,
    ) -> StoreResult<Option<ModelPermissions>> {
        let row: Option<PermissionsRow> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT mode, model_ids FROM project_model_permissions WHERE project_id = $1")
                .bind(project.as_str())
                .fetch_optional(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(row.and_then(|r| {
            Some(ModelPermissions {
                mode: PermissionMode::parse(&r.mode).ok()?,
                model_ids: serde_json::from_str(&r.model_ids).ok()?,
            })
        }))
    }

    async fn set_model_permissions(
        &self,
        project: &ProjectId,
        permissions: Option<&ModelPermissions>,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let now = keyplane_core::time::now();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            match permissions {
                Some(p) => {
                    sqlx::query(
                        "INSERT INTO project_model_permissions (project_id, mode, model_ids, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (project_id) DO UPDATE SET \
                         mode = excluded.mode, model_ids = excluded.model_ids, updated_at = excluded.updated_at",
                    )
                    .bind(project.as_str())
                    .bind(p.mode.as_str())
                    .bind(serde_json::Value::from(p.model_ids.clone()).to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                None => {
                    sqlx::query("DELETE FROM project_model_permissions WHERE project_id = $1")
                        .bind(project.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
            }
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn spend_limit(&self, project: &ProjectId) -> StoreResult<Option<SpendLimit>> {
        let row: Option<SpendLimitRow> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT threshold_amount, currency, period FROM spend_limits WHERE project_id = $1")
                .bind(project.as_str())
                .fetch_optional(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(row.map(|r| SpendLimit {
            threshold_amount: r.threshold_amount,
            currency: r.currency,
            interval: r.period,
        }))
    }

    async fn set_spend_limit(
        &self,
        project: &ProjectId,
        limit: Option<&SpendLimit>,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let now = keyplane_core::time::now();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            match limit {
                Some(l) => {
                    sqlx::query(
                        "INSERT INTO spend_limits (project_id, threshold_amount, currency, period, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id) DO UPDATE SET \
                         threshold_amount = excluded.threshold_amount, currency = excluded.currency, \
                         period = excluded.period, updated_at = excluded.updated_at",
                    )
                    .bind(project.as_str())
                    .bind(l.threshold_amount)
                    .bind(&l.currency)
                    .bind(&l.interval)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                None => {
                    sqlx::query("DELETE FROM spend_limits WHERE project_id = $1")
                        .bind(project.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
            }
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }
}
