//! `/organization/users`: the organization's members (they arrive through invites).

use super::{views, Paging};
use crate::auth::{Admin, OrgWrite};
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, Path, QueryParams};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{self as api, List, ModifyUser};
use keyplane_core::ids::UserId;
use keyplane_core::model::{OrgRole, User};
use keyplane_core::DomainError;
use serde_json::json;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    q: QueryParams,
) -> Result<Json<List<api::User>>, ApiError> {
    admin.read()?;
    let page = Paging {
        limit: q.get("limit").map(str::to_owned),
        after: q.get("after").map(str::to_owned),
    }
    .request()?;
    let emails = q.all("emails");
    if emails.len() > 100 {
        return Err(ApiError::invalid(
            Some("emails"),
            "Invalid 'emails': at most 100 values are allowed.",
        ));
    }
    let users = state.people.list_users(&emails, &page).await?;
    Ok(Json(List::new(
        users.items.iter().map(views::user).collect(),
        users.has_more,
    )))
}

/// A live user of the organization, or 404.
pub async fn find(state: &AppState, raw_id: &str) -> Result<User, ApiError> {
    let id = UserId::parse(raw_id)?;
    state
        .orgs
        .user(&id)
        .await?
        .ok_or_else(|| DomainError::not_found("user", raw_id).into())
}

/// Drops the cached keys of `user` so the next request sees their new role or state.
pub fn invalidate_keys_of(state: &AppState, user: &UserId) {
    state.changed(Change::user(user));
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<api::User>, ApiError> {
    admin.read()?;
    Ok(Json(views::user(&find(&state, &user_id).await?)))
}

/// Changes the organization role (`owner` / `reader`). The last owner cannot be demoted.
pub async fn modify(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
    Json(body): Json<ModifyUser>,
) -> Result<Json<api::User>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(modify_with(&state, &cap, user_id, body).await?))
}

/// `modify`, shared by the Admin API and the dashboard.
pub async fn modify_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    user_id: String,
    body: ModifyUser,
) -> Result<api::User, ApiError> {
    let mut user = find(state, &user_id).await?;
    if body.role_id.is_some() {
        return Err(ApiError::invalid(
            Some("role_id"),
            "Custom roles are not supported: set 'role' to 'owner' or 'reader'.",
        ));
    }
    let Some(raw_role) = body.role.as_deref() else {
        return Ok(views::user(&user));
    };
    let role = OrgRole::parse(raw_role)?;
    if role == user.role {
        return Ok(views::user(&user));
    }
    let event = cap.event(
        "user.updated",
        None,
        json!({"id": user.id.as_str(), "changes_requested": {"role": role.as_str()}}),
    );
    let changed = state
        .people
        .update_user_role(&user.id, role, &[event])
        .await?;
    // An admin key acts with its owner's role: the owner's keys must be re-read at once.
    invalidate_keys_of(state, &user.id);
    if !changed {
        return Err(DomainError::not_found("user", user_id).into());
    }
    user.role = role;
    Ok(views::user(&user))
}

/// Removes the user: their keys become inactive at once. The last owner cannot be removed.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(user_id): Path<String>,
) -> Result<Json<api::Deleted>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(delete_with(&state, &cap, user_id).await?))
}

/// `delete`, shared by the Admin API and the dashboard.
pub async fn delete_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    user_id: String,
) -> Result<api::Deleted, ApiError> {
    let user = find(state, &user_id).await?;
    let event = cap.event("user.deleted", None, json!({"id": user.id.as_str()}));
    let deleted = state
        .people
        .delete_user(&user.id, keyplane_core::time::now(), &[event])
        .await?;
    invalidate_keys_of(state, &user.id);
    if !deleted {
        // A concurrent request deleted them first.
        return Err(DomainError::not_found("user", user_id).into());
    }
    Ok(views::deleted(
        "organization.user.deleted",
        user.id.as_str(),
    ))
}
