//! OpenAI Admin API wire shapes (requests, responses, errors) as Keyplane serves them.
//! Field names, `object` strings and nullability follow OpenAI's published spec; fields marked
//! *extension* are Keyplane's additions and are ignored by clients that do not know them.

use serde::{Deserialize, Serialize};

/// `{"object":"list","data":[…],"first_id","last_id","has_more"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct List<T> {
    pub object: String,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// An item of a list, so the envelope can name its first and last ids.
pub trait HasId {
    fn id(&self) -> &str;
}

impl<T: HasId> List<T> {
    pub fn new(data: Vec<T>, has_more: bool) -> Self {
        Self {
            object: "list".to_owned(),
            first_id: data.first().map(|d| d.id().to_owned()),
            last_id: data.last().map(|d| d.id().to_owned()),
            data,
            has_more,
        }
    }
}

macro_rules! has_id {
    ($($t:ty),*) => { $(impl HasId for $t { fn id(&self) -> &str { &self.id } })* };
}

/// `{"id","object":"….deleted","deleted":true}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deleted {
    pub object: String,
    pub id: String,
    pub deleted: bool,
}

// ---------- errors ----------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

// ---------- admin API keys ----------

/// The flat owner object of an admin key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminApiKeyOwner {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: String,
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminApiKey {
    pub object: String,
    pub id: String,
    pub name: Option<String>,
    pub redacted_value: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub owner: AdminApiKeyOwner,
    /// Extension: `null` for all permissions, otherwise the scope list.
    pub scopes: Option<Vec<String>>,
    /// Only in the create response.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateAdminApiKey {
    pub name: String,
    pub expires_in_seconds: Option<i64>,
    /// Extension: restrict the key, e.g. `["api.management.read"]`.
    pub scopes: Option<Vec<String>>,
}

// ---------- projects ----------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub object: String,
    pub name: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub external_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub residency: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateProject {
    pub name: String,
    pub residency: Option<String>,
    pub external_key_id: Option<String>,
    /// Sent by newer SDKs; accepted and ignored (no geography routing in Keyplane).
    pub geography: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModifyProject {
    pub name: Option<String>,
    pub external_key_id: Option<String>,
    pub geography: Option<String>,
}

// ---------- project API keys ----------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectApiKeyOwnerUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: i64,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectApiKeyOwnerServiceAccount {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectApiKeyOwner {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<ProjectApiKeyOwnerUser>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_account: Option<ProjectApiKeyOwnerServiceAccount>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectApiKey {
    pub object: String,
    pub id: String,
    pub name: String,
    pub redacted_value: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub owner: ProjectApiKeyOwner,
    pub owner_project_access: String,
    /// Extension: `null` for all permissions, otherwise the scope list.
    pub scopes: Option<Vec<String>>,
    /// Extension: only in the create response.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
}

/// Extension: `POST /organization/projects/{project_id}/api_keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectApiKey {
    pub name: String,
    pub scopes: Option<Vec<String>>,
    pub expires_in_seconds: Option<i64>,
    /// Extension: the project member who owns the key (default: the caller's own user).
    /// Creating a key for someone else needs the project owner role.
    pub user_id: Option<String>,
}

/// `POST /organization/projects/{project_id}/api_keys/{key_id}`. `expires_in_seconds: null`
/// removes the expiry; an absent field is left as it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectApiKey {
    pub name: Option<String>,
    /// `null` restores all permissions; an absent field leaves them as they are.
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub expires_in_seconds: Option<Option<i64>>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---------- service accounts ----------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub object: String,
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccountApiKey {
    pub object: String,
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub value: String,
    /// Extension.
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccountCreated {
    pub object: String,
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub api_key: Option<ServiceAccountApiKey>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateServiceAccount {
    pub name: String,
    pub create_service_account_only: Option<bool>,
    pub expires_in_seconds: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModifyServiceAccount {
    pub name: Option<String>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateServiceAccountApiKey {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub expires_in_seconds: Option<i64>,
}

// ---------- users ----------

/// `organization.user`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub object: String,
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub added_at: i64,
}

/// `POST /organization/users/{user_id}`: only `role` has an effect; the other fields the
/// SDKs may send are accepted and ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModifyUser {
    pub role: Option<String>,
    pub role_id: Option<String>,
    pub technical_level: Option<String>,
    pub developer_persona: Option<String>,
}

// ---------- invites ----------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InviteProject {
    pub id: String,
    pub role: String,
}

/// `organization.invite`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invite {
    pub object: String,
    pub id: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub accepted_at: Option<i64>,
    pub projects: Vec<InviteProject>,
    /// Extension, only in the create response: the single-use link to accept the invite.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accept_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateInvite {
    pub email: String,
    pub role: String,
    /// Omitted or `[]`: no project.
    pub projects: Option<Vec<InviteProject>>,
}

/// Extension: `POST /v1/invites/accept`. `name` is required for an invite and optional for
/// the first owner's setup link.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvite {
    pub token: String,
    pub name: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for AcceptInvite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptInvite")
            .field("token", &"[REDACTED]")
            .field("name", &self.name)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

// ---------- project users ----------

/// `organization.project.user`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectUser {
    pub object: String,
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub added_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateProjectUser {
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub role: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ModifyProjectUser {
    pub role: Option<String>,
}

has_id!(
    AdminApiKey,
    Project,
    ProjectApiKey,
    ServiceAccount,
    User,
    Invite,
    ProjectUser
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_invite_debug_hides_the_secrets() {
        let a: AcceptInvite = serde_json::from_str(
            r#"{"token":"kpinv_secret","name":"Ana","password":"hunter2hunter2"}"#,
        )
        .unwrap();
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("kpinv_secret") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
