//! Integration tests of the live layer, one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on an unexpected error

mod websocket;
