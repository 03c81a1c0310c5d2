//! `tradeloom serve` (flags → [`tradeloom_server::launch::ServeOptions`]) and `tradeloom
//! mock-llm`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tradeloom_net::{Outbound, SecretEnv, SsrfPolicy};
use tradeloom_server::launch::{ServeOptions, Server, StopSignals};

use crate::access::ServeAccess;
use crate::flow::FlowLimitOptions;

/// The flags of `tradeloom serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The address to listen on (default 127.0.0.1:8080, or `API_HOST`:`API_PORT` when either
    /// is set).
    #[arg(long, env = "TRADELOOM_ADDR")]
    addr: Option<String>,
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
    /// Concurrent workers per node type.
    #[arg(long, env = "TRADELOOM_WORKFLOW_WORKERS", default_value_t = 8)]
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
    fn options(&self, data_dir: &Path, database_url: Option<&str>) -> Result<ServeOptions> {
        let outbound = self.workflows.outbound()?;
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
            workflow_workers: self.workflows.workflow_workers,
            agent_concurrency: self.workflows.agent_concurrency,
            flow_limits: self.workflows.limits.limits(),
            schedule_tick: Duration::from_secs(self.workflows.schedule_tick_secs),
            health_interval: self.health_interval,
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

/// `tradeloom serve`: the REST API until SIGTERM or SIGINT. Interrupted jobs of an earlier
/// process resume first.
pub fn serve(data_dir: &Path, database_url: Option<&str>, args: &ServeArgs) -> Result<ExitCode> {
    tradeloom_llm::install_crypto_provider();
    crate::store::runtime()?.block_on(async {
        // First: a stop signal during start-up is then handled once serving, not fatal.
        let mut signals = StopSignals::install()?;
        let options = args.options(data_dir, database_url)?;
        let server =
            Server::start(options, bind(&listen_addr(args.addr.as_deref())).await?).await?;
        let local = server.local_addr();
        println!("tradeloom API listening on http://{local} (docs: http://{local}/docs)");
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
