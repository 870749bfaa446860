//! The audit log's queries: filters as OpenAI's `GET /organization/audit_logs` takes them, and
//! the indexed fields each event is filed under so those filters run as SQL.

use crate::pagination::Limit;
use crate::DomainError;
use serde_json::Value;

/// The event types Keyplane writes: all of them OpenAI's names, so strict SDK clients accept
/// every event.
pub const EMITTED_EVENT_TYPES: &[&str] = &[
    "api_key.created",
    "api_key.updated",
    "api_key.deleted",
    "invite.sent",
    "invite.accepted",
    "invite.deleted",
    "login.failed",
    "login.succeeded",
    "logout.succeeded",
    "organization.updated",
    "project.created",
    "project.updated",
    "project.archived",
    "rate_limit.updated",
    "service_account.created",
    "service_account.updated",
    "service_account.deleted",
    "user.added",
    "user.updated",
    "user.deleted",
];

/// The fields an event is filed under (their own indexed columns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditIndex {
    /// The user or service account that acted.
    pub actor_id: Option<String>,
    /// The API key it acted with, if any.
    pub actor_key_id: Option<String>,
    /// The acting user's email, lowercased.
    pub actor_email: Option<String>,
    /// The object the event is about (the payload's `id`).
    pub resource_id: Option<String>,
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl AuditIndex {
    /// Reads the index fields from an event's `actor` and payload (OpenAI's shapes:
    /// `{type: "api_key", api_key: {id, user: {id, email} | service_account: {id}}}` or
    /// `{type: "session", session: {user: {id, email}}}`).
    pub fn of(actor: &Value, details: &Value) -> Self {
        let (actor_id, actor_key_id, actor_email) = match actor.get("type").and_then(Value::as_str)
        {
            Some("api_key") => (
                text(actor, "/api_key/user/id")
                    .or_else(|| text(actor, "/api_key/service_account/id")),
                text(actor, "/api_key/id"),
                text(actor, "/api_key/user/email"),
            ),
            Some("session") => (
                text(actor, "/session/user/id"),
                None,
                text(actor, "/session/user/email"),
            ),
            _ => (None, None, None),
        };
        AuditIndex {
            actor_id,
            actor_key_id,
            actor_email: actor_email.map(|e| e.to_lowercase()),
            resource_id: text(details, "/id"),
        }
    }
}

/// `effective_at[gt|gte|lt|lte]`, Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub gt: Option<i64>,
    pub gte: Option<i64>,
    pub lt: Option<i64>,
    pub lte: Option<i64>,
}

/// Every filter of the audit-log list. An empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub effective_at: TimeRange,
    pub project_ids: Vec<String>,
    pub event_types: Vec<String>,
    /// User, service-account or API-key ids.
    pub actor_ids: Vec<String>,
    /// Compared case-insensitively.
    pub actor_emails: Vec<String>,
    pub resource_ids: Vec<String>,
}

impl AuditFilter {
    /// Most values one array filter may hold.
    pub const MAX_VALUES: usize = 100;
    const MAX_VALUE_CHARS: usize = 320;

    /// Bounds every list (count and length), so a query stays small.
    pub fn check(&self) -> Result<(), DomainError> {
        for (name, values) in [
            ("project_ids", &self.project_ids),
            ("event_types", &self.event_types),
            ("actor_ids", &self.actor_ids),
            ("actor_emails", &self.actor_emails),
            ("resource_ids", &self.resource_ids),
        ] {
            if values.len() > Self::MAX_VALUES {
                return Err(DomainError::invalid(
                    name,
                    format!(
                        "Invalid '{name}': at most {} values are allowed.",
                        Self::MAX_VALUES
                    ),
                ));
            }
            if values
                .iter()
                .any(|v| v.is_empty() || v.chars().count() > Self::MAX_VALUE_CHARS)
            {
                return Err(DomainError::invalid(
                    name,
                    format!(
                        "Invalid '{name}': values must be 1 to {} characters.",
                        Self::MAX_VALUE_CHARS
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Where a page starts: newest first, or strictly older (`after`) or newer (`before`) than an
/// event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuditCursor {
    #[default]
    Newest,
    After(String),
    Before(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub filter: AuditFilter,
    pub limit: Limit,
    pub cursor: AuditCursor,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn index_reads_api_key_and_session_actors() {
        let key_actor = json!({"type": "api_key", "api_key": {"id": "key_1", "type": "user",
            "user": {"id": "user-1", "email": "Ana@X.com"}}});
        let idx = AuditIndex::of(&key_actor, &json!({"id": "proj_1"}));
        assert_eq!(idx.actor_id.as_deref(), Some("user-1"));
        assert_eq!(idx.actor_key_id.as_deref(), Some("key_1"));
        assert_eq!(idx.actor_email.as_deref(), Some("ana@x.com"));
        assert_eq!(idx.resource_id.as_deref(), Some("proj_1"));

        let sa_actor = json!({"type": "api_key", "api_key": {"id": "key_2",
            "type": "service_account", "service_account": {"id": "svc_acct_1"}}});
        let idx = AuditIndex::of(&sa_actor, &json!({}));
        assert_eq!(idx.actor_id.as_deref(), Some("svc_acct_1"));
        assert_eq!(idx.actor_email, None);
        assert_eq!(idx.resource_id, None);

        let session =
            json!({"type": "session", "session": {"user": {"id": "user-2", "email": "b@x"}}});
        let idx = AuditIndex::of(&session, &json!({"id": "invite-1"}));
        assert_eq!(idx.actor_id.as_deref(), Some("user-2"));
        assert_eq!(idx.actor_key_id, None);
    }

    #[test]
    fn filters_are_bounded() {
        let mut f = AuditFilter::default();
        assert!(f.check().is_ok());
        f.event_types = vec!["x".into(); 101];
        assert!(f.check().is_err());
        f.event_types = vec![String::new()];
        assert!(f.check().is_err());
    }
}
