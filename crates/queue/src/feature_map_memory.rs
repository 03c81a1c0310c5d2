//! [`InMemoryFeatureMap`]: the in-process [`FeatureMap`] — a mutex, a condition variable and a
//! short history of snapshots, optionally mirrored to a file by a writer thread of its own.
//!
//! The mirror is written off the publisher's path: an update only marks it out of date (and
//! wakes the writer on the first such mark); the writer waits [`MIRROR_DELAY`] for more updates
//! to land, then writes the latest snapshot once, by a temporary file and a rename. So the file
//! shows an update within [`MIRROR_DELAY`] plus one write, a burst of updates costs one write,
//! and a publisher never waits for the disk (a rename over an existing file can take
//! milliseconds while the file system flushes). [`FeatureMap::flush`] and dropping the map write
//! it at once.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::feature_map::{
    FeatureMap, FeatureMapError, MapSnapshot, MapUpdate, map_file, read_map_file,
    validate_map_name, write_file_atomic,
};

/// Snapshots kept for subscribers that are behind (see [`FeatureMap::wait_next`]).
pub const DEFAULT_HISTORY: usize = 256;

/// The longest a mirrored map's file lags behind an update, besides the write itself.
pub const MIRROR_DELAY: Duration = Duration::from_millis(50);

struct State {
    /// Oldest first; the last one is the latest. Empty before the first update.
    history: VecDeque<Arc<MapSnapshot>>,
    /// The sequence of the latest update (restored from the mirror file, or raised by
    /// [`FeatureMap::continue_after`]).
    seq: u64,
    /// How many snapshots `history` keeps.
    keep: usize,
}

/// What the map and its mirror writer share.
struct Shared {
    name: String,
    state: Mutex<State>,
    changed: Condvar,
    mirror: Option<Mirror>,
}

struct Mirror {
    path: PathBuf,
    /// The sequence last written; held while writing, so that the writer thread and a flush
    /// never write an older snapshot last.
    written: Mutex<u64>,
    /// What the writer thread is asked to do.
    job: Mutex<MirrorJob>,
    wake: Condvar,
}

#[derive(Default)]
struct MirrorJob {
    /// An update is not in the file yet.
    dirty: bool,
    /// The map is being dropped.
    stop: bool,
    /// The last failure of the writer thread, reported by the next update or flush.
    error: Option<FeatureMapError>,
}

/// The in-process feature map. Clones of the `Arc` share it; waiting subscribers are woken by a
/// condition variable as soon as an update lands (no polling).
pub struct InMemoryFeatureMap {
    shared: Arc<Shared>,
    /// The mirror's writer thread (mirrored maps only).
    writer: Option<JoinHandle<()>>,
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

    /// A map mirrored to `<folder>/<name>.json` (atomically, at most [`MIRROR_DELAY`] after an
    /// update, and on [`FeatureMap::flush`] and drop); an existing file's snapshot becomes the
    /// latest, so the sequence goes on from it.
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
    pub fn with_history(self, history: usize) -> Self {
        lock(&self.shared.state).keep = history.max(1);
        self
    }

    fn build(name: &str, mirror: Option<PathBuf>, restored: Option<MapSnapshot>) -> Self {
        let seq = restored.as_ref().map_or(0, |s| s.seq);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            state: Mutex::new(State {
                history: restored.map(Arc::new).into_iter().collect(),
                seq,
                keep: DEFAULT_HISTORY,
            }),
            changed: Condvar::new(),
            mirror: mirror.map(|path| Mirror {
                path,
                written: Mutex::new(seq),
                job: Mutex::new(MirrorJob::default()),
                wake: Condvar::new(),
            }),
        });
        let writer = spawn_writer(&shared);
        Self { shared, writer }
    }

    /// Asks the writer thread to end and waits for it.
    fn stop_writer(&self, writer: Option<JoinHandle<()>>) {
        let (Some(mirror), Some(writer)) = (&self.shared.mirror, writer) else {
            return;
        };
        lock(&mirror.job).stop = true;
        mirror.wake.notify_all();
        let _ = writer.join();
    }

    /// Appends a snapshot built from the latest one, wakes the subscribers, and marks the
    /// mirror out of date.
    fn update(
        &self,
        make: impl FnOnce(u64, Option<&MapSnapshot>) -> MapSnapshot,
    ) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        let shared = &*self.shared;
        let snap = {
            let mut state = lock(&shared.state);
            let seq = state.seq + 1;
            let snap = Arc::new(make(seq, state.history.back().map(|s| s.as_ref())));
            state.seq = seq;
            state.history.push_back(snap.clone());
            while state.history.len() > state.keep {
                state.history.pop_front();
            }
            snap
        };
        shared.changed.notify_all();
        if let Some(mirror) = &shared.mirror {
            let mut job = lock(&mirror.job);
            if !job.dirty {
                job.dirty = true;
                mirror.wake.notify_one();
            }
            if let Some(e) = job.error.take() {
                return Err(e);
            }
        }
        Ok(snap)
    }
}

/// Starts the mirror's writer thread (`None` for a map without a mirror, or when no thread can
/// be started: then every update is written by the next flush or the drop).
fn spawn_writer(shared: &Arc<Shared>) -> Option<JoinHandle<()>> {
    shared.mirror.as_ref()?;
    let for_thread = Arc::clone(shared);
    std::thread::Builder::new()
        .name(format!("map-{}", shared.name))
        .spawn(move || for_thread.write_behind())
        .map_err(|e| tracing::warn!(map = %shared.name, "no mirror writer thread: {e}"))
        .ok()
}

impl Shared {
    /// The writer thread: waits for an update, lets [`MIRROR_DELAY`] pass so that a burst of
    /// updates is written once, writes the latest snapshot; until the map is dropped.
    fn write_behind(&self) {
        let Some(mirror) = &self.mirror else { return };
        let mut job = lock(&mirror.job);
        loop {
            while !job.dirty && !job.stop {
                job = mirror.wake.wait(job).unwrap_or_else(|e| e.into_inner());
            }
            if job.stop {
                // The drop writes the last update itself.
                return;
            }
            let deadline = Instant::now() + MIRROR_DELAY;
            while !job.stop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                job = mirror
                    .wake
                    .wait_timeout(job, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            // Updates from here on mark it again (and are written next time round).
            job.dirty = false;
            drop(job);
            let written = self.write_mirror();
            job = lock(&mirror.job);
            if let Err(e) = written {
                if job.error.is_none() {
                    tracing::warn!(map = %self.name, "cannot write the map's mirror file: {e}");
                }
                job.error = Some(e);
            }
        }
    }

    /// Writes the latest snapshot to the mirror file unless it is there already.
    fn write_mirror(&self) -> Result<(), FeatureMapError> {
        let Some(mirror) = &self.mirror else {
            return Ok(());
        };
        let mut written = lock(&mirror.written);
        let Some(snap) = lock(&self.state).history.back().cloned() else {
            return Ok(());
        };
        if snap.seq <= *written {
            return Ok(());
        }
        let fail = |message: String| FeatureMapError::File {
            path: mirror.path.clone(),
            message,
        };
        let bytes = serde_json::to_vec(&snap.to_json()).map_err(|e| fail(e.to_string()))?;
        write_file_atomic(&mirror.path, &bytes, false).map_err(|e| fail(e.to_string()))?;
        *written = snap.seq;
        Ok(())
    }
}

impl Drop for InMemoryFeatureMap {
    fn drop(&mut self) {
        let writer = self.writer.take();
        self.stop_writer(writer);
        if let Err(e) = self.shared.write_mirror() {
            tracing::warn!(map = %self.shared.name, "cannot write the map's mirror file: {e}");
        }
    }
}

impl std::fmt::Debug for InMemoryFeatureMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryFeatureMap")
            .field("name", &self.shared.name)
            .field("mirror", &self.shared.mirror.as_ref().map(|m| &m.path))
            .finish_non_exhaustive()
    }
}

impl FeatureMap for InMemoryFeatureMap {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn publish(&self, update: MapUpdate) -> Result<Arc<MapSnapshot>, FeatureMapError> {
        self.update(|seq, _| MapSnapshot {
            name: self.shared.name.clone(),
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
                name: self.shared.name.clone(),
                seq,
                updated_at,
                source: source.to_string(),
                values,
                observed: None,
            }
        })
    }

    fn latest(&self) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError> {
        Ok(lock(&self.shared.state).history.back().cloned())
    }

    fn wait_next(
        &self,
        after: u64,
        timeout: Duration,
    ) -> Result<Option<Arc<MapSnapshot>>, FeatureMapError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.shared.state);
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
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn continue_after(&self, seq: u64) -> Result<(), FeatureMapError> {
        let mut state = lock(&self.shared.state);
        state.seq = state.seq.max(seq);
        Ok(())
    }

    fn flush(&self) -> Result<(), FeatureMapError> {
        self.shared.write_mirror()?;
        if let Some(mirror) = &self.shared.mirror {
            // Written now: an earlier failure of the writer thread is repaired.
            lock(&mirror.job).error = None;
        }
        Ok(())
    }
}
