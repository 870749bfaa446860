//! `keyplane usage <kind>` and `keyplane costs`: buckets of usage or spend over a time range.

use super::{split_list, Ctx};
use crate::connection::Call;
use crate::error::CliError;
use crate::output;
use crate::paging::{self, Cursor};
use crate::table::{Cell, Column, Table};
use crate::views::scalar;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Bucket {
    #[value(name = "1m")]
    Minute,
    #[value(name = "1h")]
    Hour,
    #[value(name = "1d")]
    Day,
}

impl Bucket {
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Minute => "1m",
            Bucket::Hour => "1h",
            Bucket::Day => "1d",
        }
    }
}

#[derive(Args, Debug)]
pub struct Range {
    /// Start of the range, inclusive: unix seconds, RFC 3339 (2024-05-01T00:00:00Z), a date, or
    /// relative like 7d, 12h.
    #[arg(long, value_name = "TIME", default_value = "7d")]
    start: String,
    /// End of the range, exclusive (same forms); now when absent.
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// Width of each bucket (the server's default is 1d).
    #[arg(long, value_enum)]
    bucket: Option<Bucket>,
    /// Group results by these fields (repeat or comma-separate).
    #[arg(long = "group-by", value_name = "FIELD")]
    group_by: Vec<String>,
    /// Buckets per page.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: Option<u32>,
    /// Continue from a previous answer's next_page token.
    #[arg(long, value_name = "TOKEN")]
    page: Option<String>,
    /// Fetch every page.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
pub struct Filters {
    /// Only these projects (repeat or comma-separate).
    #[arg(long = "project-id", value_name = "PROJECT_ID")]
    project_ids: Vec<String>,
    /// Only these users.
    #[arg(long = "user-id", value_name = "USER_ID")]
    user_ids: Vec<String>,
    /// Only these API keys.
    #[arg(long = "api-key-id", value_name = "KEY_ID")]
    api_key_ids: Vec<String>,
    /// Only these models.
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum UsageCommand {
    /// Completions usage: tokens and requests.
    #[command(
        after_help = "Examples:\n  keyplane usage completions --start 7d --bucket 1d --group-by model\n  keyplane usage completions --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --bucket 1h --project-id proj_abc123 --batch false"
    )]
    Completions {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        filters: Filters,
        /// Only batch (true) or only non-batch (false) requests.
        #[arg(long, value_name = "BOOL")]
        batch: Option<bool>,
    },
    /// Embeddings usage.
    #[command(
        after_help = "Example:\n  keyplane usage embeddings --start 30d --group-by project_id,model"
    )]
    Embeddings {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        filters: Filters,
    },
    /// Moderations usage.
    #[command(after_help = "Example:\n  keyplane usage moderations --start 24h --bucket 1h")]
    Moderations {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        filters: Filters,
    },
    /// Images usage.
    #[command(
        after_help = "Example:\n  keyplane usage images --start 7d --size 1024x1024 --source image.generation --group-by size"
    )]
    Images {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        filters: Filters,
        /// Only these sizes (256x256, 512x512, 1024x1024, 1792x1792, 1024x1792).
        #[arg(long = "size", value_name = "SIZE")]
        sizes: Vec<String>,
        /// Only these sources (image.generation, image.edit, image.variation).
        #[arg(long = "source", value_name = "SOURCE")]
        sources: Vec<String>,
    },
    /// Text-to-speech usage.
    #[command(
        after_help = "Example:\n  keyplane usage audio-speeches --start 7d --group-by model"
    )]
    AudioSpeeches {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        filters: Filters,
    },
    /// Transcription usage.
    #[command(
        after_help = "Example:\n  keyplane usage audio-transcriptions --start 7d --group-by user_id"
    )]
    AudioTranscriptions {
        #[command(flatten)]
        range: Range,
        #[command(flatten)]
        filters: Filters,
    },
}

#[derive(Args, Debug)]
pub struct CostsArgs {
    #[command(flatten)]
    range: Range,
    /// Only these projects (repeat or comma-separate).
    #[arg(long = "project-id", value_name = "PROJECT_ID")]
    project_ids: Vec<String>,
    /// Only these API keys.
    #[arg(long = "api-key-id", value_name = "KEY_ID")]
    api_key_ids: Vec<String>,
    /// Only these line items, e.g. "gpt-4o, input" (repeat the flag; no comma-splitting).
    #[arg(long = "line-item", value_name = "ITEM")]
    line_items: Vec<String>,
}

const COMMON_GROUPS: &[&str] = &["project_id", "user_id", "api_key_id", "model"];

fn check_values(flag: &str, values: &[String], allowed: &[&str]) -> Result<(), CliError> {
    match values.iter().find(|v| !allowed.contains(&v.as_str())) {
        Some(bad) => Err(CliError::usage(format!(
            "{flag} '{bad}' is not one of: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

impl Range {
    /// `start_time`, `end_time`, `bucket_width`, `group_by[]`, `limit`, `page`.
    fn apply(&self, call: Call, groups: &[&str], now: i64) -> Result<Call, CliError> {
        let start = crate::time::parse_instant(&self.start, now)
            .map_err(|e| CliError::usage(format!("--start: {e}")))?;
        let end = self
            .end
            .as_deref()
            .map(|e| crate::time::parse_instant(e, now))
            .transpose()
            .map_err(|e| CliError::usage(format!("--end: {e}")))?;
        if end.is_some_and(|end| end <= start) {
            return Err(CliError::usage("--end must be after --start"));
        }
        let group_by = split_list(&self.group_by);
        check_values("--group-by", &group_by, groups)?;
        Ok(call
            .query("start_time", start)
            .query_opt("end_time", end)
            .query_opt("bucket_width", self.bucket.map(Bucket::as_str))
            .query_list("group_by", &group_by)
            .query_opt("limit", self.limit)
            .query_opt("page", self.page.as_deref()))
    }
}

impl Filters {
    fn apply(&self, call: Call) -> Call {
        call.query_list("project_ids", &split_list(&self.project_ids))
            .query_list("user_ids", &split_list(&self.user_ids))
            .query_list("api_key_ids", &split_list(&self.api_key_ids))
            .query_list("models", &split_list(&self.models))
    }
}

/// The request for a usage kind, checked locally first.
pub fn usage_call(command: &UsageCommand, now: i64) -> Result<(Call, bool), CliError> {
    let (endpoint, range, filters, extra_groups): (&str, &Range, &Filters, &[&str]) = match command
    {
        UsageCommand::Completions { range, filters, .. } => (
            "completions",
            range,
            filters,
            &["batch", "service_tier", "api_source"],
        ),
        UsageCommand::Embeddings { range, filters } => ("embeddings", range, filters, &[]),
        UsageCommand::Moderations { range, filters } => ("moderations", range, filters, &[]),
        UsageCommand::Images { range, filters, .. } => {
            ("images", range, filters, &["size", "source"])
        }
        UsageCommand::AudioSpeeches { range, filters } => ("audio_speeches", range, filters, &[]),
        UsageCommand::AudioTranscriptions { range, filters } => {
            ("audio_transcriptions", range, filters, &[])
        }
    };
    let groups: Vec<&str> = COMMON_GROUPS.iter().chain(extra_groups).copied().collect();
    let mut call = range.apply(
        Call::get(&["organization", "usage", endpoint]),
        &groups,
        now,
    )?;
    call = filters.apply(call);
    match command {
        UsageCommand::Completions { batch, .. } => call = call.query_opt("batch", *batch),
        UsageCommand::Images { sizes, sources, .. } => {
            let (sizes, sources) = (split_list(sizes), split_list(sources));
            check_values(
                "--size",
                &sizes,
                &["256x256", "512x512", "1024x1024", "1792x1792", "1024x1792"],
            )?;
            check_values(
                "--source",
                &sources,
                &["image.generation", "image.edit", "image.variation"],
            )?;
            call = call
                .query_list("sizes", &sizes)
                .query_list("sources", &sources);
        }
        _ => {}
    }
    Ok((call, range.all))
}

pub fn costs_call(args: &CostsArgs, now: i64) -> Result<Call, CliError> {
    if args.range.bucket.is_some_and(|b| b != Bucket::Day) {
        return Err(CliError::usage(
            "costs come in 1d buckets only (--bucket 1d)",
        ));
    }
    let groups = [
        "project_id",
        "user_id",
        "line_item",
        "api_key_id",
        "api_source",
    ];
    let call = args
        .range
        .apply(Call::get(&["organization", "costs"]), &groups, now)?;
    Ok(call
        .query_list("project_ids", &split_list(&args.project_ids))
        .query_list("api_key_ids", &split_list(&args.api_key_ids))
        // Line item names contain commas ("gpt-4o, input"): repeat the flag instead.
        .query_list("line_items", &args.line_items))
}

pub async fn run(ctx: &Ctx, command: UsageCommand) -> Result<(), CliError> {
    let (call, all) = usage_call(&command, crate::time::now())?;
    show(ctx, call, all).await
}

pub async fn costs(ctx: &Ctx, args: CostsArgs) -> Result<(), CliError> {
    let call = costs_call(&args, crate::time::now())?;
    show(ctx, call, args.range.all).await
}

async fn show(ctx: &Ctx, call: Call, all: bool) -> Result<(), CliError> {
    let buckets = paging::fetch(ctx.conn()?, call, all, Cursor::NextPage).await?;
    output::tabular(ctx.format, &table(&buckets), &Value::Array(buckets))
}

fn results(bucket: &Value) -> &[Value] {
    bucket
        .get("results")
        .or_else(|| bucket.get("result"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A row per result (a bucket without results still gets one), a column per field that is set
/// somewhere: grouping fields left null by the server disappear.
pub fn table(buckets: &[Value]) -> Table {
    let mut fields: Vec<String> = Vec::new();
    for r in buckets.iter().flat_map(results) {
        for (k, v) in r.as_object().into_iter().flatten() {
            if k != "object" && !v.is_null() && !fields.contains(k) {
                fields.push(k.clone());
            }
        }
    }
    let mut columns = vec![
        Column {
            header: "START".into(),
            keep: true,
        },
        Column {
            header: "END".into(),
            keep: true,
        },
    ];
    columns.extend(fields.iter().map(|f| Column {
        header: f.to_uppercase().replace('_', " "),
        keep: false,
    }));
    let mut rows = Vec::new();
    for bucket in buckets {
        let at = |f: &str| {
            bucket
                .get(f)
                .and_then(Value::as_i64)
                .map_or(Cell::Text(String::new()), Cell::Instant)
        };
        let rs = results(bucket);
        let blank = [Value::Null];
        for r in if rs.is_empty() { &blank[..] } else { rs } {
            let mut row = vec![at("start_time"), at("end_time")];
            row.extend(fields.iter().map(|f| Cell::Text(field(r.get(f)))));
            rows.push(row);
        }
    }
    Table { columns, rows }
}

/// `amount: {value, currency}` reads as "12.34 usd"; other values as they are.
fn field(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(o)) if o.contains_key("value") => {
            let value = o.get("value").and_then(Value::as_f64).unwrap_or(0.0);
            format!("{value:.2} {}", scalar(o.get("currency")))
                .trim_end()
                .to_owned()
        }
        other => scalar(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_table_drops_unset_groups_and_formats_amounts() {
        let buckets = vec![
            json!({"object": "bucket", "start_time": 0, "end_time": 86400, "results": [
                {"object": "organization.costs.result", "amount": {"value": 1.5, "currency": "usd"},
                 "line_item": "gpt-4o, input", "project_id": null}
            ]}),
            json!({"object": "bucket", "start_time": 86400, "end_time": 172_800, "results": []}),
        ];
        let t = table(&buckets);
        let headers: Vec<_> = t.columns.iter().map(|c| c.header.as_str()).collect();
        assert_eq!(headers, ["START", "END", "AMOUNT", "LINE ITEM"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0][2], Cell::Text("1.50 usd".into()));
        assert_eq!(t.rows[1][2], Cell::Text(String::new()));
    }
}
