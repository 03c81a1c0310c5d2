//! `tradeloom simulate CONFIG`: one simulation job run to its end in this process, the batch
//! mode of the job API, with the store and the leaderboard the API would use.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast;
use tradeloom_agents::{ResolvedConfig, SimEvent, Simulator, SimulatorOptions, TriggerOutcome};
use tradeloom_net::{Outbound, SecretEnv, SsrfPolicy};
use tradeloom_store::{Job, JobReport, Store};

use super::LaunchError;
use crate::{LeaderboardResponse, leaderboard_of};

/// A job run by [`Batch::run`].
pub struct BatchOutcome {
    pub job: Job,
    /// Every model-day was already completed: nothing ran.
    pub current: bool,
    pub report: JobReport,
    pub board: LeaderboardResponse,
}

/// A simulator of one job at a time over an opened store.
pub struct Batch {
    store: Arc<dyn Store>,
    simulator: Arc<Simulator>,
}

impl Batch {
    /// A simulator over `store` whose outbound access is that of `config` (see
    /// [`outbound_of_config`]); relative paths resolve against `base_dir`.
    pub fn new(
        store: Arc<dyn Store>,
        data_dir: PathBuf,
        base_dir: PathBuf,
        config: &ResolvedConfig,
    ) -> Result<Self, LaunchError> {
        let simulator = Simulator::new(
            store.clone(),
            SimulatorOptions {
                data_dir,
                max_concurrent_jobs: 1,
                base_dir,
                outbound: outbound_of_config(config)?,
            },
        );
        Ok(Self { store, simulator })
    }

    /// The simulator's progress events (subscribe before [`Batch::run`]).
    pub fn subscribe(&self) -> broadcast::Receiver<SimEvent> {
        self.simulator.subscribe()
    }

    /// Resumes the paused job `job_id` (its stored config, whose models' endpoints this batch's
    /// outbound access must allow) and runs it here to its end; `by` is journaled.
    pub async fn resume(&self, job_id: &str, by: &str) -> Result<BatchOutcome, LaunchError> {
        let job = tradeloom_agents::resume_to_end(&self.simulator, job_id, by).await?;
        self.outcome(job, false).await
    }

    async fn outcome(&self, job: Job, current: bool) -> Result<BatchOutcome, LaunchError> {
        let board = leaderboard_of(self.store.as_ref(), &job)
            .await
            .map_err(|e| LaunchError::Leaderboard(e.message))?;
        let report = self
            .store
            .job_report(&job.id)
            .await
            .map_err(LaunchError::Report)?;
        Ok(BatchOutcome {
            current,
            job,
            report,
            board,
        })
    }

    /// Runs (or resumes) the job of `config` to its end.
    pub async fn run(&self, config: &ResolvedConfig) -> Result<BatchOutcome, LaunchError> {
        let (outcome, job) = tradeloom_agents::run_to_end(&self.simulator, config).await?;
        self.outcome(job, matches!(outcome, TriggerOutcome::Current(_)))
            .await
    }
}

/// The outbound access of a config run from the command line: the file is the operator's own,
/// so its models' endpoints (`host:port` each, whatever they resolve to) and its `api_key_env`
/// names are allowed explicitly, and nothing else: a redirect elsewhere, a metadata path or a
/// variable the file does not name is still refused by the same guard `serve` uses.
pub fn outbound_of_config(config: &ResolvedConfig) -> Result<Outbound, LaunchError> {
    let mut policy = SsrfPolicy::default();
    for m in &config.config.models {
        let url = reqwest::Url::parse(m.base_url.trim()).map_err(|e| LaunchError::Config {
            model: m.name.clone(),
            message: e.to_string(),
        })?;
        if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
            policy.allow_hosts.push(format!("{host}:{port}"));
        }
    }
    let models = &config.config.models;
    let secrets = SecretEnv::new(models.iter().filter_map(|m| m.api_key_env.clone()));
    Outbound::new(policy, secrets).map_err(|e| LaunchError::Outbound(e.to_string()))
}

impl BatchOutcome {
    /// The outcome as one JSON object; `run_dir` is the job's folder, `elapsed` how long it ran.
    pub fn json(
        &self,
        run_dir: &std::path::Path,
        elapsed: std::time::Duration,
    ) -> serde_json::Value {
        let job = &self.job;
        serde_json::json!({
            "job_id": job.id,
            "status": if self.current { "current".to_string() } else { job.status.to_string() },
            "job_status": job.status,
            "progress": self.report.progress,
            "run_dir": run_dir,
            "elapsed_ms": elapsed.as_millis() as u64,
            "leaderboard": self.board.models,
            "warnings": self.board.warnings,
        })
    }

    /// The outcome as text: progress, what the kill switch refused, the leaderboard and its
    /// warnings, and the job's folder `run_dir`.
    pub fn text(&self, run_dir: &std::path::Path, elapsed: std::time::Duration) -> String {
        let job = &self.job;
        let mut out = String::new();
        if self.current {
            out.push_str(&format!(
                "job {}: every model-day is already completed (status: current)\n",
                job.id
            ));
        }
        let p = &self.report.progress;
        let mut refused = if p.refused > 0 {
            format!(", {} refused by the kill switch", p.refused)
        } else {
            String::new()
        };
        if p.cancelled > 0 {
            refused.push_str(&format!(", {} cancelled", p.cancelled));
        }
        out.push_str(&format!(
            "job {}  {}  {} completed, {} failed{refused} of {} model-days  ({:.1} s)\n",
            job.id,
            job.status,
            p.completed,
            p.failed,
            p.total_model_days,
            elapsed.as_secs_f64()
        ));
        if p.refused > 0 {
            out.push_str(&format!(
                "the kill switch (risk.kill_switch) refused {} model-day(s): run the same config again after `tradeloom killswitch release` to run them\n",
                p.refused
            ));
        }
        if job.status == tradeloom_store::JobStatus::Paused {
            out.push_str(&format!(
                "the job is paused: `tradeloom jobs resume {}` (or POST /simulate/{}/resume) runs the rest\n",
                job.id, job.id
            ));
        }
        out.push_str(&self.board.table(job.currency.code()));
        out.push_str(&self.board.warning_lines());
        out.push_str(&format!("run folder: {}\n", run_dir.display()));
        out
    }
}
