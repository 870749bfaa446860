//! Typed identifiers. Each is an opaque string with a fixed prefix, generated from a CSPRNG,
//! and parsed (length and alphabet checked) before it reaches a query.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` characters drawn uniformly from the base62 alphabet.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect()
}

/// Longest id we accept from a client; anything longer cannot be ours.
const MAX_ID_LEN: usize = 64;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            /// What the API calls this kind of object in "not found" messages.
            pub const KIND: &'static str = $kind;

            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_base62(24)))
            }

            /// Accepts any id a client may send: our prefix, bounded length, a safe alphabet.
            /// An id that passes may still not exist; that is the store's answer to give.
            pub fn parse(s: &str) -> Result<Self, crate::DomainError> {
                let ok = s.len() > $prefix.len()
                    && s.len() <= MAX_ID_LEN
                    && s.starts_with($prefix)
                    && s.chars().all(is_id_char);
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(crate::DomainError::not_found($kind, s))
                }
            }

            /// Wraps a value read back from our own storage.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// `org-…`
    OrgId, "org-", "organization"
);
id_type!(
    /// `proj_…`
    ProjectId, "proj_", "project"
);
id_type!(
    /// `user-…` (OpenAI's live user ids use a dash)
    UserId, "user-", "user"
);
id_type!(
    /// `svc_acct_…`
    ServiceAccountId, "svc_acct_", "service account"
);
id_type!(
    /// `invite-…`
    InviteId, "invite-", "invite"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = ProjectId::generate();
        assert_eq!(ProjectId::parse(id.as_str()), Ok(id.clone()));
        assert_eq!(id.as_str().len(), "proj_".len() + 24);
    }

    #[test]
    fn parse_rejects_foreign_or_hostile_ids() {
        for bad in [
            "",
            "proj_",
            "user-abc",
            "proj_abc'; DROP TABLE projects;--",
            "proj_abc/../x",
            &format!("proj_{}", "a".repeat(100)),
            "proj_\u{1F600}",
        ] {
            assert!(ProjectId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(ProjectId::parse("proj_abc").is_ok());
        assert!(UserId::parse("user-abc_DEF").is_ok());
        assert!(ServiceAccountId::parse("svc_acct_x").is_ok());
    }
}
