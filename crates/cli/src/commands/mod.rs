//! The Admin API client commands, one module per resource.

pub mod admin_keys;
pub mod api_keys;
pub mod audit_logs;
pub mod invites;
pub mod key_hygiene;
pub mod project_users;
pub mod projects;
pub mod rate_limits;
pub mod service_accounts;
pub mod usage;
pub mod users;

use crate::connection::{Call, ClientArgs, Connection};
use crate::error::CliError;
use crate::output::{self, Format};
use crate::paging::{self, Cursor, PageArgs};
use crate::views::Col;
use std::cell::OnceCell;

/// What every command runs with: the connection (opened on first use, so that a bad argument
/// is reported before a missing key) and the output format.
pub struct Ctx {
    client: ClientArgs,
    conn: OnceCell<Connection>,
    pub format: Format,
}

impl Ctx {
    pub fn new(client: ClientArgs) -> Self {
        Self {
            format: client.output,
            client,
            conn: OnceCell::new(),
        }
    }

    pub fn conn(&self) -> Result<&Connection, CliError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn);
        }
        let conn = Connection::new(&self.client)?;
        Ok(self.conn.get_or_init(|| conn))
    }

    /// Lists with paging (`--limit`, `--after`, `--all`) and prints the items.
    pub async fn list(&self, call: Call, page: &PageArgs, cols: &[Col]) -> Result<(), CliError> {
        let items = paging::fetch(self.conn()?, page.apply(call), page.all, Cursor::After).await?;
        output::list(self.format, &items, cols)
    }

    /// Sends a call answering with one object and prints it.
    pub async fn one(&self, call: Call, cols: &[Col]) -> Result<(), CliError> {
        let item = self.conn()?.send(&call).await?;
        output::object(self.format, &item, cols)
    }

    /// Sends a delete and confirms it.
    pub async fn delete(&self, call: Call, what: &str, id: &str) -> Result<(), CliError> {
        let item = self.conn()?.send(&call).await?;
        output::deleted(self.format, &item, what, id)
    }
}

/// Splits repeated, comma-separated flag values (`--scope a,b --scope c`) into one list.
pub fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `--expires-in` duration as the API's `expires_in_seconds`.
pub fn expires_in(raw: &str) -> Result<i64, CliError> {
    let secs = crate::time::parse_duration(raw)
        .map_err(|e| CliError::usage(format!("--expires-in: {e}")))?;
    if secs <= 0 {
        return Err(CliError::usage("--expires-in must be at least 1 second"));
    }
    Ok(secs)
}

/// Fails with a usage error when an update would change nothing.
pub fn require_change(body: &serde_json::Value, flags: &str) -> Result<(), CliError> {
    match body.as_object() {
        Some(fields) if !fields.is_empty() => Ok(()),
        _ => Err(CliError::usage(format!(
            "nothing to change: give at least one of {flags}"
        ))),
    }
}
