//! `keyplane api-keys`: a project's API keys. `create` and `update` are Keyplane extensions;
//! `audit` is a key-hygiene report built on `list`.

use super::key_hygiene::{self, AuditArgs};
use super::{expires_in, require_change, split_list, Ctx};
use crate::connection::Call;
use crate::error::CliError;
use crate::new_key::{self, RevealArgs};
use crate::paging::PageArgs;
use crate::views;
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OwnerAccess {
    Active,
    Inactive,
    Any,
}

impl OwnerAccess {
    fn as_str(self) -> &'static str {
        match self {
            OwnerAccess::Active => "active",
            OwnerAccess::Inactive => "inactive",
            OwnerAccess::Any => "any",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ApiKeysCommand {
    /// List a project's API keys (redacted): owner, scopes, last use, expiry.
    #[command(
        after_help = "Examples:\n  keyplane api-keys list --project proj_abc123\n  keyplane api-keys list --project proj_abc123 --all --output json"
    )]
    List {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// Keys whose owner still has access (active), lost it (inactive), or both (any).
        #[arg(long, value_enum)]
        owner_project_access: Option<OwnerAccess>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one API key (redacted).
    #[command(after_help = "Example:\n  keyplane api-keys get --project proj_abc123 key_abc123")]
    Get {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The key id (key_…).
        key_id: String,
    },
    /// Create an API key owned by you (Keyplane extension). Its value is shown once.
    #[command(
        after_help = "Examples:\n  keyplane api-keys create --project proj_abc123 --name ci --expires-in 90d\n  KEY=$(keyplane api-keys create --project proj_abc123 --name ci --scope model.request --quiet)\n  keyplane api-keys create --project proj_abc123 --name ci --save-to ci.key"
    )]
    Create {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The key's name.
        #[arg(long)]
        name: String,
        /// Restrict the key to these scopes (repeat or comma-separate); all when absent.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Expire the key after this long (3600, 12h, 30d, 2w); never when absent.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        #[command(flatten)]
        reveal: RevealArgs,
    },
    /// Rename, rescope or change the expiry of an API key (Keyplane extension).
    #[command(
        after_help = "Examples:\n  keyplane api-keys update --project proj_abc123 key_abc123 --name deploy\n  keyplane api-keys update --project proj_abc123 key_abc123 --scope model.request --expires-in 30d\n  keyplane api-keys update --project proj_abc123 key_abc123 --all-scopes --no-expiry"
    )]
    Update {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The key id (key_…).
        key_id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// Replace the key's scopes (repeat or comma-separate).
        #[arg(long = "scope", value_name = "SCOPE", conflicts_with = "all_scopes")]
        scopes: Vec<String>,
        /// Give the key every permission again.
        #[arg(long)]
        all_scopes: bool,
        /// Expire the key this long from now.
        #[arg(long, value_name = "DURATION", conflicts_with = "no_expiry")]
        expires_in: Option<String>,
        /// Remove the key's expiry.
        #[arg(long)]
        no_expiry: bool,
    },
    /// Delete an API key: it stops working at once.
    #[command(
        after_help = "Example:\n  keyplane api-keys delete --project proj_abc123 key_abc123"
    )]
    Delete {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The key id (key_…).
        key_id: String,
    },
    /// Key hygiene: keys never used, unused for N days, older than N days (due for rotation)
    /// and expiring soon, for one project or all of them.
    #[command(
        after_help = "Examples:\n  keyplane api-keys audit\n  keyplane api-keys audit --project proj_abc123 --unused-days 30 --older-than-days 180 --expiring-days 14\n  keyplane api-keys audit --output json"
    )]
    Audit(AuditArgs),
}

pub async fn run(ctx: &Ctx, command: ApiKeysCommand) -> Result<(), CliError> {
    let cols = views::PROJECT_KEY;
    match command {
        ApiKeysCommand::List {
            project,
            owner_project_access,
            page,
        } => {
            let call = Call::get(&["organization", "projects", &project, "api_keys"]).query_opt(
                "owner_project_access",
                owner_project_access.map(OwnerAccess::as_str),
            );
            ctx.list(call, &page, cols).await
        }
        ApiKeysCommand::Get { project, key_id } => {
            let call = Call::get(&["organization", "projects", &project, "api_keys", &key_id]);
            ctx.one(call, cols).await
        }
        ApiKeysCommand::Create {
            project,
            name,
            scopes,
            expires_in: expiry,
            reveal,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            let scopes = split_list(&scopes);
            if !scopes.is_empty() {
                body.insert("scopes".into(), json!(scopes));
            }
            if let Some(raw) = expiry {
                body.insert("expires_in_seconds".into(), json!(expires_in(&raw)?));
            }
            let call = Call::post(
                &["organization", "projects", &project, "api_keys"],
                Value::Object(body),
            )
            .extension("creating project API keys");
            new_key::create(ctx, &call, &reveal, cols, "/value").await
        }
        ApiKeysCommand::Update {
            project,
            key_id,
            name,
            scopes,
            all_scopes,
            expires_in: expiry,
            no_expiry,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            let scopes = split_list(&scopes);
            if all_scopes {
                body.insert("scopes".into(), Value::Null);
            } else if !scopes.is_empty() {
                body.insert("scopes".into(), json!(scopes));
            }
            if no_expiry {
                body.insert("expires_in_seconds".into(), Value::Null);
            } else if let Some(raw) = expiry {
                body.insert("expires_in_seconds".into(), json!(expires_in(&raw)?));
            }
            let body = Value::Object(body);
            require_change(
                &body,
                "--name, --scope, --all-scopes, --expires-in, --no-expiry",
            )?;
            let call = Call::post(
                &["organization", "projects", &project, "api_keys", &key_id],
                body,
            )
            .extension("updating project API keys");
            ctx.one(call, cols).await
        }
        ApiKeysCommand::Delete { project, key_id } => {
            let call = Call::delete(&["organization", "projects", &project, "api_keys", &key_id]);
            ctx.delete(call, "API key", &key_id).await
        }
        ApiKeysCommand::Audit(args) => key_hygiene::run(ctx, &args).await,
    }
}
