//! [`DataDir`]: the layout of a data folder, as paths only (nothing here touches the disk).
//!
//! ```text
//! <data_dir>/
//!   tradeloom.db          the embedded SQLite store (when no database URL is given)
//!   runs/<id>/            run folders of backtests, and the folders of simulation jobs
//!   running/<id>          an empty marker per run that may be running (the runs a start-up
//!                         checks for interruption; `running/.complete` once every one has it)
//!   jobs/<id>/            results of simulation jobs that have no folder under runs/
//!   killswitch/           kill switch state files and their audit log
//!   health/               the health monitor's files (meta_health.json, history.jsonl, heartbeats/)
//!   drills/               drill reports
//!   sweeps/<id>/          parameter sweeps (sweep.json, table.md, heatmap.svg)
//! ```

use std::path::{Path, PathBuf};

/// The folder of run folders (and of simulation jobs' folders).
pub const RUNS: &str = "runs";
/// The folder of markers of runs that may be running.
pub const RUNNING: &str = "running";
/// The folder of job results without a run folder.
pub const JOBS: &str = "jobs";
/// The folder of kill switch state.
pub const KILL_SWITCH: &str = "killswitch";
/// The folder of the health monitor's files.
pub const HEALTH: &str = "health";
/// The folder of drill reports.
pub const DRILLS: &str = "drills";
/// The folder of parameter sweeps.
pub const SWEEPS: &str = "sweeps";
/// The file name of the embedded database.
pub const DATABASE: &str = "tradeloom.db";

/// A data folder: where each kind of file of tradeloom lives under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data folder at `root` (not checked or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/runs`.
    pub fn runs(&self) -> PathBuf {
        self.root.join(RUNS)
    }

    /// `<root>/runs/<id>`: a run's folder, or a simulation job's.
    pub fn run(&self, id: &str) -> PathBuf {
        self.runs().join(id)
    }

    /// `<root>/running`: the index of runs that may be running.
    pub fn running(&self) -> PathBuf {
        self.root.join(RUNNING)
    }

    /// `<root>/jobs`.
    pub fn jobs(&self) -> PathBuf {
        self.root.join(JOBS)
    }

    /// `<root>/jobs/<id>`.
    pub fn job(&self, id: &str) -> PathBuf {
        self.jobs().join(id)
    }

    /// `<root>/killswitch`.
    pub fn kill_switch(&self) -> PathBuf {
        self.root.join(KILL_SWITCH)
    }

    /// `<root>/health`.
    pub fn health(&self) -> PathBuf {
        self.root.join(HEALTH)
    }

    /// `<root>/sweeps`.
    pub fn sweeps(&self) -> PathBuf {
        self.root.join(SWEEPS)
    }

    /// `<root>/sweeps/<id>`.
    pub fn sweep(&self, id: &str) -> PathBuf {
        self.sweeps().join(id)
    }

    /// `<root>/drills`.
    pub fn drills(&self) -> PathBuf {
        self.root.join(DRILLS)
    }

    /// `<root>/tradeloom.db`.
    pub fn database(&self) -> PathBuf {
        self.root.join(DATABASE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d = DataDir::new("/data");
        assert_eq!(d.root(), Path::new("/data"));
        assert_eq!(d.run("r1"), Path::new("/data/runs/r1"));
        assert_eq!(d.job("j1"), Path::new("/data/jobs/j1"));
        assert_eq!(d.kill_switch(), Path::new("/data/killswitch"));
        assert_eq!(d.health(), Path::new("/data/health"));
        assert_eq!(d.drills(), Path::new("/data/drills"));
        assert_eq!(d.database(), Path::new("/data/tradeloom.db"));
    }
}
