//! [`RunError`]: everything that can stop a run, each naming the file and place.

use std::path::PathBuf;

/// A run could not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec is unreadable or invalid; `place` is `path:line` or `path:line:column` when known.
    #[error("{place}: {message}")]
    Spec { place: String, message: String },
    /// Market data could not be read or is invalid (the message names the file and line/row).
    #[error("{0}")]
    Data(#[from] tradeloom_data::DataError),
    /// The engine stopped (broken input order or an arithmetic overflow).
    #[error("engine: {0}")]
    Engine(#[from] tradeloom_engine::EngineError),
    /// Writing or reading the run folder failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A run id that matches no run (or more than one).
    #[error("{0}")]
    NotFound(String),
    /// The data dir's kill switch could not be opened or written.
    #[error("kill switch: {0}")]
    KillSwitch(#[from] tradeloom_safety::KillSwitchError),
    /// A paper run's feed failed (the run is marked failed).
    #[error("{0}")]
    Feed(#[from] crate::paper::FeedError),
    /// A paper run cannot be resumed (completed, still running, or its state does not fit).
    #[error("{0}")]
    Resume(String),
    /// A sandboxed script strategy failed or was stopped (the message names the limit or
    /// carries the Python traceback).
    #[error("strategy script: {0}")]
    Script(String),
    /// A run folder's files are not what tradeloom wrote.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

impl RunError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RunError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the error is the user's input (spec or data) rather than the system's.
    pub fn is_input_error(&self) -> bool {
        matches!(self, RunError::Spec { .. } | RunError::Data(_))
    }
}
