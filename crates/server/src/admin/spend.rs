//! Spend limits (`/organization/projects/{id}/spend_limit`) and spend alerts
//! (`/organization/spend_alerts`, `/organization/projects/{id}/spend_alerts`).

use super::projects::find as find_project;
use super::Paging;
use crate::auth::{Admin, OrgWrite};
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_core::ids::{random_base62, ProjectId};
use keyplane_core::policy::{month_start, parse_money, SpendAlert, SpendLimit};
use keyplane_core::DomainError;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct SetSpendLimit {
    pub threshold_amount: i64,
    pub currency: String,
    pub interval: String,
}

async fn limit_view(state: &AppState, project: &ProjectId, l: &SpendLimit) -> Value {
    let spent = state
        .gateway
        .month_spend(project.as_str(), month_start(keyplane_core::time::now()))
        .await
        .unwrap_or(0);
    let enforcing = keyplane_core::usage::threshold_reached(l.threshold_amount, spent);
    json!({
        "object": "project.spend_limit",
        "threshold_amount": l.threshold_amount,
        "currency": l.currency,
        "interval": l.interval,
        "enforcement": {"status": if enforcing { "enforcing" } else { "inactive" }},
    })
}

pub async fn retrieve_limit(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.read()?;
    let project = find_project(&state, &project_id).await?;
    let limit = state
        .policies
        .spend_limit(&project.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Project {project_id} has no spend limit.")))?;
    Ok(Json(limit_view(&state, &project.id, &limit).await))
}

pub async fn set_limit(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    Json(body): Json<SetSpendLimit>,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(set_limit_with(&state, &cap, project_id, body).await?))
}

/// `set_limit`, shared by the Admin API and the dashboard.
pub async fn set_limit_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    body: SetSpendLimit,
) -> Result<Value, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    parse_money(body.threshold_amount, 1, &body.currency, &body.interval)?;
    let limit = SpendLimit {
        threshold_amount: body.threshold_amount,
        currency: "USD".into(),
        interval: body.interval,
    };
    let event = cap.event(
        "project.updated",
        Some(&project.id),
        json!({"id": project.id.as_str(), "changes_requested": {"spend_limit": {"threshold_amount": limit.threshold_amount}}}),
    );
    state
        .policies
        .set_spend_limit(&project.id, Some(&limit), &[event])
        .await?;
    state.changed(Change::policy(&project.id));
    Ok(limit_view(state, &project.id, &limit).await)
}

pub async fn delete_limit(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(delete_limit_with(&state, &cap, project_id).await?))
}

/// `delete_limit`, shared by the Admin API and the dashboard.
pub async fn delete_limit_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
) -> Result<Value, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let event = cap.event(
        "project.updated",
        Some(&project.id),
        json!({"id": project.id.as_str(), "changes_requested": {"spend_limit": null}}),
    );
    state
        .policies
        .set_spend_limit(&project.id, None, &[event])
        .await?;
    state.changed(Change::policy(&project.id));
    Ok(json!({"object": "project.spend_limit.deleted", "deleted": true}))
}

#[derive(Debug, Deserialize)]
pub struct NotificationChannel {
    #[serde(rename = "type")]
    kind: String,
    recipients: Vec<String>,
    subject_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AlertBody {
    pub threshold_amount: i64,
    pub currency: String,
    pub interval: String,
    notification_channel: NotificationChannel,
}

fn object(project: bool) -> &'static str {
    if project {
        "project.spend_alert"
    } else {
        "organization.spend_alert"
    }
}

fn alert_view(a: &SpendAlert) -> Value {
    json!({
        "object": object(a.project_id.is_some()),
        "id": a.id,
        "threshold_amount": a.threshold_amount,
        "currency": a.currency,
        "interval": a.interval,
        "notification_channel": {
            "type": "email",
            "recipients": a.recipients,
            "subject_prefix": a.subject_prefix,
        },
    })
}

fn validated(body: &AlertBody) -> Result<(), ApiError> {
    parse_money(body.threshold_amount, 0, &body.currency, &body.interval)?;
    let ch = &body.notification_channel;
    if ch.kind != "email" {
        return Err(ApiError::invalid(
            Some("notification_channel.type"),
            "Invalid 'notification_channel.type': only 'email' is supported (delivery is by the webhook configured in keyplane.toml).",
        ));
    }
    if ch.recipients.len() > 50
        || ch.recipients.iter().any(|r| {
            !r.contains('@')
                || r.len() > 320
                || r.chars().any(|c| c.is_whitespace() || c.is_control())
        })
    {
        return Err(ApiError::invalid(
            Some("notification_channel.recipients"),
            "Invalid 'notification_channel.recipients': expected up to 50 email addresses.",
        ));
    }
    if ch
        .subject_prefix
        .as_ref()
        .is_some_and(|p| p.chars().count() > 100 || p.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            Some("notification_channel.subject_prefix"),
            "Invalid 'notification_channel.subject_prefix'.",
        ));
    }
    Ok(())
}

/// Resolves the optional project of a spend-alert route (`None` for organization alerts).
async fn scope(
    state: &AppState,
    project_id: Option<String>,
) -> Result<Option<ProjectId>, ApiError> {
    match project_id {
        None => Ok(None),
        Some(p) => {
            let project = find_project(state, &p).await?;
            Ok(Some(project.id))
        }
    }
}

async fn find_alert(
    state: &AppState,
    project: &Option<ProjectId>,
    id: &str,
) -> Result<SpendAlert, ApiError> {
    match state.alerts.alert(id).await? {
        Some(a) if a.project_id.as_deref() == project.as_ref().map(|p| p.as_str()) => Ok(a),
        _ => Err(DomainError::not_found("spend alert", id).into()),
    }
}

async fn list(
    state: AppState,
    admin: Admin,
    project: Option<String>,
    paging: Paging,
) -> Result<Json<Value>, ApiError> {
    admin.read()?;
    let project = scope(&state, project).await?;
    let page = state
        .alerts
        .list_alerts(project.as_ref(), &paging.request()?)
        .await?;
    let data: Vec<Value> = page.items.iter().map(alert_view).collect();
    Ok(Json(json!({
        "object": "list",
        "first_id": page.items.first().map(|a| a.id.clone()),
        "last_id": page.items.last().map(|a| a.id.clone()),
        "has_more": page.has_more,
        "data": data,
    })))
}

async fn create(
    state: AppState,
    admin: Admin,
    project: Option<String>,
    body: AlertBody,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    let project = scope(&state, project).await?;
    validated(&body)?;
    let alert = SpendAlert {
        id: format!("alert_{}", random_base62(24)),
        project_id: project.as_ref().map(|p| p.to_string()),
        threshold_amount: body.threshold_amount,
        currency: "USD".into(),
        interval: body.interval,
        recipients: body.notification_channel.recipients,
        subject_prefix: body.notification_channel.subject_prefix,
        created_at: keyplane_core::time::now(),
    };
    let event = match &project {
        Some(p) => cap.event(
            "project.updated",
            Some(p),
            json!({"id": p.as_str(), "changes_requested": {"spend_alert_created": alert.id}}),
        ),
        None => cap.event(
            "organization.updated",
            None,
            json!({"changes_requested": {"spend_alert_created": alert.id}}),
        ),
    };
    state.alerts.create_alert(&alert, &[event]).await?;
    Ok(Json(alert_view(&alert)))
}

async fn retrieve(
    state: AppState,
    admin: Admin,
    project: Option<String>,
    id: String,
) -> Result<Json<Value>, ApiError> {
    admin.read()?;
    let project = scope(&state, project).await?;
    Ok(Json(alert_view(&find_alert(&state, &project, &id).await?)))
}

async fn update(
    state: AppState,
    admin: Admin,
    project: Option<String>,
    id: String,
    body: AlertBody,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    let project = scope(&state, project).await?;
    let mut alert = find_alert(&state, &project, &id).await?;
    validated(&body)?;
    alert.threshold_amount = body.threshold_amount;
    alert.interval = body.interval;
    alert.recipients = body.notification_channel.recipients;
    alert.subject_prefix = body.notification_channel.subject_prefix;
    let event = match &project {
        Some(p) => cap.event(
            "project.updated",
            Some(p),
            json!({"id": p.as_str(), "changes_requested": {"spend_alert_updated": alert.id}}),
        ),
        None => cap.event(
            "organization.updated",
            None,
            json!({"changes_requested": {"spend_alert_updated": alert.id}}),
        ),
    };
    state.alerts.update_alert(&alert, &[event]).await?;
    Ok(Json(alert_view(&alert)))
}

async fn delete(
    state: AppState,
    admin: Admin,
    project: Option<String>,
    id: String,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    let project = scope(&state, project).await?;
    let alert = find_alert(&state, &project, &id).await?;
    let event = match &project {
        Some(p) => cap.event(
            "project.updated",
            Some(p),
            json!({"id": p.as_str(), "changes_requested": {"spend_alert_deleted": alert.id}}),
        ),
        None => cap.event(
            "organization.updated",
            None,
            json!({"changes_requested": {"spend_alert_deleted": alert.id}}),
        ),
    };
    if !state
        .alerts
        .delete_alert(&alert.id, keyplane_core::time::now(), &[event])
        .await?
    {
        return Err(DomainError::not_found("spend alert", &id).into());
    }
    Ok(Json(
        json!({"object": format!("{}.deleted", object(project.is_some())), "id": alert.id, "deleted": true}),
    ))
}

// Thin route adapters: organization alerts and project alerts share the code above.
pub async fn org_list(
    State(s): State<AppState>,
    a: Admin,
    Query(p): Query<Paging>,
) -> Result<Json<Value>, ApiError> {
    list(s, a, None, p).await
}
pub async fn org_create(
    State(s): State<AppState>,
    a: Admin,
    Json(b): Json<AlertBody>,
) -> Result<Json<Value>, ApiError> {
    create(s, a, None, b).await
}
pub async fn org_retrieve(
    State(s): State<AppState>,
    a: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    retrieve(s, a, None, id).await
}
pub async fn org_update(
    State(s): State<AppState>,
    a: Admin,
    Path(id): Path<String>,
    Json(b): Json<AlertBody>,
) -> Result<Json<Value>, ApiError> {
    update(s, a, None, id, b).await
}
pub async fn org_delete(
    State(s): State<AppState>,
    a: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    delete(s, a, None, id).await
}
pub async fn project_list(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<String>,
    Query(q): Query<Paging>,
) -> Result<Json<Value>, ApiError> {
    list(s, a, Some(p), q).await
}
pub async fn project_create(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<String>,
    Json(b): Json<AlertBody>,
) -> Result<Json<Value>, ApiError> {
    create(s, a, Some(p), b).await
}
pub async fn project_retrieve(
    State(s): State<AppState>,
    a: Admin,
    Path((p, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    retrieve(s, a, Some(p), id).await
}
pub async fn project_update(
    State(s): State<AppState>,
    a: Admin,
    Path((p, id)): Path<(String, String)>,
    Json(b): Json<AlertBody>,
) -> Result<Json<Value>, ApiError> {
    update(s, a, Some(p), id, b).await
}
pub async fn project_delete(
    State(s): State<AppState>,
    a: Admin,
    Path((p, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    delete(s, a, Some(p), id).await
}
