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
use crate::time::UnixSeconds;
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
