//! The wiring of `tradeloom serve`: the store, the simulator (resuming interrupted jobs), the
//! workflow runtime over an in-process queue, the schedule loop, the meta health monitor and
//! the API state, served until a stop signal, then handed back cleanly (unfinished runs and
//! jobs resume at the next start, heartbeats are removed).
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
use tradeloom_orchestrator::schedule::Scheduler;
use tradeloom_orchestrator::{OrchestratorError, Runtime, RuntimeConfig};
use tradeloom_store::{Store, StoreError};

use crate::{AppState, AuthMode, MetaHealthSlot, RateLimits};

pub use batch::{Batch, BatchOutcome, outbound_of_config};
pub use process::{SERVE_ROLES, ServeProcess};
pub use signals::StopSignals;

/// How long in-flight requests get to finish after a stop signal (open WebSockets would hold a
/// graceful shutdown forever).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

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
    /// Concurrent workers per node type (at least 1 is used).
    pub workflow_workers: usize,
    /// At most this many `agent` nodes at once (0: no limit beyond the workers).
    pub agent_concurrency: usize,
    pub flow_limits: FlowLimits,
    /// How often workflow schedules are checked.
    pub schedule_tick: Duration,
    /// Time between the in-process meta health checks.
    pub health_interval: Duration,
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
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A started `serve`: every part running, the listener bound but not yet answering.
pub struct Server {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    state: AppState,
    simulator: Arc<Simulator>,
    runtime: Arc<Runtime>,
    scheduler: Arc<tokio::task::JoinHandle<()>>,
    monitor: Monitor,
}

impl Server {
    /// Opens the store, resumes interrupted simulation jobs and unfinished workflow runs,
    /// starts the schedule loop and the health monitor, and logs how the API is guarded.
    pub async fn start(
        options: ServeOptions,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, LaunchError> {
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
        let resumed = simulator.resume_interrupted().await?;
        if !resumed.is_empty() {
            tracing::info!(jobs = ?resumed, "resuming interrupted simulation jobs");
        }
        let runtime = workflow_runtime(&options, store, simulator.clone())?;
        let resumed_runs = runtime.start().await.map_err(LaunchError::Workflows)?;
        if resumed_runs > 0 {
            tracing::info!(runs = resumed_runs, "resumed unfinished workflow runs");
        }
        let scheduler = Scheduler::new(runtime.store().clone(), runtime.clone())
            .with_flow_limits(options.flow_limits)
            .spawn(options.schedule_tick);
        let scheduler = Arc::new(scheduler);
        let local = listener.local_addr()?;
        let auth = options
            .auth
            .unwrap_or_else(|| AuthMode::default_for(local.ip()));
        access_log::log_access(
            simulator.store().as_ref(),
            auth,
            local.ip(),
            &options.rate_limits,
        )
        .await;
        let meta_health = MetaHealthSlot::default();
        let monitor = Monitor::start(
            &options.data_dir,
            options.health_interval,
            simulator.store().clone(),
            Arc::new(ServeProcess::new(runtime.clone(), scheduler.clone())),
            meta_health.clone(),
        )?;
        let state = AppState::new(simulator.clone())
            .with_auth(auth)
            .with_rate_limits(options.rate_limits)
            .with_runtime(runtime.clone())
            .with_meta_health(meta_health)
            .with_config_dir(options.config_dir)
            .with_allowed_hosts(options.allowed_hosts)
            .with_allowed_origins(options.allowed_origins);
        Ok(Self {
            listener,
            local,
            state,
            simulator,
            runtime,
            scheduler,
            monitor,
        })
    }

    /// The address the API answers on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, gives in-flight requests
    /// [`STOP_GRACE`] to finish, and hands back what is in flight.
    pub async fn serve_until_stopped(self, signals: &mut StopSignals) -> Result<(), LaunchError> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut server = Box::pin(crate::serve(self.listener, self.state, async move {
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
        let _ = stop.send(());
        match tokio::time::timeout(STOP_GRACE, &mut server).await {
            Ok(r) => r.map_err(LaunchError::Stopped)?,
            Err(_) => tracing::warn!(
                grace_secs = STOP_GRACE.as_secs(),
                "requests still open after the grace period are closed"
            ),
        }
        // The workflow runtime's loops stop (unfinished runs resume at the next start),
        // simulation jobs of this process are marked interrupted (they resume likewise), and
        // the heartbeats go.
        self.scheduler.abort();
        // Paper runs of this server stop gracefully: open orders cancelled, folders sealed.
        let late = self
            .runtime
            .engine_runs()
            .stop_all(std::time::Duration::from_secs(30))
            .await;
        if !late.is_empty() {
            tracing::warn!(runs = ?late, "paper runs had not stopped after 30 s; they stay `running` (resume them with `tradeloom run --resume ID`)");
        }
        self.runtime.shutdown().await;
        for job_id in self.simulator.running_jobs().await {
            let reason = "interrupted: serve was stopped; the job resumes at the next start";
            if let Err(e) = self.simulator.store().interrupt_job(&job_id, reason).await {
                tracing::warn!(job_id = %job_id, error = %e, "cannot mark the job interrupted");
            }
        }
        self.monitor.stop().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The workflow runtime `serve` runs, over an in-process queue.
fn workflow_runtime(
    options: &ServeOptions,
    store: Arc<dyn Store>,
    simulator: Arc<Simulator>,
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
    let queue: Arc<dyn tradeloom_queue::Queue> = Arc::new(tradeloom_queue::InMemoryQueue::new());
    Runtime::new(store, queue, config, Some(simulator)).map_err(LaunchError::Workflows)
}
