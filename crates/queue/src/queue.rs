//! The [`Queue`] trait every implementation provides, [`PoolStats`], and the pool-name rule.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::QueueError;
use crate::task::{DeadLetter, Delivery, Lease, NewTask, TaskId};

/// The longest pool name [`validate_pool`] accepts, in bytes.
pub const MAX_POOL_NAME_LEN: usize = 128;

/// Counts of one pool at the moment of the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Deliverable now (though a full concurrency limit may hold them back).
    pub ready: usize,
    /// Waiting for their [`NotBefore`](crate::NotBefore) or a nack's `retry_after`.
    pub delayed: usize,
    /// Held by a consumer under an unexpired lease.
    pub leased: usize,
    /// Given up on after the maximum number of attempts ([`Queue::dead_letters`]).
    pub dead: usize,
    /// The pool's concurrency limit; `None` is unlimited.
    pub limit: Option<usize>,
    /// Acks since the queue started.
    pub acked_total: u64,
    /// Deliveries with an attempt above 1 (after a nack or an expired lease) since the queue
    /// started.
    pub redelivered_total: u64,
}

/// A work queue with leases: at-least-once delivery of tasks to the consumers of named pools.
///
/// # Semantics every implementation keeps ([`crate::conformance`] checks them)
///
/// - **Pools** are independent: order, limits and counts of one never affect another.
/// - **Order:** among the deliverable tasks of a pool, those of the highest
///   [`Priority`](crate::Priority) go first; within a priority, the one that became deliverable
///   first goes first — enqueue order for tasks enqueued without delay, their due time for
///   delayed ones, the time of the nack or of the lease's expiry for redeliveries. A task keeps
///   its priority across redeliveries.
/// - **Leases:** [`dequeue`](Queue::dequeue) leases the task to the consumer for `visibility`.
///   Before the lease runs out nobody else gets the task. Once it has run out the task is
///   delivered again with `attempt + 1`, and the old lease is lost: `ack`, `nack` and `extend`
///   with it fail with [`QueueError::LeaseLost`] (an implementation may still accept them until
///   another consumer has taken the task; the in-memory queue does not) and never touch the
///   new holder's lease.
/// - **At least once:** a task leaves the queue only by an ack (or by being dead-lettered), so
///   it may run more than once; consumers apply its effects idempotently, keyed on its
///   [`TaskId`] or on an id in the payload.
/// - **Limits:** while a pool has as many leased tasks as its concurrency limit, `dequeue`
///   delivers none of its tasks; an ack, a nack or an expiry frees a place.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Adds a task and returns its id. If `task.dedup_key` is set and a task of the same pool
    /// with that key is still pending (not acked or dead-lettered), returns that task's id and
    /// changes nothing: emitting a task is idempotent.
    async fn enqueue(&self, task: NewTask) -> Result<TaskId, QueueError>;

    /// Leases the next deliverable task of `pool` to `consumer` for `visibility`, waiting up to
    /// `wait` for one (a zero `wait` only looks). `None` when nothing became deliverable in time,
    /// including when the pool's concurrency limit stayed full.
    ///
    /// `visibility` must not be zero.
    async fn dequeue(
        &self,
        pool: &str,
        consumer: &str,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError>;

    /// The task is done: removes it, frees its dedup key and its place under the pool's limit.
    /// [`QueueError::LeaseLost`] if `lease` is no longer held.
    async fn ack(&self, lease: &Lease) -> Result<(), QueueError>;

    /// Gives the task back: deliverable again at once (`None`) or after `retry_after`, with the
    /// next attempt number. On the last allowed attempt the task is dead-lettered instead.
    /// [`QueueError::LeaseLost`] if `lease` is no longer held.
    async fn nack(&self, lease: &Lease, retry_after: Option<Duration>) -> Result<(), QueueError>;

    /// Heartbeat of a long task: the lease now runs out `visibility` from now (not from its old
    /// end). [`QueueError::LeaseLost`] if `lease` is no longer held.
    async fn extend(&self, lease: &Lease, visibility: Duration) -> Result<(), QueueError>;

    /// Sets the most tasks of `pool` that may be leased at once; `None` is unlimited (the
    /// default), `Some(0)` pauses the pool. Leases already held are kept when the limit drops
    /// below their number; new deliveries wait until the count is below it.
    async fn set_pool_limit(&self, pool: &str, limit: Option<usize>) -> Result<(), QueueError>;

    /// Counts of `pool`; a pool never used has all counts zero.
    async fn stats(&self, pool: &str) -> Result<PoolStats, QueueError>;

    /// The tasks of `pool` given up on after the maximum number of attempts, oldest first.
    async fn dead_letters(&self, pool: &str) -> Result<Vec<DeadLetter>, QueueError>;

    /// Makes the tasks of `pool` whose lease has run out deliverable again now (or
    /// dead-letters them after their last attempt) rather than when a consumer next asks, and
    /// wakes waiting consumers; returns how many. The health monitor's "requeue stuck tasks"
    /// action. An implementation whose leases expire on their own returns 0.
    async fn requeue_expired(&self, pool: &str) -> Result<usize, QueueError> {
        validate_pool(pool)?;
        Ok(0)
    }
}

/// Checks a pool name: 1 to [`MAX_POOL_NAME_LEN`] bytes of ASCII letters, digits and `_.:-`, so
/// that it can be part of a key or stream name in any back end.
pub fn validate_pool(pool: &str) -> Result<(), QueueError> {
    let reason = if pool.is_empty() {
        "it is empty"
    } else if pool.len() > MAX_POOL_NAME_LEN {
        "it is longer than 128 bytes"
    } else if !pool
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        "use ASCII letters, digits and `_.:-` only"
    } else {
        return Ok(());
    };
    Err(QueueError::InvalidPool {
        pool: pool.to_string(),
        reason,
    })
}

/// The arguments every [`Queue::dequeue`] checks first: the pool name, a consumer name, and a
/// lease above zero.
pub(crate) fn validate_dequeue(
    pool: &str,
    consumer: &str,
    visibility: Duration,
) -> Result<(), QueueError> {
    validate_pool(pool)?;
    if consumer.is_empty() {
        return Err(QueueError::Invalid {
            what: "consumer",
            detail: "the consumer name is empty".into(),
        });
    }
    check_visibility(visibility)
}

/// A lease (or an extension) must be above zero.
pub(crate) fn check_visibility(visibility: Duration) -> Result<(), QueueError> {
    if visibility.is_zero() {
        return Err(QueueError::Invalid {
            what: "visibility",
            detail: "a lease of zero duration expires at once; give a timeout above zero".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names() {
        for ok in [
            "transform",
            "http",
            "agent:gpt-4o",
            "a.b_c-1",
            &"x".repeat(128),
        ] {
            assert_eq!(validate_pool(ok), Ok(()), "{ok}");
        }
        for (bad, reason) in [
            ("", "it is empty"),
            (&"x".repeat(129), "it is longer than 128 bytes"),
            ("has space", "use ASCII letters, digits and `_.:-` only"),
            ("ünï", "use ASCII letters, digits and `_.:-` only"),
            ("a/b", "use ASCII letters, digits and `_.:-` only"),
        ] {
            assert_eq!(
                validate_pool(bad),
                Err(QueueError::InvalidPool {
                    pool: bad.to_string(),
                    reason
                })
            );
        }
    }
}
