//! Integration tests of tradeloom-llm, all over real HTTP on 127.0.0.1: the mock-llm server
//! driven by `OpenAiProvider`, and the provider against scripted servers.
#![allow(clippy::unwrap_used)]

mod endpoints;
mod policies;
mod retries;
mod support;
mod wire;
mod workflow_policies;
