use crate::harness::on_both;
use keyplane_core::ids::{OrgId, ProjectId, ServiceAccountId, UserId};
use keyplane_core::keys::{KeyHasher, KeyId, KeyKind};
use keyplane_core::model::{
    AuditEvent, KeyOwnerId, KeyUpdate, Name, NewApiKey, OrgRole, Organization, OwnerAccessFilter,
    Project, ServiceAccount, User,
};
use keyplane_core::pagination::{Limit, Order, PageRequest};
use keyplane_core::ports::{
    AuditStore, KeyListFilter, KeyStore, OrgStore, ProjectStore, ServiceAccountStore, StoreError,
};
use keyplane_core::scopes::Permissions;
use keyplane_store::Store;
use serde_json::json;

fn event(kind: &str) -> AuditEvent {
    AuditEvent::new(kind, None, json!({"type": "test"}), json!({}))
}

fn page(limit: i64, after: Option<String>) -> PageRequest {
    PageRequest {
        limit: Limit::parse(Some(limit)).unwrap(),
        after,
    }
}

async fn init(store: &Store) -> User {
    let owner = User {
        id: UserId::generate(),
        email: "owner@example.com".into(),
        name: "owner".into(),
        role: OrgRole::Owner,
        added_at: 1,
    };
    let key = new_key(KeyKind::Admin, None, KeyOwnerId::User(owner.id.clone()));
    let org = Organization {
        id: OrgId::generate().to_string(),
        name: "Org".into(),
        created_at: 1,
    };
    store
        .initialize(&org, &owner, &key, &[event("user.added")])
        .await
        .unwrap();
    owner
}

fn new_key(kind: KeyKind, project: Option<ProjectId>, owner: KeyOwnerId) -> NewApiKey {
    let (_, m) = KeyHasher::new(None).generate(kind);
    NewApiKey {
        id: m.id,
        kind,
        project_id: project,
        name: "k".into(),
        redacted_value: m.redacted_value,
        hash: m.hash,
        permissions: Permissions::All,
        owner,
        created_at: 10,
        expires_at: None,
    }
}

async fn project(store: &Store, owner: &User) -> Project {
    let p = Project {
        id: ProjectId::generate(),
        name: "p".into(),
        created_at: 5,
        archived_at: None,
        external_key_id: None,
        residency: None,
    };
    store
        .create_project(&p, &owner.id, &[event("project.created")])
        .await
        .unwrap();
    p
}

/// `n` project keys of `owner` in `p`, in creation order.
async fn project_keys(store: &Store, p: &Project, owner: &User, n: usize) -> Vec<KeyId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let k = new_key(
            KeyKind::Project,
            Some(p.id.clone()),
            KeyOwnerId::User(owner.id.clone()),
        );
        store.insert_key(&k, &[]).await.unwrap();
        ids.push(k.id);
    }
    ids
}

#[tokio::test]
async fn initialize_happens_once() {
    on_both(|store| async move {
        init(&store).await;
        let again = User {
            id: UserId::generate(),
            email: "x@example.com".into(),
            name: "x".into(),
            role: OrgRole::Owner,
            added_at: 1,
        };
        let key = new_key(KeyKind::Admin, None, KeyOwnerId::User(again.id.clone()));
        let org = Organization {
            id: "org-2".into(),
            name: "Other".into(),
            created_at: 2,
        };
        let err = store.initialize(&org, &again, &key, &[]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert_eq!(store.organization().await.unwrap().unwrap().name, "Org");
        assert!(store.user(&again.id).await.unwrap().is_none());
        assert!(store.ping().await);
    })
    .await;
}

#[tokio::test]
async fn keys_round_trip_with_owner_and_soft_delete() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let mut k = new_key(
            KeyKind::Project,
            Some(p.id.clone()),
            KeyOwnerId::User(owner.id.clone()),
        );
        k.permissions = Permissions::parse(Some(&["api.model.read".to_owned()])).unwrap();
        k.expires_at = Some(99);
        store
            .insert_key(&k, &[event("api_key.created")])
            .await
            .unwrap();

        let got = store.key(&k.id).await.unwrap().unwrap();
        assert!(got.hash.matches(&k.hash));
        assert_eq!(got.owner.email.as_deref(), Some("owner@example.com"));
        assert_eq!(got.owner.role, "owner");
        assert!(got.owner_active);
        assert!(!got.project_archived);
        assert_eq!(got.permissions, k.permissions);
        assert_eq!(got.expires_at, Some(99));
        assert_eq!(got.last_used_at, None);

        store.record_key_use(&[(k.id.clone(), 50)]).await.unwrap();
        store.record_key_use(&[(k.id.clone(), 40)]).await.unwrap();
        assert_eq!(
            store.key(&k.id).await.unwrap().unwrap().last_used_at,
            Some(50)
        );

        let update = KeyUpdate {
            name: Some(Name::parse("name", "renamed").unwrap()),
            permissions: Some(Permissions::All),
            expires_at: Some(None),
        };
        store
            .update_key(&k.id, &update, &[event("api_key.updated")])
            .await
            .unwrap();
        let got = store.key(&k.id).await.unwrap().unwrap();
        assert_eq!(got.name, "renamed");
        assert_eq!(got.permissions, Permissions::All);
        assert_eq!(got.expires_at, None);

        // An empty update changes nothing.
        store
            .update_key(&k.id, &KeyUpdate::default(), &[])
            .await
            .unwrap();
        assert_eq!(store.key(&k.id).await.unwrap().unwrap().name, "renamed");

        assert!(store
            .delete_key(&k.id, 60, &[event("api_key.deleted")])
            .await
            .unwrap());
        assert!(!store
            .delete_key(&k.id, 61, &[event("api_key.deleted")])
            .await
            .unwrap());
        assert!(store.key(&k.id).await.unwrap().is_none());

        let events = store.list_audit_events(&page(100, None)).await.unwrap();
        let types: Vec<_> = events.items.iter().map(|e| e.event_type.as_str()).collect();
        // Newest first; the second (no-op) delete wrote nothing.
        assert_eq!(
            types,
            [
                "api_key.deleted",
                "api_key.updated",
                "api_key.created",
                "project.created",
                "user.added"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn pagination_is_stable_while_rows_are_added() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let mut ids: Vec<String> = project_keys(&store, &p, &owner, 25)
            .await
            .iter()
            .map(ToString::to_string)
            .collect();
        let filter = KeyListFilter::Project(p.id.clone(), OwnerAccessFilter::Any);
        let mut seen = Vec::new();
        let mut after = None;
        let mut added = 0;
        loop {
            let pg = store
                .list_keys(&filter, &page(7, after.clone()))
                .await
                .unwrap();
            seen.extend(pg.items.iter().map(|k| k.id.to_string()));
            // Rows added mid-walk appear after the original ones, never in between.
            if added < 3 {
                let k = new_key(
                    KeyKind::Project,
                    Some(p.id.clone()),
                    KeyOwnerId::User(owner.id.clone()),
                );
                store.insert_key(&k, &[]).await.unwrap();
                ids.push(k.id.to_string());
                added += 1;
            }
            if !pg.has_more {
                assert!(pg.items.len() <= 7);
                break;
            }
            after = pg.items.last().map(|k| k.id.to_string());
        }
        assert_eq!(seen, ids, "no duplicates, no gaps, creation order");
        let last = store
            .list_keys(&filter, &page(7, seen.last().cloned()))
            .await
            .unwrap();
        assert!(last.items.is_empty() && !last.has_more);

        let err = store
            .list_keys(&filter, &page(7, Some("key_doesnotexist00".into())))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownCursor(_)));

        // Admin keys never show up in a project's list, and vice versa; `order` works both ways.
        let second = new_key(KeyKind::Admin, None, KeyOwnerId::User(owner.id.clone()));
        store.insert_key(&second, &[]).await.unwrap();
        let asc = store
            .list_keys(&KeyListFilter::Admin(Order::Asc), &page(100, None))
            .await
            .unwrap();
        assert_eq!(asc.items.len(), 2);
        assert!(asc.items.iter().all(|k| k.kind == KeyKind::Admin));
        assert_eq!(asc.items[1].id, second.id);
        let desc = store
            .list_keys(&KeyListFilter::Admin(Order::Desc), &page(1, None))
            .await
            .unwrap();
        assert_eq!(desc.items[0].id, second.id);
        assert!(desc.has_more);
        let desc2 = store
            .list_keys(
                &KeyListFilter::Admin(Order::Desc),
                &page(1, Some(second.id.to_string())),
            )
            .await
            .unwrap();
        assert_eq!(desc2.items[0].id, asc.items[0].id);
        assert!(!desc2.has_more);
    })
    .await;
}

#[tokio::test]
async fn projects_list_archive_and_update() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let a = project(&store, &owner).await;
        let b = project(&store, &owner).await;
        store
            .archive_project(&a.id, 7, &[event("project.archived")])
            .await
            .unwrap();
        let active = store.list_projects(false, &page(10, None)).await.unwrap();
        assert_eq!(
            active
                .items
                .iter()
                .map(|p| p.id.clone())
                .collect::<Vec<_>>(),
            vec![b.id.clone()]
        );
        let all = store.list_projects(true, &page(10, None)).await.unwrap();
        assert_eq!(all.items.len(), 2);
        let archived = store.project(&a.id).await.unwrap().unwrap();
        assert_eq!(archived.archived_at, Some(7));

        // Archived projects are not updated.
        let mut renamed = archived.clone();
        renamed.name = "new".into();
        store.update_project(&renamed, &[]).await.unwrap();
        assert_eq!(store.project(&a.id).await.unwrap().unwrap().name, "p");

        let mut b2 = b.clone();
        b2.name = "bee".into();
        b2.external_key_id = Some("ext".into());
        store.update_project(&b2, &[]).await.unwrap();
        assert_eq!(store.project(&b.id).await.unwrap().unwrap(), b2);
        assert_eq!(
            store
                .project_role(&b.id, &owner.id)
                .await
                .unwrap()
                .as_deref(),
            Some("owner")
        );

        // A key of an archived project reads back as archived.
        let k = new_key(
            KeyKind::Project,
            Some(a.id.clone()),
            KeyOwnerId::User(owner.id.clone()),
        );
        store.insert_key(&k, &[]).await.unwrap();
        assert!(store.key(&k.id).await.unwrap().unwrap().project_archived);
    })
    .await;
}

#[tokio::test]
async fn service_account_deletion_revokes_its_keys() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let sa = ServiceAccount {
            id: ServiceAccountId::generate(),
            project_id: p.id.clone(),
            name: "bot".into(),
            role: "member".into(),
            created_at: 3,
        };
        let k1 = new_key(
            KeyKind::ServiceAccount,
            Some(p.id.clone()),
            KeyOwnerId::ServiceAccount(sa.id.clone()),
        );
        store
            .create_service_account(&sa, Some(&k1), &[event("service_account.created")])
            .await
            .unwrap();
        let k2 = new_key(
            KeyKind::ServiceAccount,
            Some(p.id.clone()),
            KeyOwnerId::ServiceAccount(sa.id.clone()),
        );
        store.insert_key(&k2, &[]).await.unwrap();

        let got = store.key(&k1.id).await.unwrap().unwrap();
        assert_eq!(got.owner.name, "bot");
        assert_eq!(got.owner.role, "member");
        assert!(got.owner_active);

        let mut renamed = sa.clone();
        renamed.name = "robot".into();
        renamed.role = "owner".into();
        store.update_service_account(&renamed, &[]).await.unwrap();
        assert_eq!(
            store.service_account(&p.id, &sa.id).await.unwrap().unwrap(),
            renamed
        );

        let listed = store
            .list_service_accounts(&p.id, &page(10, None))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1);

        let mut revoked = store
            .delete_service_account(&p.id, &sa.id, 9, &[])
            .await
            .unwrap()
            .unwrap();
        revoked.sort();
        let mut expected = vec![k1.id.clone(), k2.id.clone()];
        expected.sort();
        assert_eq!(revoked, expected);
        assert!(store.key(&k1.id).await.unwrap().is_none());
        // A second delete finds nothing to delete.
        assert!(store
            .delete_service_account(&p.id, &sa.id, 10, &[])
            .await
            .unwrap()
            .is_none());
        assert!(store
            .service_account(&p.id, &sa.id)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .list_service_accounts(&p.id, &page(10, None))
            .await
            .unwrap()
            .items
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_failed_transaction_writes_no_audit_event() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let k = new_key(
            KeyKind::Project,
            Some(p.id.clone()),
            KeyOwnerId::User(owner.id.clone()),
        );
        store.insert_key(&k, &[]).await.unwrap();
        let before = store
            .list_audit_events(&page(100, None))
            .await
            .unwrap()
            .items
            .len();
        // Same id again: the insert fails, and so must its audit event.
        let err = store
            .insert_key(&k, &[event("api_key.created")])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let after = store
            .list_audit_events(&page(100, None))
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(before, after);
    })
    .await;
}

#[tokio::test]
async fn audit_log_is_newest_first_by_time_even_when_written_out_of_order() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let mut late = event("api_key.created");
        late.effective_at = 2_000_000_000;
        let mut early = event("api_key.deleted");
        early.effective_at = 1_999_999_999;
        // The later event is written first.
        let k = new_key(
            KeyKind::Project,
            Some(p.id.clone()),
            KeyOwnerId::User(owner.id.clone()),
        );
        store.insert_key(&k, &[late.clone()]).await.unwrap();
        store.delete_key(&k.id, 3, &[early.clone()]).await.unwrap();
        let first = store.list_audit_events(&page(1, None)).await.unwrap();
        assert_eq!(first.items[0].id, late.id);
        let second = store
            .list_audit_events(&page(1, Some(late.id.clone())))
            .await
            .unwrap();
        assert_eq!(second.items[0].id, early.id);
    })
    .await;
}

#[tokio::test]
async fn keys_by_ids_returns_the_live_keys_among_many() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let ids = project_keys(&store, &p, &owner, 3).await;
        store.delete_key(&ids[1], 20, &[]).await.unwrap();
        // An id that was never stored is simply absent.
        let (_, unknown) = KeyHasher::new(None).generate(KeyKind::Project);
        let mut asked = ids.clone();
        asked.push(unknown.id);
        let mut found: Vec<_> = store
            .keys_by_ids(&asked)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        found.sort();
        let mut expected = vec![ids[0].clone(), ids[2].clone()];
        expected.sort();
        assert_eq!(found, expected);
        // Each is what `key` returns.
        let one = store.keys_by_ids(&ids[..1]).await.unwrap();
        assert_eq!(one, vec![store.key(&ids[0]).await.unwrap().unwrap()]);
        assert!(store.keys_by_ids(&[]).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn recently_used_keys_come_most_recent_first_then_newest() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let ids = project_keys(&store, &p, &owner, 3).await;
        store
            .record_key_use(&[(ids[0].clone(), 100), (ids[2].clone(), 200)])
            .await
            .unwrap();
        let order = |keys: Vec<keyplane_core::model::ApiKey>| {
            keys.into_iter().map(|k| k.id).collect::<Vec<_>>()
        };
        // Used keys by last use, then never-used ones newest first (the setup's keys after).
        let all = order(store.recently_used_keys(100).await.unwrap());
        assert_eq!(all[..3], [ids[2].clone(), ids[0].clone(), ids[1].clone()]);
        assert_eq!(
            order(store.recently_used_keys(1).await.unwrap()),
            [ids[2].clone()]
        );
        // Each is what `key` returns; a revoked key is never loaded.
        let first = store.recently_used_keys(1).await.unwrap();
        assert_eq!(first, vec![store.key(&ids[2]).await.unwrap().unwrap()]);
        store.delete_key(&ids[2], 300, &[]).await.unwrap();
        let all = order(store.recently_used_keys(100).await.unwrap());
        assert!(!all.contains(&ids[2]));
        assert_eq!(all[0], ids[0]);
    })
    .await;
}

#[tokio::test]
async fn the_change_feed_pushes_on_postgres_and_is_absent_on_sqlite() {
    use keyplane_core::ports::ChangeFeed;
    on_both(|store| async move {
        let Some(mut sub) = store.subscribe().await.unwrap() else {
            assert_eq!(store.db().backend(), "sqlite");
            // Publishing without listeners is harmless.
            store.publish("x").await.unwrap();
            return;
        };
        assert_eq!(store.db().backend(), "postgres");
        store.publish(r#"{"hello":1}"#).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
            .await
            .expect("a notification arrives")
            .unwrap();
        assert_eq!(got.as_deref(), Some(r#"{"hello":1}"#));
    })
    .await;
}

#[tokio::test]
async fn every_audited_write_moves_the_revision_once_and_nothing_else_does() {
    use keyplane_core::ports::ChangeFeed;
    on_both(|store| async move {
        assert_eq!(store.revision().await.unwrap(), 0);
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        assert_eq!(store.revision().await.unwrap(), 2);
        // A write passed no events moves it too.
        let ids = project_keys(&store, &p, &owner, 1).await;
        assert_eq!(store.revision().await.unwrap(), 3);
        // Neither reads nor a key's use, nor a write that changed nothing or failed.
        store
            .record_key_use(&[(ids[0].clone(), 100)])
            .await
            .unwrap();
        store.keys_by_ids(&ids).await.unwrap();
        let again = new_key(
            KeyKind::Project,
            Some(p.id.clone()),
            KeyOwnerId::User(owner.id.clone()),
        );
        store.insert_key(&again, &[]).await.unwrap();
        assert!(store
            .insert_key(&again, &[event("api_key.created")])
            .await
            .is_err());
        assert_eq!(store.revision().await.unwrap(), 4);
        assert!(store.delete_key(&ids[0], 20, &[]).await.unwrap());
        assert!(!store.delete_key(&ids[0], 21, &[]).await.unwrap());
        assert_eq!(store.revision().await.unwrap(), 5);
        // Concurrent writes each count once (PostgreSQL: none lost, none deadlocked).
        let mut writes = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = store.clone();
            let k = new_key(
                KeyKind::Project,
                Some(p.id.clone()),
                KeyOwnerId::User(owner.id.clone()),
            );
            writes.spawn(async move { store.insert_key(&k, &[event("api_key.created")]).await });
        }
        while let Some(done) = writes.join_next().await {
            done.unwrap().unwrap();
        }
        assert_eq!(store.revision().await.unwrap(), 13);
    })
    .await;
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused_with_a_clear_message() {
    on_both(|store| async move {
        let insert = "INSERT INTO _sqlx_migrations \
                      (version, description, success, checksum, execution_time) \
                      VALUES (99990101, 'from the future', TRUE, $1, 0)";
        match store.db() {
            keyplane_store::Db::Sqlite(pool) => sqlx::query(insert)
                .bind(vec![0u8; 48])
                .execute(pool)
                .await
                .map(|_| ()),
            keyplane_store::Db::Postgres(pool) => sqlx::query(insert)
                .bind(vec![0u8; 48])
                .execute(pool)
                .await
                .map(|_| ()),
        }
        .unwrap();
        let err = store.db().migrate().await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                keyplane_store::ConnectError::SchemaTooNew {
                    found: 99990101,
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains("newer than this Keyplane knows"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn key_batches_of_every_chunk_size_reach_every_key() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        // 87 = 64 + 16 + 4 + 1 + 1 + 1: every statement size below 256, some repeated.
        let ids = project_keys(&store, &p, &owner, 87).await;
        let used: Vec<_> = ids.iter().map(|id| (id.clone(), 500)).collect();
        store.record_key_use(&used).await.unwrap();
        let keys = store.keys_by_ids(&ids).await.unwrap();
        assert_eq!(keys.len(), 87);
        assert!(keys.iter().all(|k| k.last_used_at == Some(500)));
        let mut found: Vec<_> = keys.into_iter().map(|k| k.id).collect();
        found.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(found, expected);
    })
    .await;
}
