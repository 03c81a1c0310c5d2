//! The run folder layout under a data dir, run ids, and finding runs again.
//!
//! ```text
//! <data_dir>/runs/<run_id>/   run_id: a UUIDv7, so ids sort by creation time
//!   run_spec.yaml  metadata.json  journal.jsonl  metrics.json
//!   orders.csv  fills.csv  trades.csv  equity.csv  report.md  equity.svg
//! ```

use std::path::{Path, PathBuf};

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
        let dir = runs_dir(data_dir).join(&run_id);
        std::fs::create_dir_all(&dir).map_err(|e| RunError::io(&dir, e))?;
        Ok(Self { run_id, dir })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

pub fn runs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

/// Every run under `data_dir` with readable metadata, oldest first.
pub fn list_runs(data_dir: &Path) -> Result<Vec<(PathBuf, Metadata)>, RunError> {
    let dir = runs_dir(data_dir);
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

/// Finds a run by full id, unique prefix, or `latest`.
pub fn find_run(data_dir: &Path, id: &str) -> Result<PathBuf, RunError> {
    let runs = list_runs(data_dir)?;
    if id == "latest" {
        return runs.last().map(|(p, _)| p.clone()).ok_or_else(|| {
            RunError::NotFound(format!("no runs under {}", runs_dir(data_dir).display()))
        });
    }
    let matches: Vec<&(PathBuf, Metadata)> = runs
        .iter()
        .filter(|(_, m)| m.run_id.starts_with(id))
        .collect();
    match matches.as_slice() {
        [] => Err(RunError::NotFound(format!(
            "no run `{id}` under {} (see `tradeloom runs list`)",
            runs_dir(data_dir).display()
        ))),
        [(path, _)] => Ok(path.clone()),
        many => Err(RunError::NotFound(format!(
            "`{id}` matches {} runs; give more of the id",
            many.len()
        ))),
    }
}
