//! What is particular to [`InMemoryQueue`]: shared clones, exact wake-up times on a paused
//! clock, strict lease expiry, and real concurrency on a multi-threaded runtime.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::{Instant, sleep};
use tradeloom_queue::{DeadReason, InMemoryQueue, NewTask, Queue, QueueError, conformance};

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn clones_share_one_queue() {
    let producer = InMemoryQueue::new();
    let worker = producer.clone();
    let id = producer
        .enqueue(NewTask::new("transform", json!({"node": "n1"})))
        .await
        .unwrap();
    let d = worker
        .dequeue("transform", "w1", LONG, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id(), &id);
    worker.ack(&d.lease).await.unwrap();
    assert_eq!(producer.stats("transform").await.unwrap().acked_total, 1);
    assert_eq!(
        format!("{producer:?}"),
        "InMemoryQueue { max_attempts: None, .. }"
    );
}

#[tokio::test(start_paused = true)]
async fn lease_until_is_visibility_after_the_delivery() {
    let q = InMemoryQueue::new();
    q.enqueue(NewTask::new("p", json!(1))).await.unwrap();
    let start = Instant::now();
    let d = q
        .dequeue("p", "c", Duration::from_secs(7), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.lease_until, start + Duration::from_secs(7));
}

/// A consumer waiting an hour wakes exactly when the delayed task falls due: its sleep is
/// bounded by the due time, not by a polling interval.
#[tokio::test(start_paused = true)]
async fn waiter_wakes_exactly_when_a_delayed_task_falls_due() {
    let q = InMemoryQueue::new();
    let start = Instant::now();
    let delay = Duration::from_millis(5_432);
    q.enqueue(NewTask::new("timers", json!("tick")).with_delay(delay))
        .await
        .unwrap();
    let d = q
        .dequeue("timers", "c", LONG, Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(start.elapsed(), delay);
    assert_eq!(d.payload, json!("tick"));
}

/// A consumer held back by a full limit gets a task at the moment another consumer acks.
#[tokio::test(start_paused = true)]
async fn ack_wakes_a_consumer_held_back_by_the_limit() {
    let q = InMemoryQueue::new();
    q.set_pool_limit("agent", Some(1)).await.unwrap();
    for i in 0..2 {
        q.enqueue(NewTask::new("agent", json!(i))).await.unwrap();
    }
    let first = q
        .dequeue("agent", "c1", LONG, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let acker = {
        let q = q.clone();
        tokio::spawn(async move {
            sleep(Duration::from_millis(750)).await;
            q.ack(&first.lease).await
        })
    };
    let start = Instant::now();
    let second = q
        .dequeue("agent", "c2", LONG, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(750));
    assert_eq!(second.payload, json!(1));
    acker.await.unwrap().unwrap();
}

/// Four consumers wait, one task arrives: exactly one of them gets it.
#[tokio::test(start_paused = true)]
async fn one_task_goes_to_exactly_one_of_many_waiters() {
    let q = InMemoryQueue::new();
    let mut waiters = Vec::new();
    for c in 0..4 {
        let q = q.clone();
        waiters.push(tokio::spawn(async move {
            q.dequeue("http", &format!("c{c}"), LONG, Duration::from_secs(5))
                .await
                .unwrap()
        }));
    }
    sleep(Duration::from_secs(1)).await;
    q.enqueue(NewTask::new("http", json!("GET"))).await.unwrap();
    let mut got = 0;
    for w in waiters {
        got += usize::from(w.await.unwrap().is_some());
    }
    assert_eq!(got, 1);
    assert_eq!(q.stats("http").await.unwrap().leased, 1);
}

/// The in-memory queue is strict: once a lease has run out it is lost, even if no other
/// consumer has taken the task yet.
#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_lost_before_anyone_else_takes_the_task() {
    let q = InMemoryQueue::new();
    q.enqueue(NewTask::new("p", json!(1))).await.unwrap();
    let d = q
        .dequeue("p", "c1", Duration::from_secs(1), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    let err = q.ack(&d.lease).await.unwrap_err();
    assert!(
        matches!(&err, QueueError::LeaseLost { attempt: 1, consumer, .. } if consumer == "c1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("lease lost on task"), "{err}");
    let stats = q.stats("p").await.unwrap();
    assert_eq!((stats.ready, stats.leased, stats.acked_total), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn max_attempts_one_dead_letters_on_the_first_nack() {
    let q = InMemoryQueue::with_max_attempts(NonZeroU32::MIN);
    let id = q
        .enqueue(NewTask::new("script", json!({"code": "boom"})))
        .await
        .unwrap();
    let d = q
        .dequeue("script", "c1", LONG, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    q.nack(&d.lease, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let stats = q.stats("script").await.unwrap();
    assert_eq!((stats.ready, stats.delayed, stats.dead), (0, 0, 1));
    let dead = q.dead_letters("script").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (&dead[0].task, dead[0].attempts, dead[0].reason),
        (&id, 1, DeadReason::Nacked)
    );
    assert_eq!(dead[0].pool, "script");
    assert!(q.dead_letters("other").await.unwrap().is_empty());
}

// Real time, two worker threads: the same guarantees under true parallelism.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_on_threads_get_each_task_once() {
    conformance::concurrent_consumers_get_each_task_once(Arc::new(InMemoryQueue::new()), 8, 1_000)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_limit_holds_on_threads() {
    conformance::pool_limit_caps_leases(Arc::new(InMemoryQueue::new())).await
}
