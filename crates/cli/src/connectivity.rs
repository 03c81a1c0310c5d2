//! `tradeloom connectivity check`, and the connectivity files `tradeloom run` and `tradeloom
//! simulate` write into their run and job folders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use tradeloom_net::connectivity::{
    PROBE_FILE, ProbeReport, ProbeResult, Provider, READINESS_FILE, Readiness, api_provider,
    env_is_set, now_rfc3339, probe_blocking, readiness, render_text,
};

/// `tradeloom connectivity` subcommands.
#[derive(clap::Subcommand)]
pub enum ConnectivityCommand {
    /// Which environment variables the providers of a run spec or simulation config need and
    /// whether they are set (never their values); `--probe` also contacts the endpoints on this
    /// host (loopback only, one read-only GET each). Exit 0 ready, 1 not ready or a probe
    /// failed, 2 a bad file.
    Check(CheckArgs),
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// A run spec (YAML) or a simulation config (YAML or JSON).
    pub file: PathBuf,
    /// Also probe the endpoints (LLM `GET {base_url}/models`, the API's `GET /health`).
    #[arg(long)]
    pub probe: bool,
    /// Also check the tradeloom API at this base URL (probed at `/health` with `--probe`).
    #[arg(long)]
    pub api: Option<String>,
    /// Write connectivity_readiness.json (and connectivity_probe.json with --probe) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object `{"readiness", "probe"}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(
    command: ConnectivityCommand,
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<ExitCode> {
    match command {
        ConnectivityCommand::Check(args) => check(&args, data_dir, database_url),
    }
}

/// A simulation model that names a registered agent (`agent: analyst@3`) whose endpoint is not
/// known here: it is not probed, and says why.
pub struct UnresolvedAgent {
    pub model: String,
    pub agent: String,
    pub reason: String,
}

impl UnresolvedAgent {
    /// The probe's record of it: skipped, with the reason.
    pub fn skipped(&self) -> ProbeResult {
        ProbeResult {
            name: self.model.clone(),
            url: format!("agent:{}", self.agent),
            ok: false,
            status: None,
            latency_ms: None,
            error: Some(format!(
                "not probed: model `{}` names agent `{}`, whose endpoint is not known here ({})",
                self.model, self.agent, self.reason
            )),
            skipped: true,
        }
    }
}

/// The providers of a simulation config with its models' `agent` references resolved from the
/// store at `data_dir`/`database_url` (as a job resolves them when it is created), when that
/// store exists. A model whose agent cannot be resolved here has no endpoint and is returned as
/// unresolved, with the reason.
pub fn config_providers(
    config: &tradeloom_agents::ResolvedConfig,
    data_dir: &Path,
    database_url: Option<&str>,
) -> (Vec<Provider>, Vec<UnresolvedAgent>) {
    let naming = |m: &tradeloom_agents::ModelConfig| m.agent.is_some();
    if !config.config.models.iter().any(naming) {
        return (config.connectivity_providers(), Vec::new());
    }
    let (resolved, unresolved) = match resolve_agents(config, data_dir, database_url) {
        Ok(done) => done,
        Err(reason) => {
            let unresolved = config
                .config
                .models
                .iter()
                .filter_map(|m| {
                    m.agent.as_ref().map(|agent| UnresolvedAgent {
                        model: m.name.clone(),
                        agent: agent.clone(),
                        reason: reason.clone(),
                    })
                })
                .collect();
            (config.clone(), unresolved)
        }
    };
    (resolved.connectivity_providers(), unresolved)
}

/// `config` with each model's agent resolved from the store, which must exist (a check creates
/// none), and the models whose agent the store does not resolve; `Err` when there is no store
/// to ask.
fn resolve_agents(
    config: &tradeloom_agents::ResolvedConfig,
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<(tradeloom_agents::ResolvedConfig, Vec<UnresolvedAgent>), String> {
    let location = crate::store::location(data_dir, database_url);
    let shown = tradeloom_core::redact_userinfo(&location);
    match tradeloom_store::Location::parse(&location) {
        Ok(tradeloom_store::Location::Sqlite(path)) if !path.is_file() => {
            return Err(format!(
                "no store at {shown}; give the --data-dir or --database-url of the server that \
                 registered it"
            ));
        }
        Ok(_) => {}
        Err(e) => return Err(e.to_string()),
    }
    let rt = crate::store::runtime().map_err(|e| format!("{e:#}"))?;
    rt.block_on(async {
        let store = crate::store::open(data_dir, database_url)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let mut resolved = config.clone();
        let mut unresolved = Vec::new();
        // One model at a time, so that one unknown agent leaves the others resolved.
        for (i, model) in config.config.models.iter().enumerate() {
            let Some(agent) = &model.agent else { continue };
            let mut one = config.clone();
            one.config.models = vec![model.clone()];
            match tradeloom_agents::resolve_agents(&one, &*store).await {
                Ok(r) => {
                    if let (Some(slot), Some(m)) = (
                        resolved.config.models.get_mut(i),
                        r.config.models.into_iter().next(),
                    ) {
                        *slot = m;
                    }
                }
                Err(e) => unresolved.push(UnresolvedAgent {
                    model: model.name.clone(),
                    agent: agent.clone(),
                    reason: match e {
                        tradeloom_agents::AgentError::Config { message, .. } => {
                            format!("{message} (store {shown})")
                        }
                        other => other.to_string(),
                    },
                }),
            }
        }
        Ok((resolved, unresolved))
    })
}

/// The providers of a run spec or simulation config file (with the agents its models name
/// resolved from the store when it can be); `Err` is the message of a bad file.
fn providers_of(
    file: &Path,
    data_dir: &Path,
    database_url: Option<&str>,
) -> Result<(Vec<Provider>, Vec<UnresolvedAgent>), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read the file: {e}", file.display()))?;
    let value: serde_json::Value = yaml_serde::from_str(&text).map_err(|e| {
        let at = e.location().map(|l| (l.line(), l.column()));
        let (place, message) =
            tradeloom_core::locate_error(&file.display().to_string(), e.to_string(), at);
        format!("{place}: {message}")
    })?;
    let has = |key: &str| value.get(key).is_some();
    if has("models") {
        let config = tradeloom_agents::load_config(file).map_err(|e| e.to_string())?;
        Ok(config_providers(&config, data_dir, database_url))
    } else if has("strategy") || has("instruments") {
        let spec = tradeloom_runs::load_spec(file).map_err(|e| e.to_string())?;
        Ok((spec.spec.connectivity_providers(), Vec::new()))
    } else {
        Err(format!(
            "{}: neither a run spec (it has no `instruments` or `strategy`) nor a simulation \
             config (it has no `models`)",
            file.display()
        ))
    }
}

/// Readiness of `providers` from this process's environment, and the probe of their endpoints.
pub fn assess(providers: &[Provider]) -> Result<(Readiness, ProbeReport)> {
    tradeloom_net::connectivity::assess(providers).context("cannot start the probe's runtime")
}

/// Writes `value` as pretty JSON (and a final newline) to `dir/name`, atomically.
fn write_json<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    tradeloom_safety::write_atomic(&path, &bytes, tradeloom_safety::Durability::Renamed)?;
    Ok(path)
}

/// Writes both files into `dir`; a failure is logged, never fatal to the job that asked.
pub fn record(dir: &Path, readiness: &Readiness, probe: &ProbeReport) {
    for result in [
        write_json(dir, READINESS_FILE, readiness),
        write_json(dir, PROBE_FILE, probe),
    ] {
        if let Err(e) = result {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write a connectivity file");
        }
    }
    if !readiness.ready {
        let missing: Vec<String> = readiness
            .missing()
            .iter()
            .map(|(p, v)| format!("{v} ({p})"))
            .collect();
        tracing::warn!(missing = %missing.join(", "), "required environment variables are not set");
    }
}

fn check(args: &CheckArgs, data_dir: &Path, database_url: Option<&str>) -> Result<ExitCode> {
    let (mut providers, unresolved) = match providers_of(&args.file, data_dir, database_url) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    for u in &unresolved {
        eprintln!(
            "note: model `{}` names agent `{}`; its endpoint and key variable are not known here \
             ({}); not checked",
            u.model, u.agent, u.reason
        );
    }
    if let Some(api) = &args.api {
        providers.push(api_provider(api));
    }
    let readiness = readiness(&providers, now_rfc3339(), env_is_set);
    let probe_report = if args.probe {
        let mut report = probe_blocking(&providers).context("cannot start the probe's runtime")?;
        report
            .probes
            .extend(unresolved.iter().map(UnresolvedAgent::skipped));
        Some(report)
    } else {
        None
    };
    if let Some(dir) = &args.out {
        write_json(dir, READINESS_FILE, &readiness)
            .with_context(|| format!("--out {}", dir.display()))?;
        if let Some(report) = &probe_report {
            write_json(dir, PROBE_FILE, report)
                .with_context(|| format!("--out {}", dir.display()))?;
        }
    }
    let probe_failed = probe_report
        .as_ref()
        .is_some_and(|r| r.failures().next().is_some());
    if args.json {
        println!("{}", json!({"readiness": readiness, "probe": probe_report}));
    } else {
        print!("{}", render_text(&readiness, probe_report.as_ref()));
    }
    if !readiness.ready {
        let missing: Vec<String> = readiness
            .missing()
            .iter()
            .map(|(p, v)| format!("{v} (needed by {p})"))
            .collect();
        eprintln!(
            "error: not ready: required environment variables not set: {}",
            missing.join(", ")
        );
    }
    if probe_failed {
        eprintln!("error: a probed endpoint did not answer with 2xx");
    }
    Ok(if readiness.ready && !probe_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
