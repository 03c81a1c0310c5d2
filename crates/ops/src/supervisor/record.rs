//! What the supervisor knows of each child — its spec, state, current pid and run history — and
//! the snapshot of all of it, `state/runtime_state.json` under the data dir, written atomically
//! (a temporary file, fsync, rename) on every change; and `state/server_state.json`, the
//! supervising process itself (who, since when, and whether it stopped cleanly).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::child::{ExitInfo, Identity, signal_name};
use super::spec::{MAX_BURST, ResourceLimits};

/// Runs kept in a child's history (at least [`MAX_BURST`], which the start limit counts over).
pub const HISTORY_LEN: usize = MAX_BURST as usize;

/// Where a supervised child stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    /// The process runs (`pid` is set).
    Running,
    /// It ended and its policy starts it again at `next_start_at`.
    Backoff,
    /// A stop was asked for: SIGTERM sent, SIGKILL after the grace period.
    Stopping,
    /// Stopped by an operator or by the supervisor's shutdown.
    Stopped,
    /// It ended with code 0 and its policy does not restart it.
    Exited,
    /// A crash loop hit the start limit, it could not be started, or it failed under the
    /// policy `never`: `reason` says which.
    Failed,
}

impl ProcessState {
    /// Whether the child counts against the supervisor's cap (it runs or will run again).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::Backoff | Self::Stopping)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
            Self::Failed => "failed",
        }
    }
}

/// One start of a child and, once it ended, how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// The exit code, when it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// What else is known: `re-adopted …`, `died while no supervisor watched …`.
    #[serde(default)]
    pub note: Option<String>,
}

impl RunEntry {
    /// `code 1`, `signal 9 (SIGKILL)` or `an unknown status`.
    pub fn describe_exit(&self) -> String {
        match (self.exit_code, self.signal) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => format!("signal {signal} ({})", signal_name(signal)),
            (None, None) => "an unknown status".to_string(),
        }
    }

    /// Whether the run ended in a way `on-failure` restarts (anything but code 0).
    pub fn failed(&self) -> bool {
        self.exit_code != Some(0)
    }

    pub(crate) fn end(&mut self, at: DateTime<Utc>, exit: Option<ExitInfo>) {
        self.ended_at = Some(at);
        if let Some(exit) = exit {
            self.exit_code = exit.code;
            self.signal = exit.signal;
        }
    }
}

/// A supervised child as the supervisor keeps and shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub id: String,
    /// The spec it was started from, as [`super::ProcessSpec::to_json`] writes it.
    pub spec: Value,
    /// The arguments of the `tradeloom` executable.
    pub argv: Vec<String>,
    pub state: ProcessState,
    /// Why it is in its state (`failed`, `backoff`, `stopped`).
    #[serde(default)]
    pub reason: Option<String>,
    /// The pid of the current run (`running`, `stopping`).
    #[serde(default)]
    pub pid: Option<u32>,
    /// The identity of the current run, to re-adopt it safely.
    #[serde(default)]
    pub identity: Option<Identity>,
    /// The limits the current or last run got (after the supervisor's hard limits).
    #[serde(default)]
    pub limits: ResourceLimits,
    pub created_at: DateTime<Utc>,
    /// When a `backoff` child starts again.
    #[serde(default)]
    pub next_start_at: Option<DateTime<Utc>>,
    /// Starts made by the restart policy (not the first, not an operator's restart).
    #[serde(default)]
    pub restarts: u32,
    /// Failed runs in a row (the back-off doubles with it).
    #[serde(default)]
    pub failures_in_a_row: u32,
    /// Starts before this time do not count toward the start limit (an operator's restart
    /// resets it).
    pub window_start: DateTime<Utc>,
    /// A stop was asked for: the exit that follows ends in `stopped`, not a restart.
    #[serde(default)]
    pub stop_requested: bool,
    /// Stopped by the supervisor's shutdown: started again by the next supervisor.
    #[serde(default)]
    pub resume: bool,
    /// The latest runs, oldest first (at most [`HISTORY_LEN`]).
    #[serde(default)]
    pub history: VecDeque<RunEntry>,
}

impl ProcessRecord {
    /// The run in progress (the last entry, not ended).
    pub fn current_run(&mut self) -> Option<&mut RunEntry> {
        self.history.back_mut().filter(|r| r.ended_at.is_none())
    }

    pub(crate) fn push_run(&mut self, entry: RunEntry) {
        self.history.push_back(entry);
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
    }

    /// Starts since `since` (and since the window start).
    pub fn starts_since(&self, since: DateTime<Utc>) -> usize {
        let since = since.max(self.window_start);
        self.history
            .iter()
            .filter(|r| r.started_at >= since)
            .count()
    }

    /// Relative to the data dir: `runtime/logs/<id>.out.log` and `.err.log`.
    pub fn log_files(&self) -> (String, String) {
        (
            format!("{LOGS_DIR}/{}.out.log", self.id),
            format!("{LOGS_DIR}/{}.err.log", self.id),
        )
    }
}

/// The children's logs, relative to the data dir.
pub const LOGS_DIR: &str = "runtime/logs";
/// The snapshot, relative to the data dir.
pub const STATE_FILE: &str = "state/runtime_state.json";

/// The whole snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The format's version (1).
    pub version: u32,
    /// Where generated ids (`bridge-7`) continue.
    pub next_seq: u64,
    pub processes: Vec<ProcessRecord>,
}

/// Reads the snapshot; none yet is an empty one.
pub fn load(data_dir: &Path) -> Result<Snapshot, String> {
    let path = data_dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{STATE_FILE}: not a runtime snapshot ({e}); move it away")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Snapshot {
            version: 1,
            ..Snapshot::default()
        }),
        Err(e) => Err(format!("reading {STATE_FILE}: {e}")),
    }
}

/// Writes the snapshot atomically: readers see the old file or the new one, never a part.
pub fn save(data_dir: &Path, snapshot: &Snapshot) -> Result<(), String> {
    write_json(data_dir, STATE_FILE, snapshot)
}

/// Writes `value` as pretty JSON to `file` under the data dir: a temporary file, fsync, rename.
fn write_json(data_dir: &Path, file: &str, value: &impl Serialize) -> Result<(), String> {
    let path = data_dir.join(file);
    let tmp: PathBuf = data_dir.join(format!("{file}.tmp"));
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("writing {file}: {e}"))
}

/// The supervising process's file, relative to the data dir.
pub const SERVER_STATE_FILE: &str = "state/server_state.json";

/// `state/server_state.json`: the process supervising the data dir.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerState {
    pub pid: u32,
    pub boot_id: String,
    pub started_at: DateTime<Utc>,
    /// `running` while it supervises; `stopped` after a shutdown (its children stopped, started
    /// again by the next supervisor); `detached` (its children left running, re-adopted by the
    /// next one).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// How the previous supervisor of the data dir ended: `stopped`, `detached`, or `crashed`
    /// (its file still said `running`: it died without a shutdown, and this one re-adopted or
    /// restarted its children); none for the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousServer>,
}

/// The previous supervisor, as [`ServerState::previous`] records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreviousServer {
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    /// `stopped`, `detached` or `crashed`.
    pub ended: String,
}

/// Reads `state/server_state.json`; `None` when there is none or it is unreadable (it is a
/// record, never needed to recover the children).
pub fn load_server(data_dir: &Path) -> Option<ServerState> {
    let bytes = std::fs::read(data_dir.join(SERVER_STATE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `state/server_state.json` atomically.
pub fn save_server(data_dir: &Path, state: &ServerState) -> Result<(), String> {
    write_json(data_dir, SERVER_STATE_FILE, state)
}
