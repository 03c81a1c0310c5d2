//! [`Feed`]: where a paper run's market data comes from. The runner owns one feed and polls it;
//! the implementations (replay of the spec's data files on the wall clock, a scan directory
//! through the bridge and the feature map, a WebSocket stream) live in `tradeloom-live`.
//!
//! A feed never blocks longer than it is asked to ([`Feed::poll`]'s `wait`), so the runner keeps
//! checking its stop signal, `stop_at`, the kill switch and the data age while the market is
//! quiet. Malformed input is not an error: it is delivered as [`FeedEvent::Malformed`] (counted
//! and journaled) and the run goes on. An error ends the run as failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tradeloom_core::{Bar, UnixNanos};
use tradeloom_engine::ScanFields;

/// One thing a feed delivers.
#[derive(Clone, Debug)]
pub enum FeedEvent {
    /// A completed bar of one of the spec's instruments (its `instrument` is the spec's index).
    Bar(Bar),
    /// A scan: one row per instrument that the scan named, processed in row order.
    Scan(Scan),
    /// A message the feed could not use (bad JSON, an unknown symbol, a bar out of order):
    /// counted and journaled; the run goes on.
    Malformed {
        /// What was wrong, naming the field; never the raw message if it may hold a secret.
        reason: String,
    },
    /// The feed lost or regained its source (a WebSocket reconnecting): journaled.
    Status {
        /// Whether the source is connected now.
        connected: bool,
        /// What happened, e.g. `reconnecting in 400 ms after: connection reset`.
        detail: String,
    },
}

/// One scan published into the feature map, as a paper run sees it.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The feature map's sequence number of this scan (strictly increasing per map).
    pub seq: u64,
    /// The scan's own time (its file's timestamp).
    pub ts: UnixNanos,
    /// Where it came from (the scan file's name).
    pub source: String,
    /// When the scan was first seen by this process (the start of the scan→order latency).
    pub observed: Instant,
    /// The rows of the spec's instruments, in the scan's row order.
    pub rows: Vec<ScanRow>,
}

/// One row of a scan: an instrument, its price (a flat bar at `ts`), and its numeric fields.
#[derive(Clone, Debug)]
pub struct ScanRow {
    /// A flat bar (open = high = low = close = the row's price, volume 0) at the scan's time.
    pub bar: Bar,
    /// The row's numeric fields.
    pub fields: ScanFields,
}

/// What [`Feed::poll`] returns.
#[derive(Clone, Debug)]
pub enum FeedPoll {
    /// The next event.
    Event(FeedEvent),
    /// Bars of the spec's `data:` files, merged in time order as a backtest reads them (a
    /// replay): the bars numbered `from`, `from + 1`, … of that sequence (from 0, counting the
    /// bars a resumed run's feed skipped), all due now. A resumed run reads them back from the
    /// files instead of from `state/inputs.jsonl` (see
    /// [`Input::Replay`](crate::paper::inputs::Input::Replay)). The feed's
    /// [`clock`](Feed::clock) is that of the last of them; each earlier one is as old as the
    /// last (they were due together).
    Replayed {
        /// The number of the first bar in the merged sequence.
        from: u64,
        /// The bars, in time order; never empty.
        bars: Vec<Bar>,
    },
    /// Nothing arrived within the wait.
    Idle,
    /// The feed has nothing more, ever (a replay at its end); the run stops as if asked to.
    Ended,
}

/// Where a resumed run's feed starts: everything at or before this was processed already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedPosition {
    /// The event time of the last bar processed (bars at or before it are skipped).
    pub last_bar_ts: Option<UnixNanos>,
    /// The sequence of the last scan processed (scans at or below it are skipped).
    pub last_scan_seq: Option<u64>,
}

/// A source of market data for a paper run.
pub trait Feed: Send {
    /// `replay`, `scan_dir` or `websocket`: what `health.yaml` and the journal call it.
    fn kind(&self) -> &'static str;

    /// Waits at most `wait` for the next event.
    fn poll(&mut self, wait: Duration) -> Result<FeedPoll, FeedError>;

    /// Skips everything at or before `position` (called once, before the first poll, when a run
    /// is resumed), so nothing is processed twice.
    fn resume_after(&mut self, position: FeedPosition);

    /// The feed's own clock, against which a paper run measures the age of its data
    /// (`max_data_age`): a replay's clock runs on the replayed data's time. `None` (the
    /// default): the wall clock.
    fn clock(&self) -> Option<UnixNanos> {
        None
    }

    /// The `(sha256, bytes)` of each of the spec's data files, in spec order, that the feed
    /// read to the end and hashed while reading (a replay); `None` or missing entries are
    /// hashed when the run is sealed. Asked once, after the run's last poll.
    fn data_hashes(&mut self) -> Vec<Option<(String, u64)>> {
        Vec::new()
    }
}

/// A failure that ends a paper run (the run is marked failed; its folder is sealed).
#[derive(Debug, thiserror::Error)]
#[error("feed `{feed}`: {message}")]
pub struct FeedError {
    /// The feed's kind.
    pub feed: &'static str,
    /// What went wrong.
    pub message: String,
}

/// A flag that asks a paper run to stop gracefully (Ctrl-C, SIGTERM, `POST /runs/{id}/stop`).
/// Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct StopSignal(Arc<std::sync::atomic::AtomicBool>);

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
