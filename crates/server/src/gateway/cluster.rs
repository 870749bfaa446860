//! Cluster-wide rate-limit and spend counters in Redis (`KEYPLANE_REDIS_URL`), so a limit of N
//! per minute is N for every Keyplane instance together.
//!
//! Rate limits: the same continuously refilling buckets as [`super::limiter`], one Redis hash
//! per (project, model, bucket) at `{prefix}:rl:{project}:{model}:{bucket}` (the project in a hash
//! tag: one cluster slot per project), checked and taken all-or-nothing by one Lua script call per
//! request on Redis' own clock (`TIME`). Each hash expires once its bucket would be full again,
//! so an idle key disappears exactly when forgetting it changes nothing.
//!
//! Spend: month-to-date nano-USD per project at `{prefix}:spend:{project}:{month_start}`,
//! initialized from the database with SET NX (so instances never double count) and increased by
//! each settled request's cost; it expires after 40 days.
//!
//! Redis down or slow (every call has a short timeout): the request is decided by an in-process
//! limiter enforcing `limit / instances` and the in-memory spend figure; a warning is logged at
//! most every 10 s while degraded, Redis is skipped for a backoff after a failure, and a probe
//! brings the shared counters back without a restart. Redis never causes a 5xx.

use super::limiter::{instance_share, Decision, LimitKind, Limiter};
use super::metering::Meter;
use keyplane_core::policy::EffectiveLimits;
use keyplane_core::ratelimit::Admission;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OnceCell};

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;
/// How long Redis is skipped after a failure before a request (or the background probe) tries
/// it again.
const BACKOFF: Duration = Duration::from_secs(1);
/// At most one "Redis unavailable" warning per this interval while degraded.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Spend keys outlive their month by ~10 days.
const SPEND_TTL_SECS: u64 = 40 * 86_400;
/// Settlements and spend increments sent to Redis at once by the background task.
const OP_BATCH: usize = 256;

/// Takes from every bucket or from none; or (settle) forces a signed cost into one bucket.
/// KEYS: bucket hashes. ARGV[1]: `admit` | `settle`, then per key: limit, period (ms), cost.
/// Returns `{refused index (0: admitted), then per key: limit, remaining, reset ms, retry ms}`.
const BUCKETS_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local admit = ARGV[1] == 'admit'
local n = #KEYS
local level, cap, rate, cost = {}, {}, {}, {}
for i = 1, n do
  local limit = tonumber(ARGV[2 + (i - 1) * 3])
  local period = tonumber(ARGV[3 + (i - 1) * 3])
  cost[i] = tonumber(ARGV[4 + (i - 1) * 3])
  local s = redis.call('HMGET', KEYS[i], 'level', 'cap', 'at')
  local l, c, at = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
  if l == nil or c == nil or at == nil then
    l, c, at = limit, limit, now
  end
  if now > at and c > 0 then
    l = math.min(c, l + (now - at) * c / period)
  end
  if c ~= limit then
    -- An admin changed the limit: keep what was used.
    l = math.max(0, limit - (c - l))
    c = limit
  end
  level[i], cap[i], rate[i] = l, c, c / period
end
local refused = 0
if admit then
  for i = 1, n do
    if cost[i] > level[i] then
      refused = i
      break
    end
  end
  if refused == 0 then
    for i = 1, n do
      level[i] = level[i] - cost[i]
    end
  end
else
  level[1] = math.min(cap[1], level[1] - cost[1])
end
local out = {refused}
for i = 1, n do
  local to_full, retry = 0, 0
  if rate[i] > 0 then
    to_full = math.ceil((cap[i] - level[i]) / rate[i])
    if refused > 0 and cost[i] > level[i] then
      retry = math.ceil((cost[i] - level[i]) / rate[i])
    end
  end
  redis.call('HSET', KEYS[i], 'level', tostring(level[i]), 'cap', tostring(cap[i]), 'at', now)
  local ttl = 1000 + to_full
  if rate[i] <= 0 then
    ttl = 1000 + tonumber(ARGV[3 + (i - 1) * 3])
  end
  redis.call('PEXPIRE', KEYS[i], ttl)
  local remaining = math.floor(math.max(level[i], 0))
  table.insert(out, math.floor(cap[i]))
  table.insert(out, remaining)
  table.insert(out, to_full)
  table.insert(out, retry)
end
return out
"#;

/// Adds to a spend figure only once it was initialized from the database.
const SPEND_ADD_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"#;

/// Sets the database figure unless another instance did first; returns the figure in Redis.
const SPEND_INIT_LUA: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
return redis.call('GET', KEYS[1])
"#;

/// Which path decided a request, so its settlement goes to the same counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// No Redis configured: the in-process limiter, as a single instance.
    Local,
    /// The cluster-wide buckets in Redis.
    Redis,
    /// Redis configured but unreachable: this instance's share of the limits.
    Fallback,
}

/// Work done off the request path by [`ClusterCounters::run`].
#[derive(Debug)]
enum Op {
    Settle {
        project: String,
        model: String,
        tokens_per_minute: u64,
        delta: i64,
    },
    AddSpend {
        project: String,
        month_start: i64,
        nano: i64,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterConfigError(String);

pub struct ClusterCounters {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    instances: u32,
    /// 0 while Redis is up; otherwise when (ms since `epoch`) Redis may be tried again.
    retry_at_ms: AtomicU64,
    epoch: Instant,
    last_warn: Mutex<Option<Instant>>,
    fallbacks: AtomicU64,
    fallback: Limiter,
    buckets: Script,
    spend_add: Script,
    spend_init: Script,
    tx: mpsc::UnboundedSender<Op>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Op>>>,
}

impl ClusterCounters {
    /// Parses the URL; connecting happens in [`Self::connect`] and never fails startup.
    pub fn new(
        url: &SecretString,
        prefix: &str,
        timeout: Duration,
        instances: u32,
    ) -> Result<Self, ClusterConfigError> {
        // The URL may carry a password: the error names neither.
        let client = redis::Client::open(url.expose_secret()).map_err(|_| {
            ClusterConfigError(
                "KEYPLANE_REDIS_URL is not a valid Redis URL (expected redis://[user:password@]host[:port][/db])"
                    .into(),
            )
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Self {
            client,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            timeout,
            instances: instances.max(1),
            retry_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            last_warn: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
            fallback: Limiter::new(),
            buckets: Script::new(BUCKETS_LUA),
            spend_add: Script::new(SPEND_ADD_LUA),
            spend_init: Script::new(SPEND_INIT_LUA),
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    /// Opens the managed connection (it reconnects by itself afterwards). Without Redis at
    /// startup the instance serves on its share of the limits until a later probe connects.
    pub async fn connect(&self) -> bool {
        if self.conn.initialized() {
            return true;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout.max(Duration::from_millis(250)))
            .set_response_timeout(self.timeout.max(Duration::from_millis(250)))
            .set_number_of_retries(2)
            .set_max_delay(500);
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        match attempt {
            Ok(Ok(conn)) => {
                let _ = self.conn.set(conn);
                self.mark_up();
                true
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                false
            }
            Err(_) => {
                self.mark_down("connection timed out");
                false
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether Redis is considered reachable now.
    pub fn is_up(&self) -> bool {
        self.conn.initialized() && self.retry_at_ms.load(Ordering::Acquire) == 0
    }

    pub fn fallback_total(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The connection if Redis may be used now: up, or down with the backoff over and this
    /// caller the one that probes (the others keep falling back meanwhile).
    fn usable(&self) -> Option<ConnectionManager> {
        let conn = self.conn.get()?;
        let retry_at = self.retry_at_ms.load(Ordering::Acquire);
        if retry_at == 0 {
            return Some(conn.clone());
        }
        let now = self.now_ms();
        if now < retry_at {
            return None;
        }
        let next = now + BACKOFF.as_millis() as u64;
        self.retry_at_ms
            .compare_exchange(retry_at, next, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| conn.clone())
    }

    fn mark_up(&self) {
        // A load first: the hot path (Redis up) never writes the shared cache line.
        if self.retry_at_ms.load(Ordering::Acquire) != 0
            && self.retry_at_ms.swap(0, Ordering::AcqRel) != 0
        {
            tracing::info!("Redis is reachable again: rate limits and spend are cluster-wide");
        }
    }

    /// `error` is the client's message (it never contains the URL).
    fn mark_down(&self, error: &str) {
        let next = (self.now_ms() + BACKOFF.as_millis() as u64).max(1);
        let was_up = self.retry_at_ms.swap(next, Ordering::AcqRel) == 0;
        let warn = match self.last_warn.lock() {
            Ok(mut last) => {
                let due = was_up || last.is_none_or(|at| at.elapsed() >= WARN_EVERY);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => was_up,
        };
        if warn {
            tracing::warn!(
                error,
                instances = self.instances,
                "Redis unavailable: rate limits fall back to this instance's share (limit / instances) and spend to its in-memory figure"
            );
        }
    }

    fn count_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one Redis call within the timeout; a failure marks Redis down.
    async fn call<T, F>(&self, fut: F) -> Option<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => {
                self.mark_up();
                Some(v)
            }
            Ok(Err(e)) => {
                self.mark_down(&e.to_string());
                None
            }
            Err(_) => {
                self.mark_down("timed out");
                None
            }
        }
    }

    fn bucket_key(&self, project: &str, model: &str, bucket: &str) -> String {
        format!("{}:rl:{{{project}}}:{model}:{bucket}", self.prefix)
    }

    fn spend_key(&self, project: &str, month_start: i64) -> String {
        format!("{}:spend:{{{project}}}:{month_start}", self.prefix)
    }

    /// Admits one request on the cluster-wide buckets, or on this instance's share of the limits
    /// when Redis cannot answer. Same semantics as [`Limiter::admit`].
    pub async fn admit(
        &self,
        project: &str,
        limits: &EffectiveLimits,
        tokens: u64,
        images: u64,
    ) -> (Decision, Via) {
        if let Some(mut conn) = self.usable() {
            let buckets = plan(limits, tokens, images);
            let mut inv = self.buckets.prepare_invoke();
            inv.arg("admit");
            for b in &buckets {
                inv.key(self.bucket_key(project, &limits.model, b.name));
                inv.arg(b.limit).arg(b.period_ms).arg(b.cost);
            }
            let reply: Option<Vec<i64>> = self.call(inv.invoke_async(&mut conn)).await;
            if let Some(d) = reply.and_then(|r| decision(&buckets, &r)) {
                return (d, Via::Redis);
            }
        }
        self.count_fallback();
        let share = instance_share(limits, self.instances);
        (
            self.fallback.admit(project, &share, tokens, images),
            Via::Fallback,
        )
    }

    /// Corrects a reservation (`actual - reserved` tokens) on the counters that admitted it.
    pub fn settle(&self, via: Via, project: &str, limits: &EffectiveLimits, delta: i64) {
        if delta == 0 {
            return;
        }
        match via {
            Via::Redis => {
                let _ = self.tx.send(Op::Settle {
                    project: project.to_owned(),
                    model: limits.model.clone(),
                    tokens_per_minute: limits.tokens_per_minute,
                    delta,
                });
            }
            _ => self
                .fallback
                .settle(project, &instance_share(limits, self.instances), delta),
        }
    }

    /// Adds a settled request's cost to the project's shared month-to-date spend.
    pub fn add_spend(&self, project: &str, month_start: i64, nano: i64) {
        if nano != 0 {
            let _ = self.tx.send(Op::AddSpend {
                project: project.to_owned(),
                month_start,
                nano,
            });
        }
    }

    /// The project's month-to-date spend from Redis, initialized from the database when the key
    /// is missing; `None` when Redis cannot answer (the caller uses the in-memory figure).
    pub async fn month_spend(&self, project: &str, month_start: i64, meter: &Meter) -> Option<i64> {
        let Some(mut conn) = self.usable() else {
            self.count_fallback();
            return None;
        };
        let key = self.spend_key(project, month_start);
        let current: Option<Option<i64>> = self
            .call(redis::cmd("GET").arg(&key).query_async(&mut conn))
            .await;
        let figure = match current {
            Some(Some(v)) => Some(v),
            Some(None) => match meter.stored_spend(project, month_start).await {
                Some(db) => {
                    let mut inv = self.spend_init.prepare_invoke();
                    inv.key(&key).arg(db).arg(SPEND_TTL_SECS);
                    self.call(inv.invoke_async::<i64>(&mut conn)).await
                }
                None => None,
            },
            None => None,
        };
        if figure.is_none() {
            self.count_fallback();
        }
        figure
    }

    /// Sends settlements and spend increments to Redis, and probes a down Redis every
    /// [`BACKOFF`], until `stop` fires (then drains what is queued, briefly).
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let mut tick = tokio::time::interval(BACKOFF);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(OP_BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, OP_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.apply(std::mem::take(&mut batch)).await;
                }
                _ = tick.tick() => self.probe().await,
                _ = stop.changed() => break,
            }
        }
        while let Ok(op) = rx.try_recv() {
            batch.push(op);
        }
        if !batch.is_empty() {
            self.apply(batch).await;
        }
    }

    async fn probe(&self) {
        if !self.conn.initialized() {
            self.connect().await;
            return;
        }
        if self.is_up() {
            return;
        }
        if let Some(mut conn) = self.usable() {
            let _: Option<String> = self.call(redis::cmd("PING").query_async(&mut conn)).await;
        }
    }

    /// One batch of queued work, sent concurrently on the multiplexed connection. Lost when
    /// Redis is down: the buckets refill and the spend key is re-initialized from the database
    /// once it expires.
    async fn apply(&self, ops: Vec<Op>) {
        let Some(conn) = self.usable() else {
            return;
        };
        let calls = ops.into_iter().map(|op| {
            let mut conn = conn.clone();
            async move {
                match op {
                    Op::Settle {
                        project,
                        model,
                        tokens_per_minute,
                        delta,
                    } => {
                        let mut inv = self.buckets.prepare_invoke();
                        inv.arg("settle")
                            .key(self.bucket_key(&project, &model, "tpm"))
                            .arg(tokens_per_minute)
                            .arg(MINUTE_MS)
                            .arg(delta);
                        let _: Option<redis::Value> = self.call(inv.invoke_async(&mut conn)).await;
                    }
                    Op::AddSpend {
                        project,
                        month_start,
                        nano,
                    } => {
                        let mut inv = self.spend_add.prepare_invoke();
                        inv.key(self.spend_key(&project, month_start)).arg(nano);
                        let _: Option<redis::Value> = self.call(inv.invoke_async(&mut conn)).await;
                    }
                }
            }
        });
        futures_util::future::join_all(calls).await;
    }
}

/// One bucket of a request, in the order limits are checked (the first that refuses is named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlannedBucket {
    kind: LimitKind,
    name: &'static str,
    limit: u64,
    period_ms: u64,
    cost: u64,
}

/// The buckets a request takes from: requests and tokens per minute always, requests per day
/// when limited, images per minute only for image requests — as the in-process limiter checks.
fn plan(limits: &EffectiveLimits, tokens: u64, images: u64) -> Vec<PlannedBucket> {
    let mut out = vec![
        PlannedBucket {
            kind: LimitKind::RequestsPerMinute,
            name: "rpm",
            limit: limits.requests_per_minute,
            period_ms: MINUTE_MS,
            cost: 1,
        },
        PlannedBucket {
            kind: LimitKind::TokensPerMinute,
            name: "tpm",
            limit: limits.tokens_per_minute,
            period_ms: MINUTE_MS,
            cost: tokens,
        },
    ];
    if let Some(l) = limits.requests_per_day {
        out.push(PlannedBucket {
            kind: LimitKind::RequestsPerDay,
            name: "rpd",
            limit: l,
            period_ms: DAY_MS,
            cost: 1,
        });
    }
    if let (Some(l), true) = (limits.images_per_minute, images > 0) {
        out.push(PlannedBucket {
            kind: LimitKind::ImagesPerMinute,
            name: "ipm",
            limit: l,
            period_ms: MINUTE_MS,
            cost: images,
        });
    }
    out
}

/// The script's reply as a [`Decision`]; `None` if it is malformed.
fn decision(buckets: &[PlannedBucket], reply: &[i64]) -> Option<Decision> {
    if reply.len() != 1 + 4 * buckets.len() || buckets.len() < 2 {
        return None;
    }
    let refused_at = usize::try_from(reply[0]).ok()?;
    let admission = |i: usize| -> Admission {
        let r = &reply[1 + 4 * i..5 + 4 * i];
        let non_neg = |v: i64| u64::try_from(v).unwrap_or(0);
        Admission {
            allowed: refused_at == 0,
            limit: non_neg(r[0]),
            remaining: non_neg(r[1]),
            reset: Duration::from_millis(non_neg(r[2])),
            retry_after: Duration::from_millis(non_neg(r[3])),
        }
    };
    let refused = match refused_at {
        0 => None,
        i if i <= buckets.len() => {
            let b = buckets[i - 1];
            Some((b.kind, admission(i - 1), b.cost))
        }
        _ => return None,
    };
    Some(Decision {
        requests: admission(0),
        tokens: admission(1),
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> EffectiveLimits {
        EffectiveLimits {
            model: "gpt-4o".into(),
            requests_per_minute: 10,
            tokens_per_minute: 1000,
            requests_per_day: Some(100),
            images_per_minute: Some(5),
            audio_megabytes_per_minute: None,
            batch_1_day_max_input_tokens: None,
        }
    }

    #[test]
    fn a_request_takes_the_buckets_the_in_process_limiter_checks() {
        let names = |b: Vec<PlannedBucket>| b.iter().map(|b| b.name).collect::<Vec<_>>();
        assert_eq!(names(plan(&limits(), 50, 0)), ["rpm", "tpm", "rpd"]);
        assert_eq!(names(plan(&limits(), 50, 2)), ["rpm", "tpm", "rpd", "ipm"]);
        let mut l = limits();
        l.requests_per_day = None;
        assert_eq!(names(plan(&l, 50, 0)), ["rpm", "tpm"]);
        let p = plan(&limits(), 50, 2);
        assert_eq!((p[1].cost, p[3].cost, p[2].period_ms), (50, 2, DAY_MS));
    }

    #[test]
    fn the_script_reply_becomes_a_decision_naming_the_refusing_limit() {
        let buckets = plan(&limits(), 50, 0);
        let admitted = decision(
            &buckets,
            &[0, 10, 9, 6000, 0, 1000, 950, 3000, 0, 100, 99, 864_000, 0],
        )
        .unwrap();
        assert!(admitted.refused.is_none());
        assert!(admitted.requests.allowed);
        assert_eq!(
            (admitted.requests.limit, admitted.requests.remaining),
            (10, 9)
        );
        assert_eq!(admitted.tokens.reset, Duration::from_secs(3));

        let refused = decision(
            &buckets,
            &[
                3, 10, 9, 6000, 0, 1000, 950, 3000, 0, 100, 0, 86_400_000, 864_000,
            ],
        )
        .unwrap();
        let (kind, adm, cost) = refused.refused.unwrap();
        assert_eq!(
            (kind, adm.limit, adm.remaining, cost),
            (LimitKind::RequestsPerDay, 100, 0, 1)
        );
        assert_eq!(adm.retry_after, Duration::from_secs(864));
        assert!(!refused.requests.allowed);
        // Malformed replies are not trusted.
        assert!(decision(&buckets, &[0, 1, 2]).is_none());
        assert!(decision(
            &buckets,
            &[9, 10, 9, 6000, 0, 1000, 950, 3000, 0, 100, 0, 1, 1]
        )
        .is_none());
    }

    #[test]
    fn keys_are_namespaced_with_the_project_as_hash_tag() {
        let c = ClusterCounters::new(
            &SecretString::from("redis://:hunter2@127.0.0.1:6379".to_owned()),
            "kp-test",
            Duration::from_millis(50),
            3,
        )
        .unwrap();
        assert_eq!(
            c.bucket_key("proj_1", "gpt-4o", "rpm"),
            "kp-test:rl:{proj_1}:gpt-4o:rpm"
        );
        assert_eq!(
            c.spend_key("proj_1", 1_764_547_200),
            "kp-test:spend:{proj_1}:1764547200"
        );
        assert!(!c.is_up(), "not connected yet");
        let bad = ClusterCounters::new(
            &SecretString::from("http://:hunter2@host".to_owned()),
            "kp",
            Duration::from_millis(50),
            1,
        )
        .err()
        .unwrap();
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
    }

    /// Against the Redis of `KEYPLANE_TEST_REDIS_URL` (default 127.0.0.1:6379, which CI starts),
    /// in a key namespace of its own.
    #[tokio::test]
    async fn the_script_takes_all_or_nothing_and_settling_refunds() {
        let url = std::env::var("KEYPLANE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
        let prefix = format!("kptest-unit-{}", std::process::id());
        let c = Arc::new(
            ClusterCounters::new(
                &SecretString::from(url),
                &prefix,
                // Generous: a loaded CI machine must not turn a slow answer into a fallback.
                Duration::from_secs(2),
                2,
            )
            .unwrap(),
        );
        assert!(c.connect().await, "Redis must be reachable for this test");
        let mut l = limits();
        l.requests_per_minute = 100;
        l.tokens_per_minute = 100;
        let (d, via) = c.admit("p", &l, 90, 0).await;
        assert_eq!(via, Via::Redis);
        assert!(d.refused.is_none());
        assert_eq!((d.tokens.limit, d.tokens.remaining), (100, 10));
        // Tokens refuse: nothing is taken, not even the request.
        let (d, _) = c.admit("p", &l, 20, 0).await;
        let (kind, adm, cost) = d.refused.unwrap();
        assert_eq!(
            (kind, adm.remaining, cost),
            (LimitKind::TokensPerMinute, 10, 20)
        );
        assert!(adm.retry_after > Duration::ZERO);
        // The request really used 10 tokens: 80 go back.
        c.settle(Via::Redis, "p", &l, -80);
        let ops: Vec<Op> = {
            let mut rx = c.rx.lock().unwrap().take().unwrap();
            let mut v = Vec::new();
            while let Ok(op) = rx.try_recv() {
                v.push(op);
            }
            v
        };
        assert_eq!(ops.len(), 1);
        c.apply(ops).await;
        let (d, _) = c.admit("p", &l, 20, 0).await;
        assert!(d.refused.is_none(), "{d:?}");
        assert_eq!(d.requests.remaining, 98);
        // 70, plus what refilled meanwhile (100 per minute: under 2 per second of test time).
        assert!((69..=75).contains(&d.tokens.remaining), "{d:?}");
        // Images per minute only count for image requests.
        let (d, _) = c.admit("q", &limits(), 0, 6).await;
        assert_eq!(d.refused.map(|r| r.0), Some(LimitKind::ImagesPerMinute));
        assert!(c.admit("q", &limits(), 0, 5).await.0.refused.is_none());
        assert_eq!(c.fallback_total(), 0);

        // Clean up this test's keys only.
        let mut conn = c.conn.get().unwrap().clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!keys.is_empty());
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
