//! Integration tests of tradeloom-server over real HTTP on 127.0.0.1 (port 0).

#![allow(clippy::unwrap_used)]

mod approvals;
mod engine_runs;
mod errors;
mod guard;
mod harness;
mod metrics;
mod openapi;
mod outbound;
mod reads;
mod ws;
