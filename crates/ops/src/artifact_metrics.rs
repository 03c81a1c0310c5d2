//! Metrics of what lies under a data dir — run folders, connectivity files, kill switches and the
//! latest meta health check — rendered into a [`Registry`]. One collector serves `tradeloom
//! metrics export`, `tradeloom metrics serve` and `GET /metrics` of `tradeloom serve`.
//!
//! | source | series |
//! | --- | --- |
//! | `runs/<id>/metadata.json` | `tradeloom_runs{status}`, `tradeloom_run_info{run_id,name,strategy,status}` |
//! | `runs/<id>/metrics.json` (finished runs) | `tradeloom_run_bars_total`, `_orders_total`, `_fills_total`, `_rejected_orders_total`, `tradeloom_run_final_equity{currency}` |
//! | `runs/<id>/journal.jsonl` | `tradeloom_run_order_rejections_total{code}`; orders, fills and rejections of runs without `metrics.json` (running in another process, failed, or a workflow `order` node's run) |
//! | `runs/<id>/connectivity_*.json` (run and job folders) | `tradeloom_connectivity_ready`, `tradeloom_connectivity_probe_up`, `tradeloom_connectivity_probe_latency_seconds` |
//! | `killswitch/*.state.json` | `tradeloom_kill_switch_engaged{scope}` |
//! | `health/meta_health.json` | `tradeloom_health_rm_meta`, `_sensor{sensor}`, `_status{status}`, `_checked_timestamp_seconds` |
//!
//! A scrape re-reads only what changed: each run folder's figures are cached with the length and
//! modification time of the files they came from, and a growing journal is read from where the
//! last scrape stopped. A finished run's journal is read at most once, and only when it rejected
//! orders. Runs in progress in this process take their counters from [`tradeloom_runs::live`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Deserialize;
use tradeloom_core::DataDir;
use tradeloom_metrics::{MetricError, Registry, names};
use tradeloom_runs::{Metadata, RunStatus};
use tradeloom_safety::KillSwitch;

/// Why the artifacts could not be turned into metrics.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactMetricsError {
    /// `--run ID` named no run (or a prefix of several).
    #[error("{0}")]
    UnknownRun(String),
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// A file exists but is not what it should be.
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("kill switch: {0}")]
    KillSwitch(#[from] tradeloom_safety::KillSwitchError),
    #[error(transparent)]
    Metric(#[from] MetricError),
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> ArtifactMetricsError {
    ArtifactMetricsError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn corrupt(path: &Path, message: impl Into<String>) -> ArtifactMetricsError {
    ArtifactMetricsError::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// What to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Every run and job folder, every kill switch scope and the latest health check.
    All,
    /// One run (full id, unique prefix or `latest`): its series, the global kill switch and its
    /// own; no health, no other folder.
    Run(&'a str),
}

/// Figures of one backtest run folder.
#[derive(Clone, Debug, PartialEq)]
pub struct RunFigures {
    pub run_id: String,
    pub name: String,
    pub strategy: String,
    pub status: RunStatus,
    /// `None` while unknown (a run in progress in another process, a failed run).
    pub bars: Option<u64>,
    pub orders: u64,
    pub fills: u64,
    pub rejected_orders: u64,
    /// Rejected orders by rejection code (from the journal).
    pub rejections: BTreeMap<String, u64>,
    /// The exact decimal text of metrics.json and the account currency.
    pub final_equity: Option<(String, String)>,
    /// The counters are those of a run in progress in this process.
    pub live: bool,
    /// Scan → first accepted order latencies of a paper run in progress in this process.
    pub scan_to_order: Option<tradeloom_runs::live::LatencySnapshot>,
}

/// One provider of `connectivity_readiness.json`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReadinessProvider {
    pub name: String,
    pub ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct ReadinessFile {
    providers: Vec<ReadinessProvider>,
}

/// One probe of `connectivity_probe.json`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ProbeResult {
    pub name: String,
    pub ok: bool,
    pub latency_ms: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
struct ProbeFile {
    probes: Vec<ProbeResult>,
}

/// Everything read from one folder under `<data_dir>/runs/`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FolderFigures {
    /// The folder name: a run id, or a simulation job id.
    pub id: String,
    /// Set for backtest run folders (those with `metadata.json`).
    pub run: Option<RunFigures>,
    pub readiness: Vec<ReadinessProvider>,
    pub probes: Vec<ProbeResult>,
}

/// `(length, modification time)` of a file, `None` if it does not exist.
type FileStamp = Option<(u64, SystemTime)>;

fn stamp(path: &Path) -> FileStamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Order counts read from a journal, and where reading stopped.
#[derive(Clone, Debug, Default, PartialEq)]
struct JournalTally {
    /// Bytes consumed: always the end of a complete line.
    offset: u64,
    /// The modification time of the journal when `offset` was reached.
    modified: Option<SystemTime>,
    orders: u64,
    fills: u64,
    rejections: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct JournalLine {
    event: String,
    #[serde(default)]
    code: Option<String>,
}

impl JournalTally {
    /// Reads the journal from `offset` to its last complete line (or from the start if it was
    /// replaced by a shorter file).
    fn advance(&mut self, path: &Path) -> Result<(), ArtifactMetricsError> {
        let Some((len, modified)) = stamp(path) else {
            *self = JournalTally::default();
            return Ok(());
        };
        if len < self.offset {
            *self = JournalTally::default();
        }
        if len == self.offset {
            self.modified = Some(modified);
            return Ok(());
        }
        let mut file = File::open(path).map_err(|e| io_error(path, e))?;
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| io_error(path, e))?;
        let mut text = Vec::new();
        file.take(len - self.offset)
            .read_to_end(&mut text)
            .map_err(|e| io_error(path, e))?;
        // A writer may be mid-line: stop after the last newline and read the rest next time.
        let Some(end) = text.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        for (i, line) in text[..end].split(|b| *b == b'\n').enumerate() {
            // Only order events matter; most lines are bars' position and equity changes.
            if !contains(line, b"\"event\":\"order_") {
                continue;
            }
            let parsed: JournalLine = serde_json::from_slice(line).map_err(|e| {
                corrupt(
                    path,
                    format!(
                        "a line after byte {} (line {} of the unread part) is not a journal event: {e}",
                        self.offset,
                        i + 1
                    ),
                )
            })?;
            match parsed.event.as_str() {
                "order_submitted" => self.orders += 1,
                "order_filled" => self.fills += 1,
                "order_rejected" => {
                    let code = parsed.code.unwrap_or_else(|| "unknown".to_string());
                    *self.rejections.entry(code).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        self.offset += end as u64 + 1;
        self.modified = Some(modified);
        Ok(())
    }

    fn rejected(&self) -> u64 {
        self.rejections.values().sum()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The figures of metrics.json a finished run is described by.
#[derive(Deserialize)]
struct MetricsFile {
    bars: u64,
    final_equity: String,
    orders: u64,
    fills: u64,
    rejected_orders: u64,
}

/// A folder as last read, with the stamps of the files it was read from.
#[derive(Clone, Debug)]
struct Cached {
    stamps: Vec<FileStamp>,
    figures: FolderFigures,
    journal: JournalTally,
}

/// Files whose change invalidates a folder's cached figures (the journal is tracked by offset).
const STAMPED: [&str; 5] = [
    "metadata.json",
    "metrics.json",
    "run_spec.yaml",
    "connectivity_readiness.json",
    "connectivity_probe.json",
];

/// Reads the artifacts of one data dir into metrics, caching per folder across calls.
#[derive(Debug)]
pub struct ArtifactCollector {
    data_dir: PathBuf,
    cache: Mutex<HashMap<String, Cached>>,
}

impl ArtifactCollector {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The figures of the selected folders, sorted by folder name. A folder that disappears
    /// while being read is skipped; one whose files are unreadable or corrupt is an error.
    pub fn collect(
        &self,
        selection: Selection<'_>,
    ) -> Result<Vec<FolderFigures>, ArtifactMetricsError> {
        let runs = DataDir::new(&self.data_dir).runs();
        let folders: Vec<String> = match selection {
            Selection::Run(id) => {
                let dir = tradeloom_runs::find_run(&self.data_dir, id)
                    .map_err(|e| ArtifactMetricsError::UnknownRun(e.to_string()))?;
                vec![folder_name(&dir)?]
            }
            Selection::All => match std::fs::read_dir(&runs) {
                Ok(entries) => {
                    let mut names = Vec::new();
                    for entry in entries {
                        let entry = entry.map_err(|e| io_error(&runs, e))?;
                        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false)
                            && let Some(name) = entry.file_name().to_str()
                            && !name.starts_with('.')
                        {
                            names.push(name.to_string());
                        }
                    }
                    names.sort();
                    names
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(io_error(&runs, e)),
            },
        };
        let live = tradeloom_runs::live::snapshot();
        // A poisoned lock only means another scrape panicked; the cache is rebuilt as needed.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|name, _| {
            matches!(selection, Selection::Run(_)) || folders.binary_search(name).is_ok()
        });
        let mut out = Vec::with_capacity(folders.len());
        for name in folders {
            let dir = runs.join(&name);
            if !dir.is_dir() {
                cache.remove(&name);
                continue;
            }
            let stamps: Vec<FileStamp> = STAMPED.iter().map(|f| stamp(&dir.join(f))).collect();
            let entry = cache.remove(&name);
            let mut cached = match entry {
                Some(c) if c.stamps == stamps => c,
                previous => Cached {
                    figures: read_folder(&dir, &name)?,
                    stamps,
                    journal: previous.map(|c| c.journal).unwrap_or_default(),
                },
            };
            let mut figures = cached.figures.clone();
            if let Some(run) = figures.run.as_mut() {
                // A completed run without metrics.json (a workflow order's) is counted from
                // its journal too.
                let finished = run.status == RunStatus::Completed && run.bars.is_some();
                let in_process = live.iter().find(|l| l.run_id == run.run_id);
                if let Some(l) = in_process.filter(|_| !finished) {
                    run.bars = Some(l.bars);
                    run.orders = l.orders;
                    run.fills = l.fills;
                    run.rejected_orders = l.rejected_orders;
                    run.rejections = l.rejections.clone();
                    run.scan_to_order = l.scan_to_order.clone();
                    run.live = true;
                } else if !finished || run.rejected_orders > 0 {
                    cached.journal.advance(&dir.join("journal.jsonl"))?;
                    run.rejections = cached.journal.rejections.clone();
                    if !finished {
                        run.orders = cached.journal.orders;
                        run.fills = cached.journal.fills;
                        run.rejected_orders = cached.journal.rejected();
                    }
                }
            }
            cache.insert(name, cached);
            out.push(figures);
        }
        Ok(out)
    }

    /// Renders the selected artifacts into `registry`.
    pub fn render_into(
        &self,
        registry: &mut Registry,
        selection: Selection<'_>,
    ) -> Result<(), ArtifactMetricsError> {
        let folders = self.collect(selection)?;
        render_folders(registry, &folders, selection == Selection::All)?;
        let run_scope = match selection {
            Selection::All => None,
            Selection::Run(_) => folders.first().map(|f| f.id.as_str()),
        };
        render_kill_switch(registry, &self.data_dir, selection, run_scope)?;
        if selection == Selection::All {
            render_health(registry, &self.data_dir)?;
        }
        Ok(())
    }

    /// The exposition text of the selected artifacts.
    pub fn render(&self, selection: Selection<'_>) -> Result<String, ArtifactMetricsError> {
        let mut registry = Registry::new();
        self.render_into(&mut registry, selection)?;
        Ok(registry.render())
    }
}

fn folder_name(dir: &Path) -> Result<String, ArtifactMetricsError> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| corrupt(dir, "a run folder name must be UTF-8"))
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<Option<T>, ArtifactMetricsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| corrupt(path, format!("not a valid {what}: {e}")))
}

/// Reads a folder's files (not the journal).
fn read_folder(dir: &Path, name: &str) -> Result<FolderFigures, ArtifactMetricsError> {
    let mut figures = FolderFigures {
        id: name.to_string(),
        ..FolderFigures::default()
    };
    if dir.join("metadata.json").is_file() {
        let meta =
            Metadata::read(dir).map_err(|e| corrupt(&dir.join("metadata.json"), e.to_string()))?;
        let mut run = RunFigures {
            run_id: meta.run_id.clone(),
            name: meta.name.clone(),
            strategy: meta.strategy.clone(),
            status: meta.status,
            bars: None,
            orders: 0,
            fills: 0,
            rejected_orders: 0,
            rejections: BTreeMap::new(),
            final_equity: None,
            live: false,
            scan_to_order: None,
        };
        let metrics_path = dir.join("metrics.json");
        // metrics.json is written (not atomically) before metadata.json says `completed`.
        if meta.status == RunStatus::Completed
            && let Some(m) = read_json::<MetricsFile>(&metrics_path, "run metrics file")?
        {
            let spec_path = dir.join("run_spec.yaml");
            let spec_text =
                std::fs::read_to_string(&spec_path).map_err(|e| io_error(&spec_path, e))?;
            let spec = tradeloom_runs::spec::parse_spec(&spec_text, &spec_path)
                .map_err(|e| corrupt(&spec_path, e.to_string()))?;
            run.bars = Some(m.bars);
            run.orders = m.orders;
            run.fills = m.fills;
            run.rejected_orders = m.rejected_orders;
            run.final_equity = Some((m.final_equity, spec.account.currency));
        }
        figures.run = Some(run);
    }
    let readiness_path = dir.join("connectivity_readiness.json");
    if let Some(r) = read_json::<ReadinessFile>(&readiness_path, "connectivity readiness file")? {
        figures.readiness = r.providers;
    }
    let probe_path = dir.join("connectivity_probe.json");
    if let Some(p) = read_json::<ProbeFile>(&probe_path, "connectivity probe file")? {
        figures.probes = p.probes;
    }
    Ok(figures)
}

const RUN_STATUSES: [RunStatus; 4] = [
    RunStatus::Running,
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Interrupted,
];

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Series of run and job folders; `totals` adds `tradeloom_runs{status}` (all folders only).
pub fn render_folders(
    registry: &mut Registry,
    folders: &[FolderFigures],
    totals: bool,
) -> Result<(), MetricError> {
    if totals {
        for status in RUN_STATUSES {
            let n = folders
                .iter()
                .filter(|f| f.run.as_ref().is_some_and(|r| r.status == status))
                .count();
            registry.gauge(&names::RUNS, &[("status", status.as_str())], n as f64)?;
        }
    }
    for folder in folders {
        if let Some(run) = &folder.run {
            let id = [("run_id", run.run_id.as_str()), ("name", run.name.as_str())];
            registry.gauge(
                &names::RUN_INFO,
                &[
                    id[0],
                    id[1],
                    ("strategy", &run.strategy),
                    ("status", run.status.as_str()),
                ],
                1.0,
            )?;
            if let Some(bars) = run.bars {
                registry.counter(&names::RUN_BARS_TOTAL, &id, bars as f64)?;
            }
            registry.counter(&names::RUN_ORDERS_TOTAL, &id, run.orders as f64)?;
            registry.counter(&names::RUN_FILLS_TOTAL, &id, run.fills as f64)?;
            registry.counter(
                &names::RUN_REJECTED_ORDERS_TOTAL,
                &id,
                run.rejected_orders as f64,
            )?;
            for (code, n) in &run.rejections {
                registry.counter(
                    &names::RUN_ORDER_REJECTIONS_TOTAL,
                    &[id[0], id[1], ("code", code)],
                    *n as f64,
                )?;
            }
            if let Some(latency) = &run.scan_to_order {
                let histogram = tradeloom_metrics::Histogram::from_cumulative(
                    &latency.cumulative,
                    latency.sum_seconds,
                    latency.count,
                )?;
                registry.histogram(&names::SCAN_TO_ORDER_SECONDS, &id, &histogram)?;
            }
            if let Some((equity, currency)) = &run.final_equity
                && let Ok(value) = equity.parse::<f64>()
            {
                // A sample is a float; the exact decimal stays in metrics.json.
                registry.gauge(
                    &names::RUN_FINAL_EQUITY,
                    &[id[0], id[1], ("currency", currency)],
                    value,
                )?;
            }
        }
        for provider in &folder.readiness {
            registry.gauge(
                &names::CONNECTIVITY_READY,
                &[("run_id", &folder.id), ("provider", &provider.name)],
                flag(provider.ready),
            )?;
        }
        for probe in &folder.probes {
            let labels = [
                ("run_id", folder.id.as_str()),
                ("endpoint", probe.name.as_str()),
            ];
            registry.gauge(&names::CONNECTIVITY_PROBE_UP, &labels, flag(probe.ok))?;
            if let Some(ms) = probe.latency_ms {
                registry.gauge(
                    &names::CONNECTIVITY_PROBE_LATENCY_SECONDS,
                    &labels,
                    ms / 1000.0,
                )?;
            }
        }
    }
    Ok(())
}

/// `tradeloom_kill_switch_engaged{scope}`: the global scope always (0 when the data dir has no
/// kill switch folder), and every run and job scope with a state file — or, for one run, the
/// global scope and that run's.
fn render_kill_switch(
    registry: &mut Registry,
    data_dir: &Path,
    selection: Selection<'_>,
    run_scope: Option<&str>,
) -> Result<(), ArtifactMetricsError> {
    // Opening creates the folder; a data dir without one has never had a kill switch engaged.
    if !DataDir::new(data_dir).kill_switch().is_dir() {
        registry.gauge(&names::KILL_SWITCH_ENGAGED, &[("scope", "global")], 0.0)?;
        return Ok(());
    }
    let status = KillSwitch::open(data_dir)?.status()?;
    registry.gauge(
        &names::KILL_SWITCH_ENGAGED,
        &[("scope", "global")],
        flag(status.global.engaged),
    )?;
    let scoped = status
        .runs
        .iter()
        .map(|(id, s)| (format!("run:{id}"), id, s))
        .chain(
            status
                .jobs
                .iter()
                .map(|(id, s)| (format!("job:{id}"), id, s)),
        );
    for (scope, id, state) in scoped {
        let wanted = match selection {
            Selection::All => true,
            Selection::Run(_) => run_scope == Some(id.as_str()) && scope.starts_with("run:"),
        };
        if wanted {
            registry.gauge(
                &names::KILL_SWITCH_ENGAGED,
                &[("scope", &scope)],
                flag(state.engaged),
            )?;
        }
    }
    Ok(())
}

/// `health/meta_health.json` as `tradeloom health --json` writes it (the fields metrics need).
#[derive(Deserialize)]
struct HealthFile {
    rm_meta: f64,
    status: String,
    sensors: BTreeMap<String, f64>,
    checked_at: String,
}

/// The statuses of the meta health monitor, best first.
pub const HEALTH_STATUSES: [&str; 4] = ["GREEN", "DEGRADED", "CRITICAL", "DEAD"];

/// Health series from the latest check, nothing if no check ran yet.
fn render_health(registry: &mut Registry, data_dir: &Path) -> Result<(), ArtifactMetricsError> {
    let path = DataDir::new(data_dir).health().join("meta_health.json");
    let Some(health) = read_json::<HealthFile>(&path, "meta health report")? else {
        return Ok(());
    };
    if !HEALTH_STATUSES.contains(&health.status.as_str()) {
        return Err(corrupt(
            &path,
            format!(
                "status `{}` is not one of {}",
                health.status,
                HEALTH_STATUSES.join(", ")
            ),
        ));
    }
    registry.gauge(&names::HEALTH_RM_META, &[], health.rm_meta)?;
    for (sensor, value) in &health.sensors {
        registry.gauge(&names::HEALTH_SENSOR, &[("sensor", sensor)], *value)?;
    }
    for status in HEALTH_STATUSES {
        registry.gauge(
            &names::HEALTH_STATUS,
            &[("status", status)],
            flag(status == health.status),
        )?;
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&health.checked_at) {
        registry.gauge(
            &names::HEALTH_CHECKED_TIMESTAMP_SECONDS,
            &[],
            at.timestamp_millis() as f64 / 1000.0,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tradeloom_metrics::parse::{Exposition, parse};
    use tradeloom_runs::{RunOptions, execute};
    use tradeloom_safety::Scope;

    fn example_spec() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs/goog_sma_cross.yaml")
    }

    /// A real backtest run folder under `data_dir`.
    fn run(data_dir: &Path) -> PathBuf {
        let outcome = execute(
            &example_spec(),
            RunOptions {
                data_dir: data_dir.to_path_buf(),
                ..RunOptions::default()
            },
        )
        .unwrap();
        outcome.run_dir
    }

    fn rows(path: &Path) -> usize {
        std::fs::read_to_string(path).unwrap().lines().count() - 1
    }

    fn scrape(c: &ArtifactCollector, selection: Selection<'_>) -> Exposition {
        let text = c.render(selection).unwrap();
        parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn a_finished_run_is_rendered_from_its_metrics_and_matches_its_files() {
        let data = tempfile::tempdir().unwrap();
        let dir = run(data.path());
        let id = folder_name(&dir).unwrap();
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        let c = ArtifactCollector::new(data.path());
        let e = scrape(&c, Selection::All);
        let labels = [("run_id", id.as_str()), ("name", "goog-sma-cross")];
        let fills = e.value("tradeloom_run_fills_total", &labels).unwrap();
        assert_eq!(fills as usize, rows(&dir.join("fills.csv")));
        assert!(fills > 0.0);
        assert_eq!(
            e.value("tradeloom_run_orders_total", &labels),
            metrics["orders"].as_f64()
        );
        assert_eq!(
            e.value("tradeloom_run_bars_total", &labels),
            metrics["bars"].as_f64()
        );
        assert_eq!(
            e.value("tradeloom_run_rejected_orders_total", &labels),
            Some(0.0)
        );
        let equity: f64 = metrics["final_equity"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            e.value(
                "tradeloom_run_final_equity",
                &[labels[0], ("currency", "USD")]
            ),
            Some(equity)
        );
        assert_eq!(
            e.value(
                "tradeloom_run_info",
                &[
                    labels[0],
                    ("strategy", "sma_cross"),
                    ("status", "completed")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            e.value("tradeloom_runs", &[("status", "completed")]),
            Some(1.0)
        );
        assert_eq!(
            e.value("tradeloom_runs", &[("status", "failed")]),
            Some(0.0)
        );
        assert_eq!(
            e.value("tradeloom_kill_switch_engaged", &[("scope", "global")]),
            Some(0.0)
        );
        // No rejections: the journal was not read.
        assert_eq!(c.cache.lock().unwrap()[&id].journal.offset, 0);
        // One run by prefix gives the same figures; the output is the same on a second scrape.
        let one = scrape(&c, Selection::Run(&id[..13]));
        assert_eq!(one.value("tradeloom_run_fills_total", &labels), Some(fills));
        assert!(!one.families.contains_key("tradeloom_runs"));
        assert_eq!(
            c.render(Selection::All).unwrap(),
            c.render(Selection::All).unwrap()
        );
    }

    #[test]
    fn rejections_by_code_come_from_the_journal_and_the_kill_switch_is_exported() {
        let data = tempfile::tempdir().unwrap();
        let ks = KillSwitch::open(data.path()).unwrap();
        ks.engage(&Scope::Global, "drill", "test", false).unwrap();
        let dir = run(data.path());
        let id = folder_name(&dir).unwrap();
        let c = ArtifactCollector::new(data.path());
        let e = scrape(&c, Selection::All);
        let labels = [("run_id", id.as_str())];
        let rejected = e
            .value("tradeloom_run_rejected_orders_total", &labels)
            .unwrap();
        assert!(rejected > 0.0);
        assert_eq!(e.value("tradeloom_run_fills_total", &labels), Some(0.0));
        assert_eq!(
            e.value(
                "tradeloom_run_order_rejections_total",
                &[labels[0], ("code", "risk.kill_switch")]
            ),
            Some(rejected)
        );
        assert_eq!(
            e.value("tradeloom_kill_switch_engaged", &[("scope", "global")]),
            Some(1.0)
        );
        ks.release(&Scope::Global, "over", "test").unwrap();
        ks.engage(&Scope::run(&id).unwrap(), "this one", "test", false)
            .unwrap();
        let e = scrape(&c, Selection::Run(&id));
        assert_eq!(
            e.value("tradeloom_kill_switch_engaged", &[("scope", "global")]),
            Some(0.0)
        );
        assert_eq!(
            e.value(
                "tradeloom_kill_switch_engaged",
                &[("scope", &format!("run:{id}"))]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn a_running_run_is_counted_from_its_journal_as_it_grows() {
        let data = tempfile::tempdir().unwrap();
        let finished = run(data.path());
        // The same run as another process would leave it mid-way: running, no metrics.json.
        let dir = data.path().join("runs").join("0-running");
        std::fs::create_dir_all(&dir).unwrap();
        let mut meta = Metadata::read(&finished).unwrap();
        meta.run_id = "0-running".into();
        meta.status = RunStatus::Running;
        meta.write(&dir).unwrap();
        let journal = std::fs::read_to_string(finished.join("journal.jsonl")).unwrap();
        let lines: Vec<&str> = journal.lines().collect();
        let half = lines.len() / 2;
        let mut file = File::create(dir.join("journal.jsonl")).unwrap();
        for l in &lines[..half] {
            writeln!(file, "{l}").unwrap();
        }
        // Half a line: not counted until its newline arrives.
        let (head, tail) = lines[half].split_at(lines[half].len() / 2);
        write!(file, "{head}").unwrap();
        file.flush().unwrap();
        let count = |lines: &[&str], event: &str| {
            lines
                .iter()
                .filter(|l| l.contains(&format!("\"event\":\"{event}\"")))
                .count() as f64
        };
        let c = ArtifactCollector::new(data.path());
        let labels = [("run_id", "0-running")];
        let e = scrape(&c, Selection::All);
        assert_eq!(
            e.value("tradeloom_runs", &[("status", "running")]),
            Some(1.0)
        );
        assert_eq!(
            e.value("tradeloom_run_orders_total", &labels),
            Some(count(&lines[..half], "order_submitted"))
        );
        assert_eq!(
            e.value("tradeloom_run_fills_total", &labels),
            Some(count(&lines[..half], "order_filled"))
        );
        assert_eq!(e.value("tradeloom_run_bars_total", &labels), None);
        writeln!(file, "{tail}").unwrap();
        for l in &lines[half + 1..] {
            writeln!(file, "{l}").unwrap();
        }
        file.flush().unwrap();
        let e = scrape(&c, Selection::All);
        assert_eq!(
            e.value("tradeloom_run_fills_total", &labels),
            Some(rows(&finished.join("fills.csv")) as f64)
        );
        assert_eq!(
            e.value("tradeloom_run_orders_total", &labels),
            Some(count(&lines, "order_submitted"))
        );
        // The second scrape started where the first stopped.
        assert_eq!(
            c.cache.lock().unwrap()["0-running"].journal.offset,
            journal.len() as u64
        );
        // Run by this process: its live counters win (bars included).
        let guard = tradeloom_runs::live::register("0-running");
        guard.counters().add_bars(77);
        let e = scrape(&c, Selection::All);
        assert_eq!(e.value("tradeloom_run_bars_total", &labels), Some(77.0));
        assert_eq!(e.value("tradeloom_run_fills_total", &labels), Some(0.0));
        drop(guard);
        let e = scrape(&c, Selection::All);
        assert_eq!(e.value("tradeloom_run_bars_total", &labels), None);
    }

    #[test]
    fn connectivity_and_health_files_become_gauges() {
        let data = tempfile::tempdir().unwrap();
        let job = data.path().join("runs").join("job-1");
        std::fs::create_dir_all(&job).unwrap();
        std::fs::write(
            job.join("connectivity_readiness.json"),
            r#"{"generated_at":"2025-01-01T00:00:00Z","ready":false,"providers":[
              {"name":"openai","kind":"llm","ready":false,"env":[{"var":"OPENAI_API_KEY","set":false,"required":true}]},
              {"name":"mock, \"local\"","kind":"llm","ready":true,"env":[]}]}"#,
        )
        .unwrap();
        std::fs::write(
            job.join("connectivity_probe.json"),
            r#"{"generated_at":"2025-01-01T00:00:00Z","ok":false,"probes":[
              {"name":"mock-llm","url":"http://127.0.0.1:8089/v1","ok":true,"status":200,"latency_ms":2.5,"error":null},
              {"name":"api","url":"http://127.0.0.1:8080/health","ok":false,"status":null,"latency_ms":null,"error":"refused"}]}"#,
        )
        .unwrap();
        std::fs::create_dir_all(data.path().join("health")).unwrap();
        std::fs::write(
            data.path().join("health/meta_health.json"),
            r#"{"rm_meta":0.7,"status":"DEGRADED","checked_at":"2025-01-01T00:00:01Z",
                "sensors":{"m1_process":1.0,"m2_heartbeat":1.0,"m3_data_freshness":0.7,"m4_control_plane":1.0,"m5_coherence":1.0},
                "details":{}}"#,
        )
        .unwrap();
        let c = ArtifactCollector::new(data.path());
        let e = scrape(&c, Selection::All);
        let job_id = ("run_id", "job-1");
        assert_eq!(
            e.value(
                "tradeloom_connectivity_ready",
                &[job_id, ("provider", "openai")]
            ),
            Some(0.0)
        );
        assert_eq!(
            e.value(
                "tradeloom_connectivity_ready",
                &[job_id, ("provider", "mock, \"local\"")]
            ),
            Some(1.0)
        );
        assert_eq!(
            e.value(
                "tradeloom_connectivity_probe_up",
                &[job_id, ("endpoint", "api")]
            ),
            Some(0.0)
        );
        assert_eq!(
            e.value(
                "tradeloom_connectivity_probe_latency_seconds",
                &[job_id, ("endpoint", "mock-llm")]
            ),
            Some(0.0025)
        );
        assert_eq!(
            e.value("tradeloom_runs", &[("status", "running")]),
            Some(0.0)
        );
        assert_eq!(e.value("tradeloom_health_rm_meta", &[]), Some(0.7));
        assert_eq!(
            e.value(
                "tradeloom_health_sensor",
                &[("sensor", "m3_data_freshness")]
            ),
            Some(0.7)
        );
        assert_eq!(
            e.value("tradeloom_health_status", &[("status", "DEGRADED")]),
            Some(1.0)
        );
        assert_eq!(
            e.value("tradeloom_health_status", &[("status", "GREEN")]),
            Some(0.0)
        );
        assert_eq!(
            e.value("tradeloom_health_checked_timestamp_seconds", &[]),
            Some(1_735_689_601.0)
        );
        // A corrupt file is an error naming it, not a silent gap.
        std::fs::write(job.join("connectivity_probe.json"), "{\"probes\": 3}").unwrap();
        let err = c.render(Selection::All).unwrap_err().to_string();
        assert!(
            err.contains("connectivity_probe.json")
                && err.contains("not a valid connectivity probe file"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_run_is_named() {
        let data = tempfile::tempdir().unwrap();
        let c = ArtifactCollector::new(data.path());
        let err = c.render(Selection::Run("nope")).unwrap_err();
        assert!(matches!(err, ArtifactMetricsError::UnknownRun(_)), "{err}");
        assert!(err.to_string().contains("no run `nope`"), "{err}");
        // An empty data dir renders the totals and the global kill switch, and creates nothing.
        let e = scrape(&c, Selection::All);
        assert_eq!(
            e.value("tradeloom_runs", &[("status", "completed")]),
            Some(0.0)
        );
        assert!(!data.path().join("killswitch").exists());
    }
}
