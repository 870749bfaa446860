//! The audit log: newest first, filtered by event type, actor and date, paginated.

use super::session::Me;
use super::{nav, ok, DashError, Nav};
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use keyplane_core::audit::{AuditCursor, AuditFilter, AuditQuery, EMITTED_EVENT_TYPES};
use keyplane_core::model::AuditEvent;
use keyplane_core::pagination::Limit;
use serde::Deserialize;
use serde_json::Value;

const PAGE: i64 = 25;

pub struct EventRow {
    pub when: String,
    pub event_type: String,
    pub actor: String,
    pub project: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    events: Vec<EventRow>,
    event_types: Vec<&'static str>,
    event_type: String,
    actor: String,
    from: String,
    to: String,
    /// Query strings of the neighbouring pages (empty: none).
    newer: String,
    older: String,
    error: String,
}

#[derive(Deserialize, Default)]
pub struct AuditParams {
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    before: String,
}

fn actor_of(e: &AuditEvent) -> String {
    let a = &e.actor;
    let text = |p: &str| a.pointer(p).and_then(Value::as_str).map(str::to_owned);
    text("/session/user/email")
        .or_else(|| text("/api_key/user/email").map(|m| format!("{m} (API key)")))
        .or_else(|| text("/api_key/service_account/id"))
        .or_else(|| text("/session/ip_address").map(|ip| format!("anonymous from {ip}")))
        .or_else(|| text("/api_key/id"))
        .unwrap_or_else(|| "system".to_owned())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 240 {
        let mut t: String = s.chars().take(240).collect();
        t.push('…');
        t
    } else {
        s
    }
}

fn filter_of(p: &AuditParams) -> Result<AuditFilter, ApiError> {
    let mut f = AuditFilter::default();
    if !p.event_type.trim().is_empty() {
        f.event_types.push(p.event_type.trim().to_owned());
    }
    let actor = p.actor.trim();
    if !actor.is_empty() {
        if actor.contains('@') {
            f.actor_emails.push(actor.to_lowercase());
        } else {
            f.actor_ids.push(actor.to_owned());
        }
    }
    let day = |raw: &str, name: &str| -> Result<Option<i64>, ApiError> {
        if raw.trim().is_empty() {
            return Ok(None);
        }
        super::parse_day(raw)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(Some(name), "Dates look like 2026-11-27."))
    };
    f.effective_at.gte = day(&p.from, "from")?;
    f.effective_at.lt = day(&p.to, "to")?.map(|t| t + 86_400);
    f.check()?;
    Ok(f)
}

fn cursor_ok(raw: &str) -> bool {
    raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn query_string(p: &AuditParams, cursor: (&str, &str)) -> String {
    serde_urlencoded::to_string([
        ("event_type", p.event_type.as_str()),
        ("actor", p.actor.as_str()),
        ("from", p.from.as_str()),
        ("to", p.to.as_str()),
        cursor,
    ])
    .unwrap_or_default()
}

pub async fn page(
    State(state): State<AppState>,
    me: Me,
    Query(p): Query<AuditParams>,
) -> Result<Response, DashError> {
    me.0.principal.org_read();
    let mut error = String::new();
    let mut events = Vec::new();
    let (mut newer, mut older) = (String::new(), String::new());
    let cursor = if !p.after.is_empty() && cursor_ok(&p.after) {
        AuditCursor::After(p.after.clone())
    } else if !p.before.is_empty() && cursor_ok(&p.before) {
        AuditCursor::Before(p.before.clone())
    } else {
        AuditCursor::Newest
    };
    match filter_of(&p) {
        Err(e) => error = super::message_of(&e),
        Ok(filter) => {
            let query = AuditQuery {
                filter,
                limit: Limit::parse(Some(PAGE))?,
                cursor: cursor.clone(),
            };
            let page = state.audit.query_audit_events(&query).await?;
            let has_more = page.has_more;
            if let (Some(first), Some(last)) = (page.items.first(), page.items.last()) {
                let walking_back = matches!(cursor, AuditCursor::Before(_));
                if !matches!(cursor, AuditCursor::Newest) && (!walking_back || has_more) {
                    newer = query_string(&p, ("before", &first.id));
                }
                if walking_back || has_more {
                    older = query_string(&p, ("after", &last.id));
                }
            }
            events = page
                .items
                .iter()
                .map(|e| EventRow {
                    when: super::when(e.effective_at),
                    event_type: e.event_type.clone(),
                    actor: actor_of(e),
                    project: e.project_id.clone().unwrap_or_default(),
                    details: short(&e.details),
                })
                .collect();
        }
    }
    let mut event_types: Vec<&'static str> = EMITTED_EVENT_TYPES.to_vec();
    event_types.sort_unstable();
    let page = AuditPage {
        nav: nav(&state, &me, None, "audit").await?,
        events,
        event_types,
        event_type: p.event_type.clone(),
        actor: p.actor.clone(),
        from: p.from.clone(),
        to: p.to.clone(),
        newer,
        older,
        error,
    };
    ok(&page)
}
