//! The buckets of [`RateLimiter::redis`](super::RateLimiter::redis): one Redis key per bucket,
//! `<prefix>rate:global`, `rate:unauthenticated`, `rate:client:<client>` and
//! `rate:runs:<tier>:<caller>`, each holding the bucket's theoretical arrival time (µs of Redis
//! server time) and expiring when the bucket is full again. `gcra.lua` spends a token.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::{BucketId, Rate, SharedLimitsError, lock};

const SCRIPT: &str = include_str!("gcra.lua");

/// How long a check waits for Redis before it decides on this process's buckets instead. A
/// request is held this long at most, once per [`LOCAL_FOR`], while Redis is away.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// After Redis failed to answer, checks use this process's buckets for this long before they
/// ask Redis again, so that an outage does not add [`CALL_TIMEOUT`] to every request.
const LOCAL_FOR: Duration = Duration::from_secs(1);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct RedisBuckets {
    /// Reconnects in the background with back-off.
    manager: ConnectionManager,
    prefix: String,
    script: Script,
    /// While set and in the future, Redis is away: checks use the local buckets.
    away_until: Mutex<Option<Instant>>,
    /// Checks decided locally because Redis did not answer.
    fallbacks: AtomicU64,
}

impl fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBuckets")
            .field("prefix", &self.prefix)
            .field("fallbacks", &self.fallbacks())
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    pub(super) async fn connect(url: &str, prefix: &str) -> Result<Self, SharedLimitsError> {
        let redacted = || tradeloom_core::redact_userinfo(url);
        let client = Client::open(url).map_err(|source| SharedLimitsError::Url {
            url: redacted(),
            source,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_max_delay(Duration::from_secs(1));
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|source| SharedLimitsError::Connect {
                url: redacted(),
                source,
            })?;
        Ok(Self {
            manager,
            prefix: prefix.to_string(),
            script: Script::new(SCRIPT),
            away_until: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
        })
    }

    pub(super) fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn key(&self, id: BucketId<'_>) -> String {
        let prefix = &self.prefix;
        match id {
            BucketId::Global => format!("{prefix}rate:global"),
            BucketId::Unauthenticated => format!("{prefix}rate:unauthenticated"),
            BucketId::Client(client) => format!("{prefix}rate:client:{client}"),
            BucketId::Runs(who, tier) => format!("{prefix}rate:runs:{tier}:{who}"),
        }
    }

    /// Spends a token of bucket `id` in Redis, or says how long until one is there; `None`
    /// when Redis did not answer (counted, and logged when Redis goes away): the caller
    /// decides on its own buckets.
    pub(super) async fn take(&self, id: BucketId<'_>, rate: Rate) -> Option<Result<(), Duration>> {
        let was_away = *lock(&self.away_until);
        if was_away.is_some_and(|until| Instant::now() < until) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut call = self.script.prepare_invoke();
        call.key(self.key(id))
            .arg(micros(rate.interval).max(1))
            .arg(micros(rate.tolerance));
        let mut conn = self.manager.clone();
        let reply = tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<u64>(&mut conn)).await;
        match reply {
            Ok(Ok(wait_us)) => {
                if was_away.is_some() && lock(&self.away_until).take().is_some() {
                    tracing::info!(
                        prefix = %self.prefix,
                        "rate limits: Redis answers again; budgets are shared again"
                    );
                }
                Some(match wait_us {
                    0 => Ok(()),
                    wait => Err(Duration::from_micros(wait)),
                })
            }
            Ok(Err(e)) => {
                self.went_away(&e.to_string());
                None
            }
            Err(_) => {
                self.went_away(&format!("no answer within {CALL_TIMEOUT:?}"));
                None
            }
        }
    }

    fn went_away(&self, error: &str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let previous = lock(&self.away_until).replace(Instant::now() + LOCAL_FOR);
        if previous.is_none() {
            tracing::warn!(
                prefix = %self.prefix,
                error,
                "rate limits: Redis does not answer; this process limits requests on its own \
                 budgets until it does (counted in tradeloom_rate_limit_local_fallbacks_total)"
            );
        }
    }
}
