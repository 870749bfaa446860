//! `keyplane users`: the organization's users (they arrive through invites).

use super::{require_change, split_list, Ctx};
use crate::connection::Call;
use crate::error::CliError;
use crate::paging::PageArgs;
use crate::views;
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, ValueEnum)]
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
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// List the organization's users.
    #[command(
        after_help = "Examples:\n  keyplane users list\n  keyplane users list --email ana@example.com --email bo@example.com"
    )]
    List {
        /// Only these emails (repeat or comma-separate).
        #[arg(long = "email", value_name = "EMAIL")]
        emails: Vec<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one user.
    #[command(after_help = "Example:\n  keyplane users get user-abc123")]
    Get {
        /// The user id.
        user_id: String,
    },
    /// Change a user's organization role (or other attributes).
    #[command(after_help = "Example:\n  keyplane users update user-abc123 --role reader")]
    Update {
        /// The user id.
        user_id: String,
        /// The organization role.
        #[arg(long, value_enum)]
        role: Option<OrgRole>,
        /// A custom role id.
        #[arg(long, value_name = "ROLE_ID")]
        role_id: Option<String>,
        #[arg(long, value_name = "LEVEL")]
        technical_level: Option<String>,
        #[arg(long, value_name = "PERSONA")]
        developer_persona: Option<String>,
    },
    /// Remove a user from the organization.
    #[command(after_help = "Example:\n  keyplane users delete user-abc123")]
    Delete {
        /// The user id.
        user_id: String,
    },
}

pub async fn run(ctx: &Ctx, command: UsersCommand) -> Result<(), CliError> {
    let cols = views::USER;
    match command {
        UsersCommand::List { emails, page } => {
            let call =
                Call::get(&["organization", "users"]).query_list("emails", &split_list(&emails));
            ctx.list(call, &page, cols).await
        }
        UsersCommand::Get { user_id } => {
            ctx.one(Call::get(&["organization", "users", &user_id]), cols)
                .await
        }
        UsersCommand::Update {
            user_id,
            role,
            role_id,
            technical_level,
            developer_persona,
        } => {
            let mut body = Map::new();
            if let Some(role) = role {
                body.insert("role".into(), json!(role.as_str()));
            }
            for (name, value) in [
                ("role_id", role_id),
                ("technical_level", technical_level),
                ("developer_persona", developer_persona),
            ] {
                if let Some(v) = value {
                    body.insert(name.into(), json!(v));
                }
            }
            let body = Value::Object(body);
            require_change(
                &body,
                "--role, --role-id, --technical-level, --developer-persona",
            )?;
            ctx.one(Call::post(&["organization", "users", &user_id], body), cols)
                .await
        }
        UsersCommand::Delete { user_id } => {
            let call = Call::delete(&["organization", "users", &user_id]);
            ctx.delete(call, "user", &user_id).await
        }
    }
}
