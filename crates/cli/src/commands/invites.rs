//! `keyplane invites`: invitations to the organization.

use super::users::OrgRole;
use super::Ctx;
use crate::connection::Call;
use crate::error::CliError;
use crate::paging::PageArgs;
use crate::views;
use clap::Subcommand;
use serde_json::{json, Map, Value};

#[derive(Subcommand, Debug)]
pub enum InvitesCommand {
    /// List invites (pending, accepted, expired).
    #[command(after_help = "Example:\n  keyplane invites list --all")]
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Invite someone to the organization, optionally straight into projects.
    #[command(
        after_help = "Examples:\n  keyplane invites create --email ana@example.com --role reader\n  keyplane invites create --email bo@example.com --role reader --project proj_abc123:owner --project proj_def456"
    )]
    Create {
        /// The invitee's email.
        #[arg(long)]
        email: String,
        /// The organization role.
        #[arg(long, value_enum)]
        role: OrgRole,
        /// A project to join, as PROJECT_ID or PROJECT_ID:member|owner (repeatable).
        #[arg(long = "project", value_name = "PROJECT_ID[:ROLE]")]
        projects: Vec<String>,
        /// Join no project at all (without it and without --project, OpenAI adds the default project).
        #[arg(long, conflicts_with = "projects")]
        no_projects: bool,
    },
    /// Show one invite.
    #[command(after_help = "Example:\n  keyplane invites get invite-abc123")]
    Get {
        /// The invite id.
        invite_id: String,
    },
    /// Withdraw an invite that has not been accepted.
    #[command(after_help = "Example:\n  keyplane invites delete invite-abc123")]
    Delete {
        /// The invite id.
        invite_id: String,
    },
}

/// `proj_x` or `proj_x:owner` → `{"id": "proj_x", "role": "owner"}` (role `member` by default).
fn project_grant(raw: &str) -> Result<Value, CliError> {
    let (id, role) = raw.split_once(':').unwrap_or((raw, "member"));
    if id.trim().is_empty() || !matches!(role, "member" | "owner") {
        return Err(CliError::usage(format!(
            "--project '{raw}': expected PROJECT_ID or PROJECT_ID:member|owner"
        )));
    }
    Ok(json!({"id": id.trim(), "role": role}))
}

pub async fn run(ctx: &Ctx, command: InvitesCommand) -> Result<(), CliError> {
    let cols = views::INVITE;
    match command {
        InvitesCommand::List { page } => {
            ctx.list(Call::get(&["organization", "invites"]), &page, cols)
                .await
        }
        InvitesCommand::Create {
            email,
            role,
            projects,
            no_projects,
        } => {
            let mut body = Map::new();
            body.insert("email".into(), json!(email));
            body.insert("role".into(), json!(role.as_str()));
            if no_projects || !projects.is_empty() {
                let grants = projects
                    .iter()
                    .map(|p| project_grant(p))
                    .collect::<Result<Vec<_>, _>>()?;
                body.insert("projects".into(), Value::Array(grants));
            }
            let call = Call::post(&["organization", "invites"], Value::Object(body));
            let invite = ctx.conn()?.send(&call).await?;
            crate::output::object(ctx.format, &invite, cols)?;
            // The link holds the invite's only copy of its token: show it in a table too.
            if ctx.format == crate::output::Format::Table {
                if let Some(url) = invite.get("accept_url").and_then(Value::as_str) {
                    crate::output::line(&format!(
                        "\nAccept link (shown once, send it to the invitee): {url}"
                    ))?;
                }
            }
            Ok(())
        }
        InvitesCommand::Get { invite_id } => {
            ctx.one(Call::get(&["organization", "invites", &invite_id]), cols)
                .await
        }
        InvitesCommand::Delete { invite_id } => {
            let call = Call::delete(&["organization", "invites", &invite_id]);
            ctx.delete(call, "invite", &invite_id).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_grants() {
        assert_eq!(
            project_grant("proj_a").unwrap(),
            json!({"id": "proj_a", "role": "member"})
        );
        assert_eq!(
            project_grant("proj_a:owner").unwrap(),
            json!({"id": "proj_a", "role": "owner"})
        );
        assert!(project_grant("proj_a:admin").is_err());
        assert!(project_grant(":owner").is_err());
    }
}
