//! Users, invites (and the first owner's setup link), and project memberships.

use crate::rows::UserRow;
use crate::{db_err, on_pool, write_events, BeginWrite, Store};
use async_trait::async_trait;
use keyplane_core::ids::{InviteId, ProjectId, UserId};
use keyplane_core::model::{AuditEvent, OrgRole, User};
use keyplane_core::pagination::{Page, PageRequest};
use keyplane_core::people::{
    Acceptance, Invite, InviteByToken, InviteProject, InvitePurpose, ProjectRole, ProjectUser,
};
use keyplane_core::ports::{PeopleStore, StoreError, StoreResult};
use keyplane_core::time::UnixSeconds;
use serde_json::json;

/// The invite's projects as stored (a JSON array of `{id, role}`).
pub(crate) fn projects_json(projects: &[InviteProject]) -> String {
    serde_json::Value::from(
        projects
            .iter()
            .map(|p| json!({"id": p.id.as_str(), "role": p.role.as_str()}))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// Inserts an [`Invite`] on `$tx`; `$user` is `Some(user id)` for a setup link.
macro_rules! insert_invite {
    ($tx:expr, $invite:expr, $hash:expr, $user:expr) => {{
        let invite: &keyplane_core::people::Invite = $invite;
        let user: Option<&str> = $user;
        sqlx::query(
            "INSERT INTO invites (id, email, role, projects, token_hash, purpose, user_id, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(invite.id.as_str())
        .bind(&invite.email)
        .bind(invite.role.as_str())
        .bind(crate::people::projects_json(&invite.projects))
        .bind($hash.as_str())
        .bind(if user.is_some() {
            "set_password"
        } else {
            "join"
        })
        .bind(user)
        .bind(invite.created_at)
        .bind(invite.expires_at)
        .execute(&mut *$tx)
        .await
        .map_err(crate::db_err)?;
    }};
}
pub(crate) use insert_invite;

const USER_COLUMNS: &str = "id, email, name, role, added_at";
const INVITE_COLUMNS: &str =
    "id, email, role, projects, purpose, user_id, created_at, expires_at, accepted_at, deleted_at";

#[derive(sqlx::FromRow)]
struct InviteRow {
    id: String,
    email: String,
    role: String,
    projects: String,
    purpose: String,
    user_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    accepted_at: Option<i64>,
    deleted_at: Option<i64>,
}

impl InviteRow {
    fn into_found(self) -> InviteByToken {
        let stored: Vec<serde_json::Value> =
            serde_json::from_str(&self.projects).unwrap_or_default();
        let projects = stored.iter().filter_map(|p| {
            Some(InviteProject {
                id: ProjectId::from_trusted(p.get("id")?.as_str()?.to_owned()),
                role: ProjectRole::from_db(p.get("role")?.as_str()?),
            })
        });
        let purpose = match (self.purpose.as_str(), self.user_id) {
            ("set_password", Some(u)) => InvitePurpose::SetPassword(UserId::from_trusted(u)),
            _ => InvitePurpose::Join,
        };
        InviteByToken {
            invite: Invite {
                id: InviteId::from_trusted(self.id),
                email: self.email,
                role: OrgRole::from_db(&self.role),
                projects: projects.collect(),
                created_at: self.created_at,
                expires_at: self.expires_at,
                accepted_at: self.accepted_at,
            },
            purpose,
            deleted: self.deleted_at.is_some(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ProjectUserRow {
    project_id: String,
    id: String,
    email: String,
    name: String,
    role: String,
    added_at: i64,
    project_role: String,
    member_since: i64,
}

impl From<ProjectUserRow> for ProjectUser {
    fn from(r: ProjectUserRow) -> Self {
        ProjectUser {
            project_id: ProjectId::from_trusted(r.project_id),
            user: User::from(UserRow {
                id: r.id,
                email: r.email,
                name: r.name,
                role: r.role,
                added_at: r.added_at,
            }),
            role: ProjectRole::from_db(&r.project_role),
            added_at: r.member_since,
        }
    }
}

const PROJECT_USER_SELECT: &str = "\
SELECT pu.project_id, u.id, u.email, u.name, u.role, u.added_at, pu.role AS project_role, \
       pu.added_at AS member_since \
FROM project_users pu JOIN users u ON u.id = pu.user_id \
WHERE pu.project_id = $1 AND u.deleted_at IS NULL";

fn last_owner() -> StoreError {
    StoreError::Conflict(
        "The organization must keep at least one owner, and this user is the last one. \
         Make another user an owner first."
            .to_owned(),
    )
}

#[async_trait]
impl PeopleStore for Store {
    async fn list_users(&self, emails: &[String], page: &PageRequest) -> StoreResult<Page<User>> {
        let found = self
            .cursor(&page.after, "SELECT seq FROM users WHERE id = $1", &[])
            .await?;
        let after = found.unwrap_or(0);
        let emails: Vec<String> = emails.iter().map(|e| e.trim().to_lowercase()).collect();
        let in_list = (0..emails.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE deleted_at IS NULL AND seq > $1 {} \
             ORDER BY seq LIMIT $2",
            if emails.is_empty() {
                String::new()
            } else {
                format!("AND lower(email) IN ({in_list})")
            }
        );
        let rows: Vec<UserRow> = on_pool!(&self.db, pool => {
            let mut q = sqlx::query_as(&sql)
                .bind(after)
                .bind(i64::from(page.limit.get()) + 1);
            for e in &emails {
                q = q.bind(e.as_str());
            }
            q.fetch_all(pool).await
        })
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows.into_iter().map(User::from).collect(),
            page.limit,
        ))
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = $1 AND deleted_at IS NULL"
        );
        let row: Option<UserRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(email.trim().to_lowercase()).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(User::from))
    }

    async fn update_user_role(
        &self,
        id: &UserId,
        role: OrgRole,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            // Serializes owner changes (a row lock on PostgreSQL, the write lock on SQLite), so
            // two concurrent demotions cannot leave the organization without an owner.
            sqlx::query("UPDATE organization SET name = name")
                .execute(&mut *tx).await.map_err(db_err)?;
            let current: Option<String> =
                sqlx::query_scalar("SELECT role FROM users WHERE id = $1 AND deleted_at IS NULL")
                    .bind(id.as_str()).fetch_optional(&mut *tx).await.map_err(db_err)?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current == "owner" && role != OrgRole::Owner {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE role = 'owner' AND deleted_at IS NULL AND id <> $1",
                )
                .bind(id.as_str()).fetch_one(&mut *tx).await.map_err(db_err)?;
                if others == 0 {
                    return Err(last_owner());
                }
            }
            sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
                .bind(id.as_str()).bind(role.as_str())
                .execute(&mut *tx).await.map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
    }

    async fn delete_user(
        &self,
        id: &UserId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query("UPDATE organization SET name = name")
                .execute(&mut *tx).await.map_err(db_err)?;
            let current: Option<String> =
                sqlx::query_scalar("SELECT role FROM users WHERE id = $1 AND deleted_at IS NULL")
                    .bind(id.as_str()).fetch_optional(&mut *tx).await.map_err(db_err)?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current == "owner" {
                let others: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE role = 'owner' AND deleted_at IS NULL AND id <> $1",
                )
                .bind(id.as_str()).fetch_one(&mut *tx).await.map_err(db_err)?;
                if others == 0 {
                    return Err(last_owner());
                }
            }
            sqlx::query("UPDATE users SET deleted_at = $2 WHERE id = $1")
                .bind(id.as_str()).bind(at)
                .execute(&mut *tx).await.map_err(db_err)?;
            sqlx::query("DELETE FROM project_users WHERE user_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx).await.map_err(db_err)?;
            // A setup link of a deleted user must not bring them back.
            sqlx::query(
                "UPDATE invites SET deleted_at = $2 WHERE user_id = $1 AND accepted_at IS NULL \
                 AND deleted_at IS NULL",
            )
            .bind(id.as_str()).bind(at)
            .execute(&mut *tx).await.map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
    }

    async fn create_invite(
        &self,
        invite: &Invite,
        token_hash: &str,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let hash = token_hash.to_owned();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            insert_invite!(tx, invite, hash, None);
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn invite(&self, id: &InviteId) -> StoreResult<Option<Invite>> {
        let sql = format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE id = $1 AND deleted_at IS NULL \
             AND purpose = 'join'"
        );
        let row: Option<InviteRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(|r| r.into_found().invite))
    }

    async fn list_invites(&self, page: &PageRequest) -> StoreResult<Page<Invite>> {
        let found = self
            .cursor(
                &page.after,
                "SELECT seq FROM invites WHERE id = $1 AND purpose = 'join'",
                &[],
            )
            .await?;
        let after = found.unwrap_or(0);
        let sql = format!(
            "SELECT {INVITE_COLUMNS} FROM invites WHERE deleted_at IS NULL AND purpose = 'join' \
             AND seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows: Vec<InviteRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(after)
                .bind(i64::from(page.limit.get()) + 1)
                .fetch_all(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows.into_iter().map(|r| r.into_found().invite).collect(),
            page.limit,
        ))
    }

    async fn delete_invite(
        &self,
        id: &InviteId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let done = sqlx::query(
                "UPDATE invites SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL \
                 AND accepted_at IS NULL AND purpose = 'join'",
            )
            .bind(id.as_str()).bind(at)
            .execute(&mut *tx).await.map_err(db_err)?
            .rows_affected() > 0;
            if !done {
                let accepted: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT accepted_at FROM invites WHERE id = $1 AND deleted_at IS NULL \
                     AND purpose = 'join'",
                )
                .bind(id.as_str()).fetch_optional(&mut *tx).await.map_err(db_err)?;
                return match accepted {
                    Some(Some(_)) => Err(StoreError::Conflict(
                        "This invite has been accepted and cannot be deleted.".to_owned(),
                    )),
                    _ => Ok(false),
                };
            }
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
    }

    async fn invite_by_token(&self, token_hash: &str) -> StoreResult<Option<InviteByToken>> {
        let sql = format!("SELECT {INVITE_COLUMNS} FROM invites WHERE token_hash = $1");
        let row: Option<InviteRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql).bind(token_hash).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(InviteRow::into_found))
    }

    async fn accept_invite(
        &self,
        acceptance: &Acceptance,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let a = acceptance;
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            // First, and conditionally: of two concurrent accepts only one changes the row.
            let claimed = sqlx::query(
                "UPDATE invites SET accepted_at = $2 WHERE id = $1 AND accepted_at IS NULL \
                 AND deleted_at IS NULL AND expires_at > $2",
            )
            .bind(a.invite_id.as_str()).bind(a.at)
            .execute(&mut *tx).await.map_err(db_err)?
            .rows_affected() > 0;
            if !claimed {
                return Err(StoreError::Conflict(
                    "This invite can no longer be used: it was accepted, deleted or has expired."
                        .to_owned(),
                ));
            }
            match &a.purpose {
                InvitePurpose::Join => {
                    sqlx::query(
                        "INSERT INTO users (id, email, name, role, added_at, password_hash) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(a.user.id.as_str())
                    .bind(&a.user.email)
                    .bind(&a.user.name)
                    .bind(a.user.role.as_str())
                    .bind(a.user.added_at)
                    .bind(&a.password_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match db_err(e) {
                        StoreError::Conflict(_) => StoreError::Conflict(format!(
                            "A member of the organization already uses the email '{}'.",
                            a.user.email
                        )),
                        other => other,
                    })?;
                    for p in &a.projects {
                        sqlx::query(
                            "INSERT INTO project_users (project_id, user_id, role, added_at) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(p.id.as_str())
                        .bind(a.user.id.as_str())
                        .bind(p.role.as_str())
                        .bind(a.at)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    }
                }
                InvitePurpose::SetPassword(user) => {
                    let set = sqlx::query(
                        "UPDATE users SET password_hash = $2, name = $3 WHERE id = $1 \
                         AND deleted_at IS NULL",
                    )
                    .bind(user.as_str())
                    .bind(&a.password_hash)
                    .bind(&a.user.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected() > 0;
                    if !set {
                        return Err(StoreError::Conflict(
                            "The user of this setup link no longer exists.".to_owned(),
                        ));
                    }
                }
            }
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn list_project_users(
        &self,
        project: &ProjectId,
        page: &PageRequest,
    ) -> StoreResult<Page<ProjectUser>> {
        let found = self
            .cursor(
                &page.after,
                "SELECT seq FROM project_users WHERE user_id = $1 AND project_id = $2",
                &[project.as_str()],
            )
            .await?;
        let after = found.unwrap_or(0);
        let sql = format!("{PROJECT_USER_SELECT} AND pu.seq > $2 ORDER BY pu.seq LIMIT $3");
        let rows: Vec<ProjectUserRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(project.as_str())
                .bind(after)
                .bind(i64::from(page.limit.get()) + 1)
                .fetch_all(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(Page::from_overfetch(
            rows.into_iter().map(ProjectUser::from).collect(),
            page.limit,
        ))
    }

    async fn project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
    ) -> StoreResult<Option<ProjectUser>> {
        let sql = format!("{PROJECT_USER_SELECT} AND pu.user_id = $2");
        let row: Option<ProjectUserRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(&sql)
                .bind(project.as_str())
                .bind(user.as_str())
                .fetch_optional(pool)
                .await
        })
        .map_err(db_err)?;
        Ok(row.map(ProjectUser::from))
    }

    async fn add_project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: ProjectRole,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO project_users (project_id, user_id, role, added_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(project.as_str())
            .bind(user.as_str())
            .bind(role.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match db_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "User '{user}' is already a member of project '{project}'."
                )),
                other => other,
            })?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn update_project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: ProjectRole,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let done = sqlx::query(
                "UPDATE project_users SET role = $3 WHERE project_id = $1 AND user_id = $2",
            )
            .bind(project.as_str())
            .bind(user.as_str())
            .bind(role.as_str())
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

    async fn remove_project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let done = sqlx::query("DELETE FROM project_users WHERE project_id = $1 AND user_id = $2")
                .bind(project.as_str())
                .bind(user.as_str())
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
}
