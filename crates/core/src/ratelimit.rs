//! Rate-limit math: continuously refilling buckets, as OpenAI's limits behave.
//!
//! A limit of `L` per `period` is a bucket of capacity `L` refilling at `L / period`. A request
//! takes `cost` from the bucket or is refused; `remaining` is the whole units left, and `reset`
//! is the time until the bucket is full again (what `x-ratelimit-reset-*` reports).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    capacity: f64,
    level: f64,
    per_ms: f64,
    updated_ms: u64,
}

/// The outcome of taking from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// When refused: until enough has refilled for this request.
    pub retry_after: Duration,
}

impl Bucket {
    /// A full bucket of `limit` per `period`.
    pub fn new(limit: u64, period: Duration, now_ms: u64) -> Self {
        let capacity = limit as f64;
        Self {
            capacity,
            level: capacity,
            per_ms: capacity / (period.as_millis().max(1) as f64),
            updated_ms: now_ms,
        }
    }

    pub fn limit(&self) -> u64 {
        self.capacity as u64
    }

    /// Changes the limit, keeping the used amount.
    pub fn set_limit(&mut self, limit: u64, period: Duration, now_ms: u64) {
        self.refill(now_ms);
        let used = self.capacity - self.level;
        self.capacity = limit as f64;
        self.per_ms = self.capacity / (period.as_millis().max(1) as f64);
        self.level = (self.capacity - used).max(0.0);
    }

    fn refill(&mut self, now_ms: u64) {
        if now_ms > self.updated_ms {
            let elapsed = (now_ms - self.updated_ms) as f64;
            self.level = (self.level + elapsed * self.per_ms).min(self.capacity);
            self.updated_ms = now_ms;
        }
    }

    fn snapshot(&self, allowed: bool, cost: f64) -> Admission {
        let to_full = if self.per_ms > 0.0 {
            ((self.capacity - self.level) / self.per_ms).ceil()
        } else {
            0.0
        };
        let to_cost = if self.per_ms > 0.0 && cost > self.level {
            ((cost - self.level) / self.per_ms).ceil()
        } else {
            0.0
        };
        Admission {
            allowed,
            limit: self.capacity as u64,
            remaining: self.level.max(0.0).floor() as u64,
            reset: Duration::from_millis(to_full as u64),
            retry_after: Duration::from_millis(to_cost as u64),
        }
    }

    /// Whether `cost` fits now, without taking it.
    pub fn check(&mut self, cost: u64, now_ms: u64) -> Admission {
        self.refill(now_ms);
        let cost = cost as f64;
        self.snapshot(cost <= self.level, cost)
    }

    /// Takes `cost` if it fits.
    pub fn take(&mut self, cost: u64, now_ms: u64) -> Admission {
        let admission = self.check(cost, now_ms);
        if admission.allowed {
            self.level -= cost as f64;
            return self.snapshot(true, 0.0);
        }
        admission
    }

    /// Takes `cost` unconditionally (settling real usage may overdraw).
    pub fn force(&mut self, cost: i64, now_ms: u64) {
        self.refill(now_ms);
        self.level = (self.level - cost as f64).min(self.capacity);
    }
}

/// One instance's share of a cluster-wide `limit` when the instances cannot coordinate (the shared
/// counters are unreachable): `limit / instances`, never 0 unless the limit itself is 0, so a
/// small limit over many instances still lets each instance serve something.
pub fn per_instance(limit: u64, instances: u32) -> u64 {
    if limit == 0 {
        return 0;
    }
    (limit / u64::from(instances.max(1))).max(1)
}

/// `6m0s`, `1s`, `12ms`: the Go-style durations OpenAI's reset headers use.
pub fn format_reset(d: Duration) -> String {
    let mut out = String::with_capacity(16);
    write_reset(&mut out, d);
    out
}

/// Appends [`format_reset`]'s text to `out`, with integer arithmetic: this runs twice per
/// gateway response.
pub fn write_reset(out: &mut String, d: Duration) {
    // `itoa` rather than `core::fmt`: these are written into every gateway response.
    let mut n = itoa::Buffer::new();
    let ms = d.as_millis();
    if ms < 1000 {
        out.push_str(n.format(ms));
        out.push_str("ms");
        return;
    }
    let ms = (d.as_micros() + 500) / 1000; // to the nearest millisecond
    let (hours, minutes) = (ms / 3_600_000, ms / 60_000 % 60);
    let (seconds, millis) = (ms / 1000 % 60, ms % 1000);
    if hours > 0 {
        out.push_str(n.format(hours));
        out.push('h');
        out.push_str(n.format(minutes));
        out.push('m');
    } else if minutes > 0 {
        out.push_str(n.format(minutes));
        out.push('m');
    }
    out.push_str(n.format(seconds));
    if millis > 0 {
        // Three digits, trailing zeros dropped: `.5`, `.05`, `.005`.
        let digits = [millis / 100, millis / 10 % 10, millis % 10];
        let len = if digits[2] != 0 {
            3
        } else if digits[1] != 0 {
            2
        } else {
            1
        };
        out.push('.');
        for d in &digits[..len] {
            out.push(char::from(b'0' + *d as u8));
        }
    }
    out.push('s');
}

/// Whole seconds for `retry-after` (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_bucket_admits_exactly_its_limit_then_refills() {
        let mut b = Bucket::new(10, MIN, 0);
        for i in 0..10 {
            let a = b.take(1, 0);
            assert!(a.allowed, "request {i}");
            assert_eq!(a.remaining, 9 - i);
        }
        let refused = b.take(1, 0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(6));
        assert_eq!(refused.reset, MIN);
        // One request's worth refills in 6 s.
        assert!(b.take(1, 6_000).allowed);
        assert!(!b.take(1, 6_000).allowed);
    }

    #[test]
    fn settling_real_usage_adjusts_the_level() {
        let mut b = Bucket::new(1000, MIN, 0);
        assert!(b.take(600, 0).allowed);
        // The request really used 100: 500 go back.
        b.force(100 - 600, 0);
        assert_eq!(b.check(0, 0).remaining, 900);
        // Overdraw is allowed when settling, and refused requests follow.
        b.force(2000, 0);
        assert!(!b.take(1, 0).allowed);
    }

    #[test]
    fn changing_the_limit_keeps_usage() {
        let mut b = Bucket::new(10, MIN, 0);
        b.take(4, 0);
        b.set_limit(20, MIN, 0);
        assert_eq!(b.check(0, 0).remaining, 16);
        assert_eq!(b.limit(), 20);
    }

    #[test]
    fn an_instance_share_divides_the_limit_but_never_to_zero() {
        assert_eq!(per_instance(10, 1), 10);
        assert_eq!(per_instance(10, 3), 3);
        assert_eq!(per_instance(9, 3), 3);
        assert_eq!(per_instance(2, 3), 1);
        assert_eq!(per_instance(1, 100), 1);
        assert_eq!(per_instance(0, 3), 0);
        // A misconfigured 0 instances is read as 1.
        assert_eq!(per_instance(10, 0), 10);
        assert_eq!(per_instance(u64::MAX, 2), u64::MAX / 2);
    }

    #[test]
    fn reset_durations_look_like_openais() {
        assert_eq!(format_reset(Duration::from_millis(12)), "12ms");
        assert_eq!(format_reset(Duration::from_secs(1)), "1s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_reset(Duration::from_millis(6500)), "6.5s");
        assert_eq!(format_reset(Duration::from_secs(3 * 3600 + 61)), "3h1m1s");
        assert_eq!(format_reset(Duration::from_millis(8_640)), "8.64s");
        assert_eq!(format_reset(Duration::from_millis(1_005)), "1.005s");
        assert_eq!(format_reset(Duration::from_millis(62_050)), "1m2.05s");
        assert_eq!(format_reset(Duration::from_micros(1_234_600)), "1.235s");
        assert_eq!(format_reset(Duration::from_micros(59_999_700)), "1m0s");
        assert_eq!(
            format_reset(Duration::from_millis(3_600_000 + 5)),
            "1h0m0.005s"
        );
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(6001)), 7);
    }
}
