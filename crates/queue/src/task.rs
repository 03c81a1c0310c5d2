//! Tasks as they go in ([`NewTask`]), come out ([`Delivery`] with its [`Lease`]) and, after too
//! many attempts, end up ([`DeadLetter`]).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

/// The id of one enqueued task: unique, and stable across redeliveries, so consumers can key
/// idempotency on it. [`InMemoryQueue`](crate::InMemoryQueue) uses UUIDv7 text (sortable by
/// creation time); other implementations may use other unique text.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// A fresh UUIDv7 id.
    pub fn generate() -> Self {
        TaskId(uuid::Uuid::now_v7().to_string())
    }

    /// Wraps an id an implementation produced (or one read back from a signal).
    pub fn new(id: impl Into<String>) -> Self {
        TaskId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a task becomes deliverable, if not at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotBefore {
    /// This long after the enqueue (retries with backoff).
    After(Duration),
    /// At this wall-clock time (durable timers); a time in the past means at once.
    ///
    /// [`InMemoryQueue`](crate::InMemoryQueue) converts it to a delay when the task is
    /// enqueued, so a later jump of the system clock does not move it.
    At(DateTime<Utc>),
}

/// How urgent a task is. Among the deliverable tasks of a pool, every `High` one goes before any
/// `Normal` one, and every `Normal` one before any `Low` one; within a priority the order is the
/// pool's usual one (first deliverable, first delivered). A delayed task competes at its
/// priority once it is due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// 0 for `High`, 1 for `Normal`, 2 for `Low`: the position in [`Priority::ALL`].
    pub const fn rank(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }
}

/// A task to enqueue. Build it with [`NewTask::new`] and the `with_*` methods.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// The pool (node type) whose workers take it; see [`validate_pool`](crate::validate_pool).
    pub pool: String,
    /// What the worker needs, opaque to the queue.
    pub payload: Value,
    /// Makes the enqueue idempotent: while a task of the same pool with this key is pending
    /// (ready, delayed or leased), enqueueing again returns that task's id and changes nothing.
    /// Once it is acked or dead-lettered the key is free again.
    pub dedup_key: Option<String>,
    /// Delayed delivery; `None` means at once.
    pub not_before: Option<NotBefore>,
    /// Delivered before tasks of lower priority ([`Priority`]); `Normal` unless set.
    pub priority: Priority,
}

impl NewTask {
    /// A task for `pool`, deliverable at once, without a dedup key.
    pub fn new(pool: impl Into<String>, payload: Value) -> Self {
        NewTask {
            pool: pool.into(),
            payload,
            dedup_key: None,
            not_before: None,
            priority: Priority::Normal,
        }
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn with_dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// Deliverable `delay` after the enqueue.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.not_before = Some(NotBefore::After(delay));
        self
    }

    /// Deliverable at `at` (wall clock).
    pub fn with_not_before(mut self, at: DateTime<Utc>) -> Self {
        self.not_before = Some(NotBefore::At(at));
        self
    }
}

/// Proof of one delivery of a task: what [`ack`](crate::Queue::ack),
/// [`nack`](crate::Queue::nack) and [`extend`](crate::Queue::extend) take.
///
/// Each delivery of a task has its own lease (the attempt number differs), so a consumer whose
/// lease expired cannot ack away the lease of the consumer that got the task next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    pub pool: String,
    pub task: TaskId,
    /// The consumer name given to [`dequeue`](crate::Queue::dequeue).
    pub consumer: String,
    /// 1 on the first delivery, one more on each redelivery (after a nack or an expired lease).
    pub attempt: u32,
}

/// A task handed to a consumer, leased to it until `lease_until` unless extended.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub lease: Lease,
    pub payload: Value,
    /// When the lease runs out, on the tokio clock (so tests on a paused clock see it move).
    /// After it, `ack`/`nack`/`extend` fail with
    /// [`QueueError::LeaseLost`](crate::QueueError::LeaseLost) and the task is delivered again.
    pub lease_until: Instant,
}

impl Delivery {
    pub fn id(&self) -> &TaskId {
        &self.lease.task
    }

    pub fn pool(&self) -> &str {
        &self.lease.pool
    }

    /// 1 on the first delivery.
    pub fn attempt(&self) -> u32 {
        self.lease.attempt
    }
}

/// Why a task was given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// The last attempt was nacked.
    Nacked,
    /// The last attempt's lease ran out (the worker crashed or hung).
    LeaseExpired,
}

/// A task that was delivered the queue's maximum number of times without an ack, kept for
/// inspection ([`Queue::dead_letters`](crate::Queue::dead_letters)) and never delivered again.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub pool: String,
    pub task: TaskId,
    pub payload: Value,
    /// How many times it was delivered.
    pub attempts: u32,
    pub reason: DeadReason,
    /// The consumer that had the last attempt.
    pub last_consumer: String,
    pub dead_at: DateTime<Utc>,
}
