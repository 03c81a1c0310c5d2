//! `tradeloom serve` (flags → [`tradeloom_server::launch::ServeOptions`]) and `tradeloom
//! mock-llm`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tradeloom_net::{Outbound, SecretEnv, SsrfPolicy};
use tradeloom_server::launch::{RedisSettings, Roles, ServeOptions, Server, StopSignals};

use crate::access::ServeAccess;
use crate::flow::FlowLimitOptions;

/// The flags of `tradeloom serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The address to listen on (default 127.0.0.1:8080, or `API_HOST`:`API_PORT` when either
    /// is set).
    #[arg(long, env = "TRADELOOM_ADDR")]
    addr: Option<String>,
    /// The URL approvers' browsers reach this API at (e.g. `https://tradeloom.example.com`,
    /// behind a proxy): the base of the approval links `hitl` nodes send to chat. Default: the
    /// address listened on. Its host is accepted in `Host` like an --allowed-host.
    #[arg(long, env = "TRADELOOM_PUBLIC_URL")]
    public_url: Option<String>,
    /// Simulation jobs run at once; a trigger beyond it answers 409.
    #[arg(long, env = "MAX_CONCURRENT_JOBS", default_value_t = 1)]
    max_concurrent_jobs: usize,
    #[command(flatten)]
    access: ServeAccess,
    #[command(flatten)]
    workflows: WorkflowOptions,
    /// Time between the in-process meta health checks (`GET /health/meta`).
    #[arg(long, env = "TRADELOOM_HEALTH_INTERVAL", default_value = "10s",
          value_parser = tradeloom_ops::health::parse_duration)]
    health_interval: Duration,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// A command with fixed roles: its name and its roles (`("worker", "worker")`).
pub type FixedRoles = (&'static str, &'static str);

/// How a process joins a cluster: the shared Redis, its roles and pools, its stop.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The roles of this process, comma-separated: `api` (HTTP API, simulation jobs, engine
    /// runs), `coordinator` (workflow signals, approval timers, schedules), `worker` (workflow
    /// nodes). Default: all three. Fewer need --redis-url.
    #[arg(long, env = "TRADELOOM_ROLES")]
    roles: Option<String>,
    /// The Redis of a cluster (`redis://host:port[/db]`): the workflow queue and the process
    /// registry live there, shared by every process with the same URL and --redis-prefix.
    /// Without it the queue is in-process and every role runs here.
    #[arg(long, env = "TRADELOOM_REDIS_URL")]
    redis_url: Option<String>,
    /// The key prefix of the cluster's keys in Redis.
    #[arg(long, env = "TRADELOOM_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    redis_prefix: String,
    /// With the worker role: run nodes of this pool only (transform, wait, http, agent,
    /// simulate, backtest, paper; sweep: the runs of parameter sweeps). Repeatable or
    /// comma-separated; default every pool.
    #[arg(long = "pool", env = "TRADELOOM_POOLS", value_delimiter = ',')]
    pools: Vec<String>,
    /// At a stop signal (SIGTERM, SIGINT), how long in-flight workflow work may run on before
    /// it is handed back to the queue for another process.
    #[arg(long, env = "TRADELOOM_DRAIN_GRACE", default_value = "30s",
          value_parser = tradeloom_ops::health::parse_duration)]
    drain_grace: Duration,
}

impl ClusterArgs {
    /// The roles: `--roles`, or those of `fixed` (the command and its roles) for `up`,
    /// `coordinator` and `worker`.
    fn roles(&self, fixed: Option<FixedRoles>) -> Result<Roles> {
        let mut roles = match (fixed, &self.roles) {
            (Some((command, roles)), Some(_)) => anyhow::bail!(
                "--roles: `tradeloom {command}` runs the roles {roles}; use `tradeloom serve --roles …` to choose roles"
            ),
            (Some((_, roles)), None) => Roles::parse(roles),
            (None, Some(list)) => Roles::parse(list),
            (None, None) => Ok(Roles::all()),
        }
        .map_err(|e| anyhow::anyhow!("--roles: {e}"))?;
        let pools: Vec<String> = trimmed(&self.pools).map(str::to_string).collect();
        if !pools.is_empty() {
            if !roles.worker {
                anyhow::bail!("--pool: only a process with the worker role runs pools");
            }
            tradeloom_orchestrator::runtime::LoopRoles::workers(&pools)
                .map_err(|e| anyhow::anyhow!("--pool: {e}"))?;
        }
        roles.pools = pools;
        Ok(roles)
    }

    fn redis(&self) -> Result<Option<RedisSettings>> {
        redis_settings(self.redis_url.as_deref(), &self.redis_prefix)
    }
}

/// The default of `--redis-prefix` (env `TRADELOOM_REDIS_PREFIX`) of every command that joins
/// or watches a cluster.
pub const DEFAULT_REDIS_PREFIX: &str = "tradeloom:";

/// `--redis-url` and `--redis-prefix` checked; `None` without a URL (or an empty one).
pub fn redis_settings(url: Option<&str>, prefix: &str) -> Result<Option<RedisSettings>> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
    {
        anyhow::bail!(
            "--redis-url {}: a Redis URL starts with redis:// (e.g. redis://127.0.0.1:6379)",
            tradeloom_core::redact_userinfo(url)
        );
    }
    if prefix.is_empty() || prefix.chars().any(char::is_whitespace) {
        anyhow::bail!("--redis-prefix: give a non-empty prefix without spaces, e.g. `tradeloom:`");
    }
    Ok(Some(RedisSettings {
        url: url.to_string(),
        prefix: prefix.to_string(),
    }))
}

/// `serve` settings of the workflow runtime.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkflowOptions {
    /// Let outbound requests reach this host, `host:port` or CIDR although the SSRF guard
    /// blocks it (e.g. `127.0.0.1:8089` for a local LLM, `127.0.0.1` for a local webhook
    /// receiver): `http` nodes, agent and simulation LLM endpoints and health probes all go
    /// through the guard. Repeatable or comma-separated.
    #[arg(
        long = "http-allow",
        env = "TRADELOOM_HTTP_ALLOW",
        value_delimiter = ','
    )]
    pub http_allow: Vec<String>,
    /// Refuse URLs whose path starts with this (whole segments, on every host, allowed ones
    /// included), in addition to the cloud metadata paths and `/.env`, `/.git` refused by
    /// default; e.g. `/admin`. Repeatable or comma-separated.
    #[arg(
        long = "http-deny-path",
        env = "TRADELOOM_HTTP_DENY_PATH",
        value_delimiter = ','
    )]
    pub http_deny_path: Vec<String>,
    /// An environment variable API callers and workflows may name as a secret's source (an
    /// agent's or simulation model's `api_key_env`, an http node's secret header). Names
    /// starting with `TRADELOOM_LLM_KEY_` or `TRADELOOM_SECRET_` are allowed without being
    /// listed; no other variable of the server's environment can be named. Repeatable or
    /// comma-separated.
    // The variable for this flag avoids both prefixes, or workflows could name it.
    #[arg(
        long = "llm-key-env",
        env = "TRADELOOM_ALLOW_SECRET_ENV",
        value_delimiter = ','
    )]
    pub llm_key_env: Vec<String>,
    /// Concurrent workers per node type (`--concurrency` is the same flag).
    #[arg(
        long,
        alias = "concurrency",
        env = "TRADELOOM_WORKFLOW_WORKERS",
        default_value_t = 8
    )]
    pub workflow_workers: usize,
    /// At most this many `agent` nodes run at once (0: no limit beyond the workers).
    #[arg(long, env = "TRADELOOM_AGENT_CONCURRENCY", default_value_t = 0)]
    pub agent_concurrency: usize,
    /// How often workflow schedules are checked, in seconds (1–30).
    #[arg(long, env = "TRADELOOM_SCHEDULE_TICK_SECS", default_value_t = 15)]
    pub schedule_tick_secs: u64,
    #[command(flatten)]
    pub limits: FlowLimitOptions,
}

impl WorkflowOptions {
    /// The SSRF policy of `--http-allow` and `--http-deny-path`.
    fn ssrf_policy(&self) -> Result<SsrfPolicy> {
        let mut policy = SsrfPolicy::default();
        for entry in trimmed(&self.http_allow) {
            if entry.contains('/') {
                let cidr = entry
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--http-allow {entry}: {e}"))?;
                policy.allow_cidrs.push(cidr);
            } else {
                policy.allow_hosts.push(entry.to_string());
            }
        }
        for path in trimmed(&self.http_deny_path) {
            if !path.starts_with('/') {
                anyhow::bail!("--http-deny-path {path}: a path starts with `/`, e.g. `/admin`");
            }
            policy.deny_paths.push(path.to_string());
        }
        policy
            .validate()
            .map_err(|e| anyhow::anyhow!("--http-allow: {e}"))?;
        Ok(policy)
    }

    /// The guarded client and key allow-list of `serve`, shared by the simulator, the workflow
    /// runtime and the health probes.
    fn outbound(&self) -> Result<Outbound> {
        for name in &self.llm_key_env {
            let name = name.trim();
            if !tradeloom_flow::node_config::is_env_name(name) {
                anyhow::bail!(
                    "--llm-key-env: `{name}` is not an environment variable name (A-Z, 0-9, `_`; not starting with a digit)"
                );
            }
        }
        Outbound::new(
            self.ssrf_policy()?,
            SecretEnv::new(self.llm_key_env.iter().cloned()),
        )
        .map_err(|e| anyhow::anyhow!("--http-allow: {e}"))
    }
}

/// The entries of a repeatable flag, trimmed, without empty ones.
fn trimmed(values: &[String]) -> impl Iterator<Item = &str> {
    values.iter().map(|v| v.trim()).filter(|v| !v.is_empty())
}

impl ServeArgs {
    /// `--public-url`, checked: `http(s)://host[:port][/path]`, without a trailing `/`.
    fn public_url(&self) -> Result<Option<String>> {
        let Some(text) = self
            .public_url
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Ok(None);
        };
        let bad = |why: &str| {
            anyhow::anyhow!(
                "--public-url {text}: {why}; give the URL approvers' browsers reach this server at, e.g. https://tradeloom.example.com"
            )
        };
        let url = reqwest::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("there is no host"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(bad("a base URL has no query, fragment or user name"));
        }
        Ok(Some(text.trim_end_matches('/').to_string()))
    }

    fn options(
        &self,
        data_dir: &Path,
        database_url: Option<&str>,
        fixed_role: Option<FixedRoles>,
    ) -> Result<ServeOptions> {
        let outbound = self.workflows.outbound()?;
        // Roles without Redis are refused by the launch, which owns that rule.
        let roles = self.cluster.roles(fixed_role)?;
        let redis = self.cluster.redis()?;
        Ok(ServeOptions {
            data_dir: data_dir.to_path_buf(),
            store_location: crate::store::location(data_dir, database_url),
            base_dir: std::env::current_dir().context("no current directory")?,
            max_concurrent_jobs: self.max_concurrent_jobs,
            outbound,
            ssrf: self.workflows.ssrf_policy()?,
            auth: self.access.auth,
            rate_limits: self.access.rate_limits(),
            config_dir: self.access.config_dir()?,
            allowed_hosts: self.access.allowed_hosts(),
            allowed_origins: self.access.allow_origins()?,
            public_url: self.public_url()?,
            workflow_workers: self.workflows.workflow_workers,
            agent_concurrency: self.workflows.agent_concurrency,
            flow_limits: self.workflows.limits.limits(),
            schedule_tick: Duration::from_secs(self.workflows.schedule_tick_secs),
            health_interval: self.health_interval,
            roles,
            redis,
            drain_grace: self.cluster.drain_grace,
            supervisor_executable: std::env::current_exe().ok(),
        })
    }
}

/// `--addr`/`TRADELOOM_ADDR`, else `API_HOST`:`API_PORT` (the names reference document 002
/// uses), each defaulting to 127.0.0.1 and 8080.
fn listen_addr(flag: Option<&str>) -> String {
    if let Some(addr) = flag {
        return addr.to_string();
    }
    let host = std::env::var("API_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("API_PORT").unwrap_or_else(|_| "8080".into());
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--addr {addr}: cannot listen there"))
}

/// `tradeloom serve` (and `up`, `coordinator`, `worker`, which are `serve` with fixed roles):
/// the roles of this process until SIGTERM or SIGINT. Interrupted jobs of an earlier process
/// resume first.
pub fn serve(
    data_dir: &Path,
    database_url: Option<&str>,
    args: &ServeArgs,
    fixed_role: Option<FixedRoles>,
) -> Result<ExitCode> {
    tradeloom_llm::install_crypto_provider();
    crate::store::runtime()?.block_on(async {
        // First: a stop signal during start-up is then handled once serving, not fatal.
        let mut signals = StopSignals::install()?;
        let options = args.options(data_dir, database_url, fixed_role)?;
        let listener = match options.roles.api {
            true => Some(bind(&listen_addr(args.addr.as_deref())).await?),
            false => None,
        };
        let roles = options.roles.names().join(",");
        let server = Server::start(options, listener).await?;
        match server.local_addr() {
            Some(local) => {
                println!("tradeloom API listening on http://{local} (docs: http://{local}/docs)")
            }
            None => println!("tradeloom {roles} running as {}", server.process_id()),
        }
        std::io::stdout().flush()?;
        server.serve_until_stopped(&mut signals).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `tradeloom mock-llm`: the deterministic OpenAI-compatible test server.
pub fn mock_llm(addr: &str) -> Result<ExitCode> {
    crate::store::runtime()?.block_on(async {
        let listener = bind(addr).await?;
        let local = listener.local_addr()?;
        let mut signals = StopSignals::install()?;
        println!("mock-llm listening on http://{local}/v1");
        std::io::stdout().flush()?;
        tokio::select! {
            r = tradeloom_mock_llm::serve_mock(listener) => r?,
            _ = signals.recv() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}
