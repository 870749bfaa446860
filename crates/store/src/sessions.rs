use crate::rows::UserRow;
use crate::{db_err, on_pool, write_events, BeginWrite, Store};
use async_trait::async_trait;
use keyplane_core::ids::UserId;
use keyplane_core::model::{AuditEvent, User};
use keyplane_core::ports::{SessionStore, StoreResult};
use keyplane_core::sessions::Session;
use keyplane_core::time::UnixSeconds;

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: String,
    email: String,
    name: String,
    role: String,
    added_at: i64,
    password_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    token_hash: String,
    user_id: String,
    csrf_token: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    email: String,
    name: String,
    role: String,
    added_at: i64,
}

#[async_trait]
impl SessionStore for Store {
    async fn user_credentials(&self, email: &str) -> StoreResult<Option<(User, Option<String>)>> {
        let row: Option<CredentialRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, email, name, role, added_at, password_hash FROM users \
                 WHERE lower(email) = $1 AND deleted_at IS NULL",
            )
            .bind(email.trim().to_lowercase())
            .fetch_optional(pool)
            .await
        })
        .map_err(db_err)?;
        Ok(row.map(|r| {
            let user = User::from(UserRow {
                id: r.id,
                email: r.email,
                name: r.name,
                role: r.role,
                added_at: r.added_at,
            });
            (user, r.password_hash)
        }))
    }

    async fn create_session(
        &self,
        session: &Session,
        replaces: Option<&str>,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            if let Some(old) = replaces {
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(old)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&session.token_hash)
            .bind(session.user_id.as_str())
            .bind(&session.csrf_token)
            .bind(session.created_at)
            .bind(session.last_seen_at)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn session(&self, token_hash: &str) -> StoreResult<Option<(Session, User)>> {
        let row: Option<SessionRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT s.token_hash, s.user_id, s.csrf_token, s.created_at, s.last_seen_at, \
                 s.expires_at, u.email, u.name, u.role, u.added_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.revoked = FALSE AND u.deleted_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })
        .map_err(db_err)?;
        Ok(row.map(|r| {
            let user = User::from(UserRow {
                id: r.user_id.clone(),
                email: r.email,
                name: r.name,
                role: r.role,
                added_at: r.added_at,
            });
            let session = Session {
                token_hash: r.token_hash,
                user_id: UserId::from_trusted(r.user_id),
                csrf_token: r.csrf_token,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
                expires_at: r.expires_at,
            };
            (session, user)
        }))
    }

    async fn touch_session(&self, token_hash: &str, at: UnixSeconds) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2",
            )
            .bind(token_hash)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str, events: &[AuditEvent]) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if done > 0 {
                write_events!(tx, events);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(done > 0)
        })
    }

    async fn prune_sessions(&self, idle_before: UnixSeconds, now: UnixSeconds) -> StoreResult<u64> {
        let done = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR expires_at <= $2")
                .bind(idle_before)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(db_err)?;
        Ok(done)
    }

    async fn record_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }
}
