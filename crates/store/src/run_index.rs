//! The `runs` index: one row per engine run folder, so lists need not scan the data dir.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// An indexed run folder. `status` is the runs crate's vocabulary, stored as given.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunEntry {
    pub run_id: String,
    pub name: String,
    pub status: String,
    /// The run folder, absolute or relative to the data dir.
    pub run_dir: String,
    pub created_at: DateTime<Utc>,
    /// The run's headline metrics (e.g. metrics.json), if known.
    pub summary: Option<Value>,
}
