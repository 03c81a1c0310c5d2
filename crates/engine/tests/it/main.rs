//! Integration tests of the engine, one binary.

mod golden;
mod lifecycle;
