//! [`RedisQueue`]: the [`Queue`] on Redis Streams, shared by every process connected to the same
//! Redis under the same key prefix (the cluster mode). Built with the `redis` feature.
//!
//! # Keys
//!
//! Every key of a pool starts with `<prefix>queue:{<pool>}:` — the braces are a Redis Cluster
//! hash tag, so one pool's keys live in one slot and each operation is one Lua script over them:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `stream` | stream, consumer group `workers` | one entry `{task: <id>}` per leased task (or one whose lease ran out), added as it is leased; the group's pending list holds them with their delivery counts |
//! | `tasks` | hash | task id → JSON metadata (stream entry, attempts of earlier entries, dedup key, current lease's attempt and consumer, priority) |
//! | `ready` | sorted set | task id → priority rank × 10¹³ + the time (ms) it was made ready (one past the last one's if that is later, so order holds within a ms): deliverable tasks waiting for a consumer |
//! | `payloads` | hash | task id → payload (JSON text) |
//! | `dedup` | hash | dedup key → id of the pending task holding it |
//! | `leases` | sorted set | task id → lease expiry (ms, Redis server time) |
//! | `expired` | sorted set | task id → priority rank × 10¹³ + expiry of a lease that ran out (deliverable again) |
//! | `delayed` | sorted set | task id → due time (ms) of a task not yet in the stream |
//! | `dead` | stream | dead letters: `task`, `payload`, `attempts`, `reason`, `consumer`, `dead_at` (ms) |
//! | `conf` | hash | `limit` |
//! | `counts` | hash | `acked`, `redelivered`, `ready_at` (when the last task was made ready, ms) |
//! | `wake` | list | at most one token; idle consumers wait on it with `BLPOP` |
//! | `ops` | sorted set | ids of calls already applied (two minutes), so a call retried after a lost reply is applied once |
//!
//! # How the operations map onto Redis
//!
//! - `enqueue` adds the payload and the task to `ready`, or to `delayed`; a pending dedup key
//!   returns its holder's id.
//! - `dequeue` runs one script: leases that ran out move to `expired` (or to the dead-letter
//!   stream after the last attempt), delayed tasks that fell due move to `ready` at their due
//!   times, then — if the pool's limit leaves room — the task of the highest priority that
//!   became deliverable first is leased: an expired lease (claimed again with `XCLAIM`) or a
//!   ready task (added to the stream and read at once with `XREADGROUP`, so the group counts its
//!   deliveries). Unread stream entries (left by a version without priorities) go first. The
//!   attempt number is the entry's delivery count in the group's pending list plus the
//!   deliveries of the entries the task had before a nack gave it back. Nothing deliverable: the consumer waits on `wake` with `BLPOP` (on a
//!   connection of its own) until a wake-up or the moment a lease runs out or a delayed task
//!   falls due, whichever is first — no polling.
//! - `ack`, `nack` and `extend` check the lease atomically in the same script (the task's current
//!   lease is unexpired and has this attempt and consumer), so a consumer whose lease ran out can
//!   never touch the next holder's delivery. `ack` is `XACK` + `XDEL`; `nack` removes the
//!   task's entry and puts it back in `ready` (behind what waits at its priority) or `delayed`.
//!
//! Leases are per delivery (each `dequeue` gives its own visibility), which `XAUTOCLAIM`'s one
//! minimum idle time cannot express; so lease expiry lives in `leases` and an expired entry is
//! claimed by id with `XCLAIM`, which counts the delivery the same way.
//!
//! Times are Redis server time, so every process agrees on them; [`NotBefore::At`] is compared
//! with it (clocks of the hosts are assumed in sync).
//!
//! # Connection loss
//!
//! Commands go through a [`ConnectionManager`], which reconnects in the background with
//! exponential back-off. An operation that fails on a dropped connection is retried for
//! [`RedisQueueOptions::retry_for`]; enqueue, ack and nack carry an id the script remembers, so
//! a retry after a lost reply is not applied twice. A `dequeue` whose reply was lost leaves its
//! task leased to nobody until the lease runs out, then it is delivered again: at least once,
//! never lost.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisError, Script, ScriptInvocation};
use tokio::time::Instant;

use crate::error::QueueError;
use crate::queue::{PoolStats, Queue, check_visibility, validate_dequeue, validate_pool};
use crate::task::{DeadLetter, DeadReason, Delivery, Lease, NewTask, NotBefore, TaskId};

/// The scripts of every queue operation (one script, so one `EVALSHA` cached per server).
const SCRIPT: &str = include_str!("redis_queue.lua");

/// The keys of one pool, in the order the script takes them (`KEYS[1..=13]`).
const POOL_KEYS: [&str; 13] = [
    "stream", "tasks", "payloads", "dedup", "leases", "expired", "delayed", "dead", "conf",
    "counts", "wake", "ops", "ready",
];

/// Durations beyond this (about 30 years) are cut to it; for a queue that is as good as never.
const LONGEST: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Idle connections kept for consumers waiting with `BLPOP`.
const IDLE_WAITERS: usize = 16;

/// Settings of a [`RedisQueue`]; `Default` gives no attempt limit, a 10 s reply timeout and 10 s
/// of retries across a lost connection.
#[derive(Clone, Debug)]
pub struct RedisQueueOptions {
    /// Dead-letter a task after this many deliveries without an ack (`None`: redeliver forever),
    /// as [`InMemoryQueue::with_max_attempts`](crate::InMemoryQueue::with_max_attempts).
    pub max_attempts: Option<NonZeroU32>,
    /// How long one command may wait for its reply before the connection counts as lost.
    pub response_timeout: Duration,
    /// How long an operation keeps retrying while Redis is unreachable before it fails with
    /// [`QueueError::Backend`].
    pub retry_for: Duration,
}

impl Default for RedisQueueOptions {
    fn default() -> Self {
        Self {
            max_attempts: None,
            response_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(10),
        }
    }
}

impl RedisQueueOptions {
    pub fn with_max_attempts(mut self, max_attempts: NonZeroU32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }
}

/// The [`Queue`] on Redis Streams; see the [module documentation](self) for its keys and how
/// it keeps the trait's semantics. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: ConnectionManager,
    prefix: String,
    options: RedisQueueOptions,
    script: Script,
    /// Connections of consumers waiting with `BLPOP`, which would stall the shared one.
    waiters: Mutex<Vec<MultiplexedConnection>>,
}

impl RedisQueue {
    /// Connects to the Redis at `url` (`redis://host:port[/db]`, `rediss://` needs a TLS build
    /// of the client) and uses the keys starting with `prefix` (e.g. `tradeloom:`); processes
    /// sharing a queue use the same prefix. Fails if Redis cannot be reached.
    pub async fn connect(
        url: &str,
        prefix: &str,
        options: RedisQueueOptions,
    ) -> Result<Self, QueueError> {
        let client = Client::open(url).map_err(|e| QueueError::Invalid {
            what: "Redis URL",
            detail: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.response_timeout))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_max_delay(Duration::from_secs(2));
        let manager = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                prefix: prefix.to_string(),
                options,
                script: Script::new(SCRIPT),
                waiters: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The key prefix this queue uses.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The script call of `op` on `pool`, its keys and the common arguments filled in.
    fn call(&self, pool: &str, op: &str) -> ScriptInvocation<'_> {
        let mut call = self.inner.script.prepare_invoke();
        for key in POOL_KEYS {
            call.key(format!("{}queue:{{{pool}}}:{key}", self.inner.prefix));
        }
        let max = self.inner.options.max_attempts.map_or(0, NonZeroU32::get);
        call.arg(op).arg(max);
        call
    }

    /// Runs a script call, retrying while the connection is being re-established.
    async fn run<T: FromRedisValue>(&self, call: &ScriptInvocation<'_>) -> Result<T, QueueError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(25);
        let mut retried = false;
        loop {
            let mut conn = self.inner.manager.clone();
            match call.invoke_async::<T>(&mut conn).await {
                Ok(value) => return Ok(value),
                // At least one retry: a call whose reply timed out on a connection that died
                // under it has used up the whole retry time by itself; its operation id makes
                // the retry apply at most once.
                Err(e)
                    if transient(&e)
                        && (!retried
                            || started.elapsed() + backoff < self.inner.options.retry_for) =>
                {
                    retried = true;
                    tracing::warn!(error = %e, retry_in = ?backoff, "redis queue: connection lost; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(backend(e)),
            }
        }
    }

    /// Waits on `pool`'s wake-up list for at most `timeout` on a connection of its own.
    async fn wait_for_wake(&self, pool: &str, timeout: Duration) {
        let taken = lock(&self.inner.waiters).pop();
        let mut conn = match taken {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None);
                match self
                    .inner
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Redis is away: the next script call retries with back-off; do not spin.
                        tracing::warn!(error = %e, "redis queue: cannot open a waiting connection");
                        tokio::time::sleep(timeout.min(Duration::from_millis(200))).await;
                        return;
                    }
                }
            }
        };
        let key = format!("{}queue:{{{pool}}}:wake", self.inner.prefix);
        // BLPOP's timeout is in seconds; 0 would mean forever.
        let seconds = timeout.as_secs_f64().max(0.001);
        let mut blpop = redis::cmd("BLPOP");
        blpop.arg(&key).arg(seconds);
        let blpop = blpop.query_async::<Option<(String, String)>>(&mut conn);
        match tokio::time::timeout(timeout + self.inner.options.response_timeout, blpop).await {
            Ok(Ok(_)) => {
                let mut idle = lock(&self.inner.waiters);
                if idle.len() < IDLE_WAITERS {
                    idle.push(conn);
                }
            }
            // A dropped or stuck connection is not kept; the caller looks again at once.
            Ok(Err(e)) => tracing::debug!(error = %e, "redis queue: waiting connection failed"),
            Err(_) => tracing::debug!("redis queue: waiting connection did not answer"),
        }
    }
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.inner.prefix)
            .field("max_attempts", &self.inner.options.max_attempts)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(&self, task: NewTask) -> Result<TaskId, QueueError> {
        validate_pool(&task.pool)?;
        let id = TaskId::generate();
        let payload = serde_json::to_string(&task.payload).map_err(|e| QueueError::Invalid {
            what: "payload",
            detail: e.to_string(),
        })?;
        let (mode, ms) = match task.not_before {
            None => ("now", 0),
            Some(NotBefore::After(delay)) => ("after", millis(delay)),
            Some(NotBefore::At(at)) => ("at", at.timestamp_millis().max(0)),
        };
        let mut call = self.call(&task.pool, "enqueue");
        call.arg(id.as_str())
            .arg(payload)
            .arg(task.dedup_key.as_deref().unwrap_or(""))
            .arg(mode)
            .arg(ms)
            .arg(task.priority.rank());
        let held: String = self.run(&call).await?;
        Ok(TaskId::new(held))
    }

    async fn dequeue(
        &self,
        pool: &str,
        consumer: &str,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        validate_dequeue(pool, consumer, visibility)?;
        let visibility = visibility.min(LONGEST);
        let deadline = Instant::now() + wait.min(LONGEST);
        loop {
            let asked = Instant::now();
            let mut call = self.call(pool, "take");
            call.arg(consumer).arg(millis(visibility));
            let reply: Vec<String> = self.run(&call).await?;
            let next_change = match reply.as_slice() {
                [kind, id, payload, attempt, _] if kind == "task" => {
                    let payload = serde_json::from_str(payload)
                        .map_err(|e| unreadable(format!("payload of task {id}: {e}")))?;
                    let attempt = attempt
                        .parse()
                        .map_err(|e| unreadable(format!("attempt `{attempt}`: {e}")))?;
                    return Ok(Some(Delivery {
                        lease: Lease {
                            pool: pool.to_string(),
                            task: TaskId::new(id.clone()),
                            consumer: consumer.to_string(),
                            attempt,
                        },
                        payload,
                        // Measured from before the call: never later than the server's expiry.
                        lease_until: asked + visibility,
                    }));
                }
                [kind, next] if kind == "none" => next
                    .parse::<i64>()
                    .map_err(|e| unreadable(format!("next change `{next}`: {e}")))?,
                other => return Err(unreadable(format!("dequeue answered {other:?}"))),
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let mut timeout = deadline - now;
            if let Ok(ms) = u64::try_from(next_change) {
                timeout = timeout.min(Duration::from_millis(ms));
            }
            self.wait_for_wake(pool, timeout).await;
        }
    }

    async fn ack(&self, lease: &Lease) -> Result<(), QueueError> {
        validate_pool(&lease.pool).map_err(|_| lost(lease))?;
        let mut call = self.call(&lease.pool, "ack");
        call.arg(lease.task.as_str())
            .arg(&lease.consumer)
            .arg(lease.attempt)
            .arg(op_id());
        held(self.run::<i64>(&call).await?, lease)
    }

    async fn nack(&self, lease: &Lease, retry_after: Option<Duration>) -> Result<(), QueueError> {
        validate_pool(&lease.pool).map_err(|_| lost(lease))?;
        let mut call = self.call(&lease.pool, "nack");
        call.arg(lease.task.as_str())
            .arg(&lease.consumer)
            .arg(lease.attempt)
            .arg(op_id())
            .arg(retry_after.map_or(0, millis));
        held(self.run::<i64>(&call).await?, lease)
    }

    async fn extend(&self, lease: &Lease, visibility: Duration) -> Result<(), QueueError> {
        check_visibility(visibility)?;
        validate_pool(&lease.pool).map_err(|_| lost(lease))?;
        let mut call = self.call(&lease.pool, "extend");
        call.arg(lease.task.as_str())
            .arg(&lease.consumer)
            .arg(lease.attempt)
            .arg(millis(visibility));
        held(self.run::<i64>(&call).await?, lease)
    }

    async fn set_pool_limit(&self, pool: &str, limit: Option<usize>) -> Result<(), QueueError> {
        validate_pool(pool)?;
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut call = self.call(pool, "limit");
        call.arg(limit);
        self.run::<i64>(&call).await.map(drop)
    }

    async fn stats(&self, pool: &str) -> Result<PoolStats, QueueError> {
        validate_pool(pool)?;
        let counts: Vec<i64> = self.run(&self.call(pool, "stats")).await?;
        let [ready, delayed, leased, dead, limit, acked, redelivered] = counts[..] else {
            return Err(unreadable(format!("stats answered {counts:?}")));
        };
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok(PoolStats {
            ready: count(ready),
            delayed: count(delayed),
            leased: count(leased),
            dead: count(dead),
            limit: usize::try_from(limit).ok(),
            acked_total: u64::try_from(acked).unwrap_or(0),
            redelivered_total: u64::try_from(redelivered).unwrap_or(0),
        })
    }

    async fn dead_letters(&self, pool: &str) -> Result<Vec<DeadLetter>, QueueError> {
        validate_pool(pool)?;
        let entries: Vec<(String, Vec<String>)> = self.run(&self.call(pool, "dead")).await?;
        entries
            .into_iter()
            .map(|(entry, fields)| dead_letter(pool, &entry, &fields))
            .collect()
    }

    async fn requeue_expired(&self, pool: &str) -> Result<usize, QueueError> {
        validate_pool(pool)?;
        let n: i64 = self.run(&self.call(pool, "requeue_expired")).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// A dead-letter stream entry's fields (`task`, `payload`, `attempts`, `reason`, `consumer`,
/// `dead_at`) as a [`DeadLetter`].
fn dead_letter(pool: &str, entry: &str, fields: &[String]) -> Result<DeadLetter, QueueError> {
    let field = |name: &str| {
        fields
            .chunks_exact(2)
            .find(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
            .ok_or_else(|| unreadable(format!("dead letter {entry} has no `{name}`")))
    };
    let bad = |name: &str, e: &dyn std::fmt::Display| {
        unreadable(format!("dead letter {entry}: `{name}`: {e}"))
    };
    let reason = match field("reason")? {
        "nacked" => DeadReason::Nacked,
        "lease_expired" => DeadReason::LeaseExpired,
        other => return Err(bad("reason", &other)),
    };
    let dead_at_ms: i64 = field("dead_at")?.parse().map_err(|e| bad("dead_at", &e))?;
    Ok(DeadLetter {
        pool: pool.to_string(),
        task: TaskId::new(field("task")?),
        payload: serde_json::from_str(field("payload")?).map_err(|e| bad("payload", &e))?,
        attempts: field("attempts")?
            .parse()
            .map_err(|e| bad("attempts", &e))?,
        reason,
        last_consumer: field("consumer")?.to_string(),
        dead_at: DateTime::<Utc>::from_timestamp_millis(dead_at_ms)
            .ok_or_else(|| bad("dead_at", &dead_at_ms))?,
    })
}

/// A poisoned lock only means a panic elsewhere while pushing or popping a connection.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whole milliseconds, rounded up so that a delay is never shortened.
fn millis(d: Duration) -> i64 {
    let ms = d.min(LONGEST).as_micros().div_ceil(1000);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A fresh id for one ack or nack call, kept by the script so that a retry is applied once.
fn op_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Failures of the connection (as opposed to answers of the server) are worth a retry.
fn transient(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

fn backend(e: RedisError) -> QueueError {
    QueueError::Backend {
        backend: "redis",
        detail: e.to_string(),
    }
}

fn unreadable(detail: String) -> QueueError {
    QueueError::Backend {
        backend: "redis",
        detail,
    }
}

fn held(answer: i64, lease: &Lease) -> Result<(), QueueError> {
    if answer == 1 {
        Ok(())
    } else {
        Err(lost(lease))
    }
}

fn lost(lease: &Lease) -> QueueError {
    QueueError::LeaseLost {
        pool: lease.pool.clone(),
        task: lease.task.clone(),
        consumer: lease.consumer.clone(),
        attempt: lease.attempt,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_up_and_saturate() {
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), millis(LONGEST));
    }

    #[test]
    fn dead_letters_are_read_back_from_their_fields() {
        let fields: Vec<String> = [
            "task",
            "t1",
            "payload",
            "{\"a\":1}",
            "attempts",
            "3",
            "reason",
            "lease_expired",
            "consumer",
            "w2",
            "dead_at",
            "1780000000123",
        ]
        .map(String::from)
        .to_vec();
        let dead = dead_letter("p", "1-0", &fields).unwrap();
        assert_eq!(
            (
                dead.task.as_str(),
                dead.attempts,
                dead.reason,
                dead.last_consumer.as_str()
            ),
            ("t1", 3, DeadReason::LeaseExpired, "w2")
        );
        assert_eq!(dead.payload, serde_json::json!({"a": 1}));
        assert_eq!(dead.dead_at.timestamp_millis(), 1_780_000_000_123);
        let err = dead_letter("p", "1-0", &fields[..4]).unwrap_err();
        assert!(
            err.to_string().contains("dead letter 1-0 has no `reason`"),
            "{err}"
        );
    }
}
