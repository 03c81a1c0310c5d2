//! Integration tests of tradeloom-server over real HTTP on 127.0.0.1 (port 0).

#![allow(clippy::unwrap_used)]

mod metrics;
mod outbound;
mod ws;
