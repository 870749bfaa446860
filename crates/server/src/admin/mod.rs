//! The Admin API: `/v1/organization/*`, wire-compatible with OpenAI's.

mod admin_keys;
mod audit_logs;
pub(crate) mod invites;
mod model_permissions;
pub(crate) mod project_keys;
pub(crate) mod project_users;
pub(crate) mod projects;
pub(crate) mod rate_limits;
pub(crate) mod service_accounts;
pub(crate) mod spend;
mod usage;
pub(crate) mod users;
pub(crate) mod views;

pub use invites::accept as accept_invite;

use crate::error::ApiError;
use crate::extract::int_param;
use crate::state::AppState;
use axum::routing::{get, post};
use axum::Router;
use keyplane_core::pagination::{Limit, PageRequest};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin_api_keys",
            get(admin_keys::list).post(admin_keys::create),
        )
        .route(
            "/admin_api_keys/{key_id}",
            get(admin_keys::retrieve).delete(admin_keys::delete),
        )
        .route("/projects", get(projects::list).post(projects::create))
        .route(
            "/projects/{project_id}",
            get(projects::retrieve).post(projects::modify),
        )
        .route("/projects/{project_id}/archive", post(projects::archive))
        .route(
            "/projects/{project_id}/api_keys",
            get(project_keys::list).post(project_keys::create),
        )
        .route(
            "/projects/{project_id}/api_keys/{key_id}",
            get(project_keys::retrieve)
                .post(project_keys::update)
                .delete(project_keys::delete),
        )
        .route(
            "/projects/{project_id}/service_accounts",
            get(service_accounts::list).post(service_accounts::create),
        )
        .route(
            "/projects/{project_id}/service_accounts/{service_account_id}",
            get(service_accounts::retrieve)
                .post(service_accounts::modify)
                .delete(service_accounts::delete),
        )
        .route(
            "/projects/{project_id}/service_accounts/{service_account_id}/api_keys",
            post(service_accounts::create_key),
        )
        .route("/audit_logs", get(audit_logs::list))
        .route("/users", get(users::list))
        .route(
            "/users/{user_id}",
            get(users::retrieve)
                .post(users::modify)
                .delete(users::delete),
        )
        .route("/invites", get(invites::list).post(invites::create))
        .route(
            "/invites/{invite_id}",
            get(invites::retrieve).delete(invites::delete),
        )
        .route(
            "/projects/{project_id}/users",
            get(project_users::list).post(project_users::create),
        )
        .route(
            "/projects/{project_id}/users/{user_id}",
            get(project_users::retrieve)
                .post(project_users::modify)
                .delete(project_users::delete),
        )
        .route("/projects/{project_id}/rate_limits", get(rate_limits::list))
        .route(
            "/projects/{project_id}/rate_limits/{rate_limit_id}",
            post(rate_limits::update),
        )
        .route(
            "/projects/{project_id}/model_permissions",
            get(model_permissions::retrieve)
                .post(model_permissions::update)
                .delete(model_permissions::delete),
        )
        .route(
            "/projects/{project_id}/spend_limit",
            get(spend::retrieve_limit)
                .post(spend::set_limit)
                .delete(spend::delete_limit),
        )
        .route(
            "/projects/{project_id}/spend_alerts",
            get(spend::project_list).post(spend::project_create),
        )
        .route(
            "/projects/{project_id}/spend_alerts/{alert_id}",
            get(spend::project_retrieve)
                .post(spend::project_update)
                .delete(spend::project_delete),
        )
        .route(
            "/spend_alerts",
            get(spend::org_list).post(spend::org_create),
        )
        .route(
            "/spend_alerts/{alert_id}",
            get(spend::org_retrieve)
                .post(spend::org_update)
                .delete(spend::org_delete),
        )
        .route("/usage/{family}", get(usage::usage))
        .route("/costs", get(usage::costs))
}

/// The paging parameters shared by every list.
#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    limit: Option<String>,
    after: Option<String>,
}

impl Paging {
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        let limit = Limit::parse(int_param("limit", self.limit.as_deref())?)?;
        let after = match self.after.as_deref() {
            None | Some("") => None,
            Some(a)
                if a.len() > 128
                    || !a
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                return Err(ApiError::invalid(
                    Some("after"),
                    format!(
                        "Invalid 'after': '{}' is not an id from this list.",
                        crate::error::shown(a)
                    ),
                ))
            }
            Some(a) => Some(a.to_owned()),
        };
        Ok(PageRequest { limit, after })
    }
}

use keyplane_core::ids::ProjectId;
use keyplane_core::keys::{KeyKind, PlaintextKey};
use keyplane_core::model::{ApiKey, KeyOwnerId, Name, NewApiKey};
use keyplane_core::scopes::Permissions;
use keyplane_core::time::UnixSeconds;

/// What a new key is for; [`mint`] turns it into a plaintext and a storable record.
pub struct KeySpec {
    pub kind: KeyKind,
    pub project_id: Option<ProjectId>,
    pub name: Name,
    pub permissions: Permissions,
    pub owner: KeyOwnerId,
    pub now: UnixSeconds,
    pub expires_at: Option<UnixSeconds>,
}

pub fn mint(state: &AppState, spec: KeySpec) -> (PlaintextKey, NewApiKey) {
    let (plain, material) = state.verifier.hasher().generate(spec.kind);
    let record = NewApiKey {
        id: material.id,
        kind: spec.kind,
        project_id: spec.project_id,
        name: spec.name.into_string(),
        redacted_value: material.redacted_value,
        hash: material.hash,
        permissions: spec.permissions,
        owner: spec.owner,
        created_at: spec.now,
        expires_at: spec.expires_at,
    };
    (plain, record)
}

/// Reads back a key the request just wrote.
pub async fn reread(state: &AppState, id: &keyplane_core::keys::KeyId) -> Result<ApiKey, ApiError> {
    state
        .keys
        .key(id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("key {id} vanished after write")))
}

/// `api_key.created` details: the id and the scopes (never the value).
pub fn key_created_details(key: &NewApiKey) -> serde_json::Value {
    serde_json::json!({"id": key.id.as_str(), "data": {"scopes": key.permissions.to_list()}})
}
