//! [`OrchestratorError`].

use tradeloom_queue::QueueError;
use tradeloom_store::{LimitReached, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// No such workflow, version, run or approval.
    #[error("{0} not found")]
    NotFound(String),
    /// The request cannot apply to the thing in its current state (a finished run, a decided
    /// approval).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (e.g. decide an approval limited to other approvers).
    #[error("{0}")]
    Forbidden(String),
    /// Bad run inputs, a bad patch document…: every problem found.
    #[error("{message}")]
    Invalid {
        message: String,
        errors: Vec<String>,
    },
    /// The workflow's `agent` nodes name registered agents or skills that do not resolve (when
    /// a run starts): every one, with its field.
    #[error("{message}")]
    Unresolved {
        message: String,
        errors: Vec<String>,
    },
    /// The stored workflow no longer compiles (e.g. written by another version).
    #[error("workflow definition {hash}: {message}")]
    Definition { hash: String, message: String },
    #[error(transparent)]
    Store(StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// A start refused (not queued, as asked) because a concurrency limit is full.
    #[error(
        "the {} limit of {} concurrent run(s) is reached ({} active)",
        .0.limit.as_str(),
        .0.max_concurrent_runs,
        .0.active
    )]
    LimitReached(LimitReached),
}

impl From<StoreError> for OrchestratorError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => OrchestratorError::NotFound(what),
            other => OrchestratorError::Store(other),
        }
    }
}
