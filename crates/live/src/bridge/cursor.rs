//! [`Cursor`]: where a bridge is in its directory — the last scan file it read (by modification
//! time, then name), the map sequence it published it under, and its counters — kept in
//! `<data_dir>/maps/<map>.bridge.json` so a restarted bridge reads on from there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tradeloom_queue::MapSnapshot;

/// Where files are ordered: modification time in nanoseconds since the epoch, then name.
pub type FileKey = (i128, String);

/// The bridge's position and counters, as kept in `<map>.bridge.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// The map the bridge publishes into.
    pub map: String,
    /// The directory it watches, as given.
    pub watch: String,
    /// The last file read (published or skipped as malformed), if any.
    pub last_file: Option<String>,
    /// Its modification time, nanoseconds since the epoch.
    pub last_mtime_ns: Option<i128>,
    /// The map sequence of the last scan published.
    pub last_seq: u64,
    /// Scans published since the cursor was created.
    pub published: u64,
    /// Files skipped as malformed since the cursor was created.
    pub malformed: u64,
}

impl Cursor {
    /// The key of the last file read: files at or before it are old.
    pub fn key(&self) -> Option<FileKey> {
        Some((self.last_mtime_ns?, self.last_file.clone()?))
    }

    /// Whether a file with `key` comes after the last file read.
    pub fn is_new(&self, key: &FileKey) -> bool {
        match self.key() {
            Some(last) => *key > last,
            None => true,
        }
    }

    /// The cursor file of map `map` under `maps` (`<data_dir>/maps`).
    pub fn path(maps: &Path, map: &str) -> PathBuf {
        maps.join(format!("{map}.bridge.json"))
    }

    /// Reads the cursor file; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: not a bridge cursor: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the cursor file atomically (a rename: a bridge killed at any point leaves the old
    /// or the new cursor, never half of one).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        tradeloom_safety::write_atomic(path, &bytes, tradeloom_safety::Durability::Renamed)
            .map_err(|e| e.to_string())
    }

    /// Brings the cursor up to the map: a bridge killed after publishing a scan but before
    /// saving its cursor finds that scan (its file name and time) as the map's latest, and
    /// must not publish the file again.
    pub fn catch_up(&mut self, latest: Option<&MapSnapshot>) {
        let Some(latest) = latest else { return };
        if latest.seq <= self.last_seq {
            return;
        }
        let mtime_ns = latest
            .updated_at
            .timestamp_nanos_opt()
            .map(i128::from)
            .unwrap_or_else(|| i128::from(latest.updated_at.timestamp()) * 1_000_000_000);
        let key = (mtime_ns, latest.source.clone());
        if self.is_new(&key) {
            self.last_mtime_ns = Some(mtime_ns);
            self.last_file = Some(latest.source.clone());
            self.published += latest.seq - self.last_seq;
        }
        self.last_seq = latest.seq;
    }
}
