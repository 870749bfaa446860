//! Storage ports: one small trait per aggregate. The `keyplane-store` crate implements them
//! on SQLite and PostgreSQL; the server holds them as `Arc<dyn …>`.
//!
//! Every mutating method takes the audit events that describe it and writes them in the same
//! transaction as the change, so the log cannot miss a change nor record one that rolled back.

use crate::audit::{AuditCursor, AuditFilter, AuditQuery};
use crate::ids::{InviteId, ProjectId, ServiceAccountId, UserId};
use crate::keys::KeyId;
use crate::model::{
    ApiKey, AuditEvent, KeyUpdate, NewApiKey, OrgRole, Organization, OwnerAccessFilter, Project,
    ServiceAccount, User,
};
use crate::pagination::{Order, Page, PageRequest};
use crate::people::{Acceptance, Invite, InviteByToken, OwnerCredential, ProjectRole, ProjectUser};
use crate::policy::{ModelPermissions, RateLimitOverride, SpendAlert, SpendLimit};
use crate::sessions::Session;
use crate::time::UnixSeconds;
use crate::usage::{Folded, UsageFilter, UsageRow};
use async_trait::async_trait;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The `after` cursor names no item of this list.
    #[error("cursor '{0}' is not an id from this list")]
    UnknownCursor(String),
    /// A uniqueness or state rule of the database refused the change.
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached or failed; the message is for logs only.
    #[error("database error: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait OrgStore: Send + Sync {
    async fn organization(&self) -> StoreResult<Option<Organization>>;
    /// Creates the organization, its first owner and their admin key in one transaction.
    /// Fails with [`StoreError::Conflict`] when the database already holds an organization.
    async fn initialize(
        &self,
        org: &Organization,
        owner: &User,
        admin_key: &NewApiKey,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        self.initialize_with(org, owner, &OwnerCredential::None, admin_key, events)
            .await
    }
    /// [`OrgStore::initialize`], also storing how the owner signs in (password hash or a
    /// setup invite), in the same transaction.
    async fn initialize_with(
        &self,
        org: &Organization,
        owner: &User,
        credential: &OwnerCredential,
        admin_key: &NewApiKey,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// True when the database answers a trivial query.
    async fn ping(&self) -> bool;
}

#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates the project and makes `creator` its owner.
    async fn create_project(
        &self,
        project: &Project,
        creator: &UserId,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;
    async fn list_projects(
        &self,
        include_archived: bool,
        page: &PageRequest,
    ) -> StoreResult<Page<Project>>;
    /// Writes `name` and `external_key_id` of an active project.
    async fn update_project(&self, project: &Project, events: &[AuditEvent]) -> StoreResult<()>;
    async fn archive_project(
        &self,
        id: &ProjectId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// The user's role in the project (`owner`/`member`), if they are a member.
    async fn project_role(&self, project: &ProjectId, user: &UserId)
        -> StoreResult<Option<String>>;
}

/// Which keys a list returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyListFilter {
    Admin(Order),
    Project(ProjectId, OwnerAccessFilter),
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_key(&self, key: &NewApiKey, events: &[AuditEvent]) -> StoreResult<()>;
    /// A live (not deleted) key, with its owner and state.
    async fn key(&self, id: &KeyId) -> StoreResult<Option<ApiKey>>;
    async fn list_keys(
        &self,
        filter: &KeyListFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<ApiKey>>;
    async fn update_key(
        &self,
        id: &KeyId,
        update: &KeyUpdate,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// Revokes a live key; false when there was none.
    async fn delete_key(
        &self,
        id: &KeyId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Records `last_used_at` for a batch of keys (never moves it backwards).
    async fn record_key_use(&self, used: &[(KeyId, UnixSeconds)]) -> StoreResult<()>;
    /// The live keys among `ids` (deleted or unknown ids are simply absent), as [`KeyStore::key`]
    /// returns them; for reconciling a cache in batches.
    async fn keys_by_ids(&self, ids: &[KeyId]) -> StoreResult<Vec<ApiKey>>;
    /// Up to `limit` live keys, most recently used first (never-used keys last, newest first);
    /// for warming a cache at startup.
    async fn recently_used_keys(&self, limit: u32) -> StoreResult<Vec<ApiKey>>;
}

/// Tells the other instances sharing this database that something they may have cached
/// changed. PostgreSQL pushes (LISTEN/NOTIFY); SQLite has no push, and instances rely on
/// periodic reconciliation alone.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Sends `payload` to every listening instance (this one included).
    async fn publish(&self, payload: &str) -> StoreResult<()>;
    /// Starts listening; `None` when this backend cannot push.
    async fn subscribe(&self) -> StoreResult<Option<Box<dyn ChangeSubscription>>>;
    /// The store's revision: moved by every audited write, in its transaction. The same value
    /// read twice means no such write committed in between.
    async fn revision(&self) -> StoreResult<i64>;
}

#[async_trait]
pub trait ChangeSubscription: Send {
    /// The next payload. `Ok(None)`: the connection was lost and re-established, so messages
    /// may have been missed and the caller should reconcile.
    async fn next(&mut self) -> StoreResult<Option<String>>;
}

#[async_trait]
pub trait ServiceAccountStore: Send + Sync {
    /// Creates the service account and, when given, its first key.
    async fn create_service_account(
        &self,
        account: &ServiceAccount,
        key: Option<&NewApiKey>,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn service_account(
        &self,
        project: &ProjectId,
        id: &ServiceAccountId,
    ) -> StoreResult<Option<ServiceAccount>>;
    async fn list_service_accounts(
        &self,
        project: &ProjectId,
        page: &PageRequest,
    ) -> StoreResult<Page<ServiceAccount>>;
    async fn update_service_account(
        &self,
        account: &ServiceAccount,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// Deletes the account and revokes all its keys; returns the revoked key ids, or `None`
    /// when there was no live account to delete.
    async fn delete_service_account(
        &self,
        project: &ProjectId,
        id: &ServiceAccountId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<Option<Vec<KeyId>>>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Newest first, unfiltered.
    async fn list_audit_events(&self, page: &PageRequest) -> StoreResult<Page<AuditEvent>> {
        self.query_audit_events(&AuditQuery {
            filter: AuditFilter::default(),
            limit: page.limit,
            cursor: page
                .after
                .clone()
                .map_or(AuditCursor::Newest, AuditCursor::After),
        })
        .await
    }
    /// Newest first (also with a `before` cursor); `has_more` says whether more events lie
    /// in the walking direction.
    async fn query_audit_events(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>>;
    /// Retention: deletes events older than `before`; returns how many.
    async fn prune_audit_events(&self, before: UnixSeconds) -> StoreResult<u64>;
}

/// Users, invites and project memberships.
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// Live users, oldest first; with `emails`, only those (case-insensitive).
    async fn list_users(&self, emails: &[String], page: &PageRequest) -> StoreResult<Page<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Changes a live user's organization role; false when there is no such user. Refuses
    /// ([`StoreError::Conflict`]) to demote the last owner.
    async fn update_user_role(
        &self,
        id: &UserId,
        role: OrgRole,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Soft-deletes a user and removes their project memberships (their keys become
    /// inactive); false when there is no such user. Refuses to delete the last owner.
    async fn delete_user(
        &self,
        id: &UserId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;

    async fn create_invite(
        &self,
        invite: &Invite,
        token_hash: &str,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// A live (not deleted) invite to join.
    async fn invite(&self, id: &InviteId) -> StoreResult<Option<Invite>>;
    async fn list_invites(&self, page: &PageRequest) -> StoreResult<Page<Invite>>;
    /// Deletes a pending or expired invite; false when there is none. Refuses
    /// ([`StoreError::Conflict`]) an accepted one.
    async fn delete_invite(
        &self,
        id: &InviteId,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// The invite (or setup link) whose token hashes to `token_hash`, in any state.
    async fn invite_by_token(&self, token_hash: &str) -> StoreResult<Option<InviteByToken>>;
    /// Marks the invite accepted and creates the member (or sets the owner's password) with
    /// their project roles, in one transaction. Fails with [`StoreError::Conflict`], writing
    /// nothing, when the invite is no longer pending (e.g. a concurrent accept won) or the
    /// email already belongs to a member.
    async fn accept_invite(
        &self,
        acceptance: &Acceptance,
        events: &[AuditEvent],
    ) -> StoreResult<()>;

    async fn list_project_users(
        &self,
        project: &ProjectId,
        page: &PageRequest,
    ) -> StoreResult<Page<ProjectUser>>;
    async fn project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
    ) -> StoreResult<Option<ProjectUser>>;
    /// Adds a live user to the project; [`StoreError::Conflict`] when already a member.
    async fn add_project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: ProjectRole,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// False when the user is not a member.
    async fn update_project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
        role: ProjectRole,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// False when the user was not a member.
    async fn remove_project_user(
        &self,
        project: &ProjectId,
        user: &UserId,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait PolicyStore: Send + Sync {
    async fn rate_limit_overrides(
        &self,
        project: &ProjectId,
    ) -> StoreResult<Vec<RateLimitOverride>>;
    /// Replaces the stored override of `limit.model` (a `None` field keeps the default).
    async fn set_rate_limit(
        &self,
        project: &ProjectId,
        limit: &RateLimitOverride,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn model_permissions(&self, project: &ProjectId)
        -> StoreResult<Option<ModelPermissions>>;
    /// Sets (or with `None`, removes) the project's model permissions.
    async fn set_model_permissions(
        &self,
        project: &ProjectId,
        permissions: Option<&ModelPermissions>,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn spend_limit(&self, project: &ProjectId) -> StoreResult<Option<SpendLimit>>;
    async fn set_spend_limit(
        &self,
        project: &ProjectId,
        limit: Option<&SpendLimit>,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Records the rows' counters. They count in [`usage`](Self::usage) and
    /// [`cost_since`](Self::cost_since) from the moment this returns; rows of one identity
    /// recorded several times add up.
    async fn add_usage(&self, rows: &[UsageRow]) -> StoreResult<()>;
    /// Compacts recorded usage of minutes before `before`, at most `limit` (minute, project)
    /// groups, oldest first. Reads return the same figures before and after; this only makes
    /// them cheaper. Safe to run on several instances at once.
    async fn fold_usage(&self, before: i64, limit: usize) -> StoreResult<Folded>;
    /// Rows matching `filter`, summed per bucket of `bucket_seconds` (the row's `minute` is the
    /// bucket start), project, key and model.
    async fn usage(&self, filter: &UsageFilter, bucket_seconds: i64) -> StoreResult<Vec<UsageRow>>;
    /// Total cost in nano-USD since `since`, for one project or (with `None`) all.
    async fn cost_since(&self, project: Option<&ProjectId>, since: i64) -> StoreResult<i64>;
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    async fn create_alert(&self, alert: &SpendAlert, events: &[AuditEvent]) -> StoreResult<()>;
    async fn alert(&self, id: &str) -> StoreResult<Option<SpendAlert>>;
    /// Alerts of one project, or (with `None`) the organization's own alerts.
    async fn list_alerts(
        &self,
        project: Option<&ProjectId>,
        page: &PageRequest,
    ) -> StoreResult<Page<SpendAlert>>;
    /// Every live alert (for the evaluator).
    async fn all_alerts(&self) -> StoreResult<Vec<SpendAlert>>;
    async fn update_alert(&self, alert: &SpendAlert, events: &[AuditEvent]) -> StoreResult<()>;
    async fn delete_alert(
        &self,
        id: &str,
        at: UnixSeconds,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Records that `alert` fired for the period starting at `period_start`; false when it
    /// already had (so each threshold fires once per period, even across instances).
    async fn record_firing(
        &self,
        alert: &str,
        period_start: i64,
        at: UnixSeconds,
    ) -> StoreResult<bool>;
}

/// Dashboard sign-in: password lookups and sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// A live user by email (case-insensitive) with their Argon2id password hash, if set.
    async fn user_credentials(&self, email: &str) -> StoreResult<Option<(User, Option<String>)>>;
    /// Stores a new session (and deletes the one it `replaces`, at sign-in), writing `events`.
    async fn create_session(
        &self,
        session: &Session,
        replaces: Option<&str>,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// The session stored under `token_hash` with its live user (none when either is gone).
    async fn session(&self, token_hash: &str) -> StoreResult<Option<(Session, User)>>;
    /// Moves `last_seen_at` forward (idle expiry).
    async fn touch_session(&self, token_hash: &str, at: UnixSeconds) -> StoreResult<()>;
    /// Deletes one session; false when there was none.
    async fn delete_session(&self, token_hash: &str, events: &[AuditEvent]) -> StoreResult<bool>;
    /// Deletes sessions past `before` (idle or absolute); returns how many.
    async fn prune_sessions(&self, idle_before: UnixSeconds, now: UnixSeconds) -> StoreResult<u64>;
    /// Writes audit events about no stored change (a refused sign-in).
    async fn record_events(&self, events: &[AuditEvent]) -> StoreResult<()>;
}
