//! Integration tests of tradeloom-llm over real HTTP on 127.0.0.1: `OpenAiProvider` against
//! scripted servers. The tests against the `mock-llm` server are in `tradeloom-mock-llm`.
#![allow(clippy::unwrap_used)]

mod support;
mod wire;
