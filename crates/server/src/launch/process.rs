//! `serve` as the meta health monitor sees it: its roles, its workflow runtime's loops and its
//! queue.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tradeloom_ops::health::{
    LoopGroup, MonitoredProcess, PROBE_TIMEOUT, Probe, ProbeFuture, RequeueFuture, Supervisor,
};
use tradeloom_orchestrator::Runtime;
use tradeloom_orchestrator::runtime::{COORDINATOR_GROUP, TIMERS_GROUP};

/// The roles whose heartbeats `serve` writes when it runs every role.
pub const SERVE_ROLES: [&str; 4] = ["api", "coordinator", "workers", "scheduler"];

/// The workflow runtime and the schedule loop of a `serve`, `coordinator` or `worker` process.
pub struct ServeProcess {
    runtime: Arc<Runtime>,
    /// `None` without the coordinator role (the schedule loop runs with it).
    scheduler: Option<Arc<JoinHandle<()>>>,
    api: bool,
}

impl ServeProcess {
    /// The process of `runtime` and `scheduler`, answering the API when `api`.
    pub fn new(runtime: Arc<Runtime>, scheduler: Option<Arc<JoinHandle<()>>>, api: bool) -> Self {
        Self {
            runtime,
            scheduler,
            api,
        }
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
    fn roles(&self) -> Vec<&'static str> {
        let roles = self.runtime.roles();
        SERVE_ROLES
            .into_iter()
            .filter(|role| match *role {
                "api" => self.api,
                "coordinator" => roles.coordinator,
                "workers" => !roles.pools.is_empty(),
                _ => self.scheduler.is_some(),
            })
            .collect()
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
        self.roles()
            .into_iter()
            .map(|role| {
                let alive = match role {
                    "api" => true,
                    "coordinator" => group_alive(COORDINATOR_GROUP),
                    "workers" => workers,
                    _ => self.scheduler.as_ref().is_some_and(|s| !s.is_finished()),
                };
                (role, alive)
            })
            .collect()
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
