use super::projects::find as find_project;
use super::{key_created_details, mint, views, KeySpec, Paging};
use crate::auth::{Admin, OrgWrite};
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{
    self as api, CreateServiceAccount, CreateServiceAccountApiKey, List, ModifyServiceAccount,
};
use keyplane_core::ids::ServiceAccountId;
use keyplane_core::keys::{KeyKind, PlaintextKey};
use keyplane_core::model::{
    ExpiresIn, KeyOwnerId, Name, NewApiKey, Project, ServiceAccount, ServiceAccountRole,
};
use keyplane_core::scopes::Permissions;
use keyplane_core::time::UnixSeconds;
use keyplane_core::DomainError;
use serde_json::json;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Json<List<api::ServiceAccount>>, ApiError> {
    admin.read()?;
    let page = paging.request()?;
    let project = find_project(&state, &project_id).await?;
    let accounts = state
        .service_accounts
        .list_service_accounts(&project.id, &page)
        .await?;
    Ok(Json(List::new(
        accounts.items.iter().map(views::service_account).collect(),
        accounts.has_more,
    )))
}

fn expiry(raw: Option<i64>, now: UnixSeconds) -> Result<Option<UnixSeconds>, ApiError> {
    Ok(raw
        .map(ExpiresIn::parse)
        .transpose()?
        .map(|e| e.expires_at(now)))
}

fn key_view(plain: &PlaintextKey, record: &NewApiKey) -> api::ServiceAccountApiKey {
    api::ServiceAccountApiKey {
        object: "organization.project.service_account.api_key".to_owned(),
        id: record.id.to_string(),
        name: record.name.clone(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        value: plain.expose().to_owned(),
        scopes: record.permissions.to_list(),
    }
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Json(body): Json<CreateServiceAccount>,
) -> Result<Json<api::ServiceAccountCreated>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(create_with(&state, &cap, project_id, body).await?))
}

/// `create`, shared by the Admin API and the dashboard.
pub async fn create_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    body: CreateServiceAccount,
) -> Result<api::ServiceAccountCreated, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let now = keyplane_core::time::now();
    let only = body.create_service_account_only.unwrap_or(false);
    let account = ServiceAccount {
        id: ServiceAccountId::generate(),
        project_id: project.id.clone(),
        name: Name::parse("name", &body.name)?.into_string(),
        role: if only { "none" } else { "member" }.to_owned(),
        created_at: now,
    };
    let key = if only {
        None
    } else {
        Some(mint(
            state,
            KeySpec {
                kind: KeyKind::ServiceAccount,
                project_id: Some(project.id.clone()),
                name: Name::parse("name", "Secret Key")?,
                permissions: Permissions::All,
                owner: KeyOwnerId::ServiceAccount(account.id.clone()),
                now,
                expires_at: expiry(body.expires_in_seconds, now)?,
            },
        ))
    };
    let mut events = vec![cap.event(
        "service_account.created",
        Some(&project.id),
        json!({"id": account.id.as_str(), "data": {"role": account.role}}),
    )];
    if let Some((_, record)) = &key {
        events.push(cap.event(
            "api_key.created",
            Some(&project.id),
            key_created_details(record),
        ));
    }
    state
        .service_accounts
        .create_service_account(&account, key.as_ref().map(|(_, r)| r), &events)
        .await?;
    Ok(api::ServiceAccountCreated {
        object: "organization.project.service_account".to_owned(),
        id: account.id.to_string(),
        name: account.name,
        role: account.role,
        created_at: account.created_at,
        api_key: key.map(|(plain, record)| key_view(&plain, &record)),
    })
}

async fn find(
    state: &AppState,
    project: &Project,
    raw_id: &str,
) -> Result<ServiceAccount, ApiError> {
    let id = ServiceAccountId::parse(raw_id)?;
    state
        .service_accounts
        .service_account(&project.id, &id)
        .await?
        .ok_or_else(|| DomainError::not_found("service account", raw_id).into())
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, account_id)): Path<(String, String)>,
) -> Result<Json<api::ServiceAccount>, ApiError> {
    admin.read()?;
    let project = find_project(&state, &project_id).await?;
    Ok(Json(views::service_account(
        &find(&state, &project, &account_id).await?,
    )))
}

pub async fn modify(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, account_id)): Path<(String, String)>,
    Json(body): Json<ModifyServiceAccount>,
) -> Result<Json<api::ServiceAccount>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(
        modify_with(&state, &cap, project_id, account_id, body).await?,
    ))
}

/// `modify`, shared by the Admin API and the dashboard.
pub async fn modify_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    account_id: String,
    body: ModifyServiceAccount,
) -> Result<api::ServiceAccount, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let mut account = find(state, &project, &account_id).await?;
    if let Some(name) = &body.name {
        account.name = Name::parse("name", name)?.into_string();
    }
    if let Some(role) = &body.role {
        account.role = ServiceAccountRole::parse(role)?.as_str().to_owned();
    }
    let event = cap.event(
        "service_account.updated",
        Some(&project.id),
        json!({"id": account.id.as_str(), "changes_requested": {"role": body.role, "name": body.name}}),
    );
    state
        .service_accounts
        .update_service_account(&account, &[event])
        .await?;
    Ok(views::service_account(&account))
}

pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, account_id)): Path<(String, String)>,
) -> Result<Json<api::Deleted>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(
        delete_with(&state, &cap, project_id, account_id).await?,
    ))
}

/// `delete`, shared by the Admin API and the dashboard.
pub async fn delete_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    account_id: String,
) -> Result<api::Deleted, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let account = find(state, &project, &account_id).await?;
    let event = cap.event(
        "service_account.deleted",
        Some(&project.id),
        json!({"id": account.id.as_str()}),
    );
    let revoked = state
        .service_accounts
        .delete_service_account(
            &project.id,
            &account.id,
            keyplane_core::time::now(),
            &[event],
        )
        .await?;
    let Some(revoked) = revoked else {
        // A concurrent request deleted it first.
        return Err(DomainError::not_found("service account", account_id).into());
    };
    for id in &revoked {
        state.changed(Change::key(id));
    }
    Ok(views::deleted(
        "organization.project.service_account.deleted",
        account.id.as_str(),
    ))
}

/// `POST …/service_accounts/{id}/api_keys`: another key for an existing service account.
pub async fn create_key(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, account_id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<CreateServiceAccountApiKey>,
) -> Result<Json<api::ServiceAccountApiKey>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(
        create_key_with(&state, &cap, project_id, account_id, body).await?,
    ))
}

/// `create_key`, shared by the Admin API and the dashboard.
pub async fn create_key_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    account_id: String,
    body: CreateServiceAccountApiKey,
) -> Result<api::ServiceAccountApiKey, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let account = find(state, &project, &account_id).await?;
    let now = keyplane_core::time::now();
    let (plain, record) = mint(
        state,
        KeySpec {
            kind: KeyKind::ServiceAccount,
            project_id: Some(project.id.clone()),
            name: Name::parse("name", body.name.as_deref().unwrap_or("Secret Key"))?,
            permissions: Permissions::parse(body.scopes.as_deref())?,
            owner: KeyOwnerId::ServiceAccount(account.id.clone()),
            now,
            expires_at: expiry(body.expires_in_seconds, now)?,
        },
    );
    let event = cap.event(
        "api_key.created",
        Some(&project.id),
        key_created_details(&record),
    );
    state.keys.insert_key(&record, &[event]).await?;
    Ok(key_view(&plain, &record))
}
