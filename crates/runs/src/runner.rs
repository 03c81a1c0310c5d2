//! [`execute`]: spec → run folder.
//!
//! Errors in the spec or in opening the data are reported before any folder is created. Once
//! the run starts, its folder exists with `metadata.json` saying `running` (and the
//! connectivity files the caller assessed, hashed like every artifact); a failure later (a
//! malformed row deep in a file, a full disk) leaves the journal as written so far, appends a
//! `run_failed` line, and marks the metadata `failed` with the error — never `completed`.
//!
//! Every run honours the data dir's kill switch (global, the run's own scope, or that of the
//! workflow run that started it): while one is engaged the engine refuses every order with code
//! `risk.kill_switch` (asked every bar from a cache, and from the files right before each order
//! is accepted); with flatten (the engagement's or `risk.kill_switch.flatten`) it closes open
//! positions; a breach of the `max_drawdown_pct` limit engages the run's kill switch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tradeloom_core::connectivity::Connectivity;
use tradeloom_data::{BarReader, MergedBars, open_bars};
use tradeloom_engine::{Engine, Metrics, Summary};
use tradeloom_safety::KillSwitch;

use crate::artifacts::{RunSink, SinkFiles};
use crate::chart::CHART_FILE;
use crate::equity::{EQUITY_FILE, EquityWriter, MoneyLayout};
use crate::error::RunError;
use crate::folder::RunFolder;
use crate::hashing::{ArtifactPipe, Barrier, Finishing, sha256_bytes, sha256_file};
use crate::journal::Journal;
use crate::kill_switch::RunGate;
use crate::live::{CountingSink, LiveRun};
use crate::metadata::{
    DataInfo, FileHash, Metadata, MetadataSync, RunStatus, RunSummary, SpecInfo,
};
use crate::report::{REPORT_HTML, ReportHeader, render_html, render_markdown, render_svg};
use crate::script::ScriptRun;
use crate::spec::{ResolvedSpec, load_spec};
use crate::tables::RunTables;

/// How often (in bars) progress is reported.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Progress of a running backtest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub bars: u64,
    /// Work done and total, in the loaders' unit (bytes of CSV, rows of columnar files).
    pub done: u64,
    pub total: u64,
}

/// Where to write, whom to tell, and what else covers or goes into the run.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// The data dir; the run's folder is `<data_dir>/runs/<run_id>/`.
    pub data_dir: PathBuf,
    /// Called every 65,536 bars and once at the end.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
    /// Runs that started this one (a workflow run): their kill switches (`run:<id>`) cover it
    /// as well as the global one and its own.
    pub parent_runs: Vec<String>,
    /// The readiness and probe of the spec's providers, assessed by the caller before the run:
    /// written into the folder and hashed into `metadata.json` before it is sealed.
    pub connectivity: Option<Connectivity>,
    /// Called once the run's folder exists with `metadata.json` saying `running`, before the
    /// first bar: with the run id and the folder (a server answers "started" with the id).
    /// Not called for a spec rejected before a folder was created.
    pub on_start: Option<StartHook<'a>>,
    /// Keep the run's orders, fills, trades and equity curve as Arrow record batches in
    /// [`RunOutcome::tables`] as well (built while the files are written, not read back).
    pub tables: bool,
}

/// [`RunOptions::on_start`]: called with the run id and its folder.
pub type StartHook<'a> = &'a mut dyn FnMut(&str, &Path);

/// The spec of a run: a file to load, or a spec already loaded.
#[derive(Debug)]
pub enum SpecSource<'a> {
    /// A run spec file (YAML).
    File(&'a Path),
    /// A spec [`load_spec`] returned.
    Loaded(Box<ResolvedSpec>),
}

impl<'a> From<&'a Path> for SpecSource<'a> {
    fn from(path: &'a Path) -> Self {
        SpecSource::File(path)
    }
}

impl<'a> From<&'a PathBuf> for SpecSource<'a> {
    fn from(path: &'a PathBuf) -> Self {
        SpecSource::File(path)
    }
}

impl From<ResolvedSpec> for SpecSource<'_> {
    fn from(spec: ResolvedSpec) -> Self {
        SpecSource::Loaded(Box::new(spec))
    }
}

/// A finished run.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub status: RunStatus,
    pub metrics: Metrics,
    #[serde(skip)]
    pub metadata: Metadata,
    /// The run's tables, when [`RunOptions::tables`] asked for them.
    #[serde(skip)]
    pub tables: Option<RunTables>,
}

/// A run that failed after its folder was created.
#[derive(Debug)]
pub struct FailedRun {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub error: RunError,
}

/// Why [`execute`] did not produce a completed run.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Nothing was written: the spec or the data could not be opened.
    #[error("{0}")]
    Rejected(RunError),
    /// The run started and failed; its folder is marked failed.
    #[error("{}", .0.error)]
    Failed(Box<FailedRun>),
}

impl ExecuteError {
    pub fn run_error(&self) -> &RunError {
        match self {
            ExecuteError::Rejected(e) => e,
            ExecuteError::Failed(f) => &f.error,
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs a spec (a file or a loaded spec) to a run folder under `options.data_dir`.
pub fn execute<'s>(
    spec: impl Into<SpecSource<'s>>,
    mut options: RunOptions<'_>,
) -> Result<RunOutcome, ExecuteError> {
    let started = Instant::now();
    let reject = ExecuteError::Rejected;
    let spec = match spec.into() {
        SpecSource::File(path) => load_spec(path).map_err(reject)?,
        SpecSource::Loaded(spec) => *spec,
    };
    let (readers, mut engine, scripts) = open_inputs(&spec, &options.data_dir).map_err(reject)?;
    let kill_switch = KillSwitch::open(&options.data_dir).map_err(|e| reject(e.into()))?;
    let normalised = normalise(&spec).map_err(reject)?;

    let folder = RunFolder::create(&options.data_dir).map_err(reject)?;
    // Every log line of the run carries its id and trace id (derived from the id).
    let span = tracing::info_span!(
        "run",
        run_id = %folder.run_id,
        trace_id = %tradeloom_core::trace_id(&folder.run_id)
    );
    let _in_run = span.enter();
    tracing::info!(
        name = %spec.spec.name,
        strategy = %spec.spec.strategy.name(),
        instruments = spec.instruments.len(),
        "run started"
    );
    let flatten_default = spec.spec.risk.kill_switch.is_some_and(|k| k.flatten);
    let gate = RunGate::new(kill_switch, folder.run_id.clone())
        .with_parent_runs(options.parent_runs.iter().cloned())
        .with_flatten_default(flatten_default);
    let gate_errors = gate.errors();
    engine.set_kill_switch_gate(Box::new(gate));
    let meta = initial_metadata(&spec, &folder.run_id, &normalised, "backtest");
    let mut run = StartedRun {
        folder,
        meta,
        started,
    };
    let first_sync = run.write_inputs_syncing(&normalised, options.connectivity.as_ref())?;
    if let Some(on_start) = options.on_start.as_mut() {
        on_start(&run.folder.run_id, &run.folder.dir);
    }

    let hasher = hash_columnar_data(&readers, &spec);
    let mut sink = open_sink(&run.folder, &spec).map_err(|e| run.fail(e))?;
    if options.tables {
        sink.record_tables();
    }
    // Listed for `/metrics` of this process until the run ends.
    let live = crate::live::register(&run.folder.run_id);
    let result = drive(
        engine,
        MergedBars::new(readers),
        spec.window,
        &mut sink,
        &mut options,
        live.counters(),
        scripts.as_ref(),
    );
    // The script children are stopped (and their scratch folders removed) with the engine,
    // which `drive` consumed; a script's failure is the run's.
    let result = match scripts.as_ref().and_then(|s| s.failure.take()) {
        Some(e) => Err(RunError::Script(e.to_string())),
        None => result,
    };
    let columnar_hashes = hasher.join().unwrap_or_else(|_| {
        Err(RunError::Corrupt {
            path: PathBuf::new(),
            message: "the data hashing thread panicked".to_string(),
        })
    });
    let result = result.and_then(|x| match gate_errors.take() {
        Some(e) => Err(e.into()),
        None => Ok(x),
    });
    let (summary, streamed_hashes) = match result {
        Ok(x) => x,
        Err(e) => {
            sink.journal_extra(&serde_json::json!({"event": "run_failed", "error": e.to_string()}));
            if let Ok(files) = sink.finish() {
                let _ = finish_files(files, &run.folder, &mut run.meta.artifacts);
            }
            return Err(run.fail(e));
        }
    };
    let hashes = data_hashes(&spec, streamed_hashes, columnar_hashes).map_err(|e| run.fail(e))?;
    for (info, (sha, bytes)) in run.meta.data.iter_mut().zip(hashes) {
        info.sha256 = Some(sha);
        info.bytes = Some(bytes);
    }
    run.seal_after(sink, summary, &spec, Some(first_sync))
}

/// The data readers and the engine with its strategies: everything that can reject a spec
/// before a folder exists.
fn open_inputs(
    spec: &ResolvedSpec,
    data_dir: &Path,
) -> Result<(Vec<BarReader>, Engine, Option<ScriptRun>), RunError> {
    let readers = data_readers(spec)?;
    let (engine, scripts) = build_engine(spec, true, data_dir)?;
    Ok((readers, engine, scripts))
}

/// A reader of each of the spec's `data:` files, in spec order (errors name the file).
pub(crate) fn data_readers(spec: &ResolvedSpec) -> Result<Vec<BarReader>, RunError> {
    let mut readers = Vec::with_capacity(spec.data.len());
    for source in &spec.data {
        let inst = &spec.instruments[source.instrument.index()];
        readers.push(open_bars(&source.path, source.format, inst)?);
    }
    Ok(readers)
}

/// The bars of the spec's `data:` files merged in time order, as a backtest reads them (and a
/// paper run's replay feed delivers them; [`FeedPoll::Replayed`](crate::paper::FeedPoll)
/// numbers them in this order).
pub fn replay_bars(spec: &ResolvedSpec) -> Result<MergedBars, RunError> {
    Ok(MergedBars::new(data_readers(spec)?))
}

/// The engine with the spec's strategies (one per instrument, one portfolio strategy, or a
/// sandboxed child per instrument for a script), and what the runner watches of script
/// strategies (`lookahead`: whether the bars will be published ahead, as a backtest does;
/// `data_dir`: never readable by a script).
pub(crate) fn build_engine(
    spec: &ResolvedSpec,
    lookahead: bool,
    data_dir: &Path,
) -> Result<(Engine, Option<ScriptRun>), RunError> {
    let protected = [data_dir.to_path_buf()];
    let (strategies, scripts) = crate::script::build_strategies(spec, lookahead, &protected)?;
    Ok((
        Engine::with_strategies(spec.engine.clone(), spec.instruments.clone(), strategies)?,
        scripts,
    ))
}

/// The spec as `run_spec.yaml` holds it.
pub(crate) fn normalise(spec: &ResolvedSpec) -> Result<String, RunError> {
    yaml_serde::to_string(&spec.spec).map_err(|e| RunError::Spec {
        place: spec.path.display().to_string(),
        message: format!("cannot normalise the spec: {e}"),
    })
}

/// `metadata.json` of a run that has just started.
pub(crate) fn initial_metadata(
    spec: &ResolvedSpec,
    run_id: &str,
    normalised: &str,
    mode: &str,
) -> Metadata {
    Metadata {
        run_id: run_id.to_string(),
        name: spec.spec.name.clone(),
        status: RunStatus::Running,
        mode: mode.to_string(),
        venue: spec.spec.venue.clone(),
        strategy: spec.spec.strategy.name(),
        fill_model: spec.engine.fill_model.to_string(),
        instruments: spec
            .instruments
            .iter()
            .map(|i| i.symbol.to_string())
            .collect(),
        tradeloom_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: now_rfc3339(),
        finished_at: None,
        duration_ms: None,
        error: None,
        stop_reason: None,
        owner: Some(tradeloom_safety::ProcessOwner::current()),
        spec: SpecInfo {
            source_path: spec.path.display().to_string(),
            source_sha256: sha256_bytes(spec.text.as_bytes()),
            sha256: sha256_bytes(normalised.as_bytes()),
            script_path: spec.script.as_ref().map(|s| {
                std::path::absolute(&s.path)
                    .unwrap_or_else(|_| s.path.clone())
                    .display()
                    .to_string()
            }),
        },
        data: spec
            .data
            .iter()
            .map(|d| DataInfo {
                symbol: spec.instruments[d.instrument.index()].symbol.to_string(),
                path: d.given.clone(),
                resolved_path: std::path::absolute(&d.path)
                    .unwrap_or_else(|_| d.path.clone())
                    .display()
                    .to_string(),
                sha256: None,
                bytes: None,
            })
            .collect(),
        artifacts: BTreeMap::new(),
        summary: None,
    }
}

/// `(index of the data source, (sha256, bytes))` of the sources hashed on a second thread.
pub(crate) type ColumnarHashes = Vec<(usize, (String, u64))>;

/// Hashes the data files that are not CSV on a second thread (CSV files are hashed by their
/// readers as they stream).
fn hash_columnar_data(
    readers: &[BarReader],
    spec: &ResolvedSpec,
) -> std::thread::JoinHandle<Result<ColumnarHashes, RunError>> {
    let columnar: Vec<(usize, PathBuf)> = readers
        .iter()
        .zip(&spec.data)
        .enumerate()
        .filter(|(_, (r, _))| r.format() != tradeloom_data::DataFormat::Csv)
        .map(|(i, (_, d))| (i, d.path.clone()))
        .collect();
    std::thread::spawn(move || {
        columnar
            .into_iter()
            .map(|(i, p)| {
                sha256_file(&p)
                    .map(|h| (i, h))
                    .map_err(|e| RunError::io(&p, e))
            })
            .collect::<Result<Vec<_>, _>>()
    })
}

/// The `(sha256, bytes)` of every data source, in spec order: streamed by the readers, hashed
/// on the second thread, or (a reader that stopped early) read again.
pub(crate) fn data_hashes(
    spec: &ResolvedSpec,
    streamed: StreamedHashes,
    columnar: Result<ColumnarHashes, RunError>,
) -> Result<Vec<(String, u64)>, RunError> {
    let mut hashes = streamed;
    hashes.resize(spec.data.len(), None);
    for (i, h) in columnar? {
        hashes[i] = Some(h);
    }
    hashes
        .into_iter()
        .zip(&spec.data)
        .map(|(h, d)| match h {
            Some(h) => Ok(h),
            None => sha256_file(&d.path).map_err(|e| RunError::io(&d.path, e)),
        })
        .collect()
}

/// A run whose folder exists: from here on every failure marks it failed.
pub(crate) struct StartedRun {
    pub(crate) folder: RunFolder,
    pub(crate) meta: Metadata,
    pub(crate) started: Instant,
}

impl StartedRun {
    /// Marks the run failed with `error` (best effort: the original error matters more than a
    /// second one while writing the metadata).
    pub(crate) fn fail(&mut self, error: RunError) -> ExecuteError {
        tracing::error!(error = %error, "run failed");
        self.meta.status = RunStatus::Failed;
        self.meta.error = Some(error.to_string());
        self.meta.finished_at = Some(now_rfc3339());
        self.meta.duration_ms = Some(self.started.elapsed().as_millis() as u64);
        let _ = self.meta.write(&self.folder.dir);
        ExecuteError::Failed(Box::new(FailedRun {
            run_id: self.folder.run_id.clone(),
            run_dir: self.folder.dir.clone(),
            error,
        }))
    }

    /// `metadata.json` saying `running`, `run_spec.yaml`, and the connectivity files.
    pub(crate) fn write_inputs(
        &mut self,
        normalised: &str,
        connectivity: Option<&Connectivity>,
    ) -> Result<(), ExecuteError> {
        self.write_connectivity(connectivity);
        if let Err(e) = self.meta.write(&self.folder.dir) {
            return Err(self.fail(e));
        }
        self.write_spec(normalised)
    }

    /// [`StartedRun::write_inputs`] whose `metadata.json` is synced to disk on a thread of its
    /// own while the run goes on (a backtest: [`StartedRun::seal_after`] waits for it before the
    /// run is sealed).
    pub(crate) fn write_inputs_syncing(
        &mut self,
        normalised: &str,
        connectivity: Option<&Connectivity>,
    ) -> Result<MetadataSync, ExecuteError> {
        self.write_connectivity(connectivity);
        let sync = match self.meta.write_syncing(&self.folder.dir) {
            Ok(sync) => sync,
            Err(e) => return Err(self.fail(e)),
        };
        self.write_spec(normalised)?;
        Ok(sync)
    }

    fn write_connectivity(&mut self, connectivity: Option<&Connectivity>) {
        if let Some(connectivity) = connectivity {
            let hashes = crate::connectivity::write_files(&self.folder.dir, connectivity);
            self.meta.artifacts.extend(hashes);
        }
    }

    fn write_spec(&mut self, normalised: &str) -> Result<(), ExecuteError> {
        let spec_path = self.folder.file("run_spec.yaml");
        if let Err(e) = std::fs::write(&spec_path, normalised) {
            return Err(self.fail(RunError::io(spec_path, e)));
        }
        Ok(())
    }

    /// Flushes and hashes the artifacts, writes metrics and report, and seals `metadata.json`
    /// as `completed`.
    pub(crate) fn seal(
        self,
        sink: RunSink,
        summary: Summary,
        spec: &ResolvedSpec,
    ) -> Result<RunOutcome, ExecuteError> {
        self.seal_after(sink, summary, spec, None)
    }

    /// [`StartedRun::seal`] of a run whose first metadata is still being synced (`first`).
    ///
    /// What must be on disk before `metadata.json` says `completed` (every artifact it hashes,
    /// and the first metadata) is synced all at once, while the metrics and the report are
    /// written and the new metadata is synced under a temporary name; only then is it renamed
    /// into place.
    pub(crate) fn seal_after(
        mut self,
        sink: RunSink,
        summary: Summary,
        spec: &ResolvedSpec,
        first: Option<MetadataSync>,
    ) -> Result<RunOutcome, ExecuteError> {
        let first_synced = |first: Option<MetadataSync>| first.map_or(Ok(()), MetadataSync::wait);
        let mut files = match sink.finish() {
            Ok(files) => files,
            Err(e) => {
                let _ = first_synced(first);
                let e = RunError::io(&self.folder.dir, e);
                return Err(self.fail(e));
            }
        };
        let journal_events = files.journal_lines;
        let tables = files.tables.take();
        let (inputs, syncing) =
            match start_finish_files(files, &self.folder, &mut self.meta.artifacts) {
                Ok(x) => x,
                Err(e) => {
                    let _ = first_synced(first);
                    return Err(self.fail(e));
                }
            };
        let metrics = summary.metrics.clone();
        self.meta.summary = Some(RunSummary {
            bars: metrics.bars,
            trades: metrics.trades,
            final_equity: metrics.final_equity.to_string(),
            total_return_pct: metrics.total_return_pct,
            max_drawdown_pct: metrics.max_drawdown_pct,
            journal_events,
            halted: summary.halted,
            margin_call: summary.margin_call,
        });
        self.meta.status = RunStatus::Completed;
        let outputs = write_outputs(&self.folder, spec, &self.meta, &metrics, &inputs);
        match outputs {
            Ok(hashes) => self.meta.artifacts.extend(hashes),
            Err(e) => {
                let _ = syncing.wait();
                let _ = first_synced(first);
                return Err(self.fail(e));
            }
        }
        self.meta.finished_at = Some(now_rfc3339());
        self.meta.duration_ms = Some(self.started.elapsed().as_millis() as u64);
        let staged = match self.meta.stage(&self.folder.dir) {
            Ok(staged) => staged,
            Err(e) => {
                let _ = syncing.wait();
                let _ = first_synced(first);
                return Err(self.fail(e));
            }
        };
        if let Err(e) = syncing.wait().and(first_synced(first)) {
            staged.discard();
            return Err(self.fail(e));
        }
        if let Err(e) = staged.commit() {
            return Err(self.fail(e));
        }
        tracing::info!(
            bars = metrics.bars,
            orders = metrics.orders,
            fills = metrics.fills,
            halted = summary.halted,
            margin_call = summary.margin_call,
            duration_ms = self.meta.duration_ms,
            "run completed"
        );
        Ok(RunOutcome {
            run_id: self.folder.run_id.clone(),
            run_dir: self.folder.dir.clone(),
            status: RunStatus::Completed,
            metrics,
            metadata: self.meta,
            tables,
        })
    }
}

/// The run's artifacts, written and hashed on one writer thread of their own.
fn open_sink(folder: &RunFolder, spec: &ResolvedSpec) -> Result<RunSink, RunError> {
    open_sink_with(folder, spec, None, false, None)
}

/// The run's artifacts; with `existing` (a resumed paper run: the journal's whole lines on
/// disk) the journal is appended to after checking that the run regenerates those lines, and
/// the other files are written anew. `wall_clock`: a paper run's `wall_ts` fields and columns.
/// `barrier`: runs before any of the files' bytes are handed to the writer thread (see
/// [`ArtifactPipe::with_barrier`]).
pub(crate) fn open_sink_with(
    folder: &RunFolder,
    spec: &ResolvedSpec,
    existing: Option<Vec<u8>>,
    wall_clock: bool,
    barrier: Option<Barrier>,
) -> Result<RunSink, RunError> {
    let mut pipe = ArtifactPipe::spawn().map_err(|e| RunError::io(&folder.dir, e))?;
    if let Some(barrier) = barrier {
        pipe = pipe.with_barrier(barrier);
    }
    let create = |name: &str| {
        let path = folder.file(name);
        pipe.create(&path).map_err(|e| RunError::io(path, e))
    };
    let journal_path = folder.file("journal.jsonl");
    let journal = match existing {
        None => Journal::new(
            pipe.create_lines(&journal_path)
                .map_err(|e| RunError::io(&journal_path, e))?,
        ),
        Some(lines) => Journal::resumed(
            pipe.append_lines(&journal_path, lines.len() as u64)
                .map_err(|e| RunError::io(&journal_path, e))?,
            lines,
        ),
    };
    let initial_cash = spec.engine.initial_cash;
    let layout = MoneyLayout::for_run(&spec.instruments, initial_cash);
    let equity_path = folder.file(EQUITY_FILE);
    let equity = EquityWriter::new(create(EQUITY_FILE)?, layout, initial_cash)
        .map_err(|e| RunError::io(&equity_path, e.into()))?;
    RunSink::with_journal(
        journal,
        create("orders.csv")?,
        create("fills.csv")?,
        create("trades.csv")?,
        equity,
        wall_clock,
    )
    .map_err(|e| RunError::io(&folder.dir, e))
}

/// Bars handed from the reader thread to the engine at a time.
const CHUNK: usize = 4096;

/// Content hashes computed by the readers while streaming, per data source.
pub(crate) type StreamedHashes = Vec<Option<(String, u64)>>;

/// Runs the engine over the bars. A reader thread parses and validates the files while this
/// thread runs the engine and writes the artifacts; chunks of bars are recycled, so the steady
/// state allocates nothing. Returns the summary and the content hashes the readers computed.
fn drive(
    mut engine: Engine,
    bars: MergedBars,
    window: crate::spec::BarWindow,
    sink: &mut RunSink,
    options: &mut RunOptions<'_>,
    live: &LiveRun,
    scripts: Option<&ScriptRun>,
) -> Result<(Summary, StreamedHashes), RunError> {
    let lookahead = scripts.and_then(|s| s.lookahead.clone());
    let failure = scripts.map(|s| s.failure.clone());
    let sink = &mut CountingSink::new(sink, live);
    type Chunk = (Vec<tradeloom_core::Bar>, (u64, u64));
    // Lines of CSV arrive evenly: a few chunks ahead keep the reader and the engine
    // overlapping, and every chunk is reused while still in the cache (32 cost ~13 MB of fresh
    // pages a run, a page fault each 4 KB). Columnar files are decoded a record batch (65,536
    // rows, 16 chunks) at a time: the channel absorbs a whole one, or the engine would wait
    // while the reader decodes the next.
    let depth = if bars.all_csv() { 4 } else { 32 };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(depth);
    let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<tradeloom_core::Bar>>();
    let producer = std::thread::spawn(move || -> Result<StreamedHashes, RunError> {
        let mut bars = bars;
        loop {
            let mut chunk = recycle_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
            chunk.clear();
            let mut error = None;
            while chunk.len() < CHUNK {
                match bars.next() {
                    Some(Ok(bar)) if window.contains(bar.ts) => chunk.push(bar),
                    // Outside `window:`: read and checked, not run.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        error = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let last = chunk.len() < CHUNK || error.is_some();
            if !chunk.is_empty() && tx.send((chunk, bars.progress())).is_err() {
                // The engine stopped; the consumer reports its error.
                return Ok(Vec::new());
            }
            if let Some(e) = error {
                return Err(e.into());
            }
            if last {
                return Ok(bars
                    .into_readers()
                    .iter()
                    .map(|r| r.content_sha256())
                    .collect());
            }
        }
    });
    let mut count: u64 = 0;
    let mut next_report = PROGRESS_EVERY;
    let mut engine_error = None;
    let mut last_progress = (0, 0);
    let mut script_failed = false;
    for (chunk, progress) in rx.iter() {
        if let Some(lookahead) = &lookahead {
            lookahead.publish(&chunk);
        }
        for bar in &chunk {
            if let Err(e) = engine.on_bar(bar, sink) {
                engine_error = Some(e);
                break;
            }
            if failure.as_ref().is_some_and(|f| f.is_set()) {
                script_failed = true;
                break;
            }
        }
        if engine_error.is_some() || script_failed {
            break;
        }
        count += chunk.len() as u64;
        sink.add_bars(chunk.len() as u64);
        last_progress = progress;
        if count >= next_report {
            next_report = count + PROGRESS_EVERY;
            tracing::debug!(bars = count, "bars processed");
            if let Some(report) = options.progress.as_mut() {
                report(Progress {
                    bars: count,
                    done: progress.0,
                    total: progress.1,
                });
            }
        }
        // The reader may have finished already; then the chunk is simply dropped.
        let _ = recycle_tx.send(chunk);
    }
    drop(rx);
    let produced = producer.join().unwrap_or_else(|_| {
        Err(RunError::Corrupt {
            path: PathBuf::new(),
            message: "the data reader thread panicked".to_string(),
        })
    });
    if let Some(e) = engine_error {
        return Err(e.into());
    }
    if script_failed {
        // The caller takes the script's error from the failure slot.
        return Err(RunError::Script(String::new()));
    }
    let hashes = produced?;
    if count == 0 {
        let message = if window == crate::spec::BarWindow::default() {
            "the data files contain no bars"
        } else {
            "the data files contain no bars inside `window:`"
        };
        return Err(RunError::Spec {
            place: "data".to_string(),
            message: message.to_string(),
        });
    }
    if let Some(report) = options.progress.as_mut() {
        report(Progress {
            bars: count,
            done: last_progress.0,
            total: last_progress.1,
        });
    }
    let summary = engine.finish(sink)?;
    if failure.as_ref().is_some_and(|f| f.is_set()) {
        return Err(RunError::Script(String::new()));
    }
    Ok((summary, hashes))
}

/// What the reports are drawn from besides the metrics: the sampled equity curve, the candles
/// and fill markers, and the listed trades.
pub(crate) struct ReportInputs {
    pub(crate) sampler: crate::report::EquitySampler,
    pub(crate) chart: crate::chart::ChartSampler,
    pub(crate) trades: crate::report::TradeRows,
}

/// Flushes and hashes the sink's files and waits until they are on disk.
pub(crate) fn finish_files(
    files: SinkFiles,
    folder: &RunFolder,
    artifacts: &mut BTreeMap<String, FileHash>,
) -> Result<ReportInputs, RunError> {
    let (inputs, syncing) = start_finish_files(files, folder, artifacts)?;
    syncing.wait()?;
    Ok(inputs)
}

/// Artifacts written and hashed whose syncs to disk are under way (all at once).
#[must_use = "the artifacts are on disk only once waited for"]
pub(crate) struct Syncing(Vec<(PathBuf, Finishing)>);

impl Syncing {
    /// Waits until every file is on disk; the first error, naming its file.
    pub(crate) fn wait(self) -> Result<(), RunError> {
        let mut first = None;
        for (path, finishing) in self.0 {
            if let (Err(e), None) = (finishing.wait(), &first) {
                first = Some(RunError::io(path, e));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Flushes and hashes the sink's files (their hashes go into `artifacts`) and starts syncing
/// them to disk, all at once.
pub(crate) fn start_finish_files(
    files: SinkFiles,
    folder: &RunFolder,
    artifacts: &mut BTreeMap<String, FileHash>,
) -> Result<(ReportInputs, Syncing), RunError> {
    let mut syncing = Vec::with_capacity(5);
    for (name, writer) in [
        ("journal.jsonl", files.journal),
        ("orders.csv", files.orders),
        ("fills.csv", files.fills),
        ("trades.csv", files.trades),
        (EQUITY_FILE, files.equity),
    ] {
        let path = folder.file(name);
        let finishing = match writer.start_finish() {
            Ok(f) => f,
            Err(e) => {
                // The files already under way still reach the disk before the run is failed.
                let _ = Syncing(syncing).wait();
                return Err(RunError::io(path, e));
            }
        };
        artifacts.insert(
            name.to_string(),
            FileHash {
                sha256: finishing.sha256.clone(),
                bytes: finishing.bytes,
            },
        );
        syncing.push((path, finishing));
    }
    let inputs = ReportInputs {
        sampler: files.sampler,
        chart: files.chart,
        trades: files.trade_rows,
    };
    Ok((inputs, Syncing(syncing)))
}

/// The header of the report, from the spec and the metadata.
pub fn report_header(
    meta: &Metadata,
    strategy: String,
    costs: String,
    currency: String,
) -> ReportHeader {
    ReportHeader {
        name: meta.name.clone(),
        run_id: meta.run_id.clone(),
        status: meta.status.as_str().to_string(),
        strategy,
        instruments: meta.instruments.join(", "),
        fill_model: meta.fill_model.clone(),
        costs,
        currency,
        error: meta.error.clone(),
    }
}

/// `sma_cross (fast=10, slow=20, quantity=10)` from the normalised spec.
pub fn strategy_label(spec: &crate::spec::RunSpec) -> String {
    let params = spec
        .strategy
        .params_value()
        .as_object()
        .cloned()
        .map(|o| {
            o.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    v => format!("{k}={v}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!("{} ({params})", spec.strategy.name())
}

/// `fee 0 bps, slippage none` from the normalised spec.
pub fn costs_label(spec: &crate::spec::RunSpec) -> String {
    let e = &spec.execution;
    let fee = e.fee_bps.map_or("0".to_string(), |d| d.to_string());
    let slippage = match (e.slippage_bps, e.slippage_ticks) {
        (Some(b), _) => format!("{b} bps"),
        (None, Some(t)) => format!("{t} ticks"),
        (None, None) => "none".to_string(),
    };
    let instrument_fees = spec
        .instruments
        .iter()
        .any(|i| i.maker_fee_bps.is_some() || i.taker_fee_bps.is_some());
    if instrument_fees {
        format!("instrument fees (default {fee} bps), slippage {slippage}")
    } else {
        format!("fee {fee} bps, slippage {slippage}")
    }
}

fn write_outputs(
    folder: &RunFolder,
    spec: &ResolvedSpec,
    meta: &Metadata,
    metrics: &Metrics,
    inputs: &ReportInputs,
) -> Result<Vec<(String, FileHash)>, RunError> {
    let metrics_value = serde_json::to_value(metrics).map_err(|e| RunError::Corrupt {
        path: folder.file("metrics.json"),
        message: e.to_string(),
    })?;
    // Written from the struct so the fields keep their documented order.
    let mut metrics_text =
        serde_json::to_string_pretty(metrics).map_err(|e| RunError::Corrupt {
            path: folder.file("metrics.json"),
            message: e.to_string(),
        })?;
    metrics_text.push('\n');
    let header = report_header(
        meta,
        strategy_label(&spec.spec),
        costs_label(&spec.spec),
        spec.engine.initial_cash.currency().to_string(),
    );
    let report = render_markdown(&header, &metrics_value, &inputs.trades);
    let svg = render_svg(&inputs.sampler, &header.currency);
    let symbols: Vec<String> = spec
        .instruments
        .iter()
        .map(|i| i.symbol.as_str().to_string())
        .collect();
    let chart = inputs.chart.to_json(&symbols);
    let html = render_html(
        &header,
        &metrics_value,
        &chart,
        &inputs.sampler,
        &inputs.trades,
    );
    let mut hashes = Vec::new();
    for (name, text) in [
        ("metrics.json", metrics_text),
        ("report.md", report),
        ("equity.svg", svg),
        (CHART_FILE, chart),
        (REPORT_HTML, html),
    ] {
        hashes.push((name.to_string(), write_output(&folder.file(name), &text)?));
    }
    Ok(hashes)
}

/// Writes one of the run's outputs (metrics, reports) and returns its hash. Replaced whole (a
/// temporary file and a rename), never truncated in place: the API serves these files while
/// a run is still `running` (and a re-render replaces a finished run's), and a reader of
/// `metrics.json` must not find half of it. A run's syncs come with its artifacts'.
fn write_output(path: &Path, text: &str) -> Result<FileHash, RunError> {
    tradeloom_safety::write_atomic(path, text.as_bytes(), tradeloom_safety::Durability::Renamed)
        .map_err(|e| RunError::io(&e.path, e.source))?;
    Ok(FileHash {
        sha256: sha256_bytes(text.as_bytes()),
        bytes: text.len() as u64,
    })
}

/// Re-renders `report.md` and `equity.svg` of a run folder from its files, and updates their
/// hashes in `metadata.json`.
pub fn rerender_report(run_dir: &Path) -> Result<PathBuf, RunError> {
    let mut meta = Metadata::read(run_dir)?;
    if meta.mode == "order" {
        return Err(RunError::Spec {
            place: run_dir.join("run_spec.yaml").display().to_string(),
            message: "the run of a workflow `order` node (mode: order) has a journal, \
                      orders.csv and fills.csv but no report"
                .to_string(),
        });
    }
    let spec_path = run_dir.join("run_spec.yaml");
    let spec_text = std::fs::read_to_string(&spec_path).map_err(|e| RunError::io(&spec_path, e))?;
    let spec = crate::spec::parse_spec(&spec_text, &spec_path)?;
    let metrics_path = run_dir.join("metrics.json");
    let metrics: serde_json::Value = match std::fs::read_to_string(&metrics_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| RunError::Corrupt {
            path: metrics_path.clone(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
        Err(e) => return Err(RunError::io(&metrics_path, e)),
    };
    let trades = crate::report::read_trades_csv(&run_dir.join("trades.csv"))?;
    let sampler = crate::report::sample_equity(&run_dir.join(EQUITY_FILE))?;
    let header = report_header(
        &meta,
        strategy_label(&spec),
        costs_label(&spec),
        spec.account.currency.clone(),
    );
    let report = render_markdown(&header, &metrics, &trades);
    let svg = render_svg(&sampler, &header.currency);
    // The candles come from the bars, which are not in the folder: the run's chart.json is
    // reused (a folder written before it existed gets an empty one).
    let chart_path = run_dir.join(CHART_FILE);
    let chart = match std::fs::read_to_string(&chart_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::chart::empty_json(),
        Err(e) => return Err(RunError::io(&chart_path, e)),
    };
    let html = render_html(&header, &metrics, &chart, &sampler, &trades);
    for (name, text) in [
        ("report.md", report),
        ("equity.svg", svg),
        (CHART_FILE, chart),
        (REPORT_HTML, html),
    ] {
        meta.artifacts
            .insert(name.to_string(), write_output(&run_dir.join(name), &text)?);
    }
    meta.write(run_dir)?;
    Ok(run_dir.join("report.md"))
}
