//! [`run_paper`]: a paper run — the backtest's engine, sink and run folder, fed by a [`Feed`] on
//! the wall clock until a stop signal, `stop_at`, or the feed's end.
//!
//! Every event is first recorded in `state/inputs.jsonl` (see [`crate::paper::inputs`]), then
//! processed exactly as a backtest processes a bar; the journal gets a `wall_ts` on every line,
//! `orders.csv` and `fills.csv` a `wall_ts` column. The folder grows while the run runs (what
//! is written is handed to the writer thread at least every 200 ms), `state/feed.json` is
//! rewritten every second, `state/snapshot.json` every `snapshot_every` events. The kill switch
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
use tradeloom_core::{Event, Fill, Instrument, Symbol, UnixNanos};
use tradeloom_engine::sink::OrderRecord;
use tradeloom_engine::{Engine, EquityPoint, Sink, Summary, Trade};
use tradeloom_safety::KillSwitch;

use crate::artifacts::RunSink;
use crate::error::RunError;
use crate::folder::RunFolder;
use crate::hashing::sha256_file;
use crate::kill_switch::RunGate;
use crate::live::{LiveGuard, LiveRun};
use crate::metadata::FileHash;
use crate::paper::feed_state::{FEED_FILE, FeedState};
use crate::paper::gate::GateHandle;
use crate::paper::inputs::{INPUTS_FILE, Input, InputLog, read_inputs, scan_of};
use crate::paper::resume::{Reopened, reopen};
use crate::paper::snapshot::{BookState, SNAPSHOT_FILE, Snapshot, rfc3339};
use crate::paper::{Feed, FeedEvent, FeedPoll, FeedPosition, FeedSpec, Scan, StopSignal};
use crate::runner::{
    ExecuteError, RunOutcome, SpecSource, StartedRun, build_engine, data_hashes, finish_files,
    initial_metadata, normalise, open_sink_with,
};
use crate::spec::{PaperSettings, load_spec};

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

/// Runs a paper spec until the stop signal, `stop_at`, or the feed's end, and seals the folder
/// (`metadata.json` `completed` with a `stop_reason`, or `failed`). Blocking: call it from a
/// thread of its own. With `options.resume` it continues that run instead of starting one (the
/// spec must then be the one [`resume_spec`](crate::paper::resume_spec) returned).
pub fn run_paper(
    spec: SpecSource<'_>,
    feed: Box<dyn Feed>,
    mut options: PaperOptions<'_>,
) -> Result<RunOutcome, ExecuteError> {
    let observer = options.observer.take();
    let mut observer = observer;
    let result = run(spec, feed, options, &mut observer);
    if let Some(o) = observer.as_deref_mut() {
        let outcome = match &result {
            Ok(outcome) => Ok(outcome.clone()),
            Err(e) => Err(e.to_string()),
        };
        o.on_stop(&outcome);
    }
    result
}

fn run<'a>(
    spec: SpecSource<'_>,
    mut feed: Box<dyn Feed>,
    options: PaperOptions<'_>,
    observer: &mut Option<&'a mut dyn PaperObserver>,
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
    let engine = build_engine(&spec).map_err(reject)?;
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
    let sink = match open_sink_with(&run.folder, &spec, existing, true) {
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
        replaying: false,
        since_snapshot: 0,
    };
    if let Some(o) = machine.observer.as_deref_mut() {
        o.on_start(&machine.run_id, &machine.run_dir);
    }

    let result = (|| -> Result<(Summary, StopReason), RunError> {
        if let Some(prior) = &prior {
            machine.catch_up(&recorded, prior)?;
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
    let (summary, reason) = match result {
        Ok(x) => x,
        Err(e) => {
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
        log.lock().unwrap_or_else(PoisonError::into_inner).sync()?;
        for name in [INPUTS_FILE, SNAPSHOT_FILE, FEED_FILE] {
            let path = run.folder.file(name);
            let (sha256, bytes) = sha256_file(&path).map_err(|e| RunError::io(&path, e))?;
            run.meta
                .artifacts
                .insert(name.to_string(), FileHash { sha256, bytes });
        }
        let hashes = data_hashes(&spec, Vec::new(), Ok(Vec::new()))?;
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
    /// Catching up on recorded inputs: nothing is recorded or reported.
    replaying: bool,
    since_snapshot: u64,
}

/// The engine's sink in a paper run: the run folder's writer, the live counters, the observer.
struct PaperSink<'a> {
    sink: &'a mut RunSink,
    live: &'a LiveRun,
    observer: Option<&'a mut dyn PaperObserver>,
    wall: UnixNanos,
    first_accept: Option<Instant>,
}

impl Sink for PaperSink<'_> {
    fn on_event(&mut self, event: &Event) {
        if self.first_accept.is_none() && matches!(event, Event::OrderAccepted { .. }) {
            self.first_accept = Some(Instant::now());
        }
        self.live.observe(event);
        self.sink.on_event(event);
        if let Some(o) = self.observer.as_deref_mut() {
            o.on_event(event, self.wall);
        }
    }

    fn on_fill(&mut self, fill: &Fill, symbol: Symbol) {
        self.sink.on_fill(fill, symbol);
    }

    fn on_order_closed(&mut self, record: &OrderRecord<'_>) {
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
            | Input::Resumed { n, wall, .. } => (*n, UnixNanos(*wall)),
            // Answers of the kill switch are the gate's (see `gate.rs`).
            Input::Gate { .. } => return Ok(None),
        };
        self.sink.set_wall_ts(&wall_text(wall));
        let engine = engine_of(&mut self.engine)?;
        let mut sink = PaperSink {
            sink: &mut self.sink,
            live: self.live.counters(),
            observer: match self.observer.as_mut() {
                Some(o) if !self.replaying => Some(&mut **o),
                _ => None,
            },
            wall,
            first_accept: None,
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
                sink.sink
                    .journal_extra(&json!({"event": "feed_malformed", "reason": reason}));
                self.feed_state.on_event(wall, None);
                self.feed_state.malformed += 1;
            }
            Input::Status {
                connected, detail, ..
            } => {
                sink.sink.journal_extra(
                    &json!({"event": "feed_status", "connected": connected, "detail": detail}),
                );
                self.feed_state.on_event(wall, None);
                self.feed_state.connected = *connected;
            }
            Input::Idle { .. } => engine.poll_kill_switch(&mut sink)?,
            Input::Resumed { interrupted, .. } => {
                let mut line = json!({"event": "run_resumed", "after_events": n - 1});
                if let Some(why) = interrupted {
                    line["interrupted"] = Value::from(why.as_str());
                }
                sink.sink.journal_extra(&line);
            }
            Input::Gate { .. } => {}
        }
        let first_accept = sink.first_accept;
        self.events = n;
        self.since_snapshot += 1;
        if let Some(e) = self.gate.take_error() {
            return Err(e);
        }
        if let Some(e) = self.sink.error() {
            return Err(RunError::io(
                &self.run_dir,
                std::io::Error::new(e.kind(), e.to_string()),
            ));
        }
        if !self.replaying && self.since_snapshot >= self.paper.snapshot_every {
            self.snapshot()?;
        }
        Ok(first_accept)
    }

    /// Records `input` in `state/inputs.jsonl`, then processes it.
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

    fn snapshot(&mut self) -> Result<(), RunError> {
        self.since_snapshot = 0;
        self.snapshot_now()?.write(&self.run_dir)
    }

    /// Replays the recorded inputs of a resumed run, checks the state against the snapshot,
    /// and records and journals the resumption.
    fn catch_up(&mut self, recorded: &[Input], prior: &Reopened) -> Result<(), RunError> {
        self.replaying = true;
        let mut checked = prior.snapshot.is_none();
        for input in recorded {
            self.apply(input)?;
            if let Some(snapshot) = &prior.snapshot
                && input.n() == Some(snapshot.events)
            {
                self.check(snapshot)?;
                checked = true;
            }
        }
        if !checked {
            return Err(RunError::Resume(format!(
                "run {}: state/snapshot.json is after event {} but state/inputs.jsonl records \
                 only {} events; the run cannot be resumed",
                self.run_id,
                prior.snapshot.as_ref().map_or(0, |s| s.events),
                self.events
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

    /// Polls the feed and processes what it delivers until a stop.
    fn run_live(&mut self, feed: &mut dyn Feed, stop: &StopSignal) -> Result<StopReason, RunError> {
        let mut last_hand_over = Instant::now();
        let mut last_feed_state = Instant::now();
        self.write_feed_state(feed)?;
        loop {
            if stop.is_stopped() {
                return Ok(StopReason::Stopped);
            }
            let now = wall_now();
            let mut wait = POLL;
            if let Some(at) = self.paper.stop_at {
                if now >= at {
                    return Ok(StopReason::StopAt);
                }
                let left = u64::try_from(at.0 - now.0).unwrap_or(0);
                wait = wait.min(Duration::from_nanos(left));
            }
            let started = self.engine.as_ref().is_some_and(|e| e.bars() > 0);
            if started && self.gate.changed() {
                let idle = Input::Idle {
                    n: self.events + 1,
                    wall: now.0,
                };
                self.record_and_apply(&idle)?;
            }
            if last_hand_over.elapsed() >= HAND_OVER_EVERY {
                last_hand_over = Instant::now();
                self.sink.hand_over();
            }
            if last_feed_state.elapsed() >= FEED_STATE_EVERY {
                last_feed_state = Instant::now();
                self.write_feed_state(feed)?;
            }
            match feed.poll(wait)? {
                FeedPoll::Idle => {}
                FeedPoll::Ended => return Ok(StopReason::FeedEnd),
                FeedPoll::Event(event) => self.on_feed_event(event, feed.clock())?,
            }
        }
    }

    /// Records and processes one event of the feed (a bar out of order becomes a malformed
    /// event; one processed already is skipped).
    fn on_feed_event(
        &mut self,
        event: FeedEvent,
        clock: Option<UnixNanos>,
    ) -> Result<(), RunError> {
        let wall = wall_now();
        let current = self
            .engine
            .as_ref()
            .and_then(|e| e.state().ok())
            .and_then(|s| s.ts);
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
        let last = self.position.last_bar_ts.or_else(|| {
            self.engine
                .as_ref()
                .and_then(|e| e.state().ok())
                .and_then(|s| s.ts)
        });
        self.feed_state.stale = match last {
            Some(ts) => self
                .stale_reason(feed.clock().unwrap_or_else(wall_now), ts)
                .is_some(),
            None => false,
        };
        self.feed_state.write(&self.run_dir)
    }

    /// Stops: the last snapshot, a `run_stopped` line, the engine's finish (open orders
    /// cancelled, open trades reported), and `state/feed.json` saying stopped.
    fn stop(&mut self, reason: StopReason) -> Result<Summary, RunError> {
        // The snapshot first: it describes the state after the last event, as every other
        // snapshot does (a run killed while stopping is resumed from it).
        self.snapshot()?;
        let wall = wall_now();
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
            first_accept: None,
        };
        let summary = engine.finish(&mut sink)?;
        self.feed_state.stopped = true;
        self.feed_state.write(&self.run_dir)?;
        Ok(summary)
    }
}
