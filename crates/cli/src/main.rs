//! `keyplane`: runs the server (`serve`), initializes a database (`init`), and is a client of
//! the Admin API for every other command (Keyplane's or OpenAI's: it never touches a database).

mod commands;
mod connection;
mod credentials;
mod error;
mod new_key;
mod output;
mod paging;
mod retry;
mod table;
mod time;
mod views;

use clap::{CommandFactory, Parser, Subcommand};
use commands::admin_keys::AdminKeysCommand;
use commands::api_keys::ApiKeysCommand;
use commands::audit_logs::AuditLogsCommand;
use commands::invites::InvitesCommand;
use commands::project_users::ProjectUsersCommand;
use commands::projects::ProjectsCommand;
use commands::rate_limits::RateLimitsCommand;
use commands::service_accounts::ServiceAccountsCommand;
use commands::usage::{CostsArgs, UsageCommand};
use commands::users::UsersCommand;
use commands::Ctx;
use connection::ClientArgs;
use error::CliError;
use keyplane_server::config::{Config, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;

// The gateway allocates per request (bodies, headers); mimalloc spends far less time in
// malloc/free than glibc under that load (measured in docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keyplane",
    version,
    about = "Self-hosted API keys for OpenAI-style APIs",
    after_help = error::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (Admin API at /v1/organization). On an empty database it initializes
    /// itself and prints the first admin key once on stderr.
    ///
    /// Example: keyplane serve --listen 0.0.0.0:8080 --database-url postgres://kp@db/keyplane
    Serve {
        /// Address to listen on.
        #[arg(long, env = "KEYPLANE_LISTEN")]
        listen: Option<String>,
        /// sqlite://PATH (default sqlite://keyplane.db) or postgres://…
        #[arg(long, env = "KEYPLANE_DATABASE_URL")]
        database_url: Option<String>,
        /// keyplane.toml with further settings (unknown keys are errors).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create the schema, the organization, its owner and an admin key; print the key alone on
    /// stdout. Fails, changing nothing, on an initialized database.
    ///
    /// Example: KEY=$(keyplane init --owner-email ops@example.com)
    Init {
        #[arg(long, env = "KEYPLANE_DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long)]
        org_name: Option<String>,
        #[arg(long, env = "KEYPLANE_OWNER_EMAIL")]
        owner_email: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Projects: list, create, get, rename, archive.
    #[command(after_help = "Example:\n  keyplane projects list --all")]
    Projects {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// A project's API keys: list, get, create, update, delete, and a hygiene audit.
    #[command(after_help = "Example:\n  keyplane api-keys list --project proj_abc123")]
    ApiKeys {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ApiKeysCommand,
    },
    /// A project's service accounts: list, create, get, update, delete, create-key.
    #[command(after_help = "Example:\n  keyplane service-accounts list --project proj_abc123")]
    ServiceAccounts {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ServiceAccountsCommand,
    },
    /// The organization's admin keys: list, create, get, delete.
    #[command(after_help = "Example:\n  keyplane admin-keys list")]
    AdminKeys {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: AdminKeysCommand,
    },
    /// The organization's users: list, get, update, delete.
    #[command(after_help = "Example:\n  keyplane users list")]
    Users {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// A project's members: list, add, get, update, remove.
    #[command(after_help = "Example:\n  keyplane project-users list --project proj_abc123")]
    ProjectUsers {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ProjectUsersCommand,
    },
    /// Invitations to the organization: list, create, get, delete.
    #[command(after_help = "Example:\n  keyplane invites list")]
    Invites {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: InvitesCommand,
    },
    /// A project's per-model rate limits: list, set.
    #[command(after_help = "Example:\n  keyplane rate-limits list --project proj_abc123")]
    RateLimits {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: RateLimitsCommand,
    },
    /// Usage over a time range, in buckets: completions, embeddings, moderations, images, audio.
    #[command(
        after_help = "Example:\n  keyplane usage completions --start 7d --bucket 1d --group-by project_id"
    )]
    Usage {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// Spend over a time range, in daily buckets.
    #[command(
        after_help = "Examples:\n  keyplane costs --start 30d --group-by project_id,line_item\n  keyplane costs --start 2024-05-01 --end 2024-06-01 --project-id proj_abc123 --all --output csv"
    )]
    Costs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: CostsArgs,
    },
    /// The organization's audit log.
    #[command(after_help = "Example:\n  keyplane audit-logs list --effective-at-gte 24h")]
    AuditLogs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: AuditLogsCommand,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  keyplane completions bash > /etc/bash_completion.d/keyplane\n  keyplane completions zsh > \"${fpath[1]}/_keyplane\"\n  keyplane completions fish > ~/.config/fish/completions/keyplane.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    keyplane_server::startup::disable_transparent_huge_pages();
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        output::completions(shell, &mut Cli::command());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyplane: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !matches!(cli.command, Command::Serve { .. } | Command::Init { .. }) {
        return match runtime.block_on(client(cli.command)) {
            Ok(()) => ExitCode::from(error::EXIT_OK),
            Err(e) => {
                eprintln!("keyplane: {e}");
                ExitCode::from(e.exit_code())
            }
        };
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The Admin API client commands.
async fn client(command: Command) -> Result<(), CliError> {
    match command {
        Command::Projects { client, command } => {
            commands::projects::run(&Ctx::new(client), command).await
        }
        Command::ApiKeys { client, command } => {
            commands::api_keys::run(&Ctx::new(client), command).await
        }
        Command::ServiceAccounts { client, command } => {
            commands::service_accounts::run(&Ctx::new(client), command).await
        }
        Command::AdminKeys { client, command } => {
            commands::admin_keys::run(&Ctx::new(client), command).await
        }
        Command::Users { client, command } => {
            commands::users::run(&Ctx::new(client), command).await
        }
        Command::ProjectUsers { client, command } => {
            commands::project_users::run(&Ctx::new(client), command).await
        }
        Command::Invites { client, command } => {
            commands::invites::run(&Ctx::new(client), command).await
        }
        Command::RateLimits { client, command } => {
            commands::rate_limits::run(&Ctx::new(client), command).await
        }
        Command::Usage { client, command } => {
            commands::usage::run(&Ctx::new(client), command).await
        }
        Command::Costs { client, args } => commands::usage::costs(&Ctx::new(client), args).await,
        Command::AuditLogs { client, command } => {
            commands::audit_logs::run(&Ctx::new(client), command).await
        }
        Command::Serve { .. } | Command::Init { .. } | Command::Completions { .. } => Ok(()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            database_url,
            config,
        } => {
            let config = Config::load(&Overrides {
                config_file: config,
                listen,
                database_url,
                ..Overrides::default()
            })?;
            keyplane_server::telemetry::init(config.log_format);
            keyplane_server::startup::serve(config).await
        }
        Command::Init {
            database_url,
            org_name,
            owner_email,
            config,
        } => {
            let config = Config::load(&Overrides {
                config_file: config,
                database_url,
                org_name,
                owner_email,
                ..Overrides::default()
            })?;
            let store = keyplane_server::startup::open_store(&config).await?;
            let hasher = keyplane_server::startup::hasher(&config);
            let key = keyplane_server::startup::initialize(&store, &config, &hasher).await?;
            output::key(key.expose());
            Ok(())
        }
        // Client commands and completions never reach here (see `main`).
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and subcommand shows an example in its help.
    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let long = sub
                    .get_long_about()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if !help.contains("keyplane ") && !long.contains("Example:") {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "keyplane", &mut missing);
        assert!(
            missing.is_empty(),
            "commands without an example: {missing:?}"
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
