//! The people behind the keys: emails, project memberships, invites and their single-use
//! tokens, and the passwords people choose. Validation only; hashing a password (Argon2id) is
//! the server's job, storing is the store's.

use crate::ids::{random_base62, InviteId, ProjectId, UserId};
use crate::model::{OrgRole, User};
use crate::time::UnixSeconds;
use crate::DomainError;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

/// An email address as people type it: trimmed, at most 320 characters, one `@` with text on
/// both sides, no whitespace or control characters. Compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 320;

    pub fn parse(param: &str, raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let ok = !s.is_empty()
            && s.chars().count() <= Self::MAX_CHARS
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            let shown: String = raw.chars().filter(|c| !c.is_control()).take(80).collect();
            Err(DomainError::invalid(
                param,
                format!("Invalid '{param}': '{shown}' is not an email address."),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for comparisons and indexes.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part before `@`: a default display name.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or(&self.0)
    }
}

impl OrgRole {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "owner" => Ok(OrgRole::Owner),
            "reader" => Ok(OrgRole::Reader),
            _ => Err(DomainError::invalid(
                "role",
                "Invalid 'role': expected 'owner' or 'reader'.",
            )),
        }
    }
}

/// A user's role in one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectRole {
    Owner,
    Member,
}

impl ProjectRole {
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

    pub fn from_db(s: &str) -> Self {
        if s == "owner" {
            Self::Owner
        } else {
            Self::Member
        }
    }
}

/// A user's membership of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectUser {
    pub project_id: ProjectId,
    pub user: User,
    pub role: ProjectRole,
    pub added_at: UnixSeconds,
}

/// A project an invite grants, with the role the invitee gets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteProject {
    pub id: ProjectId,
    pub role: ProjectRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteStatus {
    Pending,
    Accepted,
    Expired,
}

impl InviteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Expired => "expired",
        }
    }
}

/// An invitation to join the organization (or, for the first owner, to set a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: InviteId,
    pub email: String,
    pub role: OrgRole,
    pub projects: Vec<InviteProject>,
    pub created_at: UnixSeconds,
    pub expires_at: UnixSeconds,
    pub accepted_at: Option<UnixSeconds>,
}

impl Invite {
    /// How long an invite link stays valid.
    pub const LIFETIME: i64 = 7 * 24 * 3600;

    pub fn status(&self, now: UnixSeconds) -> InviteStatus {
        if self.accepted_at.is_some() {
            InviteStatus::Accepted
        } else if self.expires_at <= now {
            InviteStatus::Expired
        } else {
            InviteStatus::Pending
        }
    }
}

/// What an invite token unlocks: a new member, or the password of an existing user (the
/// first owner's one-time setup link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitePurpose {
    Join,
    SetPassword(UserId),
}

/// An invite found by its token, whatever its state.
#[derive(Debug, Clone)]
pub struct InviteByToken {
    pub invite: Invite,
    pub purpose: InvitePurpose,
    pub deleted: bool,
}

/// The single-use secret of an invite link. Only its SHA-256 is stored.
pub struct InviteToken(SecretString);

impl InviteToken {
    const PREFIX: &'static str = "kpinv_";

    /// 43 base62 characters: about 256 bits from the CSPRNG.
    pub fn generate() -> Self {
        Self(SecretString::from(format!(
            "{}{}",
            Self::PREFIX,
            random_base62(43)
        )))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The stored form: lowercase hex SHA-256 of the token.
    pub fn hash(&self) -> String {
        hash_token(self.expose())
    }
}

impl fmt::Debug for InviteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteToken([REDACTED])")
    }
}

/// SHA-256 (hex) of a presented token, for the lookup. Tokens carry 256 bits of entropy, so
/// a plain hash is enough (no pepper or slow hash needed).
pub fn hash_token(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A password a person chose: 8 to 1024 characters. Never printed.
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(DomainError::invalid(
                "password",
                format!(
                    "Invalid 'password': use at least {} characters.",
                    Self::MIN_CHARS
                ),
            ));
        }
        if n > Self::MAX_CHARS {
            return Err(DomainError::invalid(
                "password",
                format!(
                    "Invalid 'password': use at most {} characters.",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// What accepting an invite writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Acceptance {
    pub invite_id: InviteId,
    pub at: UnixSeconds,
    /// The new member (for [`InvitePurpose::Join`]) or the existing user whose password is set.
    pub user: User,
    pub purpose: InvitePurpose,
    pub projects: Vec<InviteProject>,
    /// PHC string (`$argon2id$…`), never the password.
    pub password_hash: String,
}

/// How the first owner will sign in, written with the organization.
#[derive(Debug, Clone)]
pub enum OwnerCredential {
    /// No password yet and no setup link.
    None,
    /// PHC string (`$argon2id$…`).
    PasswordHash(String),
    /// A one-time setup link: an invite for the owner, stored by its token's hash.
    SetupInvite { invite: Invite, token_hash: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_parse() {
        assert_eq!(
            Email::parse("email", " Ana@Example.com ").unwrap().as_str(),
            "Ana@Example.com"
        );
        assert_eq!(
            Email::parse("email", "Ana@Example.com")
                .unwrap()
                .normalized(),
            "ana@example.com"
        );
        for bad in ["", "ana", "@x", "ana@", "a b@x", "a@b@c", "a\u{0}@x"] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
        assert_eq!(Email::parse("email", "ana@x").unwrap().local_part(), "ana");
    }

    #[test]
    fn roles_parse() {
        assert_eq!(OrgRole::parse("reader").unwrap(), OrgRole::Reader);
        assert!(OrgRole::parse("member").is_err());
        assert_eq!(ProjectRole::parse("member").unwrap(), ProjectRole::Member);
        assert!(ProjectRole::parse("reader").is_err());
    }

    #[test]
    fn invite_status_follows_time_and_acceptance() {
        let mut invite = Invite {
            id: InviteId::generate(),
            email: "a@b".into(),
            role: OrgRole::Reader,
            projects: vec![],
            created_at: 0,
            expires_at: 100,
            accepted_at: None,
        };
        assert_eq!(invite.status(99), InviteStatus::Pending);
        assert_eq!(invite.status(100), InviteStatus::Expired);
        invite.accepted_at = Some(50);
        assert_eq!(invite.status(200), InviteStatus::Accepted);
    }

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = InviteToken::generate();
        let b = InviteToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), "kpinv_".len() + 43);
        assert_eq!(a.hash(), hash_token(a.expose()));
        assert_eq!(a.hash().len(), 64);
        assert!(!a.hash().contains(a.expose()));
        assert_eq!(format!("{a:?}"), "InviteToken([REDACTED])");
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        let p = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password([REDACTED])");
        assert_eq!(p.expose(), "correct horse battery");
    }
}
