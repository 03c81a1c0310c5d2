//! [`AgentError`]: why a simulation could not be set up or run.

use tradeloom_data::DataError;
use tradeloom_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config is wrong; `place` is `file:line:column`, `file: field` or `config`.
    #[error("{place}: {message}")]
    Config { place: String, message: String },
    /// A registered agent a simulation model names lists a tool a simulation session does not
    /// have (`patch_workflow`, a `skill:`): the job is refused. `agent` is `name@version`.
    #[error("{place}: agent `{agent}` lists tool `{tool}`: {reason}")]
    AgentTool {
        place: String,
        agent: String,
        tool: String,
        reason: String,
    },
    /// The universe or news files could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `MAX_CONCURRENT_JOBS` jobs are already running.
    #[error(
        "{limit} job(s) already running (job {running_job_id}); wait for it or raise MAX_CONCURRENT_JOBS"
    )]
    Busy {
        running_job_id: String,
        limit: usize,
    },
    /// A pause, resume or cancel the job's status does not allow (resume a running job, pause
    /// a finished one).
    #[error("job {job_id} is {status}: it cannot be {done} (only a job that is {allowed} can)")]
    JobState {
        job_id: String,
        status: tradeloom_store::JobStatus,
        action: tradeloom_store::JobAction,
        /// `paused`, `pending, running or interrupted`, …
        allowed: String,
        /// `paused`, `resumed`, `cancelled`.
        done: &'static str,
    },
    /// Fields of an AI-Trader config without a tradeloom equivalent: every one of them.
    #[error("{origin}: {} of the AI-Trader config cannot be mapped: {}", count_fields(.fields.len()), list_fields(.fields))]
    AiTraderConfig {
        origin: String,
        fields: Vec<crate::ai_trader::UnmappedField>,
    },
    /// Writing the run folder failed.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

fn count_fields(n: usize) -> String {
    if n == 1 {
        "1 field".to_string()
    } else {
        format!("{n} fields")
    }
}

fn list_fields(fields: &[crate::ai_trader::UnmappedField]) -> String {
    fields
        .iter()
        .map(|f| format!("`{}`: {}", f.field, f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}
