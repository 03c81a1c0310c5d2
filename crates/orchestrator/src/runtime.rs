//! [`Runtime`]: the embedded workflow engine — a coordinator, workers for every node type and
//! the approval timers on one queue, plus the operations the API and CLI offer (start, cancel,
//! decide, patch, inspect).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tradeloom_agents::Simulator;
use tradeloom_net::{GuardedClient, SecretEnv, SsrfPolicy};
use tradeloom_queue::Queue;
use tradeloom_store::{
    Admission, Approval, ApprovalStatus, CreateRun, Decision, NewWorkflowRun, NodeStatus, Patch,
    RunPriority, RunStatus, Store, WorkflowRun, WorkflowVersion,
};

use crate::approval_notify::ApprovalNotifier;
use crate::coordinator::{Applied, Coordinator};
use crate::engine_runs::EngineRuns;
use crate::error::OrchestratorError;
use crate::nodes::NodeEnv;
use crate::patch::PatchOutcome;
use crate::signal::Signal;
use crate::worker::{InFlight, WorkerEnv, coordinator_loop, node_worker, timer_worker};

/// How [`Runtime::start_run_with`] starts a run.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// The priority its node tasks are queued at.
    pub priority: RunPriority,
    /// The API key starting it: recorded with the run and counted against the key's limit.
    pub api_key_id: Option<String>,
    /// That key's `max_concurrent_runs`, as the caller authenticated it.
    pub key_limit: Option<u32>,
    /// Over a limit, refuse the start ([`OrchestratorError::LimitReached`]) rather than
    /// queue the run.
    pub refuse_over_limit: bool,
}

/// The statuses a run can be paused from.
pub const PAUSABLE: [RunStatus; 3] = [RunStatus::Pending, RunStatus::Running, RunStatus::Waiting];

/// Node types with workers.
pub const WORKER_POOLS: [&str; 10] = [
    "transform",
    "wait",
    "http",
    "agent",
    "simulate",
    "backtest",
    "paper",
    "order",
    "script",
    crate::sweep_points::SWEEP_POOL,
];

/// Which consume loops a runtime starts. `serve` alone runs them all; a cluster splits them over
/// `coordinator` processes (signals, approval timers, recovery of unfinished runs at start) and
/// `worker` processes (node tasks of the pools they name). A runtime with neither still starts,
/// cancels and inspects runs: the API role of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopRoles {
    /// Signal consumers, the approval timers, and the recovery of unfinished runs at start.
    pub coordinator: bool,
    /// The node-type pools to run workers for, each one of [`WORKER_POOLS`].
    pub pools: Vec<String>,
}

impl LoopRoles {
    /// Every loop: the embedded default.
    pub fn all() -> Self {
        LoopRoles {
            coordinator: true,
            pools: WORKER_POOLS.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// No loop: a runtime that only starts, cancels and inspects runs.
    pub fn none() -> Self {
        LoopRoles {
            coordinator: false,
            pools: Vec::new(),
        }
    }

    /// Workers of `pools` (every pool when empty) and nothing else; an unknown pool is refused
    /// with the list of known ones.
    pub fn workers(pools: &[String]) -> Result<Self, String> {
        if pools.is_empty() {
            return Ok(LoopRoles {
                coordinator: false,
                ..LoopRoles::all()
            });
        }
        let mut chosen: Vec<String> = Vec::new();
        for pool in pools {
            if !WORKER_POOLS.contains(&pool.as_str()) {
                return Err(format!(
                    "unknown pool `{pool}`; the pools are {}",
                    WORKER_POOLS.join(", ")
                ));
            }
            if !chosen.contains(pool) {
                chosen.push(pool.clone());
            }
        }
        Ok(LoopRoles {
            coordinator: false,
            pools: chosen,
        })
    }
}

/// What [`Runtime::drain`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Consume loops that stopped on their own within the grace period (their work done).
    pub stopped: usize,
    /// Loops still busy at the end of the grace period, stopped.
    pub aborted: usize,
    /// Deliveries of those loops given back to the queue (deliverable at once elsewhere).
    pub handed_back: usize,
}

/// Settings of the runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The SSRF guard of every outbound request of nodes (`http` nodes, agents' LLM endpoints).
    pub ssrf: SsrfPolicy,
    /// The environment variables definitions may name as secrets (agents' `api_key_env`,
    /// http nodes' secret headers); default: the documented prefixes only.
    pub secrets: SecretEnv,
    /// Backtest run folders go under this.
    pub data_dir: PathBuf,
    /// Relative paths in inline node configs (a `simulate` node's `config`) resolve against
    /// this.
    pub base_dir: PathBuf,
    /// The folder a `simulate` node's `config_path` and a `backtest` node's `spec_path` may
    /// name files in (`serve --config-dir`); without it those paths are refused.
    pub config_dir: Option<tradeloom_agents::ConfigDir>,
    /// Concurrent workers per node type (a pool's limit caps it further).
    pub workers_per_pool: usize,
    /// Concurrent signal consumers.
    pub coordinators: usize,
    /// Per-pool concurrency limits, e.g. `agent` → 2.
    pub pool_limits: HashMap<String, usize>,
    /// Nodes of one run queued or running at once (default
    /// [`crate::plan::DEFAULT_MAX_IN_FLIGHT`]): a run with more ready nodes starts the rest as
    /// these finish, so one wide run cannot fill the worker queues ahead of other runs.
    pub max_in_flight_per_run: usize,
    /// Size limits of definitions and patches (runs compile their definition within them).
    pub flow_limits: tradeloom_flow::FlowLimits,
    /// The loops [`Runtime::start`] starts (default: all).
    pub roles: LoopRoles,
    /// The base URL of approval links a `hitl` node's `notify` sends when it sets no
    /// `link_base` (`serve --public-url`, else the address the API is bound to).
    pub public_url: Option<String>,
    /// The wait before the second attempt to post an approval to chat (each later one waits
    /// four times longer); default [`crate::approval_notify::DEFAULT_NOTIFY_BACKOFF`].
    pub notify_backoff: Duration,
}

impl RuntimeConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        RuntimeConfig {
            ssrf: SsrfPolicy::default(),
            secrets: SecretEnv::default(),
            base_dir: data_dir.clone(),
            config_dir: None,
            data_dir,
            workers_per_pool: 8,
            coordinators: 2,
            pool_limits: HashMap::new(),
            max_in_flight_per_run: crate::plan::DEFAULT_MAX_IN_FLIGHT,
            flow_limits: tradeloom_flow::FlowLimits::DEFAULT,
            roles: LoopRoles::all(),
            public_url: None,
            notify_backoff: crate::approval_notify::DEFAULT_NOTIFY_BACKOFF,
        }
    }
}

/// The embedded workflow engine.
#[derive(Debug)]
pub struct Runtime {
    coordinator: Arc<Coordinator>,
    /// Posts new approvals to chat (the timer loop's `approval_notify` tasks).
    notifier: Arc<ApprovalNotifier>,
    env: Arc<WorkerEnv>,
    config: RuntimeConfig,
    shutdown: watch::Sender<bool>,
    handles: Mutex<Vec<LoopHandle>>,
    in_flight: Arc<InFlight>,
    /// With the coordinator role: re-emits the work of stalled runs (see [`STALL_AFTER`]).
    sweeper: Mutex<Option<JoinHandle<()>>>,
    /// Hashes of definitions without `agent` nodes: a run of one executes it as it is, so its
    /// start reads and parses nothing to pin (definitions are content-addressed: a hash's
    /// answer never changes). At most [`PLAIN_DEFINITIONS`].
    plain_definitions: Mutex<std::collections::HashSet<String>>,
}

/// Definition hashes [`Runtime::plain_definitions`] keeps before it starts again.
const PLAIN_DEFINITIONS: usize = 4_096;

/// A run whose revision has not moved this long has its work re-emitted by a coordinator:
/// another coordinator may have died between committing its transition and enqueuing the
/// tasks. Longer than a node's completion takes to be applied, so a live run is rarely touched
/// (and a duplicate task of one is recognised by its attempt's dedup key).
pub const STALL_AFTER: Duration = Duration::from_secs(15);

/// One consume loop the runtime started: a worker of a node-type pool, a coordinator or the
/// timers.
#[derive(Debug)]
struct LoopHandle {
    /// The pool name for node workers, `coordinator` or `timers`.
    group: String,
    consumer: String,
    handle: JoinHandle<()>,
}

/// The consume loops of one group and how many of them have finished (crashed or returned)
/// while the runtime runs. See [`Runtime::loop_health`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoopGroupHealth {
    /// A node-type pool (`transform`, `http`, …), `coordinator` or `timers`.
    pub group: String,
    pub total: usize,
    pub finished: usize,
}

/// The group of the signal consumers.
pub const COORDINATOR_GROUP: &str = "coordinator";
/// The group of the approval-timer consumer.
pub const TIMERS_GROUP: &str = "timers";

/// One node of a run as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    pub id: String,
    /// `None` for a node a patch removed.
    #[serde(rename = "type")]
    pub node_type: Option<String>,
    pub status: NodeStatus,
    pub attempts: u32,
    pub error: Option<String>,
    /// Blob hash of the output (`GET /blobs/{hash}`), once completed.
    pub output: Option<String>,
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
    pub needs: Vec<String>,
    pub removed: bool,
}

/// A run with its nodes, patches and approvals.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_name: String,
    pub workflow_version: u32,
    pub status: RunStatus,
    /// `high`, `normal` or `low`: the priority its node tasks are queued at.
    pub priority: RunPriority,
    pub ir_version: u32,
    pub ir_hash: String,
    pub definition_hash: Option<String>,
    pub inputs: Value,
    pub tokens: i64,
    pub error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub nodes: Vec<NodeView>,
    pub patches: Vec<Patch>,
    pub approvals: Vec<Approval>,
}

impl Runtime {
    /// A runtime over `store` and `queue`; call [`Runtime::start`] to resume and run.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        config: RuntimeConfig,
        simulator: Option<Arc<Simulator>>,
    ) -> Result<Arc<Self>, OrchestratorError> {
        let http =
            GuardedClient::new(config.ssrf.clone()).map_err(|e| OrchestratorError::Invalid {
                message: format!("SSRF allow-list: {e}"),
                errors: vec![e.to_string()],
            })?;
        let coordinator = Arc::new(
            Coordinator::new(store, queue, Arc::new(Notify::new()))
                .with_max_in_flight(config.max_in_flight_per_run)
                .with_secret_env(config.secrets.clone())
                .with_flow_limits(config.flow_limits),
        );
        let cancellations = coordinator.stopped_runs().clone();
        // Paper runs' events wake `/ws` through the coordinator's notifier.
        let engine_runs = Arc::new(EngineRuns::new(
            config.data_dir.clone(),
            Some(coordinator.store().clone()),
            coordinator.notify().clone(),
            config.ssrf.clone(),
        ));
        let notifier = Arc::new(ApprovalNotifier::new(
            http.clone(),
            config.secrets.clone(),
            config.public_url.clone(),
            config.notify_backoff,
        ));
        let in_flight = Arc::new(InFlight::new());
        let env = Arc::new(WorkerEnv {
            coordinator: coordinator.clone(),
            nodes: NodeEnv {
                http,
                secrets: config.secrets.clone(),
                simulator,
                data_dir: config.data_dir.clone(),
                base_dir: config.base_dir.clone(),
                config_dir: config.config_dir.clone(),
                engine_runs,
            },
            cancellations,
            in_flight: in_flight.clone(),
        });
        let (shutdown, _) = watch::channel(false);
        Ok(Arc::new(Runtime {
            coordinator,
            notifier,
            env,
            config,
            shutdown,
            handles: Mutex::new(Vec::new()),
            in_flight,
            sweeper: Mutex::new(None),
            plain_definitions: Mutex::new(std::collections::HashSet::new()),
        }))
    }

    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.coordinator.store()
    }

    /// The backtests and paper runs this process runs in the background (started by
    /// `backtest`/`paper` nodes and by `POST /runs`).
    pub fn engine_runs(&self) -> &Arc<EngineRuns> {
        &self.env.nodes.engine_runs
    }

    /// Woken after every committed batch of transitions.
    pub fn notify(&self) -> Arc<Notify> {
        self.coordinator.notify().clone()
    }

    /// Starts the loops of the configured [`LoopRoles`]; with the coordinator role, first
    /// re-emits the work of unfinished runs (after a restart). Returns how many runs were
    /// resumed.
    pub async fn start(self: &Arc<Self>) -> Result<usize, OrchestratorError> {
        let queue = self.coordinator.queue();
        for (pool, limit) in &self.config.pool_limits {
            queue.set_pool_limit(pool, Some(*limit)).await?;
        }
        let roles = &self.config.roles;
        // Consumer names are unique per process, so the leases of two processes never mix.
        let process = std::process::id();
        let mut handles = Vec::new();
        for pool in &roles.pools {
            // A sweep run keeps a core busy from start to end: no more of them than cores.
            let loops = if pool == crate::sweep_points::SWEEP_POOL {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                self.config.workers_per_pool.clamp(1, cores)
            } else {
                self.config.workers_per_pool.max(1)
            };
            for i in 0..loops {
                handles.push(self.spawn_loop(pool, format!("{pool}-{process}-{i}")));
            }
        }
        if roles.coordinator {
            for i in 0..self.config.coordinators.max(1) {
                handles
                    .push(self.spawn_loop(COORDINATOR_GROUP, format!("coordinator-{process}-{i}")));
            }
            handles.push(self.spawn_loop(TIMERS_GROUP, format!("timers-{process}")));
        }
        lock(&self.handles).extend(handles);
        if !roles.coordinator {
            return Ok(0);
        }
        let resumed = self.coordinator.recover().await?;
        let coordinator = self.coordinator.clone();
        let mut shutdown = self.shutdown.subscribe();
        *lock(&self.sweeper) = Some(tokio::spawn(async move {
            let mut seen = HashMap::new();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(STALL_AFTER / 3) => {}
                    _ = shutdown.changed() => return,
                }
                if let Err(e) = coordinator.sweep_stalled(&mut seen, STALL_AFTER).await {
                    tracing::warn!(error = %e, "cannot sweep stalled workflow runs");
                }
            }
        }));
        Ok(resumed)
    }

    /// The loops this runtime starts.
    pub fn roles(&self) -> &LoopRoles {
        &self.config.roles
    }

    /// Concurrent workers per pool.
    pub fn workers_per_pool(&self) -> usize {
        self.config.workers_per_pool.max(1)
    }

    /// Deliveries (node attempts, signals, timers) this process is handling now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Starts one consume loop of `group` (a worker pool, `coordinator` or `timers`).
    fn spawn_loop(&self, group: &str, consumer: String) -> LoopHandle {
        let shutdown = self.shutdown.subscribe();
        let handle = match group {
            COORDINATOR_GROUP => tokio::spawn(coordinator_loop(
                self.coordinator.clone(),
                consumer.clone(),
                shutdown,
                self.in_flight.clone(),
            )),
            TIMERS_GROUP => tokio::spawn(timer_worker(
                self.coordinator.clone(),
                self.notifier.clone(),
                consumer.clone(),
                shutdown,
                self.in_flight.clone(),
            )),
            crate::sweep_points::SWEEP_POOL => tokio::spawn(crate::sweep_points::sweep_worker(
                self.coordinator.queue().clone(),
                self.config.data_dir.clone(),
                consumer.clone(),
                shutdown,
                self.in_flight.clone(),
            )),
            pool => tokio::spawn(node_worker(
                self.env.clone(),
                pool.to_string(),
                consumer.clone(),
                shutdown,
            )),
        };
        LoopHandle {
            group: group.to_string(),
            consumer,
            handle,
        }
    }

    /// Per group of consume loops, how many there are and how many have finished. A loop ends
    /// only at shutdown, so a finished one while the runtime runs has crashed (a panic in a
    /// node) or given up.
    pub fn loop_health(&self) -> Vec<LoopGroupHealth> {
        let handles = lock(&self.handles);
        let mut groups: Vec<LoopGroupHealth> = Vec::new();
        for h in handles.iter() {
            let finished = usize::from(h.handle.is_finished());
            match groups.iter_mut().find(|g| g.group == h.group) {
                Some(g) => {
                    g.total += 1;
                    g.finished += finished;
                }
                None => groups.push(LoopGroupHealth {
                    group: h.group.clone(),
                    total: 1,
                    finished,
                }),
            }
        }
        groups
    }

    /// Starts a fresh loop (same consumer name) for every finished loop of `group`; returns how
    /// many. Nothing after [`Runtime::shutdown`].
    pub fn respawn_finished(&self, group: &str) -> usize {
        if *self.shutdown.borrow() {
            return 0;
        }
        let mut handles = lock(&self.handles);
        let mut respawned = 0;
        for i in 0..handles.len() {
            if handles[i].group == group && handles[i].handle.is_finished() {
                let consumer = handles[i].consumer.clone();
                handles[i] = self.spawn_loop(group, consumer);
                respawned += 1;
            }
        }
        if respawned > 0 {
            tracing::warn!(group, respawned, "finished consume loops respawned");
        }
        respawned
    }

    /// Stops every loop of `group` as a crash would (for failure drills and tests); returns how
    /// many were running. [`Runtime::respawn_finished`] starts them again.
    pub async fn abort_loops(&self, group: &str) -> usize {
        let n = {
            let handles = lock(&self.handles);
            let mut n = 0;
            for h in handles
                .iter()
                .filter(|h| h.group == group && !h.handle.is_finished())
            {
                h.handle.abort();
                n += 1;
            }
            n
        };
        // Let the aborts land so `loop_health` sees them finished.
        for _ in 0..400 {
            let done = lock(&self.handles)
                .iter()
                .filter(|h| h.group == group)
                .all(|h| h.handle.is_finished());
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n
    }

    /// Makes tasks whose lease ran out (their worker died) deliverable again at once, in every
    /// pool of the runtime; `(pool, count)` for each pool with any.
    pub async fn requeue_expired(&self) -> Result<Vec<(String, usize)>, OrchestratorError> {
        let queue = self.coordinator.queue();
        let mut requeued = Vec::new();
        let pools = WORKER_POOLS
            .iter()
            .copied()
            .chain([crate::worker::SIGNAL_POOL, crate::plan::TIMER_POOL]);
        for pool in pools {
            let n = queue.requeue_expired(pool).await?;
            if n > 0 {
                requeued.push((pool.to_string(), n));
            }
        }
        Ok(requeued)
    }

    /// Stops the workers at once: running attempts are abandoned and their deliveries given
    /// back to the queue (a restart, or another process, runs them again).
    pub async fn shutdown(&self) {
        self.drain(Duration::ZERO).await;
    }

    /// A graceful stop: the loops take no more work; what they hold gets `grace` to finish;
    /// loops still busy then are stopped and their deliveries given back to the queue at once
    /// (with the next attempt number), so no lease is left held.
    pub async fn drain(&self, grace: Duration) -> DrainReport {
        let _ = self.shutdown.send(true);
        let sweeper = lock(&self.sweeper).take();
        if let Some(sweeper) = sweeper {
            sweeper.abort();
            let _ = sweeper.await;
        }
        let handles: Vec<LoopHandle> = lock(&self.handles).drain(..).collect();
        let deadline = tokio::time::Instant::now() + grace;
        let mut report = DrainReport::default();
        for h in handles {
            let mut handle = h.handle;
            if tokio::time::timeout_at(deadline, &mut handle).await.is_ok() {
                report.stopped += 1;
            } else {
                handle.abort();
                let _ = handle.await;
                report.aborted += 1;
            }
        }
        let queue = self.coordinator.queue();
        for lease in self.in_flight.take_all() {
            match queue.nack(&lease, None).await {
                Ok(()) => report.handed_back += 1,
                Err(e) => tracing::warn!(pool = %lease.pool, task = %lease.task, error = %e,
                    "cannot hand a delivery back; it is redelivered when its lease runs out"),
            }
        }
        if report.aborted > 0 || report.handed_back > 0 {
            tracing::info!(
                stopped = report.stopped,
                aborted = report.aborted,
                handed_back = report.handed_back,
                "workflow loops stopped"
            );
        }
        report
    }

    /// Starts a run of workflow `workflow_id` (its latest version unless `version`).
    pub async fn start_run(
        &self,
        workflow_id: &str,
        version: Option<u32>,
        inputs: &Map<String, Value>,
    ) -> Result<WorkflowRun, OrchestratorError> {
        let v = self.store().workflow_version(workflow_id, version).await?;
        self.start_run_of(&v, inputs).await
    }

    /// Starts a run of workflow version `v` (as read by the caller), at `normal` priority.
    pub async fn start_run_of(
        &self,
        v: &WorkflowVersion,
        inputs: &Map<String, Value>,
    ) -> Result<WorkflowRun, OrchestratorError> {
        self.start_run_at(v, inputs, RunPriority::Normal).await
    }

    /// Starts a run of workflow version `v` whose node tasks are queued at `priority`.
    pub async fn start_run_at(
        &self,
        v: &WorkflowVersion,
        inputs: &Map<String, Value>,
        priority: RunPriority,
    ) -> Result<WorkflowRun, OrchestratorError> {
        let options = StartOptions {
            priority,
            ..StartOptions::default()
        };
        self.start_run_with(v, inputs, &options).await
    }

    /// Starts a run of workflow version `v` as `options` say. Registered agents and skills its
    /// `agent` nodes name are resolved now (see [`crate::agent_refs`]): the run executes, and
    /// records as its definition, the version with them pinned. Under a concurrency limit (the
    /// definition's `limits.max_concurrent_runs`, the key's `max_concurrent_runs`) the start
    /// is decided by admission in one store transaction: the run is `pending` and starts, or
    /// is `queued` until a slot frees, or — with `refuse_over_limit` — is not created
    /// ([`OrchestratorError::LimitReached`]).
    pub async fn start_run_with(
        &self,
        v: &WorkflowVersion,
        inputs: &Map<String, Value>,
        options: &StartOptions,
    ) -> Result<WorkflowRun, OrchestratorError> {
        let priority = options.priority;
        let (definition_hash, ir_hash) = self.pin_definition_refs(v).await?;
        let ir = self.coordinator.ir_of_definition(&definition_hash).await?;
        let resolved = ir
            .resolve_inputs(inputs)
            .map_err(|errors| OrchestratorError::Invalid {
                message: format!(
                    "bad inputs for workflow `{}`: {}",
                    ir.name(),
                    errors.join("; ")
                ),
                errors,
            })?;
        let create = CreateRun::new(NewWorkflowRun {
            workflow_id: v.workflow_id.clone(),
            workflow_version: v.version,
            ir_hash,
            definition_hash,
            agent_nodes: ir.agent_node_count() as u32,
            inputs: Value::Object(resolved),
            nodes: ir.nodes().iter().map(|n| n.id().to_string()).collect(),
            priority,
            api_key_id: options.api_key_id.clone(),
            workflow_limit: ir.limits().max_concurrent_runs,
        });
        tracing::info!(
            run_id = %create.id,
            trace_id = %tradeloom_core::trace_id(&create.id),
            workflow_id = %v.workflow_id,
            workflow_version = v.version,
            priority = priority.as_str(),
            "workflow run created"
        );
        if create.new.workflow_limit.is_none() && options.key_limit.is_none() {
            return self.coordinator.create_and_start(create).await;
        }
        // Under a limit: admission decides, in one transaction, and may admit queued runs
        // ahead of this one too.
        let (admission, admitted) = self
            .store()
            .admit_workflow_run(&create, options.refuse_over_limit)
            .await?;
        self.coordinator.start_admitted(admitted).await;
        match admission {
            Admission::Admitted(run) => {
                self.coordinator.apply(&run.id, &Signal::Start).await?;
                Ok(self.store().workflow_run(&run.id).await?)
            }
            Admission::Queued { run, reached } => {
                tracing::info!(
                    run_id = %run.id,
                    limit = reached.limit.as_str(),
                    max_concurrent_runs = reached.max_concurrent_runs,
                    "workflow run queued behind a concurrency limit"
                );
                Ok(run)
            }
            Admission::Refused(reached) => Err(OrchestratorError::LimitReached(reached)),
        }
    }

    /// The definition and IR hashes a run of `v` executes: `v`'s own when its agent nodes name
    /// no registered agent or unpinned skill, else those of the definition with them resolved
    /// (both stored as blobs).
    async fn pin_definition_refs(
        &self,
        v: &WorkflowVersion,
    ) -> Result<(String, String), OrchestratorError> {
        let as_it_is = || (v.definition_hash.clone(), v.ir_hash.clone());
        if lock(&self.plain_definitions).contains(&v.definition_hash) {
            return Ok(as_it_is());
        }
        let store = self.store();
        let blob = store.blob(&v.definition_hash).await?;
        let Ok(definition) = serde_json::from_str::<Value>(&blob.body) else {
            // Not JSON: compiling it reports why (`ir_of_definition`).
            return Ok(as_it_is());
        };
        if crate::agent_refs::names_no_agents(&definition) {
            let mut plain = lock(&self.plain_definitions);
            if plain.len() >= PLAIN_DEFINITIONS {
                plain.clear();
            }
            plain.insert(v.definition_hash.clone());
            return Ok(as_it_is());
        }
        let Some(resolved) =
            crate::agent_refs::resolve_definition_refs(&**store, &definition).await?
        else {
            return Ok((v.definition_hash.clone(), v.ir_hash.clone()));
        };
        let definition_hash = store
            .put_blob("workflow_definition", &resolved.to_string())
            .await?;
        // What a registered agent brings may not fit the node (e.g. a market tool without
        // `market`): the caller's mistake, said as such.
        let ir = self
            .coordinator
            .ir_of_definition(&definition_hash)
            .await
            .map_err(|e| match e {
                OrchestratorError::Definition { message, .. } => OrchestratorError::Unresolved {
                    message: format!(
                        "with its registered agents and skills resolved, the workflow does not \
                         compile: {message}"
                    ),
                    errors: vec![message],
                },
                other => other,
            })?;
        let ir_hash = store.put_blob("workflow_ir", &ir.canonical_json()).await?;
        Ok((definition_hash, ir_hash))
    }

    /// Cancels an unfinished run: its nodes still to run are skipped, running attempts stop,
    /// pending approvals are cancelled.
    pub async fn cancel(
        &self,
        run_id: &str,
        by: &str,
        reason: Option<String>,
    ) -> Result<WorkflowRun, OrchestratorError> {
        let run = self.store().workflow_run(run_id).await?;
        if run.status.is_terminal() {
            return Err(OrchestratorError::Conflict(format!(
                "run {run_id} is already {}",
                run.status
            )));
        }
        let signal = Signal::Cancel {
            by: by.to_string(),
            reason,
        };
        // The coordinator stops the run's running attempts once the cancel is committed.
        if self.coordinator.apply(run_id, &signal).await? == Applied::Stale {
            let run = self.store().workflow_run(run_id).await?;
            return Err(OrchestratorError::Conflict(format!(
                "run {run_id} is already {}",
                run.status
            )));
        }
        Ok(self.store().workflow_run(run_id).await?)
    }

    /// Pauses an unfinished (pending, running or waiting) run: no new node starts until it is
    /// resumed; nodes already running finish and their results are kept; a timer (a `wait`
    /// node, an approval's expiry) that falls due meanwhile takes effect on resume. The run
    /// stays `paused` across restarts. [`OrchestratorError::Conflict`] for a run in another
    /// status.
    pub async fn pause(&self, run_id: &str, by: &str) -> Result<WorkflowRun, OrchestratorError> {
        let signal = Signal::Pause {
            by: by.to_string(),
            request: uuid::Uuid::now_v7().to_string(),
        };
        self.control(run_id, &signal, &PAUSABLE).await
    }

    /// Resumes a paused run: nodes held back start, timers that fell due during the pause take
    /// effect now. [`OrchestratorError::Conflict`] for a run that is not paused.
    pub async fn resume(&self, run_id: &str, by: &str) -> Result<WorkflowRun, OrchestratorError> {
        let signal = Signal::Resume {
            by: by.to_string(),
            request: uuid::Uuid::now_v7().to_string(),
        };
        let run = self.control(run_id, &signal, &[RunStatus::Paused]).await?;
        self.coordinator.rearm_approvals(run_id).await?;
        Ok(run)
    }

    /// Applies a pause or resume `signal` to a run in one of the `allowed` statuses.
    async fn control(
        &self,
        run_id: &str,
        signal: &Signal,
        allowed: &[RunStatus],
    ) -> Result<WorkflowRun, OrchestratorError> {
        let refused = |run: &WorkflowRun| {
            OrchestratorError::Conflict(format!(
                "run {run_id} is {}; only a {} run can be {}",
                run.status,
                allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                if matches!(signal, Signal::Pause { .. }) {
                    "paused"
                } else {
                    "resumed"
                }
            ))
        };
        let run = self.store().workflow_run(run_id).await?;
        if !allowed.contains(&run.status) {
            return Err(refused(&run));
        }
        if self.coordinator.apply(run_id, signal).await? == Applied::Stale {
            let run = self.store().workflow_run(run_id).await?;
            return Err(refused(&run));
        }
        Ok(self.store().workflow_run(run_id).await?)
    }

    /// Decides a pending approval; the run continues down the matching branch.
    pub async fn decide(
        &self,
        approval_id: &str,
        decision: Decision,
        comment: Option<String>,
        by: &str,
    ) -> Result<Approval, OrchestratorError> {
        let approval = self.store().approval(approval_id).await?;
        if approval.status != ApprovalStatus::Pending {
            return Err(OrchestratorError::Conflict(format!(
                "approval {approval_id} is already {}",
                approval.status
            )));
        }
        if let Some(approvers) = &approval.approvers
            && !approvers.iter().any(|a| a == by)
        {
            return Err(OrchestratorError::Forbidden(format!(
                "`{by}` may not decide approval {approval_id}; its approvers are {}",
                approvers.join(", ")
            )));
        }
        let signal = Signal::Decided {
            approval_id: approval_id.to_string(),
            node: approval.node_id.clone(),
            attempt: approval.attempt,
            decision,
            by: by.to_string(),
            comment,
            expired: false,
        };
        match self.coordinator.apply(&approval.run_id, &signal).await? {
            Applied::Committed { .. } => Ok(self.store().approval(approval_id).await?),
            _ => {
                let now = self.store().approval(approval_id).await?;
                Err(OrchestratorError::Conflict(format!(
                    "approval {approval_id} is already {}",
                    now.status
                )))
            }
        }
    }

    /// Applies a JSON Patch to a running workflow.
    pub async fn patch(
        &self,
        run_id: &str,
        operations: &Value,
        by: &str,
    ) -> Result<PatchOutcome, OrchestratorError> {
        self.coordinator.patch(run_id, operations, by).await
    }

    /// A run with its nodes (in the order of its current IR), patches and approvals.
    pub async fn view(&self, run_id: &str) -> Result<RunView, OrchestratorError> {
        let store = self.store();
        let run = store.workflow_run(run_id).await?;
        let states = store.node_states(run_id).await?;
        let ir = match self.coordinator.ir(&run).await {
            Ok(ir) => ir,
            // A run whose definition no longer compiles (it was failed for that) is still
            // shown, node by node as stored.
            Err(OrchestratorError::Definition { .. }) => {
                return self.view_without_ir(run, &states).await;
            }
            Err(e) => return Err(e),
        };
        let by_id: HashMap<&str, &tradeloom_store::NodeState> =
            states.iter().map(|s| (s.node_id.as_str(), s)).collect();
        let in_ir: std::collections::HashSet<&str> = ir.nodes().iter().map(|n| n.id()).collect();
        let mut nodes: Vec<NodeView> = ir
            .nodes()
            .iter()
            .map(|n| {
                let s = by_id.get(n.id());
                NodeView {
                    id: n.id().to_string(),
                    node_type: Some(n.kind().type_name().to_string()),
                    status: s.map_or(NodeStatus::Pending, |s| s.status),
                    attempts: s.map_or(0, |s| s.attempts),
                    error: s.and_then(|s| s.error.clone()),
                    output: s.and_then(|s| s.output_hash.clone()),
                    not_before: s.and_then(|s| s.not_before),
                    needs: n
                        .needs()
                        .iter()
                        .map(|&k| ir.nodes()[k].id().to_string())
                        .collect(),
                    removed: false,
                }
            })
            .collect();
        nodes.extend(
            states
                .iter()
                .filter(|s| !in_ir.contains(s.node_id.as_str()))
                .map(|s| stored_node_view(s, true)),
        );
        let name = ir.name().to_string();
        self.assemble_view(run, name, nodes).await
    }

    /// A run whose IR cannot be had, node by node as stored.
    async fn view_without_ir(
        &self,
        run: WorkflowRun,
        states: &[tradeloom_store::NodeState],
    ) -> Result<RunView, OrchestratorError> {
        let nodes = states.iter().map(|s| stored_node_view(s, false)).collect();
        self.assemble_view(run, String::new(), nodes).await
    }

    /// The view of `run` with `nodes`, its patches and its approvals.
    async fn assemble_view(
        &self,
        run: WorkflowRun,
        workflow_name: String,
        nodes: Vec<NodeView>,
    ) -> Result<RunView, OrchestratorError> {
        let store = self.store();
        let patches = store.run_patches(&run.id).await?;
        let approvals = store.list_approvals(None, Some(&run.id), 1000, 0).await?;
        Ok(RunView {
            run_id: run.id,
            workflow_id: run.workflow_id,
            workflow_name,
            workflow_version: run.workflow_version,
            status: run.status,
            priority: run.priority,
            ir_version: run.ir_version,
            ir_hash: run.ir_hash,
            definition_hash: run.definition_hash,
            inputs: run.inputs,
            tokens: run.tokens,
            error: run.error,
            created_at: run.created_at,
            finished_at: run.finished_at,
            nodes,
            patches,
            approvals,
        })
    }

    /// Waits until run `run_id` is terminal or `timeout` passes; returns its last state.
    pub async fn wait_for(
        &self,
        run_id: &str,
        timeout: Duration,
    ) -> Result<WorkflowRun, OrchestratorError> {
        self.wait_until(run_id, timeout, RunStatus::is_terminal)
            .await
    }

    /// Waits until run `run_id` has settled — finished, waiting for an approval with nothing
    /// else in flight, or paused — or `timeout` passes; returns its last state. What
    /// `GET /workflow-runs/{id}?wait_ms=` answers after.
    pub async fn wait_settled(
        &self,
        run_id: &str,
        timeout: Duration,
    ) -> Result<WorkflowRun, OrchestratorError> {
        // Paused waits for a person, as an approval does; queued moves on by itself.
        self.wait_until(run_id, timeout, |status| {
            status.is_terminal() || matches!(status, RunStatus::Waiting | RunStatus::Paused)
        })
        .await
    }

    /// Reads run `run_id` until `settled` holds for its status or `timeout` passes; its last
    /// state. It is read at once, after each commit of it in this process that committed a
    /// settled status (a commit of a status that is not settled is not worth a read: the
    /// run's next commit wakes the waiter again), and at least every 200 ms, for commits of
    /// other processes.
    async fn wait_until(
        &self,
        run_id: &str,
        timeout: Duration,
        settled: impl Fn(RunStatus) -> bool,
    ) -> Result<WorkflowRun, OrchestratorError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Marks the commits before this call as seen: the first read below covers them.
        let mut commits = self.coordinator.run_notifier(run_id);
        commits.borrow_and_update();
        let result = loop {
            let run = match self.store().workflow_run(run_id).await {
                Ok(run) => run,
                Err(e) => break Err(e.into()),
            };
            if settled(run.status) || tokio::time::Instant::now() >= deadline {
                break Ok(run);
            }
            let nap_until =
                (tokio::time::Instant::now() + Duration::from_millis(200)).min(deadline);
            next_read(&mut commits, nap_until, &settled).await;
        };
        self.coordinator.release_run_notifier(run_id, commits);
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits until a waiter of [`Runtime::wait_until`] should read its run again: a commit of this
/// process committed a settled status (or one whose status is unknown), or `nap_until` came
/// (the waiter's nap, for commits of other processes, or its deadline).
async fn next_read(
    commits: &mut watch::Receiver<Option<RunStatus>>,
    nap_until: tokio::time::Instant,
    settled: &impl Fn(RunStatus) -> bool,
) {
    loop {
        match tokio::time::timeout_at(nap_until, commits.changed()).await {
            // The nap ended: read (another process may have moved the run).
            Err(_) => return,
            Ok(Ok(())) => {
                let committed = *commits.borrow_and_update();
                if committed.is_none_or(settled) {
                    return;
                }
            }
            // The coordinator dropped the run's sender (it never does while a receiver is
            // registered); reading at the nap's pace is still right.
            Ok(Err(_)) => {
                tokio::time::sleep_until(nap_until).await;
                return;
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::schedule::RunStarter for Runtime {
    /// A scheduled run: the workflow's latest version with its inputs' defaults.
    async fn start_scheduled_run(
        &self,
        workflow_id: &str,
        fire_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, crate::schedule::StartError> {
        let run = self.start_run(workflow_id, None, &Map::new()).await?;
        tracing::info!(
            workflow_id,
            run_id = %run.id,
            trace_id = %tradeloom_core::trace_id(&run.id),
            %fire_at,
            "scheduled workflow run started"
        );
        Ok(run.id)
    }
}

/// A node as the store holds it, without what only the IR knows (type, needs).
fn stored_node_view(s: &tradeloom_store::NodeState, removed: bool) -> NodeView {
    NodeView {
        id: s.node_id.clone(),
        node_type: None,
        status: s.status,
        attempts: s.attempts,
        error: s.error.clone(),
        output: s.output_hash.clone(),
        not_before: s.not_before,
        needs: Vec::new(),
        removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminal(status: RunStatus) -> bool {
        status.is_terminal()
    }

    /// Far enough that a `next_read` that returned did so on a commit, not on its nap.
    fn no_nap() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn a_settled_commit_made_while_the_waiter_was_reading_is_not_lost() {
        let (sender, mut commits) = watch::channel(None);
        commits.borrow_and_update();
        // Both commits land before the waiter listens again (it was reading the store).
        sender.send_replace(Some(RunStatus::Running));
        sender.send_replace(Some(RunStatus::Completed));
        tokio::time::timeout(
            Duration::from_secs(30),
            next_read(&mut commits, no_nap(), &terminal),
        )
        .await
        .expect("the completed commit wakes the waiter");
    }

    #[tokio::test]
    async fn a_commit_that_settles_nothing_is_not_read_and_the_next_one_is() {
        let (sender, mut commits) = watch::channel(None);
        commits.borrow_and_update();
        sender.send_replace(Some(RunStatus::Running));
        let mut waiting = Box::pin(next_read(&mut commits, no_nap(), &terminal));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err(),
            "a commit of `running` is not worth a read of the run"
        );
        sender.send_replace(Some(RunStatus::Failed));
        tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the failed commit wakes the waiter");
    }

    #[tokio::test]
    async fn the_nap_still_ends_the_wait_for_other_processes_commits() {
        let (_sender, mut commits) = watch::channel(None::<RunStatus>);
        commits.borrow_and_update();
        let nap_until = tokio::time::Instant::now() + Duration::from_millis(20);
        tokio::time::timeout(
            Duration::from_secs(30),
            next_read(&mut commits, nap_until, &terminal),
        )
        .await
        .expect("without commits of this process the waiter reads at the end of its nap");
    }
}
