//! The wiring of `tradeloom serve` (and of `coordinator` and `worker`, which are `serve` with
//! some roles): the store, the simulator (resuming interrupted jobs), the workflow runtime over
//! an in-process queue — or, with Redis, the cluster's queue — the schedule loop, the meta
//! health monitor, the process registry and the API state, served until a stop signal, then
//! handed back cleanly (in-flight work finishes within a grace period or goes back to the
//! queue, unfinished runs and jobs resume, heartbeats and the registry entry are removed).
//!
//! The command line turns flags into [`ServeOptions`] and a bound listener;
//! [`Server::start`] does the rest.

mod access_log;
mod batch;
mod process;
mod signals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tradeloom_agents::{AgentError, ConfigDir, Simulator, SimulatorOptions};
use tradeloom_flow::FlowLimits;
use tradeloom_net::{Outbound, SsrfPolicy};
use tradeloom_ops::health::{HealthError, Monitor};
use tradeloom_orchestrator::runtime::LoopRoles;
use tradeloom_orchestrator::schedule::Scheduler;
use tradeloom_orchestrator::{OrchestratorError, Runtime, RuntimeConfig};
use tradeloom_queue::{InMemoryRegistry, ProcessEntry, QueueError, Registry};
use tradeloom_store::{Store, StoreError};

use crate::cluster::ClusterView;
use crate::{AppState, AuthMode, MetaHealthSlot, RateLimits};

pub use batch::{Batch, BatchOutcome, outbound_of_config};
pub use process::{SERVE_ROLES, ServeProcess};
pub use signals::StopSignals;

/// How long in-flight requests get to finish after a stop signal (open WebSockets would hold a
/// graceful shutdown forever).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long in-flight workflow work (node attempts, signals) gets to finish after a stop signal
/// before it is handed back to the queue.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// The roles a process runs: `api` (the HTTP API, simulation jobs, engine runs),
/// `coordinator` (applies workflow signals, approval timers, schedules) and `worker` (runs
/// nodes of its pools). `serve` runs all three.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub coordinator: bool,
    pub worker: bool,
    /// The worker's node-type pools; empty: every pool.
    pub pools: Vec<String>,
}

/// The role names, in the order they are listed.
pub const ROLE_NAMES: [&str; 3] = ["api", "coordinator", "worker"];

impl Roles {
    /// Every role: the embedded default.
    pub fn all() -> Self {
        Roles {
            api: true,
            coordinator: true,
            worker: true,
            pools: Vec::new(),
        }
    }

    /// Parses `api,coordinator,worker` (any non-empty subset, any order).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut roles = Roles {
            api: false,
            coordinator: false,
            worker: false,
            pools: Vec::new(),
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "api" => roles.api = true,
                "coordinator" => roles.coordinator = true,
                "worker" => roles.worker = true,
                other => {
                    return Err(format!(
                        "unknown role `{other}`; the roles are {}",
                        ROLE_NAMES.join(", ")
                    ));
                }
            }
        }
        if !(roles.api || roles.coordinator || roles.worker) {
            return Err(format!(
                "no role given; the roles are {}",
                ROLE_NAMES.join(", ")
            ));
        }
        Ok(roles)
    }

    /// Whether every role runs here (no cluster needed).
    pub fn is_all(&self) -> bool {
        self.api && self.coordinator && self.worker && self.pools.is_empty()
    }

    /// The names of the roles, as `GET /cluster` lists them.
    pub fn names(&self) -> Vec<String> {
        ROLE_NAMES
            .iter()
            .zip([self.api, self.coordinator, self.worker])
            .filter(|(_, on)| *on)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    fn loops(&self) -> Result<LoopRoles, String> {
        let mut loops = if self.worker {
            LoopRoles::workers(&self.pools)?
        } else {
            LoopRoles::none()
        };
        loops.coordinator = self.coordinator;
        Ok(loops)
    }
}

/// The Redis of a cluster: the workflow queue and the process registry live there, under
/// `prefix`, shared by every process given the same URL and prefix.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
}

/// Everything `tradeloom serve` is told, checked.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Run folders, health files, kill switches.
    pub data_dir: PathBuf,
    /// A SQLite path or a `postgres://` URL.
    pub store_location: String,
    /// Relative paths of simulation configs and run specs resolve against it.
    pub base_dir: PathBuf,
    /// Simulation jobs run at once; a trigger beyond it answers 409.
    pub max_concurrent_jobs: usize,
    /// The guarded client and key allow-list shared by the simulator, the workflow runtime and
    /// the health probes.
    pub outbound: Outbound,
    /// The SSRF policy the workflow runtime's `http` nodes are held to.
    pub ssrf: SsrfPolicy,
    /// `None`: the default for the bound address ([`AuthMode::default_for`]).
    pub auth: Option<AuthMode>,
    pub rate_limits: RateLimits,
    /// The folder `config_path`/`spec_path` may name files in.
    pub config_dir: Option<ConfigDir>,
    /// Names besides IP addresses and `localhost` accepted in the `Host` header.
    pub allowed_hosts: Vec<String>,
    /// Web origins whose pages may call the API (CORS).
    pub allowed_origins: Vec<String>,
    /// The URL approvers' browsers reach this API at (`serve --public-url`): the base of
    /// approval links sent to chat. `None`: the address the API is bound to (unless that is
    /// `0.0.0.0`/`::`, which no browser can reach; then nodes must set `notify.link_base`).
    pub public_url: Option<String>,
    /// Concurrent workers per node type (at least 1 is used).
    pub workflow_workers: usize,
    /// At most this many `agent` nodes at once (0: no limit beyond the workers).
    pub agent_concurrency: usize,
    pub flow_limits: FlowLimits,
    /// How often workflow schedules are checked.
    pub schedule_tick: Duration,
    /// Time between the in-process meta health checks.
    pub health_interval: Duration,
    /// The roles of this process (default: all).
    pub roles: Roles,
    /// The cluster's Redis; `None`: the in-process queue (every role must then run here).
    pub redis: Option<RedisSettings>,
    /// How long in-flight workflow work gets to finish at a stop ([`DRAIN_GRACE`]).
    pub drain_grace: Duration,
    /// The `tradeloom` executable supervised children run (`POST /runtime/processes`); `None`:
    /// no supervisor (those routes answer 503). Given by the command line, never guessed here
    /// (in a test, the current executable is the test binary).
    pub supervisor_executable: Option<PathBuf>,
}

/// Why `serve` could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot open the store at {location}")]
    Store {
        /// The location with any password redacted.
        location: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Simulator(#[from] AgentError),
    /// A model of a simulation config whose `base_url` is not a URL.
    #[error("models `{model}`: base_url: {message}")]
    Config { model: String, message: String },
    /// The outbound access of a config was refused.
    #[error("{0}")]
    Outbound(String),
    #[error("{0}")]
    Leaderboard(String),
    #[error(transparent)]
    Report(StoreError),
    /// The workflow runtime's message only, as its own (it carries no chain worth showing).
    #[error("{0}")]
    Workflows(OrchestratorError),
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error("cannot listen for {signal}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the API server stopped")]
    Stopped(#[source] std::io::Error),
    /// Bad roles, or a cluster setting missing.
    #[error("{0}")]
    Roles(String),
    /// The cluster's Redis for shared rate limits or the `/ws` event bus (URL redacted).
    #[error("cannot use the Redis at {location} for {what}: {message}")]
    RedisShared {
        location: String,
        what: &'static str,
        message: String,
    },
    /// The cluster's Redis (URL redacted).
    #[error("cannot use the Redis at {location}: {source}")]
    Redis {
        location: String,
        #[source]
        source: QueueError,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A started `serve`: every part running, the listener (with the `api` role) bound but not yet
/// answering.
pub struct Server {
    listener: Option<tokio::net::TcpListener>,
    local: Option<SocketAddr>,
    state: AppState,
    simulator: Arc<Simulator>,
    runtime: Arc<Runtime>,
    /// With the coordinator role.
    scheduler: Option<Arc<tokio::task::JoinHandle<()>>>,
    monitor: Monitor,
    registration: Registration,
    drain_grace: Duration,
    /// The `/ws` event bus's reader and publisher (with Redis).
    bus_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Children started over `POST /runtime/processes` (with the api role).
    supervisor: Option<Arc<tradeloom_ops::supervisor::ProcessSupervisor>>,
}

impl Server {
    /// Opens the store, resumes interrupted simulation jobs and unfinished workflow runs,
    /// starts the schedule loop and the health monitor, and logs how the API is guarded.
    pub async fn start(
        options: ServeOptions,
        listener: Option<tokio::net::TcpListener>,
    ) -> Result<Self, LaunchError> {
        if options.roles.api != listener.is_some() {
            return Err(LaunchError::Roles(
                "a process answers HTTP exactly when it has the `api` role".into(),
            ));
        }
        if !options.roles.is_all() && options.redis.is_none() {
            return Err(LaunchError::Roles(format!(
                "roles {} without --redis-url: processes share their workflow queue through Redis, so a process with only some roles needs --redis-url (or TRADELOOM_REDIS_URL)",
                options.roles.names().join(",")
            )));
        }
        let loops = options.roles.loops().map_err(LaunchError::Roles)?;
        let store_location = options.store_location.clone();
        let store = tradeloom_store::open_store(&options.store_location)
            .await
            .map_err(|source| LaunchError::Store {
                location: tradeloom_core::redact_userinfo(&options.store_location).to_string(),
                source,
            })?;
        let simulator = Simulator::new(
            store.clone(),
            SimulatorOptions {
                data_dir: options.data_dir.clone(),
                max_concurrent_jobs: options.max_concurrent_jobs,
                base_dir: options.base_dir.clone(),
                outbound: options.outbound.clone(),
            },
        );
        if options.roles.api {
            let resumed = simulator.resume_interrupted().await?;
            if !resumed.is_empty() {
                tracing::info!(jobs = ?resumed, "resuming interrupted simulation jobs");
            }
        }
        let (queue, registry) = cluster_backends(options.redis.as_ref()).await?;
        let local = match &listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let public_url = options.public_url.clone().or_else(|| {
            local
                .filter(|a| !a.ip().is_unspecified())
                .map(|a| format!("http://{a}"))
        });
        let runtime =
            workflow_runtime(&options, store, queue, loops, simulator.clone(), public_url)?;
        let resumed_runs = runtime.start().await.map_err(LaunchError::Workflows)?;
        if resumed_runs > 0 {
            tracing::info!(runs = resumed_runs, "resumed unfinished workflow runs");
        }
        let scheduler = options.roles.coordinator.then(|| {
            Arc::new(
                Scheduler::new(runtime.store().clone(), runtime.clone())
                    .with_flow_limits(options.flow_limits)
                    .spawn(options.schedule_tick),
            )
        });
        let auth = options.auth.unwrap_or_else(|| {
            local.map_or(AuthMode::Required, |local| {
                AuthMode::default_for(local.ip())
            })
        });
        if let Some(local) = local {
            access_log::log_access(
                simulator.store().as_ref(),
                auth,
                local.ip(),
                &options.rate_limits,
            )
            .await;
        }
        let meta_health = MetaHealthSlot::default();
        // The registry this process registers in (Redis, or embedded the in-memory one that
        // holds this process alone), so that `processes:` in health.yaml is checked in-process.
        let monitor = Monitor::start(
            &options.data_dir,
            options.health_interval,
            simulator.store().clone(),
            Some(registry.clone()),
            Arc::new(ServeProcess::new(
                runtime.clone(),
                scheduler.clone(),
                options.roles.api,
            )),
            meta_health.clone(),
        )?;
        let registration = Registration::start(
            registry,
            runtime.clone(),
            &options.roles,
            local.map(|a| a.to_string()),
        )
        .await?;
        let state = AppState::new(simulator.clone())
            .with_auth(auth)
            .with_rate_limits(options.rate_limits)
            .with_runtime(runtime.clone())
            .with_meta_health(meta_health)
            .with_config_dir(options.config_dir.clone())
            .with_allowed_hosts(allowed_hosts(&options))
            .with_allowed_origins(options.allowed_origins.clone())
            .with_cluster(registration.view());
        let supervisor = match (&options.supervisor_executable, options.roles.api) {
            (Some(executable), true) => {
                process_supervisor(&options, &store_location, executable.clone()).await
            }
            _ => None,
        };
        let state = match &supervisor {
            Some(s) => state.with_process_supervisor(s.clone()),
            None => state,
        };
        let (state, bus_tasks) = match &options.redis {
            Some(redis) => {
                let (api, limits) = (options.roles.api, options.rate_limits);
                shared_through_redis(state, redis, &runtime, api, limits).await?
            }
            None => (state, Vec::new()),
        };
        tracing::info!(
            process = %registration.id(),
            roles = %options.roles.names().join(","),
            queue = if options.redis.is_some() { "redis" } else { "in-process" },
            "started"
        );
        Ok(Self {
            listener,
            local,
            state,
            simulator,
            runtime,
            scheduler,
            monitor,
            registration,
            drain_grace: options.drain_grace,
            bus_tasks,
            supervisor,
        })
    }

    /// The address the API answers on (`None` without the `api` role).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// This process's id in the cluster's registry.
    pub fn process_id(&self) -> &str {
        self.registration.id()
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, gives in-flight requests
    /// [`STOP_GRACE`] to finish, and hands back what is in flight.
    pub async fn serve_until_stopped(
        mut self,
        signals: &mut StopSignals,
    ) -> Result<(), LaunchError> {
        match self.listener.take() {
            Some(listener) => {
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let mut server = Box::pin(crate::serve(listener, self.state.clone(), async move {
                    let _ = stopped.await;
                }));
                let signal = tokio::select! {
                    r = &mut server => return r.map_err(LaunchError::Stopped),
                    signal = signals.recv() => signal,
                };
                tracing::info!(
                    signal,
                    "stopping: no new connections, in-flight requests finish"
                );
                self.registration.set_draining();
                let _ = stop.send(());
                match tokio::time::timeout(STOP_GRACE, &mut server).await {
                    Ok(r) => r.map_err(LaunchError::Stopped)?,
                    Err(_) => tracing::warn!(
                        grace_secs = STOP_GRACE.as_secs(),
                        "requests still open after the grace period are closed"
                    ),
                }
            }
            None => {
                let signal = signals.recv().await;
                tracing::info!(signal, "stopping: no new work is taken");
                self.registration.set_draining();
            }
        }
        // The workflow runtime's loops take no more work; what they hold finishes within the
        // grace period or goes back to the queue (unfinished runs resume at the next start or
        // on another process), simulation jobs of this process are marked interrupted (they
        // resume likewise), and the heartbeats and the registry entry go.
        if let Some(scheduler) = &self.scheduler {
            scheduler.abort();
        }
        // Supervised children get SIGTERM, then SIGKILL after the grace; the next start of
        // this data dir's supervisor starts them again (see `state/runtime_state.json`).
        if let Some(supervisor) = &self.supervisor {
            supervisor.shutdown(STOP_GRACE).await;
        }
        // Paper runs of this server stop gracefully: open orders cancelled, folders sealed.
        let late = self
            .runtime
            .engine_runs()
            .stop_all(std::time::Duration::from_secs(30))
            .await;
        if !late.is_empty() {
            tracing::warn!(runs = ?late, "paper runs had not stopped after 30 s; they stay `running` (resume them with `tradeloom run --resume ID`)");
        }
        let drained = self.runtime.drain(self.drain_grace).await;
        for job_id in self.simulator.running_jobs().await {
            let reason = "interrupted: serve was stopped; the job resumes at the next start";
            if let Err(e) = self.simulator.store().interrupt_job(&job_id, reason).await {
                tracing::warn!(job_id = %job_id, error = %e, "cannot mark the job interrupted");
            }
        }
        self.monitor.stop().await;
        for task in &self.bus_tasks {
            task.abort();
        }
        self.registration.stop().await;
        tracing::info!(
            finished_loops = drained.stopped,
            handed_back = drained.handed_back,
            "stopped"
        );
        Ok(())
    }
}

/// With Redis: the API's rate limits kept there (every `serve` on it spends the same budgets),
/// its `/ws` connections woken by commits of any process, and this process's commits announced
/// to the others. Returns the state and the event bus's tasks.
#[cfg(feature = "redis")]
async fn shared_through_redis(
    state: AppState,
    redis: &RedisSettings,
    runtime: &Arc<Runtime>,
    api: bool,
    rate_limits: RateLimits,
) -> Result<(AppState, Vec<tokio::task::JoinHandle<()>>), LaunchError> {
    let failed = |what: &'static str, message: String| LaunchError::RedisShared {
        location: tradeloom_core::redact_userinfo(&redis.url).to_string(),
        what,
        message,
    };
    let mut state = state;
    let mut tasks = Vec::new();
    let bus = crate::RedisEventBus::connect(&redis.url, &redis.prefix)
        .await
        .map_err(|e| failed("the /ws event bus", e.to_string()))?;
    if api {
        let limiter = crate::RateLimiter::redis(rate_limits, &redis.url, &redis.prefix)
            .await
            .map_err(|e| failed("rate limits", e.to_string()))?;
        state = state.with_rate_limiter(Arc::new(limiter));
        tasks.push(bus.spawn_wakeups(&state.event_hub().notifier()));
    }
    // Every committed batch of this process's workflow runtime is announced (the runtime's
    // notifier, not the hub the reader wakes: a wake-up never publishes again).
    let notify = runtime.notify();
    tasks.push(tokio::spawn(async move {
        loop {
            notify.notified().await;
            if let Err(e) = bus.publish(0).await {
                tracing::debug!(error = %e, "cannot announce a commit on the event bus");
            }
        }
    }));
    Ok((state, tasks))
}

#[cfg(not(feature = "redis"))]
async fn shared_through_redis(
    state: AppState,
    _: &RedisSettings,
    _: &Arc<Runtime>,
    _: bool,
    _: RateLimits,
) -> Result<(AppState, Vec<tokio::task::JoinHandle<()>>), LaunchError> {
    // Not reached: without the feature, the queue's connection already failed.
    Ok((state, Vec::new()))
}

/// The supervisor of `POST /runtime/processes`, its children told where the store and the
/// cluster's Redis are (a flag given to `serve` is not in their environment). `None` with a
/// warning when another process already supervises this data dir, or it cannot start.
async fn process_supervisor(
    options: &ServeOptions,
    store_location: &str,
    executable: PathBuf,
) -> Option<Arc<tradeloom_ops::supervisor::ProcessSupervisor>> {
    use tradeloom_ops::supervisor::{ProcessSupervisor, SupervisorOptions};
    let mut settings = SupervisorOptions::default();
    if store_location.starts_with("postgres") {
        settings
            .env
            .push(("TRADELOOM_DATABASE_URL".into(), store_location.to_string()));
    }
    if let Some(redis) = &options.redis {
        settings
            .env
            .push(("TRADELOOM_REDIS_URL".into(), redis.url.clone()));
        settings
            .env
            .push(("TRADELOOM_REDIS_PREFIX".into(), redis.prefix.clone()));
    }
    match ProcessSupervisor::start(&options.data_dir, executable, settings).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no process supervisor: /runtime/processes answers 503");
            None
        }
    }
}

/// The workflow queue and the process registry: in-process, or the cluster's on Redis.
async fn cluster_backends(
    redis: Option<&RedisSettings>,
) -> Result<(Arc<dyn tradeloom_queue::Queue>, Arc<dyn Registry>), LaunchError> {
    let Some(redis) = redis else {
        return Ok((
            Arc::new(tradeloom_queue::InMemoryQueue::new()),
            Arc::new(InMemoryRegistry::new()),
        ));
    };
    let failed = |source| LaunchError::Redis {
        location: tradeloom_core::redact_userinfo(&redis.url).to_string(),
        source,
    };
    redis_backends(redis).await.map_err(failed)
}

#[cfg(feature = "redis")]
async fn redis_backends(
    redis: &RedisSettings,
) -> Result<(Arc<dyn tradeloom_queue::Queue>, Arc<dyn Registry>), QueueError> {
    let queue = tradeloom_queue::RedisQueue::connect(
        &redis.url,
        &redis.prefix,
        tradeloom_queue::RedisQueueOptions::default(),
    )
    .await?;
    let registry = tradeloom_queue::RedisRegistry::connect(&redis.url, &redis.prefix).await?;
    Ok((Arc::new(queue), Arc::new(registry)))
}

#[cfg(not(feature = "redis"))]
async fn redis_backends(
    _: &RedisSettings,
) -> Result<(Arc<dyn tradeloom_queue::Queue>, Arc<dyn Registry>), QueueError> {
    Err(QueueError::Invalid {
        what: "Redis URL",
        detail: "this build of tradeloom-server has no Redis support (the `redis` feature)".into(),
    })
}

/// This process's entry in the cluster's registry, rewritten every
/// [`tradeloom_queue::cluster::HEARTBEAT_EVERY`] with its in-flight count, removed at the end.
struct Registration {
    registry: Arc<dyn Registry>,
    id: String,
    entry: Arc<std::sync::Mutex<ProcessEntry>>,
    beat: tokio::task::JoinHandle<()>,
}

impl Registration {
    async fn start(
        registry: Arc<dyn Registry>,
        runtime: Arc<Runtime>,
        roles: &Roles,
        addr: Option<String>,
    ) -> Result<Self, LaunchError> {
        let host = hostname();
        let now = chrono::Utc::now();
        let entry = ProcessEntry {
            id: ProcessEntry::new_id(&host),
            roles: roles.names(),
            pools: runtime.roles().pools.clone(),
            concurrency: runtime.workers_per_pool(),
            host,
            pid: std::process::id(),
            addr,
            started_at: now,
            heartbeat_at: now,
            in_flight: 0,
            state: "running".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        // The first write is checked: a cluster process that cannot register does not start.
        registry
            .heartbeat(&entry)
            .await
            .map_err(|source| LaunchError::Redis {
                location: "the process registry".into(),
                source,
            })?;
        let id = entry.id.clone();
        let entry = Arc::new(std::sync::Mutex::new(entry));
        let beat = tokio::spawn({
            let (registry, entry) = (registry.clone(), entry.clone());
            async move {
                loop {
                    tokio::time::sleep(tradeloom_queue::cluster::HEARTBEAT_EVERY).await;
                    let current = {
                        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
                        e.heartbeat_at = chrono::Utc::now();
                        e.in_flight = runtime.in_flight();
                        e.clone()
                    };
                    if let Err(e) = registry.heartbeat(&current).await {
                        tracing::warn!(error = %e, "cannot write this process's registry entry");
                    }
                }
            }
        });
        Ok(Self {
            registry,
            id,
            entry,
            beat,
        })
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn view(&self) -> ClusterView {
        ClusterView {
            registry: self.registry.clone(),
            self_id: self.id().to_string(),
        }
    }

    /// Marks the entry `draining` at once (a stop signal came).
    fn set_draining(&self) {
        let current = {
            let mut e = self.entry.lock().unwrap_or_else(|p| p.into_inner());
            e.state = "draining".into();
            e.clone()
        };
        let registry = self.registry.clone();
        tokio::spawn(async move {
            let _ = registry.heartbeat(&current).await;
        });
    }

    /// Stops the heartbeat and removes the entry.
    async fn stop(self) {
        self.beat.abort();
        let _ = self.beat.await;
        if let Err(e) = self.registry.remove(&self.id).await {
            tracing::warn!(error = %e, "cannot remove this process's registry entry; it expires on its own");
        }
    }
}

/// `--allowed-host` names, and the host of `--public-url`: approvers' browsers come by that
/// name.
fn allowed_hosts(options: &ServeOptions) -> Vec<String> {
    let mut hosts = options.allowed_hosts.clone();
    if let Some(host) = options
        .public_url
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
    {
        hosts.push(host);
    }
    hosts
}

/// The host name (`HOSTNAME`, else `/etc/hostname`, else `localhost`).
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The workflow runtime of this process over `queue`, running the loops of `loops`.
fn workflow_runtime(
    options: &ServeOptions,
    store: Arc<dyn Store>,
    queue: Arc<dyn tradeloom_queue::Queue>,
    loops: LoopRoles,
    simulator: Arc<Simulator>,
    public_url: Option<String>,
) -> Result<Arc<Runtime>, LaunchError> {
    let mut config = RuntimeConfig::new(options.data_dir.clone());
    config.base_dir = options.base_dir.clone();
    config.config_dir = options.config_dir.clone();
    config.workers_per_pool = options.workflow_workers.max(1);
    config.flow_limits = options.flow_limits;
    if options.agent_concurrency > 0 {
        config
            .pool_limits
            .insert("agent".into(), options.agent_concurrency);
    }
    config.ssrf = options.ssrf.clone();
    config.secrets = options.outbound.secrets.clone();
    config.roles = loops;
    config.public_url = public_url;
    Runtime::new(store, queue, config, Some(simulator)).map_err(LaunchError::Workflows)
}
