//! Rate limits of the API: token buckets in their exact GCRA form, kept in memory per process
//! (the default; they reset on restart), or in Redis so that every `serve` sharing it spends
//! the same budgets ([`RateLimiter::redis`], with the `redis` feature).
//!
//! - **global**: requests per second over every client;
//! - **per key**: requests per second of one API key (of one client IP when auth is off);
//! - **unauthenticated** (auth required): requests without a valid key — public routes, a
//!   missing, malformed or unknown key — have budgets of their own, the global rate over all
//!   of them and the per-key rate per client address, so that a flood of them never spends
//!   the budget of valid keys;
//! - **workflow runs**: runs started per minute by one key, in a tier chosen by the workflow's
//!   number of `agent` nodes ([`RunTier`]), because an agent-heavy run costs far more (LLM
//!   calls) than a run of transforms.
//!
//! A bucket holds at most one period's budget (a burst of `n` is allowed, then `n` per period).
//! A refused request gets 429 `rate_limited` with `details.limit` (which limit) and
//! `details.retry_after_s`, and a `Retry-After` header in whole seconds (at least 1).
//!
//! # Shared budgets
//!
//! With Redis each bucket is one key holding its theoretical arrival time, updated by one Lua
//! script (`rate_limit/gcra.lua`) on Redis server time, so processes with skewed clocks agree
//! and a refused request changes nothing. When Redis does not answer within half a second,
//! the check fails open to this process's own buckets (the same limits, per process) for a
//! second before Redis is asked again; the fallback is logged when Redis goes away and when it
//! is back, and every check decided locally is counted ([`RateLimiter::local_fallbacks`],
//! `tradeloom_rate_limit_local_fallbacks_total` on `/metrics`). The limits protect the API
//! from floods, they are not accounting: an API that refused every request while Redis blinked
//! would be worse than one whose budget is briefly per process, and the local buckets still
//! hold a flood to one process's share.

#[cfg(feature = "redis")]
mod redis_buckets;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Buckets tracked per map before idle (full) ones are dropped.
const MAX_TRACKED: usize = 10_000;

/// The configured limits; 0 means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per second over all clients.
    pub global_per_s: u32,
    /// Requests per second of one API key (one client IP when auth is off).
    pub per_key_per_s: u32,
    /// Workflow runs per minute per key for workflows without agent nodes.
    pub runs_light_per_min: u32,
    /// … with 1 to 3 agent nodes.
    pub runs_standard_per_min: u32,
    /// … with 4 or more agent nodes.
    pub runs_heavy_per_min: u32,
}

impl Default for RateLimits {
    /// The defaults of `tradeloom serve`: 500 requests/s in all, 50/s per key; 60 light, 20
    /// standard and 5 heavy workflow runs per minute per key.
    fn default() -> Self {
        RateLimits {
            global_per_s: 500,
            per_key_per_s: 50,
            runs_light_per_min: 60,
            runs_standard_per_min: 20,
            runs_heavy_per_min: 5,
        }
    }
}

impl RateLimits {
    /// No limit at all (what [`AppState::new`] starts with).
    pub const fn unlimited() -> Self {
        RateLimits {
            global_per_s: 0,
            per_key_per_s: 0,
            runs_light_per_min: 0,
            runs_standard_per_min: 0,
            runs_heavy_per_min: 0,
        }
    }

    /// Runs per minute of `tier` (0 = unlimited).
    pub fn runs_per_min(&self, tier: RunTier) -> u32 {
        match tier {
            RunTier::Light => self.runs_light_per_min,
            RunTier::Standard => self.runs_standard_per_min,
            RunTier::Heavy => self.runs_heavy_per_min,
        }
    }
}

/// The cost class of a workflow run, by its number of `agent` nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunTier {
    /// No agent node.
    Light,
    /// 1 to 3 agent nodes.
    Standard,
    /// 4 or more agent nodes.
    Heavy,
}

impl RunTier {
    pub fn for_agent_nodes(agent_nodes: usize) -> Self {
        match agent_nodes {
            0 => RunTier::Light,
            1..=3 => RunTier::Standard,
            _ => RunTier::Heavy,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            RunTier::Light => "light",
            RunTier::Standard => "standard",
            RunTier::Heavy => "heavy",
        }
    }
}

impl fmt::Display for RunTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `n` requests per `period`, as a GCRA (the token bucket in its exact, integer form): one
/// request per `interval`, and bursts of up to `n` (`tolerance` = `interval` × (n − 1)).
#[derive(Clone, Copy, Debug)]
struct Rate {
    interval: Duration,
    tolerance: Duration,
}

impl Rate {
    fn new(n: u32, period: Duration) -> Option<Self> {
        (n > 0).then(|| {
            let interval = period / n;
            Rate {
                interval,
                tolerance: interval * (n - 1),
            }
        })
    }
}

/// One bucket: the theoretical arrival time of the next request. A bucket at or before now is
/// full.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tat: Instant,
}

impl Bucket {
    fn full(now: Instant) -> Self {
        Bucket { tat: now }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        let tat = self.tat.max(now);
        let ahead = tat.duration_since(now);
        if ahead > rate.tolerance {
            return Err(ahead - rate.tolerance);
        }
        self.tat = tat + rate.interval;
        Ok(())
    }

    fn is_full(self, now: Instant) -> bool {
        self.tat <= now
    }
}

/// Which bucket a request spends.
#[derive(Clone, Copy, Debug)]
enum BucketId<'a> {
    Global,
    /// The global budget of unauthenticated requests (auth required).
    Unauthenticated,
    /// One client: `key:<id>`, `ip:<address>` (auth off) or `anon:<address>` (no valid key).
    Client(&'a str),
    /// The workflow runs of one caller (`key:<id>` or `anonymous:<name>`) in one tier.
    Runs(&'a str, RunTier),
}

/// The buckets of one process.
#[derive(Debug, Default)]
struct LocalBuckets {
    global: Mutex<Option<Bucket>>,
    unauthenticated: Mutex<Option<Bucket>>,
    clients: Mutex<HashMap<String, Bucket>>,
    runs: Mutex<HashMap<(String, RunTier), Bucket>>,
}

impl LocalBuckets {
    fn take(&self, id: BucketId<'_>, rate: Rate, now: Instant) -> Result<(), Duration> {
        let single = |bucket: &Mutex<Option<Bucket>>| {
            lock(bucket)
                .get_or_insert_with(|| Bucket::full(now))
                .take(rate, now)
        };
        match id {
            BucketId::Global => single(&self.global),
            BucketId::Unauthenticated => single(&self.unauthenticated),
            BucketId::Client(client) => take_keyed(&self.clients, &client.to_string(), rate, now),
            BucketId::Runs(who, tier) => {
                take_keyed(&self.runs, &(who.to_string(), tier), rate, now)
            }
        }
    }
}

/// The token buckets of one server: this process's own, or shared through Redis. Cheap when a
/// limit is 0 (nothing is tracked).
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    /// The buckets of this process; with Redis, what a check falls back on when Redis does not
    /// answer.
    local: LocalBuckets,
    #[cfg(feature = "redis")]
    shared: Option<redis_buckets::RedisBuckets>,
}

/// A poisoned lock only means another request panicked mid-update of a token count; the count
/// is still a number, so keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn take_keyed<K: Eq + std::hash::Hash + Clone>(
    map: &Mutex<HashMap<K, Bucket>>,
    key: &K,
    rate: Rate,
    now: Instant,
) -> Result<(), Duration> {
    let mut map = lock(map);
    if !map.contains_key(key) && map.len() >= MAX_TRACKED {
        map.retain(|_, b| !b.is_full(now));
    }
    map.entry(key.clone())
        .or_insert_with(|| Bucket::full(now))
        .take(rate, now)
}

/// Whole seconds to wait, at least 1.
fn retry_after_s(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn limited(limit: String, what: String, wait: Duration, extra: Value) -> ApiError {
    let retry = retry_after_s(wait);
    let mut details = json!({"limit": limit, "retry_after_s": retry});
    if let (Some(d), Value::Object(extra)) = (details.as_object_mut(), extra) {
        d.extend(extra);
    }
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("rate limit exceeded: {what}; retry after {retry} s"),
    )
    .with_details(details)
}

impl RateLimiter {
    /// Buckets in this process's memory.
    pub fn new(limits: RateLimits) -> Self {
        RateLimiter {
            limits,
            local: LocalBuckets::default(),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// Buckets in the Redis at `url` (`redis://host:port[/db]`) under keys starting with
    /// `prefix` (e.g. `tradeloom:`; the buckets are `<prefix>rate:…`): every limiter on the same
    /// Redis and prefix spends the same budgets. Fails if Redis cannot be reached now. Later,
    /// a check Redis does not answer within 500 ms fails open to this process's own buckets,
    /// and so do the checks of the next second ([`RateLimiter::local_fallbacks`] counts them).
    #[cfg(feature = "redis")]
    pub async fn redis(
        limits: RateLimits,
        url: &str,
        prefix: &str,
    ) -> Result<Self, SharedLimitsError> {
        let shared = redis_buckets::RedisBuckets::connect(url, prefix).await?;
        Ok(RateLimiter {
            shared: Some(shared),
            ..RateLimiter::new(limits)
        })
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Whether the budgets are shared through Redis.
    pub fn is_shared(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.shared.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// Checks decided on this process's own buckets because Redis did not answer (0 without
    /// Redis).
    pub fn local_fallbacks(&self) -> u64 {
        #[cfg(feature = "redis")]
        return self.shared.as_ref().map_or(0, |s| s.fallbacks());
        #[cfg(not(feature = "redis"))]
        0
    }

    /// Spends a token of bucket `id`, or says how long until one is there.
    async fn take(&self, id: BucketId<'_>, rate: Rate, now: Instant) -> Result<(), Duration> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared
            && let Some(verdict) = shared.take(id, rate).await
        {
            return verdict;
        }
        self.local.take(id, rate, now)
    }

    /// One request against the global limit.
    pub async fn check_global(&self) -> Result<(), ApiError> {
        self.check_global_at(Instant::now()).await
    }

    /// One request without a valid key from client address `address` (auth required): against
    /// the unauthenticated budgets (the global rate over all such requests, the per-key rate
    /// per address), never against those of keys. A refusal has `details.limit`
    /// `unauthenticated` or `per_address`.
    pub async fn check_unauthenticated(&self, address: &str) -> Result<(), ApiError> {
        self.check_unauthenticated_at(address, Instant::now()).await
    }

    async fn check_unauthenticated_at(&self, address: &str, now: Instant) -> Result<(), ApiError> {
        // Per address first: one noisy client then does not spend the shared budget too.
        if let Some(rate) = Rate::new(self.limits.per_key_per_s, Duration::from_secs(1)) {
            let client = format!("anon:{address}");
            self.take(BucketId::Client(&client), rate, now)
                .await
                .map_err(|wait| {
                    limited(
                        "per_address".into(),
                        format!(
                            "{} requests/s per client address without a valid API key",
                            self.limits.per_key_per_s
                        ),
                        wait,
                        json!({"limit_per_s": self.limits.per_key_per_s}),
                    )
                })?;
        }
        let Some(rate) = Rate::new(self.limits.global_per_s, Duration::from_secs(1)) else {
            return Ok(());
        };
        self.take(BucketId::Unauthenticated, rate, now)
            .await
            .map_err(|wait| {
                limited(
                    "unauthenticated".into(),
                    format!(
                        "the server takes {} requests/s without a valid API key in all",
                        self.limits.global_per_s
                    ),
                    wait,
                    json!({"limit_per_s": self.limits.global_per_s}),
                )
            })
    }

    /// One request of `client` (`key:<id>` or `ip:<address>`) against the per-key limit.
    pub async fn check_client(&self, client: &str) -> Result<(), ApiError> {
        self.check_client_at(client, Instant::now()).await
    }

    /// One workflow run started by `principal` for a workflow with `agent_nodes` agent nodes,
    /// against that tier's runs/minute budget of the caller's key. Call it in the run-creation
    /// handler before creating the run; a refusal is 429 `rate_limited` with `details.limit` =
    /// `runs_light|runs_standard|runs_heavy`, `details.tier` and `details.agent_nodes`.
    /// Without auth every caller is the same anonymous principal and shares one budget.
    pub async fn check_workflow_run(
        &self,
        principal: &Principal,
        agent_nodes: usize,
    ) -> Result<(), ApiError> {
        self.check_workflow_run_at(principal, agent_nodes, Instant::now())
            .await
    }

    async fn check_global_at(&self, now: Instant) -> Result<(), ApiError> {
        let Some(rate) = Rate::new(self.limits.global_per_s, Duration::from_secs(1)) else {
            return Ok(());
        };
        self.take(BucketId::Global, rate, now)
            .await
            .map_err(|wait| {
                limited(
                    "global".into(),
                    format!(
                        "the server takes {} requests/s in all",
                        self.limits.global_per_s
                    ),
                    wait,
                    json!({"limit_per_s": self.limits.global_per_s}),
                )
            })
    }

    async fn check_client_at(&self, client: &str, now: Instant) -> Result<(), ApiError> {
        let Some(rate) = Rate::new(self.limits.per_key_per_s, Duration::from_secs(1)) else {
            return Ok(());
        };
        self.take(BucketId::Client(client), rate, now)
            .await
            .map_err(|wait| {
                limited(
                    "per_key".into(),
                    format!(
                        "{} requests/s per API key (per client address without auth)",
                        self.limits.per_key_per_s
                    ),
                    wait,
                    json!({"limit_per_s": self.limits.per_key_per_s}),
                )
            })
    }

    async fn check_workflow_run_at(
        &self,
        principal: &Principal,
        agent_nodes: usize,
        now: Instant,
    ) -> Result<(), ApiError> {
        let tier = RunTier::for_agent_nodes(agent_nodes);
        let per_min = self.limits.runs_per_min(tier);
        let Some(rate) = Rate::new(per_min, Duration::from_secs(60)) else {
            return Ok(());
        };
        let who = match &principal.key_id {
            Some(id) => format!("key:{id}"),
            None => format!("anonymous:{}", principal.name),
        };
        self.take(BucketId::Runs(&who, tier), rate, now)
            .await
            .map_err(|wait| {
                limited(
                    format!("runs_{tier}"),
                    format!(
                        "{per_min} {tier} workflow runs/minute per API key \
                         ({agent_nodes} agent node(s) make a {tier} run)"
                    ),
                    wait,
                    json!({"tier": tier.as_str(), "agent_nodes": agent_nodes, "limit_per_min": per_min}),
                )
            })
    }
}

/// Why [`RateLimiter::redis`] could not start.
#[cfg(feature = "redis")]
#[derive(Debug, thiserror::Error)]
pub enum SharedLimitsError {
    #[error("invalid Redis URL `{url}` for the shared rate limits: {source}")]
    Url {
        /// The URL with any password redacted.
        url: String,
        #[source]
        source: ::redis::RedisError,
    },
    #[error("cannot reach Redis at {url} for the shared rate limits")]
    Connect {
        /// The URL with any password redacted.
        url: String,
        #[source]
        source: ::redis::RedisError,
    },
}

impl AppState {
    /// Replaces the rate limits with in-memory buckets of `limits` (the default of
    /// [`AppState::new`] is [`RateLimits::unlimited`]).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limiter = std::sync::Arc::new(RateLimiter::new(limits));
        self
    }

    /// Replaces the limiter, e.g. with one of [`RateLimiter::redis`] shared by every server on
    /// the same Redis.
    pub fn with_rate_limiter(mut self, limiter: std::sync::Arc<RateLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// The server's limiter, for handlers with limits of their own (e.g.
    /// [`RateLimiter::check_workflow_run`]).
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

#[cfg(test)]
mod tests {
    use tradeloom_store::Role;

    use super::*;

    fn key(id: &str) -> Principal {
        Principal {
            key_id: Some(id.into()),
            name: id.into(),
            role: Role::Operator,
            max_concurrent_runs: None,
        }
    }

    fn refusal(e: ApiError) -> (String, u64) {
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.code, "rate_limited");
        (
            e.details["limit"].as_str().unwrap().to_string(),
            e.details["retry_after_s"].as_u64().unwrap(),
        )
    }

    #[test]
    fn tiers_by_agent_nodes() {
        let tiers: Vec<_> = [0, 1, 3, 4, 40]
            .into_iter()
            .map(RunTier::for_agent_nodes)
            .collect();
        assert_eq!(
            tiers,
            [
                RunTier::Light,
                RunTier::Standard,
                RunTier::Standard,
                RunTier::Heavy,
                RunTier::Heavy
            ]
        );
    }

    #[tokio::test]
    async fn workflow_runs_are_limited_per_key_and_tier() {
        let limiter = RateLimiter::new(RateLimits {
            runs_light_per_min: 3,
            runs_standard_per_min: 2,
            runs_heavy_per_min: 1,
            ..RateLimits::unlimited()
        });
        let t0 = Instant::now();
        let (a, b) = (key("a"), key("b"));
        // Heavy: one per minute for key a; the second is refused with the time to wait.
        limiter.check_workflow_run_at(&a, 5, t0).await.unwrap();
        let e = limiter.check_workflow_run_at(&a, 4, t0).await.unwrap_err();
        assert_eq!(e.details["tier"], "heavy");
        assert_eq!(e.details["agent_nodes"], 4);
        assert_eq!(refusal(e), ("runs_heavy".to_string(), 60));
        // Other tiers and other keys have budgets of their own.
        limiter.check_workflow_run_at(&b, 4, t0).await.unwrap();
        for _ in 0..2 {
            limiter.check_workflow_run_at(&a, 2, t0).await.unwrap();
        }
        let e = limiter.check_workflow_run_at(&a, 1, t0).await.unwrap_err();
        assert_eq!(refusal(e), ("runs_standard".to_string(), 30));
        for _ in 0..3 {
            limiter.check_workflow_run_at(&a, 0, t0).await.unwrap();
        }
        let e = limiter.check_workflow_run_at(&a, 0, t0).await.unwrap_err();
        assert_eq!(refusal(e), ("runs_light".to_string(), 20));
        // Tokens come back with time: 20 s later one light run, 60 s later one heavy run.
        let later = t0 + Duration::from_secs(20);
        limiter.check_workflow_run_at(&a, 0, later).await.unwrap();
        assert!(limiter.check_workflow_run_at(&a, 0, later).await.is_err());
        let e = limiter
            .check_workflow_run_at(&a, 9, t0 + Duration::from_secs(59))
            .await
            .unwrap_err();
        assert_eq!(refusal(e).1, 1, "under a second left is still 1 s");
        limiter
            .check_workflow_run_at(&a, 9, t0 + Duration::from_secs(60))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn anonymous_callers_share_a_budget_and_zero_is_unlimited() {
        let limiter = RateLimiter::new(RateLimits {
            runs_heavy_per_min: 1,
            ..RateLimits::unlimited()
        });
        let t0 = Instant::now();
        let anon = Principal::anonymous();
        limiter.check_workflow_run_at(&anon, 4, t0).await.unwrap();
        assert!(limiter.check_workflow_run_at(&anon, 4, t0).await.is_err());
        for _ in 0..1000 {
            limiter.check_workflow_run_at(&anon, 0, t0).await.unwrap();
            limiter.check_global_at(t0).await.unwrap();
            limiter.check_client_at("ip:127.0.0.1", t0).await.unwrap();
        }
    }

    #[tokio::test]
    async fn global_and_per_key_buckets_refill_per_second() {
        let limiter = RateLimiter::new(RateLimits {
            global_per_s: 5,
            per_key_per_s: 2,
            ..RateLimits::unlimited()
        });
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter.check_client_at("key:a", t0).await.unwrap();
        }
        let e = limiter.check_client_at("key:a", t0).await.unwrap_err();
        assert_eq!(e.details["limit_per_s"], 2);
        assert_eq!(refusal(e), ("per_key".to_string(), 1));
        limiter.check_client_at("key:b", t0).await.unwrap();
        limiter
            .check_client_at("key:a", t0 + Duration::from_millis(500))
            .await
            .unwrap();

        for _ in 0..5 {
            limiter.check_global_at(t0).await.unwrap();
        }
        assert_eq!(
            refusal(limiter.check_global_at(t0).await.unwrap_err()),
            ("global".to_string(), 1)
        );
        // A burst never exceeds one second's budget, however long the bucket was idle.
        let much_later = t0 + Duration::from_secs(3600);
        for _ in 0..5 {
            limiter.check_global_at(much_later).await.unwrap();
        }
        assert!(limiter.check_global_at(much_later).await.is_err());
    }

    #[tokio::test]
    async fn unauthenticated_requests_spend_budgets_of_their_own() {
        let limiter = RateLimiter::new(RateLimits {
            global_per_s: 3,
            per_key_per_s: 2,
            ..RateLimits::unlimited()
        });
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter
                .check_unauthenticated_at("10.0.0.1", t0)
                .await
                .unwrap();
        }
        let e = limiter
            .check_unauthenticated_at("10.0.0.1", t0)
            .await
            .unwrap_err();
        assert_eq!(refusal(e), ("per_address".to_string(), 1));
        limiter
            .check_unauthenticated_at("10.0.0.2", t0)
            .await
            .unwrap();
        let e = limiter
            .check_unauthenticated_at("10.0.0.3", t0)
            .await
            .unwrap_err();
        assert_eq!(refusal(e), ("unauthenticated".to_string(), 1));
        // Keys still have the whole global and per-key budgets.
        for _ in 0..2 {
            limiter.check_global_at(t0).await.unwrap();
            limiter.check_client_at("key:a", t0).await.unwrap();
        }
        limiter.check_global_at(t0).await.unwrap();
    }

    #[tokio::test]
    async fn idle_buckets_are_dropped_when_many_are_tracked() {
        let limiter = RateLimiter::new(RateLimits {
            per_key_per_s: 1,
            ..RateLimits::unlimited()
        });
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            limiter
                .check_client_at(&format!("ip:{i}"), t0)
                .await
                .unwrap();
        }
        assert_eq!(lock(&limiter.local.clients).len(), MAX_TRACKED);
        let later = t0 + Duration::from_secs(2);
        limiter.check_client_at("ip:new", later).await.unwrap();
        assert_eq!(
            lock(&limiter.local.clients).len(),
            1,
            "full buckets were dropped"
        );
    }
}
