//! `keyplane api-keys audit`: which project keys need attention — never used, unused for a
//! while, old enough to rotate, expiring soon or expired.

use super::Ctx;
use crate::connection::Call;
use crate::error::CliError;
use crate::output::{self, Format};
use crate::paging::{self, Cursor};
use crate::views::{self, scalar};
use clap::Args;
use serde_json::{json, Value};

const DAY: i64 = 86_400;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Audit one project; every active project when absent.
    #[arg(long, value_name = "PROJECT_ID")]
    pub project: Option<String>,
    /// Flag keys last used N or more days ago.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub unused_days: u32,
    /// Flag keys created N or more days ago (due for rotation).
    #[arg(long, value_name = "N", default_value_t = 90)]
    pub older_than_days: u32,
    /// Flag keys that expire within N days (and keys already expired).
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub expiring_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    NeverUsed,
    Unused { days: i64 },
    DueForRotation { age_days: i64 },
    Expiring { in_days: i64 },
    Expired,
}

impl Finding {
    fn code(self) -> &'static str {
        match self {
            Finding::NeverUsed => "never_used",
            Finding::Unused { .. } => "unused",
            Finding::DueForRotation { .. } => "due_for_rotation",
            Finding::Expiring { .. } => "expiring",
            Finding::Expired => "expired",
        }
    }

    fn words(self) -> String {
        let days = |n: i64| {
            if n == 1 {
                "1 day".to_owned()
            } else {
                format!("{n} days")
            }
        };
        match self {
            Finding::NeverUsed => "never used".to_owned(),
            Finding::Unused { days: n } => format!("unused for {}", days(n)),
            Finding::DueForRotation { age_days } => format!("{} old: rotate", days(age_days)),
            Finding::Expiring { in_days: 0 } => "expires today".to_owned(),
            Finding::Expiring { in_days } => format!("expires in {}", days(in_days)),
            Finding::Expired => "expired".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub unused_days: i64,
    pub older_than_days: i64,
    pub expiring_days: i64,
}

/// What is wrong with one key (a project API key object) at `now`.
pub fn findings(key: &Value, now: i64, t: Thresholds) -> Vec<Finding> {
    let at = |field: &str| key.get(field).and_then(Value::as_i64);
    let mut found = Vec::new();
    match at("last_used_at") {
        None => found.push(Finding::NeverUsed),
        Some(used) if now - used >= t.unused_days * DAY => found.push(Finding::Unused {
            days: (now - used) / DAY,
        }),
        Some(_) => {}
    }
    if let Some(created) = at("created_at") {
        if now - created >= t.older_than_days * DAY {
            found.push(Finding::DueForRotation {
                age_days: (now - created) / DAY,
            });
        }
    }
    if let Some(expires) = at("expires_at") {
        if expires <= now {
            found.push(Finding::Expired);
        } else if expires - now <= t.expiring_days * DAY {
            found.push(Finding::Expiring {
                in_days: (expires - now) / DAY,
            });
        }
    }
    found
}

struct Flagged {
    project: Value,
    key: Value,
    findings: Vec<Finding>,
}

async fn projects(ctx: &Ctx, only: Option<&str>) -> Result<Vec<Value>, CliError> {
    match only {
        Some(id) => Ok(vec![
            ctx.conn()?
                .send(&Call::get(&["organization", "projects", id]))
                .await?,
        ]),
        None => {
            let call = Call::get(&["organization", "projects"]).query("limit", 100);
            paging::fetch(ctx.conn()?, call, true, Cursor::After).await
        }
    }
}

pub async fn run(ctx: &Ctx, args: &AuditArgs) -> Result<(), CliError> {
    let thresholds = Thresholds {
        unused_days: i64::from(args.unused_days),
        older_than_days: i64::from(args.older_than_days),
        expiring_days: i64::from(args.expiring_days),
    };
    let now = crate::time::now();
    let projects = projects(ctx, args.project.as_deref()).await?;
    let mut flagged = Vec::new();
    let mut checked = 0;
    for project in &projects {
        let id = scalar(project.get("id"));
        let call = Call::get(&["organization", "projects", &id, "api_keys"]).query("limit", 100);
        let keys = paging::fetch(ctx.conn()?, call, true, Cursor::After).await?;
        checked += keys.len();
        for key in keys {
            let found = findings(&key, now, thresholds);
            if !found.is_empty() {
                flagged.push(Flagged {
                    project: json!({"id": id, "name": project.get("name")}),
                    key,
                    findings: found,
                });
            }
        }
    }
    eprintln!(
        "keyplane: {} of {checked} keys in {} projects need attention",
        flagged.len(),
        projects.len()
    );
    let document = Value::Array(
        flagged
            .iter()
            .map(|f| {
                json!({
                    "project": f.project,
                    "key": f.key,
                    "findings": f.findings.iter().map(|x| x.code()).collect::<Vec<_>>(),
                    "details": f.findings.iter().map(|x| x.words()).collect::<Vec<_>>(),
                })
            })
            .collect(),
    );
    if flagged.is_empty() && ctx.format == Format::Table {
        return output::line(&format!(
            "No findings: {checked} keys in {} projects checked.",
            projects.len()
        ));
    }
    let Value::Array(entries) = document else {
        return Ok(());
    };
    output::list(ctx.format, &entries, views::KEY_FINDING)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000 * DAY;
    const T: Thresholds = Thresholds {
        unused_days: 30,
        older_than_days: 90,
        expiring_days: 7,
    };

    #[test]
    fn classifies_keys() {
        let fresh = json!({"created_at": NOW - DAY, "last_used_at": NOW - 60, "expires_at": null});
        assert!(findings(&fresh, NOW, T).is_empty());
        let never = json!({"created_at": NOW - DAY, "last_used_at": null});
        assert_eq!(findings(&never, NOW, T), vec![Finding::NeverUsed]);
        let stale = json!({"created_at": NOW - 200 * DAY, "last_used_at": NOW - 45 * DAY});
        assert_eq!(
            findings(&stale, NOW, T),
            vec![
                Finding::Unused { days: 45 },
                Finding::DueForRotation { age_days: 200 }
            ]
        );
        let expiring = json!({"created_at": NOW, "last_used_at": NOW, "expires_at": NOW + 3 * DAY});
        assert_eq!(
            findings(&expiring, NOW, T),
            vec![Finding::Expiring { in_days: 3 }]
        );
        let expired = json!({"created_at": NOW, "last_used_at": NOW, "expires_at": NOW - 1});
        assert_eq!(findings(&expired, NOW, T), vec![Finding::Expired]);
        let later = json!({"created_at": NOW, "last_used_at": NOW, "expires_at": NOW + 30 * DAY});
        assert!(findings(&later, NOW, T).is_empty());
    }

    #[test]
    fn words() {
        assert_eq!(Finding::Unused { days: 1 }.words(), "unused for 1 day");
        assert_eq!(
            Finding::DueForRotation { age_days: 120 }.words(),
            "120 days old: rotate"
        );
    }
}
