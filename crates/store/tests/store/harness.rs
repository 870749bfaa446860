use keyplane_store::{Db, PoolSettings, Store};
use std::future::Future;

fn postgres_admin_url() -> String {
    std::env::var("KEYPLANE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A migrated SQLite store in a fresh file.
pub async fn sqlite() -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(unique("kp_store"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test.db");
    let db = Db::connect(
        &format!("sqlite://{}", path.display()),
        &PoolSettings::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    (Store::new(db), dir)
}

/// A migrated PostgreSQL store in a fresh database, dropped by [`drop_postgres`].
pub async fn postgres() -> (Store, String) {
    let admin_url = postgres_admin_url();
    let admin = Db::connect(&admin_url, &PoolSettings::default())
        .await
        .expect(
            "PostgreSQL must be reachable for the store tests (set KEYPLANE_TEST_POSTGRES_URL)",
        );
    let name = unique("kp_store");
    if let Db::Postgres(pool) = &admin {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(pool)
            .await
            .unwrap();
    }
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap()
        .to_owned();
    let db = Db::connect(&format!("{base}/{name}"), &PoolSettings::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (Store::new(db), name)
}

pub async fn drop_postgres(store: Store, name: String) {
    store.db().close().await;
    let admin = Db::connect(&postgres_admin_url(), &PoolSettings::default())
        .await
        .unwrap();
    if let Db::Postgres(pool) = &admin {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(pool)
            .await;
    }
    admin.close().await;
}

/// Runs `case` on both backends.
pub async fn on_both<F, Fut>(case: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, dir) = sqlite().await;
    case(store.clone()).await;
    store.db().close().await;
    let _ = std::fs::remove_dir_all(dir);

    let (store, name) = postgres().await;
    case(store.clone()).await;
    drop_postgres(store, name).await;
}
