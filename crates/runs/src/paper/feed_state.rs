//! `state/feed.json`: how a paper run's feed is doing, rewritten atomically at least once a
//! second while the run runs (the health monitor reads it).
//!
//! ```json
//! {"run_id": "…", "kind": "replay", "updated_at": "…", "last_event_at": "…",
//!  "last_data_ts": "…", "connected": true, "events": 120, "malformed": 0, "stale": false,
//!  "stopped": false}
//! ```
//! Times are RFC 3339 UTC, or null before the first event.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tradeloom_core::UnixNanos;
use tradeloom_safety::{Durability, write_atomic};

use crate::error::RunError;
use crate::paper::snapshot::rfc3339;

/// The file's path in a run folder.
pub const FEED_FILE: &str = "state/feed.json";

/// `state/feed.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedState {
    pub run_id: String,
    /// The feed's kind (`replay`, `scan_dir`, `websocket`).
    pub kind: String,
    /// When this file was written.
    pub updated_at: String,
    /// When the last event arrived (wall clock).
    pub last_event_at: Option<String>,
    /// The time of the last bar or scan (the data's own time).
    pub last_data_ts: Option<String>,
    /// Whether the feed's source is connected (the last status it reported).
    pub connected: bool,
    /// Events received (bars, scans, malformed messages, status changes).
    pub events: u64,
    /// Malformed messages among them.
    pub malformed: u64,
    /// Whether the data is older than the spec's `max_data_age` (false without one).
    pub stale: bool,
    /// Whether the run has stopped.
    pub stopped: bool,
    /// The times of the last event and data, formatted into the fields above when the file is
    /// written (not per event).
    #[serde(skip)]
    pending: Option<(UnixNanos, Option<UnixNanos>)>,
}

impl FeedState {
    pub fn new(run_id: &str, kind: &str, connected: bool) -> Self {
        Self {
            run_id: run_id.to_string(),
            kind: kind.to_string(),
            updated_at: String::new(),
            last_event_at: None,
            last_data_ts: None,
            connected,
            events: 0,
            malformed: 0,
            stale: false,
            stopped: false,
            pending: None,
        }
    }

    /// Notes an event that arrived at `wall` carrying data of time `data_ts`.
    pub fn on_event(&mut self, wall: UnixNanos, data_ts: Option<UnixNanos>) {
        self.events += 1;
        let data_ts = data_ts.or(self.pending.and_then(|(_, data)| data));
        self.pending = Some((wall, data_ts));
    }

    /// Notes `count` events that arrived at `wall`, the last carrying data of time `data_ts` (a
    /// replay's bars processed together).
    pub fn on_events(&mut self, count: u64, wall: UnixNanos, data_ts: UnixNanos) {
        self.events += count;
        self.pending = Some((wall, Some(data_ts)));
    }

    /// Writes the file atomically into `run_dir`, stamped now.
    pub fn write(&mut self, run_dir: &Path) -> Result<(), RunError> {
        if let Some((wall, data_ts)) = self.pending.take() {
            self.last_event_at = Some(rfc3339(wall));
            if let Some(ts) = data_ts {
                self.last_data_ts = Some(rfc3339(ts));
            }
        }
        self.updated_at = crate::runner::now_rfc3339();
        let path = run_dir.join(FEED_FILE);
        let mut text = serde_json::to_vec(self).map_err(|e| RunError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomic(&path, &text, Durability::Renamed).map_err(|e| RunError::io(e.path, e.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_the_last_event_and_the_last_data_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = FeedState::new("r1", "replay", true);
        state.on_event(
            UnixNanos(1_700_000_000_000_000_000),
            Some(UnixNanos(86_400_000_000_000)),
        );
        state.on_event(UnixNanos(1_700_000_001_000_000_000), None);
        state.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FEED_FILE)).unwrap();
        let read: FeedState = serde_json::from_str(&text).unwrap();
        assert_eq!(read.events, 2);
        assert_eq!(read.last_event_at.as_deref(), Some("2023-11-14T22:13:21Z"));
        assert_eq!(read.last_data_ts.as_deref(), Some("1970-01-02T00:00:00Z"));
        // An event without data after the write keeps the data time written.
        state.on_event(UnixNanos(1_700_000_002_000_000_000), None);
        state.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FEED_FILE)).unwrap();
        let read: FeedState = serde_json::from_str(&text).unwrap();
        assert_eq!(read.last_event_at.as_deref(), Some("2023-11-14T22:13:22Z"));
        assert_eq!(read.last_data_ts.as_deref(), Some("1970-01-02T00:00:00Z"));
    }
}
