//! The scan bridge (reference document 004): watches a directory for scan files and publishes
//! each new one, whole, into a [`FeatureMap`] under the next sequence number with the file's
//! modification time.
//!
//! - **Detection**: the directory's events ([`watch::DirWatch`]: inotify on Linux, waited for on
//!   the bridge's own thread) wake the bridge at once; a rescan of the directory every
//!   [`BridgeOptions::rescan`] is the safety net for missed events (network file systems, a
//!   full event queue). Files are ordered by modification time, then name; a
//!   file at or before the last one read is old and ignored.
//! - **Never half a file**: dotfiles, `*.tmp` and `*.partial` are never read (a producer writes
//!   there and renames). A file renamed into the directory or closed after writing is read at
//!   once; any other file (found by a rescan, or still being written in place) is read only
//!   when its size and modification time are the same across two checks
//!   [`BridgeOptions::settle`] apart.
//! - **Restarts**: the last file read is kept in `<data_dir>/maps/<map>.bridge.json`
//!   ([`Cursor`], rewritten in place after each file by [`CursorFile`]: microseconds, and a
//!   kill at any point leaves the old or the new cursor); a restarted bridge reads on after it
//!   and never publishes a file twice. The map itself is mirrored to
//!   `<data_dir>/maps/<map>.json` behind its updates (within
//!   [`MIRROR_DELAY`](tradeloom_queue::MIRROR_DELAY), and at once when the bridge stops); its
//!   sequence goes on from the cursor or that file, whichever is further.
//! - **Bad files**: a malformed file is logged, counted and skipped; never fatal.

pub mod cursor;
pub mod scan_file;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use tradeloom_queue::{FeatureMap, InMemoryFeatureMap, MapUpdate, MapValues};
use tradeloom_runs::paper::StopSignal;

use cursor::FileKey;
pub use cursor::{Cursor, CursorFile};
pub use scan_file::{ScanFileError, ScanFormat, read_scan};
use watch::{Change, DirWatch};

/// How often the stop signal is checked while nothing happens.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// What a bridge watches and where it publishes.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// The directory scan files appear in (not its subdirectories).
    pub watch: PathBuf,
    /// The feature map to publish into.
    pub map: String,
    /// The column the rows are keyed by (default `symbol`).
    pub key: String,
    /// The data dir: the map and the cursor live in `<data_dir>/maps/`.
    pub data_dir: PathBuf,
    /// The gap between the two checks of a file that was not renamed into the directory
    /// (default 50 ms).
    pub settle: Duration,
    /// How often the whole directory is listed besides the events (default 1 s).
    pub rescan: Duration,
}

impl BridgeOptions {
    /// Options with the defaults: key `symbol`, settle 50 ms, rescan 1 s.
    pub fn new(watch: impl Into<PathBuf>, map: &str, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            watch: watch.into(),
            map: map.to_string(),
            key: "symbol".to_string(),
            data_dir: data_dir.into(),
            settle: Duration::from_millis(50),
            rescan: Duration::from_secs(1),
        }
    }
}

/// Errors that keep a bridge from starting or going on (never a bad scan file: those are
/// counted and skipped).
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The watched directory is missing or not a directory.
    #[error("--watch {}: {message}", path.display())]
    Watch { path: PathBuf, message: String },
    /// The map name or its files.
    #[error("map `{map}`: {message}")]
    Map { map: String, message: String },
    /// The cursor file could not be read or written.
    #[error("bridge cursor: {0}")]
    Cursor(String),
}

/// What a bridge has done, shared with whoever runs it.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Scans published.
    pub published: AtomicU64,
    /// Files skipped as malformed.
    pub malformed: AtomicU64,
    /// Files ignored because they are not newer than the last file read.
    pub old: AtomicU64,
}

/// One scan about to be published (what `tradeloom bridge` prints).
#[derive(Clone, Debug)]
pub struct Published {
    /// The sequence it gets in the map.
    pub seq: u64,
    /// The file's name.
    pub file: String,
    /// Its rows.
    pub rows: usize,
    /// Its modification time: the scan's time.
    pub updated_at: DateTime<Utc>,
}

/// Called just before each publish (the sequence is known then, the bridge being the map's
/// only publisher): a bridge killed between the call and the publish reads that file again on
/// restart and reports it again under the same sequence.
pub type PublishHook = Box<dyn FnMut(&Published) + Send>;

/// A file seen but not read yet.
#[derive(Debug)]
struct Pending {
    /// When the bridge first heard of it: the start of the scan→order latency.
    observed: Instant,
    /// Renamed into the directory or closed after writing: complete now.
    complete: bool,
    /// Size and modification time at the last check, and when that was.
    last: Option<(u64, i128, Instant)>,
}

/// The scan bridge: open it, then [`Bridge::run`] it until stopped, or call [`Bridge::step`]
/// from a loop of one's own (the `scan_dir` feed does, on the paper run's thread).
pub struct Bridge {
    options: BridgeOptions,
    map: Arc<dyn FeatureMap>,
    cursor: Cursor,
    cursor_file: CursorFile,
    stats: Arc<BridgeStats>,
    hook: Option<PublishHook>,
    /// The directory's events.
    watch: DirWatch,
    /// Files seen but not read yet, by name.
    pending: HashMap<String, Pending>,
    /// When the directory is listed next.
    next_rescan: Instant,
    /// Events of the last wait (kept to reuse its allocation).
    changes: Vec<Change>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("options", &self.options)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// `<data_dir>/maps`: where feature maps and bridge cursors are kept.
pub fn maps_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("maps")
}

/// Opens map `name` mirrored under `<data_dir>/maps/` (its sequence goes on from the file).
pub fn open_map(data_dir: &Path, name: &str) -> Result<Arc<InMemoryFeatureMap>, BridgeError> {
    InMemoryFeatureMap::mirrored(name, &maps_dir(data_dir))
        .map(Arc::new)
        .map_err(|e| BridgeError::Map {
            map: name.to_string(),
            message: e.to_string(),
        })
}

fn mtime_ns(modified: SystemTime) -> i128 {
    match modified.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn to_datetime(ns: i128) -> DateTime<Utc> {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(secs, nanos).unwrap_or_default()
}

impl Bridge {
    /// Checks the directory, opens the map mirrored under the data dir and reads the cursor.
    pub fn open(options: BridgeOptions) -> Result<Self, BridgeError> {
        let map = open_map(&options.data_dir, &options.map)?;
        Self::with_map(options, map)
    }

    /// The same with a map opened by the caller (shared with a trader in this process).
    pub fn with_map(options: BridgeOptions, map: Arc<dyn FeatureMap>) -> Result<Self, BridgeError> {
        match std::fs::metadata(&options.watch) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BridgeError::Watch {
                    path: options.watch.clone(),
                    message: "not a directory".to_string(),
                });
            }
            Err(e) => {
                return Err(BridgeError::Watch {
                    path: options.watch.clone(),
                    message: format!("{e} (create it, or point --watch at the scan directory)"),
                });
            }
        }
        if options.key.trim().is_empty() {
            return Err(BridgeError::Map {
                map: options.map.clone(),
                message: "--key: the key column's name is empty".to_string(),
            });
        }
        let cursor_path = Cursor::path(&maps_dir(&options.data_dir), &options.map);
        let mut cursor = Cursor::load(&cursor_path)
            .map_err(BridgeError::Cursor)?
            .unwrap_or_else(|| Cursor {
                map: options.map.clone(),
                watch: options.watch.display().to_string(),
                ..Cursor::default()
            });
        let map_error = |e: tradeloom_queue::FeatureMapError| BridgeError::Map {
            map: options.map.clone(),
            message: e.to_string(),
        };
        let latest = map.latest().map_err(map_error)?;
        cursor.catch_up(latest.as_deref());
        // The map's file is written behind its updates, so it may lag the cursor, which is
        // written after each one: the sequence goes on from whichever is further.
        map.continue_after(cursor.last_seq).map_err(map_error)?;
        let watch = DirWatch::new(&options.watch).map_err(|e| BridgeError::Watch {
            path: options.watch.clone(),
            message: format!("cannot watch: {e}"),
        })?;
        Ok(Self {
            options,
            map,
            cursor,
            cursor_file: CursorFile::new(cursor_path),
            stats: Arc::new(BridgeStats::default()),
            hook: None,
            watch,
            pending: HashMap::new(),
            // The first step lists the directory: the files that came before the watch.
            next_rescan: Instant::now(),
            changes: Vec::new(),
        })
    }

    /// Calls `hook` before each publish.
    pub fn on_publish(mut self, hook: PublishHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<BridgeStats> {
        self.stats.clone()
    }

    /// The map it publishes into.
    pub fn map(&self) -> Arc<dyn FeatureMap> {
        self.map.clone()
    }

    /// Where it is.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Publishes until `stop` is raised, then writes the map's file. Errors only when the
    /// cursor or the map cannot be saved.
    pub fn run(&mut self, stop: &StopSignal) -> Result<(), BridgeError> {
        while !stop.is_stopped() {
            self.step(Instant::now() + STOP_CHECK, usize::MAX)?;
        }
        self.flush()
    }

    /// Spawns [`Bridge::run`] on a thread of its own.
    pub fn spawn(
        mut self,
        stop: StopSignal,
    ) -> std::io::Result<std::thread::JoinHandle<Result<(), BridgeError>>> {
        std::thread::Builder::new()
            .name(format!("bridge-{}", self.options.map))
            .spawn(move || self.run(&stop))
    }

    /// Publishes the complete files that are pending, at most `limit` of them (in order), waiting
    /// for new files until `until` if none is; returns how many were published or skipped as
    /// malformed. The directory's events wake it at once.
    pub fn step(&mut self, until: Instant, limit: usize) -> Result<usize, BridgeError> {
        loop {
            let now = Instant::now();
            if now >= self.next_rescan {
                self.rescan(now);
                self.next_rescan = now + self.options.rescan;
            }
            let (read, recheck) = self.process(limit)?;
            let now = Instant::now();
            if read > 0 || now >= until {
                return Ok(read);
            }
            let mut wake = until.min(self.next_rescan);
            if let Some(at) = recheck {
                wake = wake.min(at);
            }
            self.receive(wake.saturating_duration_since(now));
        }
    }

    /// Writes the map's file now (what a stop does).
    pub fn flush(&self) -> Result<(), BridgeError> {
        self.map.flush().map_err(|e| BridgeError::Map {
            map: self.options.map.clone(),
            message: e.to_string(),
        })
    }

    /// Waits at most `wait` for the directory's events and notes the files they name.
    fn receive(&mut self, wait: Duration) {
        let mut changes = std::mem::take(&mut self.changes);
        changes.clear();
        if let Err(e) = self.watch.wait(wait, &mut changes) {
            tracing::warn!(map = %self.options.map, "watch error: {e}");
            // The next rescan catches up; not at once, so a broken watch cannot spin.
            std::thread::sleep(wait);
        }
        let observed = Instant::now();
        for change in changes.drain(..) {
            match change {
                Change::File { name, complete } => {
                    if ScanFormat::of(&name).is_none() {
                        continue;
                    }
                    let entry = self.pending.entry(name).or_insert(Pending {
                        observed,
                        complete: false,
                        last: None,
                    });
                    entry.complete |= complete;
                }
                Change::Removed { name } => {
                    self.pending.remove(&name);
                }
                Change::Lost => {
                    tracing::warn!(map = %self.options.map, "file events were lost; listing the directory");
                    self.next_rescan = observed;
                }
            }
        }
        self.changes = changes;
    }

    /// Lists the directory and notes every scan file newer than the cursor.
    fn rescan(&mut self, now: Instant) {
        let entries = match std::fs::read_dir(&self.options.watch) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(
                    watch = %self.options.watch.display(),
                    "cannot list the scan directory: {e}"
                );
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if ScanFormat::of(name).is_none() || self.pending.contains_key(name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let Ok(modified) = meta.modified() else {
                continue;
            };
            if self.cursor.is_new(&(mtime_ns(modified), name.to_string())) {
                self.pending.insert(
                    name.to_string(),
                    Pending {
                        observed: now,
                        complete: false,
                        last: None,
                    },
                );
            }
        }
    }

    /// Reads and publishes the pending files that are complete, in order, at most `limit`;
    /// returns how many it read and when the next file that is not yet known to be complete
    /// should be checked again.
    fn process(&mut self, limit: usize) -> Result<(usize, Option<Instant>), BridgeError> {
        if self.pending.is_empty() {
            return Ok((0, None));
        }
        let mut pending = std::mem::take(&mut self.pending);
        let result = self.process_pending(&mut pending, limit);
        self.pending = pending;
        result
    }

    fn process_pending(
        &mut self,
        pending: &mut HashMap<String, Pending>,
        limit: usize,
    ) -> Result<(usize, Option<Instant>), BridgeError> {
        let now = Instant::now();
        // Every pending file with its key and whether it can be read now.
        let mut files: Vec<(FileKey, Instant, bool)> = Vec::new();
        let mut recheck: Option<Instant> = None;
        let settle = self.options.settle;
        pending.retain(|name, p| {
            let path = self.options.watch.join(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                return false; // gone (renamed away or deleted)
            };
            let Ok(modified) = meta.modified() else {
                return false;
            };
            let key = (mtime_ns(modified), name.clone());
            if !self.cursor.is_new(&key) {
                if self.cursor.last_file.as_deref() != Some(name) {
                    self.stats.old.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        file = %path.display(),
                        "ignored: not newer than the last scan read ({})",
                        self.cursor.last_file.as_deref().unwrap_or("-")
                    );
                }
                return false;
            }
            let now_state = (meta.len(), key.0);
            let stable = match p.last {
                Some((len, mtime, at)) => {
                    (len, mtime) == now_state && now.saturating_duration_since(at) >= settle
                }
                None => false,
            };
            let ready = p.complete || stable;
            if !ready {
                if p.last.map(|(len, mtime, _)| (len, mtime)) != Some(now_state) {
                    p.last = Some((now_state.0, now_state.1, now));
                }
                let at = p.last.map_or(now, |(_, _, at)| at) + settle;
                recheck = Some(recheck.map_or(at, |r: Instant| r.min(at)));
            }
            files.push((key, p.observed, ready));
            true
        });
        // In order; a file that is not ready yet holds back the later ones (else reading them
        // would move the cursor past it). It is ready within `settle` unless it is still being
        // written, and then its modification time moves it behind them.
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut read = 0;
        for (key, observed, ready) in files {
            if !ready || read >= limit {
                break;
            }
            pending.remove(&key.1);
            if self.cursor.is_new(&key) {
                self.read_and_publish(key, observed)?;
                read += 1;
            }
        }
        Ok((read, recheck))
    }

    /// Reads one complete file and publishes it (or counts it as malformed); moves the cursor.
    fn read_and_publish(&mut self, key: FileKey, observed: Instant) -> Result<(), BridgeError> {
        let (mtime, name) = key;
        let path = self.options.watch.join(&name);
        let format = ScanFormat::of(&name);
        let rows = match format.map(|f| read_scan(&path, f, &self.options.key)) {
            Some(Ok(rows)) => Some(rows),
            Some(Err(e)) => {
                tracing::warn!(map = %self.options.map, "skipped a malformed scan file: {e}");
                None
            }
            None => None,
        };
        match rows {
            Some(rows) => {
                let updated_at = to_datetime(mtime);
                let seq = self
                    .cursor
                    .last_seq
                    .max(self.map.latest().ok().flatten().map_or(0, |s| s.seq))
                    + 1;
                if let Some(hook) = self.hook.as_mut() {
                    hook(&Published {
                        seq,
                        file: name.clone(),
                        rows: rows.len(),
                        updated_at,
                    });
                }
                let values = MapValues::from_pairs(
                    rows.into_iter()
                        .map(|(k, row)| (k, serde_json::Value::Object(row)))
                        .collect(),
                )
                .map_err(|e| BridgeError::Map {
                    map: self.options.map.clone(),
                    message: e.to_string(),
                })?;
                let snap = self
                    .map
                    .publish(MapUpdate {
                        updated_at,
                        source: name.clone(),
                        values,
                        observed: Some(observed),
                    })
                    .map_err(|e| BridgeError::Map {
                        map: self.options.map.clone(),
                        message: e.to_string(),
                    })?;
                if snap.seq != seq {
                    tracing::warn!(
                        map = %self.options.map,
                        "scan {name} was published as {} instead of {seq}: another process publishes into this map",
                        snap.seq
                    );
                }
                self.cursor.last_seq = snap.seq;
                self.cursor.published += 1;
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.cursor.malformed += 1;
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.cursor.last_file = Some(name);
        self.cursor.last_mtime_ns = Some(mtime);
        self.cursor_file
            .save(&self.cursor)
            .map_err(BridgeError::Cursor)
    }
}
