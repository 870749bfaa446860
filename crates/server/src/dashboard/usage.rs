//! Usage of a project: requests and tokens over time (server-rendered SVG bars), per key and
//! per model, with costs, from the same store queries as `/v1/organization/usage` and `/costs`.

use super::session::Me;
use super::{nav, ok, open_project, DashError, Nav};
use crate::admin::projects::find as find_project;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use keyplane_core::model::OwnerAccessFilter;
use keyplane_core::pagination::PageRequest;
use keyplane_core::ports::KeyListFilter;
use keyplane_core::usage::{UsageFilter, UsageRow, NANO_USD_PER_USD};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Chart geometry (SVG user units).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;

pub struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    pub title: String,
}

pub struct Chart {
    pub title: &'static str,
    pub total: i64,
    pub bars: Vec<Bar>,
    pub first_label: String,
    pub last_label: String,
    pub max: i64,
}

fn chart(title: &'static str, labels: &[String], values: &[i64]) -> Chart {
    let max = values.iter().copied().max().unwrap_or(0);
    let n = values.len().max(1) as f64;
    let slot = WIDTH / n;
    let bars = values
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (v, label))| {
            let h = if max > 0 {
                (*v as f64 / max as f64) * (HEIGHT - 4.0)
            } else {
                0.0
            };
            Bar {
                x: format!("{:.1}", i as f64 * slot + slot * 0.1),
                y: format!("{:.1}", HEIGHT - h),
                w: format!("{:.1}", slot * 0.8),
                h: format!("{h:.1}"),
                title: format!("{label}: {v}"),
            }
        })
        .collect();
    Chart {
        title,
        total: values.iter().sum(),
        bars,
        first_label: labels.first().cloned().unwrap_or_default(),
        last_label: labels.last().cloned().unwrap_or_default(),
        max,
    }
}

pub struct Breakdown {
    pub name: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: String,
}

fn usd(nano: i64) -> String {
    format!("${:.6}", nano as f64 / NANO_USD_PER_USD)
}

fn breakdown(rows: &[UsageRow], key: impl Fn(&UsageRow) -> String) -> Vec<Breakdown> {
    let mut by: BTreeMap<String, UsageRow> = BTreeMap::new();
    for r in rows {
        by.entry(key(r)).or_default().absorb(r);
    }
    by.into_iter()
        .map(|(name, t)| Breakdown {
            name,
            requests: t.requests,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cost: usd(t.cost_nano_usd),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    nav: Nav,
    range: String,
    charts: Vec<Chart>,
    by_key: Vec<Breakdown>,
    by_model: Vec<Breakdown>,
    total_cost: String,
    empty: bool,
}

#[derive(Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    range: String,
}

pub async fn page(
    State(state): State<AppState>,
    me: Me,
    Path(project_id): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Response, DashError> {
    let project = find_project(&state, &project_id).await?;
    open_project(&state, &me, &project).await?;
    let now = keyplane_core::time::now();
    let (range, width, count) = match q.range.as_str() {
        "day" => ("day", 3_600, 24),
        "month" => ("month", 86_400, 30),
        _ => ("week", 86_400, 7),
    };
    let first = now - now.rem_euclid(width) - (count - 1) * width;
    let filter = UsageFilter {
        start: first,
        end: now + 60,
        family: None,
        project_ids: vec![project.id.to_string()],
        api_key_ids: Vec::new(),
        user_ids: Vec::new(),
        models: Vec::new(),
    };
    let rows = state.usage.usage(&filter, width).await?;
    let labels: Vec<String> = (0..count)
        .map(|i| {
            let t = first + i * width;
            if width == 3_600 {
                super::when(t)
            } else {
                super::day(t)
            }
        })
        .collect();
    let per_bucket = |f: &dyn Fn(&UsageRow) -> i64| -> Vec<i64> {
        (0..count)
            .map(|i| {
                let start = first + i * width;
                rows.iter().filter(|r| r.minute == start).map(f).sum()
            })
            .collect()
    };
    let charts = vec![
        chart("Requests", &labels, &per_bucket(&|r| r.requests)),
        chart(
            "Tokens",
            &labels,
            &per_bucket(&|r| r.input_tokens + r.output_tokens),
        ),
    ];
    let page_all = PageRequest::largest(None);
    let keys = state
        .keys
        .list_keys(
            &KeyListFilter::Project(project.id.clone(), OwnerAccessFilter::parse(None)?),
            &page_all,
        )
        .await?;
    let names: BTreeMap<String, String> = keys
        .items
        .into_iter()
        .map(|k| {
            (
                k.id.to_string(),
                format!("{} ({})", k.name, k.redacted_value),
            )
        })
        .collect();
    let by_key = breakdown(&rows, |r| {
        names
            .get(&r.api_key_id)
            .cloned()
            .unwrap_or_else(|| format!("{} (revoked)", r.api_key_id))
    });
    let by_model = breakdown(&rows, |r| r.model.clone());
    let total: i64 = rows.iter().map(|r| r.cost_nano_usd).sum();
    let page = UsagePage {
        nav: nav(&state, &me, Some(&project), "usage").await?,
        range: range.to_owned(),
        empty: rows.is_empty(),
        charts,
        by_key,
        by_model,
        total_cost: usd(total),
    };
    ok(&page)
}
