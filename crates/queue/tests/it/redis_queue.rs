//! Every function of `tradeloom_queue::conformance` against [`RedisQueue`] in real time, when
//! `TRADELOOM_TEST_REDIS_URL` is set (skipped with a note otherwise; set and unreachable, the
//! tests fail), each under its own key prefix; then what is particular to Redis: queues shared
//! by several handles (processes), connections killed under a running queue, no data left
//! behind.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tradeloom_queue::{NewTask, Queue, RedisQueue, RedisQueueOptions, conformance};

use crate::redis_scratch::{ENV, Scratch, kill_clients_of_db, url, with_db};

const LONG: Duration = Duration::from_secs(60);

async fn connect(scratch: &Scratch, options: RedisQueueOptions) -> RedisQueue {
    RedisQueue::connect(&scratch.url, &scratch.prefix, options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{ENV}={} is set but the queue cannot connect: {e}",
                scratch.url
            )
        })
}

/// A queue under a fresh prefix, or `None` when the suite is skipped.
async fn queue(options: RedisQueueOptions) -> Option<(Arc<dyn Queue>, Scratch)> {
    let scratch = Scratch::new(&url("queue")?);
    let q = connect(&scratch, options).await;
    Some((Arc::new(q), scratch))
}

macro_rules! conformance_on_redis {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((q, _scratch)) = queue(RedisQueueOptions::default()).await else {
                    return;
                };
                conformance::$name(q).await
            }
        )*
    };
}

conformance_on_redis!(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_get_each_task_once() {
    let Some((q, _scratch)) = queue(RedisQueueOptions::default()).await else {
        return;
    };
    conformance::concurrent_consumers_get_each_task_once(q, 8, 500).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_after_max_attempts() {
    let options = RedisQueueOptions::default().with_max_attempts(NonZeroU32::new(3).unwrap());
    let Some((q, _scratch)) = queue(options).await else {
        return;
    };
    conformance::dead_letters_after_max_attempts(q, 3).await
}

/// Two handles on one prefix are two processes sharing the queue: what one enqueues the other
/// takes, a lease taken by one is held against the other, and the counts are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_on_one_prefix_share_the_queue() {
    let Some(url) = url("queue") else { return };
    let scratch = Scratch::new(&url);
    let producer = connect(&scratch, RedisQueueOptions::default()).await;
    let worker = connect(&scratch, RedisQueueOptions::default()).await;
    let id = producer
        .enqueue(NewTask::new("transform", json!({"node": "n1"})))
        .await
        .unwrap();
    let d = worker
        .dequeue("transform", "w1", LONG, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the other handle's task");
    assert_eq!((d.id(), d.attempt()), (&id, 1));
    assert!(
        producer
            .dequeue("transform", "w2", LONG, Duration::ZERO)
            .await
            .unwrap()
            .is_none(),
        "leased through one handle, held against the other"
    );
    producer
        .ack(&d.lease)
        .await
        .expect("a lease is valid in every process");
    assert_eq!(worker.stats("transform").await.unwrap().acked_total, 1);
    // Another prefix is another queue.
    let other = Scratch::new(&url);
    let stranger = connect(&other, RedisQueueOptions::default()).await;
    producer
        .enqueue(NewTask::new("transform", json!(2)))
        .await
        .unwrap();
    assert_eq!(stranger.stats("transform").await.unwrap().ready, 0);
    assert!(
        format!("{stranger:?}").contains(&other.prefix),
        "{stranger:?}"
    );
}

/// Acked and dead-lettered tasks leave no task data behind: only the pool's bookkeeping keys
/// (the empty stream, counts, the dead letters, recent call ids, a wake-up token) remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_leave_no_data_behind() {
    let options = RedisQueueOptions::default().with_max_attempts(NonZeroU32::MIN);
    let Some((q, scratch)) = queue(options).await else {
        return;
    };
    for i in 0..3 {
        let task = NewTask::new("p", json!(i)).with_dedup_key(format!("k{i}"));
        q.enqueue(task).await.unwrap();
    }
    q.enqueue(NewTask::new("p", json!("later")).with_delay(Duration::from_millis(200)))
        .await
        .unwrap();
    let mut seen = 0;
    while let Some(d) = q
        .dequeue("p", "c", LONG, Duration::from_secs(2))
        .await
        .unwrap()
    {
        if seen % 2 == 0 {
            q.ack(&d.lease).await.unwrap();
        } else {
            q.nack(&d.lease, None).await.unwrap(); // max 1 attempt: a dead letter
        }
        seen += 1;
    }
    assert_eq!(seen, 4);
    let stats = q.stats("p").await.unwrap();
    assert_eq!(
        (stats.ready, stats.delayed, stats.leased, stats.dead),
        (0, 0, 0, 2)
    );
    let mut keys: Vec<String> = scratch
        .keys()
        .into_iter()
        .map(|k| k.trim_start_matches(&scratch.prefix).to_string())
        // The wake-up token is there or not, depending on whether a waiter took it.
        .filter(|k| k != "queue:{p}:wake")
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "queue:{p}:counts",
            "queue:{p}:dead",
            "queue:{p}:ops",
            "queue:{p}:stream",
        ],
        "the task hashes, dedup keys, leases and delayed set are empty (deleted)"
    );
}

/// The queue's connections are killed (as by a network failure or a Redis restart) while
/// consumers work and one waits on an empty pool: the connection manager reconnects, every
/// task is acked, none is lost, and none is delivered twice except as a counted redelivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_goes_on_after_its_connections_are_killed() {
    const DB: u8 = 13;
    let Some(url) = url("queue") else { return };
    let scratch = Scratch::new(&with_db(&url, DB));
    let q = Arc::new(connect(&scratch, RedisQueueOptions::default()).await);

    // A consumer waiting on an empty pool across the kill.
    let waiter = {
        let q = Arc::clone(&q);
        tokio::spawn(async move {
            q.dequeue("idle", "waiter", LONG, Duration::from_secs(20))
                .await
        })
    };
    let tasks = 200;
    for i in 0..tasks {
        q.enqueue(NewTask::new("work", json!(i))).await.unwrap();
    }
    // Short leases, so that a delivery whose reply died with a connection comes back soon.
    let visibility = Duration::from_secs(2);
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..4 {
        let q = Arc::clone(&q);
        consumers.spawn(async move {
            let mut acked = Vec::new();
            while let Some(d) = q
                .dequeue("work", &format!("c{c}"), visibility, Duration::from_secs(4))
                .await
                .expect("dequeue across a reconnect")
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
                match q.ack(&d.lease).await {
                    Ok(()) => acked.push(d.payload.as_u64().unwrap()),
                    // Possible only for a lease that ran out while its ack was retried.
                    Err(e) => eprintln!("ack refused: {e}"),
                }
            }
            acked
        });
    }
    let mut killed = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        killed += kill_clients_of_db(&url, DB);
    }
    assert!(
        killed > 0,
        "no connection of database {DB} was found to kill"
    );
    q.enqueue(NewTask::new("idle", json!("after the kill")))
        .await
        .unwrap();

    let mut times_acked: BTreeMap<u64, usize> = BTreeMap::new();
    while let Some(joined) = consumers.join_next().await {
        for i in joined.unwrap() {
            *times_acked.entry(i).or_default() += 1;
        }
    }
    assert_eq!(times_acked.len(), tasks, "every task was acked");
    assert!(
        times_acked.values().all(|&n| n == 1),
        "a task acked twice: {times_acked:?}"
    );
    let stats = q.stats("work").await.unwrap();
    assert_eq!(
        (stats.ready, stats.leased, stats.acked_total),
        (0, 0, tasks as u64)
    );
    let woke = waiter.await.unwrap().expect("the waiter's dequeue");
    assert_eq!(
        woke.expect("the waiter got the task").payload,
        json!("after the kill")
    );
}

/// `requeue_expired` turns leases that ran out into deliverable tasks and says how many; the
/// next call finds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_expired_counts_the_leases_that_ran_out() {
    let Some((q, _scratch)) = queue(RedisQueueOptions::default()).await else {
        return;
    };
    q.enqueue(NewTask::new("p", json!("a"))).await.unwrap();
    q.enqueue(NewTask::new("p", json!("b"))).await.unwrap();
    let short = Duration::from_millis(300);
    let d = q.dequeue("p", "dead", short, Duration::ZERO).await.unwrap();
    assert!(d.is_some());
    assert_eq!(q.requeue_expired("p").await.unwrap(), 0, "still leased");
    assert_eq!(q.requeue_expired("unused").await.unwrap(), 0);
    tokio::time::sleep(short * 2).await;
    assert_eq!(q.requeue_expired("p").await.unwrap(), 1);
    assert_eq!(q.requeue_expired("p").await.unwrap(), 0);
    let stats = q.stats("p").await.unwrap();
    assert_eq!((stats.ready, stats.leased), (2, 0));
    assert!(q.requeue_expired("bad pool").await.is_err());
}
