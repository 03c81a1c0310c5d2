//! Integration tests of tradeloom-mock-llm, all over real HTTP on 127.0.0.1: the mock-llm
//! server driven by tradeloom-llm's `OpenAiProvider` (policies, endpoints, and the provider's
//! retries against the fault policies).
#![allow(clippy::unwrap_used)]

mod endpoints;
mod policies;
mod retries;
mod support;
mod workflow_policies;
