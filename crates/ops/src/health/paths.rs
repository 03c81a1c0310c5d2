//! Where the monitor's files live under `<data_dir>/health/`: pure path arithmetic, shared by
//! the config (which roles have heartbeats), the files, the heartbeats and the recovery log.

use std::path::{Path, PathBuf};

/// `<data_dir>/health`.
pub fn health_dir(data_dir: &Path) -> PathBuf {
    tradeloom_core::DataDir::new(data_dir).health()
}

/// `<data_dir>/health/meta_health.json`.
pub fn meta_health_path(data_dir: &Path) -> PathBuf {
    health_dir(data_dir).join("meta_health.json")
}

/// `<data_dir>/health/history.jsonl`.
pub fn history_path(data_dir: &Path) -> PathBuf {
    health_dir(data_dir).join("history.jsonl")
}

/// `<data_dir>/health/heartbeats`.
pub fn heartbeat_dir(data_dir: &Path) -> PathBuf {
    health_dir(data_dir).join("heartbeats")
}

/// The heartbeat file of `role`.
pub fn heartbeat_path(data_dir: &Path, role: &str) -> PathBuf {
    heartbeat_dir(data_dir).join(format!("{role}.json"))
}
