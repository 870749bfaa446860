//! A project's rate limits per model and its monthly spend limit (organization owners edit,
//! as in the Admin API).

use super::session::Me;
use super::{html, nav, open_project, see, DashError, Form, Nav};
use crate::admin::projects::find as find_project;
use crate::admin::rate_limits::{all_limits, update_with, UpdateRateLimit};
use crate::admin::spend::{delete_limit_with, set_limit_with, SetSpendLimit};
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyplane_core::model::Project;
use keyplane_core::policy::{month_start, rate_limit_id};
use keyplane_core::usage::NANO_USD_PER_USD;
use serde::Deserialize;

pub struct LimitRow {
    pub id: String,
    pub model: String,
    pub rpm: u64,
    pub tpm: u64,
    pub rpd: String,
}

#[derive(Template)]
#[template(path = "limits.html")]
struct LimitsPage {
    nav: Nav,
    project_id: String,
    limits: Vec<LimitRow>,
    spend_limit: String,
    spent: String,
    can_edit: bool,
    error: String,
}

async fn render(
    state: &AppState,
    me: &Me,
    project: &Project,
    status: StatusCode,
    error: String,
) -> Result<Response, DashError> {
    open_project(state, me, project).await?;
    let overrides = state.policies.rate_limit_overrides(&project.id).await?;
    let limits = all_limits(state, &overrides)
        .into_iter()
        .map(|l| LimitRow {
            id: rate_limit_id(&l.model),
            rpm: l.requests_per_minute,
            tpm: l.tokens_per_minute,
            rpd: l
                .requests_per_day
                .map(|n| n.to_string())
                .unwrap_or_default(),
            model: l.model,
        })
        .collect();
    let spend_limit = state
        .policies
        .spend_limit(&project.id)
        .await?
        .map(|l| format!("{:.2}", l.threshold_amount as f64 / 100.0))
        .unwrap_or_default();
    let now = keyplane_core::time::now();
    let spent = state
        .usage
        .cost_since(Some(&project.id), month_start(now))
        .await?;
    let page = LimitsPage {
        nav: nav(state, me, Some(project), "limits").await?,
        project_id: project.id.to_string(),
        limits,
        spend_limit,
        spent: format!("{:.2}", spent as f64 / NANO_USD_PER_USD),
        can_edit: me.0.principal.org_write().is_ok() && !project.is_archived(),
        error,
    };
    Ok(html(status, &page))
}

pub async fn page(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    render(&state, &me, &project, StatusCode::OK, String::new()).await
}

fn number(name: &str, raw: &str) -> Result<Option<i64>, ApiError> {
    let raw = raw.trim().replace([',', '_'], "");
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| {
        ApiError::invalid(
            Some(name),
            format!("'{}' must be a whole number.", name.replace('_', " ")),
        )
    })
}

#[derive(Deserialize)]
pub struct RateForm {
    #[serde(default)]
    max_requests_per_1_minute: String,
    #[serde(default)]
    max_tokens_per_1_minute: String,
    #[serde(default)]
    max_requests_per_1_day: String,
}

pub async fn set_rate(
    State(state): State<AppState>,
    me: Me,
    Path((project_id, rate_limit_id)): Path<(String, String)>,
    Form(form): Form<RateForm>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        let body = UpdateRateLimit {
            max_requests_per_1_minute: number(
                "requests_per_minute",
                &form.max_requests_per_1_minute,
            )?,
            max_tokens_per_1_minute: number("tokens_per_minute", &form.max_tokens_per_1_minute)?,
            max_images_per_1_minute: None,
            max_audio_megabytes_per_1_minute: None,
            max_requests_per_1_day: number("requests_per_day", &form.max_requests_per_1_day)?,
            batch_1_day_max_input_tokens: None,
        };
        update_with(&state, &cap, project_id.clone(), rate_limit_id, body).await
    }
    .await;
    change!(
        result,
        |_| see(&format!("/projects/{}/limits", project.id)),
        |s, m| render(&state, &me, &project, s, m)
    )
}

#[derive(Deserialize)]
pub struct SpendForm {
    #[serde(default)]
    amount_usd: String,
}

pub async fn set_spend(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
    Form(form): Form<SpendForm>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    let result = async {
        let cap = me.0.principal.org_write()?;
        let raw = form
            .amount_usd
            .trim()
            .trim_start_matches('$')
            .replace(',', "");
        if raw.is_empty() {
            delete_limit_with(&state, &cap, project_id.clone()).await?;
            return Ok(());
        }
        let dollars: f64 = raw.parse().map_err(|_| {
            ApiError::invalid(
                Some("amount_usd"),
                "The spend limit must be an amount in US dollars, like 250 or 99.50.",
            )
        })?;
        if !dollars.is_finite() || dollars <= 0.0 {
            return Err(ApiError::invalid(
                Some("amount_usd"),
                "The spend limit must be more than $0.",
            ));
        }
        let body = SetSpendLimit {
            threshold_amount: (dollars * 100.0).round() as i64,
            currency: "usd".to_owned(),
            interval: "month".to_owned(),
        };
        set_limit_with(&state, &cap, project_id.clone(), body)
            .await
            .map(|_| ())
    }
    .await;
    change!(
        result,
        |()| see(&format!("/projects/{}/limits", project.id)),
        |s, m| render(&state, &me, &project, s, m)
    )
}
