//! The web dashboard at `/`: server-rendered askama pages with small script enhancements,
//! signed in with a session cookie. It calls the same domain code as the Admin API (the
//! `*_with` operations and capabilities), so one set of rules serves both front doors.

/// Runs a change; a refusal or invalid input re-renders the page with the message.
macro_rules! change {
    ($result:expr, $ok:expr, $rerender:expr) => {
        match $result {
            Ok(v) => $ok(v),
            Err(e) if e.status().is_client_error() => {
                $rerender(super::status_of(&e), super::message_of(&e)).await
            }
            Err(e) => Err(DashError(e)),
        }
    };
}

mod assets;
mod audit;
pub mod csrf;
mod keys;
mod limits;
mod people;
mod projects;
pub mod session;
pub mod throttle;
mod usage;

use crate::auth::ProjectCap;
use crate::error::{log_server_error, ApiError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyplane_core::access::ProjectAccess;
use keyplane_core::model::{OrgRole, Project};
use keyplane_core::pagination::PageRequest;
use serde::de::DeserializeOwned;
use session::Me;

/// Dashboard paths that answer without a session (exact, or a prefix when ending in `/`);
/// every other dashboard route needs one ([`session::require`]).
pub const PUBLIC_PATHS: &[&str] = &["/login", "/static/", "/setup/", "/invite/"];

pub fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.iter().any(|p| {
        if p.ends_with('/') {
            path.starts_with(p)
        } else {
            path == *p
        }
    })
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/logout", post(session::logout))
        .route("/projects", get(projects::list).post(projects::create))
        .route("/switch", get(projects::switch))
        .route("/projects/{project_id}", get(keys::page))
        .route("/projects/{project_id}/rename", post(projects::rename))
        .route("/projects/{project_id}/archive", post(projects::archive))
        .route("/projects/{project_id}/keys", post(keys::create))
        .route(
            "/projects/{project_id}/keys/{key_id}",
            get(keys::edit_form).post(keys::edit),
        )
        .route(
            "/projects/{project_id}/keys/{key_id}/revoke",
            post(keys::revoke),
        )
        .route(
            "/projects/{project_id}/service-accounts",
            get(people::service_accounts).post(people::create_service_account),
        )
        .route(
            "/projects/{project_id}/service-accounts/{account_id}/role",
            post(people::service_account_role),
        )
        .route(
            "/projects/{project_id}/service-accounts/{account_id}/delete",
            post(people::delete_service_account),
        )
        .route(
            "/projects/{project_id}/members",
            get(people::project_members).post(people::add_project_member),
        )
        .route(
            "/projects/{project_id}/members/{user_id}/role",
            post(people::project_member_role),
        )
        .route(
            "/projects/{project_id}/members/{user_id}/remove",
            post(people::remove_project_member),
        )
        .route("/projects/{project_id}/limits", get(limits::page))
        .route(
            "/projects/{project_id}/limits/spend",
            post(limits::set_spend),
        )
        .route(
            "/projects/{project_id}/limits/{rate_limit_id}",
            post(limits::set_rate),
        )
        .route("/projects/{project_id}/usage", get(usage::page))
        .route("/members", get(people::org_members))
        .route("/members/{user_id}/role", post(people::org_member_role))
        .route("/members/{user_id}/remove", post(people::remove_org_member))
        .route("/invites", post(people::invite))
        .route("/invites/{invite_id}/delete", post(people::delete_invite))
        .route("/audit", get(audit::page))
        .route("/static/{file}", get(assets::serve))
        .route("/login", get(session::login_form).post(session::login))
        .route(
            "/setup/{token}",
            get(session::signup_form).post(session::signup),
        )
        .route(
            "/invite/{token}",
            get(session::signup_form).post(session::signup),
        )
        .layer(middleware::from_fn_with_state(state, session::require))
}

async fn home() -> Redirect {
    Redirect::to("/projects")
}

/// An error shown as a page: the message in plain words (5xx stay opaque).
pub struct DashError(pub ApiError);

impl<E: Into<ApiError>> From<E> for DashError {
    fn from(e: E) -> Self {
        DashError(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

/// The status a dashboard shows for an error: a refused permission is a 403 here (the
/// session is valid, the role is not enough).
pub fn status_of(e: &ApiError) -> StatusCode {
    match e {
        ApiError::Unauthorized(_) => StatusCode::FORBIDDEN,
        other => other.status(),
    }
}

/// The error's message for a person (5xx opaque).
pub fn message_of(e: &ApiError) -> String {
    if e.status().is_server_error() {
        "Something went wrong on our side. Please try again.".to_owned()
    } else {
        e.to_string()
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let page = ErrorPage {
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            message: message_of(&self.0),
        };
        let response = html(status, &page);
        if status.is_server_error() {
            log_server_error(status, &self.0);
        }
        response
    }
}

/// A plain page for refusals outside the handlers (CSRF, no session).
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: message.to_owned(),
    };
    html(status, &page)
}

/// Renders a page; dashboard pages are never cached (one of them shows a new key's secret).
pub fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => {
            let mut r = (status, Html(body)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            r
        }
        Err(e) => {
            log_server_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format_args!("template: {e}"),
            );
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

pub fn ok<T: Template>(page: &T) -> Result<Response, DashError> {
    Ok(html(StatusCode::OK, page))
}

/// After a successful form post: back to a page (303, so a reload does not post again).
pub fn see(path: &str) -> Result<Response, DashError> {
    Ok(Redirect::to(path).into_response())
}

/// A URL-encoded form body (unknown fields ignored; the CSRF field was checked already).
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = DashError;

    async fn from_request(req: Request, state: &S) -> Result<Self, DashError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(None, format!("Could not read the form: {e}")))?;
        serde_urlencoded::from_bytes(&bytes).map(Form).map_err(|e| {
            DashError(ApiError::invalid(
                None,
                format!("The form is incomplete: {e}"),
            ))
        })
    }
}

/// One entry of the project switcher.
pub struct NavProject {
    pub id: String,
    pub name: String,
}

/// What every signed-in page shows around its content.
pub struct Nav {
    pub email: String,
    pub csrf: String,
    pub org_owner: bool,
    pub projects: Vec<NavProject>,
    /// The open project, if any: (id, name).
    pub project_id: String,
    pub project_name: String,
    /// Which sidebar entry is current.
    pub tab: &'static str,
}

impl Nav {
    pub fn in_project(&self) -> bool {
        !self.project_id.is_empty()
    }
}

/// The active projects the viewer may open (organization owners: all).
pub async fn visible_projects(state: &AppState, me: &Me) -> Result<Vec<Project>, DashError> {
    let page = state
        .projects
        .list_projects(false, &PageRequest::largest(None))
        .await?;
    let mut out = Vec::new();
    for p in page.items {
        if me.0.user.role == OrgRole::Owner
            || crate::auth::project_access(state, &me.0.principal, &p.id)
                .await?
                .access()
                >= ProjectAccess::Member
        {
            out.push(p);
        }
    }
    Ok(out)
}

pub async fn nav(
    state: &AppState,
    me: &Me,
    project: Option<&Project>,
    tab: &'static str,
) -> Result<Nav, DashError> {
    let projects = visible_projects(state, me)
        .await?
        .into_iter()
        .map(|p| NavProject {
            id: p.id.to_string(),
            name: p.name,
        })
        .collect();
    Ok(Nav {
        email: me.0.user.email.clone(),
        csrf: me.0.csrf.clone(),
        org_owner: me.0.user.role == OrgRole::Owner,
        projects,
        project_id: project.map(|p| p.id.to_string()).unwrap_or_default(),
        project_name: project.map(|p| p.name.clone()).unwrap_or_default(),
        tab,
    })
}

/// The project `raw_id` with the viewer's capability there; 403 when they may not read it.
pub async fn open_project<'a>(
    state: &AppState,
    me: &'a Me,
    project: &'a Project,
) -> Result<ProjectCap<'a>, DashError> {
    let cap = crate::auth::project_access(state, &me.0.principal, &project.id).await?;
    cap.read()?;
    Ok(cap)
}

/// Unix seconds as `2026-11-27 14:05 UTC` (dashboards show UTC; no client time zone).
pub fn when(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// `YYYY-MM-DD` of a Unix time.
pub fn day(t: i64) -> String {
    let (y, m, d) = civil(t.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` (UTC midnight) to Unix seconds.
pub fn parse_day(raw: &str) -> Option<i64> {
    let mut parts = raw.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1970..=2200).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Inverse of `civil`.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(parse_day("2026-11-18"), Some(1_794_960_000));
        assert_eq!(day(1_794_960_000), "2026-11-18");
        assert_eq!(
            parse_day("2024-02-29").map(day).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(parse_day("nope"), None);
    }
}
