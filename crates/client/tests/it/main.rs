//! Integration tests of tradeloom-client: real HTTP on 127.0.0.1 against the real API
//! (`tradeloom_server::serve`) over a throw-away SQLite store with a workflow runtime.
#![allow(clippy::unwrap_used)]

mod auth;
mod definitions;
mod engine_runs;
mod harness;
mod raw;
mod runs;
