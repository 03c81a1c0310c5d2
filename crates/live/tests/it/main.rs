//! Integration tests of tradeloom-live, one test binary: the bridge in this process on real
//! directories and files of every scan format (`bridge.rs`), the scan_dir feed a paper run reads
//! (`scan_dir.rs`), and the WebSocket feed against a local server (`websocket.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on an unexpected error

mod bridge;
mod scan_dir;
mod websocket;
