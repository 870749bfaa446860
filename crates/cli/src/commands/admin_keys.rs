//! `keyplane admin-keys`: the organization's admin keys.

use super::{expires_in, split_list, Ctx};
use crate::connection::Call;
use crate::error::CliError;
use crate::new_key::{self, RevealArgs};
use crate::paging::PageArgs;
use crate::views;
use clap::{Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Subcommand, Debug)]
pub enum AdminKeysCommand {
    /// List admin keys (redacted): owner, scopes, last use, expiry.
    #[command(after_help = "Example:\n  keyplane admin-keys list --order desc")]
    List {
        /// Oldest first (asc) or newest first (desc).
        #[arg(long, value_enum)]
        order: Option<Order>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create an admin key; its value is shown once.
    #[command(
        after_help = "Examples:\n  keyplane admin-keys create --name terraform --expires-in 30d --save-to terraform.key\n  keyplane admin-keys create --name dashboards --scope api.management.read --quiet"
    )]
    Create {
        /// The key's name.
        #[arg(long)]
        name: String,
        /// Expire the key after this long (3600, 12h, 30d, 2w); never when absent.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Restrict the key (Keyplane extension): `api.management.read` makes it read-only.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[command(flatten)]
        reveal: RevealArgs,
    },
    /// Show one admin key (redacted).
    #[command(after_help = "Example:\n  keyplane admin-keys get key_abc123")]
    Get {
        /// The key id (key_…).
        key_id: String,
    },
    /// Delete an admin key: it stops working at once.
    #[command(after_help = "Example:\n  keyplane admin-keys delete key_abc123")]
    Delete {
        /// The key id (key_…).
        key_id: String,
    },
}

pub async fn run(ctx: &Ctx, command: AdminKeysCommand) -> Result<(), CliError> {
    let cols = views::ADMIN_KEY;
    match command {
        AdminKeysCommand::List { order, page } => {
            let order = order.map(|o| match o {
                Order::Asc => "asc",
                Order::Desc => "desc",
            });
            let call = Call::get(&["organization", "admin_api_keys"]).query_opt("order", order);
            ctx.list(call, &page, cols).await
        }
        AdminKeysCommand::Create {
            name,
            expires_in: expiry,
            scopes,
            reveal,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            if let Some(raw) = expiry {
                body.insert("expires_in_seconds".into(), json!(expires_in(&raw)?));
            }
            let scopes = split_list(&scopes);
            let restricted = !scopes.is_empty();
            if restricted {
                body.insert("scopes".into(), json!(scopes));
            }
            let mut call = Call::post(&["organization", "admin_api_keys"], Value::Object(body));
            if restricted {
                call = call.extension("scopes on admin keys");
            }
            new_key::create(ctx, &call, &reveal, cols, "/value").await
        }
        AdminKeysCommand::Get { key_id } => {
            ctx.one(
                Call::get(&["organization", "admin_api_keys", &key_id]),
                cols,
            )
            .await
        }
        AdminKeysCommand::Delete { key_id } => {
            let call = Call::delete(&["organization", "admin_api_keys", &key_id]);
            ctx.delete(call, "admin key", &key_id).await
        }
    }
}
