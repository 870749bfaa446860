//! `keyplane projects`: list, create, get, rename, archive.

use super::Ctx;
use crate::connection::Call;
use crate::error::CliError;
use crate::paging::PageArgs;
use crate::views;
use clap::Subcommand;
use serde_json::{json, Map, Value};

#[derive(Subcommand, Debug)]
pub enum ProjectsCommand {
    /// List projects (active ones unless --include-archived).
    #[command(
        after_help = "Examples:\n  keyplane projects list\n  keyplane projects list --all --include-archived --output csv"
    )]
    List {
        /// Include archived projects.
        #[arg(long)]
        include_archived: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a project.
    #[command(after_help = "Example:\n  keyplane projects create --name \"web app\"")]
    Create {
        /// The project's name.
        #[arg(long)]
        name: String,
        /// OpenAI's data residency region (GLOBAL, EU_STORAGE_PROCESSING, …).
        #[arg(long, value_name = "REGION")]
        residency: Option<String>,
        /// An external (customer-managed) encryption key id.
        #[arg(long, value_name = "ID")]
        external_key_id: Option<String>,
        /// Geography, as newer OpenAI SDKs send it.
        #[arg(long)]
        geography: Option<String>,
    },
    /// Show one project.
    #[command(after_help = "Example:\n  keyplane projects get proj_abc123")]
    Get {
        /// The project id (proj_…).
        project_id: String,
    },
    /// Rename a project.
    #[command(
        after_help = "Example:\n  keyplane projects rename proj_abc123 --name \"web app (prod)\""
    )]
    Rename {
        /// The project id (proj_…).
        project_id: String,
        /// The new name.
        #[arg(long)]
        name: String,
    },
    /// Archive a project: its keys stop working at once; it cannot be undone.
    #[command(after_help = "Example:\n  keyplane projects archive proj_abc123")]
    Archive {
        /// The project id (proj_…).
        project_id: String,
    },
}

fn insert_opt(body: &mut Map<String, Value>, name: &str, value: Option<String>) {
    if let Some(v) = value {
        body.insert(name.to_owned(), Value::String(v));
    }
}

pub async fn run(ctx: &Ctx, command: ProjectsCommand) -> Result<(), CliError> {
    let cols = views::PROJECT;
    match command {
        ProjectsCommand::List {
            include_archived,
            page,
        } => {
            let call = Call::get(&["organization", "projects"])
                .query_opt("include_archived", include_archived.then_some(true));
            ctx.list(call, &page, cols).await
        }
        ProjectsCommand::Create {
            name,
            residency,
            external_key_id,
            geography,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            insert_opt(&mut body, "residency", residency);
            insert_opt(&mut body, "external_key_id", external_key_id);
            insert_opt(&mut body, "geography", geography);
            ctx.one(
                Call::post(&["organization", "projects"], Value::Object(body)),
                cols,
            )
            .await
        }
        ProjectsCommand::Get { project_id } => {
            ctx.one(Call::get(&["organization", "projects", &project_id]), cols)
                .await
        }
        ProjectsCommand::Rename { project_id, name } => {
            let call = Call::post(
                &["organization", "projects", &project_id],
                json!({ "name": name }),
            );
            ctx.one(call, cols).await
        }
        ProjectsCommand::Archive { project_id } => {
            let call = Call::post_empty(&["organization", "projects", &project_id, "archive"]);
            ctx.one(call, cols).await
        }
    }
}
