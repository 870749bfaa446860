//! Row shapes read back from SQL and their conversion into domain objects.

use keyplane_core::audit::AuditIndex;
use keyplane_core::ids::{ProjectId, ServiceAccountId, UserId};
use keyplane_core::keys::{KeyHash, KeyId, KeyKind};
use keyplane_core::model::{
    ApiKey, AuditEvent, KeyOwner, KeyOwnerId, OrgRole, Project, ServiceAccount, User,
};
use keyplane_core::ports::StoreError;
use keyplane_core::scopes::Permissions;

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    pub external_key_id: Option<String>,
    pub residency: Option<String>,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: ProjectId::from_trusted(r.id),
            name: r.name,
            created_at: r.created_at,
            archived_at: r.archived_at,
            external_key_id: r.external_key_id,
            residency: r.residency,
        }
    }
}

pub(crate) const PROJECT_COLUMNS: &str =
    "id, name, created_at, archived_at, external_key_id, residency";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub added_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: UserId::from_trusted(r.id),
            email: r.email,
            name: r.name,
            role: OrgRole::from_db(&r.role),
            added_at: r.added_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServiceAccountRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

impl From<ServiceAccountRow> for ServiceAccount {
    fn from(r: ServiceAccountRow) -> Self {
        ServiceAccount {
            id: ServiceAccountId::from_trusted(r.id),
            project_id: ProjectId::from_trusted(r.project_id),
            name: r.name,
            role: r.role,
            created_at: r.created_at,
        }
    }
}

/// A key joined with its owner and project state.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub id: String,
    pub kind: String,
    pub project_id: Option<String>,
    pub name: String,
    pub redacted_value: String,
    pub hash: String,
    pub scopes: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub owner_user_id: Option<String>,
    pub owner_service_account_id: Option<String>,
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
    pub owner_created_at: Option<i64>,
    pub owner_role: Option<String>,
    pub owner_active: i32,
    pub project_archived: i32,
}

/// The SELECT list and joins behind every key read. `owner_active` follows OpenAI's
/// `owner_project_access`: a service account's key is active while the account exists; a user's
/// key while the user exists and belongs to the project (org owners belong to every project).
pub(crate) const KEY_SELECT: &str = "\
SELECT k.id, k.kind, k.project_id, k.name, k.redacted_value, k.hash, k.scopes, \
       k.created_at, k.expires_at, k.last_used_at, k.owner_user_id, k.owner_service_account_id, \
       COALESCE(u.name, sa.name) AS owner_name, u.email AS owner_email, \
       COALESCE(u.added_at, sa.created_at) AS owner_created_at, \
       CASE WHEN k.owner_service_account_id IS NOT NULL THEN sa.role \
            WHEN k.kind = 'admin' THEN u.role \
            WHEN pu.role IS NOT NULL THEN pu.role \
            WHEN u.role = 'owner' THEN 'owner' \
            ELSE 'member' END AS owner_role, \
       CASE WHEN k.owner_service_account_id IS NOT NULL THEN \
                 CASE WHEN sa.deleted_at IS NULL THEN 1 ELSE 0 END \
            WHEN u.deleted_at IS NOT NULL THEN 0 \
            WHEN k.kind = 'admin' THEN 1 \
            WHEN pu.user_id IS NOT NULL OR u.role = 'owner' THEN 1 \
            ELSE 0 END AS owner_active, \
       CASE WHEN p.archived_at IS NULL THEN 0 ELSE 1 END AS project_archived \
FROM api_keys k \
LEFT JOIN users u ON u.id = k.owner_user_id \
LEFT JOIN service_accounts sa ON sa.id = k.owner_service_account_id \
LEFT JOIN project_users pu ON pu.project_id = k.project_id AND pu.user_id = k.owner_user_id \
LEFT JOIN projects p ON p.id = k.project_id ";

impl TryFrom<KeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Unavailable(format!("key {}: bad {what}", r.id));
        let kind = KeyKind::from_db(&r.kind).ok_or_else(|| corrupt("kind"))?;
        let hash = KeyHash::from_hex(&r.hash).ok_or_else(|| corrupt("hash"))?;
        let scopes: Option<Vec<String>> = match &r.scopes {
            None => None,
            Some(json) => Some(serde_json::from_str(json).map_err(|_| corrupt("scopes"))?),
        };
        let owner_id = match (r.owner_user_id, r.owner_service_account_id) {
            (Some(u), None) => KeyOwnerId::User(UserId::from_trusted(u)),
            (None, Some(s)) => KeyOwnerId::ServiceAccount(ServiceAccountId::from_trusted(s)),
            _ => return Err(corrupt("owner")),
        };
        Ok(ApiKey {
            id: KeyId::from_trusted(r.id),
            kind,
            project_id: r.project_id.map(ProjectId::from_trusted),
            name: r.name,
            redacted_value: r.redacted_value,
            hash,
            permissions: Permissions::from_stored(scopes),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            owner: KeyOwner {
                id: owner_id,
                name: r.owner_name.unwrap_or_default(),
                email: r.owner_email,
                created_at: r.owner_created_at.unwrap_or(0),
                role: r.owner_role.unwrap_or_else(|| "member".to_owned()),
            },
            owner_active: r.owner_active != 0,
            project_archived: r.project_archived != 0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: String,
    pub event_type: String,
    pub effective_at: i64,
    pub project_id: Option<String>,
    pub actor: String,
    pub details: String,
    pub actor_id: Option<String>,
    pub actor_key_id: Option<String>,
    pub actor_email: Option<String>,
    pub resource_id: Option<String>,
}

pub(crate) const AUDIT_COLUMNS: &str = "id, event_type, effective_at, project_id, actor, details, \
     actor_id, actor_key_id, actor_email, resource_id";

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            id: r.id,
            event_type: r.event_type,
            effective_at: r.effective_at,
            project_id: r.project_id,
            actor: serde_json::from_str(&r.actor).unwrap_or(serde_json::Value::Null),
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            index: AuditIndex {
                actor_id: r.actor_id,
                actor_key_id: r.actor_key_id,
                actor_email: r.actor_email,
                resource_id: r.resource_id,
            },
        }
    }
}
