//! Lists one page at a time, or with `--all` every page by following the cursor: `after=<last
//! id>` for object lists, `page=<next_page>` for usage and costs. A long walk shows its progress
//! on stderr when stdout is a terminal.

use crate::connection::{Call, Connection};
use crate::error::CliError;
use clap::Args;
use serde_json::Value;
use std::io::IsTerminal;

#[derive(Args, Debug, Clone, Default)]
pub struct PageArgs {
    /// Items per page (the server's default when absent).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Start after this id (the last id of the previous page).
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,
    /// Fetch every page, following the cursor.
    #[arg(long)]
    pub all: bool,
}

impl PageArgs {
    /// Adds `limit` and `after` to a list call.
    pub fn apply(&self, call: Call) -> Call {
        call.query_opt("limit", self.limit)
            .query_opt("after", self.after.as_deref())
    }
}

/// How a list names its next page.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    /// `{data, has_more, last_id}`: the next request carries `after=<last_id>` (or the last
    /// item's id when the server sends no `last_id`).
    After,
    /// `{data, has_more, next_page}`: the next request carries `page=<next_page>`.
    NextPage,
}

/// A progress line on stderr, only when a person is watching a long listing.
struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            enabled: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn tick(&mut self, pages: usize, items: usize) {
        if self.enabled && pages >= 2 {
            self.shown = true;
            eprint!("\rkeyplane: fetched {items} items in {pages} pages…");
        }
    }

    fn done(&self) {
        if self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Fetches one page, or every page when `all`, and returns the items of all of them.
pub async fn fetch(
    conn: &Connection,
    mut call: Call,
    all: bool,
    cursor: Cursor,
) -> Result<Vec<Value>, CliError> {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut progress = Progress::new();
    let mut previous: Option<String> = None;
    loop {
        let page = match conn.send(&call).await {
            Ok(page) => page,
            Err(e) => {
                progress.done();
                return Err(e);
            }
        };
        pages += 1;
        let data = match page.get("data") {
            Some(Value::Array(data)) => data.clone(),
            _ => {
                progress.done();
                return Err(CliError::other(format!(
                    "the answer to {} is not a list (no `data` array)",
                    call.path()
                )));
            }
        };
        let has_more = page.get("has_more").and_then(Value::as_bool);
        let next = match cursor {
            Cursor::After => page.get("last_id").and_then(Value::as_str).or_else(|| {
                data.last()
                    .and_then(|d| d.get("id"))
                    .and_then(Value::as_str)
            }),
            Cursor::NextPage => page.get("next_page").and_then(Value::as_str),
        }
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
        let empty = data.is_empty();
        items.extend(data);
        progress.tick(pages, items.len());
        let more = match cursor {
            Cursor::After => has_more != Some(false) && !empty,
            Cursor::NextPage => has_more != Some(false),
        };
        let Some(next) = next.filter(|_| more) else {
            break;
        };
        if !all {
            if std::io::stderr().is_terminal() {
                let flag = match cursor {
                    Cursor::After => "--after",
                    Cursor::NextPage => "--page",
                };
                eprintln!("keyplane: there is more; --all fetches every page ({flag} {next} the next one)");
            }
            break;
        }
        if previous.as_deref() == Some(next.as_str()) {
            progress.done();
            return Err(CliError::other(format!(
                "the server returned the same cursor '{next}' twice; stopping"
            )));
        }
        match cursor {
            Cursor::After => call.set_query("after", &next),
            Cursor::NextPage => call.set_query("page", &next),
        }
        previous = Some(next);
    }
    progress.done();
    Ok(items)
}
