//! `/organization/projects/{project_id}/users`: project members and their roles. Removing a
//! member turns their keys in the project inactive at once; adding them back restores them.

use super::projects::find as find_project;
use super::{views, Paging};
use crate::auth::{project_access, Admin, OrgWrite};
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{self as api, CreateProjectUser, List, ModifyProjectUser};
use keyplane_core::ids::{ProjectId, UserId};
use keyplane_core::model::Project;
use keyplane_core::people::{Email, ProjectRole, ProjectUser};
use keyplane_core::DomainError;
use serde_json::json;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Json<List<api::ProjectUser>>, ApiError> {
    admin.read()?;
    let page = paging.request()?;
    let project = find_project(&state, &project_id).await?;
    let members = state.people.list_project_users(&project.id, &page).await?;
    Ok(Json(List::new(
        members.items.iter().map(views::project_user).collect(),
        members.has_more,
    )))
}

/// Drops the cached keys `user` holds in `project` (their access there changed).
fn invalidate_keys(state: &AppState, project: &ProjectId, user: &UserId) {
    state.changed(Change::member(project, user));
}

async fn find(state: &AppState, project: &Project, raw_id: &str) -> Result<ProjectUser, ApiError> {
    let id = UserId::parse(raw_id)?;
    state
        .people
        .project_user(&project.id, &id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "No user with id '{}' in project '{}'.",
                crate::error::shown(raw_id),
                project.id
            ))
        })
}

async fn reread(
    state: &AppState,
    project: &ProjectId,
    user: &UserId,
) -> Result<ProjectUser, ApiError> {
    state
        .people
        .project_user(project, user)
        .await?
        .ok_or_else(|| {
            ApiError::Internal(format!("member {user} of {project} vanished after write"))
        })
}

/// Adds an organization member (by `user_id` or `email`) with role `owner` or `member`.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Json(body): Json<CreateProjectUser>,
) -> Result<Json<api::ProjectUser>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(create_with(&state, &cap, project_id, body).await?))
}

/// `create`, shared by the Admin API and the dashboard.
pub async fn create_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    body: CreateProjectUser,
) -> Result<api::ProjectUser, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let role = ProjectRole::parse(&body.role)?;
    let user = match (body.user_id.as_deref(), body.email.as_deref()) {
        (Some(id), email) => {
            let user = super::users::find(state, id).await?;
            if let Some(email) = email {
                if !user.email.eq_ignore_ascii_case(email.trim()) {
                    return Err(ApiError::invalid(
                        Some("email"),
                        "'email' and 'user_id' name different users.",
                    ));
                }
            }
            user
        }
        (None, Some(email)) => {
            let email = Email::parse("email", email)?;
            state
                .people
                .user_by_email(email.as_str())
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(
                        Some("email"),
                        format!(
                            "No member of the organization has the email '{}'. Invite them first.",
                            email.as_str()
                        ),
                    )
                })?
        }
        (None, None) => {
            return Err(ApiError::invalid(
                Some("user_id"),
                "Give 'user_id' or 'email' of an organization member.",
            ))
        }
    };
    let principal = cap.principal()?;
    let write = project_access(state, &principal, &project.id)
        .await?
        .manage()?;
    let event = write.event(
        "user.added",
        json!({"id": user.id.as_str(), "data": {"role": role.as_str()}}),
    );
    state
        .people
        .add_project_user(
            &project.id,
            &user.id,
            role,
            keyplane_core::time::now(),
            &[event],
        )
        .await?;
    invalidate_keys(state, &project.id, &user.id);
    Ok(views::project_user(
        &reread(state, &project.id, &user.id).await?,
    ))
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Json<api::ProjectUser>, ApiError> {
    admin.read()?;
    let project = find_project(&state, &project_id).await?;
    Ok(Json(views::project_user(
        &find(&state, &project, &user_id).await?,
    )))
}

pub async fn modify(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, user_id)): Path<(String, String)>,
    Json(body): Json<ModifyProjectUser>,
) -> Result<Json<api::ProjectUser>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(
        modify_with(&state, &cap, project_id, user_id, body).await?,
    ))
}

/// `modify`, shared by the Admin API and the dashboard.
pub async fn modify_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    user_id: String,
    body: ModifyProjectUser,
) -> Result<api::ProjectUser, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let member = find(state, &project, &user_id).await?;
    let Some(raw_role) = body.role.as_deref() else {
        return Ok(views::project_user(&member));
    };
    let role = ProjectRole::parse(raw_role)?;
    if role == member.role {
        return Ok(views::project_user(&member));
    }
    let principal = cap.principal()?;
    let write = project_access(state, &principal, &project.id)
        .await?
        .manage()?;
    let event = write.event(
        "user.updated",
        json!({"id": member.user.id.as_str(), "changes_requested": {"role": role.as_str()}}),
    );
    let changed = state
        .people
        .update_project_user(&project.id, &member.user.id, role, &[event])
        .await?;
    invalidate_keys(state, &project.id, &member.user.id);
    if !changed {
        return Err(DomainError::not_found("user", user_id).into());
    }
    Ok(views::project_user(
        &reread(state, &project.id, &member.user.id).await?,
    ))
}

/// Removes the member; their keys in the project become inactive at once.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Json<api::Deleted>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(delete_with(&state, &cap, project_id, user_id).await?))
}

/// `delete`, shared by the Admin API and the dashboard.
pub async fn delete_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    user_id: String,
) -> Result<api::Deleted, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let member = find(state, &project, &user_id).await?;
    let principal = cap.principal()?;
    let write = project_access(state, &principal, &project.id)
        .await?
        .manage()?;
    let event = write.event("user.deleted", json!({"id": member.user.id.as_str()}));
    let removed = state
        .people
        .remove_project_user(&project.id, &member.user.id, &[event])
        .await?;
    invalidate_keys(state, &project.id, &member.user.id);
    if !removed {
        return Err(DomainError::not_found("user", user_id).into());
    }
    Ok(views::deleted(
        "organization.project.user.deleted",
        member.user.id.as_str(),
    ))
}
