//! In-process rate limiting per project and model: requests and tokens per minute, requests per
//! day, images per minute. Tokens are reserved before forwarding and settled from real usage.

use crate::FastMap;
use keyplane_core::policy::EffectiveLimits;
use keyplane_core::ratelimit::{per_instance, Admission, Bucket};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

struct ModelBuckets {
    limits: EffectiveLimits,
    rpm: Bucket,
    tpm: Bucket,
    rpd: Option<Bucket>,
    ipm: Option<Bucket>,
}

impl ModelBuckets {
    fn new(limits: &EffectiveLimits, now: u64) -> Self {
        Self {
            limits: limits.clone(),
            rpm: Bucket::new(limits.requests_per_minute, MINUTE, now),
            tpm: Bucket::new(limits.tokens_per_minute, MINUTE, now),
            rpd: limits.requests_per_day.map(|l| Bucket::new(l, DAY, now)),
            ipm: limits
                .images_per_minute
                .map(|l| Bucket::new(l, MINUTE, now)),
        }
    }

    /// Follows a changed limit without forgetting what was used.
    fn sync(&mut self, limits: &EffectiveLimits, now: u64) {
        if &self.limits == limits {
            return;
        }
        self.rpm.set_limit(limits.requests_per_minute, MINUTE, now);
        self.tpm.set_limit(limits.tokens_per_minute, MINUTE, now);
        self.rpd = limits.requests_per_day.map(|l| match self.rpd.take() {
            Some(mut b) => {
                b.set_limit(l, DAY, now);
                b
            }
            None => Bucket::new(l, DAY, now),
        });
        self.ipm = limits.images_per_minute.map(|l| match self.ipm.take() {
            Some(mut b) => {
                b.set_limit(l, MINUTE, now);
                b
            }
            None => Bucket::new(l, MINUTE, now),
        });
        self.limits = limits.clone();
    }
}

/// The limits one of `instances` instances enforces alone when the cluster-wide counters are
/// unreachable: every limit divided by the instance count (never 0 unless the limit is 0).
pub fn instance_share(limits: &EffectiveLimits, instances: u32) -> EffectiveLimits {
    EffectiveLimits {
        requests_per_minute: per_instance(limits.requests_per_minute, instances),
        tokens_per_minute: per_instance(limits.tokens_per_minute, instances),
        requests_per_day: limits.requests_per_day.map(|l| per_instance(l, instances)),
        images_per_minute: limits.images_per_minute.map(|l| per_instance(l, instances)),
        ..limits.clone()
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    RequestsPerDay,
    ImagesPerMinute,
}

impl LimitKind {
    /// How OpenAI's messages name the limit, and the error `type`.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            LimitKind::RequestsPerMinute => ("requests per min (RPM)", "requests"),
            LimitKind::TokensPerMinute => ("tokens per min (TPM)", "tokens"),
            LimitKind::RequestsPerDay => ("requests per day (RPD)", "requests"),
            LimitKind::ImagesPerMinute => ("images per min (IPM)", "images"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub requests: Admission,
    pub tokens: Admission,
    /// The limit that refused, with its admission; `None` when admitted.
    pub refused: Option<(LimitKind, Admission, u64)>,
}

/// Buckets by project id, then catalog model name (two levels, so a lookup borrows both).
type BucketMap = FastMap<String, FastMap<String, Arc<Mutex<ModelBuckets>>>>;

#[derive(Default)]
pub struct Limiter {
    buckets: RwLock<BucketMap>,
    epoch: Option<Instant>,
}

impl Limiter {
    pub fn new() -> Self {
        Self {
            buckets: RwLock::new(FastMap::default()),
            epoch: Some(Instant::now()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch
            .map(|e| e.elapsed().as_millis() as u64)
            .unwrap_or(0)
    }

    fn entry(&self, project: &str, limits: &EffectiveLimits, now: u64) -> Arc<Mutex<ModelBuckets>> {
        if let Ok(map) = self.buckets.read() {
            if let Some(e) = map.get(project).and_then(|m| m.get(&limits.model)) {
                return e.clone();
            }
        }
        let fresh = Arc::new(Mutex::new(ModelBuckets::new(limits, now)));
        match self.buckets.write() {
            Ok(mut map) => map
                .entry(project.to_owned())
                .or_default()
                .entry(limits.model.clone())
                .or_insert(fresh)
                .clone(),
            Err(_) => fresh,
        }
    }

    /// Admits one request reserving `tokens` (and `images`), or says which limit refuses it.
    /// Either everything is taken or nothing is.
    pub fn admit(
        &self,
        project: &str,
        limits: &EffectiveLimits,
        tokens: u64,
        images: u64,
    ) -> Decision {
        let now = self.now_ms();
        let entry = self.entry(project, limits, now);
        let mut b = match entry.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        b.sync(limits, now);
        let requests = b.rpm.check(1, now);
        let tok = b.tpm.check(tokens, now);
        let mut refused = None;
        if !requests.allowed {
            refused = Some((LimitKind::RequestsPerMinute, requests, 1));
        } else if !tok.allowed {
            refused = Some((LimitKind::TokensPerMinute, tok, tokens));
        } else if let Some(a) = b
            .rpd
            .as_mut()
            .map(|d| d.check(1, now))
            .filter(|a| !a.allowed)
        {
            refused = Some((LimitKind::RequestsPerDay, a, 1));
        } else if let Some(a) = b
            .ipm
            .as_mut()
            .map(|i| i.check(images, now))
            .filter(|a| !a.allowed && images > 0)
        {
            refused = Some((LimitKind::ImagesPerMinute, a, images));
        }
        if refused.is_some() {
            return Decision {
                requests,
                tokens: tok,
                refused,
            };
        }
        let requests = b.rpm.take(1, now);
        let tok = b.tpm.take(tokens, now);
        if let Some(d) = b.rpd.as_mut() {
            d.take(1, now);
        }
        if images > 0 {
            if let Some(i) = b.ipm.as_mut() {
                i.take(images, now);
            }
        }
        Decision {
            requests,
            tokens: tok,
            refused: None,
        }
    }

    /// Corrects a reservation once the real token count is known (`actual - reserved`).
    pub fn settle(&self, project: &str, limits: &EffectiveLimits, delta_tokens: i64) {
        if delta_tokens == 0 {
            return;
        }
        let now = self.now_ms();
        let entry = self.entry(project, limits, now);
        let mut b = match entry.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        b.tpm.force(delta_tokens, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: u64, tpm: u64) -> EffectiveLimits {
        EffectiveLimits {
            model: "m".into(),
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            requests_per_day: None,
            images_per_minute: None,
            audio_megabytes_per_minute: None,
            batch_1_day_max_input_tokens: None,
        }
    }

    #[test]
    fn refuses_after_the_limit_and_names_it() {
        let l = Limiter::new();
        for _ in 0..3 {
            assert!(l.admit("p", &limits(3, 1000), 10, 0).refused.is_none());
        }
        let d = l.admit("p", &limits(3, 1000), 10, 0);
        assert_eq!(d.refused.map(|r| r.0), Some(LimitKind::RequestsPerMinute));
        // Another project has its own budget.
        assert!(l.admit("q", &limits(3, 1000), 10, 0).refused.is_none());
        let t = l.admit("q", &limits(3, 1000), 5000, 0);
        assert_eq!(t.refused.map(|r| r.0), Some(LimitKind::TokensPerMinute));
    }

    #[test]
    fn an_instance_share_divides_every_limit() {
        let mut l = limits(10, 1000);
        l.requests_per_day = Some(2);
        l.images_per_minute = Some(0);
        let share = instance_share(&l, 3);
        assert_eq!(share.requests_per_minute, 3);
        assert_eq!(share.tokens_per_minute, 333);
        assert_eq!(share.requests_per_day, Some(1));
        assert_eq!(share.images_per_minute, Some(0));
        assert_eq!(share.model, "m");
        assert_eq!(instance_share(&l, 1), l);
    }

    #[test]
    fn a_refused_request_takes_nothing_and_settling_refunds() {
        let l = Limiter::new();
        assert!(l.admit("p", &limits(100, 100), 90, 0).refused.is_none());
        assert!(l.admit("p", &limits(100, 100), 20, 0).refused.is_some());
        l.settle("p", &limits(100, 100), -80);
        let d = l.admit("p", &limits(100, 100), 20, 0);
        assert!(d.refused.is_none());
        assert_eq!(d.requests.remaining, 98);
    }
}
