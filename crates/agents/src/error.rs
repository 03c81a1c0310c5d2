//! [`AgentError`]: why a simulation could not be set up or run.

use tradeloom_data::DataError;
use tradeloom_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config is wrong; `place` is `file:line:column`, `file: field` or `config`.
    #[error("{place}: {message}")]
    Config { place: String, message: String },
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
    /// Writing the run folder failed.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}
