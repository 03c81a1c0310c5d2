//! The monitor a long-running process (`tradeloom serve`) runs in-process: heartbeats of its
//! roles, a check every interval with recovery actions on its own loops, and the latest report
//! kept for `GET /health/meta`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::Value;
use tradeloom_queue::cluster::Registry;
use tradeloom_store::Store;

use super::{
    Environment, HealthConfig, HealthError, Probe, QueueAccess, RateLimit, Recovery, Status,
    StoreAccess, Supervisor, cycle, remove_heartbeat, write_heartbeat_now,
};

/// How often the monitored process rewrites its heartbeat files.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// Where the monitor keeps the latest report (as JSON) for whoever serves it.
pub type ReportSlot = Arc<RwLock<Option<Value>>>;

/// A future of [`MonitoredProcess::probe_queue`].
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Probe> + Send + 'a>>;

/// The process the monitor runs in: its loops (a [`Supervisor`]), its roles and its queue.
pub trait MonitoredProcess: Supervisor + 'static {
    /// The roles whose heartbeats the process writes, in a fixed order.
    fn roles(&self) -> Vec<&'static str>;
    /// Each role with whether it is alive right now (a role whose loops all died is not).
    fn roles_alive(&self) -> Vec<(&'static str, bool)>;
    /// Whether the process's queue answers (within [`super::PROBE_TIMEOUT`]).
    fn probe_queue(&self) -> ProbeFuture<'_>;
}

/// The monitor of a process; [`Monitor::stop`] ends it and removes the heartbeats.
pub struct Monitor {
    data_dir: PathBuf,
    roles: Vec<&'static str>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Monitor {
    /// Writes the heartbeats of the roles that are alive every [`HEARTBEAT_EVERY`], and checks
    /// health every `interval`, keeping the latest report in `slot`; `registry` is the
    /// cluster's process registry the process registers in (for `processes:`). Fails on a bad
    /// `health.yaml` at start; later a bad one is logged and the last good one kept.
    pub fn start(
        data_dir: &Path,
        interval: Duration,
        store: Arc<dyn Store>,
        registry: Option<Arc<dyn Registry>>,
        process: Arc<dyn MonitoredProcess>,
        slot: ReportSlot,
    ) -> Result<Self, HealthError> {
        let config = HealthConfig::load(data_dir)?;
        let data_dir = data_dir.to_path_buf();
        let beat = tokio::spawn(beat(data_dir.clone(), process.clone()));
        let check = tokio::spawn(check_every(
            interval,
            config,
            data_dir.clone(),
            store,
            registry,
            process.clone(),
            slot,
        ));
        Ok(Self {
            data_dir,
            roles: process.roles(),
            tasks: vec![beat, check],
        })
    }

    /// Stops the monitor and removes this process's heartbeat files (a clean shutdown).
    pub async fn stop(self) {
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        for role in &self.roles {
            remove_heartbeat(&self.data_dir, role);
        }
    }
}

async fn beat(data_dir: PathBuf, process: Arc<dyn MonitoredProcess>) {
    loop {
        for (role, alive) in process.roles_alive() {
            if alive && let Err(e) = write_heartbeat_now(&data_dir, role) {
                tracing::warn!(role, error = %e, "cannot write a heartbeat");
            }
        }
        tokio::time::sleep(HEARTBEAT_EVERY).await;
    }
}

async fn check_every(
    interval: Duration,
    mut config: HealthConfig,
    data_dir: PathBuf,
    store: Arc<dyn Store>,
    registry: Option<Arc<dyn Registry>>,
    process: Arc<dyn MonitoredProcess>,
    slot: ReportSlot,
) {
    let recovery = Recovery::new(&data_dir, RateLimit::default());
    let mut last: Option<Status> = None;
    // The first heartbeats land before the first check.
    tokio::time::sleep(Duration::from_millis(200)).await;
    loop {
        match HealthConfig::load(&data_dir) {
            Ok(c) => config = c,
            Err(e) => {
                tracing::error!(error = %e, "bad health config; checking with the last good one")
            }
        }
        let env = Environment {
            data_dir: data_dir.clone(),
            store: StoreAccess::Shared(store.clone()),
            queue: QueueAccess::Checked(process.probe_queue().await),
            registry: registry.clone(),
        };
        let supervisor: &dyn Supervisor = process.as_ref();
        match cycle(&config, &env, Some(supervisor), &recovery).await {
            Ok(cycle) => {
                let report = &cycle.report;
                let status = report.status;
                if last != Some(status) {
                    if status == Status::Green {
                        tracing::info!(status = %status, rm_meta = report.rm_meta, "meta health");
                    } else {
                        tracing::warn!(status = %status, rm_meta = report.rm_meta, why = %report.weakest(), "meta health");
                    }
                    last = Some(status);
                }
                match serde_json::to_value(report) {
                    Ok(v) => *slot.write().unwrap_or_else(PoisonError::into_inner) = Some(v),
                    Err(e) => tracing::error!(error = %e, "cannot render the health report"),
                }
            }
            Err(e) => tracing::error!(error = %e, "health check not recorded"),
        }
        tokio::time::sleep(interval).await;
    }
}
