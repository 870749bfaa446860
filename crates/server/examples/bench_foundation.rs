//! Foundation benchmarks (not tests): key verification, key creation rate, and listing one page
//! of a project holding 1,000,000 keys, on SQLite and PostgreSQL.
//!
//! ```sh
//! cargo run --release -p keyplane-server --example bench_foundation -- \
//!     [--keys 1000000] [--postgres postgres://postgres@127.0.0.1:5432/postgres]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;
use common::arg;
use keyplane_core::ids::{OrgId, ProjectId, UserId};
use keyplane_core::keys::{KeyHasher, KeyKind};
use keyplane_core::model::{
    AuditEvent, KeyOwnerId, NewApiKey, OrgRole, Organization, OwnerAccessFilter, Project, User,
};
use keyplane_core::pagination::{Limit, PageRequest};
use keyplane_core::ports::{KeyListFilter, KeyStore, OrgStore, ProjectStore};
use keyplane_core::scopes::Permissions;
use keyplane_server::keycache::KeyVerifier;
use keyplane_store::{Db, PoolSettings, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn fmt(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn new_key(
    hasher: &KeyHasher,
    kind: KeyKind,
    project: Option<ProjectId>,
    owner: &UserId,
) -> (String, NewApiKey) {
    let (plain, m) = hasher.generate(kind);
    let key = NewApiKey {
        id: m.id,
        kind,
        project_id: project,
        name: "bench".into(),
        redacted_value: m.redacted_value,
        hash: m.hash,
        permissions: Permissions::All,
        owner: KeyOwnerId::User(owner.clone()),
        created_at: 1,
        expires_at: None,
    };
    (plain.expose().to_owned(), key)
}

async fn setup(store: &Store, hasher: &KeyHasher) -> (User, Project) {
    let owner = User {
        id: UserId::generate(),
        email: "bench@example.com".into(),
        name: "bench".into(),
        role: OrgRole::Owner,
        added_at: 1,
    };
    let (_, admin) = new_key(hasher, KeyKind::Admin, None, &owner.id);
    let org = Organization {
        id: OrgId::generate().to_string(),
        name: "bench".into(),
        created_at: 1,
    };
    store.initialize(&org, &owner, &admin, &[]).await.unwrap();
    let project = Project {
        id: ProjectId::generate(),
        name: "big".into(),
        created_at: 1,
        archived_at: None,
        external_key_id: None,
        residency: None,
    };
    store
        .create_project(&project, &owner.id, &[])
        .await
        .unwrap();
    (owner, project)
}

async fn bench_backend(label: &str, db: Db, n_keys: i64) {
    db.migrate().await.unwrap();
    let store = Store::new(db.clone());
    let hasher = KeyHasher::new(None);
    let (owner, project) = setup(&store, &hasher).await;

    // Key creation through the store, one transaction with its audit event per key (as the API does).
    let n_create = 2000;
    let start = Instant::now();
    for _ in 0..n_create {
        let (_, key) = new_key(
            &hasher,
            KeyKind::Project,
            Some(project.id.clone()),
            &owner.id,
        );
        let ev = AuditEvent::new(
            "api_key.created",
            Some(&project.id),
            json!({"type":"bench"}),
            json!({"id": key.id.as_str()}),
        );
        store.insert_key(&key, &[ev]).await.unwrap();
    }
    let rate = n_create as f64 / start.elapsed().as_secs_f64();
    println!("[{label}] key creation: {rate:.0} keys/s ({n_create} keys, sequential, 1 tx + audit event each)");

    // Bulk-seed the project to n_keys.
    let seed = Instant::now();
    let hash = "0".repeat(64);
    match &db {
        Db::Sqlite(pool) => {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
                 INSERT INTO api_keys (id, kind, project_id, name, redacted_value, hash, owner_user_id, created_at) \
                 SELECT 'key_' || printf('%016d', i), 'project', $2, 'bulk', 'sk-proj-...bulk', $3, $4, 1 FROM n",
            )
            .bind(n_keys - n_create).bind(project.id.as_str()).bind(&hash).bind(owner.id.as_str())
            .execute(pool).await.unwrap();
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO api_keys (id, kind, project_id, name, redacted_value, hash, owner_user_id, created_at) \
                 SELECT 'key_' || lpad(i::text, 16, '0'), 'project', $2, 'bulk', 'sk-proj-...bulk', $3, $4, 1 \
                 FROM generate_series(1, $1) AS i",
            )
            .bind(n_keys - n_create).bind(project.id.as_str()).bind(&hash).bind(owner.id.as_str())
            .execute(pool).await.unwrap();
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
    }
    println!(
        "[{label}] seeded {n_keys} keys in one project in {:.1} s",
        seed.elapsed().as_secs_f64()
    );

    // Listing: first page and a page ~90% deep into the cursor chain.
    let filter = KeyListFilter::Project(project.id.clone(), OwnerAccessFilter::Active);
    let deep_after = format!("key_{:016}", (n_keys as f64 * 0.9) as i64);
    for (name, after) in [("first page", None), ("deep page (90%)", Some(deep_after))] {
        let req = PageRequest {
            limit: Limit::parse(Some(100)).unwrap(),
            after,
        };
        let mut samples = Vec::new();
        for i in 0..1100 {
            let t = Instant::now();
            let page = store.list_keys(&filter, &req).await.unwrap();
            let el = t.elapsed();
            assert_eq!(page.items.len(), 100);
            if i >= 100 {
                samples.push(el);
            }
        }
        samples.sort();
        println!(
            "[{label}] list limit=100 {name}: p50 {} p99 {} (1000 runs)",
            fmt(percentile(&samples, 0.5)),
            fmt(percentile(&samples, 0.99))
        );
    }

    // Verification with a warm cache.
    let keys: Arc<dyn KeyStore> = Arc::new(store.clone());
    let verifier = KeyVerifier::new(
        KeyHasher::new(None),
        keys,
        1_000_000,
        std::time::Duration::from_secs(600),
    );
    let (raw, key) = new_key(
        &hasher,
        KeyKind::Project,
        Some(project.id.clone()),
        &owner.id,
    );
    store.insert_key(&key, &[]).await.unwrap();
    verifier.verify(&raw, 2).await.unwrap();
    let mut samples = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        for _ in 0..100 {
            verifier.verify(&raw, 2).await.unwrap();
        }
        samples.push(t.elapsed() / 100);
    }
    samples.sort();
    println!(
        "[{label}] verify (parse + checksum + SHA-256 + cache hit): median {:.2} µs, p99 {:.2} µs",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6
    );
    let garbage = format!("{}x", &raw[..raw.len() - 1]);
    let t = Instant::now();
    for _ in 0..100_000 {
        assert!(verifier.verify(&garbage, 2).await.is_err());
    }
    println!(
        "[{label}] reject bad checksum (no I/O): {:.2} µs each",
        t.elapsed().as_secs_f64() * 1e6 / 100_000.0
    );
    db.close().await;
}

#[tokio::main]
async fn main() {
    let n_keys: i64 = arg("--keys")
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let pg_admin =
        arg("--postgres").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());

    let dir = std::env::temp_dir().join(format!("kp_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Db::connect(
        &format!("sqlite://{}", dir.join("bench.db").display()),
        &PoolSettings::default(),
    )
    .await
    .unwrap();
    bench_backend("sqlite", sqlite, n_keys).await;
    let _ = std::fs::remove_dir_all(&dir);

    let name = format!("kp_bench_{}", std::process::id());
    let admin = Db::connect(&pg_admin, &PoolSettings::default())
        .await
        .unwrap();
    if let Db::Postgres(pool) = &admin {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(pool)
            .await
            .unwrap();
    }
    let base = pg_admin.rsplit_once('/').unwrap().0;
    let pg = Db::connect(&format!("{base}/{name}"), &PoolSettings::default())
        .await
        .unwrap();
    bench_backend("postgres", pg, n_keys).await;
    if let Db::Postgres(pool) = &admin {
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(pool)
            .await
            .unwrap();
    }
}
