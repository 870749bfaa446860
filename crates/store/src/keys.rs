use crate::rows::{KeyRow, KEY_SELECT};
use crate::{db_err, on_pool, placeholders, write_events, BeginWrite, ChunkedSql, Marks, Store};
use async_trait::async_trait;
use keyplane_core::keys::KeyId;
use keyplane_core::model::{ApiKey, AuditEvent, KeyUpdate, NewApiKey, OwnerAccessFilter};
use keyplane_core::pagination::{Order, Page, PageRequest};
use keyplane_core::ports::{KeyListFilter, KeyStore, StoreResult};
use keyplane_core::time::UnixSeconds;
use std::sync::LazyLock;

pub(crate) const INSERT_KEY: &str = "\
INSERT INTO api_keys (id, kind, project_id, name, redacted_value, hash, scopes, owner_user_id, \
                      owner_service_account_id, created_at, expires_at) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Binds a [`NewApiKey`] to [`INSERT_KEY`] and runs it on `$tx`.
macro_rules! insert_key {
    ($tx:expr, $key:expr) => {{
        let key: &keyplane_core::model::NewApiKey = $key;
        let (user, account) = match &key.owner {
            keyplane_core::model::KeyOwnerId::User(u) => (Some(u.as_str()), None),
            keyplane_core::model::KeyOwnerId::ServiceAccount(s) => (None, Some(s.as_str())),
        };
        let scopes = key
            .permissions
            .to_list()
            .map(|l| serde_json::Value::from(l).to_string());
        sqlx::query(crate::keys::INSERT_KEY)
            .bind(key.id.as_str())
            .bind(key.kind.as_str())
            .bind(key.project_id.as_ref().map(|p| p.as_str()))
            .bind(&key.name)
            .bind(&key.redacted_value)
            .bind(key.hash.to_hex())
            .bind(scopes)
            .bind(user)
            .bind(account)
            .bind(key.created_at)
            .bind(key.expires_at)
            .execute(&mut *$tx)
            .await
            .map_err(crate::db_err)?;
    }};
}
pub(crate) use insert_key;

static KEY_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("{KEY_SELECT} WHERE k.id = $1 AND k.deleted_at IS NULL"));

const OWNER_ACTIVE_EXPR: &str = "\
(CASE WHEN k.owner_service_account_id IS NOT NULL THEN \
      CASE WHEN sa.deleted_at IS NULL THEN 1 ELSE 0 END \
 WHEN u.deleted_at IS NOT NULL THEN 0 \
 WHEN pu.user_id IS NOT NULL OR u.role = 'owner' THEN 1 ELSE 0 END)";

static PROJECT_KEYS: LazyLock<[String; 3]> = LazyLock::new(|| {
    let base = format!(
        "{KEY_SELECT} WHERE k.project_id = $1 AND k.kind <> 'admin' AND k.deleted_at IS NULL \
         AND k.seq > $2"
    );
    let tail = "ORDER BY k.seq LIMIT $3";
    [
        format!("{base} AND {OWNER_ACTIVE_EXPR} = 1 {tail}"),
        format!("{base} AND {OWNER_ACTIVE_EXPR} = 0 {tail}"),
        format!("{base} {tail}"),
    ]
});

static ADMIN_KEYS: LazyLock<[String; 2]> = LazyLock::new(|| {
    let base = "WHERE k.kind = 'admin' AND k.deleted_at IS NULL";
    [
        format!("{KEY_SELECT} {base} AND k.seq > $1 ORDER BY k.seq LIMIT $2"),
        format!("{KEY_SELECT} {base} AND k.seq < $1 ORDER BY k.seq DESC LIMIT $2"),
    ]
});

fn to_keys(rows: Vec<KeyRow>) -> StoreResult<Vec<ApiKey>> {
    rows.into_iter().map(ApiKey::try_from).collect()
}

#[async_trait]
impl KeyStore for Store {
    async fn insert_key(&self, key: &NewApiKey, events: &[AuditEvent]) -> StoreResult<()> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            insert_key!(tx, key);
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>> {
        let row: Option<KeyRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(KEY_BY_ID.as_str()).bind(id.as_str()).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn list_keys(
        &self,
        filter: &KeyListFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>> {
        let fetch = i64::from(page.limit.get()) + 1;
        let rows: Vec<KeyRow> = match filter {
            KeyListFilter::Admin(order) => {
                let found = self
                    .cursor(
                        &page.after,
                        "SELECT seq FROM api_keys WHERE id = $1 AND kind = 'admin'",
                        &[],
                    )
                    .await?;
                let (sql, after) = match order {
                    Order::Asc => (&ADMIN_KEYS[0], found.unwrap_or(0)),
                    Order::Desc => (&ADMIN_KEYS[1], found.unwrap_or(i64::MAX)),
                };
                on_pool!(&self.db, pool => {
                    sqlx::query_as(sql.as_str()).bind(after).bind(fetch).fetch_all(pool).await
                })
                .map_err(db_err)?
            }
            KeyListFilter::Project(project, access) => {
                let found = self
                    .cursor(
                        &page.after,
                        "SELECT seq FROM api_keys WHERE id = $1 AND project_id = $2",
                        &[project.as_str()],
                    )
                    .await?;
                let after = found.unwrap_or(0);
                let sql = match access {
                    OwnerAccessFilter::Active => &PROJECT_KEYS[0],
                    OwnerAccessFilter::Inactive => &PROJECT_KEYS[1],
                    OwnerAccessFilter::Any => &PROJECT_KEYS[2],
                };
                on_pool!(&self.db, pool => {
                    sqlx::query_as(sql.as_str())
                        .bind(project.as_str()).bind(after).bind(fetch)
                        .fetch_all(pool).await
                })
                .map_err(db_err)?
            }
        };
        Ok(Page::from_overfetch(to_keys(rows)?, page.limit))
    }

    async fn update_key(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let scopes = update
            .permissions
            .as_ref()
            .map(|p| p.to_list().map(|l| serde_json::Value::from(l).to_string()));
        // Each field is written only when present: `$n_set` flags keep one statement.
        let sql = "UPDATE api_keys SET \
                   name = CASE WHEN $2 = 1 THEN $3 ELSE name END, \
                   scopes = CASE WHEN $4 = 1 THEN $5 ELSE scopes END, \
                   expires_at = CASE WHEN $6 = 1 THEN $7 ELSE expires_at END \
                   WHERE id = $1 AND deleted_at IS NULL";
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(sql)
                .bind(id.as_str())
                .bind(i32::from(update.name.is_some()))
                .bind(update.name.as_ref().map(|n| n.as_str()))
                .bind(i32::from(scopes.is_some()))
                .bind(scopes.clone().flatten())
                .bind(i32::from(update.expires_at.is_some()))
                .bind(update.expires_at.flatten())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            write_events!(tx, events);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn delete_key(
        &self,
        id: &KeyId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let done = sqlx::query("UPDATE api_keys SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id.as_str())
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

    async fn record_key_use(&self, used: &[(KeyId, UnixSeconds)]) -> StoreResult<()> {
        if used.is_empty() {
            return Ok(());
        }
        // One statement per timestamp and chunk of ids, not one per key.
        let mut by_time: std::collections::BTreeMap<UnixSeconds, Vec<&str>> = Default::default();
        for (id, at) in used {
            by_time.entry(*at).or_default().push(id.as_str());
        }
        let marks = self.db.marks();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            for (at, ids) in &by_time {
                for (sql, chunk) in KEY_USE_UPDATE.chunks(ids, marks) {
                    let mut q = sqlx::query(sql)
                        .bind(*at)
                        .bind(*at);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    q.execute(&mut *tx).await.map_err(db_err)?;
                }
            }
            tx.commit().await.map_err(db_err)
        })
    }

    async fn keys_by_ids(&self, ids: &[KeyId]) -> StoreResult<Vec<ApiKey>> {
        let mut out = Vec::with_capacity(ids.len());
        let marks = self.db.marks();
        for (sql, chunk) in KEYS_BY_IDS.chunks(ids, marks) {
            let rows: Vec<KeyRow> = on_pool!(&self.db, pool => {
                let mut q = sqlx::query_as(sql);
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                q.fetch_all(pool).await
            })
            .map_err(db_err)?;
            out.extend(to_keys(rows)?);
        }
        Ok(out)
    }

    async fn recently_used_keys(&self, limit: u32) -> StoreResult<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(RECENTLY_USED_KEYS.as_str())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })
        .map_err(db_err)?;
        to_keys(rows)
    }
}

/// `last_used_at` moved forward for a chunk of keys: the time twice, then the ids.
static KEY_USE_UPDATE: LazyLock<ChunkedSql> = LazyLock::new(|| {
    ChunkedSql::new(|rows, marks| {
        let [at, again] = match marks {
            Marks::Question => ["?", "?"],
            Marks::Dollar => ["$1", "$2"],
        };
        format!(
            "UPDATE api_keys SET last_used_at = {at} \
             WHERE (last_used_at IS NULL OR last_used_at < {again}) AND id IN {}",
            // One group of `rows` placeholders: `($3, …, $n)`.
            placeholders(1, rows, 3, marks)
        )
    })
});

/// Live keys by id, for a chunk of ids.
static KEYS_BY_IDS: LazyLock<ChunkedSql> = LazyLock::new(|| {
    ChunkedSql::new(|rows, marks| {
        format!(
            "{KEY_SELECT} WHERE k.deleted_at IS NULL AND k.id IN {}",
            placeholders(1, rows, 1, marks)
        )
    })
});

/// `COALESCE`, not `NULLS LAST`: the two databases order NULLs differently.
static RECENTLY_USED_KEYS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{KEY_SELECT} WHERE k.deleted_at IS NULL \
         ORDER BY COALESCE(k.last_used_at, 0) DESC, k.seq DESC LIMIT $1"
    )
});
