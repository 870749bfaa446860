use super::{key_created_details, mint, reread, views, KeySpec, Paging};
use crate::auth::Admin;
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{self as api, CreateAdminApiKey, List};
use keyplane_core::keys::{KeyId, KeyKind};
use keyplane_core::model::{ApiKey, ExpiresIn, KeyOwnerId, Name};
use keyplane_core::pagination::Order;
use keyplane_core::ports::KeyListFilter;
use keyplane_core::scopes::Permissions;
use keyplane_core::DomainError;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    paging: Paging,
    order: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> Result<Json<List<api::AdminApiKey>>, ApiError> {
    admin.read()?;
    let page = q.paging.request()?;
    let order = Order::parse(q.order.as_deref())?;
    let keys = state
        .keys
        .list_keys(&KeyListFilter::Admin(order), &page)
        .await?;
    Ok(Json(List::new(
        keys.items.iter().map(views::admin_key).collect(),
        keys.has_more,
    )))
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Json(body): Json<CreateAdminApiKey>,
) -> Result<Json<api::AdminApiKey>, ApiError> {
    let cap = admin.write()?;
    let now = keyplane_core::time::now();
    let spec = KeySpec {
        kind: KeyKind::Admin,
        project_id: None,
        name: Name::parse("name", &body.name)?,
        permissions: Permissions::parse(body.scopes.as_deref())?,
        owner: KeyOwnerId::User(cap.user_id()?),
        now,
        expires_at: body
            .expires_in_seconds
            .map(ExpiresIn::parse)
            .transpose()?
            .map(|e| e.expires_at(now)),
    };
    let (plain, record) = mint(&state, spec);
    let event = cap.event("api_key.created", None, key_created_details(&record));
    state.keys.insert_key(&record, &[event]).await?;
    let mut view = views::admin_key(&reread(&state, &record.id).await?);
    view.value = Some(plain.expose().to_owned());
    Ok(Json(view))
}

async fn find(state: &AppState, raw_id: &str) -> Result<ApiKey, ApiError> {
    let id = KeyId::parse(raw_id)?;
    match state.keys.key(&id).await? {
        Some(key) if key.kind == KeyKind::Admin => Ok(key),
        _ => Err(DomainError::not_found("admin API key", raw_id).into()),
    }
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path(key_id): Path<String>,
) -> Result<Json<api::AdminApiKey>, ApiError> {
    admin.read()?;
    Ok(Json(views::admin_key(&find(&state, &key_id).await?)))
}

pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(key_id): Path<String>,
) -> Result<Json<api::Deleted>, ApiError> {
    let cap = admin.write()?;
    let key = find(&state, &key_id).await?;
    let event = cap.event("api_key.deleted", None, json!({"id": key.id.as_str()}));
    let deleted = state
        .keys
        .delete_key(&key.id, keyplane_core::time::now(), &[event])
        .await?;
    state.changed(Change::key(&key.id));
    if !deleted {
        // A concurrent request deleted it first.
        return Err(DomainError::not_found("admin API key", key_id).into());
    }
    Ok(Json(views::deleted(
        "organization.admin_api_key.deleted",
        key.id.as_str(),
    )))
}
