//! Integration tests of the engine, one binary.

// A test that meets an unexpected `None` or `Err` should fail loudly, where it happened.
#![allow(clippy::unwrap_used)]

mod accounts;
mod brackets;
mod fixture;
mod golden;
mod golden_bracket;
mod invariants;
mod lifecycle;
mod portfolio;
mod risk;
