//! `keyplane audit-logs list`: who changed what, with every filter OpenAI's API takes.

use super::{split_list, Ctx};
use crate::connection::Call;
use crate::error::CliError;
use crate::paging::PageArgs;
use crate::views;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct AuditLogFilters {
    /// Only events after this time (unix seconds, RFC 3339, or relative like 7d).
    #[arg(long, value_name = "TIME")]
    effective_at_gt: Option<String>,
    /// Only events at or after this time.
    #[arg(long, value_name = "TIME")]
    effective_at_gte: Option<String>,
    /// Only events before this time.
    #[arg(long, value_name = "TIME")]
    effective_at_lt: Option<String>,
    /// Only events at or before this time.
    #[arg(long, value_name = "TIME")]
    effective_at_lte: Option<String>,
    /// Only events in these projects (repeat or comma-separate).
    #[arg(long = "project-id", value_name = "PROJECT_ID")]
    project_ids: Vec<String>,
    /// Only these event types, e.g. api_key.created (repeat or comma-separate).
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,
    /// Only events by these actors: user, service account or API key ids.
    #[arg(long = "actor-id", value_name = "ID")]
    actor_ids: Vec<String>,
    /// Only events by these people.
    #[arg(long = "actor-email", value_name = "EMAIL")]
    actor_emails: Vec<String>,
    /// Only events about these objects (project, key, user… ids).
    #[arg(long = "resource-id", value_name = "ID")]
    resource_ids: Vec<String>,
    /// Only tenant-scoped events.
    #[arg(long)]
    tenant_only: bool,
    /// Items before this id.
    #[arg(long, value_name = "ID")]
    before: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditLogsCommand {
    /// List audit log events, newest first.
    #[command(
        after_help = "Examples:\n  keyplane audit-logs list --effective-at-gte 7d --event-type api_key.created --event-type api_key.deleted\n  keyplane audit-logs list --project-id proj_abc123 --actor-email ops@example.com --all --output json"
    )]
    List {
        #[command(flatten)]
        filters: AuditLogFilters,
        #[command(flatten)]
        page: PageArgs,
    },
}

impl AuditLogFilters {
    /// The query as the SDKs send it: `effective_at[gte]=…`, `project_ids[]=…`.
    pub fn apply(&self, mut call: Call, now: i64) -> Result<Call, CliError> {
        for (op, raw) in [
            ("gt", &self.effective_at_gt),
            ("gte", &self.effective_at_gte),
            ("lt", &self.effective_at_lt),
            ("lte", &self.effective_at_lte),
        ] {
            if let Some(raw) = raw {
                let at = crate::time::parse_instant(raw, now)
                    .map_err(|e| CliError::usage(format!("--effective-at-{op}: {e}")))?;
                call = call.query(&format!("effective_at[{op}]"), at);
            }
        }
        Ok(call
            .query_list("project_ids", &split_list(&self.project_ids))
            .query_list("event_types", &split_list(&self.event_types))
            .query_list("actor_ids", &split_list(&self.actor_ids))
            .query_list("actor_emails", &split_list(&self.actor_emails))
            .query_list("resource_ids", &split_list(&self.resource_ids))
            .query_opt("tenant_only", self.tenant_only.then_some(true))
            .query_opt("before", self.before.as_deref()))
    }
}

pub async fn run(ctx: &Ctx, command: AuditLogsCommand) -> Result<(), CliError> {
    match command {
        AuditLogsCommand::List { filters, page } => {
            let call = filters.apply(
                Call::get(&["organization", "audit_logs"]),
                crate::time::now(),
            )?;
            ctx.list(call, &page, views::AUDIT_LOG).await
        }
    }
}
