//! `GET /organization/projects/{id}/rate_limits`, `POST …/rate_limits/{rate_limit_id}`.

use super::projects::find as find_project;
use crate::auth::{Admin, OrgWrite};
use crate::changes::Change;
use crate::error::ApiError;
use crate::extract::{int_param, Json, Path, QueryParams};
use crate::state::AppState;
use axum::extract::State;
use keyplane_core::catalog::ModelSpec;
use keyplane_core::pagination::Limit;
use keyplane_core::policy::{parse_limit, rate_limit_id, EffectiveLimits, RateLimitOverride};
use keyplane_core::DomainError;
use serde::Deserialize;
use serde_json::{json, Value};

fn view(l: &EffectiveLimits) -> Value {
    let mut v = json!({
        "object": "project.rate_limit",
        "id": rate_limit_id(&l.model),
        "model": l.model,
        "max_requests_per_1_minute": l.requests_per_minute,
        "max_tokens_per_1_minute": l.tokens_per_minute,
    });
    if let Some(obj) = v.as_object_mut() {
        for (k, val) in [
            ("max_requests_per_1_day", l.requests_per_day),
            ("max_images_per_1_minute", l.images_per_minute),
            (
                "max_audio_megabytes_per_1_minute",
                l.audio_megabytes_per_minute,
            ),
            (
                "batch_1_day_max_input_tokens",
                l.batch_1_day_max_input_tokens,
            ),
        ] {
            if let Some(n) = val {
                obj.insert(k.into(), json!(n));
            }
        }
    }
    v
}

/// Every model of the catalog plus any model with a stored override, in catalog order.
pub fn all_limits(state: &AppState, overrides: &[RateLimitOverride]) -> Vec<EffectiveLimits> {
    let models = state.gateway.policies.models();
    let mut out: Vec<EffectiveLimits> = models
        .iter()
        .map(|spec| EffectiveLimits::new(spec, overrides.iter().find(|o| o.model == spec.name)))
        .collect();
    for o in overrides {
        if !models.iter().any(|m| m.name == o.model) {
            let spec: ModelSpec = keyplane_core::catalog::fallback(&o.model);
            out.push(EffectiveLimits::new(&spec, Some(o)));
        }
    }
    out
}

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Path(project_id): Path<String>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    admin.read()?;
    let limit = match int_param("limit", q.get("limit"))? {
        None => 100,
        Some(n) => i64::from(Limit::parse(Some(n))?.get()),
    } as usize;
    let project = find_project(&state, &project_id).await?;
    let overrides = state.policies.rate_limit_overrides(&project.id).await?;
    let all = all_limits(&state, &overrides);
    let position = |id: &str| all.iter().position(|l| rate_limit_id(&l.model) == id);
    let bad_cursor = |p: &str| {
        ApiError::invalid(
            Some(p),
            format!("Invalid '{p}': not a rate limit id of this project."),
        )
    };
    let (start, end) = match (q.get("after"), q.get("before")) {
        (Some(a), _) => {
            let i = position(a).ok_or_else(|| bad_cursor("after"))? + 1;
            (i, (i + limit).min(all.len()))
        }
        (None, Some(b)) => {
            let i = position(b).ok_or_else(|| bad_cursor("before"))?;
            (i.saturating_sub(limit), i)
        }
        (None, None) => (0, limit.min(all.len())),
    };
    let page = &all[start.min(all.len())..end];
    let data: Vec<Value> = page.iter().map(view).collect();
    Ok(Json(json!({
        "object": "list",
        "first_id": page.first().map(|l| rate_limit_id(&l.model)),
        "last_id": page.last().map(|l| rate_limit_id(&l.model)),
        "has_more": end < all.len(),
        "data": data,
    })))
}

#[derive(Debug, Deserialize)]
pub struct UpdateRateLimit {
    pub max_requests_per_1_minute: Option<i64>,
    pub max_tokens_per_1_minute: Option<i64>,
    pub max_images_per_1_minute: Option<i64>,
    pub max_audio_megabytes_per_1_minute: Option<i64>,
    pub max_requests_per_1_day: Option<i64>,
    pub batch_1_day_max_input_tokens: Option<i64>,
}

pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path((project_id, rate_limit_id_raw)): Path<(String, String)>,
    Json(body): Json<UpdateRateLimit>,
) -> Result<Json<Value>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(
        update_with(&state, &cap, project_id, rate_limit_id_raw, body).await?,
    ))
}

/// `update`, shared by the Admin API and the dashboard.
pub async fn update_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    project_id: String,
    rate_limit_id_raw: String,
    body: UpdateRateLimit,
) -> Result<Value, ApiError> {
    let project = find_project(state, &project_id).await?;
    project.ensure_active()?;
    let overrides = state.policies.rate_limit_overrides(&project.id).await?;
    let current = all_limits(state, &overrides)
        .into_iter()
        .find(|l| rate_limit_id(&l.model) == rate_limit_id_raw)
        .ok_or_else(|| DomainError::not_found("rate limit", &rate_limit_id_raw))?;
    let mut o = overrides
        .into_iter()
        .find(|o| o.model == current.model)
        .unwrap_or_else(|| RateLimitOverride {
            model: current.model.clone(),
            ..Default::default()
        });
    let fields = [
        (
            "max_requests_per_1_minute",
            body.max_requests_per_1_minute,
            &mut o.max_requests_per_1_minute,
        ),
        (
            "max_tokens_per_1_minute",
            body.max_tokens_per_1_minute,
            &mut o.max_tokens_per_1_minute,
        ),
        (
            "max_images_per_1_minute",
            body.max_images_per_1_minute,
            &mut o.max_images_per_1_minute,
        ),
        (
            "max_audio_megabytes_per_1_minute",
            body.max_audio_megabytes_per_1_minute,
            &mut o.max_audio_megabytes_per_1_minute,
        ),
        (
            "max_requests_per_1_day",
            body.max_requests_per_1_day,
            &mut o.max_requests_per_1_day,
        ),
        (
            "batch_1_day_max_input_tokens",
            body.batch_1_day_max_input_tokens,
            &mut o.batch_1_day_max_input_tokens,
        ),
    ];
    let mut changes = serde_json::Map::new();
    for (name, value, slot) in fields {
        if let Some(v) = parse_limit(name, value)? {
            *slot = Some(v);
            changes.insert(name.into(), json!(v));
        }
    }
    let event = cap.event(
        "rate_limit.updated",
        Some(&project.id),
        json!({"id": rate_limit_id(&current.model), "changes_requested": changes}),
    );
    state
        .policies
        .set_rate_limit(&project.id, &o, &[event])
        .await?;
    state.changed(Change::policy(&project.id));
    let overrides = state.policies.rate_limit_overrides(&project.id).await?;
    let updated = all_limits(state, &overrides)
        .into_iter()
        .find(|l| l.model == current.model)
        .ok_or_else(|| ApiError::Internal("rate limit vanished after update".into()))?;
    Ok(view(&updated))
}
