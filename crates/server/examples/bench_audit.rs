//! Audit-log benchmark (not a test): filtered queries over 1,000,000 events, and what writing
//! the audit event adds to a key creation, on SQLite and PostgreSQL.
//!
//! ```sh
//! cargo run --release -p keyplane-server --example bench_audit -- [--events 1000000]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;
use common::arg;
use keyplane_core::audit::{AuditCursor, AuditFilter, AuditQuery, TimeRange};
use keyplane_core::ids::{OrgId, ProjectId, UserId};
use keyplane_core::keys::{KeyHasher, KeyKind};
use keyplane_core::model::{
    AuditEvent, KeyOwnerId, NewApiKey, OrgRole, Organization, Project, User,
};
use keyplane_core::pagination::Limit;
use keyplane_core::ports::{AuditStore, KeyStore, OrgStore, ProjectStore};
use keyplane_core::scopes::Permissions;
use keyplane_store::{Db, PoolSettings, Store};
use serde_json::json;
use std::time::{Duration, Instant};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

const TYPES: [&str; 5] = [
    "api_key.created",
    "api_key.deleted",
    "project.updated",
    "service_account.created",
    "rate_limit.updated",
];

async fn bench(label: &str, db: Db, n: i64) {
    db.migrate().await.unwrap();
    let store = Store::new(db.clone());
    let hasher = KeyHasher::new(None);
    let owner = User {
        id: UserId::generate(),
        email: "bench@example.com".into(),
        name: "b".into(),
        role: OrgRole::Owner,
        added_at: 1,
    };
    let new_key = |project: &ProjectId| {
        let (_, m) = hasher.generate(KeyKind::Project);
        NewApiKey {
            id: m.id,
            kind: KeyKind::Project,
            project_id: Some(project.clone()),
            name: "k".into(),
            redacted_value: m.redacted_value,
            hash: m.hash,
            permissions: Permissions::All,
            owner: KeyOwnerId::User(owner.id.clone()),
            created_at: 1,
            expires_at: None,
        }
    };
    let (_, m) = hasher.generate(KeyKind::Admin);
    let admin = NewApiKey {
        id: m.id,
        kind: KeyKind::Admin,
        project_id: None,
        name: "a".into(),
        redacted_value: m.redacted_value,
        hash: m.hash,
        permissions: Permissions::All,
        owner: KeyOwnerId::User(owner.id.clone()),
        created_at: 1,
        expires_at: None,
    };
    store
        .initialize(
            &Organization {
                id: OrgId::generate().to_string(),
                name: "b".into(),
                created_at: 1,
            },
            &owner,
            &admin,
            &[],
        )
        .await
        .unwrap();
    let project = Project {
        id: ProjectId::generate(),
        name: "p".into(),
        created_at: 1,
        archived_at: None,
        external_key_id: None,
        residency: None,
    };
    store
        .create_project(&project, &owner.id, &[])
        .await
        .unwrap();

    // What the audit event adds to a key creation (same transaction either way).
    for with_event in [false, true] {
        let t = Instant::now();
        for _ in 0..2000 {
            let k = new_key(&project.id);
            let events = if with_event {
                vec![AuditEvent::new(
                    "api_key.created",
                    Some(&project.id),
                    json!({"type": "api_key", "api_key": {"id": "key_x", "type": "user", "user": {"id": owner.id.as_str(), "email": owner.email}}}),
                    json!({"id": k.id.as_str(), "data": {"scopes": null}}),
                )]
            } else {
                vec![]
            };
            store.insert_key(&k, &events).await.unwrap();
        }
        let per = t.elapsed().as_secs_f64() * 1e6 / 2000.0;
        println!(
            "[{label}] key creation {} audit event: {per:.0} µs each ({:.0} keys/s)",
            if with_event { "with   " } else { "without" },
            1e6 / per
        );
    }

    // 1M events: 5 types, 100 projects, 50 actors, one event per second of a 1M-second span.
    let seed = Instant::now();
    let sql = "SELECT 'audit_log-b' || i, \
        CASE i % 5 WHEN 0 THEN 'api_key.created' WHEN 1 THEN 'api_key.deleted' WHEN 2 THEN 'project.updated' WHEN 3 THEN 'service_account.created' ELSE 'rate_limit.updated' END, \
        1700000000 + i, 'proj_b' || (i % 100), '{\"type\":\"api_key\"}', '{}', 'user-b' || (i % 50), 'key_b' || (i % 50), 'u' || (i % 50) || '@example.com', 'res_' || i";
    let cols = "INSERT INTO audit_events (id, event_type, effective_at, project_id, actor, details, actor_id, actor_key_id, actor_email, resource_id) ";
    match &db {
        Db::Sqlite(pool) => {
            sqlx::query(&format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) {cols} {sql} FROM n"))
                .bind(n).execute(pool).await.unwrap();
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(&format!("{cols} {sql} FROM generate_series(1, $1) AS i"))
                .bind(n)
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
    }
    println!(
        "[{label}] seeded {n} audit events in {:.1} s",
        seed.elapsed().as_secs_f64()
    );

    let deep = format!("audit_log-b{}", n / 10);
    let cases: Vec<(&str, AuditFilter, AuditCursor)> = vec![
        (
            "no filter, newest page",
            AuditFilter::default(),
            AuditCursor::Newest,
        ),
        (
            "event_types=[api_key.created]",
            AuditFilter {
                event_types: vec![TYPES[0].into()],
                ..Default::default()
            },
            AuditCursor::Newest,
        ),
        (
            "project_ids=[one of 100]",
            AuditFilter {
                project_ids: vec!["proj_b7".into()],
                ..Default::default()
            },
            AuditCursor::Newest,
        ),
        (
            "project_ids + event_types, deep page",
            AuditFilter {
                project_ids: vec!["proj_b7".into()],
                event_types: vec![TYPES[2].into()],
                ..Default::default()
            },
            AuditCursor::After(deep.clone()),
        ),
        (
            "actor_emails + effective_at range",
            AuditFilter {
                actor_emails: vec!["u3@example.com".into()],
                effective_at: TimeRange {
                    gte: Some(1700000000 + n / 4),
                    lt: Some(1700000000 + n / 2),
                    ..Default::default()
                },
                ..Default::default()
            },
            AuditCursor::Newest,
        ),
        (
            "resource_ids=[one event]",
            AuditFilter {
                resource_ids: vec![format!("res_{}", n / 3)],
                ..Default::default()
            },
            AuditCursor::Newest,
        ),
    ];
    for (name, filter, cursor) in cases {
        let q = AuditQuery {
            filter,
            limit: Limit::parse(Some(20)).unwrap(),
            cursor,
        };
        let mut lat = Vec::new();
        for i in 0..550 {
            let t = Instant::now();
            let page = store.query_audit_events(&q).await.unwrap();
            if i >= 50 {
                lat.push(t.elapsed());
            }
            assert!(!page.items.is_empty(), "{name}");
        }
        lat.sort();
        println!(
            "[{label}] audit page (limit 20) {name}: p50 {:.2} ms, p99 {:.2} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    db.close().await;
}

#[tokio::main]
async fn main() {
    let n: i64 = arg("--events")
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("kp_bench_audit_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Db::connect(
        &format!("sqlite://{}", dir.join("a.db").display()),
        &PoolSettings::default(),
    )
    .await
    .unwrap();
    bench("sqlite", sqlite, n).await;
    let _ = std::fs::remove_dir_all(&dir);
    let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
    let name = format!("kp_bench_audit_{}", std::process::id());
    let admin = Db::connect(admin_url, &PoolSettings::default())
        .await
        .unwrap();
    if let Db::Postgres(pool) = &admin {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(pool)
            .await
            .unwrap();
    }
    let pg = Db::connect(
        &format!("postgres://postgres@127.0.0.1:5432/{name}"),
        &PoolSettings::default(),
    )
    .await
    .unwrap();
    bench("postgres", pg, n).await;
    if let Db::Postgres(pool) = &admin {
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(pool)
            .await
            .unwrap();
    }
}
