//! The meta health monitor: five sensors in [0, 1] over the processes, heartbeats, data feeds,
//! control plane and data coherence of one data dir, their product `rm_meta`, a status
//! (GREEN > 0.8 ≥ DEGRADED > 0.5 ≥ CRITICAL > 0.2 ≥ DEAD), and rate-limited recovery actions.
//!
//! One check is [`observe`] (files, processes, store, API, queue, the cluster's process
//! registry — the I/O) followed by
//! [`evaluate`] (a pure function of the observations and `now`), then [`record`]
//! (`meta_health.json`, `history.jsonl`) and the [`Recovery`] actions. `tradeloom health` runs
//! one check or a loop of them; `tradeloom serve` runs the loop in-process, writes heartbeats
//! for its roles ([`Monitor`]) and serves the latest report at `GET /health/meta`.
//!
//! Files under `<data_dir>/health/`: `meta_health.json`, `history.jsonl` (+ `history.1.jsonl`),
//! `actions.jsonl`, `heartbeats/<role>.json`. The config is `<data_dir>/health.yaml`
//! ([`HealthConfig`]).

mod config;
mod files;
mod heartbeat;
mod monitor;
mod observe;
mod paths;
mod recovery;
mod report;
mod summary;

use std::path::{Path, PathBuf};

use chrono::Utc;

pub use config::{
    ALL_PAPER_RUNS, CONFIG_FILE, ConfigSource, DEFAULT_DEAD_AFTER, DEFAULT_STALE_AFTER, FeedConfig,
    FeedSource, HealthConfig, PROCESS_ROLES, parse_duration,
};
pub use files::{HISTORY_MAX_LINES, HistoryEntry, history, latest, record};
pub use heartbeat::{
    Heartbeat, pid_alive, read_heartbeat, remove_heartbeat, write_heartbeat, write_heartbeat_now,
};
pub use monitor::{HEARTBEAT_EVERY, Monitor, MonitoredProcess, ProbeFuture, ReportSlot};
pub use observe::{
    Environment, FEED_STATE_FILE, PROBE_TIMEOUT, QueueAccess, StoreAccess, disk_writable,
    newest_modification, observe, probe_disk,
};
pub use paths::{health_dir, heartbeat_dir, heartbeat_path, history_path, meta_health_path};
pub use recovery::{
    ActionRecord, ENGAGE_KILL_SWITCH, LoopGroup, Permit, REQUEUE_STUCK_TASKS, RESTART_WORKER_POOL,
    RateLimit, Recovery, RequeueFuture, SUPPRESSED, Supervisor, actions_path,
};
pub use report::{
    ClusterProcessDetail, ClusterRoleDetail, Details, FEED_DEAD, FEED_FRESH, FEED_STALE,
    FeedDetail, FeedSeen, HEARTBEAT_DEAD_SECS, HEARTBEAT_SLOW_SECS, HealthReport, HeartbeatSeen,
    NO_REGISTRY, Observations, PROCESS_RUNNING, Probe, RoleDetail, RunFeedSeen, RunFeedState,
    Sensors, Status, evaluate, feed_state, heartbeat_score, rfc3339,
};
pub use summary::config_note;

/// A health monitor failure: a bad config (where and what), or a file that cannot be written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum HealthError {
    /// `place` is `file[:line[:column]]`; `message` names the field.
    #[error("{place}: {message}")]
    Config { place: String, message: String },
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// Observes and evaluates once, at the time the observations were complete.
pub async fn check(config: &HealthConfig, env: &Environment) -> HealthReport {
    let observations = observe(config, env).await;
    evaluate(config, &observations, Utc::now())
}

/// What one monitor cycle did.
#[derive(Clone, Debug)]
pub struct Cycle {
    pub report: HealthReport,
    /// Recovery actions journaled in this cycle (suppressions are in the journal only).
    pub actions: Vec<ActionRecord>,
    /// Why the report could not be recorded (`meta_health.json`, `history.jsonl`), if so.
    pub record_error: Option<HealthError>,
}

/// One cycle of the monitor: check, record, then recovery — requeue expired leases and restart
/// finished worker loops of `supervisor` (if this process has one), engage the global kill
/// switch on failed coherence.
pub async fn cycle(
    config: &HealthConfig,
    env: &Environment,
    supervisor: Option<&dyn Supervisor>,
    recovery: &Recovery,
) -> Result<Cycle, HealthError> {
    let report = check(config, env).await;
    // On a failing disk the report is what matters most: it is returned even if it could
    // not be written down.
    let record_error = record(&env.data_dir, &report).err();
    let now = Utc::now();
    let mut actions = Vec::new();
    if let Some(supervisor) = supervisor {
        actions.extend(recovery.supervise(supervisor, now).await?);
    }
    if let Some(a) = recovery.engage_kill_switch_if_incoherent(&report, now)? {
        actions.push(a);
    }
    Ok(Cycle {
        report,
        actions,
        record_error,
    })
}

/// The config of `data_dir` (`health.yaml`), for callers that hold only the path.
pub fn load_config(data_dir: &Path) -> Result<HealthConfig, HealthError> {
    HealthConfig::load(data_dir)
}
