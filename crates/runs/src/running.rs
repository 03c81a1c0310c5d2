//! The index of runs that may be running: `<data_dir>/running/<run_id>`, an empty marker file per
//! run whose `metadata.json` says `running`, so that a process starting up finds the runs to
//! check for interruption ([`crate::interruption`]) without reading the metadata of every run
//! ever made (a data dir with 10,000 runs cost every command ~0.1 s of reads before).
//!
//! The index holds at least every running run: a marker is created (and its folder entry
//! synced) *before* the metadata says `running`, and removed only *after* the metadata says
//! otherwise. A marker left behind by a crash between the two points at a run that is not
//! running; the sweep removes it.
//!
//! Data dirs made before the index existed have runs without markers: the first sweep that
//! finds no [`COMPLETE`] sentinel reads every run once, marks the running ones, then writes the
//! sentinel; from then on the sweep reads only the index.

use std::path::{Path, PathBuf};

use tradeloom_core::DataDir;

use crate::error::RunError;

/// The sentinel that says every running run of the data dir has its marker.
pub const COMPLETE: &str = ".complete";

/// The index folder and run id of a run folder (`<data_dir>/runs/<run_id>`); `None` for a
/// folder elsewhere (which no sweep looks at either).
fn split(run_dir: &Path) -> Option<(PathBuf, &std::ffi::OsStr)> {
    let runs = run_dir.parent()?;
    if runs.file_name()? != tradeloom_core::data_dir::RUNS {
        return None;
    }
    Some((DataDir::new(runs.parent()?).running(), run_dir.file_name()?))
}

/// Marks the run in `run_dir` as possibly running (call it before its metadata says
/// `running`); returns the index folder, whose entries must be synced ([`sync_index`]) before
/// that metadata is.
pub(crate) fn create_marker(run_dir: &Path) -> Result<Option<PathBuf>, RunError> {
    let Some((index, id)) = split(run_dir) else {
        return Ok(None);
    };
    std::fs::create_dir_all(&index).map_err(|e| RunError::io(&index, e))?;
    let marker = index.join(id);
    std::fs::File::create(&marker).map_err(|e| RunError::io(&marker, e))?;
    Ok(Some(index))
}

/// Syncs the index folder's entries (the markers' names) to disk.
pub(crate) fn sync_index(index: &Path) -> Result<(), RunError> {
    let dir = std::fs::File::open(index).map_err(|e| RunError::io(index, e))?;
    dir.sync_all().map_err(|e| RunError::io(index, e))
}

/// Removes the run's marker (its metadata no longer says `running`). Best effort: a marker
/// left behind is removed by the next sweep.
pub(crate) fn unmark(run_dir: &Path) {
    if let Some((index, id)) = split(run_dir) {
        let _ = std::fs::remove_file(index.join(id));
    }
}

/// The run folders the sweep must look at: the indexed ones, or every run folder once for a
/// data dir whose index is not yet complete (then the index is completed). Oldest first.
pub(crate) fn candidates(data_dir: &Path) -> Result<Vec<PathBuf>, RunError> {
    let (runs, index) = (
        DataDir::new(data_dir).runs(),
        DataDir::new(data_dir).running(),
    );
    if index.join(COMPLETE).is_file() {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(&index).map_err(|e| RunError::io(&index, e))? {
            let entry = entry.map_err(|e| RunError::io(&index, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            dirs.push(runs.join(name));
        }
        dirs.sort();
        return Ok(dirs);
    }
    if !runs.is_dir() {
        return Ok(Vec::new());
    }
    // Before the index: every run once, the running ones marked (their names synced at once),
    // then the sentinel.
    let mut dirs = Vec::new();
    for (dir, meta) in crate::folder::list_runs(data_dir)? {
        if meta.status == crate::metadata::RunStatus::Running {
            create_marker(&dir)?;
            dirs.push(dir);
        }
    }
    let sentinel = index.join(COMPLETE);
    std::fs::create_dir_all(&index).map_err(|e| RunError::io(&index, e))?;
    sync_index(&index)?;
    std::fs::File::create(&sentinel).map_err(|e| RunError::io(&sentinel, e))?;
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Metadata, RunStatus};
    use tradeloom_safety::ProcessOwner;

    /// A run's metadata owned by this process (`alive`) or by a pid no process has.
    fn metadata(run_id: &str, status: RunStatus, alive: bool) -> Metadata {
        let mut owner = ProcessOwner::current();
        if !alive {
            owner.pid = u32::MAX - 1;
        }
        let value = serde_json::json!({
            "run_id": run_id, "name": "t", "status": status.as_str(), "mode": "backtest",
            "venue": "sim", "strategy": "sma_cross", "fill_model": "next_open",
            "instruments": ["SYN"], "tradeloom_version": "0", "created_at": "2026-01-01T00:00:00Z",
            "owner": owner,
            "spec": {"source_path": "s.yaml", "source_sha256": "0", "sha256": "0"},
            "data": [], "artifacts": {}
        });
        serde_json::from_value(value).unwrap()
    }

    fn markers(data_dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(DataDir::new(data_dir).running())
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_run_is_indexed_while_its_metadata_says_running() {
        let tmp = tempfile::tempdir().unwrap();
        let run_dir = DataDir::new(tmp.path()).run("r1");
        std::fs::create_dir_all(&run_dir).unwrap();
        metadata("r1", RunStatus::Running, true)
            .write(&run_dir)
            .unwrap();
        assert_eq!(markers(tmp.path()), ["r1"]);
        metadata("r1", RunStatus::Completed, true)
            .write(&run_dir)
            .unwrap();
        assert!(markers(tmp.path()).is_empty());
    }

    #[test]
    fn the_sweep_reads_every_run_once_then_only_the_index() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        // A data dir from before the index: runs with metadata, no markers.
        for (id, status, alive) in [
            ("a-done", RunStatus::Completed, false),
            ("b-dead", RunStatus::Running, false),
            ("c-alive", RunStatus::Running, true),
        ] {
            let dir = DataDir::new(data).run(id);
            std::fs::create_dir_all(&dir).unwrap();
            let text = serde_json::to_string(&metadata(id, status, alive)).unwrap();
            std::fs::write(dir.join("metadata.json"), text).unwrap();
        }
        let marked = crate::mark_interrupted_runs(data).unwrap();
        assert_eq!(marked.len(), 1, "{marked:?}");
        assert_eq!(marked[0].run_id, "b-dead");
        // The interrupted run left the index; the live one is in it; the index is complete.
        assert_eq!(markers(data), [COMPLETE, "c-alive"]);
        let status = |id: &str| Metadata::read(&DataDir::new(data).run(id)).unwrap().status;
        assert_eq!(status("b-dead"), RunStatus::Interrupted);

        // From now on only indexed runs are read: a marker whose run finished is dropped, a
        // marker without a folder is dropped, a new dead run is marked.
        let c = DataDir::new(data).run("c-alive");
        let text = serde_json::to_string(&metadata("c-alive", RunStatus::Completed, true)).unwrap();
        std::fs::write(c.join("metadata.json"), text).unwrap();
        std::fs::File::create(DataDir::new(data).running().join("gone")).unwrap();
        let d = DataDir::new(data).run("d-dead");
        std::fs::create_dir_all(&d).unwrap();
        metadata("d-dead", RunStatus::Running, false)
            .write(&d)
            .unwrap();
        let marked = crate::mark_interrupted_runs(data).unwrap();
        assert_eq!(
            marked.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["d-dead"]
        );
        assert_eq!(markers(data), [COMPLETE]);
        assert_eq!(status("c-alive"), RunStatus::Completed);
    }
}
