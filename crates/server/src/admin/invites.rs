//! `/organization/invites`, and the public `POST /v1/invites/accept` that turns an invite
//! (or the first owner's setup link) into a member with a password.

use super::{views, Paging};
use crate::auth::{session_actor, Admin, ClientInfo, OrgWrite};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use keyplane_api_types::{self as api, AcceptInvite, CreateInvite, List};
use keyplane_core::ids::{InviteId, ProjectId, UserId};
use keyplane_core::model::{AuditEvent, Name, OrgRole, User};
use keyplane_core::people::{
    hash_token, Acceptance, Email, Invite, InviteProject, InvitePurpose, InviteStatus, InviteToken,
    Password, ProjectRole,
};
use keyplane_core::ports::StoreError;
use keyplane_core::DomainError;
use serde_json::json;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(paging): Query<Paging>,
) -> Result<Json<List<api::Invite>>, ApiError> {
    admin.read()?;
    let invites = state.people.list_invites(&paging.request()?).await?;
    let now = keyplane_core::time::now();
    Ok(Json(List::new(
        invites
            .items
            .iter()
            .map(|i| views::invite(i, now))
            .collect(),
        invites.has_more,
    )))
}

/// Most projects one invite may grant.
const MAX_INVITE_PROJECTS: usize = 100;

/// The invite's project grants: existing, active, distinct projects.
async fn grants(
    state: &AppState,
    raw: Option<Vec<api::InviteProject>>,
) -> Result<Vec<InviteProject>, ApiError> {
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_INVITE_PROJECTS {
        return Err(ApiError::invalid(
            Some("projects"),
            format!("Invalid 'projects': at most {MAX_INVITE_PROJECTS} projects per invite."),
        ));
    }
    let mut out: Vec<InviteProject> = Vec::with_capacity(raw.len());
    for p in raw {
        let unknown = || {
            ApiError::invalid(
                Some("projects"),
                format!(
                    "Invalid 'projects': no active project with id '{}'.",
                    crate::error::shown(&p.id)
                ),
            )
        };
        let id = ProjectId::parse(&p.id).map_err(|_| unknown())?;
        match state.projects.project(&id).await? {
            Some(project) if !project.is_archived() => {}
            _ => return Err(unknown()),
        }
        if out.iter().any(|g| g.id == id) {
            return Err(ApiError::invalid(
                Some("projects"),
                format!("Invalid 'projects': project '{id}' is listed twice."),
            ));
        }
        let role = ProjectRole::parse(&p.role).map_err(|_| {
            ApiError::invalid(
                Some("projects"),
                "Invalid 'projects': each role must be 'member' or 'owner'.",
            )
        })?;
        out.push(InviteProject { id, role });
    }
    Ok(out)
}

/// `{public_url}/{path}/{token}`: the link a person opens to accept.
pub fn link(state: &AppState, path: &str, token: &InviteToken) -> String {
    format!(
        "{}/{path}/{}",
        state.config.public_url.trim_end_matches('/'),
        token.expose()
    )
}

pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Json(body): Json<CreateInvite>,
) -> Result<Json<api::Invite>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(create_with(&state, &cap, body).await?))
}

/// `create`, shared by the Admin API and the dashboard.
pub async fn create_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    body: CreateInvite,
) -> Result<api::Invite, ApiError> {
    let email = Email::parse("email", &body.email)?;
    let role = OrgRole::parse(&body.role)?;
    let projects = grants(state, body.projects).await?;
    if state.people.user_by_email(email.as_str()).await?.is_some() {
        return Err(ApiError::invalid(
            Some("email"),
            format!(
                "'{}' is already a member of the organization.",
                email.as_str()
            ),
        ));
    }
    let now = keyplane_core::time::now();
    let invite = Invite {
        id: InviteId::generate(),
        email: email.as_str().to_owned(),
        role,
        projects,
        created_at: now,
        expires_at: now + Invite::LIFETIME,
        accepted_at: None,
    };
    let token = InviteToken::generate();
    let event = cap.event(
        "invite.sent",
        None,
        json!({"id": invite.id.as_str(), "data": {
            "email": invite.email,
            "role": role.as_str(),
            "projects": views::invite(&invite, now).projects.iter()
                .map(|p| json!({"id": p.id, "role": p.role}))
                .collect::<Vec<_>>(),
        }}),
    );
    state
        .people
        .create_invite(&invite, &token.hash(), &[event])
        .await?;
    let mut view = views::invite(&invite, now);
    view.accept_url = Some(link(state, "invite", &token));
    Ok(view)
}

async fn find(state: &AppState, raw_id: &str) -> Result<Invite, ApiError> {
    let id = InviteId::parse(raw_id)?;
    state
        .people
        .invite(&id)
        .await?
        .ok_or_else(|| DomainError::not_found("invite", raw_id).into())
}

pub async fn retrieve(
    State(state): State<AppState>,
    admin: Admin,
    Path(invite_id): Path<String>,
) -> Result<Json<api::Invite>, ApiError> {
    admin.read()?;
    let invite = find(&state, &invite_id).await?;
    Ok(Json(views::invite(&invite, keyplane_core::time::now())))
}

/// Withdraws a pending (or expired) invite; an accepted one cannot be deleted (400).
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(invite_id): Path<String>,
) -> Result<Json<api::Deleted>, ApiError> {
    let cap = admin.write()?;
    Ok(Json(delete_with(&state, &cap, invite_id).await?))
}

/// `delete`, shared by the Admin API and the dashboard.
pub async fn delete_with(
    state: &AppState,
    cap: &OrgWrite<'_>,
    invite_id: String,
) -> Result<api::Deleted, ApiError> {
    let invite = find(state, &invite_id).await?;
    if invite.accepted_at.is_some() {
        return Err(ApiError::invalid(
            None,
            "This invite has been accepted and cannot be deleted.",
        ));
    }
    let event = cap.event("invite.deleted", None, json!({"id": invite.id.as_str()}));
    let deleted = state
        .people
        .delete_invite(&invite.id, keyplane_core::time::now(), &[event])
        .await?;
    if !deleted {
        return Err(DomainError::not_found("invite", invite_id).into());
    }
    Ok(views::deleted(
        "organization.invite.deleted",
        invite.id.as_str(),
    ))
}

fn no_such_token() -> ApiError {
    ApiError::NotFound(
        "No invite matches this token. Ask an owner of the organization for a new invite."
            .to_owned(),
    )
}

/// `POST /v1/invites/accept` (public; the token is the credential): creates the member with
/// an Argon2id password and the invite's roles, or sets the first owner's password.
pub async fn accept(
    State(state): State<AppState>,
    client: ClientInfo,
    Json(body): Json<AcceptInvite>,
) -> Result<Json<api::User>, ApiError> {
    Ok(Json(views::user(&accept_with(&state, client, body).await?)))
}

/// Accepts an invite or setup link (the public endpoint and the dashboard's sign-up page);
/// returns the member who can now sign in.
pub async fn accept_with(
    state: &AppState,
    client: ClientInfo,
    body: AcceptInvite,
) -> Result<User, ApiError> {
    let token = body.token.trim();
    if token.is_empty() || token.len() > 128 {
        return Err(no_such_token());
    }
    let found = state
        .people
        .invite_by_token(&hash_token(token))
        .await?
        .ok_or_else(no_such_token)?;
    let now = keyplane_core::time::now();
    if found.deleted {
        return Err(ApiError::NotFound(
            "This invite was withdrawn. Ask an owner of the organization for a new invite."
                .to_owned(),
        ));
    }
    match found.invite.status(now) {
        InviteStatus::Pending => {}
        InviteStatus::Accepted => {
            return Err(ApiError::invalid(
                Some("token"),
                "This invite has already been accepted.",
            ))
        }
        InviteStatus::Expired => {
            return Err(ApiError::invalid(
                Some("token"),
                format!(
                    "This invite expired at {}. Ask an owner of the organization for a new invite.",
                    found.invite.expires_at
                ),
            ))
        }
    }
    let password = Password::parse(&body.password)?;
    let invite = found.invite;
    let user = match &found.purpose {
        InvitePurpose::Join => {
            let name = Name::parse("name", body.name.as_deref().unwrap_or(""))?;
            if state.people.user_by_email(&invite.email).await?.is_some() {
                return Err(ApiError::invalid(
                    None,
                    format!(
                        "A member of the organization already uses the email '{}'.",
                        invite.email
                    ),
                ));
            }
            User {
                id: UserId::generate(),
                email: invite.email.clone(),
                name: name.into_string(),
                role: invite.role,
                added_at: now,
            }
        }
        InvitePurpose::SetPassword(id) => {
            let mut user = state.orgs.user(id).await?.ok_or_else(no_such_token)?;
            if let Some(name) = body.name.as_deref() {
                user.name = Name::parse("name", name)?.into_string();
            }
            user
        }
    };
    let password_hash = crate::password::hash(password).await?;
    let actor = session_actor(&user, client.ip, client.user_agent);
    let event = match &found.purpose {
        InvitePurpose::Join => AuditEvent::new(
            "invite.accepted",
            None,
            actor,
            json!({"id": invite.id.as_str(), "data": {
                "user_id": user.id.as_str(),
                "email": user.email,
                "role": user.role.as_str(),
                "projects": invite.projects.iter()
                    .map(|p| json!({"id": p.id.as_str(), "role": p.role.as_str()}))
                    .collect::<Vec<_>>(),
            }}),
        ),
        // The first owner's setup link: no invite was sent, the owner set their password.
        InvitePurpose::SetPassword(_) => AuditEvent::new(
            "user.updated",
            None,
            actor,
            json!({"id": user.id.as_str(), "changes_requested": {"password_set": true}}),
        ),
    };
    let acceptance = Acceptance {
        invite_id: invite.id.clone(),
        at: now,
        user: user.clone(),
        purpose: found.purpose.clone(),
        projects: invite.projects.clone(),
        password_hash,
    };
    match state.people.accept_invite(&acceptance, &[event]).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict(m)) => Err(ApiError::invalid(Some("token"), m)),
        Err(e) => Err(e.into()),
    }
}
