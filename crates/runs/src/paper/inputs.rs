//! `state/inputs.jsonl`: every input a paper run processed, in order, written before it is
//! processed — bars, scans, malformed messages and status changes of the feed, the kill switch's
//! answers as the engine saw them, idle polls of the kill switch, and resumptions. The engine is
//! deterministic, so replaying these through a fresh engine rebuilds the run exactly (how
//! `tradeloom run --resume` continues a run killed at any point).
//!
//! One JSON object per line with a `kind`. Lines are buffered and written in batches by a
//! writer thread of the log's own (which also hashes them, and writes `state/snapshot.json`
//! in their order: a snapshot never describes an event the file lacks). They reach the kernel
//! always before anything produced from them does: the run's artifact pipe
//! [flushes](InputLog::flush) the log — waits until the writer thread has written every line
//! so far — before it hands journal, CSV or equity bytes to its own writer thread (see
//! [`crate::hashing::ArtifactPipe::with_barrier`]), and the runner flushes it at every
//! hand-over tick. So after a kill the file covers every event the other files show; events
//! recorded in a lost batch had left no trace and are delivered again by the feed. A partial
//! last line (a write the kill interrupted) is dropped on resume.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, InstrumentId, Price, Quantity, UnixNanos};
use tradeloom_engine::ScanFields;

use crate::error::RunError;
use crate::paper::snapshot::{SNAPSHOT_FILE, Snapshot};
use crate::paper::{FeedEvent, Scan, ScanRow};

/// The file's path in a run folder.
pub const INPUTS_FILE: &str = "state/inputs.jsonl";

/// A bar as recorded: raw fixed-point values (prices and volume at 10^-9) and their precisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BarRecord {
    /// The instrument's index in the spec.
    pub i: u32,
    /// The bar's time, ns since the epoch.
    pub ts: i64,
    pub o: i64,
    pub h: i64,
    pub l: i64,
    pub c: i64,
    pub v: i64,
    /// Price precision.
    pub pp: u8,
    /// Size precision.
    pub sp: u8,
}

impl BarRecord {
    pub fn of(bar: &Bar) -> Self {
        Self {
            i: bar.instrument.0,
            ts: bar.ts.0,
            o: bar.open.raw(),
            h: bar.high.raw(),
            l: bar.low.raw(),
            c: bar.close.raw(),
            v: bar.volume.raw(),
            pp: bar.close.precision(),
            sp: bar.volume.precision(),
        }
    }

    pub fn to_bar(&self) -> Result<Bar, String> {
        let price = |raw| Price::from_raw(raw, self.pp);
        Ok(Bar {
            instrument: InstrumentId(self.i),
            ts: UnixNanos(self.ts),
            open: price(self.o),
            high: price(self.h),
            low: price(self.l),
            close: price(self.c),
            volume: Quantity::from_raw(self.v, self.sp).map_err(|e| e.to_string())?,
        })
    }
}

/// One scan row as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanRowRecord {
    pub bar: BarRecord,
    pub values: Vec<Option<f64>>,
}

/// One line of `state/inputs.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// A bar; `stale` says why orders were refused while processing it (`max_data_age`).
    Bar {
        /// The input's number among the run's events (from 1).
        n: u64,
        /// When it was processed (ns since the epoch, wall clock).
        wall: i64,
        bar: BarRecord,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stale: Option<String>,
    },
    /// Bars of a replay feed, read back from the spec's data files on resume (see
    /// [`FeedPoll::Replayed`](crate::paper::FeedPoll::Replayed)): bars `from` to
    /// `from + count - 1` of the files merged in time order, processed as events `n` to
    /// `n + count - 1`, all at wall time `wall`. `last_ts` (the last bar's time) and `digest`
    /// ([`bars_digest`] of the bars) tell whether the files still hold those bars.
    Replay {
        /// The number of the first of its events.
        n: u64,
        wall: i64,
        from: u64,
        count: u64,
        last_ts: i64,
        /// 16 hex digits.
        digest: String,
    },
    /// A scan.
    Scan {
        n: u64,
        wall: i64,
        seq: u64,
        ts: i64,
        source: String,
        names: Vec<String>,
        rows: Vec<ScanRowRecord>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stale: Option<String>,
    },
    /// Something the feed could not use (or a bar out of order): journaled.
    Malformed { n: u64, wall: i64, reason: String },
    /// The feed's source connected or disconnected: journaled.
    Status {
        n: u64,
        wall: i64,
        connected: bool,
        detail: String,
    },
    /// The kill switch was asked while the feed was quiet (and had changed).
    Idle { n: u64, wall: i64 },
    /// The run was resumed here (`interrupted`: why it had stopped, if it was marked so).
    Resumed {
        n: u64,
        wall: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupted: Option<String>,
    },
    /// An order from outside the strategy (see [`crate::paper::orders`]), checked against the
    /// run's instruments before it was recorded: submitted at the time of the last bar.
    Order {
        n: u64,
        wall: i64,
        order: crate::paper::orders::ExternalOrder,
    },
    /// The kill switch's answer changed at the engine's `call`-th question to it (not an
    /// event: it happens while one is processed).
    Gate {
        call: u64,
        engaged: Option<String>,
        flatten: bool,
    },
}

impl Input {
    /// The event number (of the last of its events for a [`Input::Replay`]; `None` for a gate
    /// change, which is not an event).
    pub fn n(&self) -> Option<u64> {
        match self {
            Input::Replay { n, count, .. } => Some((n + count).saturating_sub(1)),
            Input::Bar { n, .. }
            | Input::Scan { n, .. }
            | Input::Malformed { n, .. }
            | Input::Status { n, .. }
            | Input::Idle { n, .. }
            | Input::Order { n, .. }
            | Input::Resumed { n, .. } => Some(*n),
            Input::Gate { .. } => None,
        }
    }

    /// The record of a feed event (`n`: its event number; `wall`: now).
    pub fn of_feed(event: &FeedEvent, n: u64, wall: i64, stale: Option<String>) -> Self {
        match event {
            FeedEvent::Bar(bar) => Input::Bar {
                n,
                wall,
                bar: BarRecord::of(bar),
                stale,
            },
            FeedEvent::Scan(scan) => {
                let names: Vec<String> = scan
                    .rows
                    .first()
                    .map(|r| r.fields.iter().map(|(k, _)| k.to_string()).collect())
                    .unwrap_or_default();
                Input::Scan {
                    n,
                    wall,
                    seq: scan.seq,
                    ts: scan.ts.0,
                    source: scan.source.clone(),
                    names,
                    rows: scan
                        .rows
                        .iter()
                        .map(|r| ScanRowRecord {
                            bar: BarRecord::of(&r.bar),
                            values: r.fields.iter().map(|(_, v)| v).collect(),
                        })
                        .collect(),
                    stale,
                }
            }
            FeedEvent::Malformed { reason } => Input::Malformed {
                n,
                wall,
                reason: reason.clone(),
            },
            FeedEvent::Status { connected, detail } => Input::Status {
                n,
                wall,
                connected: *connected,
                detail: detail.clone(),
            },
        }
    }
}

impl Input {
    /// Appends the record's JSON (the line without its `\n`) to `out`: exactly the bytes
    /// `serde_json::to_writer` writes, formatted by hand for the records written per event
    /// (a bar, the kill switch's answer, an idle poll) and through serde for the others.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut int = itoa::Buffer::new();
        let field = |out: &mut Vec<u8>, name: &[u8], value: &str| {
            out.extend_from_slice(name);
            out.extend_from_slice(value.as_bytes());
        };
        match self {
            Input::Bar {
                n,
                wall,
                bar,
                stale,
            } => {
                field(out, b"{\"kind\":\"bar\",\"n\":", int.format(*n));
                field(out, b",\"wall\":", int.format(*wall));
                field(out, b",\"bar\":{\"i\":", int.format(bar.i));
                field(out, b",\"ts\":", int.format(bar.ts));
                field(out, b",\"o\":", int.format(bar.o));
                field(out, b",\"h\":", int.format(bar.h));
                field(out, b",\"l\":", int.format(bar.l));
                field(out, b",\"c\":", int.format(bar.c));
                field(out, b",\"v\":", int.format(bar.v));
                field(out, b",\"pp\":", int.format(bar.pp));
                field(out, b",\"sp\":", int.format(bar.sp));
                out.push(b'}');
                if let Some(stale) = stale {
                    out.extend_from_slice(b",\"stale\":");
                    serde_json::to_writer(&mut *out, stale)?;
                }
                out.push(b'}');
            }
            Input::Replay {
                n,
                wall,
                from,
                count,
                last_ts,
                digest,
            } => {
                field(out, b"{\"kind\":\"replay\",\"n\":", int.format(*n));
                field(out, b",\"wall\":", int.format(*wall));
                field(out, b",\"from\":", int.format(*from));
                field(out, b",\"count\":", int.format(*count));
                field(out, b",\"last_ts\":", int.format(*last_ts));
                out.extend_from_slice(b",\"digest\":");
                serde_json::to_writer(&mut *out, digest)?;
                out.push(b'}');
            }
            Input::Idle { n, wall } => {
                field(out, b"{\"kind\":\"idle\",\"n\":", int.format(*n));
                field(out, b",\"wall\":", int.format(*wall));
                out.push(b'}');
            }
            Input::Gate {
                call,
                engaged,
                flatten,
            } => {
                field(out, b"{\"kind\":\"gate\",\"call\":", int.format(*call));
                out.extend_from_slice(b",\"engaged\":");
                match engaged {
                    Some(why) => serde_json::to_writer(&mut *out, why)?,
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(if *flatten {
                    b",\"flatten\":true}"
                } else {
                    b",\"flatten\":false}"
                });
            }
            _ => serde_json::to_writer(&mut *out, self)?,
        }
        Ok(())
    }
}

/// A digest of `bars` (their instruments, times, prices and volumes), as 16 hex digits: what
/// an [`Input::Replay`] records so that a resumed run knows the data files it reads the bars
/// back from still hold them. Not cryptographic (the data files' sha256 is in `metadata.json`);
/// it tells an edited or replaced file from the one the run read.
pub fn bars_digest(bars: &[Bar]) -> String {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for bar in bars {
        // One multiplication per bar (the replay's hot path); the rotations keep each field's
        // bits apart.
        let x = (bar.ts.0 as u64)
            ^ (bar.open.raw() as u64).rotate_left(9)
            ^ (bar.high.raw() as u64).rotate_left(18)
            ^ (bar.low.raw() as u64).rotate_left(27)
            ^ (bar.close.raw() as u64).rotate_left(36)
            ^ (bar.volume.raw() as u64).rotate_left(45)
            ^ u64::from(bar.instrument.0).rotate_left(54);
        h = (h ^ x).wrapping_mul(K).rotate_left(29);
    }
    let mut text = String::with_capacity(16);
    for i in (0..16).rev() {
        let d = ((h >> (i * 4)) & 0xf) as u8;
        text.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
    }
    text
}

/// A recorded scan rebuilt for the engine.
pub fn scan_of(
    seq: u64,
    ts: i64,
    source: &str,
    names: &[String],
    rows: &[ScanRowRecord],
) -> Result<Scan, String> {
    let names: Arc<[String]> = names.to_vec().into();
    let rows = rows
        .iter()
        .map(|r| {
            Ok(ScanRow {
                bar: r.bar.to_bar()?,
                fields: ScanFields::new(Arc::clone(&names), r.values.clone()),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Scan {
        seq,
        ts: UnixNanos(ts),
        source: source.to_string(),
        observed: std::time::Instant::now(),
        rows,
    })
}

/// Buffered records are handed to the writer thread once they reach this many bytes (or
/// earlier, at a [flush](InputLog::flush)).
const BATCH: usize = 64 * 1024;
/// Batches and snapshots on their way to the writer thread before [`InputLog::write`] waits.
const IN_FLIGHT: usize = 16;

/// What the log asks of its writer thread, done in the order asked.
enum Job {
    /// Append these whole lines to `state/inputs.jsonl`.
    Lines(Vec<u8>),
    /// Replace `state/snapshot.json` of this run folder.
    Snapshot(Box<Snapshot>, PathBuf),
}

/// The writer thread's first failure: the file and what the system said.
type Failure = (PathBuf, io::ErrorKind, String);

/// What the writer thread reports back.
#[derive(Default)]
struct Progress {
    /// [`Job::Lines`] done (written, or dropped after a failure).
    lines_done: u64,
    failure: Option<Failure>,
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
    /// Spent batches, for reuse.
    pool: Mutex<Vec<Vec<u8>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind the lock: a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The file, its digest and its size, handed back by the writer thread when it ends.
type Written = (File, Sha256, u64);

/// Appends records to `state/inputs.jsonl` (and writes `state/snapshot.json` in their order)
/// through a writer thread of its own; see the module documentation.
pub struct InputLog {
    path: PathBuf,
    /// Whole lines not handed to the writer thread yet.
    buf: Vec<u8>,
    /// `None` once [`InputLog::sync`] ended the writer thread.
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Written>>,
    shared: Arc<Shared>,
    /// [`Job::Lines`] sent to the writer thread.
    lines_sent: u64,
}

impl InputLog {
    /// Creates the file (a new run).
    pub fn create(path: &Path) -> Result<Self, RunError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RunError::io(dir, e))?;
        }
        let file = File::create(path).map_err(|e| RunError::io(path, e))?;
        Self::with(file, path, Sha256::new(), 0)
    }

    /// Opens the file of a resumed run after its last whole line (a partial one is cut off).
    pub fn append(path: &Path) -> Result<Self, RunError> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| RunError::io(path, e))?;
        let end = crate::journal::cut_to_last_line(&mut file).map_err(|e| RunError::io(path, e))?;
        // The digest covers the whole file: the lines kept, then those appended.
        use std::io::{Read, Seek};
        file.seek(io::SeekFrom::Start(0))
            .map_err(|e| RunError::io(path, e))?;
        let mut hasher = Sha256::new();
        let mut block = vec![0u8; 1 << 16];
        let mut read = 0u64;
        while read < end {
            let n = file.read(&mut block).map_err(|e| RunError::io(path, e))?;
            if n == 0 {
                break;
            }
            let n = n.min(usize::try_from(end - read).unwrap_or(n));
            hasher.update(&block[..n]);
            read += n as u64;
        }
        if read != end {
            return Err(RunError::io(
                path,
                io::Error::other(format!("read {read} of its {end} bytes")),
            ));
        }
        file.seek(io::SeekFrom::Start(end))
            .map_err(|e| RunError::io(path, e))?;
        Self::with(file, path, hasher, end)
    }

    fn with(file: File, path: &Path, hasher: Sha256, bytes: u64) -> Result<Self, RunError> {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            let owned = path.to_path_buf();
            std::thread::Builder::new()
                .name("paper-inputs".to_string())
                .spawn(move || write_jobs(&rx, &shared, &owned, (file, hasher, bytes)))
                .map_err(|e| RunError::io(path, e))?
        };
        Ok(Self {
            path: path.to_path_buf(),
            buf: Vec::with_capacity(BATCH + 4096),
            tx: Some(tx),
            thread: Some(thread),
            shared,
            lines_sent: 0,
        })
    }

    /// Appends one record as a line to the buffer; hands the buffer to the writer thread once
    /// it holds [`BATCH`] bytes.
    pub fn write(&mut self, input: &Input) -> Result<(), RunError> {
        let start = self.buf.len();
        if let Err(e) = input.write_json(&mut self.buf) {
            self.buf.truncate(start);
            return Err(RunError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            });
        }
        self.buf.push(b'\n');
        if self.buf.len() >= BATCH {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Writes `snapshot` into `run_dir` (atomically) once every record buffered or handed over
    /// so far is in `state/inputs.jsonl`; does not wait for it. A failure fails a later call.
    pub fn snapshot(&mut self, snapshot: Snapshot, run_dir: &Path) -> Result<(), RunError> {
        self.hand_over()?;
        self.send(Job::Snapshot(Box::new(snapshot), run_dir.to_path_buf()))
    }

    /// Hands the buffered lines to the kernel and waits until it has them (and every line
    /// handed over before), so that they survive the process. Snapshots sent before are not
    /// waited for (the writer thread writes them after the lines it holds): a flush is what
    /// the run's other files wait for before each hand-over, and a snapshot is only a check.
    pub fn flush(&mut self) -> Result<(), RunError> {
        self.hand_over()?;
        let mut progress = lock(&self.shared.progress);
        while progress.lines_done < self.lines_sent && progress.failure.is_none() {
            progress = self
                .shared
                .changed
                .wait(progress)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match &progress.failure {
            Some(failure) => Err(failed(failure)),
            None => Ok(()),
        }
    }

    /// Flushes, ends the writer thread (once it has written every snapshot sent too) and
    /// makes the file durable (at the end of the run); returns the file's sha256 (hex) and
    /// size. Later writes fail.
    pub fn sync(&mut self) -> Result<(String, u64), RunError> {
        self.flush()?;
        self.tx = None;
        let (file, hasher, bytes) = self.join()?;
        file.sync_data().map_err(|e| RunError::io(&self.path, e))?;
        Ok((hex::encode(hasher.finalize()), bytes))
    }

    /// Sends the buffered lines to the writer thread (without waiting for them).
    fn hand_over(&mut self) -> Result<(), RunError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = lock(&self.shared.pool)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH + 4096));
        let lines = std::mem::replace(&mut self.buf, next);
        self.send(Job::Lines(lines))?;
        self.lines_sent += 1;
        Ok(())
    }

    fn send(&mut self, job: Job) -> Result<(), RunError> {
        if let Some(failure) = &lock(&self.shared.progress).failure {
            return Err(failed(failure));
        }
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            return Err(RunError::io(
                &self.path,
                io::Error::other("the input log was closed"),
            ));
        }
        Ok(())
    }

    /// Waits for the writer thread to end (its channel closed) and takes the file back.
    fn join(&mut self) -> Result<Written, RunError> {
        let thread = self.thread.take().ok_or_else(|| {
            RunError::io(&self.path, io::Error::other("the input log was closed"))
        })?;
        let written = thread.join().map_err(|_| {
            RunError::io(
                &self.path,
                io::Error::other("the input log's writer thread panicked"),
            )
        })?;
        match &lock(&self.shared.progress).failure {
            Some(failure) => Err(failed(failure)),
            None => Ok(written),
        }
    }
}

fn failed((path, kind, message): &Failure) -> RunError {
    RunError::io(path, io::Error::new(*kind, message.clone()))
}

/// The writer thread: writes the lines in the order sent until the channel closes; after a
/// failure the later jobs are dropped (and reported by the log's next call). Of the jobs
/// waiting, the lines are written first and reported done (what [`InputLog::flush`] waits
/// for), then the last snapshot among them: it covers only lines sent before it, which are
/// written by then. The snapshots before it are not written: renaming a file over another can
/// wait for the disk, and a snapshot replaced before it was written told nothing.
fn write_jobs(rx: &Receiver<Job>, shared: &Shared, path: &Path, written: Written) -> Written {
    let (mut file, mut hasher, mut bytes) = written;
    let mut jobs: Vec<Job> = Vec::with_capacity(IN_FLIGHT + 1);
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        jobs.extend(rx.try_iter());
        let mut failed = lock(&shared.progress).failure.is_some();
        let mut failure = None;
        let mut lines_done = 0;
        let mut snapshot = None;
        for job in jobs.drain(..) {
            match job {
                Job::Lines(mut lines) => {
                    lines_done += 1;
                    if !failed {
                        match file.write_all(&lines) {
                            Ok(()) => {
                                hasher.update(&lines);
                                bytes += lines.len() as u64;
                            }
                            Err(e) => {
                                failed = true;
                                failure = Some((path.to_path_buf(), e.kind(), e.to_string()));
                            }
                        }
                    }
                    lines.clear();
                    lock(&shared.pool).push(lines);
                }
                Job::Snapshot(s, run_dir) => snapshot = Some((s, run_dir)),
            }
        }
        report(shared, lines_done, failure);
        if let (false, Some((snapshot, run_dir))) = (failed, snapshot)
            && let Err(e) = snapshot.write(&run_dir)
        {
            let failure = match e {
                RunError::Io { path, source } => (path, source.kind(), source.to_string()),
                other => (
                    run_dir.join(SNAPSHOT_FILE),
                    io::ErrorKind::Other,
                    other.to_string(),
                ),
            };
            report(shared, 0, Some(failure));
        }
    }
    (file, hasher, bytes)
}

/// Adds `lines` jobs done to the progress, keeps the first failure, and wakes the waiters.
fn report(shared: &Shared, lines: u64, failure: Option<Failure>) {
    let mut progress = lock(&shared.progress);
    progress.lines_done += lines;
    if let Some(failure) = failure {
        progress.failure.get_or_insert(failure);
    }
    drop(progress);
    shared.changed.notify_all();
}

impl Drop for InputLog {
    fn drop(&mut self) {
        // A run that fails still leaves every recorded input in the file (its error is
        // reported already; a failure here would only repeat one).
        let _ = self.hand_over();
        self.tx = None;
        let _ = self.join();
    }
}

/// Reads the whole lines of `state/inputs.jsonl` (a partial last line is ignored). Errors name
/// the line.
pub fn read_inputs(path: &Path) -> Result<Vec<Input>, RunError> {
    let text = std::fs::read(path).map_err(|e| RunError::io(path, e))?;
    let whole = match text.iter().rposition(|&b| b == b'\n') {
        Some(i) => &text[..=i],
        None => &[][..],
    };
    let mut inputs = Vec::new();
    for (i, line) in whole.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let input = serde_json::from_slice(line).map_err(|e| RunError::Corrupt {
            path: path.to_path_buf(),
            message: format!("line {}: not a recorded input: {e}", i + 1),
        })?;
        inputs.push(input);
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_partial_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/inputs.jsonl");
        let bar = Bar {
            instrument: InstrumentId(1),
            ts: UnixNanos(1_700_000_000_000_000_000),
            open: Price::from_raw(101_500_000_000, 2),
            high: Price::from_raw(102_000_000_000, 2),
            low: Price::from_raw(100_000_000_000, 2),
            close: Price::from_raw(101_000_000_000, 2),
            volume: Quantity::from_raw(5_000_000_000, 0).unwrap(),
        };
        let inputs = vec![
            Input::of_feed(&FeedEvent::Bar(bar), 1, 7, Some("old".to_string())),
            Input::Gate {
                call: 3,
                engaged: Some("operator: stop".to_string()),
                flatten: true,
            },
            Input::Idle { n: 2, wall: 9 },
            Input::Replay {
                n: 3,
                wall: 10,
                from: 0,
                count: 1,
                last_ts: bar.ts.0,
                digest: bars_digest(&[bar]),
            },
        ];
        let mut log = InputLog::create(&path).unwrap();
        for input in &inputs {
            log.write(input).unwrap();
        }
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"kind\":\"bar\",\"n\":4");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_inputs(&path).unwrap(), inputs);
        let Input::Bar { bar: record, .. } = &inputs[0] else {
            unreachable!()
        };
        assert_eq!(record.to_bar().unwrap(), bar);
        // Reopened for appending: the partial line is cut, new lines follow the whole ones.
        let mut log = InputLog::append(&path).unwrap();
        log.write(&Input::Idle { n: 4, wall: 11 }).unwrap();
        // Buffered until flushed.
        assert_eq!(read_inputs(&path).unwrap().len(), 4);
        log.flush().unwrap();
        let back = read_inputs(&path).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back[4], Input::Idle { n: 4, wall: 11 });
    }

    #[test]
    fn the_writer_thread_hashes_the_file_and_writes_the_newest_snapshot_after_its_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INPUTS_FILE);
        let snapshot = |events: u64| Snapshot {
            run_id: "r".to_string(),
            written_at: String::new(),
            events,
            journal_lines: 0,
            last_bar_ts: None,
            last_scan_seq: None,
            last_event_ts: None,
            strategy: serde_json::Value::Null,
            book: crate::paper::snapshot::BookState {
                cash: "1".to_string(),
                equity: "1".to_string(),
                positions: Vec::new(),
                working_orders: Vec::new(),
            },
        };
        let mut log = InputLog::create(&path).unwrap();
        for n in 1..=5000 {
            log.write(&Input::Idle { n, wall: 7 }).unwrap();
            if n.is_multiple_of(100) {
                log.snapshot(snapshot(n), dir.path()).unwrap();
            }
        }
        log.flush().unwrap();
        // A flush waits for the lines, not the snapshots; the snapshot on disk never
        // describes an event the inputs lack.
        assert_eq!(read_inputs(&path).unwrap().len(), 5000);
        if let Some(written) = Snapshot::read(dir.path()).unwrap() {
            assert!(written.events <= 5000, "{}", written.events);
        }
        let (sha256, bytes) = log.sync().unwrap();
        assert_eq!((sha256, bytes), crate::hashing::sha256_file(&path).unwrap());
        let written = Snapshot::read(dir.path()).unwrap().unwrap();
        assert_eq!(
            written.events, 5000,
            "the newest is written last, before sync returns"
        );
        assert!(
            log.write(&Input::Idle { n: 1, wall: 1 }).is_ok(),
            "buffered"
        );
        assert!(log.flush().is_err(), "closed after sync");
        drop(log);
        // Appending: the digest covers the lines kept and those appended.
        let mut log = InputLog::append(&path).unwrap();
        log.write(&Input::Idle { n: 5001, wall: 8 }).unwrap();
        let (sha256, bytes) = log.sync().unwrap();
        assert_eq!((sha256, bytes), crate::hashing::sha256_file(&path).unwrap());
        assert_eq!(read_inputs(&path).unwrap().len(), 5001);
    }

    #[test]
    fn the_digest_of_bars_changes_with_any_field_of_any_bar_and_their_order() {
        let bar = |i: i64| Bar {
            instrument: InstrumentId(0),
            ts: UnixNanos(1_700_000_000_000_000_000 + i * 60_000_000_000),
            open: Price::from_raw(100_000_000_000 + i, 2),
            high: Price::from_raw(101_000_000_000 + i, 2),
            low: Price::from_raw(99_000_000_000 + i, 2),
            close: Price::from_raw(100_500_000_000 + i, 2),
            volume: Quantity::from_raw(7_000_000_000, 0).unwrap(),
        };
        let bars: Vec<Bar> = (0..50).map(bar).collect();
        let digest = bars_digest(&bars);
        assert_eq!(digest.len(), 16);
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
        let edits: [fn(&mut Bar); 7] = [
            |b| b.instrument = InstrumentId(1),
            |b| b.ts = UnixNanos(b.ts.0 + 1),
            |b| b.open = Price::from_raw(b.open.raw() + 1, 2),
            |b| b.high = Price::from_raw(b.high.raw() + 1, 2),
            |b| b.low = Price::from_raw(b.low.raw() - 1, 2),
            |b| b.close = Price::from_raw(b.close.raw() + 1_000_000_000, 2),
            |b| b.volume = Quantity::from_raw(8_000_000_000, 0).unwrap(),
        ];
        for at in [0, 17, 49] {
            for edit in edits {
                let mut changed = bars.clone();
                edit(&mut changed[at]);
                assert_ne!(bars_digest(&changed), digest, "bar {at}");
            }
        }
        let mut swapped = bars.clone();
        swapped.swap(3, 4);
        assert_ne!(bars_digest(&swapped), digest);
        assert_ne!(bars_digest(&bars[..49]), digest);
    }

    #[test]
    fn records_formatted_by_hand_are_the_bytes_serde_writes() {
        let bar = |i: u32, raw: i64, pp: u8| BarRecord {
            i,
            ts: raw.wrapping_mul(7),
            o: raw,
            h: raw.saturating_add(1),
            l: raw.saturating_sub(1),
            c: raw.wrapping_neg(),
            v: raw / 3,
            pp,
            sp: pp / 2,
        };
        let mut inputs = Vec::new();
        for (k, raw) in [0, 1, -1, 9, 10, 123_456_789_000, i64::MIN, i64::MAX]
            .into_iter()
            .enumerate()
        {
            let k = k as u64;
            inputs.push(Input::Bar {
                n: k,
                wall: raw,
                bar: bar(k as u32 * 1_000_000, raw, (k as u8).wrapping_mul(37)),
                stale: None,
            });
            inputs.push(Input::Bar {
                n: u64::MAX - k,
                wall: raw.wrapping_neg(),
                bar: bar(u32::MAX - k as u32, raw, 255),
                stale: Some(format!("old \"{raw}\"\n\\ é \u{1}")),
            });
            inputs.push(Input::Idle { n: k, wall: raw });
            inputs.push(Input::Replay {
                n: u64::MAX - k,
                wall: raw,
                from: k * 1_000_003,
                count: k + 1,
                last_ts: raw.wrapping_neg(),
                digest: format!("{:016x}", raw as u64),
            });
            inputs.push(Input::Gate {
                call: k * 1_000_003,
                engaged: k
                    .is_multiple_of(2)
                    .then(|| format!("operator: \"stop\" \t{k}")),
                flatten: k.is_multiple_of(3),
            });
        }
        inputs.push(Input::Malformed {
            n: 3,
            wall: 4,
            reason: "bad".to_string(),
        });
        for input in &inputs {
            let mut out = Vec::new();
            input.write_json(&mut out).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(input).unwrap()
            );
        }
    }
}
