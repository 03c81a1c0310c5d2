//! The tasks the planner emits: node tasks on their type's pool, approval-expiry timers and
//! approval notifications, and the delay bound they are scheduled within.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use tradeloom_flow::ir::NodeKind;

use tradeloom_flow::IrNode;
use tradeloom_queue::{NewTask, Priority};
use tradeloom_store::{RunPriority, WorkflowRun};

/// Pool of the approval-expiry timers (and of approval notifications).
pub const TIMER_POOL: &str = "timer";

/// The longest delay the runtime schedules (a `wait`, an approval's expiry, a retry back-off):
/// about ten years. Anything longer fails its node with a reason; a timestamp that far ahead
/// still fits every store.
pub const MAX_DELAY_MS: u64 = 10 * 366 * 24 * 60 * 60 * 1000;

/// The queue pool of a node type.
pub fn pool_of(kind: &NodeKind) -> &str {
    kind.type_name()
}

/// The task of attempt `attempt` of `node` of `run`, at the run's priority, deduplicated per
/// attempt so re-emitting it (after a restart) is harmless.
pub fn node_task(
    run: &WorkflowRun,
    node: &IrNode,
    attempt: u32,
    not_before: Option<DateTime<Utc>>,
) -> NewTask {
    let run_id = &run.id;
    let task = NewTask::new(
        pool_of(node.kind()),
        json!({"run_id": run_id, "node_id": node.id(), "attempt": attempt}),
    )
    .with_dedup_key(format!("{run_id}/{}/{attempt}", node.id()))
    .with_priority(queue_priority(run.priority));
    match not_before {
        Some(at) => task.with_not_before(at),
        None => task,
    }
}

/// The queue priority of a run's tasks.
pub fn queue_priority(priority: RunPriority) -> Priority {
    match priority {
        RunPriority::High => Priority::High,
        RunPriority::Normal => Priority::Normal,
        RunPriority::Low => Priority::Low,
    }
}

/// The task that decides an approval with its default when it expires.
pub fn expiry_timer(
    run_id: &str,
    approval_id: &str,
    node: &str,
    attempt: u32,
    expires_at: DateTime<Utc>,
) -> NewTask {
    NewTask::new(
        TIMER_POOL,
        json!({"kind": "approval_expiry", "run_id": run_id, "approval_id": approval_id,
               "node_id": node, "attempt": attempt}),
    )
    .with_dedup_key(format!("expire/{approval_id}"))
    .with_not_before(expires_at)
}

/// The task that posts a new approval to its node's chat webhook (`notify`), on the timer pool
/// at once; see [`crate::approval_notify`].
pub fn notify_task(run_id: &str, approval_id: &str, node: &str, attempt: u32) -> NewTask {
    NewTask::new(
        TIMER_POOL,
        json!({"kind": "approval_notify", "run_id": run_id, "approval_id": approval_id,
               "node_id": node, "attempt": attempt}),
    )
    .with_dedup_key(format!("notify/{approval_id}"))
}

/// `now` plus `ms` milliseconds, or `None` when that is beyond [`MAX_DELAY_MS`] (or beyond what
/// a timestamp can hold): the caller fails the node with a reason instead of overflowing.
pub fn after(now: DateTime<Utc>, ms: u64) -> Option<DateTime<Utc>> {
    if ms > MAX_DELAY_MS {
        return None;
    }
    let delta = TimeDelta::try_milliseconds(i64::try_from(ms).ok()?)?;
    now.checked_add_signed(delta)
}
