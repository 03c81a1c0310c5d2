//! [`run_paper`]: a paper run — the backtest's engine, sink and run folder, fed by a [`Feed`] on
//! the wall clock until a stop signal, `stop_at`, or the feed's end.
//!
//! Every event is first recorded in `state/inputs.jsonl` (see [`crate::paper::inputs`]), then
//! processed exactly as a backtest processes a bar; the journal gets a `wall_ts` on every line,
//! `orders.csv` and `fills.csv` a `wall_ts` column. The folder grows while the run runs (what
//! is written is handed to the writer thread at least every 200 ms), `state/feed.json` is
//! rewritten every second, `state/snapshot.json` every `snapshot_every` events but at most once
//! per [`SNAPSHOT_INTERVAL`] (a snapshot due sooner is written once that has passed, by the
//! next event or while the feed is quiet, and always when the run stops). The kill switch
//! is asked every bar and before every order, as in a backtest, and also while the feed is
//! quiet. On stop the engine finishes as a backtest does (open orders cancelled), and the folder
//! is sealed and hashed.
//!
//! Resuming (`options.resume`) replays the recorded inputs through a fresh engine, checks the
//! state against the snapshot, regenerates the derived files, appends to the journal what it
//! lacked and a `run_resumed` line, and carries on from the feed's position.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tradeloom_core::connectivity::Connectivity;
use tradeloom_core::{Bar, Event, Fill, Instrument, Symbol, UnixNanos};
use tradeloom_data::MergedBars;
use tradeloom_engine::sink::OrderRecord;
use tradeloom_engine::{Engine, EquityPoint, Sink, Summary, Trade};
use tradeloom_safety::KillSwitch;
use tradeloom_sandbox::FailureSlot;

use crate::artifacts::RunSink;
use crate::error::RunError;
use crate::folder::RunFolder;
use crate::hashing::Barrier;
use crate::hashing::sha256_file;
use crate::kill_switch::RunGate;
use crate::live::{LiveGuard, LiveRun};
use crate::metadata::FileHash;
use crate::paper::feed_state::{FEED_FILE, FeedState};
use crate::paper::gate::GateHandle;
use crate::paper::inputs::{INPUTS_FILE, Input, InputLog, bars_digest, read_inputs, scan_of};
use crate::paper::orders::{self, Externals, INBOX_DIR, INBOX_EVERY};
use crate::paper::resume::{Reopened, reopen};
use crate::paper::snapshot::{BookState, SNAPSHOT_FILE, Snapshot, rfc3339};
use crate::paper::{Feed, FeedEvent, FeedPoll, FeedPosition, FeedSpec, Scan, StopSignal};
use crate::runner::{
    ExecuteError, RunOutcome, SpecSource, StartedRun, build_engine, data_hashes, finish_files,
    initial_metadata, normalise, open_sink_with, replay_bars,
};
use crate::spec::{PaperSettings, ResolvedSpec, load_spec};

/// What a paper run needs besides its spec and feed.
pub struct PaperOptions<'a> {
    /// The data dir; the run's folder is `<data_dir>/runs/<run_id>/`.
    pub data_dir: PathBuf,
    /// Asks the run to stop gracefully; checked at least every 100 ms.
    pub stop: StopSignal,
    /// A run id: continue that run (its spec comes from [`resume_spec`](crate::paper::resume_spec)).
    pub resume: Option<String>,
    /// Workflow runs whose kill switches (`run:<id>`) cover this run as well.
    pub parent_runs: Vec<String>,
    /// The readiness and probe of the spec's providers, written into the folder and hashed.
    pub connectivity: Option<Connectivity>,
    /// Told about the run as it goes (the runs API streams it, the trader measures latency).
    pub observer: Option<&'a mut dyn PaperObserver>,
    /// The least wall-clock time between two snapshots ([`SNAPSHOT_INTERVAL`]; zero: one
    /// every `snapshot_every` events, however fast they come).
    pub snapshot_interval: Duration,
}

impl PaperOptions<'_> {
    /// Options for a new run in `data_dir` stopped by `stop`.
    pub fn new(data_dir: impl Into<PathBuf>, stop: StopSignal) -> Self {
        Self {
            data_dir: data_dir.into(),
            stop,
            resume: None,
            parent_runs: Vec::new(),
            connectivity: None,
            observer: None,
            snapshot_interval: SNAPSHOT_INTERVAL,
        }
    }
}

/// Callbacks of a paper run, on the run's thread (keep them short: the engine waits). Events
/// regenerated while a resumed run catches up are not reported again.
pub trait PaperObserver: Send {
    /// The run's folder exists; no event was processed yet.
    fn on_start(&mut self, _run_id: &str, _run_dir: &Path) {}
    /// Every journal event of the engine, in order, with the wall-clock time it was processed.
    fn on_event(&mut self, _event: &Event, _wall: UnixNanos) {}
    /// Every point of the equity curve.
    fn on_equity(&mut self, _point: &EquityPoint) {}
    /// After a scan was processed; `first_accept` is when the first order submitted while
    /// processing it was accepted (`None` when no order was accepted).
    fn on_scan(&mut self, _scan: &Scan, _first_accept: Option<Instant>) {}
    /// The run ended: its outcome, or the error that failed it.
    fn on_stop(&mut self, _outcome: &Result<RunOutcome, String>) {}
}

/// Why a paper run stopped (`stop_reason` in `metadata.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Asked to (Ctrl-C, SIGTERM, `POST /runs/{id}/stop`).
    Stopped,
    /// The spec's `stop_at` time came.
    StopAt,
    /// The feed has no more data (a replay at its end).
    FeedEnd,
}

impl StopReason {
    /// `stopped`, `stop_at` or `feed_end`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Stopped => "stopped",
            StopReason::StopAt => "stop_at",
            StopReason::FeedEnd => "feed_end",
        }
    }
}

/// The longest the feed is waited for before the stop signal, `stop_at` and the kill switch
/// are looked at again.
const POLL: Duration = Duration::from_millis(100);
/// How often buffered rows are handed to the writer thread (so `tail -f` sees them).
const HAND_OVER_EVERY: Duration = Duration::from_millis(200);
/// How often `state/feed.json` is rewritten.
const FEED_STATE_EVERY: Duration = Duration::from_secs(1);
/// The least wall-clock time between two snapshots of a run (by default): a fast replay
/// processes `snapshot_every` events in well under a millisecond, and a snapshot that is
/// replaced so soon tells nothing (a resumed run rebuilds its state from the recorded inputs;
/// the snapshot is what that state is checked against).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);

/// Runs a paper spec until the stop signal, `stop_at`, or the feed's end, and seals the folder
/// (`metadata.json` `completed` with a `stop_reason`, or `failed`). Blocking: call it from a
/// thread of its own. With `options.resume` it continues that run instead of starting one (the
/// spec must then be the one [`resume_spec`](crate::paper::resume_spec) returned).
pub fn run_paper(
    spec: SpecSource<'_>,
    feed: Box<dyn Feed>,
    mut options: PaperOptions<'_>,
) -> Result<RunOutcome, ExecuteError> {
    let mut observer = options.observer.take();
    let result = run(spec, feed, options, &mut observer);
    if let Some(o) = observer {
        let outcome = match &result {
            Ok(outcome) => Ok(outcome.clone()),
            Err(e) => Err(e.to_string()),
        };
        o.on_stop(&outcome);
    }
    result
}

fn run(
    spec: SpecSource<'_>,
    mut feed: Box<dyn Feed>,
    options: PaperOptions<'_>,
    observer: &mut Option<&mut dyn PaperObserver>,
) -> Result<RunOutcome, ExecuteError> {
    let started = Instant::now();
    let reject = ExecuteError::Rejected;
    let spec = match spec {
        SpecSource::File(path) => load_spec(path).map_err(reject)?,
        SpecSource::Loaded(spec) => *spec,
    };
    let Some(paper) = spec.paper.clone() else {
        return Err(reject(RunError::Spec {
            place: spec.path.display().to_string(),
            message: "mode: a paper run needs `mode: paper` and a `feed:`".to_string(),
        }));
    };
    // No lookahead: a paper run's bars arrive as they come, so a script gets one bar per round
    // trip (the same requests as a backtest's batches: see `tradeloom_sandbox::ScriptStrategy`).
    let (engine, scripts) = build_engine(&spec, false, &options.data_dir).map_err(reject)?;
    let kill_switch = KillSwitch::open(&options.data_dir).map_err(|e| reject(e.into()))?;
    let strategy = serde_json::to_value(&spec.spec.strategy).unwrap_or(Value::Null);

    let (mut run, prior) = match &options.resume {
        None => {
            let normalised = normalise(&spec).map_err(reject)?;
            let folder = RunFolder::create(&options.data_dir).map_err(reject)?;
            let meta = initial_metadata(&spec, &folder.run_id, &normalised, "paper");
            let mut run = StartedRun {
                folder,
                meta,
                started,
            };
            run.write_inputs(&normalised, options.connectivity.as_ref())?;
            (run, None)
        }
        Some(id) => {
            let reopened = reopen(&options.data_dir, id).map_err(reject)?;
            let run = StartedRun {
                folder: reopened.folder.clone(),
                meta: reopened.meta.clone(),
                started,
            };
            (run, Some(reopened))
        }
    };
    let span = tracing::info_span!(
        "run",
        run_id = %run.folder.run_id,
        trace_id = %tradeloom_core::trace_id(&run.folder.run_id)
    );
    let _in_run = span.enter();
    tracing::info!(
        name = %spec.spec.name,
        feed = feed.kind(),
        resumed = prior.is_some(),
        "paper run started"
    );

    let flatten_default = spec.spec.risk.kill_switch.is_some_and(|k| k.flatten);
    let run_gate = RunGate::new(kill_switch, run.folder.run_id.clone())
        .with_parent_runs(options.parent_runs.iter().cloned())
        .with_flatten_default(flatten_default);
    let gate_errors = run_gate.errors();

    let inputs_path = run.folder.file(INPUTS_FILE);
    let (log, recorded) = match &prior {
        None => (InputLog::create(&inputs_path), Vec::new()),
        Some(_) => match read_inputs(&inputs_path) {
            Ok(recorded) => (InputLog::append(&inputs_path), recorded),
            Err(e) => return Err(run.fail(e)),
        },
    };
    let log = match log {
        Ok(log) => Arc::new(Mutex::new(log)),
        Err(e) => return Err(run.fail(e)),
    };
    let (gate, run_gate) = match &prior {
        None => (GateHandle::live(run_gate, Arc::clone(&log)), None),
        Some(_) => (
            GateHandle::replaying(&recorded, Arc::clone(&log)),
            Some(run_gate),
        ),
    };
    let mut engine = engine;
    engine.set_kill_switch_gate(gate.engine_gate());
    let existing = prior.as_ref().map(|p| p.journal.clone());
    // Nothing derived from an input reaches the files before the input does.
    let barrier: Barrier = {
        let log = Arc::clone(&log);
        Arc::new(move || {
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .flush()
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
    };
    let sink = match open_sink_with(&run.folder, &spec, existing, true, Some(barrier)) {
        Ok(sink) => sink,
        Err(e) => return Err(run.fail(e)),
    };
    if let Err(e) = run.meta.write(&run.folder.dir) {
        return Err(run.fail(e));
    }
    let live = crate::live::register(&run.folder.run_id);
    let mut machine = Machine {
        run_dir: run.folder.dir.clone(),
        run_id: run.folder.run_id.clone(),
        engine: Some(engine),
        sink,
        live,
        log,
        gate,
        instruments: spec.instruments.clone(),
        strategy,
        paper: paper.clone(),
        events: 0,
        position: FeedPosition::default(),
        seen_at_last_ts: Vec::new(),
        feed_state: FeedState::new(
            &run.folder.run_id,
            feed.kind(),
            matches!(paper.feed, FeedSpec::Replay(_) | FeedSpec::ScanDir(_)),
        ),
        observer: match observer {
            Some(o) => Some(&mut **o),
            None => None,
        },
        started_wall: wall_now(),
        last_snapshot: wall_now(),
        snapshot_interval: options.snapshot_interval,
        wall_text: WallText::default(),
        replaying: false,
        verify: None,
        since_snapshot: 0,
        scratch_seen: Vec::new(),
        externals: Externals::default(),
        script_failure: scripts.map(|s| s.failure),
    };
    if paper.external_orders {
        let inbox = machine.run_dir.join(INBOX_DIR);
        if let Err(e) = std::fs::create_dir_all(&inbox) {
            return Err(run.fail(RunError::io(&inbox, e)));
        }
    }
    if let Some(o) = machine.observer.as_deref_mut() {
        o.on_start(&machine.run_id, &machine.run_dir);
    }

    let result = (|| -> Result<(Summary, StopReason), RunError> {
        if let Some(prior) = &prior {
            machine.catch_up(&recorded, prior, &spec)?;
            if let Some(run_gate) = run_gate {
                machine.gate.go_live(run_gate).map_err(RunError::Resume)?;
            }
            feed.resume_after(FeedPosition {
                // Bars at the last time are asked for again: with several instruments, a bar
                // of that time may not have been processed yet; those that were are skipped.
                last_bar_ts: machine.position.last_bar_ts.map(|t| UnixNanos(t.0 - 1)),
                last_scan_seq: machine.position.last_scan_seq,
            });
        }
        let reason = machine.run_live(feed.as_mut(), &options.stop)?;
        let summary = machine.stop(reason)?;
        Ok((summary, reason))
    })();
    let result = result.and_then(|x| match gate_errors.take() {
        Some(e) => Err(e.into()),
        None => Ok(x),
    });
    let Machine {
        mut sink,
        feed_state,
        log,
        ..
    } = machine;
    let data_read = feed.data_hashes();
    let (summary, reason) = match result {
        Ok(x) => x,
        Err(e) => {
            // The recorded inputs first, as every other hand-over (a failed run is resumed).
            let _ = log.lock().unwrap_or_else(PoisonError::into_inner).flush();
            sink.set_wall_ts(&wall_text(wall_now()));
            sink.journal_extra(&json!({"event": "run_failed", "error": e.to_string()}));
            if let Ok(files) = sink.finish() {
                let _ = finish_files(files, &run.folder, &mut run.meta.artifacts);
            }
            let mut feed_state = feed_state;
            feed_state.stopped = true;
            let _ = feed_state.write(&run.folder.dir);
            return Err(run.fail(e));
        }
    };
    let sealed = (|| -> Result<(), RunError> {
        // Hashed by the log's writer thread as it wrote.
        let (sha256, bytes) = log.lock().unwrap_or_else(PoisonError::into_inner).sync()?;
        run.meta
            .artifacts
            .insert(INPUTS_FILE.to_string(), FileHash { sha256, bytes });
        let mut names = vec![SNAPSHOT_FILE, FEED_FILE];
        if paper.external_orders {
            names.push(orders::ACCOUNT_FILE);
        }
        for name in names {
            let path = run.folder.file(name);
            let (sha256, bytes) = sha256_file(&path).map_err(|e| RunError::io(&path, e))?;
            run.meta
                .artifacts
                .insert(name.to_string(), FileHash { sha256, bytes });
        }
        let hashes = data_hashes(&spec, data_read, Ok(Vec::new()))?;
        for (info, (sha, bytes)) in run.meta.data.iter_mut().zip(hashes) {
            info.sha256 = Some(sha);
            info.bytes = Some(bytes);
        }
        Ok(())
    })();
    if let Err(e) = sealed {
        return Err(run.fail(e));
    }
    run.meta.stop_reason = Some(reason.as_str().to_string());
    tracing::info!(stop_reason = reason.as_str(), "paper run stopping");
    run.seal(sink, summary, &spec)
}

/// The wall clock now.
fn wall_now() -> UnixNanos {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    UnixNanos(i64::try_from(now.as_nanos()).unwrap_or(i64::MAX))
}

/// `2026-12-06T16:31:44.123456789Z`.
fn wall_text(wall: UnixNanos) -> String {
    chrono::DateTime::from_timestamp_nanos(wall.0)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Formats wall-clock times as [`wall_text`] does, one per event: the text up to the second
/// is reused while the second stays the same, only the nanoseconds are written anew.
#[derive(Default)]
struct WallText {
    /// The second (since the epoch) `text` begins with.
    second: Option<i64>,
    /// `2026-12-06T16:31:44.` and, after [`WallText::format`], the nanoseconds and `Z`.
    text: String,
}

impl WallText {
    /// `wall` as RFC 3339 UTC with nanoseconds (`2026-12-06T16:31:44.123456789Z`).
    fn format(&mut self, wall: UnixNanos) -> &str {
        const NANOS: i64 = 1_000_000_000;
        let second = wall.0.div_euclid(NANOS);
        if self.second != Some(second) {
            let mut text = wall_text(UnixNanos(second.saturating_mul(NANOS)));
            // Without the nanoseconds and the `Z` (always nine digits, see `wall_text`).
            text.truncate(text.len().saturating_sub(10));
            self.text = text;
            self.second = Some(second);
        }
        let prefix = self.text.find('.').map_or(self.text.len(), |i| i + 1);
        self.text.truncate(prefix);
        let mut nanos = wall.0.rem_euclid(NANOS);
        let mut digits = [b'0'; 9];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (nanos % 10) as u8;
            nanos /= 10;
        }
        self.text.extend(digits.iter().map(|&d| char::from(d)));
        self.text.push('Z');
        &self.text
    }
}

/// Wall-clock time from `since` to `now`; unbounded when the clock went back (so a periodic
/// task runs and restarts its period from `now` instead of waiting for the clock to catch up).
fn elapsed(since: UnixNanos, now: UnixNanos) -> Duration {
    match u64::try_from(now.0.saturating_sub(since.0)) {
        Ok(ns) => Duration::from_nanos(ns),
        Err(_) => Duration::MAX,
    }
}

/// Notes a bar of `instrument` at `ts` processed.
fn note_bar(position: &mut FeedPosition, seen: &mut Vec<u32>, instrument: u32, ts: UnixNanos) {
    if position.last_bar_ts != Some(ts) {
        position.last_bar_ts = Some(ts);
        seen.clear();
    }
    seen.push(instrument);
}

/// A paper run in progress: the engine, its sink, and where the run is.
struct Machine<'o> {
    run_id: String,
    run_dir: PathBuf,
    /// `None` once finished.
    engine: Option<Engine>,
    sink: RunSink,
    live: LiveGuard,
    log: Arc<Mutex<InputLog>>,
    gate: GateHandle,
    instruments: Vec<Instrument>,
    strategy: Value,
    paper: PaperSettings,
    /// Events processed (the `n` of the last input).
    events: u64,
    position: FeedPosition,
    /// Instruments whose bar at `position.last_bar_ts` was processed.
    seen_at_last_ts: Vec<u32>,
    feed_state: FeedState,
    observer: Option<&'o mut dyn PaperObserver>,
    /// When this process started the run (the age of a feed that has delivered nothing).
    started_wall: UnixNanos,
    /// When the last snapshot was taken (or the run started, in this process).
    last_snapshot: UnixNanos,
    /// [`PaperOptions::snapshot_interval`].
    snapshot_interval: Duration,
    /// The text of the last event's `wall_ts`.
    wall_text: WallText,
    /// Catching up on recorded inputs: nothing is recorded or reported.
    replaying: bool,
    /// While catching up: the snapshot the state is checked against after its event.
    verify: Option<Snapshot>,
    since_snapshot: u64,
    /// Reused by [`Machine::plain_run`].
    scratch_seen: Vec<u32>,
    /// The orders from outside the strategy and their replies (`external_orders: true`).
    externals: Externals,
    /// Where script strategies record the failure that fails the run.
    script_failure: Option<Arc<FailureSlot>>,
}

/// A resumed run's replay feed read back from the data files: the bars that
/// [`Input::Replay`] records name.
struct ReplayData {
    bars: MergedBars,
    /// The number of the next bar `bars` yields.
    next: u64,
}

impl ReplayData {
    /// Reads bars `from..from + count` into `out`; errors when the files hold fewer, or when
    /// bars before `from` were read already (the records are not in order).
    fn read(&mut self, n: u64, from: u64, count: u64, out: &mut Vec<Bar>) -> Result<(), RunError> {
        if from < self.next {
            return Err(RunError::Corrupt {
                path: PathBuf::from(INPUTS_FILE),
                message: format!(
                    "input {n}: replays bars from {from}, but bars up to {} were replayed already",
                    self.next
                ),
            });
        }
        out.clear();
        while self.next < from + count {
            let bar = match self.bars.next() {
                Some(bar) => bar?,
                None => {
                    return Err(RunError::Resume(format!(
                        "{INPUTS_FILE} input {n} replays bars {from} to {} of the data files, but                          they hold only {} bars: they changed since the run read them; the run                          cannot be resumed",
                        from + count - 1,
                        self.next
                    )));
                }
            };
            if self.next >= from {
                out.push(bar);
            }
            self.next += 1;
        }
        Ok(())
    }
}

/// The engine's sink in a paper run: the run folder's writer, the live counters, the observer.
struct PaperSink<'a> {
    sink: &'a mut RunSink,
    live: &'a LiveRun,
    observer: Option<&'a mut dyn PaperObserver>,
    wall: UnixNanos,
    /// Formats `wall` into the sink's `wall_ts` when the event writes its first line (most
    /// bars write none); `None` once done.
    stamp: Option<&'a mut WallText>,
    first_accept: Option<Instant>,
    /// Told every engine event: the replies of external orders follow them.
    externals: &'a mut Externals,
}

impl PaperSink<'_> {
    /// Sets the sink's `wall_ts` to this event's wall time, if not done yet.
    #[inline]
    fn stamp(&mut self) {
        if let Some(text) = self.stamp.take() {
            self.sink.set_wall_ts(text.format(self.wall));
        }
    }

    /// Journals a line that is not an engine event, stamped with the event's wall time.
    fn journal_extra(&mut self, line: &Value) {
        self.stamp();
        self.sink.journal_extra(line);
    }
}

impl Sink for PaperSink<'_> {
    #[inline]
    fn on_bar(&mut self, bar: &Bar) {
        self.sink.on_bar(bar);
    }

    fn on_event(&mut self, event: &Event) {
        if self.first_accept.is_none() && matches!(event, Event::OrderAccepted { .. }) {
            self.first_accept = Some(Instant::now());
        }
        self.stamp();
        self.live.observe(event);
        self.externals.observe(event);
        self.sink.on_event(event);
        if let Some(o) = self.observer.as_deref_mut() {
            o.on_event(event, self.wall);
        }
    }

    fn on_fill(&mut self, fill: &Fill, symbol: Symbol) {
        self.stamp();
        self.sink.on_fill(fill, symbol);
    }

    fn on_order_closed(&mut self, record: &OrderRecord<'_>) {
        self.stamp();
        self.sink.on_order_closed(record);
    }

    fn on_trade(&mut self, trade: &Trade) {
        self.sink.on_trade(trade);
    }

    fn on_equity(&mut self, point: &EquityPoint) {
        self.sink.on_equity(point);
        if let Some(o) = self.observer.as_deref_mut() {
            o.on_equity(point);
        }
    }
}

fn engine_of(engine: &mut Option<Engine>) -> Result<&mut Engine, RunError> {
    engine.as_mut().ok_or_else(|| RunError::Corrupt {
        path: PathBuf::new(),
        message: "the paper run's engine has finished".to_string(),
    })
}

impl Machine<'_> {
    /// Processes one input (recorded first when live). Returns when the first order was
    /// accepted while processing it.
    fn apply(&mut self, input: &Input) -> Result<Option<Instant>, RunError> {
        let (n, wall) = match input {
            Input::Bar { n, wall, .. }
            | Input::Scan { n, wall, .. }
            | Input::Malformed { n, wall, .. }
            | Input::Status { n, wall, .. }
            | Input::Idle { n, wall }
            | Input::Order { n, wall, .. }
            | Input::Resumed { n, wall, .. } => (*n, UnixNanos(*wall)),
            // Answers of the kill switch are the gate's (see `gate.rs`).
            Input::Gate { .. } => return Ok(None),
            // Their bars come from the data files (see `catch_up`).
            Input::Replay { n, .. } => {
                return Err(RunError::Corrupt {
                    path: PathBuf::from(INPUTS_FILE),
                    message: format!("input {n}: replayed bars without their data"),
                });
            }
        };
        let engine = engine_of(&mut self.engine)?;
        let mut sink = PaperSink {
            sink: &mut self.sink,
            live: self.live.counters(),
            observer: match self.observer.as_mut() {
                Some(o) if !self.replaying => Some(&mut **o),
                _ => None,
            },
            wall,
            stamp: Some(&mut self.wall_text),
            first_accept: None,
            externals: &mut self.externals,
        };
        let corrupt = |message: String| RunError::Corrupt {
            path: PathBuf::from(INPUTS_FILE),
            message: format!("input {n}: {message}"),
        };
        match input {
            Input::Bar { bar, stale, .. } => {
                let bar = bar.to_bar().map_err(corrupt)?;
                engine.set_stale_data(stale.clone());
                engine.on_bar(&bar, &mut sink)?;
                sink.live.add_bars(1);
                note_bar(
                    &mut self.position,
                    &mut self.seen_at_last_ts,
                    bar.instrument.0,
                    bar.ts,
                );
                self.feed_state.on_event(wall, Some(bar.ts));
            }
            Input::Scan {
                seq,
                ts,
                source,
                names,
                rows,
                stale,
                ..
            } => {
                let scan = scan_of(*seq, *ts, source, names, rows).map_err(corrupt)?;
                engine.set_stale_data(stale.clone());
                for row in &scan.rows {
                    engine.on_scan(&row.bar, &row.fields, &mut sink)?;
                }
                sink.live.add_bars(scan.rows.len() as u64);
                self.position.last_scan_seq = Some(*seq);
                self.feed_state.on_event(wall, Some(scan.ts));
            }
            Input::Malformed { reason, .. } => {
                sink.journal_extra(&json!({"event": "feed_malformed", "reason": reason}));
                self.feed_state.on_event(wall, None);
                self.feed_state.malformed += 1;
            }
            Input::Status {
                connected, detail, ..
            } => {
                sink.journal_extra(
                    &json!({"event": "feed_status", "connected": connected, "detail": detail}),
                );
                self.feed_state.on_event(wall, None);
                self.feed_state.connected = *connected;
            }
            Input::Idle { .. } => engine.poll_kill_switch(&mut sink)?,
            Input::Order { order, .. } => {
                let checked = orders::check(order, &self.instruments).map_err(corrupt)?;
                let ts = engine
                    .last_ts()
                    .ok_or_else(|| corrupt("an external order before the first bar".to_string()))?;
                let id = engine.next_order_id();
                sink.journal_extra(&orders::journal_line(order, id));
                sink.externals.recorded(&order.client_order_id);
                sink.externals
                    .track(&self.run_id, id, &rfc3339(ts), order.clone());
                engine.submit_external(checked.instrument, checked.request, &mut sink)?;
            }
            Input::Resumed { interrupted, .. } => {
                let mut line = json!({"event": "run_resumed", "after_events": n - 1});
                if let Some(why) = interrupted {
                    line["interrupted"] = Value::from(why.as_str());
                }
                sink.journal_extra(&line);
            }
            Input::Gate { .. } | Input::Replay { .. } => {}
        }
        let first_accept = sink.first_accept;
        self.check_errors()?;
        self.after_event(n, wall)?;
        if !self.replaying {
            self.externals.write(&self.run_dir)?;
        }
        Ok(first_accept)
    }

    /// Processes `bars` as events `n`, `n + 1`, … all at `wall` (a replay's batch, recorded
    /// first when live; not stale, none processed already, in order: see
    /// [`Machine::plain_run`]).
    fn apply_bars(&mut self, n: u64, wall: UnixNanos, bars: &[Bar]) -> Result<(), RunError> {
        let Some(last) = bars.last() else {
            return Ok(());
        };
        engine_of(&mut self.engine)?.set_stale_data(None);
        // Every bar has the same wall time: its text is set once, by the first that writes.
        let mut stamped = false;
        for (k, bar) in (0..).zip(bars) {
            let engine = engine_of(&mut self.engine)?;
            let mut sink = PaperSink {
                sink: &mut self.sink,
                live: self.live.counters(),
                observer: match self.observer.as_mut() {
                    Some(o) if !self.replaying => Some(&mut **o),
                    _ => None,
                },
                wall,
                stamp: (!stamped).then_some(&mut self.wall_text),
                first_accept: None,
                externals: &mut self.externals,
            };
            engine.on_bar(bar, &mut sink)?;
            stamped |= sink.stamp.is_none();
            // The run fails at the bar its script failed on, as at an engine error.
            if let Some(e) = self.script_error() {
                return Err(e);
            }
            note_bar(
                &mut self.position,
                &mut self.seen_at_last_ts,
                bar.instrument.0,
                bar.ts,
            );
            self.after_event(n + k, wall)?;
        }
        self.live.counters().add_bars(bars.len() as u64);
        self.feed_state.on_events(bars.len() as u64, wall, last.ts);
        if !self.replaying {
            self.externals.write(&self.run_dir)?;
        }
        self.check_errors()
    }

    /// The failure of a script strategy, if one failed (its reason or traceback).
    fn script_error(&self) -> Option<RunError> {
        let slot = self.script_failure.as_ref().filter(|s| s.is_set())?;
        Some(RunError::Script(slot.take().map_or_else(
            || "the script failed".to_string(),
            |e| e.to_string(),
        )))
    }

    /// Fails the run on a script strategy's failure, a failure to record a kill switch answer
    /// or to write the folder.
    fn check_errors(&mut self) -> Result<(), RunError> {
        if let Some(e) = self.script_error() {
            return Err(e);
        }
        if let Some(e) = self.gate.take_error() {
            return Err(e);
        }
        if let Some(e) = self.sink.error() {
            return Err(RunError::io(
                &self.run_dir,
                std::io::Error::new(e.kind(), e.to_string()),
            ));
        }
        Ok(())
    }

    /// Event `n` (processed at `wall`) was processed: counts it; then, catching up, checks
    /// the state against the snapshot of that event, or, live, writes a snapshot when one is
    /// due.
    #[inline]
    fn after_event(&mut self, n: u64, wall: UnixNanos) -> Result<(), RunError> {
        self.events = n;
        self.since_snapshot += 1;
        if self.replaying {
            if self.verify.as_ref().is_some_and(|s| s.events == n)
                && let Some(snapshot) = self.verify.take()
            {
                self.check(&snapshot)?;
            }
        } else {
            self.snapshot_if_due(wall)?;
        }
        Ok(())
    }

    /// Writes a snapshot if `snapshot_every` events were processed since the last one and
    /// the snapshot interval has passed at `now`.
    #[inline]
    fn snapshot_if_due(&mut self, now: UnixNanos) -> Result<(), RunError> {
        if self.since_snapshot >= self.paper.snapshot_every
            && elapsed(self.last_snapshot, now) >= self.snapshot_interval
        {
            self.check_errors()?;
            self.snapshot(now)?;
        }
        Ok(())
    }

    /// Records `input` in `state/inputs.jsonl` (buffered: see [`crate::paper::inputs`]), then
    /// processes it.
    fn record_and_apply(&mut self, input: &Input) -> Result<Option<Instant>, RunError> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(input)?;
        self.apply(input)
    }

    /// The state now, as the snapshot describes it.
    fn snapshot_now(&self) -> Result<Snapshot, RunError> {
        let engine = self.engine.as_ref().ok_or_else(|| RunError::Corrupt {
            path: PathBuf::new(),
            message: "the paper run's engine has finished".to_string(),
        })?;
        let state = engine.state()?;
        Ok(Snapshot::new(
            &self.run_id,
            self.events,
            self.sink.journal.len(),
            self.position,
            &state,
            &self.instruments,
            self.strategy.clone(),
        ))
    }

    /// Takes a snapshot (at wall time `now`) and has the log's writer thread write it.
    fn snapshot(&mut self, now: UnixNanos) -> Result<(), RunError> {
        self.since_snapshot = 0;
        self.last_snapshot = now;
        let snapshot = self.snapshot_now()?;
        // Written after the recorded inputs it covers (a resumed run replays them up to the
        // snapshot's event), by the log's writer thread.
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot(snapshot, &self.run_dir)
    }

    /// Hands the buffered records of `state/inputs.jsonl` to the kernel.
    fn flush_inputs(&self) -> Result<(), RunError> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }

    /// Replays the recorded inputs of a resumed run, checks the state against the snapshot,
    /// and records and journals the resumption.
    /// Bars of a replay ([`Input::Replay`]) are read back from the spec's data files.
    fn catch_up(
        &mut self,
        recorded: &[Input],
        prior: &Reopened,
        spec: &ResolvedSpec,
    ) -> Result<(), RunError> {
        self.replaying = true;
        self.verify = prior.snapshot.clone();
        let mut data: Option<ReplayData> = None;
        let mut bars = Vec::new();
        for input in recorded {
            let Input::Replay {
                n,
                wall,
                from,
                count,
                last_ts,
                digest,
            } = input
            else {
                self.apply(input)?;
                continue;
            };
            let data = match &mut data {
                Some(data) => data,
                None => data.insert(ReplayData {
                    bars: replay_bars(spec)?,
                    next: 0,
                }),
            };
            data.read(*n, *from, *count, &mut bars)?;
            if bars.last().map(|b| b.ts.0) != Some(*last_ts) || bars_digest(&bars) != *digest {
                return Err(RunError::Resume(format!(
                    "run {}: bars {from} to {} of the data files are not those {INPUTS_FILE} \
                     input {n} recorded (last time {}, digest {digest}): the files changed since \
                     the run read them; the run cannot be resumed",
                    self.run_id,
                    from + count - 1,
                    rfc3339(UnixNanos(*last_ts)),
                )));
            }
            self.apply_bars(*n, UnixNanos(*wall), &bars)?;
        }
        if let Some(snapshot) = self.verify.take() {
            return Err(RunError::Resume(format!(
                "run {}: state/snapshot.json is after event {} but state/inputs.jsonl records \
                 only {} events; the run cannot be resumed",
                self.run_id, snapshot.events, self.events
            )));
        }
        let pending = self.sink.journal.pending_existing();
        if pending > 0 {
            return Err(RunError::Resume(format!(
                "run {}: journal.jsonl has {pending} line(s) that state/inputs.jsonl does not \
                 account for; the run cannot be resumed",
                self.run_id
            )));
        }
        self.replaying = false;
        self.since_snapshot = 0;
        // What the process that died may not have written.
        self.externals.write(&self.run_dir)?;
        let resumed = Input::Resumed {
            n: self.events + 1,
            wall: wall_now().0,
            interrupted: prior.interrupted.clone(),
        };
        self.record_and_apply(&resumed)?;
        tracing::info!(events = self.events, "paper run resumed");
        Ok(())
    }

    /// Compares the rebuilt state with a snapshot's.
    fn check(&self, snapshot: &Snapshot) -> Result<(), RunError> {
        let now = self.snapshot_now()?;
        let mismatch = |what: &str, was: String, is: String| {
            RunError::Resume(format!(
                "run {}: the state rebuilt from state/inputs.jsonl differs from \
                 state/snapshot.json after event {}: {what} was {was}, rebuilt {is}",
                self.run_id, snapshot.events
            ))
        };
        if now.journal_lines != snapshot.journal_lines {
            return Err(mismatch(
                "journal lines",
                snapshot.journal_lines.to_string(),
                now.journal_lines.to_string(),
            ));
        }
        let BookState {
            cash,
            equity,
            positions,
            working_orders,
        } = &snapshot.book;
        for (what, was, is) in [
            ("cash", json!(cash), json!(now.book.cash)),
            ("equity", json!(equity), json!(now.book.equity)),
            ("positions", json!(positions), json!(now.book.positions)),
            (
                "working orders",
                json!(working_orders),
                json!(now.book.working_orders),
            ),
        ] {
            if was != is {
                return Err(mismatch(what, was.to_string(), is.to_string()));
            }
        }
        Ok(())
    }

    /// Polls the feed and processes what it delivers until a stop. The wall clock is read once
    /// per poll: right after it returns, the time of the event it delivered and of the checks
    /// before the next poll.
    fn run_live(&mut self, feed: &mut dyn Feed, stop: &StopSignal) -> Result<StopReason, RunError> {
        let mut now = wall_now();
        let mut last_hand_over = now;
        let mut last_feed_state = now;
        let mut last_gate_check = now;
        let mut last_inbox = now;
        let mut busy = false;
        self.write_feed_state(feed)?;
        loop {
            if stop.is_stopped() {
                return Ok(StopReason::Stopped);
            }
            let mut wait = POLL;
            if let Some(at) = self.paper.stop_at {
                if now >= at {
                    return Ok(StopReason::StopAt);
                }
                let left = u64::try_from(at.0 - now.0).unwrap_or(0);
                wait = wait.min(Duration::from_nanos(left));
            }
            // While bars flow the engine asks the kill switch every bar; a quiet feed (or one
            // delivering no bars) is covered here at least every poll.
            if !busy || elapsed(last_gate_check, now) >= POLL {
                last_gate_check = now;
                let started = self.engine.as_ref().is_some_and(|e| e.bars() > 0);
                if started && self.gate.changed() {
                    let idle = Input::Idle {
                        n: self.events + 1,
                        wall: now.0,
                    };
                    self.record_and_apply(&idle)?;
                }
            }
            if self.paper.external_orders && elapsed(last_inbox, now) >= INBOX_EVERY {
                last_inbox = now;
                self.take_orders(now)?;
            }
            if elapsed(last_hand_over, now) >= HAND_OVER_EVERY {
                last_hand_over = now;
                // Also when nothing was written: a quiet feed's inputs reach the file too.
                self.flush_inputs()?;
                self.sink.hand_over();
            }
            if elapsed(last_feed_state, now) >= FEED_STATE_EVERY {
                last_feed_state = now;
                self.write_feed_state(feed)?;
            }
            // A snapshot put off by the interval is written once it passed, events or not.
            self.snapshot_if_due(now)?;
            let polled = feed.poll(wait)?;
            now = wall_now();
            busy = false;
            match polled {
                FeedPoll::Idle => {}
                FeedPoll::Ended => return Ok(StopReason::FeedEnd),
                FeedPoll::Event(event) => {
                    busy = matches!(event, FeedEvent::Bar(_) | FeedEvent::Scan(_));
                    self.on_feed_event(event, now, feed.clock())?;
                }
                FeedPoll::Replayed { from, bars } => {
                    busy = true;
                    self.on_replayed(from, &bars, now, feed.clock())?;
                }
            }
        }
    }

    /// Records and processes one event of the feed that arrived at `wall` (a bar out of order
    /// becomes a malformed event; one processed already is skipped).
    fn on_feed_event(
        &mut self,
        event: FeedEvent,
        wall: UnixNanos,
        clock: Option<UnixNanos>,
    ) -> Result<(), RunError> {
        let current = self.engine.as_ref().and_then(Engine::last_ts);
        let data_ts = match &event {
            FeedEvent::Bar(bar) => {
                if self.position.last_bar_ts == Some(bar.ts)
                    && self.seen_at_last_ts.contains(&bar.instrument.0)
                {
                    tracing::debug!(ts = bar.ts.0, "a bar processed already is skipped");
                    return Ok(());
                }
                Some(bar.ts)
            }
            FeedEvent::Scan(scan) => {
                if self.position.last_scan_seq.is_some_and(|s| scan.seq <= s) {
                    tracing::debug!(seq = scan.seq, "a scan processed already is skipped");
                    return Ok(());
                }
                Some(scan.ts)
            }
            _ => None,
        };
        let mut event = event;
        if let (Some(ts), Some(current)) = (data_ts, current)
            && ts < current
        {
            event = FeedEvent::Malformed {
                reason: format!(
                    "data of {} is older than the last processed time {}; skipped",
                    rfc3339(ts),
                    rfc3339(current)
                ),
            };
        }
        let stale = match (&event, data_ts) {
            (FeedEvent::Bar(_) | FeedEvent::Scan(_), Some(ts)) => {
                self.stale_reason(clock.unwrap_or(wall), ts)
            }
            _ => None,
        };
        let input = Input::of_feed(&event, self.events + 1, wall.0, stale);
        let first_accept = self.record_and_apply(&input)?;
        if let (FeedEvent::Scan(scan), Some(o)) = (&event, self.observer.as_mut()) {
            o.on_scan(scan, first_accept);
        }
        Ok(())
    }

    /// Records and processes bars `from`, `from + 1`, … of a replay that arrived together at
    /// `wall` (`clock`: the feed's clock, that of the last bar). Runs of bars processed as they
    /// come are recorded as one [`Input::Replay`] each; a bar processed already (a resumed
    /// run) or out of order, and every bar of stale data, goes through
    /// [`Machine::on_feed_event`] (a stale bar's record carries its reason).
    fn on_replayed(
        &mut self,
        from: u64,
        bars: &[Bar],
        wall: UnixNanos,
        clock: Option<UnixNanos>,
    ) -> Result<(), RunError> {
        let Some(last) = bars.last() else {
            return Ok(());
        };
        let clock = clock.unwrap_or(wall);
        if self.stale_reason(clock, last.ts).is_some() {
            for bar in bars {
                // As old as the last bar: they were due together.
                let own = UnixNanos(clock.0.saturating_sub(last.ts.0.saturating_sub(bar.ts.0)));
                self.on_feed_event(FeedEvent::Bar(*bar), wall, Some(own))?;
            }
            return Ok(());
        }
        let mut at = 0;
        while at < bars.len() {
            let run = self.plain_run(&bars[at..]);
            if run == 0 {
                self.on_feed_event(FeedEvent::Bar(bars[at]), wall, Some(clock))?;
                at += 1;
                continue;
            }
            let batch = &bars[at..at + run];
            let n = self.events + 1;
            let record = Input::Replay {
                n,
                wall: wall.0,
                from: from + at as u64,
                count: run as u64,
                last_ts: batch[run - 1].ts.0,
                digest: bars_digest(batch),
            };
            self.log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write(&record)?;
            self.apply_bars(n, wall, batch)?;
            at += run;
        }
        Ok(())
    }

    /// How many of `bars`, from the first, are processed as they come: none processed already
    /// (a resumed run's feed delivers the bars of the last processed time again), none older
    /// than the bar before.
    fn plain_run(&mut self, bars: &[Bar]) -> usize {
        let mut current = self.engine.as_ref().and_then(Engine::last_ts);
        let mut last = self.position.last_bar_ts;
        let seen = &mut self.scratch_seen;
        seen.clone_from(&self.seen_at_last_ts);
        for (k, bar) in bars.iter().enumerate() {
            let done = last == Some(bar.ts) && seen.contains(&bar.instrument.0);
            if done || current.is_some_and(|c| bar.ts < c) {
                return k;
            }
            if last != Some(bar.ts) {
                last = Some(bar.ts);
                seen.clear();
            }
            seen.push(bar.instrument.0);
            current = Some(bar.ts);
        }
        bars.len()
    }

    /// Why data of time `ts` is too old at `clock` (`max_data_age`), if it is.
    fn stale_reason(&self, clock: UnixNanos, ts: UnixNanos) -> Option<String> {
        let max = self.paper.max_data_age?;
        let age = clock.0.saturating_sub(ts.0);
        let max_ns = i64::try_from(max.as_nanos()).unwrap_or(i64::MAX);
        (age > max_ns).then(|| {
            format!(
                "the data of {} is {:.3} s old, more than max_data_age ({:.3} s)",
                rfc3339(ts),
                age as f64 / 1e9,
                max.as_secs_f64()
            )
        })
    }

    fn write_feed_state(&mut self, feed: &dyn Feed) -> Result<(), RunError> {
        // A feed that never delivered anything is as old as the run.
        let last = self
            .position
            .last_bar_ts
            .or_else(|| self.engine.as_ref().and_then(Engine::last_ts))
            .unwrap_or(self.started_wall);
        let clock = match self.position.last_bar_ts {
            Some(_) => feed.clock().unwrap_or_else(wall_now),
            None => wall_now(),
        };
        self.feed_state.stale = self.stale_reason(clock, last).is_some();
        self.feed_state.write(&self.run_dir)?;
        self.write_account()
    }

    /// Rewrites `state/account.json` (runs that accept external orders only).
    fn write_account(&self) -> Result<(), RunError> {
        if !self.paper.external_orders {
            return Ok(());
        }
        let Some(engine) = self.engine.as_ref() else {
            return Ok(());
        };
        let state = engine.state()?;
        let book = BookState::of(&state, &self.instruments);
        orders::write_account(
            &self.run_dir,
            &orders::Account {
                run_id: self.run_id.clone(),
                updated_at: wall_text(wall_now()),
                last_bar_ts: self.position.last_bar_ts.map(rfc3339),
                cash: book.cash,
                equity: book.equity,
                positions: book.positions,
                working_orders: book.working_orders,
            },
        )
    }

    /// Stops: the last snapshot, a `run_stopped` line, the engine's finish (open orders
    /// cancelled, open trades reported), and `state/feed.json` saying stopped.
    /// Takes the requests of the inbox (see [`crate::paper::orders`]) at wall time `wall`: each
    /// that the run can use is recorded, submitted and removed; each other one is answered
    /// `refused` and removed. A request the run recorded already (the process died before
    /// removing it) is removed.
    fn take_orders(&mut self, wall: UnixNanos) -> Result<(), RunError> {
        for (path, parsed) in orders::take_inbox(&self.run_dir) {
            let order = match parsed {
                Ok(order) => order,
                Err(reason) => {
                    orders::refuse_unusable(&self.run_dir, &self.run_id, &path, None, reason)?;
                    continue;
                }
            };
            if self.externals.knows(&order.client_order_id) {
                std::fs::remove_file(&path).map_err(|e| RunError::io(&path, e))?;
                continue;
            }
            let unusable = if self.engine.as_ref().and_then(Engine::last_ts).is_none() {
                Some(
                    "the paper run has processed no bar yet: there is no price to order at"
                        .to_string(),
                )
            } else {
                orders::check(&order, &self.instruments).err()
            };
            if let Some(reason) = unusable {
                orders::refuse_unusable(&self.run_dir, &self.run_id, &path, Some(order), reason)?;
                continue;
            }
            let id = order.client_order_id.clone();
            let input = Input::Order {
                n: self.events + 1,
                wall: wall.0,
                order,
            };
            self.record_and_apply(&input)?;
            // Recorded before the request goes: a run that dies in between finds it recorded.
            self.flush_inputs()?;
            std::fs::remove_file(&path).map_err(|e| RunError::io(&path, e))?;
            tracing::info!(client_order_id = %id, "external order taken");
            self.write_account()?;
        }
        Ok(())
    }

    fn stop(&mut self, reason: StopReason) -> Result<Summary, RunError> {
        // The snapshot first: it describes the state after the last event, as every other
        // snapshot does (a run killed while stopping is resumed from it); whenever the last
        // one was.
        let wall = wall_now();
        self.snapshot(wall)?;
        self.sink.set_wall_ts(&wall_text(wall));
        self.sink
            .journal_extra(&json!({"event": "run_stopped", "stop_reason": reason.as_str()}));
        let engine = self.engine.take().ok_or_else(|| RunError::Corrupt {
            path: PathBuf::new(),
            message: "the paper run's engine has finished".to_string(),
        })?;
        let mut sink = PaperSink {
            sink: &mut self.sink,
            live: self.live.counters(),
            observer: match self.observer.as_mut() {
                Some(o) => Some(&mut **o),
                None => None,
            },
            wall,
            stamp: None,
            first_accept: None,
            externals: &mut self.externals,
        };
        // Finishing stops the script strategies' children (their `on_stop` first).
        let summary = engine.finish(&mut sink)?;
        if let Some(e) = self.script_error() {
            return Err(e);
        }
        // Working external orders were cancelled (`run_end`); requests not taken never will be.
        self.externals.write(&self.run_dir)?;
        if self.paper.external_orders {
            // The account as the run ends: nothing works any more.
            let positions = summary
                .positions
                .iter()
                .zip(&self.instruments)
                .filter(|(p, _)| !p.is_flat())
                .map(|(p, inst)| {
                    json!({
                        "symbol": inst.symbol.as_str(),
                        "quantity": p.signed_quantity().to_string(),
                        "avg_price": p.avg_price().map(|x| x.to_string()),
                        "realized": p.realized().to_string(),
                    })
                })
                .collect();
            orders::write_account(
                &self.run_dir,
                &orders::Account {
                    run_id: self.run_id.clone(),
                    updated_at: wall_text(wall_now()),
                    last_bar_ts: self.position.last_bar_ts.map(rfc3339),
                    cash: summary.cash.to_string(),
                    equity: summary.equity.to_string(),
                    positions,
                    working_orders: Vec::new(),
                },
            )?;
        }
        if self.paper.external_orders {
            for (path, parsed) in orders::take_inbox(&self.run_dir) {
                orders::refuse_unusable(
                    &self.run_dir,
                    &self.run_id,
                    &path,
                    parsed.ok(),
                    format!(
                        "the paper run stopped ({}) before it took the order",
                        reason.as_str()
                    ),
                )?;
            }
        }
        self.feed_state.stopped = true;
        self.feed_state.write(&self.run_dir)?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tradeloom_core::{Bar, InstrumentId, Price, Quantity};
    use tradeloom_safety::Scope;

    use super::*;
    use crate::paper::FeedError;
    use crate::spec::{ResolvedSpec, parse_spec, resolve};

    const SPEC: &str = "name: unit
mode: paper
feed: {type: scan_dir, path: scans}
instruments: [{symbol: ABC, price_precision: 2, size_precision: 0}]
strategy: {name: sma_cross, params: {fast: 2, slow: 4, quantity: 1}}
execution: {fill_model: next_open}
account: {initial_cash: 10000, currency: USD}
snapshot_every: 7
";

    fn spec() -> ResolvedSpec {
        let path = Path::new("unit.yaml");
        resolve(parse_spec(SPEC, path).unwrap(), path, SPEC.to_string()).unwrap()
    }

    /// Daily bars whose closes swing up and down (the crossover trades often).
    fn bars(n: usize) -> Vec<Bar> {
        (0..n)
            .map(|i| {
                let wave = [0, 3, 6, 8, 6, 3, 0, -3, -6, -8, -6, -3][i % 12];
                let p = Price::from_raw((100 + wave + (i as i64 % 5)) * 1_000_000_000, 2);
                Bar {
                    instrument: InstrumentId(0),
                    ts: UnixNanos(1_700_000_000_000_000_000 + i as i64 * 86_400_000_000_000),
                    open: p,
                    high: p,
                    low: p,
                    close: p,
                    volume: Quantity::from_raw(1_000_000_000, 0).unwrap(),
                }
            })
            .collect()
    }

    /// Plays a script of polls; `Ended` once it is done. Resuming skips bars at or before the
    /// position.
    struct ScriptFeed {
        script: VecDeque<Result<FeedPoll, FeedError>>,
        /// Engages the global kill switch of this data dir when the script reaches this many
        /// items left.
        engage_at: Option<(usize, KillSwitch)>,
    }

    impl ScriptFeed {
        fn bars(bars: &[Bar]) -> Self {
            Self {
                script: bars
                    .iter()
                    .map(|b| Ok(FeedPoll::Event(FeedEvent::Bar(*b))))
                    .collect(),
                engage_at: None,
            }
        }

        /// `bars` (the first numbered `from`) as a replay feed delivers them, `chunk` at a time.
        fn replayed(bars: &[Bar], from: u64, chunk: usize) -> Self {
            Self {
                script: (from..)
                    .step_by(chunk)
                    .zip(bars.chunks(chunk))
                    .map(|(from, bars)| {
                        Ok(FeedPoll::Replayed {
                            from,
                            bars: bars.to_vec(),
                        })
                    })
                    .collect(),
                engage_at: None,
            }
        }
    }

    impl Feed for ScriptFeed {
        fn kind(&self) -> &'static str {
            "script"
        }

        fn poll(&mut self, _wait: Duration) -> Result<FeedPoll, FeedError> {
            if let Some((left, kill_switch)) = &self.engage_at
                && self.script.len() == *left
            {
                kill_switch
                    .engage(&Scope::Global, "unit drill", "test", false)
                    .unwrap();
                self.engage_at = None;
            }
            self.script.pop_front().unwrap_or(Ok(FeedPoll::Ended))
        }

        fn resume_after(&mut self, position: FeedPosition) {
            let after = |b: &Bar| position.last_bar_ts.is_none_or(|t| b.ts > t);
            self.script.retain_mut(|p| match p {
                Ok(FeedPoll::Event(FeedEvent::Bar(b))) => after(b),
                Ok(FeedPoll::Replayed { from, bars }) => {
                    let skipped = bars.iter().take_while(|b| !after(b)).count();
                    bars.drain(..skipped);
                    *from += skipped as u64;
                    !bars.is_empty()
                }
                _ => true,
            });
        }
    }

    fn run_with(
        data_dir: &Path,
        feed: ScriptFeed,
        resume: Option<&str>,
    ) -> Result<RunOutcome, ExecuteError> {
        run_spec_with(data_dir, spec(), feed, resume)
    }

    /// Runs `spec` (a new run), or resumes run `resume` (its own spec), with a snapshot every
    /// `snapshot_every` events however fast they come (so that a resume checks its state
    /// against snapshots at any point).
    fn run_spec_with(
        data_dir: &Path,
        spec: ResolvedSpec,
        feed: ScriptFeed,
        resume: Option<&str>,
    ) -> Result<RunOutcome, ExecuteError> {
        run_spec_paced(data_dir, spec, Box::new(feed), resume, Duration::ZERO)
    }

    /// [`run_spec_with`] with at most one snapshot per `snapshot_interval`.
    fn run_spec_paced(
        data_dir: &Path,
        spec: ResolvedSpec,
        feed: Box<dyn Feed>,
        resume: Option<&str>,
        snapshot_interval: Duration,
    ) -> Result<RunOutcome, ExecuteError> {
        let mut options = PaperOptions::new(data_dir, StopSignal::new());
        options.resume = resume.map(str::to_string);
        options.snapshot_interval = snapshot_interval;
        let spec = match resume {
            Some(id) => crate::paper::resume_spec(data_dir, id).unwrap(),
            None => spec,
        };
        run_paper(SpecSource::Loaded(Box::new(spec)), feed, options)
    }

    /// fills.csv or orders.csv rows without the last column (`wall_ts`).
    fn rows(dir: &Path, name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        text.lines()
            .map(|l| l[..l.rfind(',').unwrap()].to_string())
            .collect()
    }

    #[test]
    fn a_run_resumed_from_any_kill_point_ends_as_the_uninterrupted_run() {
        let all = bars(200);
        let whole = tempfile::tempdir().unwrap();
        let expected = run_with(whole.path(), ScriptFeed::bars(&all), None).unwrap();
        assert_eq!(expected.metadata.stop_reason.as_deref(), Some("feed_end"));
        let expected_fills = rows(&expected.run_dir, "fills.csv");
        assert!(expected_fills.len() > 20, "the strategy trades");
        let expected_orders = rows(&expected.run_dir, "orders.csv");

        // Kill points: how much of the journal reached the disk (a fraction of its bytes, cut
        // mid-line), and whether an input was recorded but not processed.
        for (journal_kept, unprocessed_input) in
            [(0.0, false), (0.37, true), (0.81, false), (1.0, true)]
        {
            let data = tempfile::tempdir().unwrap();
            let mut feed = ScriptFeed::bars(&all[..120]);
            feed.script.push_back(Err(FeedError {
                feed: "script",
                message: "connection lost".to_string(),
            }));
            let Err(ExecuteError::Failed(failed)) = run_with(data.path(), feed, None) else {
                panic!("the feed's error fails the run");
            };
            let dir = failed.run_dir.clone();
            // What a kill -9 leaves: the journal's tail not written, a partial line.
            let journal = std::fs::read(dir.join("journal.jsonl")).unwrap();
            let cut = (journal.len() as f64 * journal_kept) as usize;
            std::fs::write(dir.join("journal.jsonl"), &journal[..cut]).unwrap();
            let inputs_path = dir.join(INPUTS_FILE);
            let mut inputs = std::fs::read_to_string(&inputs_path).unwrap();
            if unprocessed_input {
                let events = read_inputs(&inputs_path)
                    .unwrap()
                    .iter()
                    .filter_map(Input::n)
                    .max()
                    .unwrap();
                let next = Input::of_feed(&FeedEvent::Bar(all[120]), events + 1, 1, None);
                inputs.push_str(&serde_json::to_string(&next).unwrap());
                inputs.push('\n');
            }
            inputs.push_str("{\"kind\":\"bar\",\"n\":99");
            std::fs::write(&inputs_path, inputs).unwrap();

            let resumed = run_with(data.path(), ScriptFeed::bars(&all), Some(&failed.run_id))
                .unwrap_or_else(|e| panic!("resume at {journal_kept}: {e}"));
            assert_eq!(resumed.status, RunStatus::Completed);
            assert_eq!(rows(&dir, "fills.csv"), expected_fills, "at {journal_kept}");
            assert_eq!(
                rows(&dir, "orders.csv"),
                expected_orders,
                "at {journal_kept}"
            );
            assert_eq!(resumed.metrics.bars, 200);
            let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            for (i, l) in lines.iter().enumerate() {
                assert_eq!(l["seq"], i as u64 + 1);
                assert!(l["wall_ts"].is_string());
            }
            assert_eq!(
                lines.iter().filter(|l| l["event"] == "run_resumed").count(),
                1
            );
            assert!(
                !lines.iter().any(|l| l["event"] == "run_failed"),
                "the failure's lines were cut"
            );
            let report = crate::verify_run(&dir).unwrap();
            assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
        }
    }

    use crate::metadata::RunStatus;

    /// 200 bars replayed in batches of `batch` without interruption (the run folder under
    /// `whole`): the spec (its data file in `work`), the bars, and the run.
    fn replayed_whole(
        work: &Path,
        whole: &Path,
        batch: usize,
    ) -> (ResolvedSpec, Vec<Bar>, RunOutcome) {
        let (spec_of, all) = replay_spec(work, &bars(200));
        let expected = run_spec_with(
            whole,
            spec_of.clone(),
            ScriptFeed::replayed(&all, 0, batch),
            None,
        )
        .unwrap();
        (spec_of, all, expected)
    }

    /// The unit spec replaying `bars` written to a CSV file in `dir` at `speed: max`, and the
    /// bars as the data files give them back.
    fn replay_spec(dir: &Path, bars: &[Bar]) -> (ResolvedSpec, Vec<Bar>) {
        let mut csv = String::from("ts,open,high,low,close,volume\n");
        for b in bars {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                rfc3339(b.ts),
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume
            ));
        }
        let data = dir.join("abc.csv");
        std::fs::write(&data, csv).unwrap();
        let text = SPEC
            .replace(
                "feed: {type: scan_dir, path: scans}",
                "feed: {type: replay, speed: max}",
            )
            .replace(
                "instruments:",
                &format!(
                    "data: [{{symbol: ABC, path: {}}}]\ninstruments:",
                    data.display()
                ),
            );
        let path = dir.join("unit.yaml");
        let spec = resolve(parse_spec(&text, &path).unwrap(), &path, text.clone()).unwrap();
        let read = replay_bars(&spec)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(read.len(), bars.len());
        (spec, read)
    }

    /// The records of `state/inputs.jsonl` by kind.
    fn kinds(dir: &Path) -> std::collections::BTreeMap<String, usize> {
        let mut kinds = std::collections::BTreeMap::new();
        for line in std::fs::read_to_string(dir.join(INPUTS_FILE))
            .unwrap()
            .lines()
        {
            let v: Value = serde_json::from_str(line).unwrap();
            *kinds
                .entry(v["kind"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        kinds
    }

    /// Resumes run `id` with a replay of `all` and checks it ends as `expected` did.
    fn resume_and_compare(data_dir: &Path, id: &str, all: &[Bar], expected: &RunOutcome) {
        resume_and_compare_by(data_dir, id, all, expected, |row| row);
    }

    /// The same, comparing rows of fills.csv and orders.csv as `normalise` leaves them.
    fn resume_and_compare_by(
        data_dir: &Path,
        id: &str,
        all: &[Bar],
        expected: &RunOutcome,
        normalise: fn(String) -> String,
    ) {
        let resumed = run_spec_with(data_dir, spec(), ScriptFeed::replayed(all, 0, 32), Some(id))
            .unwrap_or_else(|e| panic!("resume: {e}"));
        assert_eq!(resumed.status, RunStatus::Completed);
        let dir = &resumed.run_dir;
        for name in ["fills.csv", "orders.csv"] {
            let of = |dir: &Path| -> Vec<String> {
                rows(dir, name).into_iter().map(normalise).collect()
            };
            assert_eq!(of(dir), of(&expected.run_dir), "{name}");
        }
        assert_eq!(resumed.metrics.bars, all.len() as u64);
        let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
        for (i, line) in text.lines().enumerate() {
            let l: Value = serde_json::from_str(line).unwrap();
            assert_eq!(l["seq"], i as u64 + 1);
        }
        let report = crate::verify_run(dir).unwrap();
        assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
    }

    #[test]
    fn a_replay_run_records_positions_and_resumed_from_any_kill_point_ends_as_the_whole_run() {
        let (work, whole) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (spec_of, all, expected) = replayed_whole(work.path(), whole.path(), 32);
        assert!(
            rows(&expected.run_dir, "fills.csv").len() > 20,
            "the strategy trades"
        );
        // One record per batch, no bar's values.
        let recorded = kinds(&expected.run_dir);
        assert_eq!(recorded.get("replay"), Some(&7), "{recorded:?}");
        assert_eq!(recorded.get("bar"), None);
        // The wall time of a batch's journal lines is the batch's.
        let inputs = read_inputs(&expected.run_dir.join(INPUTS_FILE)).unwrap();
        let Some(Input::Replay { wall, count, .. }) = inputs.get(1) else {
            panic!("{inputs:?}")
        };
        assert_eq!(*count, 32);
        let stamp = wall_text(UnixNanos(*wall));
        let text = std::fs::read_to_string(expected.run_dir.join("journal.jsonl")).unwrap();
        assert!(
            text.contains(&stamp),
            "a line of the second batch has its wall time"
        );

        for (journal_kept, unprocessed_input) in
            [(0.0, false), (0.37, true), (0.81, false), (1.0, true)]
        {
            let data = tempfile::tempdir().unwrap();
            let mut feed = ScriptFeed::replayed(&all[..120], 0, 32);
            feed.script.push_back(Err(FeedError {
                feed: "script",
                message: "connection lost".to_string(),
            }));
            let Err(ExecuteError::Failed(failed)) =
                run_spec_with(data.path(), spec_of.clone(), feed, None)
            else {
                panic!("the feed's error fails the run");
            };
            let dir = failed.run_dir.clone();
            let journal = std::fs::read(dir.join("journal.jsonl")).unwrap();
            let cut = (journal.len() as f64 * journal_kept) as usize;
            std::fs::write(dir.join("journal.jsonl"), &journal[..cut]).unwrap();
            let inputs_path = dir.join(INPUTS_FILE);
            let mut inputs = std::fs::read_to_string(&inputs_path).unwrap();
            if unprocessed_input {
                // Recorded, then killed before processing it: the resumed run processes it.
                let batch = &all[120..125];
                let next = Input::Replay {
                    n: 121,
                    wall: 1,
                    from: 120,
                    count: 5,
                    last_ts: batch[4].ts.0,
                    digest: bars_digest(batch),
                };
                inputs.push_str(&serde_json::to_string(&next).unwrap());
                inputs.push('\n');
            }
            inputs.push_str("{\"kind\":\"replay\",\"n\":99");
            std::fs::write(&inputs_path, inputs).unwrap();
            resume_and_compare(data.path(), &failed.run_id, &all, &expected);
        }
    }

    #[test]
    fn a_replay_run_recorded_bar_by_bar_resumes_and_goes_on_with_positions() {
        let (work, whole) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (spec_of, all, expected) = replayed_whole(work.path(), whole.path(), 50);
        let lost = || {
            Err(FeedError {
                feed: "script",
                message: "connection lost".to_string(),
            })
        };
        // Recorded as before positions were: one `bar` record with its values per bar.
        let data = tempfile::tempdir().unwrap();
        let mut feed = ScriptFeed::bars(&all[..70]);
        feed.script.push_back(lost());
        let Err(ExecuteError::Failed(failed)) =
            run_spec_with(data.path(), spec_of.clone(), feed, None)
        else {
            panic!("the feed's error fails the run");
        };
        assert_eq!(kinds(&failed.run_dir).get("bar"), Some(&70));
        // Resumed with positions, failed again: the log holds both kinds.
        let mut feed = ScriptFeed::replayed(&all[..150], 0, 16);
        feed.script.push_back(lost());
        let Err(ExecuteError::Failed(_)) =
            run_spec_with(data.path(), spec(), feed, Some(&failed.run_id))
        else {
            panic!("the feed's error fails the resumed run");
        };
        let recorded = kinds(&failed.run_dir);
        assert_eq!(recorded.get("bar"), Some(&70));
        assert!(
            recorded.get("replay").is_some_and(|&n| n >= 5),
            "{recorded:?}"
        );
        resume_and_compare(data.path(), &failed.run_id, &all, &expected);
    }

    #[test]
    fn a_kill_switch_engaged_mid_replay_is_answered_at_the_same_questions_on_resume() {
        let work = tempfile::tempdir().unwrap();
        let (spec_of, all) = replay_spec(work.path(), &bars(200));
        // 25 batches of 8; the global kill switch is engaged after the 10th.
        let whole = tempfile::tempdir().unwrap();
        let mut feed = ScriptFeed::replayed(&all, 0, 8);
        feed.engage_at = Some((15, KillSwitch::open(whole.path()).unwrap()));
        let expected = run_spec_with(whole.path(), spec_of.clone(), feed, None).unwrap();
        let text = std::fs::read_to_string(expected.run_dir.join("journal.jsonl")).unwrap();
        assert!(
            text.contains("kill_switch_engaged"),
            "engaged while bars flowed"
        );
        assert!(
            text.contains("risk.kill_switch"),
            "and later orders refused"
        );

        let data = tempfile::tempdir().unwrap();
        let mut feed = ScriptFeed::replayed(&all[..120], 0, 8);
        feed.script.push_back(Err(FeedError {
            feed: "script",
            message: "connection lost".to_string(),
        }));
        feed.engage_at = Some((6, KillSwitch::open(data.path()).unwrap()));
        let Err(ExecuteError::Failed(failed)) = run_spec_with(data.path(), spec_of, feed, None)
        else {
            panic!("the feed's error fails the run");
        };
        let inputs = read_inputs(&failed.run_dir.join(INPUTS_FILE)).unwrap();
        assert!(inputs.iter().any(|i| matches!(
            i,
            Input::Gate {
                engaged: Some(_),
                ..
            }
        )));
        // The replay asks every question; the live run answered most without asking. The two
        // runs' engagements differ only in their wall time, named in the rejections' reason.
        resume_and_compare_by(
            data.path(),
            &failed.run_id,
            &all,
            &expected,
            |row| match row.find(" at 20") {
                Some(at) => row[..at].to_string(),
                None => row,
            },
        );
    }

    #[test]
    fn a_replay_run_whose_data_changed_is_not_resumed() {
        let work = tempfile::tempdir().unwrap();
        let original = bars(100);
        let (spec_of, all) = replay_spec(work.path(), &original);
        let data = tempfile::tempdir().unwrap();
        let mut feed = ScriptFeed::replayed(&all[..60], 0, 20);
        feed.script.push_back(Err(FeedError {
            feed: "script",
            message: "connection lost".to_string(),
        }));
        let Err(ExecuteError::Failed(failed)) = run_spec_with(data.path(), spec_of, feed, None)
        else {
            panic!("the feed's error fails the run");
        };
        // One price of a bar the run processed is edited.
        let mut edited = original.clone();
        let up = Price::from_raw(edited[30].close.raw() + 1_000_000_000, 2);
        (edited[30].high, edited[30].close) = (up, up);
        replay_spec(work.path(), &edited);
        let Err(e) = run_spec_with(
            data.path(),
            spec(),
            ScriptFeed::replayed(&edited, 0, 20),
            Some(&failed.run_id),
        ) else {
            panic!("resumed over changed data");
        };
        let message = e.to_string();
        assert!(
            message.contains("bars 20 to 39 of the data files are not those"),
            "{message}"
        );
    }

    #[test]
    fn wall_text_is_formatted_as_chrono_does() {
        let mut text = WallText::default();
        for wall in [
            1_796_580_016_990_969_822,
            1_796_580_016_000_000_000,
            1_796_580_016_000_000_007,
            1_796_580_016_999_999_999,
            1_796_580_017_000_000_001,
            1_796_580_017_100_000_000,
            0,
            -1,
            -1_000_000_000,
        ] {
            assert_eq!(
                text.format(UnixNanos(wall)),
                wall_text(UnixNanos(wall)),
                "{wall}"
            );
        }
    }

    #[test]
    fn the_kill_switch_is_asked_while_the_feed_is_quiet() {
        let data = tempfile::tempdir().unwrap();
        let all = bars(30);
        let mut feed = ScriptFeed::bars(&all);
        // After the 30 bars the feed is quiet; the global kill switch is engaged then.
        for _ in 0..5 {
            feed.script.push_back(Ok(FeedPoll::Idle));
        }
        feed.engage_at = Some((3, KillSwitch::open(data.path()).unwrap()));
        let outcome = run_with(data.path(), feed, None).unwrap();
        let text = std::fs::read_to_string(outcome.run_dir.join("journal.jsonl")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let engaged = lines
            .iter()
            .position(|l| l["event"] == "kill_switch_engaged")
            .expect("journaled while the feed was quiet");
        let stopped = lines
            .iter()
            .position(|l| l["event"] == "run_stopped")
            .unwrap();
        assert!(engaged < stopped, "before the run stopped");
        let inputs = read_inputs(&outcome.run_dir.join(INPUTS_FILE)).unwrap();
        assert!(inputs.iter().any(|i| matches!(i, Input::Idle { .. })));
        assert!(inputs.iter().any(|i| matches!(
            i,
            Input::Gate {
                engaged: Some(_),
                ..
            }
        )));
    }

    /// The snapshot in `dir`, as JSON.
    fn snapshot_json(dir: &Path) -> Option<Value> {
        let text = std::fs::read_to_string(dir.join(SNAPSHOT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    #[test]
    fn snapshots_wait_for_their_interval_and_a_run_resumed_without_one_ends_as_the_whole_run() {
        let (work, whole) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (spec_of, all, expected) = replayed_whole(work.path(), whole.path(), 32);
        let hour = Duration::from_secs(3600);
        let lost = || {
            Err(FeedError {
                feed: "script",
                message: "connection lost".to_string(),
            })
        };

        // Paced at one an hour: 120 events, a snapshot due every 7, none written.
        let data = tempfile::tempdir().unwrap();
        let mut feed = ScriptFeed::replayed(&all[..120], 0, 32);
        feed.script.push_back(lost());
        let Err(ExecuteError::Failed(failed)) =
            run_spec_paced(data.path(), spec_of.clone(), Box::new(feed), None, hour)
        else {
            panic!("the feed's error fails the run");
        };
        assert_eq!(snapshot_json(&failed.run_dir), None);
        // Unpaced, the same run leaves the snapshot of its last seventh event.
        let unpaced = tempfile::tempdir().unwrap();
        let mut feed = ScriptFeed::replayed(&all[..120], 0, 32);
        feed.script.push_back(lost());
        let Err(ExecuteError::Failed(other)) =
            run_spec_with(unpaced.path(), spec_of.clone(), feed, None)
        else {
            panic!("the feed's error fails the run");
        };
        assert_eq!(snapshot_json(&other.run_dir).unwrap()["events"], 119);

        // Resumed (paced too): nothing lost or processed twice, and the stop's snapshot is
        // written and sealed whatever the interval.
        let resumed = run_spec_paced(
            data.path(),
            spec(),
            Box::new(ScriptFeed::replayed(&all, 0, 32)),
            Some(&failed.run_id),
            hour,
        )
        .unwrap();
        let dir = &resumed.run_dir;
        for name in ["fills.csv", "orders.csv"] {
            assert_eq!(rows(dir, name), rows(&expected.run_dir, name), "{name}");
        }
        assert_eq!(resumed.metrics.bars, 200);
        let events = read_inputs(&dir.join(INPUTS_FILE))
            .unwrap()
            .iter()
            .filter_map(Input::n)
            .max()
            .unwrap();
        assert_eq!(events, 201, "200 bars and the resumption");
        let snapshot = snapshot_json(dir).unwrap();
        assert_eq!(snapshot["events"], events);
        let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
        let stopped = journal
            .lines()
            .position(|l| l.contains("\"event\":\"run_stopped\""))
            .unwrap();
        assert_eq!(
            snapshot["journal_lines"], stopped as u64,
            "taken before run_stopped"
        );
        assert!(resumed.metadata.artifacts.contains_key(SNAPSHOT_FILE));
        let report = crate::verify_run(dir).unwrap();
        assert!(report.ok(), "{:?}", report.failures().collect::<Vec<_>>());
    }

    /// A script's polls, then idle polls (each waiting up to 10 ms) until `quiet_until` says
    /// so or 20 s passed; then the end.
    struct QuietAfter {
        script: ScriptFeed,
        quiet_until: Box<dyn FnMut() -> bool + Send>,
        /// Set by the first idle poll.
        deadline: Option<Instant>,
    }

    impl Feed for QuietAfter {
        fn kind(&self) -> &'static str {
            "script"
        }

        fn poll(&mut self, wait: Duration) -> Result<FeedPoll, FeedError> {
            if !self.script.script.is_empty() {
                return self.script.poll(wait);
            }
            let deadline = *self
                .deadline
                .get_or_insert_with(|| Instant::now() + Duration::from_secs(20));
            if (self.quiet_until)() || Instant::now() > deadline {
                return Ok(FeedPoll::Ended);
            }
            std::thread::sleep(wait.min(Duration::from_millis(10)));
            Ok(FeedPoll::Idle)
        }

        fn resume_after(&mut self, position: FeedPosition) {
            self.script.resume_after(position);
        }
    }

    #[test]
    fn a_snapshot_put_off_by_its_interval_is_written_while_the_feed_is_quiet() {
        let work = tempfile::tempdir().unwrap();
        let (spec_of, all) = replay_spec(work.path(), &bars(20));
        let data = tempfile::tempdir().unwrap();
        let runs = data.path().join("runs");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let quiet_until = {
            let seen = Arc::clone(&seen);
            Box::new(move || {
                let Some(dir) = std::fs::read_dir(&runs)
                    .ok()
                    .and_then(|mut d| d.next())
                    .and_then(Result::ok)
                else {
                    return false;
                };
                let events = snapshot_json(&dir.path()).map(|s| s["events"].clone());
                let mut seen = seen.lock().unwrap();
                if let Some(events) = events
                    && seen.last() != Some(&events)
                {
                    seen.push(events);
                }
                !seen.is_empty()
            })
        };
        // One batch of 20: snapshots due at events 7 and 14 (not yet: the interval), and at 20.
        let feed = QuietAfter {
            script: ScriptFeed::replayed(&all, 0, 20),
            quiet_until,
            deadline: None,
        };
        let outcome = run_spec_paced(
            data.path(),
            spec_of,
            Box::new(feed),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(outcome.metrics.bars, 20);
        // Seen before the feed ended: the one snapshot, after the last event.
        assert_eq!(*seen.lock().unwrap(), vec![Value::from(20)]);
        assert_eq!(snapshot_json(&outcome.run_dir).unwrap()["events"], 20);
    }
}
