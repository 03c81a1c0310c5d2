//! A whole simulation job, timed.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tradeloom_agents::{Simulator, SimulatorOptions, config_from_value, run_to_end};
use tradeloom_net::{Outbound, SecretEnv, SsrfPolicy};

use super::{BenchError, setup};

/// One job's figures.
pub struct JobFigures {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Model-days run (completed or failed).
    pub model_days: u64,
    pub failed: u64,
    pub seconds: f64,
    /// CPU seconds this process spent meanwhile (every thread: the simulator, the in-process
    /// mock-llm and, on SQLite, the database); a PostgreSQL server's own CPU is not in it.
    pub cpu_seconds: f64,
}

impl JobFigures {
    /// Model-days per second.
    pub fn rate(&self) -> f64 {
        self.model_days as f64 / self.seconds.max(1e-9)
    }

    /// CPU milliseconds of this process per model-day.
    pub fn cpu_ms_per_model_day(&self) -> f64 {
        self.cpu_seconds * 1e3 / (self.model_days.max(1) as f64)
    }
}

/// Runs the simulation `config` (JSON, paths relative to `data_dir`) to its end on the store at
/// `location`, its models' endpoints on loopback; returns its figures and the simulator (with
/// the job's results in its store). `cpu_seconds` reads this process's CPU time so far.
pub async fn timed_job(
    backend: &'static str,
    location: &str,
    data_dir: &Path,
    config: &serde_json::Value,
    cpu_seconds: fn() -> f64,
) -> Result<(JobFigures, Arc<Simulator>), BenchError> {
    let store = tradeloom_store::open_store(location)
        .await
        .map_err(|source| BenchError::Open {
            location: location.to_string(),
            source,
        })?;
    let outbound = Outbound::new(
        SsrfPolicy {
            allow_hosts: vec!["127.0.0.1".into()],
            ..SsrfPolicy::default()
        },
        SecretEnv::default(),
    )
    .map_err(setup)?;
    let sim = Simulator::new(
        store,
        SimulatorOptions {
            data_dir: data_dir.to_path_buf(),
            max_concurrent_jobs: 1,
            base_dir: data_dir.to_path_buf(),
            outbound,
        },
    );
    let resolved = config_from_value(config, data_dir)?;
    let (started, cpu_started) = (Instant::now(), cpu_seconds());
    let (_, job) = run_to_end(&sim, &resolved).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu_started;
    let progress = sim.store().job_report(&job.id).await?.progress;
    let figures = JobFigures {
        backend,
        model_days: progress.completed + progress.failed,
        failed: progress.failed,
        seconds,
        cpu_seconds,
    };
    Ok((figures, sim))
}
