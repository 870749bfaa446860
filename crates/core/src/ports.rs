//! Storage ports: one small trait per aggregate. The `keyplane-store` crate implements them
//! on SQLite and PostgreSQL; the server holds them as `Arc<dyn …>`.
//!
//! Every mutating method takes the audit events that describe it and writes them in the same
//! transaction as the change, so the log cannot miss a change nor record one that rolled back.

use crate::ids::{ProjectId, ServiceAccountId, UserId};
use crate::keys::KeyId;
use crate::model::{
    ApiKey, AuditEvent, KeyUpdate, NewApiKey, Organization, OwnerAccessFilter, Project,
    ServiceAccount, User,
};
use crate::pagination::{Order, Page, PageRequest};
use crate::policy::{ModelPermissions, RateLimitOverride, SpendAlert, SpendLimit};
use crate::time::UnixSeconds;
use crate::usage::{UsageFilter, UsageRow};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
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
    /// Newest first.
    async fn list_audit_events(&self, page: &PageRequest) -> StoreResult<Page<AuditEvent>>;
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
    /// Adds the rows' counters to the stored minute rows (creating them as needed).
    async fn add_usage(&self, rows: &[UsageRow]) -> StoreResult<()>;
    /// Rows matching `filter`, summed per bucket of `bucket_seconds` (the row's `minute` is the
    /// bucket start), project, key and model.
    async fn usage(&self, filter: &UsageFilter, bucket_seconds: i64) -> StoreResult<Vec<UsageRow>>;
    /// Total cost in micro-USD since `since`, for one project or (with `None`) all.
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
