//! `keyplane service-accounts`: a project's service accounts and their keys.

use super::{expires_in, require_change, split_list, Ctx};
use crate::connection::Call;
use crate::error::CliError;
use crate::new_key::{self, RevealArgs};
use crate::paging::PageArgs;
use crate::views;
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ServiceAccountRole {
    Member,
    Owner,
}

#[derive(Subcommand, Debug)]
pub enum ServiceAccountsCommand {
    /// List a project's service accounts.
    #[command(after_help = "Example:\n  keyplane service-accounts list --project proj_abc123")]
    List {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a service account and (unless --service-account-only) its first key, shown once.
    #[command(
        after_help = "Examples:\n  keyplane service-accounts create --project proj_abc123 --name deploy-bot\n  KEY=$(keyplane service-accounts create --project proj_abc123 --name ci-bot --quiet)"
    )]
    Create {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The service account's name.
        #[arg(long)]
        name: String,
        /// Create the account without a role or key.
        #[arg(long, conflicts_with_all = ["quiet", "save_to", "expires_in"])]
        service_account_only: bool,
        /// Expire the first key after this long (3600, 12h, 30d, 2w).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[command(flatten)]
        reveal: RevealArgs,
    },
    /// Show one service account.
    #[command(
        after_help = "Example:\n  keyplane service-accounts get --project proj_abc123 svc_acct_abc123"
    )]
    Get {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The service account id.
        service_account_id: String,
    },
    /// Rename a service account or change its role.
    #[command(
        after_help = "Example:\n  keyplane service-accounts update --project proj_abc123 svc_acct_abc123 --role owner"
    )]
    Update {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The service account id.
        service_account_id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new project role.
        #[arg(long, value_enum)]
        role: Option<ServiceAccountRole>,
    },
    /// Delete a service account and its keys.
    #[command(
        after_help = "Example:\n  keyplane service-accounts delete --project proj_abc123 svc_acct_abc123"
    )]
    Delete {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The service account id.
        service_account_id: String,
    },
    /// Create another key for a service account (for rotation); its value is shown once.
    #[command(
        after_help = "Example:\n  keyplane service-accounts create-key --project proj_abc123 svc_acct_abc123 --name rotated --expires-in 90d --save-to bot.key"
    )]
    CreateKey {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The service account id.
        service_account_id: String,
        /// The key's name.
        #[arg(long)]
        name: Option<String>,
        /// Restrict the key to these scopes (repeat or comma-separate).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Expire the key after this long (3600, 12h, 30d, 2w).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[command(flatten)]
        reveal: RevealArgs,
    },
}

pub async fn run(ctx: &Ctx, command: ServiceAccountsCommand) -> Result<(), CliError> {
    let cols = views::SERVICE_ACCOUNT;
    match command {
        ServiceAccountsCommand::List { project, page } => {
            let call = Call::get(&["organization", "projects", &project, "service_accounts"]);
            ctx.list(call, &page, cols).await
        }
        ServiceAccountsCommand::Create {
            project,
            name,
            service_account_only,
            expires_in: expiry,
            reveal,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            if service_account_only {
                body.insert("create_service_account_only".into(), json!(true));
            }
            if let Some(raw) = expiry {
                body.insert("expires_in_seconds".into(), json!(expires_in(&raw)?));
            }
            let call = Call::post(
                &["organization", "projects", &project, "service_accounts"],
                Value::Object(body),
            );
            new_key::create(
                ctx,
                &call,
                &reveal,
                views::SERVICE_ACCOUNT_CREATED,
                "/api_key/value",
            )
            .await
        }
        ServiceAccountsCommand::Get {
            project,
            service_account_id,
        } => {
            let call = Call::get(&[
                "organization",
                "projects",
                &project,
                "service_accounts",
                &service_account_id,
            ]);
            ctx.one(call, cols).await
        }
        ServiceAccountsCommand::Update {
            project,
            service_account_id,
            name,
            role,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            if let Some(role) = role {
                let role = match role {
                    ServiceAccountRole::Member => "member",
                    ServiceAccountRole::Owner => "owner",
                };
                body.insert("role".into(), json!(role));
            }
            let body = Value::Object(body);
            require_change(&body, "--name, --role")?;
            let call = Call::post(
                &[
                    "organization",
                    "projects",
                    &project,
                    "service_accounts",
                    &service_account_id,
                ],
                body,
            );
            ctx.one(call, cols).await
        }
        ServiceAccountsCommand::Delete {
            project,
            service_account_id,
        } => {
            let call = Call::delete(&[
                "organization",
                "projects",
                &project,
                "service_accounts",
                &service_account_id,
            ]);
            ctx.delete(call, "service account", &service_account_id)
                .await
        }
        ServiceAccountsCommand::CreateKey {
            project,
            service_account_id,
            name,
            scopes,
            expires_in: expiry,
            reveal,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            let scopes = split_list(&scopes);
            if !scopes.is_empty() {
                body.insert("scopes".into(), json!(scopes));
            }
            if let Some(raw) = expiry {
                body.insert("expires_in_seconds".into(), json!(expires_in(&raw)?));
            }
            let call = Call::post(
                &[
                    "organization",
                    "projects",
                    &project,
                    "service_accounts",
                    &service_account_id,
                    "api_keys",
                ],
                Value::Object(body),
            );
            new_key::create(ctx, &call, &reveal, views::SERVICE_ACCOUNT_KEY, "/value").await
        }
    }
}
