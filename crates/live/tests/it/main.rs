//! Integration tests of tradeloom-live: the bridge in this process on real directories and
//! files of every scan format (`bridge.rs`), and the scan_dir feed a paper run reads
//! (`scan_dir.rs`).

#![allow(clippy::unwrap_used)]

mod bridge;
mod scan_dir;
