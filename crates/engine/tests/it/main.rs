//! Integration tests of the engine, one binary.

// A test that meets an unexpected `None` or `Err` should fail loudly, where it happened.
#![allow(clippy::unwrap_used)]

mod accounts;
mod fixture;
mod golden;
mod invariants;
mod lifecycle;
mod risk;
