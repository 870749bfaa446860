//! API key permissions, named as OpenAI names them.
//!
//! A key carries either **all** permissions (no scope list) or a list of scope strings such as
//! `api.model.read` or `api.responses.write`. A `.write` scope implies the matching `.read`.
//! `model.request` is OpenAI's "Model capabilities: write" (chat, completions, embeddings, images,
//! audio, moderations). The dashboard's "Read only" preset is every `.read` scope.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every scope a key can hold. Data-plane scopes first, then the Admin API's.
pub const KNOWN_SCOPES: &[&str] = &[
    "api.model.read",
    "model.request",
    "api.responses.read",
    "api.responses.write",
    "api.assistants.read",
    "api.assistants.write",
    "api.threads.read",
    "api.threads.write",
    "api.files.read",
    "api.files.write",
    "api.fine_tuning.jobs.read",
    "api.fine_tuning.jobs.write",
    "api.batch.read",
    "api.batch.write",
    "api.vector_stores.read",
    "api.vector_stores.write",
    "api.evals.read",
    "api.evals.write",
    "api.videos.read",
    "api.videos.write",
    "api.management.read",
    "api.management.write",
    "api.usage.read",
];

/// One validated scope string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope(String);

impl Scope {
    pub fn parse(s: &str) -> Result<Self, crate::DomainError> {
        if KNOWN_SCOPES.contains(&s) {
            Ok(Self(s.to_owned()))
        } else {
            let shown: String = s.chars().take(64).collect();
            Err(crate::DomainError::invalid(
                "scopes",
                format!(
                    "Unknown scope '{shown}'. Valid scopes are: {}.",
                    KNOWN_SCOPES.join(", ")
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key may do: everything, or exactly the listed scopes (and the reads their writes imply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permissions {
    All,
    Restricted(Vec<Scope>),
}

impl Permissions {
    /// Builds permissions from an optional client list. `None` means all; duplicates collapse.
    pub fn parse(scopes: Option<&[String]>) -> Result<Self, crate::DomainError> {
        match scopes {
            None => Ok(Permissions::All),
            Some(list) => {
                if list.len() > KNOWN_SCOPES.len() * 2 {
                    return Err(crate::DomainError::invalid("scopes", "Too many scopes."));
                }
                let mut parsed = list
                    .iter()
                    .map(|s| Scope::parse(s))
                    .collect::<Result<Vec<_>, _>>()?;
                parsed.sort();
                parsed.dedup();
                Ok(Permissions::Restricted(parsed))
            }
        }
    }

    /// True when `needed` is held directly, or implied by its `.write` sibling.
    pub fn allows(&self, needed: &str) -> bool {
        match self {
            Permissions::All => true,
            Permissions::Restricted(list) => list.iter().any(|s| {
                s.as_str() == needed
                    || needed
                        .strip_suffix(".read")
                        .is_some_and(|base| s.as_str().strip_suffix(".write") == Some(base))
            }),
        }
    }

    /// The scope list as the API shows it (`None` for all permissions).
    pub fn to_list(&self) -> Option<Vec<String>> {
        match self {
            Permissions::All => None,
            Permissions::Restricted(list) => {
                Some(list.iter().map(|s| s.as_str().to_owned()).collect())
            }
        }
    }

    /// Restores permissions stored by [`Permissions::to_list`]; unknown stored strings are dropped.
    pub fn from_stored(list: Option<Vec<String>>) -> Self {
        match list {
            None => Permissions::All,
            Some(list) => {
                Permissions::Restricted(list.iter().filter_map(|s| Scope::parse(s).ok()).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restricted(list: &[&str]) -> Permissions {
        let owned: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        Permissions::parse(Some(&owned)).unwrap()
    }

    #[test]
    fn write_implies_read_but_not_the_reverse() {
        let p = restricted(&["api.responses.write"]);
        assert!(p.allows("api.responses.write"));
        assert!(p.allows("api.responses.read"));
        assert!(!p.allows("api.files.read"));
        let r = restricted(&["api.files.read"]);
        assert!(!r.allows("api.files.write"));
    }

    #[test]
    fn all_allows_everything_and_unknown_scopes_are_refused() {
        assert!(Permissions::All.allows("model.request"));
        let err = Permissions::parse(Some(&["api.everything".to_owned()])).unwrap_err();
        assert!(
            matches!(err, crate::DomainError::InvalidInput { param: Some(ref p), .. } if p == "scopes")
        );
    }

    #[test]
    fn duplicates_collapse_and_round_trip() {
        let p = restricted(&["model.request", "api.model.read", "model.request"]);
        let list = p.to_list().unwrap();
        assert_eq!(list, vec!["api.model.read", "model.request"]);
        assert_eq!(Permissions::from_stored(Some(list)), p);
        assert_eq!(Permissions::from_stored(None), Permissions::All);
    }
}
