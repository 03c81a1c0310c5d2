//! The run folder layout under a data dir, run ids, and finding runs again.
//!
//! ```text
//! <data_dir>/runs/<run_id>/   run_id: a UUIDv7, so ids sort by creation time
//!   run_spec.yaml  metadata.json  journal.jsonl  metrics.json
//!   orders.csv  fills.csv  trades.csv  equity.parquet  report.md  equity.svg
//!   connectivity_readiness.json  connectivity_probe.json   (when the caller assessed them)
//! ```
//!
//! Where `runs/` is under the data dir is [`tradeloom_core::DataDir`]'s to say.

use std::path::{Path, PathBuf};

use tradeloom_core::DataDir;

use crate::error::RunError;
use crate::metadata::Metadata;

/// A run's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFolder {
    pub run_id: String,
    pub dir: PathBuf,
}

impl RunFolder {
    /// Creates a new, empty run folder with a fresh id.
    pub fn create(data_dir: &Path) -> Result<Self, RunError> {
        let run_id = uuid::Uuid::now_v7().to_string();
        let dir = DataDir::new(data_dir).run(&run_id);
        std::fs::create_dir_all(&dir).map_err(|e| RunError::io(&dir, e))?;
        Ok(Self { run_id, dir })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Every run under `data_dir` with readable metadata, oldest first.
pub fn list_runs(data_dir: &Path) -> Result<Vec<(PathBuf, Metadata)>, RunError> {
    let dir = DataDir::new(data_dir).runs();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunError::io(&dir, e)),
    };
    let mut runs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RunError::io(&dir, e))?;
        let path = entry.path();
        if path.join("metadata.json").is_file()
            && let Ok(meta) = Metadata::read(&path)
        {
            runs.push((path, meta));
        }
    }
    runs.sort_by(|a, b| a.1.run_id.cmp(&b.1.run_id));
    Ok(runs)
}

/// Finds a run by full id, unique prefix, or `latest` ([`tradeloom_core::resolve_id`]); an
/// ambiguous prefix is [`RunError::NotFound`] listing the runs it matches.
pub fn find_run(data_dir: &Path, id: &str) -> Result<PathBuf, RunError> {
    let runs = list_runs(data_dir)?;
    match tradeloom_core::resolve_id("run", id, runs.iter().map(|(_, m)| m.run_id.as_str())) {
        Ok(run_id) => runs
            .into_iter()
            .find(|(_, m)| m.run_id == run_id)
            .map(|(p, _)| p)
            .ok_or_else(|| RunError::NotFound(format!("no run `{run_id}`"))),
        Err(e @ tradeloom_core::IdRefError::Ambiguous { .. }) => {
            Err(RunError::NotFound(e.to_string()))
        }
        Err(e) => Err(RunError::NotFound(format!(
            "{e} under {} (see `tradeloom runs list`)",
            DataDir::new(data_dir).runs().display()
        ))),
    }
}
