//! Reconciliation: proving that the books are right.
//!
//! For a backtest run, positions, cash, realised PnL and fees are recomputed from the fills in
//! `journal.jsonl` with the exact fixed-point types of `tradeloom-core` (never `f64`), and
//! compared with everything that reports them: the journal's own `position_changed` and
//! `run_finished` events, `equity.parquet` (last row), `fills.csv` (row by row), `orders.csv`, `trades.csv`,
//! `metrics.json`, `metadata.json` and, when the run is indexed there, the store. For a
//! simulation job, every model's model-days are replayed from the starting cash with the stored
//! trade rows and compared with the stored cash, holdings, portfolio values, tool calls and the
//! leaderboard.
//!
//! A paper run is reconciled the same way, live or stopped: its books are also compared with
//! `state/snapshot.json` (replayed up to the snapshot's journal line); while it runs, the
//! reports it writes only when it stops (`metrics.json`, `equity.parquet`, `trades.csv`,
//! `run_finished`) are [skipped](Check::skipped), and `fills.csv` may trail the journal. A last
//! journal or CSV line cut short (a run killed mid-write) is ignored and noted.
//!
//! Each comparison is one [`Check`]; a [`Reconciliation`] passes when every check does. Errors
//! (a missing or unreadable file, a journal line that is not JSON) are [`ReconcileError`]s naming
//! the file and line, never failed checks.
//!
//! ```no_run
//! # fn demo() -> Result<(), tradeloom_ops::reconcile::ReconcileError> {
//! let result = tradeloom_ops::reconcile::reconcile_run(std::path::Path::new("data/runs/0190…"))?;
//! result.write(std::path::Path::new("data/runs/0190…"))?;
//! assert!(result.passed, "{:?}", result.failed().collect::<Vec<_>>());
//! # Ok(()) }
//! ```

mod job;
mod render;
mod run;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use tradeloom_core::fixed::format_raw;
use tradeloom_core::{Currency, Decimal, Money};
use tradeloom_safety::{Durability, write_atomic};
use tradeloom_store::{Store, StoreError};

pub use job::reconcile_job;
pub use render::render_text;
pub use run::{reconcile_run, reconcile_run_with_store};

/// The file every reconciliation writes into the folder it checked.
pub const RESULT_FILE: &str = "reconciliation_result.json";

/// One comparison: what the recomputation expects and what was reported.
///
/// `expected` and `observed` are JSON values: money and exact quantities as decimal strings,
/// counts as numbers, anything else as text. `difference` is `observed − expected` (an exact
/// decimal string for money and quantities, a number for counts) and `null` when the values are
/// not numeric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub expected: Value,
    pub observed: Value,
    pub difference: Value,
    /// The check could not be made yet (a paper run still running has no `metrics.json`);
    /// it counts as passed and `observed` says why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

/// `observed` of a check skipped because the run has not finished.
pub const SKIPPED_RUNNING: &str = "skipped (run still running)";

impl Check {
    /// A check that cannot be made yet: `what` it would compare, `why` not (e.g.
    /// [`SKIPPED_RUNNING`]).
    pub fn skipped(name: impl Into<String>, what: impl Into<String>, why: &str) -> Self {
        Self {
            name: name.into(),
            passed: true,
            expected: Value::String(what.into()),
            observed: Value::String(why.to_string()),
            difference: Value::Null,
            skipped: true,
        }
    }

    /// Exact money: passes when equal to the last unit of 10^-18.
    pub fn money(name: impl Into<String>, expected: Money, observed: Money) -> Self {
        let diff = Money::from_raw(observed.raw() - expected.raw(), expected.currency());
        Self {
            name: name.into(),
            passed: expected.raw() == observed.raw(),
            expected: Value::String(expected.to_string()),
            observed: Value::String(observed.to_string()),
            difference: Value::String(diff.to_string()),
            skipped: false,
        }
    }

    /// Exact decimals (quantities, prices) given as raw values at 10^-9.
    pub fn raw9(name: impl Into<String>, expected: i128, observed: i128) -> Self {
        Self {
            name: name.into(),
            passed: expected == observed,
            expected: Value::String(format_raw(expected, 9, 0)),
            observed: Value::String(format_raw(observed, 9, 0)),
            difference: Value::String(format_raw(observed - expected, 9, 0)),
            skipped: false,
        }
    }

    /// Exact decimals (stored quantities and prices).
    pub fn decimal(name: impl Into<String>, expected: Decimal, observed: Decimal) -> Self {
        let (e, o) = (raw18(expected), raw18(observed));
        Self {
            name: name.into(),
            passed: e == o,
            expected: Value::String(expected.to_string()),
            observed: Value::String(observed.to_string()),
            difference: Value::String(format_raw(o - e, 18, 0)),
            skipped: false,
        }
    }

    /// Counts.
    pub fn count(name: impl Into<String>, expected: u64, observed: u64) -> Self {
        Self {
            name: name.into(),
            passed: expected == observed,
            expected: Value::from(expected),
            observed: Value::from(observed),
            // Counts stay far below i64::MAX.
            difference: Value::from(observed as i64 - expected as i64),
            skipped: false,
        }
    }

    /// Non-numeric values (statuses, descriptions of rows); no difference.
    pub fn text(
        name: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> Self {
        let (expected, observed) = (expected.into(), observed.into());
        Self {
            name: name.into(),
            passed: expected == observed,
            expected: Value::String(expected),
            observed: Value::String(observed),
            difference: Value::Null,
            skipped: false,
        }
    }

    /// A comparison decided by the caller (e.g. all rows match), described by two texts.
    pub fn verdict(
        name: impl Into<String>,
        passed: bool,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            passed,
            expected: Value::String(expected.into()),
            observed: Value::String(observed.into()),
            difference: Value::Null,
            skipped: false,
        }
    }
}

/// A decimal's exact value at 10^-18 (the currency only labels the money it goes through).
pub(crate) fn raw18(d: Decimal) -> i128 {
    d.to_money(Currency::USD).raw()
}

/// What was reconciled: serialised as `"run_id": …` or `"job_id": …`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    RunId(String),
    JobId(String),
}

impl Subject {
    pub fn id(&self) -> &str {
        match self {
            Subject::RunId(id) | Subject::JobId(id) => id,
        }
    }
}

/// The outcome of one reconciliation, as written to [`RESULT_FILE`]:
/// `{"passed", "run_id"|"job_id", "checked_at", "checks": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reconciliation {
    /// Every check passed.
    pub passed: bool,
    #[serde(flatten)]
    pub subject: Subject,
    /// RFC 3339, UTC, when the reconciliation ran.
    pub checked_at: String,
    pub checks: Vec<Check>,
    /// What was tolerated and should be known (a journal's last line cut short by a kill, a
    /// run still running); not failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Reconciliation {
    pub fn new(subject: Subject, checks: Vec<Check>) -> Self {
        Self {
            passed: checks.iter().all(|c| c.passed),
            subject,
            checked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            checks,
            notes: Vec::new(),
        }
    }

    /// The checks skipped because they cannot be made yet.
    pub fn skipped(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.skipped)
    }

    /// The checks that did not pass.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The check named `name`, if any.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Writes [`RESULT_FILE`] into `dir` (created if missing) through a temporary file and a
    /// rename; returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ReconcileError> {
        let path = dir.join(RESULT_FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(|e| ReconcileError::Corrupt {
            path: path.clone(),
            line: None,
            message: e.to_string(),
        })?;
        text.push('\n');
        write_atomic(&path, text.as_bytes(), Durability::Renamed)
            .map_err(|e| ReconcileError::io(e.path, e.source))?;
        Ok(path)
    }
}

/// Why a reconciliation could not be done (as opposed to a check that failed).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// No run or job has this id (or a prefix matches several).
    #[error("{0}")]
    NotFound(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not what tradeloom writes: `path:line: message`.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Corrupt {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// The store failed or holds a value that cannot be replayed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ReconcileError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReconcileError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        ReconcileError::Corrupt {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// What an id given on the command line names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A backtest run folder.
    Run(PathBuf),
    /// A simulation job (its full id).
    Job(String),
}

/// Resolves `id` as `tradeloom report` does for runs (full id, unique prefix or `latest`), then
/// as a simulation job of `store` (full id or unique prefix).
pub async fn resolve(
    data_dir: &Path,
    id: &str,
    store: Option<&dyn Store>,
) -> Result<Target, ReconcileError> {
    let run_error = match tradeloom_runs::find_run(data_dir, id) {
        Ok(dir) => return Ok(Target::Run(dir)),
        Err(tradeloom_runs::RunError::NotFound(message)) => message,
        Err(e) => return Err(run_error(e)),
    };
    let Some(store) = store else {
        return Err(ReconcileError::NotFound(format!(
            "{run_error}; and no job store to look for a simulation job (give --database-url)"
        )));
    };
    match store.job(id).await {
        Ok(job) => return Ok(Target::Job(job.id)),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let ids = all_job_ids(store).await?;
    match tradeloom_core::resolve_id("simulation job", id, ids.iter().map(String::as_str)) {
        Ok(job_id) => Ok(Target::Job(job_id)),
        Err(e @ tradeloom_core::IdRefError::Ambiguous { .. }) => {
            Err(ReconcileError::NotFound(e.to_string()))
        }
        Err(_) => Err(ReconcileError::NotFound(format!(
            "{run_error}; and no simulation job `{id}` in the store (see `tradeloom jobs list`)"
        ))),
    }
}

/// Every job id of the store, oldest first.
pub async fn all_job_ids(store: &dyn Store) -> Result<Vec<String>, StoreError> {
    Ok(store.all_jobs().await?.into_iter().map(|j| j.id).collect())
}

/// The folder a job's result goes to: its run folder `<data_dir>/runs/<job_id>/` if the job
/// wrote one, else `<data_dir>/jobs/<job_id>/`.
pub fn job_result_dir(data_dir: &Path, job_id: &str) -> PathBuf {
    let data_dir = tradeloom_core::DataDir::new(data_dir);
    let folder = data_dir.run(job_id);
    if folder.is_dir() {
        folder
    } else {
        data_dir.job(job_id)
    }
}

fn run_error(e: tradeloom_runs::RunError) -> ReconcileError {
    match e {
        tradeloom_runs::RunError::Io { path, source } => ReconcileError::Io { path, source },
        tradeloom_runs::RunError::Corrupt { path, message } => ReconcileError::Corrupt {
            path,
            line: None,
            message,
        },
        tradeloom_runs::RunError::NotFound(m) => ReconcileError::NotFound(m),
        other => ReconcileError::Corrupt {
            path: PathBuf::new(),
            line: None,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn checks_serialise_exact_differences() {
        let usd = |s: &str| Money::parse(s, Currency::USD).expect("valid amount");
        let c = Check::money("cash", usd("100.10"), usd("100.35"));
        assert!(!c.passed);
        assert_eq!(c.expected, "100.10");
        assert_eq!(c.observed, "100.35");
        assert_eq!(c.difference, "0.25");
        let c = Check::raw9("qty", 10_000_000_000, -5_000_000_000);
        assert_eq!(c.difference, "-15");
        let c = Check::count("fills", 4, 4);
        assert!(c.passed);
        assert_eq!(c.difference, 0);
        assert_eq!(
            Check::text("status", "completed", "failed").difference,
            Value::Null
        );
    }

    #[test]
    fn result_shape_names_the_subject() {
        let r = Reconciliation::new(
            Subject::JobId("j1".into()),
            vec![Check::count("a", 1, 1), Check::count("b", 1, 2)],
        );
        assert!(!r.passed);
        let text = serde_json::to_string(&r).expect("serialisable");
        let at = |k: &str| text.find(&format!("\"{k}\"")).expect(k);
        assert!(at("passed") < at("job_id") && at("job_id") < at("checked_at"));
        assert!(at("checked_at") < at("checks"));
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["checks"][1]["difference"], 1);
        assert_eq!(r.failed().count(), 1);
    }
}
