//! [`QueueError`]: what went wrong in a queue operation, and with which pool or task.

use crate::task::TaskId;

/// Errors of [`Queue`](crate::Queue) operations. Every message names the pool or task.
///
/// Non-exhaustive: a networked implementation adds a variant for an unreachable back end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The lease passed to `ack`, `nack` or `extend` is no longer held: it expired (the task
    /// may already be with another consumer), or the task was already acked or nacked. The
    /// caller must not assume its work counts; the queue will deliver the task again unless
    /// someone else acks it.
    #[error(
        "lease lost on task {task} in pool `{pool}` (attempt {attempt}, consumer `{consumer}`): \
         it expired or was already acked or nacked, and another consumer may hold the task now"
    )]
    LeaseLost {
        pool: String,
        task: TaskId,
        consumer: String,
        attempt: u32,
    },
    /// A pool name that is empty, too long or has characters outside `[A-Za-z0-9_.:-]`.
    #[error("invalid pool name `{pool}`: {reason}")]
    InvalidPool { pool: String, reason: &'static str },
    /// An argument the queue cannot accept; `what` names it (e.g. `visibility`).
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// The back end of a networked queue failed: unreachable after the retries, or an answer
    /// the queue cannot read. `backend` names it (`redis`); the outcome of the operation is
    /// unknown, and at-least-once delivery covers it (a lost delivery's lease runs out).
    #[error("queue back end {backend}: {detail}")]
    Backend {
        backend: &'static str,
        detail: String,
    },
}
