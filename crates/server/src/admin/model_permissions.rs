//! `GET/POST/DELETE /organization/projects/{id}/model_permissions`.

use super::projects::find as find_project;
use crate::auth::Admin;
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use keyplane_core::policy::ModelPermissions;
use serde::Deserialize;
use serde_json::{json, Value};

fn view(p: Option<&ModelPermissions>) -> Value {
    match p {
        Some(p) => {
            json!({"object": "project.model_permissions", "mode": p.mode.as_str(), "model_ids": p.model_ids})
        }
        // No list set: nothing is denied.
        None => {
            json!({"object": "project.model_permissions", "mode": "deny_list", "model_ids": []})
        }
    }
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.read()?;
    let project = find_project(&state, &project_id).await?;
    Ok(Json(view(
        state
            .policies
            .model_permissions(&project.id)
            .await?
            .as_ref(),
    )))
}

#[derive(Debug, Deserialize)]
pub struct SetPermissions {
    mode: String,
    model_ids: Vec<String>,
}

pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Json(body): Json<SetPermissions>,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    let project = find_project(&state, &project_id).await?;
    project.ensure_active()?;
    let perms = ModelPermissions::parse(&body.mode, &body.model_ids)?;
    let event = cap.event(
        "project.updated",
        Some(&project.id),
        json!({"id": project.id.as_str(), "changes_requested": {"model_permissions": {"mode": perms.mode.as_str(), "model_ids": perms.model_ids}}}),
    );
    state
        .policies
        .set_model_permissions(&project.id, Some(&perms), &[event])
        .await?;
    state.changed(Change::policy(&project.id));
    Ok(Json(view(Some(&perms))))
}

pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    let project = find_project(&state, &project_id).await?;
    project.ensure_active()?;
    let event = cap.event(
        "project.updated",
        Some(&project.id),
        json!({"id": project.id.as_str(), "changes_requested": {"model_permissions": null}}),
    );
    state
        .policies
        .set_model_permissions(&project.id, None, &[event])
        .await?;
    state.changed(Change::policy(&project.id));
    Ok(Json(
        json!({"object": "project.model_permissions.deleted", "deleted": true}),
    ))
}
