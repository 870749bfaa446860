//! Metered usage: minute rows, query filters and bucket widths of the Usage and Costs APIs.

use crate::DomainError;

/// Costs are stored as integer nano-USD, so a fraction of a cent per request is not rounded away.
pub const NANO_USD_PER_CENT: i64 = 10_000_000;
pub const NANO_USD_PER_USD: f64 = 1e9;

/// Whether `spent_nano_usd` has reached a threshold of `threshold_cents` (spend limits and
/// alerts share this rule).
pub fn threshold_reached(threshold_cents: i64, spent_nano_usd: i64) -> bool {
    spent_nano_usd >= threshold_cents.saturating_mul(NANO_USD_PER_CENT)
}

/// Usage of one minute, family, project, key and model (an additive counter row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// Start of the minute (or of the bucket, in query results), Unix seconds.
    pub minute: i64,
    pub family: String,
    pub project_id: String,
    pub api_key_id: String,
    pub user_id: Option<String>,
    pub service_account_id: Option<String>,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub images: i64,
    pub cost_nano_usd: i64,
}

impl UsageRow {
    /// Adds another row's counters to this one.
    pub fn absorb(&mut self, other: &UsageRow) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.images += other.images;
        self.cost_nano_usd += other.cost_nano_usd;
    }

    /// No request, token, image or cost is counted.
    pub fn counts_are_zero(&self) -> bool {
        self.requests == 0
            && self.input_tokens == 0
            && self.output_tokens == 0
            && self.cached_tokens == 0
            && self.images == 0
            && self.cost_nano_usd == 0
    }

    /// Sets every counter to zero, keeping the row's identity.
    pub fn zero_counts(&mut self) {
        *self = UsageRow {
            minute: self.minute,
            family: std::mem::take(&mut self.family),
            project_id: std::mem::take(&mut self.project_id),
            api_key_id: std::mem::take(&mut self.api_key_id),
            user_id: self.user_id.take(),
            service_account_id: self.service_account_id.take(),
            model: std::mem::take(&mut self.model),
            ..UsageRow::default()
        };
    }
}

/// What one [`fold_usage`](crate::ports::UsageStore::fold_usage) call compacted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// (minute, project) groups folded; fewer than the limit when none is left.
    pub groups: usize,
    /// The oldest minute among them: how far behind compaction is.
    pub oldest_minute: Option<i64>,
}

/// Which rows a usage or cost query reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub start: i64,
    pub end: i64,
    /// `None` reads every family (costs).
    pub family: Option<String>,
    pub project_ids: Vec<String>,
    pub api_key_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub models: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketWidth {
    Minute,
    Hour,
    Day,
}

impl BucketWidth {
    pub fn parse(raw: Option<&str>) -> Result<Self, DomainError> {
        match raw {
            None | Some("1d") => Ok(Self::Day),
            Some("1h") => Ok(Self::Hour),
            Some("1m") => Ok(Self::Minute),
            Some(_) => Err(DomainError::invalid(
                "bucket_width",
                "Invalid 'bucket_width': expected '1m', '1h' or '1d'.",
            )),
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// (default, maximum) number of buckets per page, as OpenAI documents them.
    pub fn page_bounds(self) -> (i64, i64) {
        match self {
            Self::Minute => (60, 1_440),
            Self::Hour => (24, 168),
            Self::Day => (7, 31),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        assert_eq!(BucketWidth::parse(None).unwrap(), BucketWidth::Day);
        assert_eq!(BucketWidth::parse(Some("1m")).unwrap().seconds(), 60);
        assert!(BucketWidth::parse(Some("5m")).is_err());
        assert_eq!(BucketWidth::Hour.page_bounds(), (24, 168));
    }

    #[test]
    fn absorb_adds_counters() {
        let mut a = UsageRow {
            requests: 1,
            input_tokens: 2,
            ..Default::default()
        };
        a.absorb(&UsageRow {
            requests: 3,
            output_tokens: 4,
            cost_nano_usd: 5,
            ..Default::default()
        });
        assert_eq!(
            (a.requests, a.input_tokens, a.output_tokens, a.cost_nano_usd),
            (4, 2, 4, 5)
        );
    }
}
