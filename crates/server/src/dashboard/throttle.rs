//! Slows, then refuses, repeated failed sign-ins from one address or for one account. In
//! memory (per instance), bounded, forgotten after the window.

use moka::sync::Cache;
use std::time::Duration;

/// Failures counted over this window.
pub const WINDOW_SECONDS: i64 = 15 * 60;
/// From this many failures on, each attempt waits first.
pub const SLOW_AFTER: usize = 5;
/// From this many failures on, attempts are refused until the window has passed.
pub const REFUSE_AFTER: usize = 10;

/// What to do with a sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Wait this long, then check the password.
    Delay(Duration),
    Refuse,
}

pub struct LoginThrottle {
    failures: Cache<String, Vec<i64>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            failures: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(WINDOW_SECONDS as u64))
                .build(),
        }
    }
}

fn keys(ip: Option<&str>, email: &str) -> Vec<String> {
    let mut out = vec![format!("email:{}", email.trim().to_lowercase())];
    if let Some(ip) = ip {
        out.push(format!("ip:{ip}"));
    }
    out
}

/// The verdict for `recent` failures in the window.
pub fn verdict(recent: usize) -> Verdict {
    if recent >= REFUSE_AFTER {
        Verdict::Refuse
    } else if recent >= SLOW_AFTER {
        let steps = (recent - SLOW_AFTER + 1) as u64;
        Verdict::Delay(Duration::from_millis((250 * steps).min(2_000)))
    } else {
        Verdict::Allow
    }
}

impl LoginThrottle {
    fn recent(&self, key: &str, now: i64) -> usize {
        self.failures.get(key).map_or(0, |v| {
            v.iter().filter(|t| now - **t < WINDOW_SECONDS).count()
        })
    }

    /// The verdict for an attempt from `ip` for `email` (the worse of the two).
    pub fn check(&self, ip: Option<&str>, email: &str, now: i64) -> Verdict {
        let worst = keys(ip, email)
            .iter()
            .map(|k| self.recent(k, now))
            .max()
            .unwrap_or(0);
        verdict(worst)
    }

    pub fn fail(&self, ip: Option<&str>, email: &str, now: i64) {
        for key in keys(ip, email) {
            let mut times: Vec<i64> = self
                .failures
                .get(&key)
                .unwrap_or_default()
                .into_iter()
                .filter(|t| now - *t < WINDOW_SECONDS)
                .collect();
            // Bounded: more than the refusal count changes nothing.
            if times.len() >= REFUSE_AFTER * 2 {
                times.remove(0);
            }
            times.push(now);
            self.failures.insert(key, times);
        }
    }

    /// A successful sign-in clears the account's failures (not the address's).
    pub fn succeed(&self, email: &str) {
        self.failures
            .invalidate(&format!("email:{}", email.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_then_refuse_then_expire() {
        let t = LoginThrottle::default();
        for i in 0..SLOW_AFTER {
            assert_eq!(
                t.check(Some("10.0.0.1"), "a@x.io", 100),
                Verdict::Allow,
                "{i}"
            );
            t.fail(Some("10.0.0.1"), "a@x.io", 100);
        }
        assert!(matches!(
            t.check(Some("10.0.0.9"), "A@x.io", 100),
            Verdict::Delay(_)
        ));
        // Another account from the same address is slowed too.
        assert!(matches!(
            t.check(Some("10.0.0.1"), "b@x.io", 100),
            Verdict::Delay(_)
        ));
        for _ in SLOW_AFTER..REFUSE_AFTER {
            t.fail(Some("10.0.0.1"), "a@x.io", 100);
        }
        assert_eq!(t.check(None, "a@x.io", 100), Verdict::Refuse);
        assert_eq!(
            t.check(None, "a@x.io", 100 + WINDOW_SECONDS),
            Verdict::Allow
        );
        t.succeed("a@x.io");
        assert_eq!(t.check(Some("10.0.0.2"), "a@x.io", 100), Verdict::Allow);
        assert_eq!(t.check(Some("10.0.0.1"), "c@x.io", 100), Verdict::Refuse);
        assert_eq!(
            verdict(SLOW_AFTER),
            Verdict::Delay(Duration::from_millis(250))
        );
    }
}
