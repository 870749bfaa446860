//! `keyplane`: runs the server (`serve`), initializes a database (`init`).

use clap::{Parser, Subcommand};
use keyplane_server::config::{Config, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "keyplane",
    version,
    about = "Self-hosted API keys for OpenAI-style APIs"
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyplane: {e:#}");
            ExitCode::FAILURE
        }
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
    }
}

/// The CLI's only writer to stdout.
mod output {
    #[allow(clippy::print_stdout)]
    pub fn key(value: &str) {
        println!("{value}");
    }
}
