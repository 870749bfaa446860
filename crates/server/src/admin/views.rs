//! Domain objects rendered as the API's JSON shapes.

use keyplane_api_types as api;
use keyplane_core::model::{ApiKey, KeyOwnerId, Project, ServiceAccount, User};
use keyplane_core::people::{Invite, ProjectUser};
use keyplane_core::time::UnixSeconds;

pub fn project(p: &Project) -> api::Project {
    api::Project {
        id: p.id.to_string(),
        object: "organization.project".to_owned(),
        name: p.name.clone(),
        created_at: p.created_at,
        archived_at: p.archived_at,
        status: if p.is_archived() {
            "archived"
        } else {
            "active"
        }
        .to_owned(),
        external_key_id: p.external_key_id.clone(),
        residency: p.residency.clone(),
    }
}

pub fn admin_key(k: &ApiKey) -> api::AdminApiKey {
    api::AdminApiKey {
        object: "organization.admin_api_key".to_owned(),
        id: k.id.to_string(),
        name: Some(k.name.clone()),
        redacted_value: k.redacted_value.clone(),
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: k.last_used_at,
        owner: api::AdminApiKeyOwner {
            kind: "user".to_owned(),
            object: "organization.user".to_owned(),
            id: owner_id(&k.owner.id),
            name: k.owner.name.clone(),
            created_at: k.owner.created_at,
            role: k.owner.role.clone(),
        },
        scopes: k.permissions.to_list(),
        value: None,
    }
}

fn owner_id(id: &KeyOwnerId) -> String {
    match id {
        KeyOwnerId::User(u) => u.to_string(),
        KeyOwnerId::ServiceAccount(s) => s.to_string(),
    }
}

pub fn project_key(k: &ApiKey) -> api::ProjectApiKey {
    let owner = match &k.owner.id {
        KeyOwnerId::User(u) => api::ProjectApiKeyOwner {
            kind: "user".to_owned(),
            user: Some(api::ProjectApiKeyOwnerUser {
                id: u.to_string(),
                email: k.owner.email.clone().unwrap_or_default(),
                name: k.owner.name.clone(),
                created_at: k.owner.created_at,
                role: k.owner.role.clone(),
            }),
            service_account: None,
        },
        KeyOwnerId::ServiceAccount(s) => api::ProjectApiKeyOwner {
            kind: "service_account".to_owned(),
            user: None,
            service_account: Some(api::ProjectApiKeyOwnerServiceAccount {
                id: s.to_string(),
                name: k.owner.name.clone(),
                created_at: k.owner.created_at,
                role: k.owner.role.clone(),
            }),
        },
    };
    api::ProjectApiKey {
        object: "organization.project.api_key".to_owned(),
        id: k.id.to_string(),
        name: k.name.clone(),
        redacted_value: k.redacted_value.clone(),
        created_at: k.created_at,
        last_used_at: k.last_used_at,
        expires_at: k.expires_at,
        owner,
        owner_project_access: if k.owner_active { "active" } else { "inactive" }.to_owned(),
        scopes: k.permissions.to_list(),
        value: None,
    }
}

pub fn service_account(s: &ServiceAccount) -> api::ServiceAccount {
    api::ServiceAccount {
        object: "organization.project.service_account".to_owned(),
        id: s.id.to_string(),
        name: s.name.clone(),
        role: s.role.clone(),
        created_at: s.created_at,
    }
}

pub fn user(u: &User) -> api::User {
    api::User {
        object: "organization.user".to_owned(),
        id: u.id.to_string(),
        name: u.name.clone(),
        email: u.email.clone(),
        role: u.role.as_str().to_owned(),
        added_at: u.added_at,
    }
}

pub fn invite(i: &Invite, now: UnixSeconds) -> api::Invite {
    api::Invite {
        object: "organization.invite".to_owned(),
        id: i.id.to_string(),
        email: i.email.clone(),
        role: i.role.as_str().to_owned(),
        status: i.status(now).as_str().to_owned(),
        created_at: i.created_at,
        expires_at: Some(i.expires_at),
        accepted_at: i.accepted_at,
        projects: i
            .projects
            .iter()
            .map(|p| api::InviteProject {
                id: p.id.to_string(),
                role: p.role.as_str().to_owned(),
            })
            .collect(),
        accept_url: None,
    }
}

pub fn project_user(m: &ProjectUser) -> api::ProjectUser {
    api::ProjectUser {
        object: "organization.project.user".to_owned(),
        id: m.user.id.to_string(),
        name: m.user.name.clone(),
        email: m.user.email.clone(),
        role: m.role.as_str().to_owned(),
        added_at: m.added_at,
    }
}

pub fn deleted(object: &str, id: &str) -> keyplane_api_types::Deleted {
    keyplane_api_types::Deleted {
        object: object.to_owned(),
        id: id.to_owned(),
        deleted: true,
    }
}
