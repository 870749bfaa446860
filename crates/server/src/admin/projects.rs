use super::{views, Paging};
use crate::auth::{Admin, OrgWrite};
use crate::changes::Change;
use crate::error::{shown, ApiError};
use crate::extract::{bool_param, Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{self as api, CreateProject, List, ModifyProject};
use keyplane_core::ids::ProjectId;
use keyplane_core::model::{Name, Project};
use keyplane_core::DomainError;
use serde::Deserialize;
use serde_json::json;

/// OpenAI's residency values; Keyplane records the choice (data stays where Keyplane runs).
const RESIDENCIES: &[&str] = &[
    "GLOBAL",
    "US_STORAGE_PROCESSING",
    "EU_STORAGE_PROCESSING",
    "JP_STORAGE",
    "JP_STORAGE_PROCESSING",
    "KR_STORAGE",
    "CA_STORAGE",
    "SG_STORAGE",
    "IN_STORAGE",
    "IN_STORAGE_PROCESSING",
    "AU_STORAGE",
    "AU_STORAGE_PROCESSING",
    "GB_STORAGE",
    "AE_STORAGE",
    "AE_STORAGE_PROCESSING",
];

fn external_key_id(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(v) if v.chars().count() > 256 || v.chars().any(char::is_control) => Err(
            ApiError::invalid(Some("external_key_id"), "Invalid 'external_key_id'."),
        ),
        other => Ok(other),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    paging: Paging,
    include_archived: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Result<Json<List<api::Project>>, ApiError> {
    admin.read()?;
    let page = q.paging.request()?;
    let include_archived =
        bool_param("include_archived", q.include_archived.as_deref())?.unwrap_or(false);
    let projects = state
        .projects
        .list_projects(include_archived, &page)
        .await?;
    Ok(Json(List::new(
        projects.items.iter().map(views::project).collect(),
        projects.has_more,
    )))
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Json(body): Json<CreateProject>,
) -> Result<Json<api::Project>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(views::project(
        &create_project(&state, &cap, body).await?,
    )))
}

/// Creates a project owned by the acting user (Admin API and dashboard).
pub async fn create_project(
    state: &AppState,
    cap: &OrgWrite<'_>,
    body: CreateProject,
) -> Result<Project, ApiError> {
    let name = Name::parse("name", &body.name)?;
    if let Some(r) = &body.residency {
        if !RESIDENCIES.contains(&r.as_str()) {
            return Err(ApiError::invalid(
                Some("residency"),
                format!(
                    "Invalid 'residency': '{}'. Expected one of {}.",
                    shown(r),
                    RESIDENCIES.join(", ")
                ),
            ));
        }
    }
    let project = Project {
        id: ProjectId::generate(),
        name: name.into_string(),
        created_at: keyplane_core::time::now(),
        archived_at: None,
        external_key_id: external_key_id(body.external_key_id)?,
        residency: body.residency,
    };
    let event = cap.event(
        "project.created",
        Some(&project.id),
        json!({"id": project.id.as_str(), "data": {"name": project.name, "title": project.name}}),
    );
    state
        .projects
        .create_project(&project, &cap.user_id()?, &[event])
        .await?;
    Ok(project)
}

pub async fn find(state: &AppState, raw_id: &str) -> Result<Project, ApiError> {
    let id = ProjectId::parse(raw_id)?;
    state
        .projects
        .project(&id)
        .await?
        .ok_or_else(|| DomainError::not_found("project", raw_id).into())
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
) -> Result<Json<api::Project>, ApiError> {
    admin.read()?;
    Ok(Json(views::project(&find(&state, &project_id).await?)))
}

pub async fn modify(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Json(body): Json<ModifyProject>,
) -> Result<Json<api::Project>, ApiError> {
    let cap = admin.write()?;
    let project = find(&state, &project_id).await?;
    Ok(Json(views::project(
        &modify_project(&state, &cap, project, body).await?,
    )))
}

/// Renames an active project (or changes its `external_key_id`).
pub async fn modify_project(
    state: &AppState,
    cap: &OrgWrite<'_>,
    mut project: Project,
    body: ModifyProject,
) -> Result<Project, ApiError> {
    project.ensure_active()?;
    if let Some(name) = &body.name {
        project.name = Name::parse("name", name)?.into_string();
    }
    if body.external_key_id.is_some() {
        project.external_key_id = external_key_id(body.external_key_id)?;
    }
    let event = cap.event(
        "project.updated",
        Some(&project.id),
        json!({"id": project.id.as_str(), "changes_requested": {"title": body.name}}),
    );
    state.projects.update_project(&project, &[event]).await?;
    Ok(project)
}

pub async fn archive(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
) -> Result<Json<api::Project>, ApiError> {
    let cap = admin.write()?;
    let project = find(&state, &project_id).await?;
    archive_project(&state, &cap, &project).await?;
    Ok(Json(views::project(&find(&state, &project_id).await?)))
}

/// Archives the project; its keys stop working at once.
pub async fn archive_project(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project: &Project,
) -> Result<(), ApiError> {
    if !project.is_archived() {
        let event = cap.event(
            "project.archived",
            Some(&project.id),
            json!({"id": project.id.as_str()}),
        );
        state
            .projects
            .archive_project(&project.id, keyplane_core::time::now(), &[event])
            .await?;
        state.changed(Change::project(&project.id));
    }
    Ok(())
}
