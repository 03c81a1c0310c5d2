//! The behaviour every [`Queue`] implementation must show, as async functions its tests call:
//! each takes a fresh or shared queue and panics on the first deviation.
//!
//! ```
//! # use std::sync::Arc;
//! # use tradeloom_queue::{InMemoryQueue, conformance};
//! // In a test file: #[tokio::test(start_paused = true)]
//! async fn fifo_order() {
//!     conformance::fifo_order(Arc::new(InMemoryQueue::new())).await
//! }
//! ```
//!
//! Time is tokio's clock and the durations are real ones of at most a few seconds: an in-process
//! queue runs them on a paused clock (`#[tokio::test(start_paused = true)]`), where they cost
//! nothing and are exact; a networked queue runs them in real time, and the bounds leave it
//! hundreds of milliseconds of slack. Every function names its pools with a fresh suffix, so
//! tests may share one back end and run in parallel.
//!
//! Panicking is the point of this module: `expect` here reports a failed operation of the queue
//! under test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};

use crate::error::QueueError;
use crate::queue::Queue;
use crate::task::{DeadReason, Delivery, NewTask, Priority, TaskId};

/// A lease long enough never to run out during a test.
const LONG: Duration = Duration::from_secs(60);
/// A lease meant to run out during a test.
const SHORT: Duration = Duration::from_secs(1);
/// Slack granted to a networked queue on top of an expected delay.
const SLACK: Duration = Duration::from_millis(1500);

/// `name` with a fresh suffix: a pool no other test uses.
fn fresh_pool(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::now_v7().simple())
}

async fn take(q: &dyn Queue, pool: &str, consumer: &str, visibility: Duration) -> Delivery {
    q.dequeue(pool, consumer, visibility, Duration::ZERO)
        .await
        .expect("dequeue")
        .unwrap_or_else(|| panic!("pool `{pool}`: expected a deliverable task, got none"))
}

async fn assert_empty(q: &dyn Queue, pool: &str, why: &str) {
    let got = q
        .dequeue(pool, "probe", LONG, Duration::ZERO)
        .await
        .expect("dequeue");
    assert!(
        got.is_none(),
        "pool `{pool}`: {why}, but got {:?}",
        got.map(|d| d.payload)
    );
}

fn assert_lost(result: Result<(), QueueError>, what: &str) {
    assert!(
        matches!(result, Err(QueueError::LeaseLost { .. })),
        "{what}: expected LeaseLost, got {result:?}"
    );
}

async fn enqueue(q: &dyn Queue, pool: &str, payload: Value) -> TaskId {
    q.enqueue(NewTask::new(pool, payload))
        .await
        .expect("enqueue")
}

/// Tasks come out in enqueue order, payloads intact, each leased once.
pub async fn fifo_order(q: Arc<dyn Queue>) {
    let pool = fresh_pool("fifo");
    let mut ids = Vec::new();
    for i in 0..10 {
        let payload = json!({"i": i, "nested": {"list": [i, "x"], "null": null}});
        ids.push(enqueue(&*q, &pool, payload).await);
    }
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 10, "task ids are unique");
    for (i, id) in ids.iter().enumerate() {
        let d = take(&*q, &pool, "c1", LONG).await;
        assert_eq!(d.id(), id, "delivery {i} is the {i}th task enqueued");
        assert_eq!(d.payload["i"], json!(i));
        assert_eq!(d.payload["nested"], json!({"list": [i, "x"], "null": null}));
        assert_eq!((d.attempt(), d.pool()), (1, pool.as_str()));
        assert_eq!(d.lease.consumer, "c1");
    }
    assert_empty(&*q, &pool, "all ten are leased").await;
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.delayed, stats.leased), (0, 0, 10));
}

/// Under a backlog, deliverable high-priority tasks go before normal ones before low ones,
/// first come first served within a priority; a nacked task keeps its priority, and a delayed
/// one competes at its priority once due.
pub async fn priorities_order_deliveries(q: Arc<dyn Queue>) {
    let pool = fresh_pool("priority");
    let backlog = [
        ("low-1", Priority::Low),
        ("normal-1", Priority::Normal),
        ("normal-2", Priority::Normal),
        ("high-1", Priority::High),
        ("low-2", Priority::Low),
        ("high-2", Priority::High),
    ];
    for (name, priority) in backlog {
        q.enqueue(NewTask::new(&pool, json!(name)).with_priority(priority))
            .await
            .expect("enqueue");
    }
    let first = take(&*q, &pool, "c1", LONG).await;
    assert_eq!(first.payload, json!("high-1"));
    q.nack(&first.lease, None).await.expect("nack");
    let mut order = Vec::new();
    for _ in 0..backlog.len() {
        let d = take(&*q, &pool, "c1", LONG).await;
        order.push(d.payload.as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        order,
        ["high-2", "high-1", "normal-1", "normal-2", "low-1", "low-2"],
        "by priority, then first come (a nacked high task is behind the high one waiting)"
    );
    assert_empty(&*q, &pool, "all six are leased").await;

    let delayed = fresh_pool("priority-delayed");
    q.enqueue(NewTask::new(&delayed, json!("normal")))
        .await
        .expect("enqueue");
    q.enqueue(
        NewTask::new(&delayed, json!("high-later"))
            .with_priority(Priority::High)
            .with_delay(SHORT),
    )
    .await
    .expect("enqueue");
    q.enqueue(NewTask::new(&delayed, json!("low")).with_priority(Priority::Low))
        .await
        .expect("enqueue");
    assert_eq!(
        take(&*q, &delayed, "c1", LONG).await.payload,
        json!("normal")
    );
    sleep(SHORT + Duration::from_millis(50)).await;
    assert_eq!(
        take(&*q, &delayed, "c1", LONG).await.payload,
        json!("high-later"),
        "once due, the high task goes before the low one that waited longer"
    );
    assert_eq!(take(&*q, &delayed, "c1", LONG).await.payload, json!("low"));
}

/// An ack removes the task for good; its lease is then gone.
pub async fn ack_removes(q: Arc<dyn Queue>) {
    let pool = fresh_pool("ack");
    enqueue(&*q, &pool, json!("a")).await;
    let d = take(&*q, &pool, "c1", SHORT).await;
    q.ack(&d.lease).await.expect("ack a held lease");
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.leased, stats.acked_total), (0, 0, 1));
    assert_empty(&*q, &pool, "the only task was acked").await;
    // Past the old lease's end the task must not come back.
    sleep(SHORT * 2).await;
    assert_empty(&*q, &pool, "an acked task is never redelivered").await;
    assert_lost(q.ack(&d.lease).await, "second ack");
    assert_lost(q.nack(&d.lease, None).await, "nack after ack");
    assert_lost(q.extend(&d.lease, LONG).await, "extend after ack");
    assert_eq!(q.stats(&pool).await.expect("stats").acked_total, 1);
}

/// A nack without delay makes the task deliverable at once, behind tasks already waiting, with
/// the next attempt number.
pub async fn nack_requeues_at_once(q: Arc<dyn Queue>) {
    let pool = fresh_pool("nack");
    let a = enqueue(&*q, &pool, json!("a")).await;
    let b = enqueue(&*q, &pool, json!("b")).await;
    let d = take(&*q, &pool, "c1", LONG).await;
    assert_eq!(d.id(), &a);
    q.nack(&d.lease, None).await.expect("nack a held lease");
    assert_lost(q.ack(&d.lease).await, "ack after nack");
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.leased), (2, 0));
    let next = take(&*q, &pool, "c2", LONG).await;
    assert_eq!(
        (next.id(), next.attempt()),
        (&b, 1),
        "b was waiting before a came back"
    );
    let again = take(&*q, &pool, "c2", LONG).await;
    assert_eq!((again.id(), again.attempt()), (&a, 2));
    assert_eq!(again.payload, json!("a"));
    q.ack(&again.lease).await.expect("ack the redelivery");
    assert_eq!(q.stats(&pool).await.expect("stats").redelivered_total, 1);
}

/// A nack with `retry_after` keeps the task back for that long.
pub async fn nack_with_retry_after_delays(q: Arc<dyn Queue>) {
    let pool = fresh_pool("retry");
    let id = enqueue(&*q, &pool, json!("a")).await;
    let d = take(&*q, &pool, "c1", LONG).await;
    let retry_after = Duration::from_secs(2);
    let start = Instant::now();
    q.nack(&d.lease, Some(retry_after)).await.expect("nack");
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.delayed, stats.leased), (0, 1, 0));
    let early = q
        .dequeue(&pool, "c1", LONG, Duration::from_secs(1))
        .await
        .expect("dequeue");
    assert!(early.is_none(), "delivered before retry_after had passed");
    let d = q
        .dequeue(&pool, "c1", LONG, Duration::from_secs(5))
        .await
        .expect("dequeue")
        .expect("delivered once retry_after has passed");
    let elapsed = start.elapsed();
    assert!(elapsed >= retry_after, "delivered after {elapsed:?}");
    assert!(
        elapsed < retry_after + SLACK,
        "delivered only after {elapsed:?}"
    );
    assert_eq!((d.id(), d.attempt()), (&id, 2));
}

/// Delayed tasks wait for their time and then come out in the order they fell due.
pub async fn delayed_tasks_wait_for_their_time(q: Arc<dyn Queue>) {
    let pool = fresh_pool("delayed");
    let start = Instant::now();
    let late = NewTask::new(pool.as_str(), json!("late")).with_delay(Duration::from_secs(2));
    q.enqueue(late).await.expect("enqueue");
    let soon = NewTask::new(pool.as_str(), json!("soon")).with_delay(Duration::from_secs(1));
    q.enqueue(soon).await.expect("enqueue");
    enqueue(&*q, &pool, json!("now")).await;
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.delayed), (1, 2));
    assert_eq!(take(&*q, &pool, "c1", LONG).await.payload, json!("now"));
    for (payload, due) in [("soon", 1), ("late", 2)] {
        let d = q
            .dequeue(&pool, "c1", LONG, Duration::from_secs(5))
            .await
            .expect("dequeue")
            .unwrap_or_else(|| panic!("`{payload}` never became deliverable"));
        let elapsed = start.elapsed();
        assert_eq!(d.payload, json!(payload));
        let due = Duration::from_secs(due);
        assert!(elapsed >= due, "`{payload}` delivered after {elapsed:?}");
        assert!(
            elapsed < due + SLACK,
            "`{payload}` delivered only after {elapsed:?}"
        );
    }
}

/// A lease that runs out makes the task deliverable again with attempt 2; the first consumer's
/// lease is then lost and using it leaves the second consumer's lease alone.
pub async fn expired_lease_is_redelivered(q: Arc<dyn Queue>) {
    let pool = fresh_pool("expiry");
    let id = enqueue(&*q, &pool, json!("a")).await;
    let first = take(&*q, &pool, "c1", SHORT).await;
    assert_eq!(first.attempt(), 1);
    assert_empty(&*q, &pool, "the task is leased to c1").await;
    sleep(SHORT + SHORT / 2).await;
    let second = q
        .dequeue(&pool, "c2", LONG, Duration::from_secs(5))
        .await
        .expect("dequeue")
        .expect("the task comes back after c1's lease ran out");
    assert_eq!((second.id(), second.attempt()), (&id, 2));
    assert_eq!(second.lease.consumer, "c2");
    assert_lost(q.ack(&first.lease).await, "c1 acks after its lease ran out");
    assert_lost(
        q.extend(&first.lease, LONG).await,
        "c1 extends a lost lease",
    );
    assert_lost(q.nack(&first.lease, None).await, "c1 nacks a lost lease");
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!(
        (stats.leased, stats.ready),
        (1, 0),
        "c2 still holds the task"
    );
    assert_eq!(stats.redelivered_total, 1);
    q.ack(&second.lease).await.expect("c2's lease is intact");
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.leased, stats.acked_total), (0, 1));
}

/// A dead worker's lease runs out on its own: a consumer held back by the pool's limit gets a
/// task as soon as that happens, without anyone enqueueing or acking, and the dead worker's
/// task comes back with attempt 2.
pub async fn waiting_consumer_reclaims_a_dead_workers_task(q: Arc<dyn Queue>) {
    let pool = fresh_pool("reclaim");
    q.set_pool_limit(&pool, Some(1)).await.expect("limit");
    enqueue(&*q, &pool, json!("stuck")).await;
    enqueue(&*q, &pool, json!("next")).await;
    let start = Instant::now();
    let dead = take(&*q, &pool, "dead-worker", SHORT).await;
    assert_eq!(dead.payload, json!("stuck"));
    let d = q
        .dequeue(&pool, "c2", LONG, Duration::from_secs(10))
        .await
        .expect("dequeue")
        .expect("the dead worker's place under the limit is reclaimed");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= SHORT,
        "delivered after {elapsed:?}, before the lease ran out"
    );
    assert!(elapsed < SHORT + SLACK, "delivered only after {elapsed:?}");
    // "next" was waiting since before "stuck" came back.
    assert_eq!((d.payload.clone(), d.attempt()), (json!("next"), 1));
    q.ack(&d.lease).await.expect("ack");
    let again = take(&*q, &pool, "c2", LONG).await;
    assert_eq!((&again.payload, again.attempt()), (&json!("stuck"), 2));
}

/// Extending a lease keeps the task from everyone else past the original end.
pub async fn extend_keeps_the_lease(q: Arc<dyn Queue>) {
    let pool = fresh_pool("extend");
    enqueue(&*q, &pool, json!("long job")).await;
    let visibility = Duration::from_secs(2);
    let d = take(&*q, &pool, "c1", visibility).await;
    let step = Duration::from_millis(1200);
    sleep(step).await;
    q.extend(&d.lease, visibility)
        .await
        .expect("extend a held lease");
    sleep(step).await;
    // 2.4 s in: past the original end (2 s), before the extended one (3.2 s).
    assert_empty(&*q, &pool, "the lease was extended").await;
    assert_eq!(q.stats(&pool).await.expect("stats").leased, 1);
    q.ack(&d.lease).await.expect("ack the extended lease");
    assert_eq!(q.stats(&pool).await.expect("stats").redelivered_total, 0);
}

/// Enqueueing with a dedup key is idempotent while the task is pending, and the key is free
/// again once it is acked. Keys are per pool.
pub async fn dedup_key_makes_enqueue_idempotent(q: Arc<dyn Queue>) {
    let pool = fresh_pool("dedup");
    let emit = |payload: Value| NewTask::new(pool.as_str(), payload).with_dedup_key("run1/node7");
    let first = q.enqueue(emit(json!(1))).await.expect("enqueue");
    let again = q.enqueue(emit(json!(2))).await.expect("enqueue");
    assert_eq!(again, first, "a pending key returns the first task's id");
    assert_eq!(q.stats(&pool).await.expect("stats").ready, 1);
    let d = take(&*q, &pool, "c1", LONG).await;
    assert_eq!(d.payload, json!(1), "the duplicate changed nothing");
    let while_leased = q.enqueue(emit(json!(3))).await.expect("enqueue");
    assert_eq!(while_leased, first, "a leased task still holds its key");
    assert_empty(&*q, &pool, "the duplicates added nothing").await;

    let other_pool = fresh_pool("dedup-other");
    let other = NewTask::new(other_pool.as_str(), json!("x")).with_dedup_key("run1/node7");
    let other = q.enqueue(other).await.expect("enqueue");
    assert_ne!(other, first, "dedup keys are per pool");

    q.ack(&d.lease).await.expect("ack");
    let fresh = q.enqueue(emit(json!(4))).await.expect("enqueue");
    assert_ne!(fresh, first, "an acked task frees its key");
    assert_eq!(take(&*q, &pool, "c1", LONG).await.payload, json!(4));
}

/// With a limit of 2, never more than 2 tasks of the pool are leased, even to many concurrent
/// consumers; an ack frees a place for a waiting consumer; lifting the limit lifts it.
pub async fn pool_limit_caps_leases(q: Arc<dyn Queue>) {
    let pool = fresh_pool("limit");
    q.set_pool_limit(&pool, Some(2)).await.expect("limit");
    for i in 0..5 {
        enqueue(&*q, &pool, json!(i)).await;
    }
    let a = take(&*q, &pool, "c1", LONG).await;
    let _b = take(&*q, &pool, "c2", LONG).await;
    assert_empty(&*q, &pool, "2 of 2 places are leased").await;
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.leased, stats.limit), (3, 2, Some(2)));
    q.ack(&a.lease).await.expect("ack");
    let c = take(&*q, &pool, "c3", LONG).await;
    assert_eq!(c.payload, json!(2), "the ack freed a place");
    assert_empty(&*q, &pool, "full again").await;

    // Many concurrent consumers, each holding its task for a while.
    let pool = fresh_pool("limit-concurrent");
    q.set_pool_limit(&pool, Some(2)).await.expect("limit");
    for i in 0..5 {
        enqueue(&*q, &pool, json!(i)).await;
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut consumers = JoinSet::new();
    for c in 0..8 {
        let (q, pool) = (Arc::clone(&q), pool.clone());
        let (in_flight, max_in_flight, done) = (
            Arc::clone(&in_flight),
            Arc::clone(&max_in_flight),
            Arc::clone(&done),
        );
        consumers.spawn(async move {
            let consumer = format!("c{c}");
            while done.load(Ordering::SeqCst) < 5 {
                let wait = Duration::from_millis(500);
                let Some(d) = q
                    .dequeue(&pool, &consumer, LONG, wait)
                    .await
                    .expect("dequeue")
                else {
                    continue;
                };
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_flight.fetch_max(now, Ordering::SeqCst);
                let leased = q.stats(&pool).await.expect("stats").leased;
                assert!(leased <= 2, "{leased} tasks leased under a limit of 2");
                sleep(Duration::from_millis(200)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                q.ack(&d.lease).await.expect("ack");
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    while let Some(joined) = consumers.join_next().await {
        joined.expect("consumer task");
    }
    let max = max_in_flight.load(Ordering::SeqCst);
    assert!(
        max <= 2,
        "{max} tasks were in flight at once under a limit of 2"
    );
    assert_eq!(done.load(Ordering::SeqCst), 5);
    assert_eq!(q.stats(&pool).await.expect("stats").acked_total, 5);

    // Some(0) pauses the pool; None lifts the limit.
    let pool = fresh_pool("limit-lift");
    for i in 0..3 {
        enqueue(&*q, &pool, json!(i)).await;
    }
    q.set_pool_limit(&pool, Some(0)).await.expect("limit");
    assert_empty(&*q, &pool, "a limit of 0 pauses the pool").await;
    q.set_pool_limit(&pool, None).await.expect("limit");
    for _ in 0..3 {
        take(&*q, &pool, "c1", LONG).await;
    }
    assert_eq!(q.stats(&pool).await.expect("stats").leased, 3);
}

/// Tasks, limits and counts of one pool never show in another.
pub async fn pools_are_independent(q: Arc<dyn Queue>) {
    let a = fresh_pool("a");
    let b = fresh_pool("b");
    enqueue(&*q, &a, json!("for a")).await;
    enqueue(&*q, &b, json!("for b")).await;
    q.set_pool_limit(&a, Some(0)).await.expect("limit");
    assert_empty(&*q, &a, "pool a is paused").await;
    let d = take(&*q, &b, "c1", LONG).await;
    assert_eq!(
        d.payload,
        json!("for b"),
        "pool a's limit does not hold b back"
    );
    assert_empty(&*q, &b, "b's only task is leased; a's is not b's").await;
    let (sa, sb) = (
        q.stats(&a).await.expect("stats"),
        q.stats(&b).await.expect("stats"),
    );
    assert_eq!((sa.ready, sa.leased, sa.limit), (1, 0, Some(0)));
    assert_eq!((sb.ready, sb.leased, sb.limit), (0, 1, None));
    let wrong_pool = crate::task::Lease {
        pool: a.clone(),
        ..d.lease.clone()
    };
    assert_lost(
        q.ack(&wrong_pool).await,
        "a lease presented to another pool",
    );
    q.ack(&d.lease).await.expect("ack in the right pool");
    assert_eq!(q.stats(&a).await.expect("stats").acked_total, 0);
    let unused = q.stats(&fresh_pool("unused")).await.expect("stats");
    assert_eq!(unused, crate::PoolStats::default());
}

/// `dequeue` on an empty pool waits the full `wait` and returns `None`; a zero wait only looks.
pub async fn dequeue_waits_then_gives_up(q: Arc<dyn Queue>) {
    let pool = fresh_pool("empty");
    let start = Instant::now();
    let got = q
        .dequeue(&pool, "c1", LONG, Duration::ZERO)
        .await
        .expect("dequeue");
    assert!(got.is_none());
    assert!(
        start.elapsed() < SLACK,
        "a zero wait took {:?}",
        start.elapsed()
    );
    let wait = Duration::from_secs(2);
    let start = Instant::now();
    let got = q.dequeue(&pool, "c1", LONG, wait).await.expect("dequeue");
    let elapsed = start.elapsed();
    assert!(got.is_none());
    assert!(elapsed >= wait, "gave up after {elapsed:?} of {wait:?}");
    assert!(elapsed < wait + SLACK, "gave up only after {elapsed:?}");
}

/// A consumer waiting on an empty pool gets a task another tokio task enqueues, promptly.
pub async fn dequeue_wakes_when_a_task_arrives(q: Arc<dyn Queue>) {
    let pool = fresh_pool("wake");
    let delay = Duration::from_millis(500);
    let producer = {
        let (q, pool) = (Arc::clone(&q), pool.clone());
        tokio::spawn(async move {
            sleep(delay).await;
            enqueue(&*q, &pool, json!("hello")).await
        })
    };
    let start = Instant::now();
    let d = q
        .dequeue(&pool, "c1", LONG, Duration::from_secs(30))
        .await
        .expect("dequeue")
        .expect("the enqueued task arrives within the wait");
    let elapsed = start.elapsed();
    assert_eq!(d.payload, json!("hello"));
    assert_eq!(d.id(), &producer.await.expect("producer"));
    assert!(
        elapsed >= delay,
        "delivered after {elapsed:?}, before it was enqueued"
    );
    assert!(elapsed < delay + SLACK, "woke only after {elapsed:?}");
}

/// `consumers` concurrent consumers drain `tasks` tasks and ack each: every task is delivered
/// exactly once (no lease runs out, so none may be redelivered).
pub async fn concurrent_consumers_get_each_task_once(
    q: Arc<dyn Queue>,
    consumers: usize,
    tasks: usize,
) {
    let pool = fresh_pool("many");
    for i in 0..tasks {
        enqueue(&*q, &pool, json!(i)).await;
    }
    let mut set = JoinSet::new();
    for c in 0..consumers {
        let (q, pool) = (Arc::clone(&q), pool.clone());
        set.spawn(async move {
            let consumer = format!("c{c}");
            let mut got = Vec::new();
            let wait = Duration::from_millis(200);
            while let Some(d) = q
                .dequeue(&pool, &consumer, LONG, wait)
                .await
                .expect("dequeue")
            {
                assert_eq!(d.attempt(), 1, "task {} redelivered", d.payload);
                got.push(d.payload.as_u64().expect("the payload is the task's index"));
                q.ack(&d.lease).await.expect("ack");
                tokio::task::yield_now().await;
            }
            got
        });
    }
    let mut all = Vec::with_capacity(tasks);
    while let Some(joined) = set.join_next().await {
        all.extend(joined.expect("consumer task"));
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..tasks as u64).collect();
    assert_eq!(all.len(), tasks, "deliveries");
    assert_eq!(all, expected, "each task exactly once");
    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.leased), (0, 0));
    assert_eq!(
        (stats.acked_total, stats.redelivered_total),
        (tasks as u64, 0)
    );
}

/// For a queue configured to give up after `max_attempts` deliveries: a task nacked on its last
/// attempt, and one whose last lease runs out, become dead letters, are never delivered again and
/// free their dedup keys.
pub async fn dead_letters_after_max_attempts(q: Arc<dyn Queue>, max_attempts: u32) {
    let pool = fresh_pool("dead");
    let nacked = NewTask::new(pool.as_str(), json!("poison")).with_dedup_key("k");
    let nacked = q.enqueue(nacked).await.expect("enqueue");
    for attempt in 1..=max_attempts {
        let d = take(&*q, &pool, "c1", LONG).await;
        assert_eq!((d.id(), d.attempt()), (&nacked, attempt));
        q.nack(&d.lease, None).await.expect("nack");
    }
    assert_empty(&*q, &pool, "the task had its last attempt").await;

    let expired = enqueue(&*q, &pool, json!("hangs the worker")).await;
    for attempt in 1..=max_attempts {
        let d = take(&*q, &pool, "c2", SHORT).await;
        assert_eq!((d.id(), d.attempt()), (&expired, attempt));
        sleep(SHORT + SHORT / 2).await;
    }
    assert_empty(&*q, &pool, "the task's last lease ran out").await;

    let stats = q.stats(&pool).await.expect("stats");
    assert_eq!((stats.ready, stats.leased, stats.dead), (0, 0, 2));
    let dead = q.dead_letters(&pool).await.expect("dead letters");
    let summary: Vec<_> = dead
        .iter()
        .map(|d| (&d.task, d.attempts, d.reason, d.last_consumer.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (&nacked, max_attempts, DeadReason::Nacked, "c1"),
            (&expired, max_attempts, DeadReason::LeaseExpired, "c2"),
        ]
    );
    assert_eq!(dead[0].payload, json!("poison"));
    let again = NewTask::new(pool.as_str(), json!("retry")).with_dedup_key("k");
    assert_ne!(
        q.enqueue(again).await.expect("enqueue"),
        nacked,
        "the key is free"
    );
}

/// Bad pool names, empty consumer names and zero visibility are refused with the right variant.
pub async fn rejects_invalid_arguments(q: Arc<dyn Queue>) {
    let bad = q.enqueue(NewTask::new("no spaces", json!(1))).await;
    assert!(
        matches!(&bad, Err(QueueError::InvalidPool { pool, .. }) if pool == "no spaces"),
        "{bad:?}"
    );
    let bad = q.dequeue("", "c1", LONG, Duration::ZERO).await;
    assert!(
        matches!(bad, Err(QueueError::InvalidPool { .. })),
        "{bad:?}"
    );
    let pool = fresh_pool("args");
    let bad = q.dequeue(&pool, "c1", Duration::ZERO, Duration::ZERO).await;
    assert!(
        matches!(
            bad,
            Err(QueueError::Invalid {
                what: "visibility",
                ..
            })
        ),
        "{bad:?}"
    );
    let bad = q.dequeue(&pool, "", LONG, Duration::ZERO).await;
    assert!(
        matches!(
            bad,
            Err(QueueError::Invalid {
                what: "consumer",
                ..
            })
        ),
        "{bad:?}"
    );
    enqueue(&*q, &pool, json!(1)).await;
    let d = take(&*q, &pool, "c1", LONG).await;
    let bad = q.extend(&d.lease, Duration::ZERO).await;
    assert!(
        matches!(
            bad,
            Err(QueueError::Invalid {
                what: "visibility",
                ..
            })
        ),
        "{bad:?}"
    );
    q.ack(&d.lease)
        .await
        .expect("the lease survives a refused extend");
}
