//! Dashboard sessions and sign-in lookups, on both databases.

use crate::harness::on_both;
use keyplane_core::audit::{AuditCursor, AuditFilter, AuditQuery};
use keyplane_core::ids::{OrgId, UserId};
use keyplane_core::keys::{KeyHasher, KeyKind};
use keyplane_core::model::{AuditEvent, KeyOwnerId, NewApiKey, OrgRole, Organization, User};
use keyplane_core::pagination::Limit;
use keyplane_core::people::OwnerCredential;
use keyplane_core::ports::{AuditStore, OrgStore, SessionStore};
use keyplane_core::scopes::Permissions;
use keyplane_core::sessions::{Session, IDLE_SECONDS};
use keyplane_store::Store;
use serde_json::json;

async fn owner_with_password(store: &Store) -> User {
    let owner = User {
        id: UserId::generate(),
        email: "Owner@Example.com".into(),
        name: "owner".into(),
        role: OrgRole::Owner,
        added_at: 1,
    };
    let (_, m) = KeyHasher::new(None).generate(KeyKind::Admin);
    let key = NewApiKey {
        id: m.id,
        kind: KeyKind::Admin,
        project_id: None,
        name: "k".into(),
        redacted_value: m.redacted_value,
        hash: m.hash,
        permissions: Permissions::All,
        owner: KeyOwnerId::User(owner.id.clone()),
        created_at: 1,
        expires_at: None,
    };
    let org = Organization {
        id: OrgId::generate().to_string(),
        name: "Org".into(),
        created_at: 1,
    };
    let credential = OwnerCredential::PasswordHash("$argon2id$fake".into());
    store
        .initialize_with(&org, &owner, &credential, &key, &[])
        .await
        .unwrap();
    owner
}

fn event(kind: &str) -> AuditEvent {
    AuditEvent::new(kind, None, json!({"type": "test"}), json!({}))
}

async fn event_types(store: &Store) -> Vec<String> {
    let page = store
        .query_audit_events(&AuditQuery {
            filter: AuditFilter::default(),
            limit: Limit::parse(Some(100)).unwrap(),
            cursor: AuditCursor::Newest,
        })
        .await
        .unwrap();
    page.items.into_iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn sessions_rotate_resolve_and_end() {
    on_both(|store| async move {
        let owner = owner_with_password(&store).await;
        let (user, hash) = store
            .user_credentials("  owner@EXAMPLE.com ")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.id, owner.id);
        assert_eq!(hash.as_deref(), Some("$argon2id$fake"));
        assert!(store
            .user_credentials("nobody@example.com")
            .await
            .unwrap()
            .is_none());

        let (_, first) = Session::start(owner.id.clone(), 100);
        store
            .create_session(&first, None, &[event("login.succeeded")])
            .await
            .unwrap();
        let (found, found_user) = store.session(&first.token_hash).await.unwrap().unwrap();
        assert_eq!(found, first);
        assert_eq!(found_user.id, owner.id);

        // Rotation: the new session replaces the old one in one transaction.
        let (_, second) = Session::start(owner.id.clone(), 200);
        store
            .create_session(&second, Some(&first.token_hash), &[])
            .await
            .unwrap();
        assert!(store.session(&first.token_hash).await.unwrap().is_none());

        store.touch_session(&second.token_hash, 500).await.unwrap();
        store.touch_session(&second.token_hash, 400).await.unwrap();
        let (touched, _) = store.session(&second.token_hash).await.unwrap().unwrap();
        assert_eq!(touched.last_seen_at, 500);

        assert!(store
            .delete_session(&second.token_hash, &[event("logout.succeeded")])
            .await
            .unwrap());
        assert!(!store
            .delete_session(&second.token_hash, &[event("logout.succeeded")])
            .await
            .unwrap());
        assert!(store.session(&second.token_hash).await.unwrap().is_none());

        store.record_events(&[event("login.failed")]).await.unwrap();
        let types = event_types(&store).await;
        assert_eq!(
            types.iter().filter(|t| *t == "logout.succeeded").count(),
            1,
            "{types:?}"
        );
        assert!(types.contains(&"login.failed".to_owned()));
        assert!(types.contains(&"login.succeeded".to_owned()));

        // Pruning removes idle and expired sessions only.
        let (_, idle) = Session::start(owner.id.clone(), 1_000);
        let (_, fresh) = Session::start(owner.id.clone(), 1_000 + IDLE_SECONDS);
        store.create_session(&idle, None, &[]).await.unwrap();
        store.create_session(&fresh, None, &[]).await.unwrap();
        let pruned = store
            .prune_sessions(1_001, 1_000 + IDLE_SECONDS)
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        assert!(store.session(&fresh.token_hash).await.unwrap().is_some());
    })
    .await;
}
