//! `GET /organization/audit_logs`: newest first, with every filter of OpenAI's API, arrays in
//! both styles (`name[]=a&name[]=b` and `name=a&name=b`), `after` and `before`.

use super::Paging;
use crate::auth::Admin;
use crate::error::{shown, ApiError};
use crate::extract::{bool_param, int_param, Json, QueryParams};
use crate::state::AppState;
use axum::extract::State;
use keyplane_core::audit::{AuditCursor, AuditFilter, AuditQuery, TimeRange};
use keyplane_core::model::AuditEvent;
use keyplane_core::ports::StoreError;
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

/// A cursor id as [`Paging`] checks `after`.
fn cursor(name: &str, raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(a)
            if a.len() > 128
                || !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Err(ApiError::invalid(
                Some(name),
                format!(
                    "Invalid '{name}': '{}' is not an id from this list.",
                    shown(a)
                ),
            ))
        }
        Some(a) => Ok(Some(a.to_owned())),
    }
}

fn filter(q: &QueryParams) -> Result<AuditFilter, ApiError> {
    let bound = |op: &str| {
        let name = format!("effective_at[{op}]");
        int_param(&name, q.get(&name))
    };
    let f = AuditFilter {
        effective_at: TimeRange {
            gt: bound("gt")?,
            gte: bound("gte")?,
            lt: bound("lt")?,
            lte: bound("lte")?,
        },
        project_ids: q.all("project_ids"),
        event_types: q.all("event_types"),
        actor_ids: q.all("actor_ids"),
        actor_emails: q.all("actor_emails"),
        resource_ids: q.all("resource_ids"),
    };
    f.check()?;
    Ok(f)
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    admin.read()?;
    let limit = Paging {
        limit: q.get("limit").map(str::to_owned),
        after: None,
    }
    .request()?
    .limit;
    let after = cursor("after", q.get("after"))?;
    let before = cursor("before", q.get("before"))?;
    let cursor = match (after, before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                Some("before"),
                "Give 'after' or 'before', not both.",
            ))
        }
        (Some(a), None) => AuditCursor::After(a),
        (None, Some(b)) => AuditCursor::Before(b),
        (None, None) => AuditCursor::Newest,
    };
    let filter = filter(&q)?;
    // Keyplane writes no tenant-scoped event types.
    let tenant_only = bool_param("tenant_only", q.get("tenant_only"))?.unwrap_or(false);
    let page = if tenant_only {
        keyplane_core::pagination::Page {
            items: Vec::new(),
            has_more: false,
        }
    } else {
        let query = AuditQuery {
            filter,
            limit,
            cursor: cursor.clone(),
        };
        state
            .audit
            .query_audit_events(&query)
            .await
            .map_err(|e| match (e, &cursor) {
                (StoreError::UnknownCursor(id), AuditCursor::Before(_)) => ApiError::invalid(
                    Some("before"),
                    format!(
                        "Invalid 'before': '{}' is not an id from this list.",
                        shown(&id)
                    ),
                ),
                (e, _) => e.into(),
            })?
    };
    let data: Vec<Value> = page.items.iter().map(view).collect();
    Ok(Json(json!({
        "object": "list",
        "first_id": page.items.first().map(|e| e.id.clone()),
        "last_id": page.items.last().map(|e| e.id.clone()),
        "has_more": page.has_more,
        "data": data,
    })))
}
