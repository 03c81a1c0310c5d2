//! Every function of `tradeloom_queue::conformance` against a fresh [`InMemoryQueue`], on a
//! paused tokio clock: the timeouts in them cost no real time and the timings are exact.

use std::num::NonZeroU32;
use std::sync::Arc;

use tradeloom_queue::{InMemoryQueue, Queue, conformance};

fn queue() -> Arc<dyn Queue> {
    Arc::new(InMemoryQueue::new())
}

macro_rules! on_paused_clock {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $name() {
                conformance::$name(queue()).await
            }
        )*
    };
}

on_paused_clock!(
    fifo_order,
    priorities_order_deliveries,
    ack_removes,
    nack_requeues_at_once,
    nack_with_retry_after_delays,
    delayed_tasks_wait_for_their_time,
    expired_lease_is_redelivered,
    waiting_consumer_reclaims_a_dead_workers_task,
    extend_keeps_the_lease,
    dedup_key_makes_enqueue_idempotent,
    pool_limit_caps_leases,
    pools_are_independent,
    dequeue_waits_then_gives_up,
    dequeue_wakes_when_a_task_arrives,
    rejects_invalid_arguments,
);

#[tokio::test(start_paused = true)]
async fn concurrent_consumers_get_each_task_once() {
    conformance::concurrent_consumers_get_each_task_once(queue(), 8, 1_000).await
}

#[tokio::test(start_paused = true)]
async fn dead_letters_after_max_attempts() {
    let q = InMemoryQueue::with_max_attempts(NonZeroU32::new(3).unwrap());
    conformance::dead_letters_after_max_attempts(Arc::new(q), 3).await
}
