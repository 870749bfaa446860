//! Users, invites, project members and the audit log's filters, on both databases.

use crate::harness::on_both;
use keyplane_core::audit::{AuditCursor, AuditFilter, AuditQuery, TimeRange};
use keyplane_core::ids::{InviteId, OrgId, ProjectId, UserId};
use keyplane_core::keys::{KeyHasher, KeyKind};
use keyplane_core::model::{
    AuditEvent, KeyOwnerId, NewApiKey, OrgRole, Organization, OwnerAccessFilter, Project, User,
};
use keyplane_core::pagination::{Limit, PageRequest};
use keyplane_core::people::{
    hash_token, Acceptance, Invite, InviteProject, InvitePurpose, InviteToken, OwnerCredential,
    ProjectRole,
};
use keyplane_core::ports::{
    AuditStore, KeyListFilter, KeyStore, OrgStore, PeopleStore, ProjectStore, StoreError,
};
use keyplane_core::scopes::Permissions;
use keyplane_store::Store;
use serde_json::json;

fn page(limit: i64, after: Option<String>) -> PageRequest {
    PageRequest {
        limit: Limit::parse(Some(limit)).unwrap(),
        after,
    }
}

fn key_actor(key: &str, user: &str, email: &str) -> serde_json::Value {
    json!({"type": "api_key", "api_key": {"id": key, "type": "user",
        "user": {"id": user, "email": email}}})
}

fn event(kind: &str) -> AuditEvent {
    AuditEvent::new(kind, None, json!({"type": "test"}), json!({}))
}

fn user(email: &str, role: OrgRole) -> User {
    User {
        id: UserId::generate(),
        email: email.into(),
        name: email.split('@').next().unwrap().into(),
        role,
        added_at: 1,
    }
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

async fn init_with(store: &Store, credential: OwnerCredential) -> User {
    let owner = user("owner@example.com", OrgRole::Owner);
    let key = new_key(KeyKind::Admin, None, KeyOwnerId::User(owner.id.clone()));
    let org = Organization {
        id: OrgId::generate().to_string(),
        name: "Org".into(),
        created_at: 1,
    };
    store
        .initialize_with(&org, &owner, &credential, &key, &[event("user.added")])
        .await
        .unwrap();
    owner
}

async fn init(store: &Store) -> User {
    init_with(store, OwnerCredential::None).await
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
    store.create_project(&p, &owner.id, &[]).await.unwrap();
    p
}

fn invite(email: &str, role: OrgRole, projects: Vec<InviteProject>, expires_at: i64) -> Invite {
    Invite {
        id: InviteId::generate(),
        email: email.into(),
        role,
        projects,
        created_at: 1,
        expires_at,
        accepted_at: None,
    }
}

/// Creates an invite and accepts it; returns the new member.
async fn join(store: &Store, email: &str, role: OrgRole, projects: Vec<InviteProject>) -> User {
    let inv = invite(email, role, projects.clone(), i64::MAX / 2);
    let token = InviteToken::generate();
    store
        .create_invite(&inv, &token.hash(), &[event("invite.sent")])
        .await
        .unwrap();
    let member = user(email, role);
    store
        .accept_invite(
            &Acceptance {
                invite_id: inv.id.clone(),
                at: 100,
                user: member.clone(),
                purpose: InvitePurpose::Join,
                projects,
                password_hash: "$argon2id$test".into(),
            },
            &[event("invite.accepted")],
        )
        .await
        .unwrap();
    member
}

#[tokio::test]
async fn invites_are_single_use_and_create_the_member_with_their_projects() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let grants = vec![InviteProject {
            id: p.id.clone(),
            role: ProjectRole::Owner,
        }];
        let inv = invite(
            "Ana@Example.com",
            OrgRole::Reader,
            grants.clone(),
            i64::MAX / 2,
        );
        let token = InviteToken::generate();
        store
            .create_invite(&inv, &token.hash(), &[event("invite.sent")])
            .await
            .unwrap();
        // Found by the token's hash only.
        let found = store
            .invite_by_token(&hash_token(token.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.invite, inv);
        assert_eq!(found.purpose, InvitePurpose::Join);
        assert!(store
            .invite_by_token(&hash_token("kpinv_nope"))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            store.list_invites(&page(10, None)).await.unwrap().items,
            vec![inv.clone()]
        );

        let ana = user("Ana@Example.com", OrgRole::Reader);
        let acceptance = Acceptance {
            invite_id: inv.id.clone(),
            at: 100,
            user: ana.clone(),
            purpose: InvitePurpose::Join,
            projects: grants,
            password_hash: "$argon2id$x".into(),
        };
        store
            .accept_invite(&acceptance, &[event("invite.accepted")])
            .await
            .unwrap();
        assert_eq!(store.user(&ana.id).await.unwrap().unwrap(), ana);
        assert_eq!(
            store
                .user_by_email("ana@example.COM")
                .await
                .unwrap()
                .unwrap()
                .id,
            ana.id
        );
        let member = store.project_user(&p.id, &ana.id).await.unwrap().unwrap();
        assert_eq!(member.role, ProjectRole::Owner);
        assert_eq!(member.added_at, 100);
        assert_eq!(
            store.invite(&inv.id).await.unwrap().unwrap().accepted_at,
            Some(100)
        );

        // A second accept (e.g. a concurrent one) fails and creates nothing.
        let mut again = acceptance.clone();
        again.user = user("other@example.com", OrgRole::Reader);
        let err = store
            .accept_invite(&again, &[event("invite.accepted")])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert!(store.user(&again.user.id).await.unwrap().is_none());
        // Accepted invites cannot be deleted.
        let err = store.delete_invite(&inv.id, 5, &[]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        let accepted = store
            .query_audit_events(&AuditQuery {
                filter: AuditFilter {
                    event_types: vec!["invite.accepted".into()],
                    ..Default::default()
                },
                limit: Limit::parse(Some(10)).unwrap(),
                cursor: AuditCursor::Newest,
            })
            .await
            .unwrap();
        assert_eq!(accepted.items.len(), 1, "the failed accept wrote no event");
    })
    .await;
}

#[tokio::test]
async fn expired_deleted_and_duplicate_invites_create_nothing() {
    on_both(|store| async move {
        init(&store).await;
        let expired = invite("late@example.com", OrgRole::Reader, vec![], 50);
        store
            .create_invite(&expired, &InviteToken::generate().hash(), &[])
            .await
            .unwrap();
        let late = user("late@example.com", OrgRole::Reader);
        let accept = |id: &InviteId, u: &User| Acceptance {
            invite_id: id.clone(),
            at: 100,
            user: u.clone(),
            purpose: InvitePurpose::Join,
            projects: vec![],
            password_hash: "h".into(),
        };
        assert!(store
            .accept_invite(&accept(&expired.id, &late), &[])
            .await
            .is_err());
        assert!(store.user(&late.id).await.unwrap().is_none());

        let withdrawn = invite("gone@example.com", OrgRole::Reader, vec![], i64::MAX / 2);
        store
            .create_invite(&withdrawn, &InviteToken::generate().hash(), &[])
            .await
            .unwrap();
        assert!(store
            .delete_invite(&withdrawn.id, 5, &[event("invite.deleted")])
            .await
            .unwrap());
        assert!(!store.delete_invite(&withdrawn.id, 6, &[]).await.unwrap());
        assert!(store.invite(&withdrawn.id).await.unwrap().is_none());
        let gone = user("gone@example.com", OrgRole::Reader);
        assert!(store
            .accept_invite(&accept(&withdrawn.id, &gone), &[])
            .await
            .is_err());

        // An email that already belongs to a member: the whole acceptance rolls back.
        let dup = invite("OWNER@example.com", OrgRole::Reader, vec![], i64::MAX / 2);
        store
            .create_invite(&dup, &InviteToken::generate().hash(), &[])
            .await
            .unwrap();
        let twin = user("OWNER@example.com", OrgRole::Reader);
        let err = store
            .accept_invite(&accept(&dup.id, &twin), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert_eq!(
            store.invite(&dup.id).await.unwrap().unwrap().accepted_at,
            None
        );
    })
    .await;
}

#[tokio::test]
async fn the_owner_setup_link_sets_a_password_once() {
    on_both(|store| async move {
        let token = InviteToken::generate();
        let setup = invite("owner@example.com", OrgRole::Owner, vec![], i64::MAX / 2);
        let owner = init_with(
            &store,
            OwnerCredential::SetupInvite {
                invite: setup.clone(),
                token_hash: token.hash(),
            },
        )
        .await;
        let found = store.invite_by_token(&token.hash()).await.unwrap().unwrap();
        assert_eq!(found.purpose, InvitePurpose::SetPassword(owner.id.clone()));
        // Setup links are not invites.
        assert!(store
            .list_invites(&page(10, None))
            .await
            .unwrap()
            .items
            .is_empty());
        assert!(store.invite(&setup.id).await.unwrap().is_none());
        let mut named = owner.clone();
        named.name = "Olga".into();
        let acceptance = Acceptance {
            invite_id: setup.id.clone(),
            at: 100,
            user: named,
            purpose: found.purpose.clone(),
            projects: vec![],
            password_hash: "$argon2id$set".into(),
        };
        store.accept_invite(&acceptance, &[]).await.unwrap();
        assert_eq!(store.user(&owner.id).await.unwrap().unwrap().name, "Olga");
        assert!(store.accept_invite(&acceptance, &[]).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn the_last_owner_stays() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let err = store
            .update_user_role(&owner.id, OrgRole::Reader, &[event("user.updated")])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        let err = store.delete_user(&owner.id, 5, &[]).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));

        let second = join(&store, "second@example.com", OrgRole::Reader, vec![]).await;
        assert!(store
            .update_user_role(&second.id, OrgRole::Owner, &[])
            .await
            .unwrap());
        // Now the first owner may step down, but then the second is the last one.
        assert!(store
            .update_user_role(&owner.id, OrgRole::Reader, &[])
            .await
            .unwrap());
        assert!(store.delete_user(&second.id, 5, &[]).await.is_err());
        assert_eq!(
            store.user(&owner.id).await.unwrap().unwrap().role,
            OrgRole::Reader
        );
        assert!(!store
            .update_user_role(&UserId::generate(), OrgRole::Owner, &[])
            .await
            .unwrap());
    })
    .await;
}

#[tokio::test]
async fn users_list_with_email_filter_and_deletion_deactivates_keys() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let member = join(
            &store,
            "Member@Example.com",
            OrgRole::Reader,
            vec![InviteProject {
                id: p.id.clone(),
                role: ProjectRole::Member,
            }],
        )
        .await;
        let other = join(&store, "other@example.com", OrgRole::Reader, vec![]).await;

        let all = store.list_users(&[], &page(10, None)).await.unwrap();
        assert_eq!(all.items.len(), 3);
        let first = store.list_users(&[], &page(1, None)).await.unwrap();
        assert!(first.has_more);
        let rest = store
            .list_users(&[], &page(10, Some(first.items[0].id.to_string())))
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 2);
        let some = store
            .list_users(
                &["member@example.com".into(), "OTHER@example.com".into()],
                &page(10, None),
            )
            .await
            .unwrap();
        let ids: Vec<_> = some.items.iter().map(|u| u.id.clone()).collect();
        assert_eq!(ids, vec![member.id.clone(), other.id.clone()]);

        let key = new_key(
            KeyKind::Project,
            Some(p.id.clone()),
            KeyOwnerId::User(member.id.clone()),
        );
        store.insert_key(&key, &[]).await.unwrap();
        assert!(store.key(&key.id).await.unwrap().unwrap().owner_active);

        assert!(store
            .delete_user(&member.id, 7, &[event("user.deleted")])
            .await
            .unwrap());
        assert!(!store.delete_user(&member.id, 8, &[]).await.unwrap());
        assert!(store.user(&member.id).await.unwrap().is_none());
        assert!(!store.key(&key.id).await.unwrap().unwrap().owner_active);
        assert!(store
            .project_user(&p.id, &member.id)
            .await
            .unwrap()
            .is_none());
        let inactive = store
            .list_keys(
                &KeyListFilter::Project(p.id.clone(), OwnerAccessFilter::Inactive),
                &page(10, None),
            )
            .await
            .unwrap();
        assert_eq!(inactive.items.len(), 1);
        // The email is free again for a new invite.
        join(&store, "member@example.com", OrgRole::Reader, vec![]).await;
    })
    .await;
}

#[tokio::test]
async fn project_membership_controls_key_access() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        let bo = join(&store, "bo@example.com", OrgRole::Reader, vec![]).await;
        store
            .add_project_user(
                &p.id,
                &bo.id,
                ProjectRole::Member,
                20,
                &[event("user.added")],
            )
            .await
            .unwrap();
        let err = store
            .add_project_user(&p.id, &bo.id, ProjectRole::Owner, 21, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        let key = new_key(
            KeyKind::Project,
            Some(p.id.clone()),
            KeyOwnerId::User(bo.id.clone()),
        );
        store.insert_key(&key, &[]).await.unwrap();
        let k = store.key(&key.id).await.unwrap().unwrap();
        assert!(k.owner_active);
        assert_eq!(k.owner.role, "member");

        assert!(store
            .update_project_user(&p.id, &bo.id, ProjectRole::Owner, &[])
            .await
            .unwrap());
        assert_eq!(
            store.key(&key.id).await.unwrap().unwrap().owner.role,
            "owner"
        );
        let members = store
            .list_project_users(&p.id, &page(10, None))
            .await
            .unwrap();
        assert_eq!(members.items.len(), 2, "the creator and bo");
        let after_first = store
            .list_project_users(&p.id, &page(1, Some(members.items[0].user.id.to_string())))
            .await
            .unwrap();
        assert_eq!(after_first.items[0].user.id, bo.id);

        assert!(store.remove_project_user(&p.id, &bo.id, &[]).await.unwrap());
        assert!(!store.remove_project_user(&p.id, &bo.id, &[]).await.unwrap());
        assert!(!store.key(&key.id).await.unwrap().unwrap().owner_active);
        store
            .add_project_user(&p.id, &bo.id, ProjectRole::Member, 30, &[])
            .await
            .unwrap();
        assert!(store.key(&key.id).await.unwrap().unwrap().owner_active);
        assert!(!store
            .update_project_user(&p.id, &UserId::generate(), ProjectRole::Owner, &[])
            .await
            .unwrap());
    })
    .await;
}

fn at(mut e: AuditEvent, t: i64, project: Option<&ProjectId>) -> AuditEvent {
    e.effective_at = t;
    e.project_id = project.map(|p| p.to_string());
    e
}

fn query(filter: AuditFilter, limit: i64, cursor: AuditCursor) -> AuditQuery {
    AuditQuery {
        filter,
        limit: Limit::parse(Some(limit)).unwrap(),
        cursor,
    }
}

#[tokio::test]
async fn audit_filters_run_on_indexed_columns() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p1 = project(&store, &owner).await;
        let p2 = project(&store, &owner).await;
        let ana = key_actor("key_ana", "user-ana", "Ana@Example.com");
        let bo = key_actor("key_bo", "user-bo", "bo@example.com");
        let events = vec![
            at(
                AuditEvent::new(
                    "project.updated",
                    None,
                    ana.clone(),
                    json!({"id": p1.id.as_str()}),
                ),
                1000,
                Some(&p1.id),
            ),
            at(
                AuditEvent::new("api_key.created", None, bo.clone(), json!({"id": "key_x"})),
                1001,
                Some(&p1.id),
            ),
            at(
                AuditEvent::new("api_key.deleted", None, ana.clone(), json!({"id": "key_x"})),
                1002,
                Some(&p2.id),
            ),
            at(
                AuditEvent::new("user.added", None, bo.clone(), json!({"id": "user-new"})),
                1003,
                None,
            ),
        ];
        // All written in one transaction, in this order.
        store.update_project(&p1, &events).await.unwrap();
        let ids = |page: keyplane_core::pagination::Page<AuditEvent>| -> Vec<String> {
            page.items.into_iter().map(|e| e.event_type).collect()
        };
        let run = |f: AuditFilter| {
            let store = store.clone();
            async move {
                ids(store
                    .query_audit_events(&query(f, 100, AuditCursor::Newest))
                    .await
                    .unwrap())
            }
        };
        let window = TimeRange {
            gte: Some(1000),
            lte: Some(1003),
            ..Default::default()
        };
        let base = AuditFilter {
            effective_at: window,
            ..Default::default()
        };
        assert_eq!(
            run(base.clone()).await,
            vec![
                "user.added",
                "api_key.deleted",
                "api_key.created",
                "project.updated"
            ]
        );
        let f = |g: &dyn Fn(&mut AuditFilter)| {
            let mut f = base.clone();
            g(&mut f);
            f
        };
        assert_eq!(
            run(f(&|f| f.project_ids = vec![p1.id.to_string()])).await,
            vec!["api_key.created", "project.updated"]
        );
        assert_eq!(
            run(f(
                &|f| f.event_types = vec!["api_key.created".into(), "api_key.deleted".into()]
            ))
            .await,
            vec!["api_key.deleted", "api_key.created"]
        );
        // Actor ids match the user and the key used.
        assert_eq!(
            run(f(&|f| f.actor_ids = vec!["user-ana".into()])).await,
            vec!["api_key.deleted", "project.updated"]
        );
        assert_eq!(
            run(f(&|f| f.actor_ids = vec!["key_bo".into()])).await,
            vec!["user.added", "api_key.created"]
        );
        assert_eq!(
            run(f(&|f| f.actor_emails = vec!["ANA@example.com".into()])).await,
            vec!["api_key.deleted", "project.updated"]
        );
        assert_eq!(
            run(f(&|f| f.resource_ids = vec!["key_x".into()])).await,
            vec!["api_key.deleted", "api_key.created"]
        );
        assert_eq!(
            run(f(&|f| {
                f.effective_at = TimeRange {
                    gt: Some(1000),
                    lt: Some(1003),
                    ..Default::default()
                };
            }))
            .await,
            vec!["api_key.deleted", "api_key.created"]
        );
        // Combined filters are ANDed.
        assert_eq!(
            run(f(&|f| {
                f.actor_emails = vec!["bo@example.com".into()];
                f.project_ids = vec![p1.id.to_string()];
            }))
            .await,
            vec!["api_key.created"]
        );
        assert!(run(f(&|f| f.resource_ids = vec!["nothing".into()]))
            .await
            .is_empty());

        // Pages both ways, newest first, on the (effective_at, seq) keyset.
        let first = store
            .query_audit_events(&query(base.clone(), 2, AuditCursor::Newest))
            .await
            .unwrap();
        assert!(first.has_more);
        let last_id = first.items[1].id.clone();
        let second = store
            .query_audit_events(&query(base.clone(), 2, AuditCursor::After(last_id)))
            .await
            .unwrap();
        assert_eq!(
            ids(second.clone()),
            vec!["api_key.created", "project.updated"]
        );
        assert!(!second.has_more);
        let back = store
            .query_audit_events(&query(
                base.clone(),
                2,
                AuditCursor::Before(second.items[0].id.clone()),
            ))
            .await
            .unwrap();
        assert_eq!(ids(back.clone()), vec!["user.added", "api_key.deleted"]);
        assert!(!back.has_more);
        let back1 = store
            .query_audit_events(&query(
                base.clone(),
                1,
                AuditCursor::Before(second.items[0].id.clone()),
            ))
            .await
            .unwrap();
        assert_eq!(ids(back1.clone()), vec!["api_key.deleted"]);
        assert!(back1.has_more);
        let err = store
            .query_audit_events(&query(
                base,
                2,
                AuditCursor::Before("audit_log-nope".into()),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownCursor(_)));
    })
    .await;
}

#[tokio::test]
async fn retention_prunes_only_old_events() {
    on_both(|store| async move {
        let owner = init(&store).await;
        let p = project(&store, &owner).await;
        store
            .update_project(
                &p,
                &[
                    at(event("project.updated"), 10, None),
                    at(event("project.updated"), 5_000, None),
                ],
            )
            .await
            .unwrap();
        let before = store
            .list_audit_events(&page(100, None))
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(store.prune_audit_events(100).await.unwrap(), 1);
        let after = store
            .list_audit_events(&page(100, None))
            .await
            .unwrap()
            .items;
        assert_eq!(after.len(), before - 1);
        assert!(after.iter().all(|e| e.effective_at >= 100));
    })
    .await;
}

#[tokio::test]
async fn events_from_before_the_filter_columns_are_backfilled() {
    on_both(|store| async move {
        init(&store).await;
        let sql = "INSERT INTO audit_events (id, event_type, effective_at, actor, details) \
                   VALUES ('audit_log-old', 'api_key.deleted', 5, $1, $2)";
        let actor = key_actor("key_a", "user-a", "A@Example.com").to_string();
        let details = json!({"id": "key_old"}).to_string();
        match store.db() {
            keyplane_store::Db::Sqlite(p) => sqlx::query(sql)
                .bind(&actor)
                .bind(&details)
                .execute(p)
                .await
                .map(|_| ()),
            keyplane_store::Db::Postgres(p) => sqlx::query(sql)
                .bind(&actor)
                .bind(&details)
                .execute(p)
                .await
                .map(|_| ()),
        }
        .unwrap();
        assert_eq!(store.backfill_audit_index().await.unwrap(), 1);
        assert_eq!(store.backfill_audit_index().await.unwrap(), 0);
        let found = store
            .query_audit_events(&query(
                AuditFilter {
                    resource_ids: vec!["key_old".into()],
                    actor_emails: vec!["a@example.com".into()],
                    actor_ids: vec!["key_a".into()],
                    ..Default::default()
                },
                10,
                AuditCursor::Newest,
            ))
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);
        assert_eq!(found.items[0].index.actor_id.as_deref(), Some("user-a"));
    })
    .await;
}

/// Two instances on one SQLite file: a read-then-write transaction (initialization checks
/// for an organization, then inserts one) that starts while the other instance holds the write
/// lock waits for it instead of failing with "database is locked".
#[tokio::test]
async fn sqlite_transaction_waits_for_another_instances_write_lock() {
    let (store, dir) = crate::harness::sqlite().await;
    let url = format!("sqlite://{}", dir.join("test.db").display());
    let other = keyplane_store::Db::connect(&url, &keyplane_store::PoolSettings::default())
        .await
        .unwrap();
    let keyplane_store::Db::Sqlite(pool) = &other else {
        unreachable!("a sqlite:// URL opens SQLite")
    };
    let mut held = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("CREATE TABLE other_instance_was_here (x INTEGER)")
        .execute(&mut *held)
        .await
        .unwrap();
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { init(&store).await })
    };
    // Let initialization reach the lock, then release it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    held.commit().await.unwrap();
    let owner = waiting
        .await
        .expect("initialization succeeds once the lock is free");
    assert_eq!(
        store.user(&owner.id).await.unwrap().unwrap().email,
        owner.email
    );
    other.close().await;
    store.db().close().await;
    let _ = std::fs::remove_dir_all(dir);
}
