//! A table of cells, rendered to lines that fit a width (widest text columns are truncated with
//! "…", then the rightmost columns dropped) or to CSV.

use crate::time;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A time shown relative to now ("3 days ago"); `none` when null ("never").
    Time {
        at: Option<i64>,
        none: &'static str,
    },
    /// A time shown as a UTC date and minute (bucket boundaries).
    Instant(i64),
}

impl Cell {
    fn for_table(&self, now: i64) -> String {
        let text = match self {
            Cell::Text(s) => s.clone(),
            Cell::Time { at: Some(at), .. } => time::relative(*at, now),
            Cell::Time { at: None, none } => (*none).to_owned(),
            Cell::Instant(at) => time::short_utc(*at),
        };
        printable(&text)
    }

    fn for_csv(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Time { at: Some(at), .. } | Cell::Instant(at) => time::rfc3339(*at),
            Cell::Time { at: None, .. } => String::new(),
        }
    }
}

/// Control characters (a name with an escape sequence) never reach the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Column {
    pub header: String,
    /// Never truncated (ids, redacted keys): a cut id is useless.
    pub keep: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

const GAP: usize = 2;
const MIN_WIDTH: usize = 6;

fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Cuts `s` to `max` display columns, ending in "…" when something was cut.
fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

fn pad(s: &str, to: usize) -> String {
    let mut out = s.to_owned();
    out.extend(std::iter::repeat_n(' ', to.saturating_sub(width(s))));
    out
}

impl Table {
    /// Header line plus one line per row, fitted to `max_width` when given.
    pub fn render(&self, max_width: Option<usize>, now: i64) -> Vec<String> {
        let texts: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(|c| c.for_table(now)).collect())
            .collect();
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                texts
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|t| width(t))
                    .chain([width(&col.header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut shown = self.columns.len();
        if let Some(max) = max_width {
            let total = |widths: &[usize], shown: usize| {
                widths[..shown].iter().sum::<usize>() + GAP * shown.saturating_sub(1)
            };
            while total(&widths, shown) > max {
                let floor = |i: usize| {
                    let header = width(&self.columns[i].header);
                    header.max(MIN_WIDTH)
                };
                let widest = (0..shown)
                    .filter(|&i| !self.columns[i].keep && widths[i] > floor(i))
                    .max_by_key(|&i| widths[i]);
                match widest {
                    Some(i) => widths[i] -= 1,
                    None if shown > 1 => shown -= 1,
                    None => break,
                }
            }
        }
        let line = |cells: Vec<String>| {
            let mut parts = Vec::with_capacity(shown);
            for (i, text) in cells.into_iter().enumerate().take(shown) {
                let cut = truncate(&text, widths[i]);
                parts.push(if i + 1 == shown {
                    cut
                } else {
                    pad(&cut, widths[i])
                });
            }
            parts.join(&" ".repeat(GAP)).trim_end().to_owned()
        };
        let mut lines = vec![line(
            self.columns.iter().map(|c| printable(&c.header)).collect(),
        )];
        lines.extend(texts.into_iter().map(line));
        lines
    }

    /// One `FIELD  value` line per column of the first row (a single object).
    pub fn render_vertical(&self, max_width: Option<usize>, now: i64) -> Vec<String> {
        let Some(row) = self.rows.first() else {
            return Vec::new();
        };
        let label_width = self
            .columns
            .iter()
            .map(|c| width(&c.header))
            .max()
            .unwrap_or(0);
        self.columns
            .iter()
            .zip(row)
            .map(|(col, cell)| {
                let text = cell.for_table(now);
                let text = match max_width {
                    Some(max) if !col.keep => {
                        truncate(&text, max.saturating_sub(label_width + GAP).max(MIN_WIDTH))
                    }
                    _ => text,
                };
                format!("{}{}{text}", pad(&col.header, label_width), " ".repeat(GAP))
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    /// RFC 4180 lines: a header of snake_case names, then the rows with full values.
    pub fn csv(&self) -> Vec<String> {
        let header = self
            .columns
            .iter()
            .map(|c| csv_field(&c.header.to_lowercase().replace([' ', '/'], "_")))
            .collect::<Vec<_>>()
            .join(",");
        let mut lines = vec![header];
        lines.extend(self.rows.iter().map(|row| {
            row.iter()
                .map(|c| csv_field(&c.for_csv()))
                .collect::<Vec<_>>()
                .join(",")
        }));
        lines
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: vec![
                Column {
                    header: "ID".into(),
                    keep: true,
                },
                Column {
                    header: "NAME".into(),
                    keep: false,
                },
                Column {
                    header: "LAST USED".into(),
                    keep: false,
                },
            ],
            rows: vec![
                vec![
                    Cell::Text("proj_0123456789".into()),
                    Cell::Text("a rather long project name, \"quoted\"".into()),
                    Cell::Time {
                        at: None,
                        none: "never",
                    },
                ],
                vec![
                    Cell::Text("proj_2".into()),
                    Cell::Text("short\x1b[31m".into()),
                    Cell::Time {
                        at: Some(1000 - 3 * 86_400),
                        none: "never",
                    },
                ],
            ],
        }
    }

    #[test]
    fn unlimited_width_shows_everything() {
        let lines = table().render(None, 1000);
        assert_eq!(lines[0].split_whitespace().next(), Some("ID"));
        assert!(lines[1].contains("a rather long project name, \"quoted\""));
        assert!(lines[1].ends_with("never"));
        assert!(lines[2].ends_with("3 days ago"));
        assert!(
            !lines[2].contains('\x1b'),
            "control characters are replaced"
        );
    }

    #[test]
    fn narrow_width_truncates_text_but_not_ids() {
        for max in [20, 30, 40, 60] {
            let lines = table().render(Some(max), 1000);
            for line in &lines {
                assert!(width(line) <= max, "{max}: {line:?}");
            }
            assert!(lines[1].starts_with("proj_0123456789"));
        }
        let lines = table().render(Some(40), 1000);
        assert!(lines[1].contains('…'));
    }

    #[test]
    fn vertical_and_csv() {
        let t = table();
        let v = t.render_vertical(None, 1000);
        assert_eq!(v[0], "ID         proj_0123456789");
        assert_eq!(v[2], "LAST USED  never");
        let csv = t.csv();
        assert_eq!(csv[0], "id,name,last_used");
        assert_eq!(
            csv[1],
            "proj_0123456789,\"a rather long project name, \"\"quoted\"\"\","
        );
        assert!(csv[2].ends_with(",1969-12-29T00:16:40Z"));
    }
}
