//! Integration tests of tradeloom-queue: the conformance suite run against [`InMemoryQueue`] on a
//! paused clock (`conformance.rs`), and what is particular to the in-memory queue
//! (`in_memory.rs`), including real-time runs on a multi-threaded runtime; with the `redis`
//! feature, the same suites against Redis when `TRADELOOM_TEST_REDIS_URL` is set
//! (`redis_queue.rs`, `redis_feature_map.rs`).
//!
//! [`InMemoryQueue`]: tradeloom_queue::InMemoryQueue

#![allow(clippy::unwrap_used)]

mod conformance;
mod feature_map;
mod in_memory;
#[cfg(feature = "redis")]
mod redis_cluster;
#[cfg(feature = "redis")]
mod redis_feature_map;
#[cfg(feature = "redis")]
mod redis_queue;
#[cfg(feature = "redis")]
mod redis_scratch;
