//! queue: the work queues workflow workers take tasks from, behind one [`Queue`] trait with an
//! in-process implementation ([`InMemoryQueue`]) and, with the `redis` feature, one on Redis
//! Streams with consumer groups for the cluster mode (`RedisQueue`). It must not depend on the
//! engine, the store, the flow compiler or anything HTTP: those build on it.
//!
//! # Model
//!
//! Tasks live in named **pools**, one per node type (`transform`, `http`, `agent`, …). A worker
//! [dequeues](Queue::dequeue) from its pool and gets a [`Delivery`] holding a **lease** for a
//! visibility timeout; while the lease is held no other consumer sees the task. The worker then
//! [acks](Queue::ack) (done: the task is removed), [nacks](Queue::nack) (give it back, now or
//! after a delay) or [extends](Queue::extend) the lease (a heartbeat for long tasks). A lease
//! that runs out makes the task deliverable again with its attempt count one higher: that is
//! how tasks of a crashed worker are reclaimed.
//!
//! Delivery is therefore **at least once**: a task can be delivered again after its worker did
//! the work but before its ack arrived. Consumers apply effects idempotently (the coordinator
//! keeps an applied-set of signal ids; a task's [`TaskId`] is stable across redeliveries).
//!
//! A pool may have a **concurrency limit** ([`Queue::set_pool_limit`]): no delivery while that
//! many of its tasks are leased. Tasks have a [`Priority`]: a pool delivers its deliverable
//! high-priority tasks before normal ones before low ones. Tasks can be **delayed** ([`NotBefore`]), which serves retries
//! with backoff and durable timers, and **deduplicated** by a key, which makes emitting a task
//! idempotent.
//!
//! ```
//! # async fn demo() -> Result<(), tradeloom_queue::QueueError> {
//! use std::time::Duration;
//! use tradeloom_queue::{InMemoryQueue, NewTask, Queue};
//!
//! let queue = InMemoryQueue::new();
//! queue.enqueue(NewTask::new("transform", serde_json::json!({"node": "n1"}))).await?;
//! let visibility = Duration::from_secs(30);
//! let wait = Duration::from_secs(5);
//! if let Some(delivery) = queue.dequeue("transform", "worker-1", visibility, wait).await? {
//!     // … run the node, post its completion signal …
//!     queue.ack(&delivery.lease).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! [`conformance`] holds the behaviour every implementation must show, as async functions an
//! implementation's tests call.
//!
//! The crate also holds the [`FeatureMap`] (the latest value per key of a named map with a
//! sequence number and update notification: the live layer's scan bridge publishes into it and
//! traders follow it), its in-process implementation [`InMemoryFeatureMap`], with the `redis`
//! feature one in Redis (`RedisFeatureMap`), and its conformance suite
//! [`feature_map_conformance`].

pub mod cluster;
pub mod conformance;
mod error;
pub mod feature_map;
pub mod feature_map_conformance;
mod feature_map_memory;
mod in_memory;
mod queue;
#[cfg(feature = "redis")]
pub mod redis_feature_map;
#[cfg(feature = "redis")]
pub mod redis_queue;
mod task;

#[cfg(feature = "redis")]
pub use cluster::RedisRegistry;
pub use cluster::{InMemoryRegistry, ProcessEntry, Registry};
pub use error::QueueError;
pub use feature_map::{
    FeatureMap, FeatureMapError, MapSnapshot, MapUpdate, MapValues, Subscription,
};
pub use feature_map_memory::{InMemoryFeatureMap, MIRROR_DELAY};
pub use in_memory::InMemoryQueue;
pub use queue::{MAX_POOL_NAME_LEN, PoolStats, Queue, validate_pool};
#[cfg(feature = "redis")]
pub use redis_feature_map::RedisFeatureMap;
#[cfg(feature = "redis")]
pub use redis_queue::{RedisQueue, RedisQueueOptions};
pub use task::{DeadLetter, DeadReason, Delivery, Lease, NewTask, NotBefore, Priority, TaskId};
