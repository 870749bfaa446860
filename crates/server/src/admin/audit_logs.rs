use super::Paging;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_core::model::AuditEvent;
use serde_json::{json, Map, Value};

/// An audit event as OpenAI's `AuditLog` object: the payload sits under the event type's key.
fn view(e: &AuditEvent) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(e.id));
    obj.insert("type".into(), json!(e.event_type));
    obj.insert("effective_at".into(), json!(e.effective_at));
    if let Some(p) = &e.project_id {
        obj.insert("project".into(), json!({"id": p}));
    }
    obj.insert("actor".into(), e.actor.clone());
    obj.insert(e.event_type.clone(), e.details.clone());
    Value::Object(obj)
}

/// Newest first. Filters arrive with the people-and-audit work.
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, ApiError> {
    admin.read()?;
    let page = state.audit.list_audit_events(&paging.request()?).await?;
    let data: Vec<Value> = page.items.iter().map(view).collect();
    Ok(Json(json!({
        "object": "list",
        "first_id": page.items.first().map(|e| e.id.clone()),
        "last_id": page.items.last().map(|e| e.id.clone()),
        "has_more": page.has_more,
        "data": data,
    })))
}
