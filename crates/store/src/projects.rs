use crate::rows::{ProjectRow, PROJECT_COLUMNS};
use crate::{db_err, on_pool, write_events, BeginWrite, Store};
use async_trait::async_trait;
use keyplane_core::ids::{ProjectId, UserId};
use keyplane_core::model::{AuditEvent, Project};
use keyplane_core::pagination::{Page, PageRequest};
use keyplane_core::ports::{ProjectStore, StoreResult};
use keyplane_core::time::UnixSeconds;
use std::sync::LazyLock;

static PROJECT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"));
static LIST_PROJECTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {PROJECT_COLUMNS} FROM projects WHERE seq > $1 AND ($2 = 1 OR archived_at IS NULL) \
         ORDER BY seq LIMIT $3"
    )
});

#[async_trait]
impl ProjectStore for Store {
    async fn create_project(
        &self,
        project: &Project,
        creator: &UserId,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO projects (id, name, created_at, external_key_id, residency) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(project.id.as_str())
            .bind(&project.name)
            .bind(project.created_at)
            .bind(&project.external_key_id)
            .bind(&project.residency)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO project_users (project_id, user_id, role, added_at) VALUES ($1, $2, 'owner', $3)",
            )
            .bind(project.id.as_str())
            .bind(creator.as_str())
            .bind(project.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        let row: Option<ProjectRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(PROJECT_BY_ID.as_str()).bind(id.as_str()).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(Project::from))
    }

    async fn list_projects(
        &self,
        include_archived: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<Project>> {
        let found = self
            .cursor(&page.after, "SELECT seq FROM projects WHERE id = $1", &[])
            .await?;
        let after = found.unwrap_or(0);
        let rows: Vec<ProjectRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(LIST_PROJECTS.as_str())
                .bind(after)
                .bind(i32::from(include_archived))
                .bind(i64::from(page.limit.get()) + 1)
                .fetch_all(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows.into_iter().map(Project::from).collect(),
            page.limit,
        ))
    }

    async fn update_project(&self, project: &Project, events: &[AuditEvent]) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "UPDATE projects SET name = $2, external_key_id = $3 WHERE id = $1 AND archived_at IS NULL",
            )
            .bind(project.id.as_str())
            .bind(&project.name)
            .bind(&project.external_key_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn archive_project(
        &self,
        id: &ProjectId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let changed = sqlx::query("UPDATE projects SET archived_at = $2 WHERE id = $1 AND archived_at IS NULL")
                .bind(id.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if changed > 0 {
                write_events!(tx, events);
            }
            tx.commit().await.map_err(db_err)
        })
    }

    async fn project_role(
        &self,
        project: &ProjectId,
        user: &UserId,
    ) -> StoreResult<Option<String>> {
        on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT role FROM project_users WHERE project_id = $1 AND user_id = $2")
                .bind(project.as_str())
                .bind(user.as_str())
                .fetch_optional(pool)
                .await
        })
        .map_err(db_err)
    }
}
