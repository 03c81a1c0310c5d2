//! Throughput of [`InMemoryQueue`]: enqueue a batch of tasks, then dequeue and ack each, on a
//! current-thread tokio runtime (one consumer) and with four consumers sharing the queue.
//!
//! `cargo bench -p tradeloom-queue --bench queue`; criterion reports elements/s = tasks/s through
//! the whole enqueue → dequeue → ack cycle.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::{Builder, Runtime};
use tradeloom_queue::{InMemoryQueue, NewTask, Queue};

const BATCH: usize = 1_000;
const VISIBILITY: Duration = Duration::from_secs(60);

/// Every task of a batch through one queue: `consumers` tokio tasks drain it concurrently.
async fn cycle(queue: &InMemoryQueue, consumers: usize) {
    for i in 0..BATCH {
        let payload = json!({"run": "r1", "node": i});
        queue
            .enqueue(NewTask::new("transform", payload))
            .await
            .expect("enqueue");
    }
    let mut workers = tokio::task::JoinSet::new();
    for c in 0..consumers {
        let queue = queue.clone();
        workers.spawn(async move {
            let consumer = format!("w{c}");
            while let Some(d) = queue
                .dequeue("transform", &consumer, VISIBILITY, Duration::ZERO)
                .await
                .expect("dequeue")
            {
                black_box(&d.payload);
                queue.ack(&d.lease).await.expect("ack");
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("consumer");
    }
}

fn runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime")
}

fn bench_queue(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("in_memory_queue");
    group.throughput(Throughput::Elements(BATCH as u64));
    for consumers in [1, 4] {
        group.bench_with_input(
            BenchmarkId::new("enqueue_dequeue_ack", consumers),
            &consumers,
            |b, &consumers| {
                let queue = InMemoryQueue::new();
                b.iter(|| rt.block_on(cycle(&queue, consumers)));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_queue);
criterion_main!(benches);
