//! Authentication wraps the whole router (public routes are an explicit list), and
//! authorization hands out capabilities: a mutating Admin API operation takes an [`OrgWrite`],
//! which only [`Admin::write`] can produce.

use crate::error::ApiError;
use crate::keycache::KeyVerifier;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyplane_core::ids::{ProjectId, UserId};
use keyplane_core::keys::KeyKind;
use keyplane_core::model::{ApiKey, AuditEvent, KeyOwnerId};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// Routes that answer without a key.
pub const UNAUTHENTICATED_ROUTES: &[&str] = &["/healthz", "/readyz", "/v1/openapi.json"];

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::InvalidApiKey(
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                .to_owned(),
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(missing)?
        .trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// Verifies the bearer key of every `/v1` request except the public ones, and attaches the
/// caller as a request extension.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if UNAUTHENTICATED_ROUTES.contains(&path) || !(path == "/v1" || path.starts_with("/v1/")) {
        return next.run(req).await;
    }
    let admin_route = path == "/v1/organization" || path.starts_with("/v1/organization/");
    // Owned before any await: the request body is not `Sync`.
    let raw = bearer(req.headers()).map(str::to_owned);
    let result = async {
        let raw = raw?;
        let key = state.verifier.verify(&raw, keyplane_core::time::now()).await?;
        if admin_route {
            KeyVerifier::require_kind(&key, &[KeyKind::Admin], "an admin key (sk-admin-…); create one with `keyplane init` or POST /v1/organization/admin_api_keys")?;
        } else {
            KeyVerifier::require_kind(
                &key,
                &[KeyKind::Project, KeyKind::ServiceAccount],
                "a project key (sk-proj-…) or service account key (sk-svcacct-…)",
            )?;
        }
        Ok::<_, ApiError>(key)
    }
    .await;
    match result {
        Ok(key) => {
            tracing::Span::current().record("key_id", key.id.as_str());
            let ip = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string());
            let user_agent = req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect::<String>());
            req.extensions_mut().insert(Caller {
                key,
                ip,
                user_agent,
            });
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller {
    pub key: Arc<ApiKey>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An admin-key caller on the Admin API.
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(c) if c.key.kind == KeyKind::Admin => Ok(Admin(c.clone())),
            _ => Err(ApiError::Unauthorized(
                "This route needs an admin key (sk-admin-…).".to_owned(),
            )),
        }
    }
}

fn missing_scope(scope: &str) -> ApiError {
    ApiError::Unauthorized(format!(
        "You have insufficient permissions for this operation. Missing scopes: {scope}. Check \
         that you have the correct role in your organization, and if you're using a restricted \
         API key, that it has the necessary scopes."
    ))
}

/// Permission to read the organization's configuration.
pub struct OrgRead<'a>(#[allow(dead_code)] &'a Admin);

/// Permission to change the organization's configuration; carries the actor for audit events.
pub struct OrgWrite<'a>(&'a Admin);

impl Admin {
    pub fn read(&self) -> Result<OrgRead<'_>, ApiError> {
        if self.0.key.permissions.allows("api.management.read") {
            Ok(OrgRead(self))
        } else {
            Err(missing_scope("api.management.read"))
        }
    }

    pub fn write(&self) -> Result<OrgWrite<'_>, ApiError> {
        if self.0.key.permissions.allows("api.management.write") {
            Ok(OrgWrite(self))
        } else {
            Err(missing_scope("api.management.write"))
        }
    }
}

impl OrgWrite<'_> {
    pub fn key(&self) -> &ApiKey {
        &self.0 .0.key
    }

    /// The user an admin key acts for.
    pub fn user_id(&self) -> Result<UserId, ApiError> {
        match &self.key().owner.id {
            KeyOwnerId::User(u) => Ok(u.clone()),
            KeyOwnerId::ServiceAccount(_) => Err(ApiError::Unauthorized(
                "This operation needs an admin key owned by a user.".to_owned(),
            )),
        }
    }

    /// The audit `actor` for this caller (never the key's value).
    pub fn actor(&self) -> Value {
        let caller = &self.0 .0;
        let key = &caller.key;
        let (owner_type, owner) = match &key.owner.id {
            KeyOwnerId::User(u) => (
                "user",
                json!({"user": {"id": u.as_str(), "email": key.owner.email}}),
            ),
            KeyOwnerId::ServiceAccount(s) => (
                "service_account",
                json!({"service_account": {"id": s.as_str()}}),
            ),
        };
        let mut api_key = json!({"id": key.id.as_str(), "type": owner_type});
        if let (Some(obj), Some(extra)) = (api_key.as_object_mut(), owner.as_object()) {
            obj.extend(extra.clone());
        }
        json!({
            "type": "api_key",
            "api_key": api_key,
            "ip_address": caller.ip,
            "user_agent": caller.user_agent,
        })
    }

    pub fn event(
        &self,
        event_type: &str,
        project: Option<&ProjectId>,
        details: Value,
    ) -> AuditEvent {
        AuditEvent::new(event_type, project, self.actor(), details)
    }
}
