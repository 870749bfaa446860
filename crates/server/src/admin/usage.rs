//! `GET /organization/usage/{family}` and `GET /organization/costs`: metered usage in time
//! buckets, filtered and grouped as OpenAI's Usage and Costs APIs do.

use crate::auth::Admin;
use crate::error::{shown, ApiError};
use crate::extract::{int_param, Json, Path, QueryParams};
use crate::state::AppState;
use axum::extract::State;
use keyplane_core::endpoints::UsageFamily;
use keyplane_core::usage::{BucketWidth, UsageFilter, UsageRow};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const GROUPS: &[&str] = &[
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "line_item",
];

struct Window {
    filter: UsageFilter,
    width: BucketWidth,
    group_by: Vec<String>,
    first_bucket: i64,
    buckets: i64,
    has_more: bool,
}

fn window(q: &QueryParams, family: Option<UsageFamily>, costs: bool) -> Result<Window, ApiError> {
    let start = int_param("start_time", q.get("start_time"))?.ok_or_else(|| {
        ApiError::invalid(
            Some("start_time"),
            "Missing required parameter: 'start_time' (Unix seconds).",
        )
    })?;
    let end_param = int_param("end_time", q.get("end_time"))?;
    if !(0..=4_102_444_800).contains(&start) || end_param.is_some_and(|e| e <= start) {
        return Err(ApiError::invalid(
            Some("end_time"),
            "Invalid time range: 'start_time' must be a Unix time before 'end_time'.",
        ));
    }
    // Without `end_time` the range runs to now (and always covers `start_time` itself).
    let end = end_param.unwrap_or_else(|| keyplane_core::time::now().max(start + 1));
    let width = BucketWidth::parse(q.get("bucket_width"))?;
    if costs && width != BucketWidth::Day {
        return Err(ApiError::invalid(
            Some("bucket_width"),
            "Costs support only bucket_width=1d.",
        ));
    }
    let w = width.seconds();
    // Buckets sit on whole minutes/hours/UTC days, so the bucket holding `start_time` is whole.
    let origin = start - start.rem_euclid(w);
    let (default_limit, max_limit) = width.page_bounds();
    let limit = int_param("limit", q.get("limit"))?.unwrap_or(default_limit);
    if !(1..=max_limit).contains(&limit) {
        return Err(ApiError::invalid(
            Some("limit"),
            format!("Invalid 'limit': {limit}. Expected 1 to {max_limit} buckets for this bucket_width."),
        ));
    }
    // `page` is the opaque cursor we returned as `next_page`: `page_<bucket start>`.
    let first_bucket = match q.get("page") {
        None | Some("") => origin,
        Some(p) => p
            .strip_prefix("page_")
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n >= origin && *n < end && (n - origin) % w == 0)
            .ok_or_else(|| {
                ApiError::invalid(Some("page"), format!("Invalid 'page': '{}'.", shown(p)))
            })?,
    };
    let total = (end - first_bucket + w - 1) / w;
    let buckets = total.min(limit);
    let group_by = q.all("group_by");
    for g in &group_by {
        if !GROUPS.contains(&g.as_str()) {
            return Err(ApiError::invalid(
                Some("group_by"),
                format!(
                    "Invalid 'group_by': '{}'. Expected one of {}.",
                    shown(g),
                    GROUPS.join(", ")
                ),
            ));
        }
    }
    let filter = UsageFilter {
        start: first_bucket,
        // Rows are whole minutes: the minute holding `end_time` is read.
        end: (first_bucket + buckets * w).min(end + 59 - (end + 59).rem_euclid(60)),
        family: family.map(|f| f.as_str().to_owned()),
        project_ids: q.all("project_ids"),
        api_key_ids: q.all("api_key_ids"),
        user_ids: q.all("user_ids"),
        models: q.all("models"),
    };
    Ok(Window {
        filter,
        width,
        group_by,
        first_bucket,
        buckets,
        has_more: total > buckets,
    })
}

/// One result: its dimension fields (null when not grouped by) and its summed counters.
type Group = (Map<String, Value>, UsageRow);

/// Groups rows of one bucket by the requested dimensions.
fn grouped<'a>(rows: impl Iterator<Item = &'a UsageRow>, group_by: &[String]) -> Vec<Group> {
    let mut groups: BTreeMap<Vec<Option<String>>, Group> = BTreeMap::new();
    for r in rows {
        let dims: Vec<(&str, Option<String>)> = vec![
            ("project_id", Some(r.project_id.clone())),
            ("user_id", r.user_id.clone()),
            ("api_key_id", Some(r.api_key_id.clone())),
            ("model", Some(r.model.clone())),
        ];
        let mut key = Vec::new();
        let mut fields = Map::new();
        for (name, value) in dims {
            if group_by.iter().any(|g| g == name) {
                key.push(value.clone());
                fields.insert(name.into(), json!(value));
            } else {
                fields.insert(name.into(), Value::Null);
            }
        }
        let entry = groups
            .entry(key)
            .or_insert_with(|| (fields, UsageRow::default()));
        entry.1.absorb(r);
    }
    groups.into_values().collect()
}

fn usage_result(
    family: UsageFamily,
    mut fields: Map<String, Value>,
    t: &UsageRow,
    group_by: &[String],
) -> Value {
    fields.insert(
        "object".into(),
        json!(format!("organization.usage.{}.result", family.as_str())),
    );
    fields.insert("num_model_requests".into(), json!(t.requests));
    match family {
        UsageFamily::Completions => {
            fields.insert("input_tokens".into(), json!(t.input_tokens));
            fields.insert("output_tokens".into(), json!(t.output_tokens));
            fields.insert("input_cached_tokens".into(), json!(t.cached_tokens));
            fields.insert("input_audio_tokens".into(), json!(0));
            fields.insert("output_audio_tokens".into(), json!(0));
            let batch = if group_by.iter().any(|g| g == "batch") {
                json!(false)
            } else {
                Value::Null
            };
            fields.insert("batch".into(), batch);
        }
        UsageFamily::Embeddings | UsageFamily::Moderations => {
            fields.insert("input_tokens".into(), json!(t.input_tokens));
        }
        UsageFamily::Images => {
            fields.insert("images".into(), json!(t.images));
            fields.insert("source".into(), Value::Null);
            fields.insert("size".into(), Value::Null);
        }
        UsageFamily::AudioSpeeches => {
            fields.insert("characters".into(), json!(0));
        }
        UsageFamily::AudioTranscriptions => {
            fields.insert("seconds".into(), json!(0));
        }
        UsageFamily::Other => {}
    }
    Value::Object(fields)
}

fn page(w: &Window, buckets: Vec<Value>) -> Value {
    let next = w.first_bucket + w.buckets * w.width.seconds();
    json!({
        "object": "page",
        "data": buckets,
        "has_more": w.has_more,
        "next_page": if w.has_more { Some(format!("page_{next}")) } else { None },
    })
}

fn bucket_rows(w: &Window, rows: &[UsageRow], i: i64) -> (i64, i64, Vec<UsageRow>) {
    let start = w.first_bucket + i * w.width.seconds();
    let end = start + w.width.seconds();
    (
        start,
        end,
        rows.iter().filter(|r| r.minute == start).cloned().collect(),
    )
}

pub async fn usage(
    State(state): State<AppState>,
    admin: Admin,
    Path(family_raw): Path<String>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    if !admin.0.key.permissions.allows("api.usage.read") {
        admin.read()?;
    }
    let family = UsageFamily::parse(&family_raw).ok_or_else(|| {
        ApiError::NotFound(format!("Unknown usage type '{}'.", shown(&family_raw)))
    })?;
    let w = window(&q, Some(family), false)?;
    let rows = state.usage.usage(&w.filter, w.width.seconds()).await?;
    let buckets: Vec<Value> = (0..w.buckets)
        .map(|i| {
            let (start, end, in_bucket) = bucket_rows(&w, &rows, i);
            let results: Vec<Value> = grouped(in_bucket.iter(), &w.group_by)
                .into_iter()
                .map(|(fields, totals)| usage_result(family, fields, &totals, &w.group_by))
                .collect();
            json!({"object": "bucket", "start_time": start, "end_time": end, "results": results})
        })
        .collect();
    Ok(Json(page(&w, buckets)))
}

pub async fn costs(
    State(state): State<AppState>,
    admin: Admin,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    if !admin.0.key.permissions.allows("api.usage.read") {
        admin.read()?;
    }
    let w = window(&q, None, true)?;
    let rows = state.usage.usage(&w.filter, w.width.seconds()).await?;
    let by_line_item = w.group_by.iter().any(|g| g == "line_item");
    let buckets: Vec<Value> = (0..w.buckets)
        .map(|i| {
            let (start, end, in_bucket) = bucket_rows(&w, &rows, i);
            let mut results = Vec::new();
            let mut by_item: BTreeMap<String, Vec<UsageRow>> = BTreeMap::new();
            for r in in_bucket {
                let item = if by_line_item {
                    format!("{}, {}", r.model, r.family)
                } else {
                    String::new()
                };
                by_item.entry(item).or_default().push(r);
            }
            for (item, rows) in by_item {
                for (mut fields, totals) in grouped(rows.iter(), &w.group_by) {
                    fields.remove("model");
                    fields.insert("object".into(), json!("organization.costs.result"));
                    fields.insert(
                        "amount".into(),
                        json!({"value": totals.cost_nano_usd as f64 / keyplane_core::usage::NANO_USD_PER_USD, "currency": "usd"}),
                    );
                    fields.insert(
                        "line_item".into(),
                        if by_line_item {
                            json!(item)
                        } else {
                            Value::Null
                        },
                    );
                    results.push(Value::Object(fields));
                }
            }
            json!({"object": "bucket", "start_time": start, "end_time": end, "results": results})
        })
        .collect();
    Ok(Json(page(&w, buckets)))
}
