//! Who may do what, decided from roles alone (no I/O). The server turns these decisions into
//! capabilities (`crates/server/src/auth.rs`); the same rules serve admin keys and, later,
//! dashboard sessions.
//!
//! - Organization owners manage everything and are owners of every project.
//! - Organization readers read everything and change nothing at the organization level.
//! - In a project, owners manage its keys, service accounts and members; members manage their
//!   own keys only. A user outside the project has no access to it.

use crate::ids::UserId;
use crate::model::{KeyOwnerId, OrgRole};
use crate::people::ProjectRole;
use crate::DomainError;

/// What a user may do in one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProjectAccess {
    None,
    Member,
    Owner,
}

impl ProjectAccess {
    /// From the user's organization role and their membership of the project (if any).
    pub fn of(org_role: OrgRole, membership: Option<ProjectRole>) -> Self {
        match (org_role, membership) {
            (OrgRole::Owner, _) | (_, Some(ProjectRole::Owner)) => Self::Owner,
            (_, Some(ProjectRole::Member)) => Self::Member,
            (OrgRole::Reader, None) => Self::None,
        }
    }

    /// Reading the project, its keys and members.
    pub fn check_read(self) -> Result<(), DomainError> {
        if self >= Self::Member {
            Ok(())
        } else {
            Err(DomainError::Forbidden(
                "You are not a member of this project.".to_owned(),
            ))
        }
    }

    /// Managing the project: anyone's keys, service accounts, members, limits.
    pub fn check_manage(self) -> Result<(), DomainError> {
        if self == Self::Owner {
            Ok(())
        } else {
            Err(DomainError::Forbidden(
                "Only an owner of this project can do this.".to_owned(),
            ))
        }
    }

    /// Creating, changing or deleting one key owned by `owner`, acting as `me`: owners manage
    /// every key of the project, members only their own.
    pub fn check_key(self, me: &UserId, owner: &KeyOwnerId) -> Result<(), DomainError> {
        match self {
            Self::Owner => Ok(()),
            Self::Member if *owner == KeyOwnerId::User(me.clone()) => Ok(()),
            Self::Member => Err(DomainError::Forbidden(
                "Project members can only manage their own keys.".to_owned(),
            )),
            Self::None => self.check_read(),
        }
    }
}

/// Changing the organization (users, invites, projects, admin keys) needs the owner role.
pub fn check_org_write(org_role: OrgRole) -> Result<(), DomainError> {
    match org_role {
        OrgRole::Owner => Ok(()),
        OrgRole::Reader => Err(DomainError::Forbidden(
            "Organization readers cannot change the organization.".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ServiceAccountId;

    #[test]
    fn org_owners_own_every_project() {
        assert_eq!(
            ProjectAccess::of(OrgRole::Owner, None),
            ProjectAccess::Owner
        );
        assert_eq!(
            ProjectAccess::of(OrgRole::Owner, Some(ProjectRole::Member)),
            ProjectAccess::Owner
        );
    }

    #[test]
    fn readers_get_what_their_membership_gives() {
        assert_eq!(
            ProjectAccess::of(OrgRole::Reader, None),
            ProjectAccess::None
        );
        assert_eq!(
            ProjectAccess::of(OrgRole::Reader, Some(ProjectRole::Member)),
            ProjectAccess::Member
        );
        assert_eq!(
            ProjectAccess::of(OrgRole::Reader, Some(ProjectRole::Owner)),
            ProjectAccess::Owner
        );
    }

    #[test]
    fn members_manage_only_their_own_keys() {
        let me = UserId::generate();
        let other = UserId::generate();
        let member = ProjectAccess::Member;
        assert!(member.check_key(&me, &KeyOwnerId::User(me.clone())).is_ok());
        assert!(member
            .check_key(&me, &KeyOwnerId::User(other.clone()))
            .is_err());
        assert!(member
            .check_key(
                &me,
                &KeyOwnerId::ServiceAccount(ServiceAccountId::generate())
            )
            .is_err());
        assert!(member.check_manage().is_err());
        assert!(member.check_read().is_ok());
        let owner = ProjectAccess::Owner;
        assert!(owner.check_key(&me, &KeyOwnerId::User(other)).is_ok());
        assert!(owner.check_manage().is_ok());
        let outsider = ProjectAccess::None;
        assert!(outsider.check_read().is_err());
        assert!(outsider
            .check_key(&me, &KeyOwnerId::User(me.clone()))
            .is_err());
    }

    #[test]
    fn only_owners_change_the_organization() {
        assert!(check_org_write(OrgRole::Owner).is_ok());
        assert!(check_org_write(OrgRole::Reader).is_err());
    }
}
