use super::projects::find as find_project;
use super::{key_created_details, mint, reread, views, KeySpec, Paging};
use crate::auth::{project_access, Admin};
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{self as api, CreateProjectApiKey, List, UpdateProjectApiKey};
use keyplane_core::keys::{KeyId, KeyKind};
use keyplane_core::model::{
    ApiKey, ExpiresIn, KeyOwnerId, KeyUpdate, Name, OrgRole, OwnerAccessFilter, Project,
};
use keyplane_core::ports::KeyListFilter;
use keyplane_core::scopes::Permissions;
use keyplane_core::DomainError;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    paging: Paging,
    owner_project_access: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<List<api::ProjectApiKey>>, ApiError> {
    admin.read()?;
    let page = q.paging.request()?;
    let access = OwnerAccessFilter::parse(q.owner_project_access.as_deref())?;
    let project = find_project(&state, &project_id).await?;
    let keys = state
        .keys
        .list_keys(&KeyListFilter::Project(project.id, access), &page)
        .await?;
    Ok(Json(List::new(
        keys.items.iter().map(views::project_key).collect(),
        keys.has_more,
    )))
}

/// Extension: creates a key owned by the calling admin key's user.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Json(body): Json<CreateProjectApiKey>,
) -> Result<Json<api::ProjectApiKey>, ApiError> {
    let cap = admin.write()?;
    let project = find_project(&state, &project_id).await?;
    project.ensure_active()?;
    let owner = match body.user_id.as_deref() {
        None => cap.user_id()?,
        Some(raw) => {
            // The key's owner must have access to the project, or the key would be born
            // inactive.
            let user = super::users::find(&state, raw).await?;
            let member = state.projects.project_role(&project.id, &user.id).await?;
            if member.is_none() && user.role != OrgRole::Owner {
                return Err(ApiError::invalid(
                    Some("user_id"),
                    format!(
                        "User '{}' is not a member of project '{}'. Add them first.",
                        user.id, project.id
                    ),
                ));
            }
            user.id
        }
    };
    let principal = cap.principal()?;
    project_access(&state, &principal, &project.id)
        .await?
        .manage_key(&KeyOwnerId::User(owner.clone()))?;
    let now = keyplane_core::time::now();
    let spec = KeySpec {
        kind: KeyKind::Project,
        project_id: Some(project.id.clone()),
        name: Name::parse("name", &body.name)?,
        permissions: Permissions::parse(body.scopes.as_deref())?,
        owner: KeyOwnerId::User(owner),
        now,
        expires_at: body
            .expires_in_seconds
            .map(ExpiresIn::parse)
            .transpose()?
            .map(|e| e.expires_at(now)),
    };
    let (plain, record) = mint(&state, spec);
    let event = cap.event(
        "api_key.created",
        Some(&project.id),
        key_created_details(&record),
    );
    state.keys.insert_key(&record, &[event]).await?;
    let mut view = views::project_key(&reread(&state, &record.id).await?);
    view.value = Some(plain.expose().to_owned());
    Ok(Json(view))
}

/// A live project or service-account key of `project`, or 404.
async fn find(state: &AppState, project: &Project, raw_id: &str) -> Result<ApiKey, ApiError> {
    let id = KeyId::parse(raw_id)?;
    match state.keys.key(&id).await? {
        Some(key) if key.kind != KeyKind::Admin && key.project_id.as_ref() == Some(&project.id) => {
            Ok(key)
        }
        _ => Err(DomainError::not_found("API key", raw_id).into()),
    }
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, key_id)): Path<(String, String)>,
) -> Result<Json<api::ProjectApiKey>, ApiError> {
    admin.read()?;
    let project = find_project(&state, &project_id).await?;
    Ok(Json(views::project_key(
        &find(&state, &project, &key_id).await?,
    )))
}

/// Extension: rename, rescope, or set/clear the expiry of a key.
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, key_id)): Path<(String, String)>,
    Json(body): Json<UpdateProjectApiKey>,
) -> Result<Json<api::ProjectApiKey>, ApiError> {
    let cap = admin.write()?;
    let project = find_project(&state, &project_id).await?;
    project.ensure_active()?;
    let key = find(&state, &project, &key_id).await?;
    let principal = cap.principal()?;
    project_access(&state, &principal, &project.id)
        .await?
        .manage_key(&key.owner.id)?;
    let now = keyplane_core::time::now();
    let update = KeyUpdate {
        name: body
            .name
            .as_deref()
            .map(|n| Name::parse("name", n))
            .transpose()?,
        permissions: body
            .scopes
            .as_ref()
            .map(|s| Permissions::parse(s.as_deref()))
            .transpose()?,
        expires_at: body
            .expires_in_seconds
            .map(|e| {
                e.map(ExpiresIn::parse)
                    .transpose()
                    .map(|e| e.map(|e| e.expires_at(now)))
            })
            .transpose()?,
    };
    let event = cap.event(
        "api_key.updated",
        Some(&project.id),
        json!({"id": key.id.as_str(), "changes_requested": {
            "name": update.name.as_ref().map(|n| n.as_str()),
            "scopes": update.permissions.as_ref().map(|p| p.to_list()),
            "expires_at": update.expires_at,
        }}),
    );
    state.keys.update_key(&key.id, &update, &[event]).await?;
    state.changed(Change::key(&key.id));
    Ok(Json(views::project_key(&reread(&state, &key.id).await?)))
}

pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, key_id)): Path<(String, String)>,
) -> Result<Json<api::Deleted>, ApiError> {
    let cap = admin.write()?;
    let project = find_project(&state, &project_id).await?;
    let key = find(&state, &project, &key_id).await?;
    let principal = cap.principal()?;
    project_access(&state, &principal, &project.id)
        .await?
        .manage_key(&key.owner.id)?;
    let event = cap.event(
        "api_key.deleted",
        Some(&project.id),
        json!({"id": key.id.as_str()}),
    );
    let deleted = state
        .keys
        .delete_key(&key.id, keyplane_core::time::now(), &[event])
        .await?;
    state.changed(Change::key(&key.id));
    if !deleted {
        // A concurrent request deleted it first.
        return Err(DomainError::not_found("API key", key_id).into());
    }
    Ok(Json(views::deleted(
        "organization.project.api_key.deleted",
        key.id.as_str(),
    )))
}
