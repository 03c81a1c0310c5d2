//! `metadata.json`: identity, status, versions, wall-clock times and the sha256 of the spec, of
//! every data file and of every artifact. The only file of a run that holds wall-clock time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tradeloom_safety::{Durability, write_atomic};

use crate::error::RunError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    /// The process running it died (killed, crashed) before it finished; marked so by a later
    /// process (see [`crate::interruption`]).
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// A hashed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub sha256: String,
    pub bytes: u64,
}

/// The spec of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpecInfo {
    /// The spec file as given on the command line.
    pub source_path: String,
    /// sha256 of that file as it was read.
    pub source_sha256: String,
    /// sha256 of `run_spec.yaml` in the run folder (the normalised spec).
    pub sha256: String,
    /// The absolute path of a script strategy's file (`strategy.script` is relative to the
    /// spec file; a resumed paper run starts the script from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_path: Option<String>,
}

/// One data file of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    pub symbol: String,
    /// As written in the spec.
    pub path: String,
    /// Absolute path that was read.
    pub resolved_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// Headline figures, so `runs list` needs no other file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub bars: u64,
    pub trades: u64,
    pub final_equity: String,
    pub total_return_pct: f64,
    pub max_drawdown_pct: f64,
    pub journal_events: u64,
    pub halted: bool,
    /// A margin call stopped trading (`margin_call` in the journal). Absent when false, so
    /// runs without one keep their bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub margin_call: bool,
}

/// `metadata.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub run_id: String,
    pub name: String,
    pub status: RunStatus,
    pub mode: String,
    pub venue: String,
    pub strategy: String,
    pub fill_model: String,
    pub instruments: Vec<String>,
    pub tradeloom_version: String,
    /// Wall-clock times, RFC 3339 UTC.
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why the run failed or was interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a paper run stopped: `stopped` (asked to), `stop_at` (the spec's time came) or
    /// `feed_end` (the feed had no more data). Absent for backtests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The process that runs (ran) it, so that a later process can tell a live run from one
    /// whose process died. Absent in runs written by versions before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<tradeloom_safety::ProcessOwner>,
    pub spec: SpecInfo,
    pub data: Vec<DataInfo>,
    /// Every artifact in the folder except this file, by file name.
    pub artifacts: BTreeMap<String, FileHash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<RunSummary>,
}

impl Metadata {
    /// Reads `metadata.json` of a run folder.
    pub fn read(run_dir: &Path) -> Result<Self, RunError> {
        let path = run_dir.join("metadata.json");
        let text = std::fs::read_to_string(&path).map_err(|e| RunError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| RunError::Corrupt {
            path,
            message: format!("not valid run metadata: {e}"),
        })
    }

    /// Writes `metadata.json` atomically (temporary file, fsync, rename).
    pub fn write(&self, run_dir: &Path) -> Result<(), RunError> {
        self.write_as(run_dir, Durability::Synced).map(drop)
    }

    fn text(&self, path: &Path) -> Result<String, RunError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| RunError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        text.push('\n');
        Ok(text)
    }

    /// Writes it atomically; a `running` run is put in the index of running runs first
    /// ([`crate::running`]), any other status is taken out of it after. The index reaches the
    /// disk before the metadata does: synced here when the metadata is ([`Durability::Synced`]),
    /// else returned for the caller that syncs the metadata to sync first.
    fn write_as(
        &self,
        run_dir: &Path,
        durability: Durability,
    ) -> Result<Option<PathBuf>, RunError> {
        let path = run_dir.join("metadata.json");
        let text = self.text(&path)?;
        let index = match self.status {
            RunStatus::Running => crate::running::create_marker(run_dir)?,
            _ => None,
        };
        if let (Some(index), Durability::Synced) = (&index, durability) {
            crate::running::sync_index(index)?;
        }
        write_atomic(&path, text.as_bytes(), durability)
            .map_err(|e| RunError::io(e.path, e.source))?;
        if self.status != RunStatus::Running {
            crate::running::unmark(run_dir);
        }
        Ok(index)
    }

    /// Writes `metadata.json` atomically (temporary file, rename) and syncs it and the folder
    /// on a thread of its own: a run's first metadata, which the run need not wait for
    /// ([`MetadataSync::wait`] before the run is sealed).
    pub(crate) fn write_syncing(&self, run_dir: &Path) -> Result<MetadataSync, RunError> {
        let index = self.write_as(run_dir, Durability::Renamed)?;
        let (path, dir) = (run_dir.join("metadata.json"), run_dir.to_path_buf());
        let sync = move || -> Result<(), RunError> {
            // The run's marker reaches the disk before its `running` metadata does.
            if let Some(index) = &index {
                crate::running::sync_index(index)?;
            }
            let file = std::fs::File::open(&path).map_err(|e| RunError::io(&path, e))?;
            file.sync_all().map_err(|e| RunError::io(&path, e))?;
            // Persisting the names in the folder, best effort as `write_atomic` does.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        Ok(MetadataSync(
            std::thread::Builder::new()
                .name("metadata-sync".to_string())
                .spawn(sync)
                .map_err(|e| RunError::io(run_dir, e))?,
        ))
    }

    /// Writes `metadata.json` under its temporary name and syncs it; [`StagedMetadata::commit`]
    /// renames it into place. Between the two the caller waits for what must be on disk
    /// before the metadata says so (the artifacts whose hashes it holds).
    pub(crate) fn stage(&self, run_dir: &Path) -> Result<StagedMetadata, RunError> {
        let path = run_dir.join("metadata.json");
        let text = self.text(&path)?;
        let tmp = run_dir.join(format!(".metadata.json.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, text.as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(RunError::io(&tmp, e));
        }
        Ok(StagedMetadata {
            tmp,
            path,
            dir: run_dir.to_path_buf(),
            running: self.status == RunStatus::Running,
        })
    }
}

/// The sync of a run's first `metadata.json` (see [`Metadata::write_syncing`]).
pub(crate) struct MetadataSync(std::thread::JoinHandle<Result<(), RunError>>);

impl MetadataSync {
    /// Waits until the metadata and its folder entry are on disk.
    pub(crate) fn wait(self) -> Result<(), RunError> {
        self.0.join().unwrap_or_else(|_| {
            Err(RunError::Corrupt {
                path: std::path::PathBuf::from("metadata.json"),
                message: "the thread syncing it panicked".to_string(),
            })
        })
    }
}

/// `metadata.json`'s next content, on disk under a temporary name (see [`Metadata::stage`]).
pub(crate) struct StagedMetadata {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    dir: std::path::PathBuf,
    /// Whether it says `running` (else the run leaves the index of running runs once it is in
    /// place).
    running: bool,
}

impl StagedMetadata {
    /// Renames it into place and syncs the folder (best effort, as `write_atomic` does).
    pub(crate) fn commit(self) -> Result<(), RunError> {
        if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(RunError::io(&self.path, e));
        }
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        if !self.running {
            crate::running::unmark(&self.dir);
        }
        Ok(())
    }

    /// Removes the temporary file (the metadata is written otherwise).
    pub(crate) fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}
