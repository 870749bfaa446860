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
use keyplane_core::access::{self, ProjectAccess};
use keyplane_core::ids::{ProjectId, UserId};
use keyplane_core::keys::KeyKind;
use keyplane_core::model::{ApiKey, AuditEvent, KeyOwnerId, OrgRole, User};
use keyplane_core::people::ProjectRole;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// Routes that answer without a key.
pub const UNAUTHENTICATED_ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/openapi.json",
    // The invite token in the body is the credential.
    "/v1/invites/accept",
];

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
    match verify_caller(&state, req.headers(), admin_route).await {
        Ok(key) => {
            req.extensions_mut().insert(Verified(key));
            next.run(req).await
        }
        Err(refusal) => refuse(req, refusal).await,
    }
}

/// The gateway's entrance ([`crate::router`] sends its requests here without routing them):
/// the same verification as [`authenticate`], then the gateway, handed the key directly.
pub async fn authenticate_gateway(state: AppState, req: Request) -> Response {
    match verify_caller(&state, req.headers(), false).await {
        Ok(key) => crate::gateway::forward(state, key, req).await,
        Err(refusal) => refuse(req, refusal).await,
    }
}

/// Verifies the bearer key in `headers` for an Admin API route (`admin_route`) or a gateway
/// one. (It takes the headers, not the request: a borrowed request held across the await would
/// need its body to be `Sync`.)
async fn verify_caller(
    state: &AppState,
    headers: &HeaderMap,
    admin_route: bool,
) -> Result<Arc<ApiKey>, ApiError> {
    let raw = bearer(headers)?;
    let key = state
        .verifier
        .verify(raw, keyplane_core::time::now())
        .await?;
    if admin_route {
        KeyVerifier::require_kind(&key, &[KeyKind::Admin], "an admin key (sk-admin-…); create one with `keyplane init` or POST /v1/organization/admin_api_keys")?;
    } else {
        KeyVerifier::require_kind(
            &key,
            &[KeyKind::Project, KeyKind::ServiceAccount],
            "a project key (sk-proj-…) or service account key (sk-svcacct-…)",
        )?;
    }
    tracing::Span::current().record("key_id", key.id.as_str());
    Ok(key)
}

/// The refusal of a request whose key did not verify. (A bounded amount of) the body is read
/// first: refusing before it has arrived would cost the client its kept-alive connection. A
/// client that holds the body back is told the connection closes instead.
async fn refuse(req: Request, refusal: ApiError) -> Response {
    let drained = tokio::time::timeout(
        DRAIN_WAIT,
        axum::body::to_bytes(req.into_body(), DRAIN_LIMIT),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let mut response = refusal.into_response();
    if !drained {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// How much of a refused request's body is read to keep the connection reusable, and for how
/// long.
const DRAIN_LIMIT: usize = 1024 * 1024;
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// The key a request was authenticated with: the extension [`authenticate`] attaches. The
/// gateway needs only this; the Admin API's [`Admin`] adds where the request came from.
#[derive(Clone)]
pub struct Verified(pub Arc<ApiKey>);

/// The authenticated caller of an Admin API request.
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
        match parts.extensions.get::<Verified>() {
            Some(Verified(key)) if key.kind == KeyKind::Admin => {
                let client = ClientInfo::of(parts);
                Ok(Admin(Caller {
                    key: key.clone(),
                    ip: client.ip,
                    user_agent: client.user_agent,
                }))
            }
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
pub struct OrgRead<'a>(std::marker::PhantomData<&'a ()>);

/// Permission to change the organization's configuration; carries the actor for audit events.
/// An admin key ([`Admin::write`]) or a dashboard session ([`Principal::org_write`]) of an
/// organization owner produces one.
pub struct OrgWrite<'a> {
    /// The user the change is made for (`None`: an admin key owned by a service account).
    user_id: Option<UserId>,
    actor: Value,
    _by: std::marker::PhantomData<&'a ()>,
}

impl Admin {
    pub fn read(&self) -> Result<OrgRead<'_>, ApiError> {
        if self.0.key.permissions.allows("api.management.read") {
            Ok(OrgRead(std::marker::PhantomData))
        } else {
            Err(missing_scope("api.management.read"))
        }
    }

    /// Changes need the `api.management.write` scope and a key whose owner is an
    /// organization owner: an admin key acts as its owner, so a reader's key only reads.
    pub fn write(&self) -> Result<OrgWrite<'_>, ApiError> {
        let allowed = self.0.key.permissions.allows("api.management.write")
            && access::check_org_write(self.org_role()).is_ok();
        if allowed {
            Ok(OrgWrite {
                user_id: match &self.0.key.owner.id {
                    KeyOwnerId::User(u) => Some(u.clone()),
                    KeyOwnerId::ServiceAccount(_) => None,
                },
                actor: key_actor(&self.0),
                _by: std::marker::PhantomData,
            })
        } else {
            Err(missing_scope("api.management.write"))
        }
    }

    /// The organization role of the key's owner (as the key was loaded; role changes
    /// invalidate the owner's cached keys).
    pub fn org_role(&self) -> OrgRole {
        match self.0.key.owner.id {
            KeyOwnerId::User(_) => OrgRole::from_db(&self.0.key.owner.role),
            KeyOwnerId::ServiceAccount(_) => OrgRole::Reader,
        }
    }
}

/// The `api_key` audit actor of a caller (never the key's value).
fn key_actor(caller: &Caller) -> Value {
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

impl OrgWrite<'_> {
    /// The user an admin key (or session) acts for.
    pub fn user_id(&self) -> Result<UserId, ApiError> {
        self.user_id.clone().ok_or_else(|| {
            ApiError::Unauthorized("This operation needs an admin key owned by a user.".to_owned())
        })
    }

    /// The audit `actor` for this caller (never a key's value).
    pub fn actor(&self) -> Value {
        self.actor.clone()
    }

    pub fn event(
        &self,
        event_type: &str,
        project: Option<&ProjectId>,
        details: Value,
    ) -> AuditEvent {
        AuditEvent::new(event_type, project, self.actor(), details)
    }

    /// The acting user as a [`Principal`] (an organization owner).
    pub fn principal(&self) -> Result<Principal, ApiError> {
        Ok(Principal {
            user_id: self.user_id()?,
            org_role: OrgRole::Owner,
            actor: self.actor(),
        })
    }
}

/// The person a request acts for: an admin key's owner, or (for the dashboard) a session's
/// user. Project capabilities are derived from it.
pub struct Principal {
    pub user_id: UserId,
    pub org_role: OrgRole,
    actor: Value,
}

impl Principal {
    /// A signed-in user acting through a session (OpenAI's `session` actor).
    pub fn session(user: &User, ip: Option<String>, user_agent: Option<String>) -> Self {
        Principal {
            user_id: user.id.clone(),
            org_role: user.role,
            actor: session_actor(user, ip, user_agent),
        }
    }

    /// Every member of the organization reads its configuration.
    pub fn org_read(&self) -> OrgRead<'_> {
        OrgRead(std::marker::PhantomData)
    }

    /// Organization owners change the organization, as with an owner's admin key.
    pub fn org_write(&self) -> Result<OrgWrite<'_>, ApiError> {
        access::check_org_write(self.org_role)?;
        Ok(OrgWrite {
            user_id: Some(self.user_id.clone()),
            actor: self.actor.clone(),
            _by: std::marker::PhantomData,
        })
    }

    /// The audit `actor` of this principal.
    pub fn actor(&self) -> &Value {
        &self.actor
    }

    /// What this principal may do in `project`, given their membership there (see
    /// [`project_access`] for the lookup).
    pub fn in_project<'a>(
        &'a self,
        project: &'a ProjectId,
        membership: Option<ProjectRole>,
    ) -> ProjectCap<'a> {
        ProjectCap {
            principal: self,
            project,
            access: ProjectAccess::of(self.org_role, membership),
        }
    }
}

/// Where an unauthenticated request came from (for the audit `actor` of public routes).
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientInfo::of(parts))
    }
}

impl ClientInfo {
    fn of(parts: &Parts) -> Self {
        ClientInfo {
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect::<String>()),
        }
    }
}

/// The `session` actor of an audit event.
pub fn session_actor(user: &User, ip: Option<String>, user_agent: Option<String>) -> Value {
    json!({
        "type": "session",
        "session": {
            "user": {"id": user.id.as_str(), "email": user.email},
            "ip_address": ip,
            "user_agent": user_agent,
        },
    })
}

/// Looks up the principal's membership of `project` (organization owners need no lookup: they
/// own every project) and returns their capability there.
pub async fn project_access<'a>(
    state: &AppState,
    principal: &'a Principal,
    project: &'a ProjectId,
) -> Result<ProjectCap<'a>, ApiError> {
    let membership = match principal.org_role {
        OrgRole::Owner => None,
        OrgRole::Reader => state
            .projects
            .project_role(project, &principal.user_id)
            .await?
            .map(|r| ProjectRole::from_db(&r)),
    };
    Ok(principal.in_project(project, membership))
}

/// A principal's standing in one project.
pub struct ProjectCap<'a> {
    principal: &'a Principal,
    project: &'a ProjectId,
    access: ProjectAccess,
}

impl<'a> ProjectCap<'a> {
    pub fn access(&self) -> ProjectAccess {
        self.access
    }

    pub fn read(&self) -> Result<(), ApiError> {
        Ok(self.access.check_read()?)
    }

    /// Project owners: the project's keys, service accounts, members and limits.
    pub fn manage(&self) -> Result<ProjectWrite<'a>, ApiError> {
        self.access.check_manage()?;
        Ok(self.write())
    }

    /// One key owned by `owner`: project owners manage every key, members their own.
    pub fn manage_key(&self, owner: &KeyOwnerId) -> Result<ProjectWrite<'a>, ApiError> {
        self.access.check_key(&self.principal.user_id, owner)?;
        Ok(self.write())
    }

    fn write(&self) -> ProjectWrite<'a> {
        ProjectWrite {
            principal: self.principal,
            project: self.project,
        }
    }
}

/// Permission to change one project; builds its audit events.
pub struct ProjectWrite<'a> {
    principal: &'a Principal,
    project: &'a ProjectId,
}

impl ProjectWrite<'_> {
    pub fn project(&self) -> &ProjectId {
        self.project
    }

    pub fn user_id(&self) -> &UserId {
        &self.principal.user_id
    }

    pub fn event(&self, event_type: &str, details: Value) -> AuditEvent {
        AuditEvent::new(
            event_type,
            Some(self.project),
            self.principal.actor.clone(),
            details,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyplane_core::keys::KeyHasher;
    use keyplane_core::model::KeyOwner;
    use keyplane_core::scopes::Permissions;

    fn person(role: OrgRole) -> User {
        User {
            id: UserId::generate(),
            email: "p@example.com".into(),
            name: "p".into(),
            role,
            added_at: 1,
        }
    }

    fn admin_key_of(user: &User, permissions: Permissions) -> Admin {
        let (_, m) = KeyHasher::new(None).generate(KeyKind::Admin);
        let key = ApiKey {
            id: m.id,
            kind: KeyKind::Admin,
            project_id: None,
            name: "k".into(),
            redacted_value: m.redacted_value,
            hash: m.hash,
            permissions,
            created_at: 1,
            expires_at: None,
            last_used_at: None,
            owner: KeyOwner {
                id: KeyOwnerId::User(user.id.clone()),
                name: user.name.clone(),
                email: Some(user.email.clone()),
                created_at: 1,
                role: user.role.as_str().to_owned(),
            },
            owner_active: true,
            project_archived: false,
        };
        Admin(Caller {
            key: Arc::new(key),
            ip: None,
            user_agent: None,
        })
    }

    #[test]
    fn an_admin_key_acts_with_its_owners_role() {
        let owner = admin_key_of(&person(OrgRole::Owner), Permissions::All);
        assert!(owner.read().is_ok() && owner.write().is_ok());
        let reader = admin_key_of(&person(OrgRole::Reader), Permissions::All);
        assert!(reader.read().is_ok());
        let err = reader
            .write()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("Missing scopes: api.management.write"),
            "{err}"
        );
        let read_only = Permissions::parse(Some(&["api.management.read".to_owned()])).unwrap();
        let restricted = admin_key_of(&person(OrgRole::Owner), read_only);
        assert!(restricted.read().is_ok() && restricted.write().is_err());
        // Org owners own every project, without a membership.
        let cap = owner.write().unwrap();
        let principal = cap.principal().unwrap();
        let project = ProjectId::generate();
        assert!(principal.in_project(&project, None).manage().is_ok());
    }

    #[test]
    fn a_project_owner_cannot_touch_another_project() {
        let reader = person(OrgRole::Reader);
        let principal = Principal::session(&reader, Some("10.0.0.1".into()), None);
        let (mine, other) = (ProjectId::generate(), ProjectId::generate());
        let owned = principal.in_project(&mine, Some(ProjectRole::Owner));
        let write = owned.manage().unwrap();
        let event = write.event("service_account.created", json!({"id": "svc_acct_1"}));
        assert_eq!(event.project_id.as_deref(), Some(mine.as_str()));
        assert_eq!(event.actor["type"], "session");
        assert_eq!(event.index.actor_id.as_deref(), Some(reader.id.as_str()));
        let foreign = principal.in_project(&other, None);
        assert!(foreign.read().is_err());
        assert!(foreign.manage().is_err());
        assert!(foreign
            .manage_key(&KeyOwnerId::User(reader.id.clone()))
            .is_err());
    }

    #[test]
    fn a_session_of_an_owner_writes_the_organization_like_an_owners_key() {
        let owner = person(OrgRole::Owner);
        let session = Principal::session(&owner, Some("10.0.0.2".into()), None);
        let cap = session.org_write().unwrap();
        assert_eq!(cap.user_id().unwrap(), owner.id);
        let event = cap.event("project.created", None, json!({"id": "proj_1"}));
        assert_eq!(event.actor["type"], "session");
        assert_eq!(event.index.actor_id.as_deref(), Some(owner.id.as_str()));
        let reader = Principal::session(&person(OrgRole::Reader), None, None);
        assert!(reader.org_write().is_err());
    }

    #[test]
    fn a_member_manages_only_their_own_keys() {
        let me = person(OrgRole::Reader);
        let someone = person(OrgRole::Reader);
        let principal = Principal::session(&me, None, None);
        let project = ProjectId::generate();
        let member = principal.in_project(&project, Some(ProjectRole::Member));
        assert!(member.read().is_ok());
        assert!(member.manage_key(&KeyOwnerId::User(me.id.clone())).is_ok());
        let err = member
            .manage_key(&KeyOwnerId::User(someone.id.clone()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("own keys"), "{err}");
        assert!(member.manage().is_err());
        assert_eq!(member.access(), ProjectAccess::Member);
    }
}
