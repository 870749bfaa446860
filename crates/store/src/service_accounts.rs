use crate::keys::insert_key;
use crate::rows::ServiceAccountRow;
use crate::{db_err, on_pool, write_events, BeginWrite, Store};
use async_trait::async_trait;
use keyplane_core::ids::{ProjectId, ServiceAccountId};
use keyplane_core::keys::KeyId;
use keyplane_core::model::{AuditEvent, NewApiKey, ServiceAccount};
use keyplane_core::pagination::{Page, PageRequest};
use keyplane_core::ports::{ServiceAccountStore, StoreResult};
use keyplane_core::time::UnixSeconds;

const COLUMNS: &str = "id, project_id, name, role, created_at";

#[async_trait]
impl ServiceAccountStore for Store {
    async fn create_service_account(
        &self,
        account: &ServiceAccount,
        key: Option<&NewApiKey>,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO service_accounts (id, project_id, name, role, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(account.id.as_str())
            .bind(account.project_id.as_str())
            .bind(&account.name)
            .bind(&account.role)
            .bind(account.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some(key) = key {
                insert_key!(tx, key);
            }
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn service_account(
        &self,
        project: &ProjectId,
        id: &ServiceAccountId,
    ) -> StoreResult<Option<ServiceAccount>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM service_accounts WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL"
        );
        let row: Option<ServiceAccountRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(id.as_str()).bind(project.as_str()).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(ServiceAccount::from))
    }

    async fn list_service_accounts(
        &self,
        project: &ProjectId,
        page: &PageRequest,
    ) -> StoreResult<Page<ServiceAccount>> {
        let found = self
            .cursor(
                &page.after,
                "SELECT seq FROM service_accounts WHERE id = $1 AND project_id = $2",
                &[project.as_str()],
            )
            .await?;
        let after = found.unwrap_or(0);
        let sql = format!(
            "SELECT {COLUMNS} FROM service_accounts WHERE project_id = $1 AND deleted_at IS NULL \
             AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows: Vec<ServiceAccountRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(project.as_str())
                .bind(after)
                .bind(i64::from(page.limit.get()) + 1)
                .fetch_all(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows.into_iter().map(ServiceAccount::from).collect(),
            page.limit,
        ))
    }

    async fn update_service_account(
        &self,
        account: &ServiceAccount,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "UPDATE service_accounts SET name = $2, role = $3 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(account.id.as_str())
            .bind(&account.name)
            .bind(&account.role)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn delete_service_account(
        &self,
        project: &ProjectId,
        id: &ServiceAccountId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<Option<Vec<KeyId>>> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let changed = sqlx::query(
                "UPDATE service_accounts SET deleted_at = $3 \
                 WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
            )
            .bind(id.as_str())
            .bind(project.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if changed == 0 {
                tx.rollback().await.map_err(db_err)?;
                return Ok(None);
            }
            let keys: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM api_keys WHERE owner_service_account_id = $1 AND deleted_at IS NULL",
            )
            .bind(id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "UPDATE api_keys SET deleted_at = $2 WHERE owner_service_account_id = $1 AND deleted_at IS NULL",
            )
            .bind(id.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)?;
            Ok(Some(keys.into_iter().map(KeyId::from_trusted).collect()))
        })
    }
}
