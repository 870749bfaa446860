//! The CLI's only writer to stdout: tables, CSV, JSON documents and key values. Everything
//! else (warnings, retries, progress, errors) goes to stderr.

#![allow(clippy::print_stdout)]

use crate::error::CliError;
use crate::table::Table;
use crate::views::Col;
use clap::ValueEnum;
use serde_json::Value;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table that fits the terminal, with relative times.
    Table,
    /// The API's objects as one JSON document (a list prints as an array).
    Json,
    /// Comma-separated values with a header, full values and RFC 3339 times.
    Csv,
}

/// `keyplane init`'s key, alone on a line.
pub fn key(value: &str) {
    println!("{value}");
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn write(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn write_lines(lines: &[String]) -> Result<(), CliError> {
    let mut text = lines.join("\n");
    text.push('\n');
    write(&text)
}

/// A line of text (a key value for `--quiet`, a confirmation).
pub fn line(text: &str) -> Result<(), CliError> {
    write_lines(&[text.to_owned()])
}

pub fn json(value: &Value) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::other(format!("cannot encode JSON: {e}")))?;
    text.push('\n');
    write(&text)
}

/// The width tables must fit: the terminal's, else `COLUMNS`, else unlimited (a pipe).
fn terminal_width() -> Option<usize> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size_of(&stdout) {
            return Some(usize::from(w));
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&w: &usize| w > 0)
}

pub fn table(t: &Table) -> Result<(), CliError> {
    write_lines(&t.render(terminal_width(), crate::time::now()))
}

fn vertical(t: &Table) -> Result<(), CliError> {
    write_lines(&t.render_vertical(terminal_width(), crate::time::now()))
}

fn csv(t: &Table) -> Result<(), CliError> {
    write_lines(&t.csv())
}

/// A listing: a table or CSV of `cols`, or the JSON array of the objects.
pub fn list(format: Format, items: &[Value], cols: &[Col]) -> Result<(), CliError> {
    match format {
        Format::Json => json(&Value::Array(items.to_vec())),
        Format::Table => table(&crate::views::table(cols, items)),
        Format::Csv => csv(&crate::views::table(cols, items)),
    }
}

/// A ready-made table (usage, audit findings) with its JSON document.
pub fn tabular(format: Format, t: &Table, document: &Value) -> Result<(), CliError> {
    match format {
        Format::Json => json(document),
        Format::Table => table(t),
        Format::Csv => csv(t),
    }
}

/// One object: `FIELD  value` lines, a one-row CSV, or the JSON object.
pub fn object(format: Format, item: &Value, cols: &[Col]) -> Result<(), CliError> {
    match format {
        Format::Json => json(item),
        Format::Table => vertical(&crate::views::table(cols, std::slice::from_ref(item))),
        Format::Csv => csv(&crate::views::table(cols, std::slice::from_ref(item))),
    }
}

/// The answer to a delete: a sentence, a one-row CSV, or the JSON object.
pub fn deleted(format: Format, item: &Value, what: &str, id: &str) -> Result<(), CliError> {
    let id = item.get("id").and_then(Value::as_str).unwrap_or(id);
    match format {
        Format::Json => json(item),
        Format::Table => line(&format!("Deleted {what} {id}.")),
        Format::Csv => write_lines(&["id,deleted".to_owned(), format!("{id},true")]),
    }
}

/// A created key. Its `value` appears exactly once on stdout: alone with `quiet`, inside the
/// JSON object, as a CSV column, or on its own line after the table. `item` no longer holds the
/// value when it went to a `--save-to` file (`value` is then `None`).
pub fn created_key(
    format: Format,
    item: &Value,
    cols: &[Col],
    value: Option<&str>,
    quiet: bool,
) -> Result<(), CliError> {
    if quiet {
        return match value {
            Some(v) => line(v),
            None => Ok(()),
        };
    }
    match format {
        Format::Json => json(item),
        Format::Csv => {
            let mut t = crate::views::table(cols, std::slice::from_ref(item));
            if let Some(v) = value {
                t.columns.push(crate::table::Column {
                    header: "VALUE".to_owned(),
                    keep: true,
                });
                if let Some(row) = t.rows.first_mut() {
                    row.push(crate::table::Cell::Text(v.to_owned()));
                }
            }
            csv(&t)
        }
        Format::Table => {
            vertical(&crate::views::table(cols, std::slice::from_ref(item)))?;
            match value {
                Some(v) => write_lines(&[
                    String::new(),
                    "Key value (shown only this once; store it now):".to_owned(),
                    v.to_owned(),
                ]),
                None => Ok(()),
            }
        }
    }
}

/// A shell completion script for `keyplane`.
pub fn completions(shell: clap_complete::Shell, cmd: &mut clap::Command) {
    clap_complete::generate(shell, cmd, "keyplane", &mut std::io::stdout());
}
