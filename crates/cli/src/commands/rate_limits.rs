//! `keyplane rate-limits`: a project's per-model rate limits.

use super::{require_change, Ctx};
use crate::connection::Call;
use crate::error::CliError;
use crate::paging::{self, Cursor, PageArgs};
use crate::views::{self, scalar};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Map, Value};

#[derive(Args, Debug)]
pub struct Limits {
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    max_requests_per_1_minute: Option<u64>,
    /// Tokens per minute.
    #[arg(long, value_name = "N")]
    max_tokens_per_1_minute: Option<u64>,
    /// Requests per day.
    #[arg(long, value_name = "N")]
    max_requests_per_1_day: Option<u64>,
    /// Images per minute.
    #[arg(long, value_name = "N")]
    max_images_per_1_minute: Option<u64>,
    /// Audio megabytes per minute.
    #[arg(long, value_name = "N")]
    max_audio_megabytes_per_1_minute: Option<u64>,
    /// Batch input tokens per day.
    #[arg(long, value_name = "N")]
    batch_1_day_max_input_tokens: Option<u64>,
}

impl Limits {
    fn body(&self) -> Value {
        let mut body = Map::new();
        for (name, value) in [
            ("max_requests_per_1_minute", self.max_requests_per_1_minute),
            ("max_tokens_per_1_minute", self.max_tokens_per_1_minute),
            ("max_requests_per_1_day", self.max_requests_per_1_day),
            ("max_images_per_1_minute", self.max_images_per_1_minute),
            (
                "max_audio_megabytes_per_1_minute",
                self.max_audio_megabytes_per_1_minute,
            ),
            (
                "batch_1_day_max_input_tokens",
                self.batch_1_day_max_input_tokens,
            ),
        ] {
            if let Some(v) = value {
                body.insert(name.into(), json!(v));
            }
        }
        Value::Object(body)
    }
}

#[derive(Subcommand, Debug)]
pub enum RateLimitsCommand {
    /// List a project's rate limits, one per model.
    #[command(after_help = "Example:\n  keyplane rate-limits list --project proj_abc123 --all")]
    List {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// Items before this id.
        #[arg(long, value_name = "ID")]
        before: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Change a project's rate limit for one model (by rate limit id or --model).
    #[command(
        group(ArgGroup::new("which").required(true).args(["rate_limit_id", "model"])),
        after_help = "Examples:\n  keyplane rate-limits set --project proj_abc123 rl-gpt-4o --max-requests-per-1-minute 500\n  keyplane rate-limits set --project proj_abc123 --model gpt-4o-mini --max-tokens-per-1-minute 200000"
    )]
    Set {
        /// The project id (proj_…).
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        /// The rate limit id (rl-…), as `rate-limits list` shows it.
        rate_limit_id: Option<String>,
        /// Find the rate limit by its model instead.
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        limits: Limits,
    },
}

pub async fn run(ctx: &Ctx, command: RateLimitsCommand) -> Result<(), CliError> {
    let cols = views::RATE_LIMIT;
    match command {
        RateLimitsCommand::List {
            project,
            before,
            page,
        } => {
            let call = Call::get(&["organization", "projects", &project, "rate_limits"])
                .query_opt("before", before);
            ctx.list(call, &page, cols).await
        }
        RateLimitsCommand::Set {
            project,
            rate_limit_id,
            model,
            limits,
        } => {
            let body = limits.body();
            require_change(&body, "the --max-… and --batch-… limits")?;
            let id = match (rate_limit_id, model) {
                (Some(id), _) => id,
                (None, Some(model)) => find_by_model(ctx, &project, &model).await?,
                (None, None) => return Err(CliError::usage("give a rate limit id or --model")),
            };
            let call = Call::post(
                &["organization", "projects", &project, "rate_limits", &id],
                body,
            );
            ctx.one(call, cols).await
        }
    }
}

async fn find_by_model(ctx: &Ctx, project: &str, model: &str) -> Result<String, CliError> {
    let call = Call::get(&["organization", "projects", project, "rate_limits"]).query("limit", 100);
    let limits = paging::fetch(ctx.conn()?, call, true, Cursor::After).await?;
    limits
        .iter()
        .find(|l| l.get("model").and_then(Value::as_str) == Some(model))
        .map(|l| scalar(l.get("id")))
        .ok_or_else(|| {
            CliError::not_found(format!(
                "project {project} has no rate limit for model '{model}'"
            ))
            .hint(format!(
                "`keyplane rate-limits list --project {project}` lists the models"
            ))
        })
}
