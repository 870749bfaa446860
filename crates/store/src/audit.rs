use crate::rows::AuditRow;
use crate::{db_err, on_pool, Store};
use async_trait::async_trait;
use keyplane_core::model::AuditEvent;
use keyplane_core::pagination::{Page, PageRequest};
use keyplane_core::ports::{AuditStore, StoreError, StoreResult};

#[async_trait]
impl AuditStore for Store {
    async fn list_audit_events(&self, page: &PageRequest) -> StoreResult<Page<AuditEvent>> {
        // Newest first by (effective_at, seq): keyset on the pair keeps pages stable.
        let (before_t, before_seq): (i64, i64) = match &page.after {
            None => (i64::MAX, i64::MAX),
            Some(after) => on_pool!(&self.db, pool => {
                sqlx::query_as("SELECT effective_at, seq FROM audit_events WHERE id = $1")
                    .bind(after).fetch_optional(pool).await
            })
            .map_err(db_err)?
            .ok_or_else(|| StoreError::UnknownCursor(after.clone()))?,
        };
        let rows: Vec<AuditRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, event_type, effective_at, project_id, actor, details FROM audit_events \
                 WHERE effective_at < $1 OR (effective_at = $1 AND seq < $2) \
                 ORDER BY effective_at DESC, seq DESC LIMIT $3",
            )
            .bind(before_t)
            .bind(before_seq)
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
