//! Which columns each Admin API object shows in a table or CSV, read from the raw JSON so that
//! fields a server adds (or leaves out, as OpenAI does with Keyplane's extensions) never break it.

use crate::table::{Cell, Column, Table};
use serde_json::Value;

/// A column: its header, whether it may be truncated, and how to read its cell.
pub struct Col {
    pub header: &'static str,
    pub keep: bool,
    pub get: fn(&Value) -> Cell,
}

const fn col(header: &'static str, get: fn(&Value) -> Cell) -> Col {
    Col {
        header,
        keep: false,
        get,
    }
}

/// A column that is never truncated.
const fn id(header: &'static str, get: fn(&Value) -> Cell) -> Col {
    Col {
        header,
        keep: true,
        get,
    }
}

pub fn table(cols: &[Col], items: &[Value]) -> Table {
    Table {
        columns: cols
            .iter()
            .map(|c| Column {
                header: c.header.to_owned(),
                keep: c.keep,
            })
            .collect(),
        rows: items
            .iter()
            .map(|item| cols.iter().map(|c| (c.get)(item)).collect())
            .collect(),
    }
}

/// The text of a scalar: strings as they are, numbers and booleans printed, null and absent empty.
pub fn scalar(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| scalar(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn text(v: &Value, pointer: &str) -> Cell {
    Cell::Text(scalar(v.pointer(pointer)))
}

fn time(v: &Value, pointer: &str, none: &'static str) -> Cell {
    Cell::Time {
        at: v.pointer(pointer).and_then(Value::as_i64),
        none,
    }
}

/// Keyplane's `scopes` extension: null means every permission; absent (OpenAI) shows nothing.
fn scopes(v: &Value) -> Cell {
    Cell::Text(match v.get("scopes") {
        Some(Value::Null) => "all".to_owned(),
        other => scalar(other),
    })
}

/// A project key's owner: the user's email or the service account's name.
fn key_owner(v: &Value) -> Cell {
    owner_of(v.get("owner"))
}

fn owner_of(owner: Option<&Value>) -> Cell {
    let pick = |p: &str| owner.and_then(|o| o.pointer(p)).and_then(Value::as_str);
    Cell::Text(
        pick("/user/email")
            .or_else(|| pick("/user/name"))
            .map(str::to_owned)
            .or_else(|| pick("/service_account/name").map(|n| format!("{n} (service account)")))
            .unwrap_or_default(),
    )
}

pub const PROJECT: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("NAME", |v| text(v, "/name")),
    col("STATUS", |v| text(v, "/status")),
    col("CREATED", |v| time(v, "/created_at", "")),
    col("ARCHIVED", |v| time(v, "/archived_at", "")),
];

pub const PROJECT_KEY: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("NAME", |v| text(v, "/name")),
    id("KEY", |v| text(v, "/redacted_value")),
    col("OWNER", key_owner),
    col("LAST USED", |v| time(v, "/last_used_at", "never")),
    col("EXPIRES", |v| time(v, "/expires_at", "never")),
    col("CREATED", |v| time(v, "/created_at", "")),
    col("SCOPES", scopes),
    col("ACCESS", |v| text(v, "/owner_project_access")),
];

pub const SERVICE_ACCOUNT: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("NAME", |v| text(v, "/name")),
    col("ROLE", |v| text(v, "/role")),
    col("CREATED", |v| time(v, "/created_at", "")),
];

/// A service account as created, with the id of its first key.
pub const SERVICE_ACCOUNT_CREATED: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("NAME", |v| text(v, "/name")),
    col("ROLE", |v| text(v, "/role")),
    col("CREATED", |v| time(v, "/created_at", "")),
    id("KEY ID", |v| text(v, "/api_key/id")),
    col("KEY EXPIRES", |v| time(v, "/api_key/expires_at", "never")),
];

pub const SERVICE_ACCOUNT_KEY: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("NAME", |v| text(v, "/name")),
    col("SCOPES", scopes),
    col("CREATED", |v| time(v, "/created_at", "")),
    col("EXPIRES", |v| time(v, "/expires_at", "never")),
];

pub const ADMIN_KEY: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("NAME", |v| text(v, "/name")),
    id("KEY", |v| text(v, "/redacted_value")),
    col("OWNER", |v| text(v, "/owner/name")),
    col("LAST USED", |v| time(v, "/last_used_at", "never")),
    col("EXPIRES", |v| time(v, "/expires_at", "never")),
    col("CREATED", |v| time(v, "/created_at", "")),
    col("SCOPES", scopes),
];

pub const USER: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("NAME", |v| text(v, "/name")),
    col("EMAIL", |v| text(v, "/email")),
    col("ROLE", |v| text(v, "/role")),
    col("ADDED", |v| time(v, "/added_at", "")),
];

pub const INVITE: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("EMAIL", |v| text(v, "/email")),
    col("ROLE", |v| text(v, "/role")),
    col("STATUS", |v| text(v, "/status")),
    col("PROJECTS", |v| {
        let projects = v.get("projects").and_then(Value::as_array);
        Cell::Text(
            projects
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{}:{}", scalar(p.get("id")), scalar(p.get("role"))))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        )
    }),
    col("CREATED", |v| time(v, "/created_at", "")),
    col("EXPIRES", |v| time(v, "/expires_at", "never")),
    col("ACCEPTED", |v| time(v, "/accepted_at", "")),
];

pub const RATE_LIMIT: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("MODEL", |v| text(v, "/model")),
    col("REQ/MIN", |v| text(v, "/max_requests_per_1_minute")),
    col("TOKENS/MIN", |v| text(v, "/max_tokens_per_1_minute")),
    col("REQ/DAY", |v| text(v, "/max_requests_per_1_day")),
    col("IMAGES/MIN", |v| text(v, "/max_images_per_1_minute")),
    col("AUDIO MB/MIN", |v| {
        text(v, "/max_audio_megabytes_per_1_minute")
    }),
    col("BATCH TOKENS/DAY", |v| {
        text(v, "/batch_1_day_max_input_tokens")
    }),
];

/// Who did it: a person's email, else the service account or key id.
fn actor(v: &Value) -> Cell {
    let pick = |p: &str| v.pointer(p).and_then(Value::as_str);
    Cell::Text(
        pick("/actor/api_key/user/email")
            .or_else(|| pick("/actor/session/user/email"))
            .or_else(|| pick("/actor/api_key/service_account/id"))
            .or_else(|| pick("/actor/api_key/id"))
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The object the event is about: the `id` in the payload stored under the event's type.
fn audit_resource(v: &Value) -> Cell {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    Cell::Text(scalar(v.get(kind).and_then(|p| p.get("id"))))
}

pub const AUDIT_LOG: &[Col] = &[
    id("ID", |v| text(v, "/id")),
    col("WHEN", |v| time(v, "/effective_at", "")),
    col("TYPE", |v| text(v, "/type")),
    col("ACTOR", actor),
    col("PROJECT", |v| text(v, "/project/id")),
    col("RESOURCE", audit_resource),
];

/// A row of `api-keys audit`: `{project, key, findings, details}`.
pub const KEY_FINDING: &[Col] = &[
    id("PROJECT", |v| text(v, "/project/id")),
    id("KEY ID", |v| text(v, "/key/id")),
    col("NAME", |v| text(v, "/key/name")),
    col("FINDINGS", |v| {
        let details = v.get("details").and_then(Value::as_array);
        Cell::Text(
            details
                .map(|d| {
                    d.iter()
                        .map(|x| scalar(Some(x)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        )
    }),
    col("LAST USED", |v| time(v, "/key/last_used_at", "never")),
    col("EXPIRES", |v| time(v, "/key/expires_at", "never")),
    col("CREATED", |v| time(v, "/key/created_at", "")),
    col("OWNER", |v| owner_of(v.pointer("/key/owner"))),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn project_key_row_reads_owner_and_scopes() {
        let key = json!({
            "id": "key_1", "name": "ci", "redacted_value": "sk-proj-...abcd",
            "owner": {"type": "service_account", "service_account": {"name": "bot"}},
            "owner_project_access": "active", "scopes": null,
            "created_at": 0, "last_used_at": null, "expires_at": null
        });
        let t = table(PROJECT_KEY, &[key]);
        assert_eq!(t.rows[0][3], Cell::Text("bot (service account)".into()));
        assert_eq!(t.rows[0][7], Cell::Text("all".into()));
        let openai = json!({"id": "key_2", "owner": {"type": "user", "user": {"email": "a@b.c"}}});
        let t = table(PROJECT_KEY, &[openai]);
        assert_eq!(t.rows[0][3], Cell::Text("a@b.c".into()));
        assert_eq!(t.rows[0][7], Cell::Text(String::new()));
    }

    #[test]
    fn audit_row_finds_actor_and_resource() {
        let event = json!({
            "id": "audit_1", "type": "project.created", "effective_at": 5,
            "actor": {"type": "api_key", "api_key": {"id": "key_x", "user": {"email": "o@x"}}},
            "project.created": {"id": "proj_1"}
        });
        let t = table(AUDIT_LOG, &[event]);
        assert_eq!(t.rows[0][3], Cell::Text("o@x".into()));
        assert_eq!(t.rows[0][5], Cell::Text("proj_1".into()));
    }
}
