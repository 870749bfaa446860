use crate::rows::AuditRow;
use crate::{db_err, on_pool, Store};
use async_trait::async_trait;
use keyplane_core::model::AuditEvent;
use keyplane_core::pagination::{Page, PageRequest};
use keyplane_core::ports::{AuditStore, StoreError, StoreResult};

#[async_trait]
impl AuditStore for Store {
    async fn list_audit_events(&self, page: &PageRequest) -> StoreResult<Page<AuditEvent>> {
        let before: i64 = match &page.after {
            None => i64::MAX,
            Some(after) => on_pool!(&self.db, pool => {
                sqlx::query_scalar("SELECT seq FROM audit_events WHERE id = $1")
                    .bind(after).fetch_optional(pool).await
            })
            .map_err(db_err)?
            .ok_or_else(|| StoreError::UnknownCursor(after.clone()))?,
        };
        let rows: Vec<AuditRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, event_type, effective_at, project_id, actor, details FROM audit_events \
                 WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(before)
            .bind(i64::from(page.limit.get()) + 1)
            .fetch_all(pool)
            .await
        })
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows.into_iter().map(AuditEvent::from).collect(),
            page.limit,
        ))
    }
}
