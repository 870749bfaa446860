//! The organization's objects and the validated inputs that create or change them.

use crate::ids::{ProjectId, ServiceAccountId, UserId};
use crate::keys::{KeyHash, KeyId, KeyKind};
use crate::scopes::Permissions;
use crate::time::UnixSeconds;
use crate::DomainError;

/// A human-chosen name (project, key, service account): trimmed, 1–256 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 256;

    pub fn parse(param: &str, raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid(
                param,
                format!("'{param}' must not be empty."),
            ));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::invalid(
                param,
                format!("'{param}' must be at most {} characters.", Self::MAX_CHARS),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                param,
                format!("'{param}' must not contain control characters."),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `expires_in_seconds`: 1 second to 1 year, as the spec bounds admin keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresIn(i64);

impl ExpiresIn {
    pub const MAX: i64 = 31_536_000;

    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if (1..=Self::MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(DomainError::invalid(
                "expires_in_seconds",
                format!(
                    "Invalid 'expires_in_seconds': {raw}. Expected a value between 1 and {}.",
                    Self::MAX
                ),
            ))
        }
    }

    pub fn expires_at(self, now: UnixSeconds) -> UnixSeconds {
        now + self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    Owner,
    Reader,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Reader => "reader",
        }
    }

    pub fn from_db(s: &str) -> Self {
        if s == "owner" {
            OrgRole::Owner
        } else {
            OrgRole::Reader
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAccountRole {
    Owner,
    Member,
}

impl ServiceAccountRole {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            _ => Err(DomainError::invalid(
                "role",
                "Invalid 'role': expected 'owner' or 'member'.",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: UnixSeconds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: OrgRole,
    pub added_at: UnixSeconds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub created_at: UnixSeconds,
    pub archived_at: Option<UnixSeconds>,
    pub external_key_id: Option<String>,
    pub residency: Option<String>,
}

impl Project {
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// Refuses changes to an archived project.
    pub fn ensure_active(&self) -> Result<(), DomainError> {
        if self.is_archived() {
            Err(DomainError::Conflict(format!(
                "Project '{}' is archived and cannot be changed.",
                self.id
            )))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub project_id: ProjectId,
    pub name: String,
    /// `owner`, `member`, or `none` (created with `create_service_account_only`).
    pub role: String,
    pub created_at: UnixSeconds,
}

/// Who a key acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwnerId {
    User(UserId),
    ServiceAccount(ServiceAccountId),
}

/// The owner as list and retrieve responses show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub id: KeyOwnerId,
    pub name: String,
    pub email: Option<String>,
    pub created_at: UnixSeconds,
    /// Project role for project keys; organization role for admin keys.
    pub role: String,
}

/// A stored key (never its plaintext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: KeyId,
    pub kind: KeyKind,
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub redacted_value: String,
    pub hash: KeyHash,
    pub permissions: Permissions,
    pub created_at: UnixSeconds,
    pub expires_at: Option<UnixSeconds>,
    pub last_used_at: Option<UnixSeconds>,
    pub owner: KeyOwner,
    /// False when the owner no longer has access to the project (removed or deleted user).
    pub owner_active: bool,
    /// Set when the project is archived: its keys stop working.
    pub project_archived: bool,
}

impl ApiKey {
    pub fn is_expired(&self, now: UnixSeconds) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// What is stored for a new key.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: KeyId,
    pub kind: KeyKind,
    pub project_id: Option<ProjectId>,
    pub name: String,
    pub redacted_value: String,
    pub hash: KeyHash,
    pub permissions: Permissions,
    pub owner: KeyOwnerId,
    pub created_at: UnixSeconds,
    pub expires_at: Option<UnixSeconds>,
}

/// A change to a key (extension: rename, rescope, set or clear expiry).
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<Name>,
    pub permissions: Option<Permissions>,
    /// `Some(None)` clears the expiry.
    pub expires_at: Option<Option<UnixSeconds>>,
}

/// `owner_project_access` filter on key lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerAccessFilter {
    Active,
    Inactive,
    Any,
}

impl OwnerAccessFilter {
    pub fn parse(raw: Option<&str>) -> Result<Self, DomainError> {
        match raw {
            None | Some("active") => Ok(Self::Active),
            Some("inactive") => Ok(Self::Inactive),
            Some("any") => Ok(Self::Any),
            Some(_) => Err(DomainError::invalid(
                "owner_project_access",
                "Invalid 'owner_project_access': expected 'active', 'inactive' or 'any'.",
            )),
        }
    }
}

/// One entry of the append-only audit log. `actor` and `details` are the API's JSON shapes;
/// they never hold a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub event_type: String,
    pub effective_at: UnixSeconds,
    pub project_id: Option<String>,
    pub actor: serde_json::Value,
    pub details: serde_json::Value,
    /// Derived from `actor` and `details`; stored in indexed columns for the list's filters.
    pub index: crate::audit::AuditIndex,
}

impl AuditEvent {
    pub fn new(
        event_type: &str,
        project_id: Option<&ProjectId>,
        actor: serde_json::Value,
        details: serde_json::Value,
    ) -> Self {
        Self {
            id: format!("audit_log-{}", crate::ids::random_base62(24)),
            event_type: event_type.to_owned(),
            effective_at: crate::time::now(),
            project_id: project_id.map(|p| p.as_str().to_owned()),
            index: crate::audit::AuditIndex::of(&actor, &details),
            actor,
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("name", "  k1 ").unwrap().as_str(), "k1");
        assert!(Name::parse("name", "   ").is_err());
        assert!(Name::parse("name", &"x".repeat(257)).is_err());
        assert!(Name::parse("name", &"é".repeat(256)).is_ok());
        assert!(Name::parse("name", "a\u{0}b").is_err());
        assert_eq!(
            Name::parse("name", "<script>alert(1)</script>")
                .unwrap()
                .as_str(),
            "<script>alert(1)</script>"
        );
    }

    #[test]
    fn expiry_bounds() {
        assert!(ExpiresIn::parse(0).is_err());
        assert!(ExpiresIn::parse(-5).is_err());
        assert!(ExpiresIn::parse(31_536_001).is_err());
        assert_eq!(ExpiresIn::parse(60).unwrap().expires_at(100), 160);
    }

    #[test]
    fn owner_access_filter() {
        assert_eq!(
            OwnerAccessFilter::parse(None).unwrap(),
            OwnerAccessFilter::Active
        );
        assert_eq!(
            OwnerAccessFilter::parse(Some("any")).unwrap(),
            OwnerAccessFilter::Any
        );
        assert!(OwnerAccessFilter::parse(Some("all")).is_err());
    }

    #[test]
    fn service_account_roles() {
        assert_eq!(
            ServiceAccountRole::parse("owner").unwrap().as_str(),
            "owner"
        );
        assert!(ServiceAccountRole::parse("none").is_err());
    }
}
