//! [`InMemoryFeatureMap`]: the in-process [`FeatureMap`] — a mutex, a condition variable and a
//! short history of snapshots, optionally mirrored to a file per publish.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::feature_map::{
    FeatureMap, FeatureMapError, MapSnapshot, MapUpdate, map_file, read_map_file,
    validate_map_name, write_file_atomic,
};

/// Snapshots kept for subscribers that are behind (see [`FeatureMap::wait_next`]).
pub const DEFAULT_HISTORY: usize = 256;

struct State {
    /// Oldest first; the last one is the latest. Empty before the first update.
    history: VecDeque<Arc<MapSnapshot>>,
    /// The sequence of the latest update (restored from the mirror file).
    seq: u64,
}

/// The in-process feature map. Clones of the `Arc` share it; waiting subscribers are woken by a
/// condition variable as soon as an update lands (no polling).
pub struct InMemoryFeatureMap {
    name: String,
    state: Mutex<State>,
    changed: Condvar,
    history: usize,
    mirror: Option<Mirror>,
}

struct Mirror {
    path: PathBuf,
    /// The sequence last written, so concurrent publishers never write an older snapshot last.
    written: Mutex<u64>,
}

/// A poisoned lock only means a panic in another thread mid-update; the state is still whole
/// (every update replaces it in one assignment).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InMemoryFeatureMap {
    /// A map held in this process only.
    pub fn new(name: &str) -> Result<Self, FeatureMapError> {
        validate_map_name(name)?;
        Ok(Self::build(name, None, None))
    }

    /// A map mirrored to `<folder>/<name>.json` (atomically, on every update); an existing
    /// file's snapshot becomes the latest, so the sequence goes on from it.
    pub fn mirrored(name: &str, folder: &Path) -> Result<Self, FeatureMapError> {
        let restored = read_map_file(folder, name)?;
        Ok(Self::build(
            name,
            Some(map_file(folder, name)),
            restored.map(|mut s| {
                s.name = name.to_string();
                s
            }),
        ))
    }

    /// The same map keeping `history` snapshots for late subscribers (at least 1).
    pub fn with_history(mut self, history: usize) -> Self {
        self.history = history.max(1);
        self
    }

    fn build(name: &str, mirror: Option<PathBuf>, restored: Option<MapSnapshot>) -> Self {
        let seq = restored.as_ref().map_or(0, |s| s.seq);
        let written = seq;
        Self {
            name: name.to_string(),
            state: Mutex::new(State {
                history: restored.map(Arc::new).into_iter().collect(),
                seq,
            }),
            changed: Condvar::new(),
            history: DEFAULT_HISTORY,
            mirror: mirror.map(|path| Mirror {
                path,
                written: Mutex::new(written),
            }),
        }
    }

    /// Appends a snapshot built from the latest one, wakes the subscribers, then mirrors it.
    fn update(
        &self,
        make: impl FnOnce(u64, Option<&MapSnapshot>) -> MapSnapshot,
    ) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        let snap = {
            let mut state = lock(&self.state);
            let seq = state.seq + 1;
            let snap = Arc::new(make(seq, state.history.back().map(|s| s.as_ref())));
            state.seq = seq;
            state.history.push_back(snap.clone());
            while state.history.len() > self.history {
                state.history.pop_front();
            }
            snap
        };
        self.changed.notify_all();
        if let Some(mirror) = &self.mirror {
            let mut written = lock(&mirror.written);
            if snap.seq > *written {
                let bytes =
                    serde_json::to_vec(&snap.to_json()).map_err(|e| FeatureMapError::File {
                        path: mirror.path.clone(),
                        message: e.to_string(),
                    })?;
                write_file_atomic(&mirror.path, &bytes, false).map_err(|e| {
                    FeatureMapError::File {
                        path: mirror.path.clone(),
                        message: e.to_string(),
                    }
                })?;
                *written = snap.seq;
            }
        }
        Ok(snap)
    }
}

impl std::fmt::Debug for InMemoryFeatureMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryFeatureMap")
            .field("name", &self.name)
            .field("mirror", &self.mirror.as_ref().map(|m| &m.path))
            .finish_non_exhaustive()
    }
}

impl FeatureMap for InMemoryFeatureMap {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish(&self, update: MapUpdate) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        self.update(|seq, _| MapSnapshot {
            name: self.name.clone(),
            seq,
            updated_at: update.updated_at,
            source: update.source,
            values: update.values,
            observed: update.observed,
        })
    }

    fn set(
        &self,
        key: &str,
        value: Value,
        source: &str,
        updated_at: DateTime<Utc>,
    ) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        self.update(|seq, previous| {
            let mut values = previous.map(|p| p.values.clone()).unwrap_or_default();
            values.set(key, value);
            MapSnapshot {
                name: self.name.clone(),
                seq,
                updated_at,
                source: source.to_string(),
                values,
                observed: None,
            }
        })
    }

    fn latest(&self) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError> {
        Ok(lock(&self.state).history.back().cloned())
    }

    fn wait_next(
        &self,
        after: u64,
        timeout: Duration,
    ) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.state);
        loop {
            if state.seq > after {
                // The history is ordered by sequence: the first one above `after`.
                let i = state.history.partition_point(|s| s.seq <= after);
                if let Some(snap) = state.history.get(i) {
                    return Ok(Some(snap.clone()));
                }
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Ok(None);
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
