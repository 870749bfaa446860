use crate::{db_err, on_pool, write_events, BeginWrite, Store};
use async_trait::async_trait;
use keyplane_core::ids::ProjectId;
use keyplane_core::model::AuditEvent;
use keyplane_core::pagination::{Page, PageRequest};
use keyplane_core::policy::SpendAlert;
use keyplane_core::ports::{AlertStore, StoreResult};
use keyplane_core::time::UnixSeconds;

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    project_id: Option<String>,
    threshold_amount: i64,
    currency: String,
    period: String,
    recipients: String,
    subject_prefix: Option<String>,
    created_at: i64,
}

impl From<AlertRow> for SpendAlert {
    fn from(r: AlertRow) -> Self {
        SpendAlert {
            id: r.id,
            project_id: r.project_id,
            threshold_amount: r.threshold_amount,
            currency: r.currency,
            interval: r.period,
            recipients: serde_json::from_str(&r.recipients).unwrap_or_default(),
            subject_prefix: r.subject_prefix,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str =
    "id, project_id, threshold_amount, currency, period, recipients, subject_prefix, created_at";

#[async_trait]
impl AlertStore for Store {
    async fn create_alert(&self, a: &SpendAlert, events: &[AuditEvent]) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO spend_alerts (id, project_id, threshold_amount, currency, period, \
                 recipients, subject_prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&a.id)
            .bind(&a.project_id)
            .bind(a.threshold_amount)
            .bind(&a.currency)
            .bind(&a.interval)
            .bind(serde_json::Value::from(a.recipients.clone()).to_string())
            .bind(&a.subject_prefix)
            .bind(a.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn alert(&self, id: &str) -> StoreResult<Option<SpendAlert>> {
        let sql =
            format!("SELECT {COLUMNS} FROM spend_alerts WHERE id = $1 AND deleted_at IS NULL");
        let row: Option<AlertRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(SpendAlert::from))
    }

    async fn list_alerts(
        &self,
        project: Option<&ProjectId>,
        page: &PageRequest,
    ) -> StoreResult<Page<SpendAlert>> {
        let scope = project.map(|p| p.as_str()).unwrap_or("");
        let found = self
            .cursor(
                &page.after,
                "SELECT seq FROM spend_alerts WHERE id = $1 AND COALESCE(project_id, '') = $2",
                &[scope],
            )
            .await?;
        let after = found.unwrap_or(0);
        let sql = format!(
            "SELECT {COLUMNS} FROM spend_alerts WHERE COALESCE(project_id, '') = $1 \
             AND deleted_at IS NULL AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows: Vec<AlertRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(scope)
                .bind(after)
                .bind(i64::from(page.limit.get()) + 1)
                .fetch_all(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows.into_iter().map(SpendAlert::from).collect(),
            page.limit,
        ))
    }

    async fn all_alerts(&self) -> StoreResult<Vec<SpendAlert>> {
        let sql =
            format!("SELECT {COLUMNS} FROM spend_alerts WHERE deleted_at IS NULL ORDER BY seq");
        let rows: Vec<AlertRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await
        })
        .map_err(db_err)?;
        Ok(rows.into_iter().map(SpendAlert::from).collect())
    }

    async fn update_alert(&self, a: &SpendAlert, events: &[AuditEvent]) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "UPDATE spend_alerts SET threshold_amount = $2, currency = $3, period = $4, \
                 recipients = $5, subject_prefix = $6 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(&a.id)
            .bind(a.threshold_amount)
            .bind(&a.currency)
            .bind(&a.interval)
            .bind(serde_json::Value::from(a.recipients.clone()).to_string())
            .bind(&a.subject_prefix)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn delete_alert(
        &self,
        id: &str,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let done = sqlx::query("UPDATE spend_alerts SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected() > 0;
            if done {
                write_events!(tx, events);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(done)
        })
    }

    async fn record_firing(
        &self,
        alert: &str,
        period_start: i64,
        at: UnixSeconds,
    ) -> StoreResult<bool> {
        let inserted = on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO spend_alert_firings (alert_id, period_start, fired_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (alert_id, period_start) DO NOTHING",
            )
            .bind(alert)
            .bind(period_start)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(db_err)?;
        Ok(inserted > 0)
    }
}
