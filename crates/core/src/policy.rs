//! Per-project policies enforced by the gateway: rate-limit overrides, model permissions,
//! spend limits and spend alerts.

use crate::catalog::ModelSpec;
use crate::DomainError;

/// A stored override of a model's rate limits; `None` fields keep the catalog default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitOverride {
    pub model: String,
    pub max_requests_per_1_minute: Option<i64>,
    pub max_tokens_per_1_minute: Option<i64>,
    pub max_requests_per_1_day: Option<i64>,
    pub max_images_per_1_minute: Option<i64>,
    pub max_audio_megabytes_per_1_minute: Option<i64>,
    pub batch_1_day_max_input_tokens: Option<i64>,
}

/// The limits in force for one project and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub model: String,
    pub requests_per_minute: u64,
    pub tokens_per_minute: u64,
    pub requests_per_day: Option<u64>,
    pub images_per_minute: Option<u64>,
    pub audio_megabytes_per_minute: Option<u64>,
    pub batch_1_day_max_input_tokens: Option<u64>,
}

impl EffectiveLimits {
    pub fn new(spec: &ModelSpec, o: Option<&RateLimitOverride>) -> Self {
        let pick = |ov: Option<i64>, default: Option<u64>| ov.map(|v| v.max(0) as u64).or(default);
        Self {
            model: spec.name.clone(),
            requests_per_minute: pick(
                o.and_then(|o| o.max_requests_per_1_minute),
                Some(spec.requests_per_minute),
            )
            .unwrap_or(spec.requests_per_minute),
            tokens_per_minute: pick(
                o.and_then(|o| o.max_tokens_per_1_minute),
                Some(spec.tokens_per_minute),
            )
            .unwrap_or(spec.tokens_per_minute),
            requests_per_day: pick(
                o.and_then(|o| o.max_requests_per_1_day),
                spec.requests_per_day,
            ),
            images_per_minute: pick(
                o.and_then(|o| o.max_images_per_1_minute),
                spec.images_per_minute,
            ),
            audio_megabytes_per_minute: pick(
                o.and_then(|o| o.max_audio_megabytes_per_1_minute),
                None,
            ),
            batch_1_day_max_input_tokens: pick(
                o.and_then(|o| o.batch_1_day_max_input_tokens),
                None,
            ),
        }
    }
}

/// Validates one `max_*` value of a rate-limit update.
pub fn parse_limit(param: &str, raw: Option<i64>) -> Result<Option<i64>, DomainError> {
    match raw {
        Some(v) if !(0..=1_000_000_000_000).contains(&v) => Err(DomainError::invalid(
            param,
            format!("Invalid '{param}': {v}. Expected a non-negative integer."),
        )),
        other => Ok(other),
    }
}

/// `rl-<model>`: the rate limit's API id.
pub fn rate_limit_id(model: &str) -> String {
    format!("rl-{model}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionMode {
    AllowList,
    DenyList,
}

impl PermissionMode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "allow_list" => Ok(Self::AllowList),
            "deny_list" => Ok(Self::DenyList),
            _ => Err(DomainError::invalid(
                "mode",
                "Invalid 'mode': expected 'allow_list' or 'deny_list'.",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowList => "allow_list",
            Self::DenyList => "deny_list",
        }
    }
}

/// Which models a project may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPermissions {
    pub mode: PermissionMode,
    pub model_ids: Vec<String>,
}

impl ModelPermissions {
    pub fn parse(mode: &str, model_ids: &[String]) -> Result<Self, DomainError> {
        let mode = PermissionMode::parse(mode)?;
        if model_ids.len() > 1000 {
            return Err(DomainError::invalid(
                "model_ids",
                "Too many model ids (max 1000).",
            ));
        }
        let mut ids = Vec::with_capacity(model_ids.len());
        for id in model_ids {
            let id = id.trim();
            if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    "model_ids",
                    "Invalid model id in 'model_ids'.",
                ));
            }
            ids.push(id.to_owned());
        }
        ids.sort();
        ids.dedup();
        Ok(Self {
            mode,
            model_ids: ids,
        })
    }

    /// An id matches exactly, or as a dated snapshot (`gpt-4o` covers `gpt-4o-2024-08-06`).
    fn lists(&self, model: &str) -> bool {
        self.model_ids.iter().any(|id| {
            model == id
                || (model.starts_with(id.as_str())
                    && model[id.len()..]
                        .strip_prefix('-')
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())))
        })
    }

    pub fn allows(&self, model: &str) -> bool {
        match self.mode {
            PermissionMode::AllowList => self.lists(model),
            PermissionMode::DenyList => !self.lists(model),
        }
    }
}

/// A project's hard monthly spend limit, in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendLimit {
    pub threshold_amount: i64,
    pub currency: String,
    pub interval: String,
}

/// Validates currency and interval of spend limits and alerts (USD, month).
pub fn parse_money(
    threshold_amount: i64,
    min: i64,
    currency: &str,
    interval: &str,
) -> Result<(), DomainError> {
    if threshold_amount < min || threshold_amount > 1_000_000_000_000 {
        return Err(DomainError::invalid(
            "threshold_amount",
            format!("Invalid 'threshold_amount': expected an integer amount of cents of at least {min}."),
        ));
    }
    if !currency.eq_ignore_ascii_case("usd") {
        return Err(DomainError::invalid(
            "currency",
            "Invalid 'currency': only 'USD' is supported.",
        ));
    }
    if interval != "month" {
        return Err(DomainError::invalid(
            "interval",
            "Invalid 'interval': only 'month' is supported.",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendAlert {
    pub id: String,
    /// `None` for an organization-wide alert.
    pub project_id: Option<String>,
    pub threshold_amount: i64,
    pub currency: String,
    pub interval: String,
    pub recipients: Vec<String>,
    pub subject_prefix: Option<String>,
    pub created_at: i64,
}

/// The start (Unix seconds, UTC) of the calendar month containing `t`.
pub fn month_start(t: i64) -> i64 {
    // Civil-from-days (Howard Hinnant), enough for month boundaries.
    let days = t.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    (days - (d - 1)) * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    #[test]
    fn overrides_replace_only_what_they_set() {
        let c = catalog::built_in();
        let spec = catalog::lookup(&c, "gpt-4o").unwrap();
        let o = RateLimitOverride {
            model: "gpt-4o".into(),
            max_requests_per_1_minute: Some(10),
            ..Default::default()
        };
        let e = EffectiveLimits::new(spec, Some(&o));
        assert_eq!(e.requests_per_minute, 10);
        assert_eq!(e.tokens_per_minute, 30_000);
        assert_eq!(EffectiveLimits::new(spec, None).requests_per_minute, 500);
        assert!(parse_limit("max_requests_per_1_minute", Some(-1)).is_err());
    }

    #[test]
    fn allow_and_deny_lists_cover_dated_snapshots_only() {
        let allow = ModelPermissions::parse("allow_list", &["gpt-4o".into()]).unwrap();
        assert!(allow.allows("gpt-4o"));
        assert!(allow.allows("gpt-4o-2024-08-06"));
        assert!(!allow.allows("gpt-4o-mini"));
        let deny = ModelPermissions::parse("deny_list", &["gpt-4o".into()]).unwrap();
        assert!(!deny.allows("gpt-4o"));
        assert!(deny.allows("gpt-4o-mini"));
        assert!(ModelPermissions::parse("maybe", &[]).is_err());
        assert!(ModelPermissions::parse("allow_list", &["".into()]).is_err());
    }

    #[test]
    fn money_and_months() {
        assert!(parse_money(100, 1, "USD", "month").is_ok());
        assert!(parse_money(0, 1, "USD", "month").is_err());
        assert!(parse_money(100, 1, "EUR", "month").is_err());
        assert!(parse_money(100, 1, "usd", "week").is_err());
        // 2026-11-27T12:00:00Z → 2026-11-01T00:00:00Z
        assert_eq!(month_start(1_795_780_800), 1_793_491_200);
        assert_eq!(month_start(1_793_491_200), 1_793_491_200);
        // 2026-10-31T23:59:59Z → 2026-10-01T00:00:00Z
        assert_eq!(month_start(1_793_491_199), 1_790_812_800);
        assert_eq!(month_start(0), 0);
    }
}
