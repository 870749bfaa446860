//! Projects: list, create, rename, archive, switch.

use super::session::Me;
use super::{html, nav, see, visible_projects, DashError, Form, Nav};
use crate::admin::projects::{archive_project, create_project, find, modify_project};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyplane_api_types::{CreateProject, ModifyProject};
use keyplane_core::ids::ProjectId;
use serde::Deserialize;

pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    nav: Nav,
    projects: Vec<ProjectRow>,
    error: String,
    name: String,
}

async fn render(
    state: &AppState,
    me: &Me,
    status: StatusCode,
    error: String,
    name: String,
) -> Result<Response, DashError> {
    let projects = visible_projects(state, me)
        .await?
        .into_iter()
        .map(|p| ProjectRow {
            id: p.id.to_string(),
            name: p.name,
            created: super::day(p.created_at),
        })
        .collect();
    let page = ProjectsPage {
        nav: nav(state, me, None, "projects").await?,
        projects,
        error,
        name,
    };
    Ok(html(status, &page))
}

pub async fn list(State(state): State<AppState>, me: Me) -> Result<Response, DashError> {
    render(&state, &me, StatusCode::OK, String::new(), String::new()).await
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    me: Me,
    Form(form): Form<NameForm>,
) -> Result<Response, DashError> {
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = CreateProject {
            name: form.name.clone(),
            residency: None,
            external_key_id: None,
            geography: None,
        };
        create_project(&state, &cap, body).await
    }
    .await;
    change!(
        result,
        |project: keyplane_core::model::Project| see(&format!("/projects/{}", project.id)),
        |s, m| render(&state, &me, s, m, form.name)
    )
}

#[derive(Deserialize)]
pub struct SwitchQuery {
    #[serde(default)]
    project: String,
}

pub async fn switch(Query(q): Query<SwitchQuery>) -> Result<Response, DashError> {
    let id = ProjectId::parse(&q.project)?;
    see(&format!("/projects/{id}"))
}

pub async fn rename(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
    Form(form): Form<NameForm>,
) -> Result<Response, DashError> {
    let project = find(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = ModifyProject {
            name: Some(form.name.clone()),
            external_key_id: None,
            geography: None,
        };
        modify_project(&state, &cap, project.clone(), body).await
    }
    .await;
    change!(
        result,
        |p: keyplane_core::model::Project| see(&format!("/projects/{}", p.id)),
        |s, m| super::keys::render(&state, &me, &project, s, m)
    )
}

pub async fn archive(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
) -> Result<Response, DashError> {
    let project = find(&state, &project_id).await?;
    let cap = me.0.principal.org_write()?;
    archive_project(&state, &cap, &project).await?;
    see("/projects")
}
