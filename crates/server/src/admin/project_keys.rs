use super::projects::find as find_project;
use super::{key_created_details, mint, reread, views, KeySpec, Paging};
use crate::auth::{project_access, Admin, ProjectWrite};
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{self as api, CreateProjectApiKey, List, UpdateProjectApiKey};
use keyplane_core::keys::{KeyId, KeyKind, PlaintextKey};
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
    let owner = KeyOwnerId::User(owner);
    let write = project_access(&state, &principal, &project.id)
        .await?
        .manage_key(&owner)?;
    let now = keyplane_core::time::now();
    let (plain, key) = create_key(
        &state,
        &write,
        NewKey {
            owner,
            name: Name::parse("name", &body.name)?,
            permissions: Permissions::parse(body.scopes.as_deref())?,
            expires_at: body
                .expires_in_seconds
                .map(ExpiresIn::parse)
                .transpose()?
                .map(|e| e.expires_at(now)),
        },
    )
    .await?;
    let mut view = views::project_key(&key);
    view.value = Some(plain.expose().to_owned());
    Ok(Json(view))
}

/// What the caller asks for in a new key of a project.
pub struct NewKey {
    pub owner: KeyOwnerId,
    pub name: Name,
    pub permissions: Permissions,
    pub expires_at: Option<keyplane_core::time::UnixSeconds>,
}

/// Creates a key in the project `write` was granted for (the Admin API and the dashboard
/// both come here): a project key for a user, a service-account key for a service account.
pub async fn create_key(
    state: &AppState,
    write: &ProjectWrite<'_>,
    new: NewKey,
) -> Result<(PlaintextKey, ApiKey), ApiError> {
    let kind = match new.owner {
        KeyOwnerId::User(_) => KeyKind::Project,
        KeyOwnerId::ServiceAccount(_) => KeyKind::ServiceAccount,
    };
    let spec = KeySpec {
        kind,
        project_id: Some(write.project().clone()),
        name: new.name,
        permissions: new.permissions,
        owner: new.owner,
        now: keyplane_core::time::now(),
        expires_at: new.expires_at,
    };
    let (plain, record) = mint(state, spec);
    let event = write.event("api_key.created", key_created_details(&record));
    state.keys.insert_key(&record, &[event]).await?;
    Ok((plain, reread(state, &record.id).await?))
}

/// Renames, rescopes or changes the expiry of `key` (a key of `write`'s project).
pub async fn update_key(
    state: &AppState,
    write: &ProjectWrite<'_>,
    key: &ApiKey,
    update: &KeyUpdate,
) -> Result<ApiKey, ApiError> {
    let event = write.event(
        "api_key.updated",
        json!({"id": key.id.as_str(), "changes_requested": {
            "name": update.name.as_ref().map(|n| n.as_str()),
            "scopes": update.permissions.as_ref().map(|p| p.to_list()),
            "expires_at": update.expires_at,
        }}),
    );
    state.keys.update_key(&key.id, update, &[event]).await?;
    state.changed(Change::key(&key.id));
    reread(state, &key.id).await
}

/// Revokes `key` (a key of `write`'s project); the very next request with it fails.
pub async fn delete_key(
    state: &AppState,
    write: &ProjectWrite<'_>,
    key: &ApiKey,
) -> Result<(), ApiError> {
    let event = write.event("api_key.deleted", json!({"id": key.id.as_str()}));
    let deleted = state
        .keys
        .delete_key(&key.id, keyplane_core::time::now(), &[event])
        .await?;
    state.changed(Change::key(&key.id));
    if !deleted {
        // A concurrent request deleted it first.
        return Err(DomainError::not_found("API key", key.id.as_str()).into());
    }
    Ok(())
}

/// A live project or service-account key of `project`, or 404.
pub async fn find(state: &AppState, project: &Project, raw_id: &str) -> Result<ApiKey, ApiError> {
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
    let write = project_access(&state, &principal, &project.id)
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
    Ok(Json(views::project_key(
        &update_key(&state, &write, &key, &update).await?,
    )))
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
    let write = project_access(&state, &principal, &project.id)
        .await?
        .manage_key(&key.owner.id)?;
    delete_key(&state, &write, &key).await?;
    Ok(Json(views::deleted(
        "organization.project.api_key.deleted",
        key.id.as_str(),
    )))
}
