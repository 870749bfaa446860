//! `keyplane project-users`: who is a member of a project, and with which role.

use super::Ctx;
use crate::connection::Call;
use crate::error::CliError;
use crate::paging::PageArgs;
use crate::views;
use clap::{ArgGroup, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProjectRole {
    Member,
    Owner,
}

impl ProjectRole {
    fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Member => "member",
            ProjectRole::Owner => "owner",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ProjectUsersCommand {
    /// List a project's members.
    #[command(after_help = "Example:\n  keyplane project-users list --project proj_abc123")]
    List {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Add an organization member to a project.
    #[command(
        group(ArgGroup::new("who").required(true).args(["user_id", "email"])),
        after_help = "Examples:\n  keyplane project-users add --project proj_abc123 --user-id user-abc123 --role member\n  keyplane project-users add --project proj_abc123 --email ana@example.com --role owner"
    )]
    Add {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The user's id.
        #[arg(long)]
        user_id: Option<String>,
        /// The user's email.
        #[arg(long)]
        email: Option<String>,
        /// The project role.
        #[arg(long, value_enum)]
        role: ProjectRole,
    },
    /// Show one project member.
    #[command(
        after_help = "Example:\n  keyplane project-users get --project proj_abc123 user-abc123"
    )]
    Get {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The user id.
        user_id: String,
    },
    /// Change a member's project role.
    #[command(
        after_help = "Example:\n  keyplane project-users update --project proj_abc123 user-abc123 --role owner"
    )]
    Update {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The user id.
        user_id: String,
        /// The new project role.
        #[arg(long, value_enum)]
        role: ProjectRole,
    },
    /// Remove a member from a project (their keys in it stop working).
    #[command(
        after_help = "Example:\n  keyplane project-users remove --project proj_abc123 user-abc123"
    )]
    Remove {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The user id.
        user_id: String,
    },
}

pub async fn run(ctx: &Ctx, command: ProjectUsersCommand) -> Result<(), CliError> {
    let cols = views::USER;
    match command {
        ProjectUsersCommand::List { project, page } => {
            let call = Call::get(&["organization", "projects", &project, "users"]);
            ctx.list(call, &page, cols).await
        }
        ProjectUsersCommand::Add {
            project,
            user_id,
            email,
            role,
        } => {
            let mut body = Map::new();
            body.insert("role".into(), json!(role.as_str()));
            if let Some(id) = user_id {
                body.insert("user_id".into(), json!(id));
            }
            if let Some(email) = email {
                body.insert("email".into(), json!(email));
            }
            let call = Call::post(
                &["organization", "projects", &project, "users"],
                Value::Object(body),
            );
            ctx.one(call, cols).await
        }
        ProjectUsersCommand::Get { project, user_id } => {
            let call = Call::get(&["organization", "projects", &project, "users", &user_id]);
            ctx.one(call, cols).await
        }
        ProjectUsersCommand::Update {
            project,
            user_id,
            role,
        } => {
            let call = Call::post(
                &["organization", "projects", &project, "users", &user_id],
                json!({ "role": role.as_str() }),
            );
            ctx.one(call, cols).await
        }
        ProjectUsersCommand::Remove { project, user_id } => {
            let call = Call::delete(&["organization", "projects", &project, "users", &user_id]);
            ctx.delete(call, "project member", &user_id).await
        }
    }
}
