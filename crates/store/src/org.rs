use crate::keys::insert_key;
use crate::people::insert_invite;
use crate::rows::UserRow;
use crate::{db_err, on_pool, write_events, BeginWrite, Store};
use async_trait::async_trait;
use keyplane_core::ids::UserId;
use keyplane_core::model::{AuditEvent, NewApiKey, Organization, User};
use keyplane_core::people::OwnerCredential;
use keyplane_core::ports::{OrgStore, StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct OrgRow {
    id: String,
    name: String,
    created_at: i64,
}

#[async_trait]
impl OrgStore for Store {
    async fn organization(&self) -> StoreResult<Option<Organization>> {
        let row: Option<OrgRow> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT id, name, created_at FROM organization").fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(|r| Organization {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }))
    }

    async fn initialize_with(
        &self,
        org: &Organization,
        owner: &User,
        credential: &OwnerCredential,
        admin_key: &NewApiKey,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let password_hash = match credential {
            OwnerCredential::PasswordHash(h) => Some(h.as_str()),
            _ => None,
        };
        let already = || StoreError::Conflict("this database already holds an organization".into());
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let existing: Option<String> = sqlx::query_scalar("SELECT id FROM organization")
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if existing.is_some() {
                return Err(already());
            }
            sqlx::query("INSERT INTO organization (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&org.id)
                .bind(&org.name)
                .bind(org.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| match db_err(e) {
                    StoreError::Conflict(_) => already(),
                    other => other,
                })?;
            sqlx::query(
                "INSERT INTO users (id, email, name, role, added_at, password_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(owner.id.as_str())
            .bind(&owner.email)
            .bind(&owner.name)
            .bind(owner.role.as_str())
            .bind(owner.added_at)
            .bind(password_hash)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if let OwnerCredential::SetupInvite { invite, token_hash } = credential {
                insert_invite!(tx, invite, token_hash, Some(owner.id.as_str()));
            }
            insert_key!(tx, admin_key);
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, email, name, role, added_at FROM users WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
        })
        .map_err(db_err)?;
        Ok(row.map(User::from))
    }

    async fn ping(&self) -> bool {
        on_pool!(&self.db, pool => {
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await.is_ok()
        })
    }
}
