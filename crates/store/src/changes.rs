//! The change feed between instances: PostgreSQL's LISTEN/NOTIFY on one channel. The listener
//! has a connection of its own, outside the shared pool, so an exhausted pool never delays a
//! notification. The store's revision (`store_revision`, moved by every audited write) tells an
//! instance whether anything its caches hold can have changed since it last read them.

use crate::{db_err, on_pool, Db, Store};
use async_trait::async_trait;
use keyplane_core::ports::{ChangeFeed, ChangeSubscription, StoreError, StoreResult};
use sqlx::postgres::{PgListener, PgPoolOptions};

/// The NOTIFY channel every instance listens on.
pub const CHANNEL: &str = "keyplane_changes";

#[async_trait]
impl ChangeFeed for Store {
    async fn publish(&self, payload: &str) -> StoreResult<()> {
        match &self.db {
            Db::Postgres(pool) => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(pool)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
            Db::Sqlite(_) => Ok(()),
        }
    }

    async fn subscribe(&self) -> StoreResult<Option<Box<dyn ChangeSubscription>>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let own = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with((*pool.connect_options()).clone());
        let mut listener = PgListener::connect_with(&own).await.map_err(db_err)?;
        listener.listen(CHANNEL).await.map_err(db_err)?;
        Ok(Some(Box::new(PgSubscription { listener })))
    }

    async fn revision(&self) -> StoreResult<i64> {
        on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT revision FROM store_revision WHERE id = 1")
                .fetch_one(pool)
                .await
                .map_err(db_err)
        })
    }
}

struct PgSubscription {
    listener: PgListener,
}

#[async_trait]
impl ChangeSubscription for PgSubscription {
    async fn next(&mut self) -> StoreResult<Option<String>> {
        match self.listener.try_recv().await {
            Ok(Some(n)) => Ok(Some(n.payload().to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::Unavailable(e.to_string())),
        }
    }
}
