//! Integration tests of tradeloom-server over real HTTP on 127.0.0.1 (port 0), and of its
//! Redis parts (shared rate limits, the event bus) when `TRADELOOM_TEST_REDIS_URL` is set.

#![allow(clippy::unwrap_used)]

mod agents;
mod approval_links;
mod approvals;
mod dashboard;
mod engine_runs;
mod errors;
mod guard;
mod harness;
mod metrics;
mod openapi;
mod outbound;
mod reads;
mod redis_event_bus;
mod redis_proxy;
mod redis_rate_limit;
mod run_control;
mod script_runs;
// The Redis scaffolding of tradeloom-queue's suites: the variable that enables them, a key
// prefix per test deleted afterwards, `CLIENT KILL` of a database's connections.
#[path = "../../../queue/tests/it/redis_scratch.rs"]
mod redis_scratch;
mod ws;
