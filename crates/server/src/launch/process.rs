//! `serve` as the meta health monitor sees it: its roles, its workflow runtime's loops and its
//! queue.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tradeloom_ops::health::{
    LoopGroup, MonitoredProcess, PROBE_TIMEOUT, Probe, ProbeFuture, RequeueFuture, Supervisor,
};
use tradeloom_orchestrator::Runtime;
use tradeloom_orchestrator::runtime::{COORDINATOR_GROUP, TIMERS_GROUP};

/// The roles whose heartbeats `serve` writes.
pub const SERVE_ROLES: [&str; 4] = ["api", "coordinator", "workers", "scheduler"];

/// The workflow runtime and the schedule loop of a `serve` process.
pub struct ServeProcess {
    runtime: Arc<Runtime>,
    scheduler: Arc<JoinHandle<()>>,
}

impl ServeProcess {
    /// The process of `runtime` and `scheduler`.
    pub fn new(runtime: Arc<Runtime>, scheduler: Arc<JoinHandle<()>>) -> Self {
        Self { runtime, scheduler }
    }
}

impl Supervisor for ServeProcess {
    fn finished_loops(&self) -> Vec<LoopGroup> {
        self.runtime
            .loop_health()
            .into_iter()
            .map(|g| LoopGroup {
                name: g.group,
                finished: g.finished,
                total: g.total,
            })
            .collect()
    }

    fn respawn_finished(&self, group: &str) -> usize {
        self.runtime.respawn_finished(group)
    }

    fn requeue_expired(&self) -> RequeueFuture<'_> {
        Box::pin(async move {
            self.runtime
                .requeue_expired()
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl MonitoredProcess for ServeProcess {
    fn roles(&self) -> &'static [&'static str] {
        &SERVE_ROLES
    }

    fn roles_alive(&self) -> Vec<(&'static str, bool)> {
        let groups = self.runtime.loop_health();
        let group_alive = |name: &str| {
            groups
                .iter()
                .any(|g| g.group == name && g.finished < g.total)
        };
        let workers = groups
            .iter()
            .filter(|g| g.group != COORDINATOR_GROUP && g.group != TIMERS_GROUP)
            .all(|g| g.finished < g.total);
        vec![
            ("api", true),
            ("coordinator", group_alive(COORDINATOR_GROUP)),
            ("workers", workers),
            ("scheduler", !self.scheduler.is_finished()),
        ]
    }

    fn probe_queue(&self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let queue = self.runtime.coordinator().queue().clone();
            match tokio::time::timeout(
                PROBE_TIMEOUT,
                queue.stats(tradeloom_orchestrator::worker::SIGNAL_POOL),
            )
            .await
            {
                Ok(Ok(_)) => Probe::ok(),
                Ok(Err(e)) => Probe::failed(format!("queue: {e}")),
                Err(_) => Probe::failed("the queue did not answer in time"),
            }
        })
    }
}
