//! A project's API keys: the table, "Create new secret key" (the secret shown once), edit,
//! revoke. The project page is this page.

use super::session::Me;
use super::{html, nav, open_project, see, DashError, Form, Nav};
use crate::admin::project_keys::{create_key, delete_key, find as find_key, update_key, NewKey};
use crate::admin::projects::find as find_project;
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyplane_core::access::ProjectAccess;
use keyplane_core::ids::ServiceAccountId;
use keyplane_core::keys::KeyKind;
use keyplane_core::model::{
    ApiKey, ExpiresIn, KeyOwnerId, KeyUpdate, Name, OwnerAccessFilter, Project,
};
use keyplane_core::pagination::PageRequest;
use keyplane_core::ports::KeyListFilter;
use keyplane_core::scopes::{Permissions, KNOWN_SCOPES};
use std::collections::BTreeMap;

/// One line of the "Restricted" permission picker.
pub struct Resource {
    pub key: &'static str,
    pub label: &'static str,
    pub read: Option<&'static str>,
    pub write: Option<&'static str>,
}

pub const RESOURCES: &[Resource] = &[
    Resource {
        key: "models",
        label: "Models",
        read: Some("api.model.read"),
        write: None,
    },
    Resource {
        key: "model_request",
        label: "Model capabilities (chat, completions, embeddings, images, audio)",
        read: None,
        write: Some("model.request"),
    },
    Resource {
        key: "responses",
        label: "Responses",
        read: Some("api.responses.read"),
        write: Some("api.responses.write"),
    },
    Resource {
        key: "assistants",
        label: "Assistants",
        read: Some("api.assistants.read"),
        write: Some("api.assistants.write"),
    },
    Resource {
        key: "threads",
        label: "Threads",
        read: Some("api.threads.read"),
        write: Some("api.threads.write"),
    },
    Resource {
        key: "files",
        label: "Files",
        read: Some("api.files.read"),
        write: Some("api.files.write"),
    },
    Resource {
        key: "fine_tuning",
        label: "Fine-tuning",
        read: Some("api.fine_tuning.jobs.read"),
        write: Some("api.fine_tuning.jobs.write"),
    },
    Resource {
        key: "batch",
        label: "Batch",
        read: Some("api.batch.read"),
        write: Some("api.batch.write"),
    },
    Resource {
        key: "vector_stores",
        label: "Vector stores",
        read: Some("api.vector_stores.read"),
        write: Some("api.vector_stores.write"),
    },
    Resource {
        key: "evals",
        label: "Evals",
        read: Some("api.evals.read"),
        write: Some("api.evals.write"),
    },
    Resource {
        key: "videos",
        label: "Videos",
        read: Some("api.videos.read"),
        write: Some("api.videos.write"),
    },
    Resource {
        key: "usage",
        label: "Usage",
        read: Some("api.usage.read"),
        write: None,
    },
];

/// A resource line with the level a key has there.
pub struct ResourceLevel {
    pub key: &'static str,
    pub label: &'static str,
    pub has_read: bool,
    pub has_write: bool,
    /// `none`, `read` or `write`.
    pub level: &'static str,
}

fn levels(p: &Permissions) -> Vec<ResourceLevel> {
    RESOURCES
        .iter()
        .map(|r| {
            let level = if r.write.is_some_and(|w| p.allows(w)) {
                "write"
            } else if r.read.is_some_and(|rd| p.allows(rd)) {
                "read"
            } else {
                "none"
            };
            ResourceLevel {
                key: r.key,
                label: r.label,
                has_read: r.read.is_some(),
                has_write: r.write.is_some(),
                level,
            }
        })
        .collect()
}

fn read_only() -> Vec<String> {
    KNOWN_SCOPES
        .iter()
        .filter(|s| s.ends_with(".read"))
        .map(|s| (*s).to_owned())
        .collect()
}

/// "All", "Read only" or "Restricted".
fn preset(p: &Permissions) -> &'static str {
    match p.to_list() {
        None => "all",
        Some(mut list) => {
            list.sort();
            let mut ro = read_only();
            ro.sort();
            if list == ro {
                "read_only"
            } else {
                "restricted"
            }
        }
    }
}

fn preset_label(p: &Permissions) -> &'static str {
    match preset(p) {
        "all" => "All",
        "read_only" => "Read only",
        _ => "Restricted",
    }
}

/// The permissions a form asks for: `permissions` = all / read_only / restricted, and for
/// restricted one `scope_<resource>` = none / read / write per resource.
fn permissions_of(form: &BTreeMap<String, String>) -> Result<Permissions, ApiError> {
    match form.get("permissions").map(String::as_str).unwrap_or("all") {
        "all" => Ok(Permissions::All),
        "read_only" => Ok(Permissions::parse(Some(&read_only()))?),
        "restricted" => {
            let mut scopes = Vec::new();
            for r in RESOURCES {
                match form.get(&format!("scope_{}", r.key)).map(String::as_str) {
                    Some("write") => scopes.extend(r.write.or(r.read).map(str::to_owned)),
                    Some("read") => scopes.extend(r.read.map(str::to_owned)),
                    _ => {}
                }
            }
            Ok(Permissions::parse(Some(&scopes))?)
        }
        _ => Err(ApiError::invalid(
            Some("permissions"),
            "Choose All, Restricted or Read only.",
        )),
    }
}

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub redacted: String,
    pub owner: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub permissions: &'static str,
    pub can_manage: bool,
}

pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    nav: Nav,
    project_id: String,
    project_name: String,
    archived: bool,
    keys: Vec<KeyRow>,
    can_create: bool,
    owners: Vec<Choice>,
    resources: Vec<ResourceLevel>,
    error: String,
    /// The query string of the next page of keys (empty on the last page).
    next: String,
    /// Whether this is a later page (a link back to the first is shown).
    later_page: bool,
}

fn owner_label(k: &ApiKey) -> String {
    match (&k.owner.id, &k.owner.email) {
        (KeyOwnerId::User(_), Some(email)) => email.clone(),
        (KeyOwnerId::ServiceAccount(_), _) => format!("{} (service account)", k.owner.name),
        _ => k.owner.name.clone(),
    }
}

fn expiry_label(k: &ApiKey, now: i64) -> String {
    match k.expires_at {
        None => "Never".to_owned(),
        Some(_) if k.is_expired(now) => "Expired".to_owned(),
        Some(t) => super::day(t),
    }
}

pub async fn render(
    state: &AppState,
    me: &Me,
    project: &Project,
    status: StatusCode,
    error: String,
) -> Result<Response, DashError> {
    render_page(state, me, project, status, error, None).await
}

async fn render_page(
    state: &AppState,
    me: &Me,
    project: &Project,
    status: StatusCode,
    error: String,
    after: Option<String>,
) -> Result<Response, DashError> {
    let cap = open_project(state, me, project).await?;
    let owner_view = cap.access() == ProjectAccess::Owner;
    let active = !project.is_archived();
    let later_page = after.is_some();
    let key_page = PageRequest::largest(after);
    let page = PageRequest::largest(None);
    let keys = state
        .keys
        .list_keys(
            &KeyListFilter::Project(project.id.clone(), OwnerAccessFilter::parse(None)?),
            &key_page,
        )
        .await?;
    let next = match keys.items.last() {
        Some(last) if keys.has_more => {
            serde_urlencoded::to_string([("after", last.id.as_str())]).unwrap_or_default()
        }
        _ => String::new(),
    };
    let now = keyplane_core::time::now();
    let rows = keys
        .items
        .iter()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            name: k.name.clone(),
            redacted: k.redacted_value.clone(),
            owner: owner_label(k),
            created: super::day(k.created_at),
            last_used: k
                .last_used_at
                .map_or_else(|| "Never".to_owned(), super::when),
            expires: expiry_label(k, now),
            permissions: preset_label(&k.permissions),
            can_manage: active && cap.manage_key(&k.owner.id).is_ok(),
        })
        .collect();
    let mut owners = vec![Choice {
        value: "me".to_owned(),
        label: format!("You ({})", me.0.user.email),
    }];
    if owner_view {
        let accounts = state
            .service_accounts
            .list_service_accounts(&project.id, &page)
            .await?;
        owners.extend(accounts.items.into_iter().map(|a| Choice {
            value: a.id.to_string(),
            label: format!("{} (service account)", a.name),
        }));
    }
    let page = KeysPage {
        nav: nav(state, me, Some(project), "keys").await?,
        project_id: project.id.to_string(),
        project_name: project.name.clone(),
        archived: project.is_archived(),
        keys: rows,
        can_create: active && cap.access() >= ProjectAccess::Member,
        owners,
        resources: levels(&Permissions::All),
        error,
        next,
        later_page,
    };
    Ok(html(status, &page))
}

#[derive(serde::Deserialize)]
pub struct KeysQuery {
    after: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
    Query(query): Query<KeysQuery>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let after = query.after.filter(|a| !a.is_empty());
    render_page(&state, &me, &project, StatusCode::OK, String::new(), after).await
}

#[derive(Template)]
#[template(path = "key_created.html")]
struct KeyCreatedPage {
    nav: Nav,
    project_id: String,
    name: String,
    secret: String,
}

fn expiry_of(form: &BTreeMap<String, String>, now: i64) -> Result<Option<i64>, ApiError> {
    match form.get("expires_in_days").map(|s| s.trim()) {
        None | Some("") | Some("never") => Ok(None),
        Some(days) => {
            let days: i64 = days.parse().map_err(|_| {
                ApiError::invalid(
                    Some("expires_in_days"),
                    "The expiry must be a number of days.",
                )
            })?;
            Ok(Some(
                ExpiresIn::parse(days.saturating_mul(86_400))?.expires_at(now),
            ))
        }
    }
}

async fn owner_of(
    state: &AppState,
    me: &Me,
    project: &Project,
    raw: &str,
) -> Result<KeyOwnerId, ApiError> {
    if raw.is_empty() || raw == "me" {
        return Ok(KeyOwnerId::User(me.0.user.id.clone()));
    }
    let id = ServiceAccountId::parse(raw)?;
    state
        .service_accounts
        .service_account(&project.id, &id)
        .await?
        .map(|a| KeyOwnerId::ServiceAccount(a.id))
        .ok_or_else(|| {
            ApiError::invalid(
                Some("owner"),
                "That service account is not part of this project.",
            )
        })
}

pub async fn create(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        project.ensure_active()?;
        let cap = crate::auth::project_access(&state, &me.0.principal, &project.id).await?;
        let owner = owner_of(
            &state,
            &me,
            &project,
            form.get("owner").map_or("", String::as_str),
        )
        .await?;
        let write = cap.manage_key(&owner)?;
        let now = keyplane_core::time::now();
        let new = NewKey {
            owner,
            name: Name::parse("name", form.get("name").map_or("", String::as_str))?,
            permissions: permissions_of(&form)?,
            expires_at: expiry_of(&form, now)?,
        };
        create_key(&state, &write, new).await
    }
    .await;
    match result {
        Ok((plain, key)) => {
            let page = KeyCreatedPage {
                nav: nav(&state, &me, Some(&project), "keys").await?,
                project_id: project.id.to_string(),
                name: key.name,
                secret: plain.expose().to_owned(),
            };
            Ok(html(StatusCode::OK, &page))
        }
        Err(e) if e.status().is_client_error() => {
            render(
                &state,
                &me,
                &project,
                super::status_of(&e),
                super::message_of(&e),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The key `key_id` of this project, and the right to change it (a key of another project
/// is "not found", whatever the form says).
async fn key_of(state: &AppState, project: &Project, key_id: &str) -> Result<ApiKey, ApiError> {
    let key = find_key(state, project, key_id).await?;
    if key.kind == KeyKind::Admin {
        return Err(keyplane_core::DomainError::not_found("API key", key_id).into());
    }
    Ok(key)
}

pub async fn revoke(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, key_id)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let key = key_of(&state, &project, &key_id).await?;
        let cap = crate::auth::project_access(&state, &me.0.principal, &project.id).await?;
        let write = cap.manage_key(&key.owner.id)?;
        delete_key(&state, &write, &key).await
    }
    .await;
    change!(
        result,
        |()| see(&format!("/projects/{}", project.id)),
        |s, m| render(&state, &me, &project, s, m)
    )
}

#[derive(Template)]
#[template(path = "key_edit.html")]
struct EditKeyPage {
    nav: Nav,
    project_id: String,
    key_id: String,
    name: String,
    redacted: String,
    preset: &'static str,
    resources: Vec<ResourceLevel>,
    error: String,
}

async fn render_edit(
    state: &AppState,
    me: &Me,
    project: &Project,
    key: &ApiKey,
    status: StatusCode,
    error: String,
) -> Result<Response, DashError> {
    let page = EditKeyPage {
        nav: nav(state, me, Some(project), "keys").await?,
        project_id: project.id.to_string(),
        key_id: key.id.to_string(),
        name: key.name.clone(),
        redacted: key.redacted_value.clone(),
        preset: preset(&key.permissions),
        resources: levels(&key.permissions),
        error,
    };
    Ok(html(status, &page))
}

pub async fn edit_form(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, key_id)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let key = key_of(&state, &project, &key_id).await?;
    let cap = open_project(&state, &me, &project).await?;
    cap.manage_key(&key.owner.id)?;
    render_edit(&state, &me, &project, &key, StatusCode::OK, String::new()).await
}

pub async fn edit(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, key_id)): Path<(String, String)>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let key = key_of(&state, &project, &key_id).await?;
    let result = async {
        project.ensure_active()?;
        let cap = crate::auth::project_access(&state, &me.0.principal, &project.id).await?;
        let write = cap.manage_key(&key.owner.id)?;
        let update = KeyUpdate {
            name: Some(Name::parse(
                "name",
                form.get("name").map_or("", String::as_str),
            )?),
            permissions: Some(permissions_of(&form)?),
            expires_at: None,
        };
        update_key(&state, &write, &key, &update).await
    }
    .await;
    change!(
        result,
        |_| see(&format!("/projects/{}", project.id)),
        |s, m| render_edit(&state, &me, &project, &key, s, m)
    )
}
