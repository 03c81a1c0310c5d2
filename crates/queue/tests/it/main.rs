//! Integration tests of tradeloom-queue: the conformance suite run against [`InMemoryQueue`] on a
//! paused clock (`conformance.rs`), and what is particular to the in-memory queue
//! (`in_memory.rs`), including real-time runs on a multi-threaded runtime.
//!
//! [`InMemoryQueue`]: tradeloom_queue::InMemoryQueue

#![allow(clippy::unwrap_used)]

mod conformance;
mod feature_map;
mod in_memory;
