//! `state/inputs.jsonl`: every input a paper run processed, in order, written before it is
//! processed — bars, scans, malformed messages and status changes of the feed, the kill switch's
//! answers as the engine saw them, idle polls of the kill switch, and resumptions. The engine is
//! deterministic, so replaying these through a fresh engine rebuilds the run exactly (how
//! `tradeloom run --resume` continues a run killed at any point).
//!
//! One JSON object per line with a `kind`. Lines are buffered and handed to the kernel in
//! batches ([`InputLog::flush`]), always before anything produced from them is: the run's
//! artifact pipe flushes the log before it hands journal, CSV or equity bytes to its writer
//! thread (see [`crate::hashing::ArtifactPipe::with_barrier`]), and the runner flushes it before
//! every snapshot and at every hand-over tick. So after a kill the file covers every event the
//! other files show; events recorded in a lost batch had left no trace and are delivered again
//! by the feed. A partial last line (a write the kill interrupted) is dropped on resume.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tradeloom_core::{Bar, InstrumentId, Price, Quantity, UnixNanos};
use tradeloom_engine::ScanFields;

use crate::error::RunError;
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
    /// The kill switch's answer changed at the engine's `call`-th question to it (not an
    /// event: it happens while one is processed).
    Gate {
        call: u64,
        engaged: Option<String>,
        flatten: bool,
    },
}

impl Input {
    /// The event number (`None` for a gate change, which is not an event).
    pub fn n(&self) -> Option<u64> {
        match self {
            Input::Bar { n, .. }
            | Input::Scan { n, .. }
            | Input::Malformed { n, .. }
            | Input::Status { n, .. }
            | Input::Idle { n, .. }
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

/// Buffered records are handed to the kernel once they reach this many bytes (or earlier, at a
/// [flush](InputLog::flush)).
const BATCH: usize = 64 * 1024;

/// Appends lines to `state/inputs.jsonl`, buffered (see the module documentation).
pub struct InputLog {
    file: File,
    path: PathBuf,
    /// Whole lines not handed to the kernel yet.
    buf: Vec<u8>,
}

impl InputLog {
    /// Creates the file (a new run).
    pub fn create(path: &Path) -> Result<Self, RunError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RunError::io(dir, e))?;
        }
        let file = File::create(path).map_err(|e| RunError::io(path, e))?;
        Ok(Self::with(file, path))
    }

    /// Opens the file of a resumed run after its last whole line (a partial one is cut off).
    pub fn append(path: &Path) -> Result<Self, RunError> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| RunError::io(path, e))?;
        let end = crate::journal::cut_to_last_line(&mut file).map_err(|e| RunError::io(path, e))?;
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(end))
            .map_err(|e| RunError::io(path, e))?;
        Ok(Self::with(file, path))
    }

    fn with(file: File, path: &Path) -> Self {
        Self {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(BATCH + 4096),
        }
    }

    /// Appends one record as a line to the buffer; hands the buffer to the kernel once it holds
    /// [`BATCH`] bytes.
    pub fn write(&mut self, input: &Input) -> Result<(), RunError> {
        let start = self.buf.len();
        if let Err(e) = serde_json::to_writer(&mut self.buf, input) {
            self.buf.truncate(start);
            return Err(RunError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            });
        }
        self.buf.push(b'\n');
        if self.buf.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the buffered lines to the kernel (one `write` unless it is interrupted), so that
    /// they survive the process.
    pub fn flush(&mut self) -> Result<(), RunError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.buf);
        // Written or not, the lines are not retried: a failed write fails the run.
        self.buf.clear();
        written.map_err(|e| RunError::io(&self.path, e))
    }

    /// Flushes and makes the file durable (at the end of the run).
    pub fn sync(&mut self) -> Result<(), RunError> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|e| RunError::io(&self.path, e))
    }
}

impl Drop for InputLog {
    fn drop(&mut self) {
        // A run that fails still leaves every recorded input in the file (its error is
        // reported already; a failure here would only repeat one).
        let _ = self.flush();
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
        ];
        let mut log = InputLog::create(&path).unwrap();
        for input in &inputs {
            log.write(input).unwrap();
        }
        drop(log);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"kind\":\"bar\",\"n\":3");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_inputs(&path).unwrap(), inputs);
        let Input::Bar { bar: record, .. } = &inputs[0] else {
            unreachable!()
        };
        assert_eq!(record.to_bar().unwrap(), bar);
        // Reopened for appending: the partial line is cut, new lines follow the whole ones.
        let mut log = InputLog::append(&path).unwrap();
        log.write(&Input::Idle { n: 3, wall: 10 }).unwrap();
        // Buffered until flushed.
        assert_eq!(read_inputs(&path).unwrap().len(), 3);
        log.flush().unwrap();
        let back = read_inputs(&path).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back[3], Input::Idle { n: 3, wall: 10 });
    }
}
