//! Service accounts, project members, organization members and invites. Every change goes
//! through the Admin API's operations (`*_with`), with the session user's capability.

use super::session::Me;
use super::{html, nav, open_project, see, DashError, Form, Nav};
use crate::admin::projects::find as find_project;
use crate::admin::{invites, project_users, service_accounts, users};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyplane_api_types::{
    CreateInvite, CreateProjectUser, CreateServiceAccount, InviteProject, ModifyProjectUser,
    ModifyServiceAccount, ModifyUser,
};
use keyplane_core::model::{OrgRole, Project};
use keyplane_core::pagination::PageRequest;
use keyplane_core::people::InviteStatus;
use serde::Deserialize;

// ---------- service accounts ----------

pub struct AccountRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "service_accounts.html")]
struct AccountsPage {
    nav: Nav,
    project_id: String,
    accounts: Vec<AccountRow>,
    can_manage: bool,
    error: String,
    created_name: String,
    created_secret: String,
}

async fn render_accounts(
    state: &AppState,
    me: &Me,
    project: &Project,
    status: StatusCode,
    error: String,
    created: Option<(String, String)>,
) -> Result<Response, DashError> {
    open_project(state, me, project).await?;
    let accounts = state
        .service_accounts
        .list_service_accounts(&project.id, &PageRequest::largest(None))
        .await?
        .items
        .into_iter()
        .map(|a| AccountRow {
            id: a.id.to_string(),
            name: a.name,
            role: a.role,
            created: super::day(a.created_at),
        })
        .collect();
    let (created_name, created_secret) = created.unwrap_or_default();
    let page = AccountsPage {
        nav: nav(state, me, Some(project), "service_accounts").await?,
        project_id: project.id.to_string(),
        accounts,
        can_manage: me.0.principal.org_write().is_ok() && !project.is_archived(),
        error,
        created_name,
        created_secret,
    };
    Ok(html(status, &page))
}

pub async fn service_accounts(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    render_accounts(&state, &me, &project, StatusCode::OK, String::new(), None).await
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

pub async fn create_service_account(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
    Form(form): Form<NameForm>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = CreateServiceAccount {
            name: form.name.clone(),
            create_service_account_only: None,
            expires_in_seconds: None,
        };
        service_accounts::create_with(&state, &cap, project_id.clone(), body).await
    }
    .await;
    match result {
        Ok(created) => {
            let secret = created.api_key.map(|k| k.value).unwrap_or_default();
            render_accounts(
                &state,
                &me,
                &project,
                StatusCode::OK,
                String::new(),
                Some((created.name, secret)),
            )
            .await
        }
        Err(e) if e.status().is_client_error() => {
            render_accounts(
                &state,
                &me,
                &project,
                super::status_of(&e),
                super::message_of(&e),
                None,
            )
            .await
        }
        Err(e) => Err(DashError(e)),
    }
}

#[derive(Deserialize)]
pub struct AccountRoleForm {
    #[serde(default)]
    role: String,
}

pub async fn service_account_role(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, account_id)): Path<(String, String)>,
    Form(form): Form<AccountRoleForm>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = ModifyServiceAccount {
            name: None,
            role: Some(form.role.clone()),
        };
        service_accounts::modify_with(&state, &cap, project_id.clone(), account_id, body).await
    }
    .await;
    change!(
        result,
        |_| see(&format!("/projects/{}/service-accounts", project.id)),
        |s, m| render_accounts(&state, &me, &project, s, m, None)
    )
}

pub async fn delete_service_account(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, account_id)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        service_accounts::delete_with(&state, &cap, project_id.clone(), account_id).await
    }
    .await;
    change!(
        result,
        |_| see(&format!("/projects/{}/service-accounts", project.id)),
        |s, m| render_accounts(&state, &me, &project, s, m, None)
    )
}

// ---------- project members ----------

pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub added: String,
}

#[derive(Template)]
#[template(path = "project_members.html")]
struct ProjectMembersPage {
    nav: Nav,
    project_id: String,
    members: Vec<MemberRow>,
    /// Organization members not yet in the project (emails), for the add form.
    candidates: Vec<String>,
    can_manage: bool,
    error: String,
}

async fn render_project_members(
    state: &AppState,
    me: &Me,
    project: &Project,
    status: StatusCode,
    error: String,
) -> Result<Response, DashError> {
    open_project(state, me, project).await?;
    let members: Vec<MemberRow> = state
        .people
        .list_project_users(&project.id, &PageRequest::largest(None))
        .await?
        .items
        .into_iter()
        .map(|m| MemberRow {
            id: m.user.id.to_string(),
            name: m.user.name,
            email: m.user.email,
            role: m.role.as_str().to_owned(),
            added: super::day(m.added_at),
        })
        .collect();
    let can_manage = me.0.principal.org_write().is_ok() && !project.is_archived();
    let candidates = if can_manage {
        state
            .people
            .list_users(&[], &PageRequest::largest(None))
            .await?
            .items
            .into_iter()
            .filter(|u| !members.iter().any(|m| m.id == u.id.as_str()))
            .map(|u| u.email)
            .collect()
    } else {
        Vec::new()
    };
    let page = ProjectMembersPage {
        nav: nav(state, me, Some(project), "members").await?,
        project_id: project.id.to_string(),
        members,
        candidates,
        can_manage,
        error,
    };
    Ok(html(status, &page))
}

pub async fn project_members(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    render_project_members(&state, &me, &project, StatusCode::OK, String::new()).await
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub async fn add_project_member(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
    Form(form): Form<MemberForm>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = CreateProjectUser {
            user_id: None,
            email: Some(form.email.clone()),
            role: form.role.clone(),
        };
        project_users::create_with(&state, &cap, project_id.clone(), body).await
    }
    .await;
    change!(
        result,
        |_| see(&format!("/projects/{}/members", project.id)),
        |s, m| render_project_members(&state, &me, &project, s, m)
    )
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn project_member_role(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, user_id)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = ModifyProjectUser {
            role: Some(form.role.clone()),
        };
        project_users::modify_with(&state, &cap, project_id.clone(), user_id, body).await
    }
    .await;
    change!(
        result,
        |_| see(&format!("/projects/{}/members", project.id)),
        |s, m| render_project_members(&state, &me, &project, s, m)
    )
}

pub async fn remove_project_member(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        project_users::delete_with(&state, &cap, project_id.clone(), user_id).await
    }
    .await;
    change!(
        result,
        |_| see(&format!("/projects/{}/members", project.id)),
        |s, m| render_project_members(&state, &me, &project, s, m)
    )
}

// ---------- organization members and invites ----------

pub struct InviteRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub status: &'static str,
    pub expires: String,
    pub pending: bool,
}

#[derive(Template)]
#[template(path = "org_members.html")]
struct OrgMembersPage {
    nav: Nav,
    members: Vec<MemberRow>,
    invites: Vec<InviteRow>,
    projects: Vec<super::NavProject>,
    can_manage: bool,
    error: String,
    invite_link: String,
    invite_email: String,
}

async fn render_org_members(
    state: &AppState,
    me: &Me,
    status: StatusCode,
    error: String,
    invite: Option<(String, String)>,
) -> Result<Response, DashError> {
    let members = state
        .people
        .list_users(&[], &PageRequest::largest(None))
        .await?
        .items
        .into_iter()
        .map(|u| MemberRow {
            id: u.id.to_string(),
            name: u.name,
            email: u.email,
            role: u.role.as_str().to_owned(),
            added: super::day(u.added_at),
        })
        .collect();
    let now = keyplane_core::time::now();
    let invites = state
        .people
        .list_invites(&PageRequest::largest(None))
        .await?
        .items
        .into_iter()
        .map(|i| {
            let status = i.status(now);
            InviteRow {
                id: i.id.to_string(),
                email: i.email,
                role: i.role.as_str().to_owned(),
                status: match status {
                    InviteStatus::Pending => "pending",
                    InviteStatus::Accepted => "accepted",
                    InviteStatus::Expired => "expired",
                },
                expires: super::day(i.expires_at),
                pending: status != InviteStatus::Accepted,
            }
        })
        .collect();
    let nav = nav(state, me, None, "org_members").await?;
    let projects = nav
        .projects
        .iter()
        .map(|p| super::NavProject {
            id: p.id.clone(),
            name: p.name.clone(),
        })
        .collect();
    let (invite_email, invite_link) = invite.unwrap_or_default();
    let page = OrgMembersPage {
        nav,
        members,
        invites,
        projects,
        can_manage: me.0.user.role == OrgRole::Owner,
        error,
        invite_link,
        invite_email,
    };
    Ok(html(status, &page))
}

pub async fn org_members(State(state): State<AppState>, me: Me) -> Result<Response, DashError> {
    render_org_members(&state, &me, StatusCode::OK, String::new(), None).await
}

pub async fn org_member_role(
    State(state): State<AppState>,
    me: Me,
    Path(user_id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, DashError> {
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = ModifyUser {
            role: Some(form.role.clone()),
            role_id: None,
            technical_level: None,
            developer_persona: None,
        };
        users::modify_with(&state, &cap, user_id, body).await
    }
    .await;
    change!(result, |_| see("/members"), |s, m| render_org_members(
        &state, &me, s, m, None
    ))
}

pub async fn remove_org_member(
    State(state): State<AppState>,
    me: Me,
    Path(user_id): Path<String>,
) -> Result<Response, DashError> {
    let result = async {
        let cap = me.0.principal.org_write()?;
        users::delete_with(&state, &cap, user_id).await
    }
    .await;
    change!(result, |_| see("/members"), |s, m| render_org_members(
        &state, &me, s, m, None
    ))
}

pub async fn invite(
    State(state): State<AppState>,
    me: Me,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, DashError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let project = field("project");
    let result = async {
        let cap = me.0.principal.org_write()?;
        let projects = if project.is_empty() {
            None
        } else {
            Some(vec![InviteProject {
                id: project.clone(),
                role: field("project_role"),
            }])
        };
        let body = CreateInvite {
            email: field("email"),
            role: field("role"),
            projects,
        };
        invites::create_with(&state, &cap, body).await
    }
    .await;
    match result {
        Ok(invite) => {
            let link = invite.accept_url.unwrap_or_default();
            render_org_members(
                &state,
                &me,
                StatusCode::OK,
                String::new(),
                Some((invite.email, link)),
            )
            .await
        }
        Err(e) if e.status().is_client_error() => {
            render_org_members(
                &state,
                &me,
                super::status_of(&e),
                super::message_of(&e),
                None,
            )
            .await
        }
        Err(e) => Err(DashError(e)),
    }
}

pub async fn delete_invite(
    State(state): State<AppState>,
    me: Me,
    Path(invite_id): Path<String>,
) -> Result<Response, DashError> {
    let result = async {
        let cap = me.0.principal.org_write()?;
        invites::delete_with(&state, &cap, invite_id).await
    }
    .await;
    change!(result, |_| see("/members"), |s, m| render_org_members(
        &state, &me, s, m, None
    ))
}
